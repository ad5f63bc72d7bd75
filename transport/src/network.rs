//! The transport seam: what the rest of fleetmesh needs from a network.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use crate::{Message, NodeId};

/// A boxed, sendable future: the return type of the object-safe traits below.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where to reach a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The node's identity; the QUIC transport checks it against the peer certificate.
    pub id: NodeId,
    /// The node's `--listen` address.
    pub addr: SocketAddr,
}

/// Who sent a request, as established by the transport (the peer certificate for QUIC,
/// the simulated link in the simulator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A cluster member, authenticated by a certificate of the cluster CA.
    Node(NodeId),
    /// A node that is joining: it pinned our CA but has no certificate yet. Only join
    /// requests are answered for it.
    Joiner,
}

/// Why a request did not get an answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TransportError {
    /// No connection could be made (peer down, refused, handshake failed).
    #[error("node {peer} at {addr} is unreachable: {reason}")]
    Unreachable {
        /// Target node.
        peer: NodeId,
        /// Target address.
        addr: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// The request was sent but no answer came within the timeout.
    #[error("node {peer} did not answer within {timeout:?}")]
    Timeout {
        /// Target node.
        peer: NodeId,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The connection broke while the request was in flight.
    #[error("connection to node {peer} broke: {reason}")]
    Broken {
        /// Target node.
        peer: NodeId,
        /// What failed.
        reason: String,
    },
    /// The peer's transport refused the request (version mismatch, handler error).
    #[error("node {peer} refused the request: {reason}")]
    Refused {
        /// Target node.
        peer: NodeId,
        /// The reason it sent back.
        reason: String,
    },
}

impl TransportError {
    /// True when the peer could not be reached at all (as opposed to a request that
    /// reached it and failed): callers use this to back off rather than retry.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

/// Sends requests to other nodes.
///
/// Implementations: [`crate::quic::QuicTransport`] (production) and the simulator's
/// in-memory network. A request either gets the handler's answer or an error; there
/// is no retry inside the transport: the caller decides.
pub trait Transport: Send + Sync + 'static {
    /// Sends `message` to `peer` and waits at most `timeout` for its answer.
    fn request(
        &self,
        peer: Peer,
        message: Message,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Message, TransportError>>;
}

/// A handler's refusal to answer a request; its reason travels back to the caller as
/// [`TransportError::Refused`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{reason}")]
pub struct Refused {
    /// One line for the caller: why, and what to do when that helps.
    pub reason: String,
}

impl Refused {
    /// A refusal for `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

/// Answers requests that arrive from peers.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request. An `Err` travels back to the caller as
    /// [`TransportError::Refused`].
    fn handle(&self, caller: Caller, message: Message) -> BoxFuture<'static, Result<Message, Refused>>;
}
