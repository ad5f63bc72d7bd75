//! Liveness: every deployment reaches a terminal state (Succeeded, Failed, Stopped)
//! within its deadline.
//!
//! The planner fails a deployment with `TIMEOUT` once it has run
//! `deployment_timeout_ms` since it started. The monitor allows that plus a grace for
//! what happens around it — the deployment waiting for its first planning round, leader
//! elections, the observer's own sampling — measured in virtual time from the commit
//! that created the deployment to the commit that ended it. At the end of the liveness
//! phase, every deployment must be terminal.

use std::collections::BTreeMap;
use std::time::Duration;

use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::ClusterState;
use tokio::time::Instant;

use super::Violation;

/// The deadline monitor.
#[derive(Debug)]
pub struct TerminalDeadline {
    limit: Duration,
    created: BTreeMap<DeploymentId, Instant>,
    /// Longest creation-to-end time seen.
    pub longest: Duration,
    violation: Option<Violation>,
}

impl TerminalDeadline {
    /// A monitor allowing `timeout + grace` from creation to end.
    pub fn new(timeout: Duration, grace: Duration) -> Self {
        Self { limit: timeout + grace, created: BTreeMap::new(), longest: Duration::ZERO, violation: None }
    }

    /// A deployment was created (observed) at `now`.
    pub fn created(&mut self, deployment: &DeploymentId, now: Instant) {
        self.created.entry(deployment.clone()).or_insert(now);
    }

    /// A deployment ended (observed) at `now`.
    pub fn ended(&mut self, deployment: &DeploymentId, now: Instant) {
        let Some(created) = self.created.get(deployment) else { return };
        let took = now.duration_since(*created);
        self.longest = self.longest.max(took);
        if took > self.limit && self.violation.is_none() {
            self.violation = Some(Violation::new(format!(
                "deployment {deployment} took {took:?} to end; its deadline allows {:?}",
                self.limit
            )));
        }
    }

    /// Checks while running: a deployment still open past its limit is a violation
    /// without waiting for the end of the run.
    pub fn check_open(&mut self, state: &ClusterState, now: Instant) {
        for deployment in state.active_deployments() {
            let Some(created) = self.created.get(&deployment.deployment_id) else { continue };
            if now.duration_since(*created) > self.limit && self.violation.is_none() {
                self.violation = Some(Violation::new(format!(
                    "deployment {} is still {:?} {:?} after its creation; its deadline allows {:?}",
                    deployment.deployment_id,
                    deployment.status,
                    now.duration_since(*created),
                    self.limit
                )));
            }
        }
    }

    /// The final check: every deployment in the replicated state has ended.
    pub fn final_check(&mut self, state: &ClusterState) {
        if let Some(open) = state.active_deployments().next() {
            if self.violation.is_none() {
                self.violation = Some(Violation::new(format!(
                    "deployment {} is still {:?} at the end of the liveness phase ({} of {} targets in progress)",
                    open.deployment_id,
                    open.status,
                    open.overview().InProgress,
                    open.targets.len()
                )));
            }
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }
}
