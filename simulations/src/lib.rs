//! Many fleetmesh nodes, one process, one seed.
//!
//! This crate owns the deterministic simulations that run the node crate's real code
//! against simulated networks, clocks and faults, and checks invariants on the outcome.
//! A run is a function of its parameters and seed: it reads no wall clock, draws every
//! random number from a seeded `ChaCha8Rng` (tokio's own randomness included, through
//! `--cfg tokio_unstable` and `Builder::rng_seed`), iterates only ordered collections,
//! and hashes its ordered event log, so a failing seed replays exactly.
//!
//! Two engines:
//! - [`cluster`]: production [`fleetmesh_node::runtime::Node`]s — Raft on redb's
//!   in-memory backend, the leader's duties, the rollout engine, the host agent with
//!   simulated hooks — on [`net::SimNet`] and tokio's paused clock, one single-threaded
//!   runtime. Scenarios: `leader-partition`, and the deployment chaos scenarios.
//! - [`swarm`]: a discrete-event simulation (no tokio timers) that drives the real
//!   swarm state machines (`fleetmesh_core::swarm`) with phantom payloads over a
//!   bandwidth model, fast enough for a thousand nodes and a GiB.
//!
//! ```text
//!  scenario ──builds──▶ SimCluster ──nodes──▶ Node × N  (Transport = SimNet handle)
//!     │ faults (partition, crash, restart, clog)         │
//!     └──verdicts◀── invariants (one file each) ◀────────┘ trace ──▶ trace_hash
//! ```
//!
//! It deliberately does not own node logic (that lives in `fleetmesh-node`) nor real
//! I/O (no sockets, no files).

pub mod aws;
pub mod cli;
pub mod clock;
pub mod cluster;
mod error;
pub mod host;
pub mod invariants;
pub mod net;
pub mod observer;
pub mod planted;
pub mod scenarios;
pub mod swarm;
pub mod trace;
pub mod trigger_sink;

pub use error::{SeedRangeError, SimError};
