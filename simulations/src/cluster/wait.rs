//! Driving a run: letting virtual time pass, waiting for a condition, and proposing
//! through whichever node leads — each sampling leaders and the observer as it goes.

use std::time::Duration;

use fleetmesh_node::runtime::ProposeError;
use fleetmesh_state::{Command, Outcome};

use super::{ClusterError, SimCluster, SAMPLE_PERIOD};

impl SimCluster {
    /// Lets virtual time pass, sampling leaders and the observer every
    /// [`SAMPLE_PERIOD`].
    pub async fn sleep(&self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        while tokio::time::Instant::now() < deadline && !self.is_halted() {
            self.observe();
            self.pump().await;
            tokio::time::sleep(SAMPLE_PERIOD.min(deadline - tokio::time::Instant::now())).await;
        }
    }

    /// Waits until `done` holds, sampling leaders and the observer every
    /// [`SAMPLE_PERIOD`].
    ///
    /// # Errors
    /// `timeout` passed first.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            self.observe();
            self.pump().await;
            if done(self) {
                return Ok(());
            }
            if self.is_halted() {
                return Err(ClusterError::Halted { what: what.to_string() });
            }
            tokio::time::sleep(SAMPLE_PERIOD).await;
        }
        Err(ClusterError::TimedOut { what: what.to_string(), timeout })
    }

    /// Proposes `command` through whichever node leads, retrying (for up to `timeout`)
    /// while there is no leader or no quorum.
    ///
    /// # Errors
    /// No leader committed it within `timeout`; the last error.
    pub async fn propose(&self, command: Command, timeout: Duration) -> Result<Outcome, ClusterError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::from("no leader");
        while tokio::time::Instant::now() < deadline && !self.is_halted() {
            if let Some(leader) = self.leader() {
                match self.node(leader).propose_one(command.clone()).await {
                    Ok(outcome) => return Ok(outcome),
                    Err(ProposeError::Fatal(error)) => last = error,
                    Err(error) => last = error.to_string(),
                }
            }
            self.sleep(Duration::from_millis(100)).await;
        }
        Err(ClusterError::NotCommitted { timeout, last })
    }
}
