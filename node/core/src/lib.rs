//! fleetmesh's decisions, as pure code.
//!
//! This crate owns the decision-making that must behave the same on a real host and in
//! the simulator, and nothing that does I/O:
//! - [`rollout`]: the rollout planner, a reconciler from (deployment, group, fleet view,
//!   time) to actions, with CodeDeploy's minimum-healthy-hosts arithmetic;
//! - [`swarm`]: the swarm's state machines: piece maps, have-sets, the download's piece
//!   and peer choices, upload slots and super-seeding;
//! - [`appspec`]: the `appspec.yml` model, parser and validation.
//!
//! It depends on `fleetmesh-state` for the replicated model (ids, deployments, the
//! manifest) and on nothing with tokio, files or sockets in it: the compiler keeps these
//! decisions pure, and the shells in `fleetmesh-node` feed them events and time and do
//! the I/O their actions ask for.
//!
//! ```text
//!  events, now ──▶ handle_* / plan(..) ──▶ actions ──▶ shell (fleetmesh-node) ──▶ Raft, QUIC, disk
//! ```

pub mod appspec;
pub mod rollout;
pub mod swarm;
