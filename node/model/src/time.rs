//! Timestamps as the AWS APIs give them: seconds since the Unix epoch, with a fraction.

use fleetmesh_state::model::ids::UnixMillis;
use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch (fractional; the state keeps milliseconds, so three
/// decimals are exact).
///
/// Releases before feature level 3 answered integer milliseconds, and during an upgrade
/// a new client may read such an answer (relayed from an old leader): a number too
/// large to be seconds (past the year 5000) is read as milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct EpochSeconds(pub f64);

/// Above this, a timestamp is milliseconds (1e11 seconds is the year 5138).
const MILLISECONDS_ABOVE: f64 = 1e11;

impl<'de> Deserialize<'de> for EpochSeconds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        Ok(Self(if value > MILLISECONDS_ABOVE { value / 1000.0 } else { value }))
    }
}

impl EpochSeconds {
    /// Milliseconds, rounded to the nearest (for arithmetic on durations).
    pub fn as_millis(self) -> u64 {
        if self.0.is_finite() && self.0 > 0.0 {
            (self.0 * 1000.0).round() as u64
        } else {
            0
        }
    }

    /// Seconds from `earlier` to `self`, zero when `earlier` is later.
    pub fn secs_since(self, earlier: Self) -> f64 {
        (self.0 - earlier.0).max(0.0)
    }
}

impl From<UnixMillis> for EpochSeconds {
    fn from(millis: UnixMillis) -> Self {
        Self(millis.as_secs_f64())
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (the well-known
/// era-based conversion: 400-year eras of 146 097 days).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}
