//! The poll loop every node runs: a long poll to the leader that doubles as its
//! heartbeat, and brings back the leader's address, the member list, the admin token
//! hash and this node's assignments.

use std::sync::Arc;
use std::time::Duration;

use fleetmesh_transport::{NodeId, Peer};
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::stale_voter::{Evidence, StaleVoterWatch, STALE_VOTER_HOLD};
use super::Node;
use crate::protocol::{self, PollRequest, Request, Response};

/// Pause after a failed poll before trying the next candidate.
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// Runs until shutdown.
pub(super) async fn run(node: Arc<Node>) {
    let mut shutdown = node.shutdown_signal();
    let mut digest = String::new();
    let mut members_version = 0u64;
    let mut rotation = 0usize;
    let hold = node.settings().timing.poll_hold;
    let mut stale_voter = StaleVoterWatch::default();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let revisions = crate::agent_runtime::revision_progress(&node);
        let request = PollRequest {
            node: node.id(),
            assignments_digest: digest.clone(),
            members_version,
            hold_ms: hold.as_millis() as u64,
            revisions,
        };
        let answer = if node.is_leader() {
            // The leader is a host too: answer its own poll without the network.
            super::leader::handle_poll(&node, request).await
        } else {
            let Some(target) = candidate(&node, &mut rotation) else {
                pause(&mut shutdown, RETRY_DELAY).await;
                continue;
            };
            match protocol::call(
                node.transport().as_ref(),
                target,
                &Request::Poll(request),
                hold + Duration::from_secs(3),
            )
            .await
            {
                Ok((response, _)) => response,
                Err(error) => {
                    stale_voter.clear();
                    debug!(peer = %target.id, %error, "poll failed");
                    node.update_directory(|directory| {
                        if directory.leader.is_some_and(|leader| leader.id == target.id) {
                            directory.leader = None;
                        }
                    });
                    rotation += 1;
                    pause(&mut shutdown, RETRY_DELAY).await;
                    continue;
                }
            }
        };
        match answer {
            Response::Poll(poll) => {
                if stale_voter.observe(Evidence::gather(&node, &poll), Instant::now()) {
                    stale_voter.clear();
                    reset_stale_voter(&node, &poll).await;
                }
                digest = poll.assignments_digest.clone();
                node.update_directory(|directory| {
                    directory.leader = Some(poll.leader);
                    directory.term = poll.term;
                    directory.role = Some(poll.role);
                    directory.admin_token_hash = poll.admin_token_hash.clone();
                    directory.voters.clone_from(&poll.voters);
                    if let Some((version, members)) = &poll.members {
                        directory.members = members.iter().map(|member| (member.id, member.clone())).collect();
                        directory.members_version = *version;
                    }
                });
                if let Some((version, _)) = &poll.members {
                    members_version = *version;
                }
                crate::agent_runtime::on_assignments(&node, &poll);
                // The next search for a lost leader starts again with the voters.
                rotation = 0;
            }
            Response::NotLeader { leader } => {
                stale_voter.clear();
                node.update_directory(|directory| directory.leader = leader.filter(|hint| hint.id != node.id()));
                if leader.is_none() {
                    rotation += 1;
                    pause(&mut shutdown, RETRY_DELAY).await;
                }
            }
            other => {
                stale_voter.clear();
                debug!(?other, "unexpected poll answer");
                rotation += 1;
                pause(&mut shutdown, RETRY_DELAY).await;
            }
        }
    }
}

/// Gives a node that is a voter only in its own log a fresh Raft state (see
/// [`super::stale_voter`]); if that fails the node cannot work and shuts down.
async fn reset_stale_voter(node: &Arc<Node>, poll: &crate::protocol::PollResponse) {
    warn!(
        leader = %poll.leader.id,
        term = poll.term,
        "this node's Raft log lists it as a voter, but the leader has answered for {} s that it is an agent \
         and no leader replicates to it: it was replaced while it was down; resetting its Raft state to continue as an agent",
        STALE_VOTER_HOLD.as_secs()
    );
    if let Err(reason) = node.reset_raft().await {
        error!(%reason, "the Raft state could not be reset; stopping the node");
        node.shutdown().await;
    }
}

/// The node to poll: the known leader, else the known members in turn, the voters the
/// leader last listed first. Voters learn the leader from Raft; most agents only know
/// the leader that just went away, so trying the fleet in id order could take minutes
/// to reach a voter in a fleet of thousands.
fn candidate(node: &Node, rotation: &mut usize) -> Option<Peer> {
    if let Some(leader) = node.leader_hint().filter(|hint| hint.id != node.id()) {
        return Some(leader.peer());
    }
    let others = search_order(&node.directory(), node.id());
    if others.is_empty() {
        return None;
    }
    *rotation %= others.len();
    Some(others[*rotation])
}

/// Every member but `me`: the listed voters first, in the leader's order, then the
/// rest in id order.
fn search_order(directory: &super::Directory, me: NodeId) -> Vec<Peer> {
    let voters = directory.voters.iter().filter_map(|id| directory.members.get(id));
    let agents = directory.members.values().filter(|member| !directory.voters.contains(&member.id));
    voters
        .chain(agents)
        .filter(|member| member.id != me)
        .map(|member| Peer { id: member.id, addr: member.listen })
        .collect()
}

async fn pause(shutdown: &mut tokio::sync::watch::Receiver<bool>, delay: Duration) {
    tokio::select! {
        biased;
        _ = shutdown.changed() => {}
        () = tokio::time::sleep(delay) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MemberAddress;

    #[test]
    fn a_lost_leader_is_looked_for_among_the_voters_first() {
        let member = |id: u64| {
            let addr = format!("127.0.0.{id}:7000").parse().expect("addr");
            (NodeId(id), MemberAddress { id: NodeId(id), listen: addr, api: addr })
        };
        let directory = super::super::Directory {
            members: (1..=8).map(member).collect(),
            voters: vec![NodeId(7), NodeId(3), NodeId(42)],
            ..Default::default()
        };
        let order: Vec<u64> = search_order(&directory, NodeId(3)).iter().map(|peer| peer.id.0).collect();
        // Voter 42 is not a known member and 3 is the asker: neither is listed.
        assert_eq!(order, vec![7, 1, 2, 4, 5, 6, 8]);
        let nobody_listed = super::super::Directory { voters: Vec::new(), ..directory };
        let order: Vec<u64> = search_order(&nobody_listed, NodeId(1)).iter().map(|peer| peer.id.0).collect();
        assert_eq!(order, vec![2, 3, 4, 5, 6, 7, 8]);
    }
}
