//! What the leader tells each agent in a poll answer: the deployments in which it is an
//! in-progress target, the revisions it should fetch, and which peers to fetch them
//! from. All derived from the replicated state, so any leader gives the same answer.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_model::RouteInfo;
use fleetmesh_state::model::blue_green::{BlueGreenPhase, TargetLabel, BLUE_TERMINATE_EVENT, GREEN_HOLD};
use fleetmesh_state::model::deployment::{Deployment, TargetStatus};
use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::{ClusterState, FeatureLevel};
use fleetmesh_transport::NodeId;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::runtime::protocol::{Assignments, DeploymentAssignment, MemberAddress};

/// Peers handed to a node per revision. Enough for parallel fetches and rarity
/// estimates; small enough that answers stay small at 10,000 nodes.
pub const SWARM_PEERS_MAX: usize = 24;

/// Holders (complete copies) always included in a peer list, so nobody depends on
/// relays alone.
pub const SWARM_HOLDERS_MIN: usize = 4;

/// The assignments of `node` in `state`.
pub fn for_node(state: &ClusterState, node: NodeId) -> Assignments {
    {
        let mut deployments = Vec::new();
        let mut prefetch = BTreeSet::new();
        for deployment in state.active_deployments() {
            let Some(target) = deployment.targets.get(&node) else { continue };
            let holds =
                state.revision_holders.get(&deployment.revision_id).is_some_and(|holders| holders.contains(&node));
            let blue = target.target_label == Some(TargetLabel::Blue);
            if matches!(target.status, TargetStatus::Pending | TargetStatus::InProgress) && !holds && !blue {
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
                    traffic_routes: [&deployment.traffic_routes[..], &deployment.elbv2_target_groups[..]].concat(),
                    events: match target.target_label {
                        Some(_) => {
                            target.lifecycle_events.iter().map(|event| event.lifecycle_event_name.clone()).collect()
                        }
                        None => Vec::new(),
                    },
                    ready_before: ready_before(deployment, target.target_label),
                    source: state
                        .revisions
                        .get(&deployment.revision_id)
                        .and_then(|record| record.source.clone().map(Box::new)),
                });
            }
        }
        for (revision, waiting) in &state.prefetch_requests {
            if waiting.contains(&node) {
                prefetch.insert(*revision);
            }
        }
        Assignments { deployments, prefetch: prefetch.into_iter().collect(), routes: routes_for(state, node) }
    }
}

/// Where a blue/green target with `label` pauses now: green before the allow events
/// until traffic moves, blue (under `TERMINATE`) before `ApplicationStop` until the
/// termination wait ends; `None` for in-place targets and once the phase allows.
fn ready_before(deployment: &Deployment, label: Option<TargetLabel>) -> Option<String> {
    let run = deployment.blue_green.as_ref()?;
    let hold = match label? {
        TargetLabel::Green if run.phase < BlueGreenPhase::Rerouting => GREEN_HOLD,
        TargetLabel::Blue if run.phase < BlueGreenPhase::Terminating => BLUE_TERMINATE_EVENT,
        _ => return None,
    };
    Some(hold.to_string())
}

/// The routes `node` serves as a router, resolved (from feature level 8; none before,
/// and none for a node that is not a member).
fn routes_for(state: &ClusterState, node: NodeId) -> Vec<RouteInfo> {
    let Some(member) = state.members.get(&node) else { return Vec::new() };
    if state.feature_level < FeatureLevel::TRAFFIC_ROUTES {
        return Vec::new();
    }
    state
        .routes
        .values()
        .filter(|route| route.is_router(&member.tags))
        .map(|route| RouteInfo::from_state(route, state))
        .collect()
}

/// Who can serve a revision: the nodes that hold it and the nodes fetching it. The
/// leader computes this once per change of the poll inputs and shares it between the
/// poll answers until the next change (see `Leader::swarm_candidates`); computing it per
/// answer made every answer O(fleet).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Candidates {
    /// Nodes known to hold every chunk, in id order.
    holders: Vec<NodeId>,
    /// Nodes asked to fetch it (prefetch requests, targets of active deployments) that do
    /// not hold it yet, in id order.
    fetching: Vec<NodeId>,
}

impl Candidates {
    /// The candidates for `revision` in `state`.
    pub fn of(state: &ClusterState, revision: RevisionId) -> Self {
        let holders: Vec<NodeId> =
            state.revision_holders.get(&revision).map(|holders| holders.iter().copied().collect()).unwrap_or_default();
        let mut fetching: BTreeSet<NodeId> = state.prefetch_requests.get(&revision).cloned().unwrap_or_default();
        for deployment in state.active_deployments().filter(|deployment| deployment.revision_id == revision) {
            fetching.extend(deployment.targets.keys().copied());
        }
        let fetching = fetching.into_iter().filter(|id| holders.binary_search(id).is_err()).collect();
        Self { holders, fetching }
    }

    /// Up to [`SWARM_PEERS_MAX`] peers for `node`: at least [`SWARM_HOLDERS_MIN`] holders
    /// when there are that many, the rest fetchers, drawn from `rng`. O(peers), not
    /// O(candidates).
    pub fn sample(&self, node: NodeId, rng: &mut ChaCha8Rng) -> Vec<NodeId> {
        let excluding = |list: &[NodeId]| list.len() - usize::from(list.binary_search(&node).is_ok());
        let (holders, fetching) = (excluding(&self.holders), excluding(&self.fetching));
        let holders_taken = holders.min(SWARM_HOLDERS_MIN.max(SWARM_PEERS_MAX.saturating_sub(fetching)));
        let mut chosen = pick(&self.holders, node, holders_taken, rng);
        let rest = SWARM_PEERS_MAX.saturating_sub(chosen.len());
        chosen.extend(pick(&self.fetching, node, rest, rng));
        chosen
    }
}

/// `amount` distinct members of `list` other than `except`, at random (fewer if the list
/// is shorter).
fn pick(list: &[NodeId], except: NodeId, amount: usize, rng: &mut ChaCha8Rng) -> Vec<NodeId> {
    let drawn = (amount + 1).min(list.len());
    rand::seq::index::sample(rng, list.len(), drawn)
        .into_iter()
        .map(|index| list[index])
        .filter(|id| *id != except)
        .take(amount)
        .collect()
}

/// Peers to fetch each assigned revision for which `wanted` holds from: some holders
/// plus a random sample of other nodes fetching it, the same sample for the same
/// (node, revision) and state. `candidates` gives who can serve a revision (the leader
/// caches it per state change), `addresses` the members' addresses of a sample.
pub fn swarm_peers(
    node: NodeId,
    assignments: &Assignments,
    wanted: impl Fn(RevisionId) -> bool,
    candidates: impl Fn(RevisionId) -> std::sync::Arc<Candidates>,
    addresses: impl Fn(&[NodeId]) -> Vec<MemberAddress>,
) -> BTreeMap<RevisionId, Vec<MemberAddress>> {
    let revisions: BTreeSet<RevisionId> = assignments
        .prefetch
        .iter()
        .copied()
        .chain(assignments.deployments.iter().map(|assignment| assignment.revision_id))
        .filter(|revision| wanted(*revision))
        .collect();
    revisions
        .into_iter()
        .map(|revision| {
            let mut rng =
                ChaCha8Rng::seed_from_u64(node.0 ^ u64::from_le_bytes(revision.0[..8].try_into().expect("8 bytes")));
            let chosen = candidates(revision).sample(node, &mut rng);
            (revision, addresses(&chosen))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(range: std::ops::Range<u64>) -> Vec<NodeId> {
        range.map(NodeId).collect()
    }

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    #[test]
    fn a_sample_never_names_the_asking_node_and_has_no_duplicates() {
        let candidates = Candidates { holders: ids(1..10), fetching: ids(10..200) };
        for node in [1, 5, 9, 10, 150, 199, 500] {
            let peers = candidates.sample(NodeId(node), &mut rng(node));
            assert_eq!(peers.len(), SWARM_PEERS_MAX);
            assert!(!peers.contains(&NodeId(node)));
            let distinct: BTreeSet<NodeId> = peers.iter().copied().collect();
            assert_eq!(distinct.len(), peers.len(), "{peers:?}");
        }
    }

    #[test]
    fn a_sample_takes_some_holders_and_fills_with_fetchers() {
        let candidates = Candidates { holders: ids(1..100), fetching: ids(100..1000) };
        let peers = candidates.sample(NodeId(500), &mut rng(1));
        let holders = peers.iter().filter(|id| id.0 < 100).count();
        assert_eq!(holders, SWARM_HOLDERS_MIN);
        assert_eq!(peers.len(), SWARM_PEERS_MAX);
    }

    #[test]
    fn with_few_fetchers_holders_fill_the_list() {
        let candidates = Candidates { holders: ids(1..100), fetching: ids(100..105) };
        let peers = candidates.sample(NodeId(102), &mut rng(1));
        // 4 other fetchers, the other 20 places go to holders.
        assert_eq!(peers.iter().filter(|id| id.0 >= 100).count(), 4);
        assert_eq!(peers.len(), SWARM_PEERS_MAX);
    }

    #[test]
    fn small_lists_give_everyone_else() {
        let candidates = Candidates { holders: ids(1..3), fetching: ids(3..6) };
        let mut peers = candidates.sample(NodeId(4), &mut rng(7));
        peers.sort();
        assert_eq!(peers, vec![NodeId(1), NodeId(2), NodeId(3), NodeId(5)]);
        assert!(Candidates::default().sample(NodeId(1), &mut rng(1)).is_empty());
    }

    #[test]
    fn the_same_node_gets_the_same_sample_and_others_get_different_ones() {
        let candidates = Candidates { holders: ids(1..50), fetching: ids(50..1000) };
        let first = candidates.sample(NodeId(7), &mut rng(7));
        assert_eq!(first, candidates.sample(NodeId(7), &mut rng(7)));
        // Load spreads: across 200 askers, no peer is named by more than a small share.
        let mut named: BTreeMap<NodeId, usize> = BTreeMap::new();
        for node in 50..250 {
            for peer in candidates.sample(NodeId(node), &mut rng(node)) {
                *named.entry(peer).or_default() += 1;
            }
        }
        let busiest = named.values().max().copied().unwrap_or_default();
        assert!(busiest < 60, "one peer was named {busiest} times out of 200 lists");
    }
}
