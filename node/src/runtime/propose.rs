//! Proposing commands through Raft, with the failures a caller can act on.

use fleetmesh_state::model::members::{Actor, ClusterInfo, MemberSpec};
use fleetmesh_state::{Command, FeatureLevel, Outcome, Proposal};
use openraft::error::{ClientWriteError, RaftError};

use super::protocol::LeaderHint;
use super::Node;

/// Why a proposal failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader proposes.
    #[error("this node is not the leader")]
    NotLeader {
        /// The leader, if known.
        leader: Option<LeaderHint>,
    },
    /// No quorum acknowledged the write in time.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// A command needs a feature level the cluster does not run at yet: some voter's
    /// release does not know it (see `fleetmesh_state::features`).
    #[error("this needs feature level {needed}, and the cluster runs at {cluster}: upgrade every voter first")]
    FeatureLevel {
        /// The level the commands need.
        needed: FeatureLevel,
        /// The level the cluster runs at.
        cluster: FeatureLevel,
    },
    /// Raft stopped.
    #[error("raft failed: {0}")]
    Fatal(String),
}

impl Node {
    /// Proposes commands through Raft (leader only) and returns one outcome per command.
    ///
    /// # Errors
    /// Not the leader, no quorum within the propose timeout, or Raft has stopped.
    pub async fn propose(&self, commands: Vec<Command>) -> Result<Vec<Outcome>, ProposeError> {
        self.propose_by(commands, None).await
    }

    /// Proposes commands made for the API caller `by`, who is recorded on what they
    /// create or change once the cluster runs at [`FeatureLevel::AUDIT`] (below it the
    /// entry would be one older voters cannot read, so it goes without the caller).
    ///
    /// # Errors
    /// As [`Node::propose`].
    pub async fn propose_by(&self, commands: Vec<Command>, by: Option<&Actor>) -> Result<Vec<Outcome>, ProposeError> {
        let mut proposal = Proposal::new(self.clock().now(), commands);
        let cluster = self.state().read(|state| state.feature_level);
        if let Some(by) = by.filter(|_| cluster >= FeatureLevel::AUDIT) {
            proposal = proposal.made_by(by.clone());
        }
        if proposal.level > cluster {
            return Err(ProposeError::FeatureLevel { needed: proposal.level, cluster });
        }
        self.propose_checked(proposal).await
    }

    /// Raises the cluster's feature level to `level`. Only for the leader's check that
    /// every voter runs a release that knows `level` (the one exception to the rule
    /// [`Node::propose`] enforces, since this command is how the level rises).
    ///
    /// # Errors
    /// As [`Node::propose`], but never [`ProposeError::FeatureLevel`].
    pub async fn propose_feature_level(&self, level: FeatureLevel) -> Result<Outcome, ProposeError> {
        let proposal = Proposal::new(self.clock().now(), vec![Command::SetFeatureLevel { level }]);
        let mut outcomes = self.propose_checked(proposal).await?;
        outcomes.pop().ok_or_else(|| ProposeError::Fatal("no outcome for the command".into()))
    }

    /// Proposes a new cluster's bootstrap entry. A new cluster starts at the base level
    /// and rises as soon as its voter reports its release, but its bootstrap entry may
    /// need a higher level (a sealed CA): the entry names that level, so a release that
    /// does not know it refuses the entry, and no member can be behind it yet.
    ///
    /// # Errors
    /// As [`Node::propose`], but never [`ProposeError::FeatureLevel`].
    pub async fn propose_bootstrap(&self, info: ClusterInfo, first: MemberSpec) -> Result<Outcome, ProposeError> {
        let proposal = Proposal::new(self.clock().now(), vec![Command::Bootstrap { info, first }]);
        let mut outcomes = self.propose_checked(proposal).await?;
        outcomes.pop().ok_or_else(|| ProposeError::Fatal("no outcome for the command".into()))
    }

    async fn propose_checked(&self, proposal: Proposal) -> Result<Vec<Outcome>, ProposeError> {
        if !self.is_leader() {
            return Err(ProposeError::NotLeader { leader: self.leader_hint() });
        }
        // Fail fast when the leader has not heard from a quorum for several election
        // timeouts: it is partitioned, and the write would only wait and time out.
        let quorum_ack_ms = self.raft_host().millis_since_quorum_ack();
        let stale_after_ms = 3 * self.settings().timing.raft.election_timeout_max.as_millis() as u64;
        if let Some(silent_ms) = quorum_ack_ms.filter(|ms| *ms > stale_after_ms) {
            return Err(ProposeError::NoQuorum(format!(
                "the leader has not heard from a majority of voters for {silent_ms} ms; writes are refused until a quorum is reachable"
            )));
        }
        let timeout = self.settings().timing.propose_timeout;
        match tokio::time::timeout(timeout, self.raft().client_write(proposal)).await {
            Err(_) => Err(ProposeError::NoQuorum(format!(
                "the write was not committed within {timeout:?}; a majority of voters is unreachable"
            ))),
            Ok(Ok(response)) => Ok(response.data.outcomes),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                let leader = forward
                    .leader_id
                    .zip(forward.leader_node)
                    .and_then(|(id, node)| node.addr.parse().ok().map(|listen| LeaderHint { id, listen }));
                Err(ProposeError::NotLeader { leader })
            }
            Ok(Err(error)) => Err(ProposeError::Fatal(error.to_string())),
        }
    }

    /// Proposes one command and returns its outcome.
    ///
    /// # Errors
    /// As [`Node::propose`].
    pub async fn propose_one(&self, command: Command) -> Result<Outcome, ProposeError> {
        self.propose_one_by(command, None).await
    }

    /// Proposes one command made for the API caller `by` (see [`Node::propose_by`]).
    ///
    /// # Errors
    /// As [`Node::propose`].
    pub async fn propose_one_by(&self, command: Command, by: Option<&Actor>) -> Result<Outcome, ProposeError> {
        let mut outcomes = self.propose_by(vec![command], by).await?;
        outcomes.pop().ok_or_else(|| ProposeError::Fatal("no outcome for the command".into()))
    }
}
