//! Safety: after a rollback, every target that had changed runs the previous revision
//! again. (In-place deployments; a blue/green rollback moves traffic instead, see
//! [`super::rollback_restores_blue`]; a Lambda rollback moves an alias back, see
//! `traffic-shift-chaos`.)
//!
//! For every deployment the monitor remembers the group's last successful revision at
//! its creation (the revision a rollback must restore). When a rollback ends, it
//! checks that
//! - the rollback deploys that revision,
//! - it targets every host on which the failed deployment's Install succeeded (the
//!   hosts that had changed), and
//! - on every host where the rollback's target succeeded, the last install of the group
//!   by either deployment is the rollback's, of that revision (the simulated disk's
//!   install history is read directly).
//!
//! Hosts on which the rollback itself failed are the convergence invariant's business:
//! after healing they must reach the group's last successful revision anyway.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use fleetmesh_state::model::deployment::{
    Deployment, DeploymentCreator, DeploymentStatus, LifecycleEventStatus, TargetStatus,
};
use fleetmesh_state::model::ids::{DeploymentId, RevisionId};
use fleetmesh_state::model::resources::AutoRollbackEvent;
use fleetmesh_state::ClusterState;
use fleetmesh_transport::NodeId;

use super::Violation;
use crate::host::disk::SimDisk;

/// The rollback monitor.
#[derive(Debug, Default)]
pub struct RollbackRestores {
    previous: BTreeMap<DeploymentId, Option<RevisionId>>,
    /// Rollbacks checked.
    pub checked: u64,
    /// Hosts a rollback restored.
    pub hosts_restored: u64,
    violation: Option<Violation>,
}

fn installed_by(deployment: &Deployment, host: NodeId) -> bool {
    deployment.targets.get(&host).is_some_and(|target| {
        target
            .lifecycle_events
            .iter()
            .any(|event| event.lifecycle_event_name == "Install" && event.status == LifecycleEventStatus::Succeeded)
    })
}

impl RollbackRestores {
    /// A deployment was created: remembers what a rollback of it must restore.
    pub fn created(&mut self, state: &ClusterState, deployment: &Deployment) {
        let previous = state
            .deployment_group(&deployment.application_name, &deployment.deployment_group_name)
            .and_then(|group| group.target_revision);
        self.previous.insert(deployment.deployment_id.clone(), previous);
    }

    /// A deployment ended: a failed one with automatic rollback must have started its
    /// rollback; a rollback is checked as the module says.
    pub fn ended(
        &mut self,
        state: &ClusterState,
        rollback: &Deployment,
        disks: &BTreeMap<NodeId, Arc<Mutex<SimDisk>>>,
    ) {
        if self.violation.is_some() {
            return;
        }
        if rollback.blue_green.is_some() {
            // A blue/green deployment rolls back by giving the routes back to blue,
            // which still runs the previous revision: no rollback deployment, no
            // install ([`super::rollback_restores_blue`] checks it).
            return;
        }
        if rollback.shift.is_some() {
            // A Lambda deployment rolls back by moving the alias back to the version it
            // left, not by installing a revision on hosts (`traffic-shift-chaos` checks it).
            return;
        }
        if rollback.creator != DeploymentCreator::CodeDeployRollback {
            self.check_rollback_started(rollback);
            return;
        }
        let Some(triggering_id) =
            rollback.rollback_info.as_ref().and_then(|info| info.rollback_triggering_deployment_id.clone())
        else {
            self.violation = Some(Violation::new(format!(
                "rollback {} does not name the deployment it undoes",
                rollback.deployment_id
            )));
            return;
        };
        let Some(triggering) = state.deployments.get(&triggering_id) else { return };
        self.checked += 1;
        let expected = self.previous.get(&triggering_id).copied().flatten();
        if expected != Some(rollback.revision_id) {
            self.violation = Some(Violation::new(format!(
                "rollback {} of {triggering_id} deploys revision {}, but the group's last successful revision before \
                 {triggering_id} was {expected:?}",
                rollback.deployment_id, rollback.revision_id
            )));
            return;
        }
        if let Some(missed) = triggering
            .targets
            .keys()
            .find(|host| installed_by(triggering, **host) && !rollback.targets.contains_key(host))
        {
            self.violation = Some(Violation::new(format!(
                "host {missed} installed {triggering_id}'s revision, but rollback {} does not target it",
                rollback.deployment_id
            )));
            return;
        }
        for target in rollback.targets.values().filter(|target| target.status == TargetStatus::Succeeded) {
            let host = target.target_id;
            let last = disks.get(&host).and_then(|disk| {
                disk.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .last_install_among(&rollback.deployment_group_id, &[&triggering_id, &rollback.deployment_id])
            });
            if last != Some((rollback.deployment_id.clone(), rollback.revision_id)) {
                self.violation = Some(Violation::new(format!(
                    "rollback {} succeeded on host {host}, but the host's last install is {last:?}, not revision {}",
                    rollback.deployment_id, rollback.revision_id
                )));
                return;
            }
            self.hosts_restored += 1;
        }
    }

    fn check_rollback_started(&mut self, failed: &Deployment) {
        let wanted = failed.status == DeploymentStatus::Failed
            && failed.auto_rollback_configuration.triggers_on(AutoRollbackEvent::DeploymentFailure);
        let has_previous = self.previous.get(&failed.deployment_id).copied().flatten().is_some();
        let touched = failed
            .targets
            .values()
            .any(|target| !matches!(target.status, TargetStatus::Skipped | TargetStatus::Pending));
        let started = failed.rollback_info.as_ref().is_some_and(|info| info.rollback_deployment_id.is_some());
        if wanted && has_previous && touched && !started {
            self.violation = Some(Violation::new(format!(
                "deployment {} failed with automatic rollback on, had changed targets and a previous revision, but no \
                 rollback was created ({:?})",
                failed.deployment_id,
                failed.rollback_info.as_ref().map(|info| info.rollback_message.clone())
            )));
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }
}
