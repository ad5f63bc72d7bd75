//! Carrying out autopilot's decisions ([`super::autopilot`]): one voter change at a time,
//! as a task of the leader's that reports back when it ends.

use std::collections::BTreeSet;
use std::time::Duration;

use fleetmesh_transport::NodeId;
use openraft::BasicNode;
use tokio::time::Instant;
use tracing::{info, warn};

use super::autopilot::{self, AutopilotInput, VoterChange};
use super::core::{LeaderCore, Work};
use super::features::behind_cluster_level;
use super::run::{Done, ReportReply, Shell};
use super::seal;
use crate::runtime::Node;

/// Why a voter change did not happen.
#[derive(Debug, thiserror::Error)]
pub(super) enum VoterChangeError {
    /// The node to promote is not a member.
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// The CA seal key did not reach the node to promote.
    #[error("{0}")]
    SealKey(String),
    /// The learner did not catch up in time.
    #[error("node {0} did not catch up within 20 s")]
    CatchUp(NodeId),
    /// openraft refused the change.
    #[error("{0}")]
    Raft(String),
    /// The change did not commit in time.
    #[error("membership change timed out")]
    Timeout,
    /// Another change stayed in progress.
    #[error("membership change kept conflicting with one in progress")]
    Conflict,
}

impl Shell {
    /// Asks autopilot whether the voter set needs a change and starts it, unless one is
    /// under way.
    pub(super) fn start_autopilot(&mut self, core: &mut LeaderCore<ReportReply>) {
        let node = self.node.clone();
        let Some((voters_desired, cluster_level)) =
            node.state().read(|state| state.cluster.as_ref().map(|info| (info.voters_desired, state.feature_level)))
        else {
            return;
        };
        let voters: BTreeSet<NodeId> = node.voters();
        let (term, me, now) = (node.term(), node.id(), Instant::now());
        let members_version = node.state().versions().members;
        let hosts = core
            .view(term, now)
            .health(members_version, now, || node.state().read(|state| state.members.keys().copied().collect()))
            .hosts
            .clone();
        let mut input = AutopilotInput {
            leader: me,
            members: hosts.iter().map(|(id, _, _)| *id).collect(),
            voters: voters.clone(),
            health: hosts
                .iter()
                .map(|(id, health, dead_at)| (*id, *health, dead_at.map(|at| now.duration_since(at))))
                .collect(),
            voters_desired: voters_desired as usize,
            grace: node.settings().timing.voter_grace,
            behind: BTreeSet::new(),
        };
        let mut change = autopilot::decide(&input);
        // Most passes change nothing; the releases are looked at only when a promotion
        // is due, and then for every member, so the choice skips those behind.
        if change.as_ref().and_then(|change| change.promote).is_some() {
            let members = input.members.clone();
            input.behind = behind_cluster_level(cluster_level, members, me, core.releases(term, now));
            change = autopilot::decide(&input);
        }
        let Some(change) = change else { return };
        if !core.begin(Work::Voters) {
            return;
        }
        self.spawn(Work::Voters, async move {
            if let Err(error) = change_voters(&node, &change, &voters).await {
                warn!(?change, %error, "voter change failed; will retry");
            }
            Done::Other
        });
    }
}

pub(super) async fn change_voters(
    node: &Node,
    change: &VoterChange,
    voters: &BTreeSet<NodeId>,
) -> Result<(), VoterChangeError> {
    let raft = node.raft();
    if let Some(promote) = change.promote {
        let listen = node
            .state()
            .read(|state| state.members.get(&promote).map(|member| member.listen))
            .ok_or(VoterChangeError::NotMember(promote))?;
        // The seal key first: a voter that cannot open the CA could lead but not sign.
        seal::hand_seal_key(node, promote).await.map_err(|error| VoterChangeError::SealKey(error.to_string()))?;
        info!(node = %promote, "adding a learner to restore the voter count");
        tokio::time::timeout(
            Duration::from_secs(20),
            raft.add_learner(promote, BasicNode { addr: listen.to_string() }, true),
        )
        .await
        .map_err(|_| VoterChangeError::CatchUp(promote))?
        .map_err(|error| VoterChangeError::Raft(error.to_string()))?;
    }
    let next = change.apply(voters);
    // Right after a leader change the previous membership entry may not be committed
    // yet (openraft answers InProgress): retry briefly.
    for attempt in 0..20u32 {
        match tokio::time::timeout(Duration::from_secs(10), raft.change_membership(next.clone(), false)).await {
            Ok(Ok(_)) => {
                info!(voters = ?next, "voter set changed");
                return Ok(());
            }
            Ok(Err(error)) if error.to_string().contains("in progress") && attempt < 19 => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Err(error)) => return Err(VoterChangeError::Raft(error.to_string())),
            Err(_) => return Err(VoterChangeError::Timeout),
        }
    }
    Err(VoterChangeError::Conflict)
}
