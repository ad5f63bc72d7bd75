//! How many finished deployments the state keeps, and for how long
//! ([`crate::FeatureLevel::RETENTION`]; the compaction is `crate::retention`).

use serde::{Deserialize, Serialize};

use crate::apply_error::ApplyError;

/// Finished deployments kept by default: CodeDeploy's own API lists 10,000.
pub const DEPLOYMENTS_KEPT_DEFAULT: u32 = 10_000;

/// Days a finished deployment is kept by default.
pub const DEPLOYMENT_DAYS_KEPT_DEFAULT: u32 = 90;

/// The bounds [`DeploymentRetention`] accepts: a count from 10 to a million, an age from
/// 1 day to 10 years.
pub const DEPLOYMENTS_KEPT_RANGE: (u32, u32) = (10, 1_000_000);
/// See [`DEPLOYMENTS_KEPT_RANGE`].
pub const DEPLOYMENT_DAYS_KEPT_RANGE: (u32, u32) = (1, 3650);

pub(crate) const DAY_MS: u64 = 86_400_000;

/// How many finished deployments the state keeps, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRetention {
    /// At most this many deployments (finished ones beyond it go, oldest first).
    pub max_deployments: u32,
    /// Finished deployments that ended more than this many days ago go.
    pub max_age_days: u32,
}

impl Default for DeploymentRetention {
    fn default() -> Self {
        Self { max_deployments: DEPLOYMENTS_KEPT_DEFAULT, max_age_days: DEPLOYMENT_DAYS_KEPT_DEFAULT }
    }
}

impl DeploymentRetention {
    /// True for the default (left out of the state's encoding).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks both bounds.
    ///
    /// # Errors
    /// One is outside its range.
    pub fn check(&self) -> Result<(), ApplyError> {
        let (low, high) = DEPLOYMENTS_KEPT_RANGE;
        if !(low..=high).contains(&self.max_deployments) {
            return Err(ApplyError::invalid(format!(
                "maxDeployments {} is outside {low}..={high}",
                self.max_deployments
            )));
        }
        let (low, high) = DEPLOYMENT_DAYS_KEPT_RANGE;
        if !(low..=high).contains(&self.max_age_days) {
            return Err(ApplyError::invalid(format!("maxAgeDays {} is outside {low}..={high}", self.max_age_days)));
        }
        Ok(())
    }
}
