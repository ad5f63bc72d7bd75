//! Liveness: the cluster does not run away creating deployments.
//!
//! A rollout engine that creates a deployment, sees it refused at start, and creates it
//! again every tick commits hundreds of entries a second, forever: each deployment ends
//! in time, so the deadline check alone would not notice, and the run would only stop
//! at its last timeout with a log of millions of entries. More than
//! [`DEPLOYMENTS_PER_MINUTE_MAX`] deployments created within a minute of virtual time is
//! a violation, and halts the run (every wait returns at once).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::Violation;

/// Most deployments the scenarios and the rollout engine may legitimately create in a
/// minute: a user deployment, its rollback, late-joiner deployments and a redeploy are
/// a handful.
pub const DEPLOYMENTS_PER_MINUTE_MAX: usize = 60;

/// The runaway monitor.
#[derive(Debug, Default)]
pub struct Runaway {
    recent: VecDeque<Instant>,
    violation: Option<Violation>,
}

impl Runaway {
    /// `count` deployments were created at `now`.
    pub fn created(&mut self, count: usize, now: Instant) {
        for _ in 0..count {
            self.recent.push_back(now);
        }
        while self.recent.front().is_some_and(|at| now.duration_since(*at) > Duration::from_secs(60)) {
            self.recent.pop_front();
        }
        if self.recent.len() > DEPLOYMENTS_PER_MINUTE_MAX && self.violation.is_none() {
            self.violation = Some(Violation::new(format!(
                "{} deployments were created within a minute; the rollout engine is recreating them in a loop",
                self.recent.len()
            )));
        }
    }

    /// True once the run must stop.
    pub fn is_halted(&self) -> bool {
        self.violation.is_some()
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }
}
