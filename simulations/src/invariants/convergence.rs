//! Liveness: after healing, every live target of a deployment group converges to the
//! group's last successful revision.
//!
//! Checked at the end of the liveness phase, in two steps:
//! - *settled*: once every deployment has ended and the rollout engine has deployed the
//!   group's revision to outdated hosts, every live member the group selects runs that
//!   revision, byte for byte, on its simulated disk — except a host whose last attempt
//!   at that very revision failed, which fleetmesh deliberately does not retry in a loop
//!   (`rollout::outdated_hosts`); such hosts are listed;
//! - *redeployed*: after the operator deploys the group's revision once more with no
//!   faults (what the design expects an operator to do), every live member runs it, no
//!   exception.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use fleetmesh_state::ClusterState;
use fleetmesh_transport::NodeId;

use super::installs_exact::matches_manifest;
use super::Violation;
use crate::host::disk::SimDisk;

/// Checks every group; `exempt_failed` allows hosts whose last attempt at the group's
/// revision failed. Returns those hosts.
///
/// # Errors
/// The first live host that does not run its group's last successful revision exactly.
pub fn check(
    state: &ClusterState,
    live: &[NodeId],
    disks: &BTreeMap<NodeId, Arc<Mutex<SimDisk>>>,
    exempt_failed: bool,
) -> Result<Vec<NodeId>, Violation> {
    let mut exempt = Vec::new();
    for group in state.deployment_groups.values().flat_map(BTreeMap::values) {
        let Some(revision) = group.target_revision else { continue };
        let Some(manifest) = state.revisions.get(&revision).map(|record| &record.manifest) else {
            return Err(Violation::new(format!(
                "group {}'s revision {revision} is not registered",
                group.deployment_group_name
            )));
        };
        for host in state.group_targets(group).into_iter().filter(|host| live.contains(host)) {
            let current = disks.get(&host).and_then(|disk| {
                disk.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .current
                    .get(&group.deployment_group_id)
                    .cloned()
            });
            if current
                .as_ref()
                .is_some_and(|installed| installed.revision_id == revision && matches_manifest(installed, manifest))
            {
                continue;
            }
            let failed_on_it = group.instances.get(&host).is_some_and(|record| {
                !record.healthy
                    && state
                        .deployments
                        .get(&record.last_deployment_id)
                        .is_some_and(|last| last.revision_id == revision)
            });
            if exempt_failed && failed_on_it {
                exempt.push(host);
                continue;
            }
            return Err(Violation::new(format!(
                "host {host} runs {:?} for group {}, whose last successful revision is {revision} (group record: {:?})",
                current.map(|installed| (installed.revision_id, installed.deployment_id)),
                group.deployment_group_name,
                group.instances.get(&host)
            )));
        }
    }
    Ok(exempt)
}
