//! How bytes move between fleetmesh nodes.
//!
//! This crate owns the network seam and nothing above it: it does not know what a
//! deployment or a Raft entry is. It provides
//!
//! - [`NodeId`], the identity every other crate uses for a member of the cluster;
//! - [`Message`] and the versioned wire [`frame`] format: a JSON header that a higher
//!   layer defines, plus an optional raw binary payload (chunk bytes travel there);
//! - the [`Transport`] trait ("send this request to node X and await the answer") and
//!   the [`Handler`] trait (answer requests from peers). Production binds them to QUIC
//!   ([`quic::QuicTransport`]); `fleetmesh-sim` binds them to an in-memory network on
//!   virtual time;
//! - the cluster PKI ([`pki`]): the cluster CA, node certificates and the CA
//!   fingerprint that a join token pins; and the rustls configurations ([`tls`]) that
//!   make every node-to-node connection mutually authenticated under that CA; and the
//!   seal ([`seal`]) that keeps the CA's private key encrypted in the replicated state.
//!
//! ```text
//!   caller ──request(peer, Message)──▶ Transport ══ QUIC/mTLS stream ══▶ Handler::handle(caller, Message)
//!          ◀──────── Result<Message> ─┘                                 └── Result<Message, String>
//! ```
//!
//! One request is one bidirectional QUIC stream, so a slow request never blocks another
//! (no head-of-line blocking between RPCs).

pub mod frame;
mod network;
pub mod pki;
pub mod quic;
pub mod revocation;
pub mod seal;
pub mod tls;

/// The identity of a member, defined with the replicated model in `fleetmesh-state`.
pub use fleetmesh_state::NodeId;
pub use frame::{Message, WIRE_VERSION};
pub use network::{BoxFuture, Caller, Handler, Peer, Refused, Transport, TransportError};
