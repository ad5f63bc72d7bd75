//! Which pending targets go first (`codedeploy.md` §4.2 scheduling priority).
//!
//! CodeDeploy deploys unhealthy instances first, then those whose revision is
//! unknown, then those on an old revision, and those already on the deployment's
//! revision last. Unhealthy targets never lower `H`, so putting them first lets a wave
//! carry them without using up the healthy budget; among equals the node id decides,
//! so every leader picks the same wave.

use fleetmesh_state::model::deployment::{Deployment, TargetStatus};
use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::model::resources::{DeploymentGroup, InstanceRecord};
use fleetmesh_state::NodeId;

use super::fleet::FleetView;
use super::rule::{target_health, Health};

/// A pending target's rank; lower ranks start first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Priority {
    /// The group recorded a failure on the host, or the host is dead.
    Unhealthy,
    /// The group has no record of an install on the host.
    RevisionUnknown,
    /// The host runs another revision.
    RevisionOld,
    /// The host already runs the deployment's revision.
    RevisionCurrent,
}

/// Ranks one pending target whose health is `health`.
pub(crate) fn priority(health: Health, record: Option<&InstanceRecord>, revision: RevisionId) -> Priority {
    if health != Health::Healthy {
        return Priority::Unhealthy;
    }
    match record.and_then(|record| record.revision_id) {
        None => Priority::RevisionUnknown,
        Some(installed) if installed == revision => Priority::RevisionCurrent,
        Some(_) => Priority::RevisionOld,
    }
}

/// The deployment's pending targets, highest priority first, ties by node id.
pub(crate) fn pending_in_priority_order(
    deployment: &Deployment,
    group: &DeploymentGroup,
    fleet: &FleetView,
) -> Vec<NodeId> {
    let mut ranked: Vec<(Priority, NodeId)> = deployment
        .targets
        .values()
        .filter(|target| target.status == TargetStatus::Pending)
        .map(|target| {
            let id = target.target_id;
            let record = group.instances.get(&id);
            let health = target_health(target.status, fleet.liveness(id), record);
            (priority(health, record, deployment.revision_id), id)
        })
        .collect();
    ranked.sort_unstable();
    ranked.into_iter().map(|(_, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::ids::{DeploymentId, Hash32};

    use super::*;

    #[test]
    fn ranks_follow_codedeploy_priority() {
        // One healthy host per revision class plus an unhealthy one: asserts the
        // §4.2 order Unhealthy < Unknown < Old < Current, whatever the record says
        // once the host is unhealthy.
        let current = Hash32::of(b"current");
        let old = Hash32::of(b"old");
        let record = |revision_id, healthy| InstanceRecord {
            revision_id,
            healthy,
            last_deployment_id: DeploymentId("d-AAAAAAAAA".into()),
        };
        let on_current = record(Some(current), true);
        let on_old = record(Some(old), true);
        let attempted = record(None, true);
        assert_eq!(priority(Health::Unhealthy, Some(&on_current), current), Priority::Unhealthy);
        assert_eq!(priority(Health::Healthy, None, current), Priority::RevisionUnknown);
        assert_eq!(priority(Health::Healthy, Some(&attempted), current), Priority::RevisionUnknown);
        assert_eq!(priority(Health::Healthy, Some(&on_old), current), Priority::RevisionOld);
        assert_eq!(priority(Health::Healthy, Some(&on_current), current), Priority::RevisionCurrent);
        assert!(Priority::Unhealthy < Priority::RevisionUnknown);
        assert!(Priority::RevisionUnknown < Priority::RevisionOld);
        assert!(Priority::RevisionOld < Priority::RevisionCurrent);
    }
}
