//! Removing a member for good (`fleetmesh cluster remove-node`), on the leader.
//!
//! A voter leaves the Raft voters first (a joint-consensus change, as autopilot's), then
//! the member is removed from the replicated state (`Command::RemoveMember`). Its id is
//! never reused, so from then on every node refuses its certificate at the QUIC
//! handshake (`runtime::removal`), and autopilot promotes an agent to keep the voter
//! count. The leader does not remove itself: stop it, and once another voter leads (and
//! the stopped one is down), remove it from there.

use std::time::Duration;

use fleetmesh_state::{Command, NodeId, Outcome};
use tracing::info;

use super::autopilot::VoterChange;
use super::voters::change_voters;
use super::Leader;
use crate::runtime::ProposeError;

/// Why a member was not removed; the text goes back to the operator.
#[derive(Debug, thiserror::Error)]
pub enum RemoveMemberError {
    /// No member has the id, and none ever had.
    #[error("node {0} is not a member of this cluster (`fleetmesh cluster status` lists the members)")]
    NotMember(NodeId),
    /// The member was removed already.
    #[error("node {0} was already removed from the cluster")]
    AlreadyRemoved(NodeId),
    /// The member is the leader answering.
    #[error(
        "node {0} is the leader and cannot remove itself: stop it (another voter takes over within seconds), \
         then run remove-node again; a voter that is down is taken out of the voters first"
    )]
    IsLeader(NodeId),
    /// The member is the only voter.
    #[error("node {0} is the cluster's last voter: the cluster cannot run without it")]
    LastVoter(NodeId),
    /// This node stopped leading.
    #[error("this node is no longer the leader; retry")]
    NotLeader,
    /// The voter could not be taken out of the Raft voters.
    #[error("node {id} could not leave the voters: {reason}; retry")]
    Voters {
        /// The member.
        id: NodeId,
        /// What failed.
        reason: String,
    },
    /// The removal did not commit.
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// The state refused the removal.
    #[error("{0}")]
    Rejected(String),
}

/// How often a voter change is tried again when autopilot changed the voters meanwhile.
const VOTER_CHANGE_ATTEMPTS: u32 = 3;

impl Leader {
    /// Removes member `id` (dead or alive): out of the voters first when it is one, then
    /// out of the member list.
    ///
    /// # Errors
    /// As [`RemoveMemberError`]; nothing changed then, except that a voter may have left
    /// the voters already (a retry finishes the removal).
    pub async fn remove_member(&self, id: NodeId) -> Result<(), RemoveMemberError> {
        let node = &self.node;
        if !node.is_leader() {
            return Err(RemoveMemberError::NotLeader);
        }
        let (member, removed) =
            node.state().read(|state| (state.members.contains_key(&id), state.removed.contains(&id)));
        if removed {
            return Err(RemoveMemberError::AlreadyRemoved(id));
        }
        if !member {
            return Err(RemoveMemberError::NotMember(id));
        }
        if id == node.id() {
            return Err(RemoveMemberError::IsLeader(id));
        }
        self.leave_voters(id).await?;
        match node.propose_one(Command::RemoveMember { id }).await? {
            Outcome::Rejected(error) => return Err(RemoveMemberError::Rejected(error.message)),
            _ => info!(node = %id, "removed a member; its certificate is refused from now on"),
        }
        // Autopilot may have promoted it between the voter change and the removal; it
        // promotes members only, so this second pass is the last.
        self.leave_voters(id).await
    }

    /// Takes `id` out of the Raft voters (and learners) when it is a voter.
    async fn leave_voters(&self, id: NodeId) -> Result<(), RemoveMemberError> {
        let node = &self.node;
        // Bounded: a few attempts, each a membership change with its own timeout.
        for attempt in 1..=VOTER_CHANGE_ATTEMPTS {
            let voters = node.voters();
            if !voters.contains(&id) {
                return Ok(());
            }
            if voters.len() <= 1 {
                return Err(RemoveMemberError::LastVoter(id));
            }
            info!(node = %id, "taking a member out of the voters before removing it");
            let change = VoterChange { promote: None, demote: Some(id) };
            match change_voters(node, &change, &voters).await {
                Ok(()) => {}
                Err(error) if attempt == VOTER_CHANGE_ATTEMPTS => {
                    return Err(RemoveMemberError::Voters { id, reason: error.to_string() })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        if node.voters().contains(&id) {
            return Err(RemoveMemberError::Voters { id, reason: "the voters kept changing".to_string() });
        }
        Ok(())
    }
}
