//! Who decides: the openraft glue that replicates the cluster state.
//!
//! This crate owns
//! - [`host`]: one node's Raft instance and its life (open dormant, activate as a voter,
//!   reset to a fresh agent, shut down) and the leadership watch the layers above
//!   subscribe to;
//! - [`raft`]: openraft's type configuration, the durable log and snapshot store in
//!   redb (file-backed in production, in-memory in simulation), the state machine that
//!   applies committed entries to the [`fleetmesh_state::ClusterState`], and the network
//!   adapter over a [`raft::RaftTransport`] the node provides.
//!
//! The state itself (the model, the commands and their pure `apply`) is
//! `fleetmesh-state`, a crate without I/O. This crate deliberately decides nothing
//! about rollouts (the node's leader does, and commits its decisions here) and does no
//! network I/O of its own.
//!
//! ```text
//!  leader: Proposal{at, commands} ──raft.client_write──▶ log (redb, fsync) ──commit──▶
//!  every voter: StateMachineStore::apply ──▶ ClusterState::apply ──▶ StateHandle (read by the node)
//! ```

pub mod host;
pub mod raft;

pub use fleetmesh_transport::NodeId;
