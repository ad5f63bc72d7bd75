//! What the leader tells each agent in a poll answer: the deployments in which it is an
//! in-progress target, the revisions it should fetch, and which peers to fetch them
//! from. All derived from the replicated state, so any leader gives the same answer.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_consensus::model::deployment::TargetStatus;
use fleetmesh_consensus::model::ids::RevisionId;
use fleetmesh_transport::NodeId;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::protocol::{Assignments, DeploymentAssignment, MemberAddress};
use crate::runtime::Node;

/// Peers handed to a node per revision. Enough for parallel fetches and rarity
/// estimates; small enough that answers stay small at 10,000 nodes.
pub const SWARM_PEERS_MAX: usize = 24;

/// Holders (complete copies) always included in a peer list, so nobody depends on
/// relays alone.
pub const SWARM_HOLDERS_MIN: usize = 4;

/// The assignments of `node`.
pub fn for_node(leader: &Node, node: NodeId) -> Assignments {
    leader.state().read(|state| {
        let mut deployments = Vec::new();
        let mut prefetch = BTreeSet::new();
        for deployment in state.active_deployments() {
            let Some(target) = deployment.targets.get(&node) else { continue };
            let holds =
                state.revision_holders.get(&deployment.revision_id).is_some_and(|holders| holders.contains(&node));
            if matches!(target.status, TargetStatus::Pending | TargetStatus::InProgress) && !holds {
                prefetch.insert(deployment.revision_id);
            }
            if target.status == TargetStatus::InProgress {
                deployments.push(DeploymentAssignment {
                    deployment_id: deployment.deployment_id.clone(),
                    application_name: deployment.application_name.clone(),
                    deployment_group_name: deployment.deployment_group_name.clone(),
                    deployment_group_id: deployment.deployment_group_id.clone(),
                    revision_id: deployment.revision_id,
                    ignore_application_stop_failures: deployment.ignore_application_stop_failures,
                    file_exists_behavior: deployment.file_exists_behavior,
                });
            }
        }
        for (revision, waiting) in &state.prefetch_requests {
            if waiting.contains(&node) {
                prefetch.insert(*revision);
            }
        }
        Assignments { deployments, prefetch: prefetch.into_iter().collect() }
    })
}

/// Peers to fetch each assigned revision from: some holders plus a random sample of
/// other nodes fetching it, the same sample for the same (node, revision).
pub fn swarm_peers(leader: &Node, node: NodeId, assignments: &Assignments) -> BTreeMap<RevisionId, Vec<MemberAddress>> {
    let revisions: BTreeSet<RevisionId> = assignments
        .prefetch
        .iter()
        .copied()
        .chain(assignments.deployments.iter().map(|assignment| assignment.revision_id))
        .collect();
    leader.state().read(|state| {
        revisions
            .into_iter()
            .map(|revision| {
                let holders: BTreeSet<NodeId> = state.revision_holders.get(&revision).cloned().unwrap_or_default();
                let mut fetching: BTreeSet<NodeId> =
                    state.prefetch_requests.get(&revision).cloned().unwrap_or_default();
                for deployment in state.active_deployments().filter(|deployment| deployment.revision_id == revision) {
                    fetching.extend(deployment.targets.keys().copied());
                }
                let mut rng = ChaCha8Rng::seed_from_u64(
                    node.0 ^ u64::from_le_bytes(revision.0[..8].try_into().expect("8 bytes")),
                );
                let mut holder_list: Vec<NodeId> = holders.iter().copied().filter(|id| *id != node).collect();
                holder_list.shuffle(&mut rng);
                let mut others: Vec<NodeId> =
                    fetching.iter().copied().filter(|id| *id != node && !holders.contains(id)).collect();
                others.shuffle(&mut rng);
                let holders_taken =
                    holder_list.len().min(SWARM_HOLDERS_MIN.max(SWARM_PEERS_MAX.saturating_sub(others.len())));
                let mut chosen: Vec<NodeId> = holder_list.into_iter().take(holders_taken).collect();
                chosen.extend(others.into_iter().take(SWARM_PEERS_MAX.saturating_sub(chosen.len())));
                let peers = chosen
                    .into_iter()
                    .filter_map(|id| state.members.get(&id))
                    .map(|member| MemberAddress { id: member.id, listen: member.listen, api: member.api })
                    .collect();
                (revision, peers)
            })
            .collect()
    })
}
