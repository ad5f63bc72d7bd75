//! The CA seal key, on the leader: handed to a node before it becomes a voter, and, in a
//! cluster created before the CA was sealed, handed to every voter and then used to
//! seal the CA (`Command::SealCa`). A voter keeps it in `DIR/ca-seal-key`
//! ([`crate::runtime::ca_seal`]); nothing replicated carries it.
//!
//! The order is what keeps the CA usable: the key reaches a node before the node can
//! lead, and reaches every voter before the clear key leaves the state, so whichever
//! voter leads next can open the CA.

use std::time::Duration;

use fleetmesh_state::{Command, FeatureLevel, NodeId, Outcome};
use fleetmesh_transport::seal::CaSealKey;
use tracing::{info, warn};

use super::core::{LeaderCore, Work};
use super::run::{Done, ReportReply, Shell};
use super::Leader;
use crate::runtime::ca_seal::CaKeyError;
use crate::runtime::protocol::{Request, Response, SealKeyText};
use crate::runtime::{Node, ProposeError};

/// How long the leader waits after a failed attempt to seal before the next.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why a seal key did not reach a node, or the CA was not sealed.
#[derive(Debug, thiserror::Error)]
pub(super) enum HandOverError {
    /// The leader holds no seal key while the CA is sealed.
    #[error("this leader holds no CA seal key")]
    NoKey,
    /// The node to hand it to is not a member.
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// The node refused or could not be reached.
    #[error("node {node} did not take the CA seal key: {reason}")]
    Refused {
        /// The node.
        node: NodeId,
        /// Its answer or the transport's error.
        reason: String,
    },
    /// Reading, generating or using the key failed.
    #[error(transparent)]
    Key(#[from] CaKeyError),
    /// The seal did not commit.
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// The state refused the seal.
    #[error("the seal was refused: {0}")]
    Rejected(String),
}

impl Leader {
    /// Answers a voter that hands this node the CA seal key.
    pub(super) fn hold_seal_key(&self, peer: NodeId, key: &SealKeyText) -> Response {
        let node = &self.node;
        let from_voter = node.voters().contains(&peer)
            || node.read_directory(|directory| {
                directory.voters.contains(&peer) || directory.leader.is_some_and(|leader| leader.id == peer)
            });
        if !from_voter {
            warn!(node = %peer, "refused a CA seal key from a node that is not a voter");
            return Response::Error(format!("node {peer} is not a voter; only voters hand over the CA seal key"));
        }
        let result = CaSealKey::from_hex(&key.0).map_err(CaKeyError::from).and_then(|key| node.hold_seal_key(&key));
        match result {
            Ok(()) => {
                info!(from = %peer, "holding the CA seal key");
                Response::Ack
            }
            Err(error) => Response::Error(error.to_string()),
        }
    }
}

/// Hands this leader's seal key to node `to` (before it becomes a voter); nothing to do
/// when the CA is not sealed and this leader holds no key.
///
/// # Errors
/// As [`HandOverError`].
pub(super) async fn hand_seal_key(node: &Node, to: NodeId) -> Result<(), HandOverError> {
    let sealed = node.state().read(|state| state.cluster.as_ref().is_some_and(|info| info.ca.is_sealed()));
    let Some(key) = node.seal_keys().get()? else {
        return if sealed { Err(HandOverError::NoKey) } else { Ok(()) };
    };
    send_key(node, to, &key).await
}

async fn send_key(node: &Node, to: NodeId, key: &CaSealKey) -> Result<(), HandOverError> {
    if to == node.id() {
        return Ok(node.hold_seal_key(key)?);
    }
    let listen = node
        .state()
        .read(|state| state.members.get(&to).map(|member| member.listen))
        .ok_or(HandOverError::NotMember(to))?;
    let request = Request::HoldCaSealKey { key: SealKeyText(key.to_hex()) };
    let peer = fleetmesh_transport::Peer { id: to, addr: listen };
    match node.call(peer, request, Duration::from_secs(10)).await {
        Ok((Response::Ack, _)) => Ok(()),
        Ok((Response::Error(reason), _)) => Err(HandOverError::Refused { node: to, reason }),
        Ok((other, _)) => Err(HandOverError::Refused { node: to, reason: format!("unexpected answer {other:?}") }),
        Err(error) => Err(HandOverError::Refused { node: to, reason: error.to_string() }),
    }
}

impl Shell {
    /// Seals the CA of a cluster created before sealing existed, once the cluster runs
    /// at [`FeatureLevel::SEALED_CA`]: the key goes to every voter first.
    pub(super) fn seal_ca(&mut self, core: &mut LeaderCore<ReportReply>) {
        let node = self.node.clone();
        let unsealed = node.state().read(|state| {
            state.feature_level >= FeatureLevel::SEALED_CA
                && state.cluster.as_ref().is_some_and(|info| !info.ca.is_sealed())
        });
        // The simulator's CA is a placeholder with no key to protect.
        if !unsealed || node.settings().data_dir.is_none() || !core.begin(Work::SealCa) {
            return;
        }
        self.spawn(Work::SealCa, async move {
            match seal(&node).await {
                Ok(()) => info!("sealed the cluster CA key: the replicated state no longer holds it in clear"),
                Err(error) => {
                    warn!(%error, "could not seal the cluster CA key yet; will retry");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
            Done::Other
        });
    }
}

async fn seal(node: &Node) -> Result<(), HandOverError> {
    let key = match node.seal_keys().get()? {
        Some(key) => key,
        None => {
            let key = CaSealKey::generate().map_err(CaKeyError::from)?;
            node.seal_keys().put(&key)?;
            key
        }
    };
    for voter in node.voters() {
        send_key(node, voter, &key).await?;
    }
    let sealed = key.seal(&node.cluster_ca()?).map_err(CaKeyError::from)?;
    let sealed_key = sealed.sealed_key.unwrap_or_default();
    match node.propose(vec![Command::SealCa { sealed_key }]).await?.pop() {
        Some(Outcome::Rejected(error)) => Err(HandOverError::Rejected(error.message)),
        _ => Ok(()),
    }
}
