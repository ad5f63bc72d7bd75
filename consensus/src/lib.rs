//! Who decides: the replicated cluster state and the openraft glue that replicates it.
//!
//! This crate owns
//! - [`model`]: the data model every node agrees on (members, applications, deployment
//!   groups and configurations, revisions and their manifests, deployments with their
//!   targets and lifecycle events), shaped like CodeDeploy's;
//! - [`state`]: [`state::ClusterState`] and its pure, deterministic
//!   [`state::ClusterState::apply`] of [`state::Command`]s, the only way the state changes;
//! - [`raft`]: openraft's type configuration, the durable log and snapshot store in
//!   redb (file-backed in production, in-memory in simulation), the state machine, and
//!   the network adapter over a [`raft::RaftTransport`] the node provides.
//!
//! It deliberately does not decide anything about rollouts (the node's rollout engine
//! does, and commits its decisions here) and does no network I/O of its own.
//!
//! ```text
//!  leader: Proposal{at, commands} ──raft.client_write──▶ log (redb, fsync) ──commit──▶
//!  every voter: StateMachineStore::apply ──▶ ClusterState::apply ──▶ StateHandle (read by the node)
//! ```

pub mod model;
pub mod raft;
pub mod state;

pub use fleetmesh_transport::NodeId;
