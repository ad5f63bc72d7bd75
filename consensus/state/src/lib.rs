//! The replicated cluster state, as pure data and pure functions.
//!
//! This crate owns what every node agrees on and nothing that does I/O:
//! - [`model`]: ids ([`NodeId`], deployment, revision and chunk ids), members,
//!   applications, deployment groups and configurations, revisions and their
//!   manifests, deployments with their targets and lifecycle events, shaped like
//!   CodeDeploy's;
//! - [`ClusterState`] and its deterministic [`ClusterState::apply`] of [`Command`]s,
//!   the only way the replicated state changes.
//!
//! It has no tokio, file or network dependency, so the rollout planner
//! (`fleetmesh-core`) and every other layer can use the model, and the compiler keeps
//! it pure. `fleetmesh-consensus` replicates it with openraft.
//!
//! ```text
//!  leader: Proposal{at, commands} ──Raft──▶ every voter: ClusterState::apply ──▶ Outcomes
//! ```

mod access_keys;
#[cfg(test)]
mod alarm_tests;
mod apply;
mod apply_error;
mod blue_green;
mod cluster;
pub mod command;
mod deployments;
mod ecs;
mod events;
pub mod features;
mod finished;
mod group_spec;
mod groups;
mod instances;
mod levels;
mod membership;
pub mod model;
#[cfg(test)]
mod platform_tests;
mod retention;
mod rollback;
mod routes;
mod shift;
#[cfg(test)]
mod tests;
mod touches;
mod traffic_split;
mod triggers;

pub use cluster::ClusterState;
pub use command::{
    ApplyError, ApplyErrorKind, BlueGreenStep, Command, DeploymentGroupSpec, DeploymentSpec, DeploymentWaitType,
    Finish, Outcome, Proposal, ProposalResponse, TargetReport,
};
pub use features::{FeatureLevel, Release};
pub use finished::{platform_of, Finished};
pub use model::node_id::NodeId;
pub use model::retention::{
    DeploymentRetention, DEPLOYMENTS_KEPT_DEFAULT, DEPLOYMENTS_KEPT_RANGE, DEPLOYMENT_DAYS_KEPT_DEFAULT,
    DEPLOYMENT_DAYS_KEPT_RANGE,
};
pub use touches::{PollTouches, Touches};
pub use traffic_split::{split_weights, TrafficSplit, SPLIT_WEIGHT_TOTAL};
pub use triggers::{TriggerKey, TriggerScan};
