//! Joining: the side a new node runs once (the leader's side is `leader::admission`).
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
use std::time::Duration;

use fleetmesh_state::model::members::MemberSpec;
use fleetmesh_transport::pki::NodeKey;
use fleetmesh_transport::quic;

use super::identity::{JoinToken, KnownPeer, NodeIdentity, IDENTITY_FORMAT};
use super::protocol::{encode_request, JoinRequest, JoinResponse, Request, Response};

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

/// Refusals that say "not now" rather than "no": the answers the leader's admission and
/// [`super::Node::propose`] give while the cluster cannot admit anyone yet.
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
                // The leader's default lifetime; renewed to this node's own at start.
                cert_validity: None,
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
