//! Many fleetmesh nodes, one process, one seed.
//!
//! This crate owns the deterministic simulations that run the node crate's real
//! decision code (sans-I/O state machines) against simulated networks, clocks and
//! faults, and checks invariants on the outcome. A run is a pure function of its
//! parameters and seed: it reads no wall clock, draws every random number from a seeded
//! `ChaCha8Rng`, iterates only ordered collections, and hashes its ordered event log,
//! so a failing seed replays exactly and two runs can be compared bit for bit.
//!
//! It deliberately does not own the node logic (that lives in `fleetmesh-node`) nor
//! real I/O (no sockets, no files, no tokio timers in the scenarios here).
//!
//! Scenarios, one module each:
//! - [`swarm`]: one seed distributes a revision to N nodes over simulated uplinks and
//!   downlinks; reports completion times against the bandwidth lower bound, the seed's
//!   upload, and the trace hash (`fleetmesh sim --scenario swarm`).
//!
//! ```text
//!  Params{seed, nodes, faults} ──▶ scenario world ──events on virtual time──▶ node state machines
//!                                                  ◀──requests / actions────┘
//!                                 ──▶ Report{figures, trace_hash, invariants}
//! ```

pub mod swarm;
