//! Many fleetmesh nodes, one process, one seed.
//!
//! The simulator runs the production node code — Raft with its redb stores (on
//! redb's in-memory backend), the leader's duties, the poll loops — on a simulated
//! network ([`net::SimNet`]) and tokio's paused clock, in one single-threaded runtime.
//! A seed decides every latency, loss, fault and timer, and the trace of every
//! delivery is hashed, so a failing seed replays exactly. Scenarios run a safety phase
//! with faults, then a liveness phase without, and report invariant verdicts.
//!
//! ```text
//!  scenario ──builds──▶ SimCluster ──nodes──▶ fleetmesh_node::runtime::Node × N
//!     │ faults (partition, crash, restart, clog)      │ Transport = SimNet handle
//!     └──verdicts◀── invariants (one file each) ◀─────┘ trace ──▶ trace_hash
//! ```

pub mod cli;
pub mod cluster;
pub mod invariants;
pub mod net;
pub mod scenarios;
pub mod trace;
