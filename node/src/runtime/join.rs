//! Joining: the client side a new node runs once, and the leader side that admits it.
//!
//! The joiner pins the cluster CA from its token, so it never talks to an impostor;
//! it sends the token's secret and its own public key; the leader checks the secret
//! against the replicated token hashes, commits the new member (assigning its id),
//! signs its certificate with the cluster CA and returns it. Any member can take the
//! request: non-leaders forward it to the leader.
//!
//! A joiner often starts together with the cluster (one boot script for every host), so
//! it retries, for a bounded time, what goes away on its own: a seed that does not answer
//! yet, a cluster still bootstrapping or electing a leader, a leader without a quorum.
//! A bad or expired token and a seed of another cluster fail at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_state::model::members::MemberSpec;
use fleetmesh_state::{Command, Outcome};
use fleetmesh_transport::pki::{CaAuthority, NodeKey};
use fleetmesh_transport::quic;
use tracing::info;

use super::liveness::Health;
use super::Node;
use crate::identity::{hashes_equal, secret_hash, JoinToken, KnownPeer, NodeIdentity, IDENTITY_FORMAT};
use crate::protocol::{self, encode_request, JoinRequest, JoinResponse, Request, Response};

/// Why joining failed; each variant is one clear line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The seed could not be reached.
    #[error("cannot reach the seed {seed}: {reason}")]
    Unreachable {
        /// Seed address.
        seed: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// The seed's CA is not the one the token pins.
    #[error("the seed {seed} belongs to another cluster: its CA does not match the join token's fingerprint")]
    WrongCluster {
        /// Seed address.
        seed: SocketAddr,
    },
    /// The cluster refused.
    #[error("join refused by the cluster: {0}")]
    Refused(String),
    /// The answer was malformed.
    #[error("the seed sent an invalid answer: {0}")]
    Protocol(String),
}

/// How long a joiner retries transient refusals and an unreachable seed, by default.
pub const JOIN_RETRY_WINDOW: Duration = Duration::from_secs(60);

/// Longest single join attempt (handshake, the leader's commit of the new member).
const JOIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between join attempts.
const JOIN_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Refusals that say "not now" rather than "no": the answers [`admit`] and
/// [`Node::propose`] give while the cluster cannot admit anyone yet.
const TRANSIENT_REFUSALS: [&str; 5] =
    ["still bootstrapping", "no leader is elected", "no quorum", "not the leader", "cannot reach the leader"];

impl JoinError {
    /// True when retrying later may succeed: the seed is unreachable, or the cluster is
    /// bootstrapping, electing a leader, or without a quorum.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Refused(reason) => TRANSIENT_REFUSALS.iter().any(|marker| reason.contains(marker)),
            Self::WrongCluster { .. } | Self::Protocol(_) => false,
        }
    }
}

/// Joins through `seed` like [`join_cluster`], retrying transient failures
/// ([`JoinError::is_transient`]) for up to `window`, one line on stderr per retry.
///
/// # Errors
/// The first permanent failure, or the last transient one once `window` has passed.
pub async fn join_with_retry(
    seed: SocketAddr,
    token: &JoinToken,
    spec: MemberSpec,
    window: Duration,
) -> Result<NodeIdentity, JoinError> {
    let deadline = tokio::time::Instant::now() + window;
    // Bounded by the deadline: every pass waits at least JOIN_RETRY_DELAY.
    for attempt in 1u32.. {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let timeout = JOIN_ATTEMPT_TIMEOUT.min(remaining).max(JOIN_RETRY_DELAY);
        match join_cluster(seed, token, spec.clone(), timeout).await {
            Ok(identity) => return Ok(identity),
            Err(error) if error.is_transient() && tokio::time::Instant::now() + JOIN_RETRY_DELAY < deadline => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now()).as_secs();
                eprintln!(
                    "join attempt {attempt} through {seed} did not succeed yet ({error}); retrying for up to {left} s"
                );
                tokio::time::sleep(JOIN_RETRY_DELAY).await;
            }
            Err(error) => return Err(error),
        }
    }
    unreachable!("the attempt counter does not run out before the deadline")
}

/// Joins the cluster through `seed`, returning the new node's identity.
///
/// # Errors
/// Unreachable seed, wrong cluster, refused token.
pub async fn join_cluster(
    seed: SocketAddr,
    token: &JoinToken,
    spec: MemberSpec,
    timeout: Duration,
) -> Result<NodeIdentity, JoinError> {
    let key = NodeKey::generate().map_err(|error| JoinError::Protocol(error.to_string()))?;
    let request = Request::Join(JoinRequest {
        secret: token.secret.clone(),
        public_key: hex::encode(&key.public_key),
        spec: spec.clone(),
    });
    let answer = quic::join_request(seed, token.ca.clone(), encode_request(&request, bytes::Bytes::new()), timeout)
        .await
        .map_err(|error| {
            let reason = error.to_string();
            if reason.contains("does not match the join token") {
                JoinError::WrongCluster { seed }
            } else {
                JoinError::Unreachable { seed, reason }
            }
        })?;
    let response: Response =
        serde_json::from_slice(&answer.header).map_err(|error| JoinError::Protocol(error.to_string()))?;
    match response {
        Response::Join(JoinResponse::Admitted { node_id, cluster_id, ca_pem, cert_pem, admin_token_hash, members }) => {
            Ok(NodeIdentity {
                format: IDENTITY_FORMAT,
                node_id,
                cluster_id,
                ca_fingerprint: token.ca.clone(),
                ca_pem,
                cert_pem,
                key_pem: key.key_pem,
                admin_token_hash,
                tags: spec.tags,
                peers: members.iter().map(|member| KnownPeer { id: member.id, listen: member.listen }).collect(),
            })
        }
        Response::Join(JoinResponse::Refused(reason)) => Err(JoinError::Refused(reason)),
        Response::Error(reason) => Err(JoinError::Refused(reason)),
        other => Err(JoinError::Protocol(format!("unexpected answer {other:?}"))),
    }
}

/// Admits a joiner (on the leader) or forwards the request to the leader.
pub(super) async fn admit(node: &Arc<Node>, request: JoinRequest) -> JoinResponse {
    if !node.is_leader() {
        let Some(leader) = node.leader_hint().filter(|hint| hint.id != node.id()) else {
            return JoinResponse::Refused("no leader is elected right now; retry in a few seconds".into());
        };
        return match protocol::call(
            node.transport().as_ref(),
            leader.peer(),
            &Request::Join(request),
            Duration::from_secs(10),
        )
        .await
        {
            Ok((Response::Join(answer), _)) => answer,
            Ok((other, _)) => JoinResponse::Refused(format!("the leader answered {other:?}")),
            Err(error) => JoinResponse::Refused(format!("cannot reach the leader: {error}")),
        };
    }
    match admit_on_leader(node, request).await {
        Ok(answer) => answer,
        Err(reason) => JoinResponse::Refused(reason),
    }
}

async fn admit_on_leader(node: &Arc<Node>, request: JoinRequest) -> Result<JoinResponse, String> {
    let now = node.clock().now();
    let (info, same_address) = node.state().read(|state| {
        let same = state.members.values().find(|member| member.listen == request.spec.listen).map(|member| member.id);
        (state.cluster.clone(), same)
    });
    let info = info.ok_or("the cluster is still bootstrapping; retry in a few seconds")?;
    let offered = secret_hash(&request.secret);
    let record = info
        .join_tokens
        .iter()
        .find(|record| hashes_equal(&record.secret_hash, &offered))
        .ok_or("the join token is not valid for this cluster")?;
    if let Some(expires_at) = record.expires_at {
        if now > expires_at {
            return Err(format!(
                "the join token expired {} s ago; create a new one with `fleetmesh cluster create-join-token`",
                now.millis_since(expires_at) / 1000
            ));
        }
    }
    let public_key = hex::decode(&request.public_key).map_err(|_| "the public key is not hex".to_string())?;
    let mut commands = Vec::new();
    if let Some(previous) = same_address {
        // A host that lost its data directory rejoins on the same address: replace the
        // dead record instead of leaving a ghost. A live member at that address is a
        // configuration mistake.
        if node.leader_health(previous) != Health::Dead {
            return Err(format!(
                "node {previous} is alive at {}; give this node another --listen address",
                request.spec.listen
            ));
        }
        commands.push(Command::RemoveMember { id: previous });
    }
    commands.push(Command::AddMember { spec: request.spec.clone() });
    let outcomes = node.propose(commands).await.map_err(|error| error.to_string())?;
    let node_id = match outcomes.last() {
        Some(Outcome::MemberAdded(id)) => *id,
        other => return Err(format!("the member could not be added: {other:?}")),
    };
    let cert_pem = info.ca.sign_node(node_id, &public_key).map_err(|error| error.to_string())?;
    info!(node = %node_id, listen = %request.spec.listen, "admitted a new node");
    let members = node.member_addresses();
    Ok(JoinResponse::Admitted {
        node_id,
        cluster_id: info.ca.cluster_id.clone(),
        ca_pem: info.ca.cert_pem.clone(),
        cert_pem,
        admin_token_hash: info.admin_token_hash.clone(),
        members,
    })
}
