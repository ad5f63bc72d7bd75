//! Late joiners (`codedeploy.md` §5.1): hosts that match a deployment group but do not
//! run its last successful revision, which CodeDeploy brings up to date with an
//! automatic deployment (creator `autoscaling` / `CodeDeployAutoUpdate`).
//!
//! Pure: the leader calls it when membership or the group changes and, when it returns
//! hosts, proposes a deployment of the group's target revision to exactly them.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_state::model::deployment::Deployment;
use fleetmesh_state::model::ids::{DeploymentId, RevisionId};
use fleetmesh_state::model::resources::{DeploymentGroup, InstanceRecord};
use fleetmesh_state::NodeId;

use super::fleet::{FleetView, Liveness};

/// The alive members of `group` that should get its target revision, in id order;
/// empty when the group has no target revision, has a deployment running, or does not
/// update outdated instances.
///
/// A member is outdated when the group has no record of it or its record shows
/// another revision. A member whose last attempt deployed this same revision and
/// failed is left alone, so a host that cannot install the revision is not retried in
/// a loop; the next user deployment (or a new target revision) reaches it again.
/// `matching_members` are the members the group's selector matches
/// (`ClusterState::group_targets`); `deployments` is the replicated deployment table.
pub fn outdated_hosts(
    group: &DeploymentGroup,
    matching_members: &[NodeId],
    fleet: &FleetView,
    deployments: &BTreeMap<DeploymentId, Deployment>,
) -> Vec<NodeId> {
    let Some(target_revision) = updates_outdated(group) else {
        return Vec::new();
    };
    let members: BTreeSet<NodeId> = matching_members.iter().copied().collect();
    members
        .into_iter()
        .filter(|id| fleet.liveness(*id) == Liveness::Alive)
        .filter(|id| match group.instances.get(id) {
            None => true,
            Some(record) => {
                record.revision_id != Some(target_revision) && !failed_on(record, target_revision, deployments)
            }
        })
        .collect()
}

/// The revision `group` brings outdated members to, if it does so now: it has a target
/// revision, updates outdated instances, and runs no deployment. The caller can skip
/// matching the fleet against the group's selector when this is `None`.
pub fn updates_outdated(group: &DeploymentGroup) -> Option<RevisionId> {
    group.target_revision.filter(|_| group.active_deployment_id.is_none() && group.update_outdated_instances)
}

/// True when the record's last deployment was of `revision` and left the host
/// unhealthy.
fn failed_on(record: &InstanceRecord, revision: RevisionId, deployments: &BTreeMap<DeploymentId, Deployment>) -> bool {
    !record.healthy && deployments.get(&record.last_deployment_id).is_some_and(|last| last.revision_id == revision)
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::deployment::DeploymentStatus;
    use fleetmesh_state::model::ids::Hash32;
    use fleetmesh_state::model::resources::ALL_AT_ONCE;

    use super::super::fleet::HostView;
    use super::super::harness::{Config, Harness};
    use super::*;

    #[test]
    fn late_joiners_get_the_target_revision_once() {
        // A group that deployed revision R to hosts 1–3 (host 3 failed on R), then
        // records for hosts 4 (an old revision), 5 (a failure on an older revision)
        // and 6 (unknown), host 7 suspect, host 8 absent from the view: asserts only
        // the alive hosts without R and without a failed attempt at R are returned.
        let mut harness = Harness::with_targets(8, &[1, 2, 3], Config::Predefined(ALL_AT_ONCE));
        harness.fleet = FleetView::all_alive((1..=6).map(NodeId));
        harness.fleet.hosts.insert(NodeId(7), HostView::suspect());
        harness.run_to_end(&[3]);
        assert_eq!(harness.deployment().status, DeploymentStatus::Succeeded);
        let revision = harness.revision_id();
        let earlier = harness.deployment_id.clone();
        let other = DeploymentId("d-OTHER0000".into());
        let older = Hash32::of(b"older revision");
        let group = harness.group_mut();
        assert_eq!(group.target_revision, Some(revision));
        assert_eq!(group.instances[&NodeId(3)].revision_id, None, "host 3 failed before Install");
        group.update_outdated_instances = true;
        group.instances.insert(NodeId(4), record(Some(older), true, &earlier));
        group.instances.insert(NodeId(5), record(Some(older), false, &other));
        let mut deployments = harness.state.deployments.clone();
        let mut older_deployment = deployments[&earlier].clone();
        older_deployment.deployment_id = other.clone();
        older_deployment.revision_id = older;
        deployments.insert(other, older_deployment);
        let members: Vec<NodeId> = (1..=8).rev().map(NodeId).collect();

        let outdated = outdated_hosts(harness.group(), &members, &harness.fleet, &deployments);
        assert_eq!(outdated, vec![NodeId(4), NodeId(5), NodeId(6)]);
    }

    #[test]
    fn nothing_is_outdated_without_a_target_revision_or_while_deploying() {
        // A fresh group (no successful deployment), then the same group with a target
        // revision but a deployment running, then with updates turned off: asserts
        // each returns no host even though every host lacks the revision.
        let mut harness = Harness::new(3, Config::Predefined(ALL_AT_ONCE));
        let members: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let deployments = harness.state.deployments.clone();
        harness.group_mut().update_outdated_instances = true;
        assert!(outdated_hosts(harness.group(), &members, &harness.fleet, &deployments).is_empty());

        let revision = harness.revision_id();
        harness.group_mut().target_revision = Some(revision);
        assert!(harness.group().active_deployment_id.is_some());
        assert!(outdated_hosts(harness.group(), &members, &harness.fleet, &deployments).is_empty());

        harness.group_mut().active_deployment_id = None;
        assert_eq!(outdated_hosts(harness.group(), &members, &harness.fleet, &deployments), members);
        harness.group_mut().update_outdated_instances = false;
        assert!(outdated_hosts(harness.group(), &members, &harness.fleet, &deployments).is_empty());
    }

    fn record(revision_id: Option<RevisionId>, healthy: bool, last: &DeploymentId) -> InstanceRecord {
        InstanceRecord { revision_id, healthy, last_deployment_id: last.clone() }
    }
}
