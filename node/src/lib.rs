//! What a fleetmesh member does.
//!
//! Every host runs the same node: it joins the cluster, keeps its membership and
//! health, stores and spreads revision chunks, runs CodeDeploy lifecycle hooks for
//! its deployments (the host agent), and, on the Raft leader, drives rollouts (the
//! rollout engine). It also serves the HTTP API and holds the CLI.
//!
//! Decision-making modules are sans-I/O (the rollout planner, the swarm piece picker,
//! the appspec interpreter); I/O sits at the edges so the simulator runs the same code.

// Modules are added here as they land (one line each, alphabetical).
pub mod agent;
pub mod agent_runtime;
pub mod api;
pub mod assignments;
pub mod cli;
pub mod clock;
pub mod identity;
pub mod protocol;
pub mod revision;
pub mod revision_service;
pub mod rollout_engine;
pub mod runtime;
pub mod swarm_service;
