//! Timestamps as the AWS APIs give them: seconds since the Unix epoch, with a fraction.

use fleetmesh_state::model::ids::UnixMillis;
use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch (fractional; the state keeps milliseconds, so three
/// decimals are exact).
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EpochSeconds(pub f64);

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
