//! What a fleetmesh member does, in layers by role.
//!
//! Every host runs the same node. Each layer imports only the layers below it; the
//! lower ones reach the higher ones only through request families they dispatch
//! ([`runtime::Service`]) and channels the higher ones subscribe to:
//!
//! ```text
//!  daemon    a production node: bootstrap, join or resume, then run every layer     (5)
//!  api       the HTTP API: typed operations, forwarded to the leader or a voter   (4)
//!  leader    duties on the Raft leader: liveness, polls, reports, rollout engine  (3)
//!  agent     the host agent: poll loop, lifecycle sequencer, journal, hooks       (3)
//!  router    traffic routes: TCP proxy or route command, following poll answers  (3)
//!  revision  chunk store, manifests, the swarm's fetch and serve                  (2)
//!  runtime   Raft host, address book, propose, transport, clock, dispatch         (1)
//! ```
//!
//! `leader`, `agent` and `router` are siblings and never import each other. Pure decisions (the
//! rollout planner, the swarm state machines, the appspec) are in `fleetmesh-core`; the
//! replicated model in `fleetmesh-state`. `docs/ARCHITECTURE.md` gives the tour.

pub mod agent;
pub mod api;
pub mod daemon;
pub mod leader;
pub mod revision;
pub mod router;
pub mod runtime;
