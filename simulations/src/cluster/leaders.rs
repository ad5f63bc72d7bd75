//! Who leads: every running node that believes it leads, asked cheaply.

use std::collections::BTreeSet;

use fleetmesh_transport::NodeId;
use openraft::ServerState;

use super::{lock, SimCluster, SimNode};

/// How often [`SimCluster::leaders`] asks every node instead of the likely leaders:
/// every 10 virtual seconds. An agent cannot lead without first being listed as a voter
/// (its Raft is dormant, see `RaftTiming::dormant`), and the likely leaders include every
/// voter and learner; asking a thousand nodes every second cost 5 % of a run at N = 1000.
const FULL_SCAN_EVERY: u64 = 1000;

/// Which nodes [`SimCluster::leaders`] asks.
#[derive(Debug, Default)]
pub(super) struct LeaderScan {
    /// Members of the newest leader's Raft membership, voters and learners.
    candidates: BTreeSet<NodeId>,
    /// Calls so far.
    calls: u64,
}

impl SimCluster {
    /// Every running node that believes it leads, with its term.
    ///
    /// Only nodes that may lead are asked: the voters (and learners) of the membership
    /// the last sampled leader knew, refreshed at every call, plus every node once per
    /// `FULL_SCAN_EVERY` (1000) calls — so that even an agent that wrongly thinks it leads is
    /// seen, without asking thousands of agents every 10 ms.
    pub fn leaders(&self) -> Vec<(u64, NodeId)> {
        let (full, candidates) = {
            let mut scan = lock(&self.leader_scan);
            scan.calls = scan.calls.wrapping_add(1);
            (scan.calls % FULL_SCAN_EVERY == 1 || scan.candidates.is_empty(), scan.candidates.clone())
        };
        let asked: Vec<&SimNode> = if full {
            self.nodes.values().collect()
        } else {
            candidates.iter().filter_map(|id| self.nodes.get(id)).collect()
        };
        let mut leaders = Vec::new();
        let mut newest: Option<(u64, BTreeSet<NodeId>)> = None;
        for sim in asked {
            let metrics = sim.node.raft().metrics();
            let metrics = metrics.borrow();
            if metrics.state != ServerState::Leader {
                continue;
            }
            leaders.push((metrics.current_term, sim.node.id()));
            if newest.as_ref().is_none_or(|(term, _)| metrics.current_term > *term) {
                let members = metrics.membership_config.membership().nodes().map(|(id, _)| *id).collect();
                newest = Some((metrics.current_term, members));
            }
        }
        if let Some((_, members)) = newest {
            lock(&self.leader_scan).candidates = members;
        }
        leaders
    }

    /// The running node that is leader of the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders().into_iter().max().map(|(_, id)| id)
    }
}
