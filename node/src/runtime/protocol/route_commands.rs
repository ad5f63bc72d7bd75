//! What travels between an agent and the routers of a `--command` route: the leader
//! tells the agent which routers must run the route's program on which version
//! ([`CommandRouteWait`], in `Response::Traffic`), and the agent asks each router how
//! its latest run went ([`RouteCommandOutcome`], `Request::RouteCommandOutcome`).
//!
//! ```text
//!  agent ─Traffic─▶ leader: commit, then routes' versions and routers ─▶ agent
//!  agent ─RouteCommandOutcome{route}─▶ each router ─▶ latest run: version, exit, output
//! ```

use fleetmesh_transport::NodeId;
use serde::{Deserialize, Serialize};

/// One `--command` route of a traffic event: its routers must run the route's program
/// on `version` or a later one, with exit status 0, before the event succeeds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRouteWait {
    /// The route.
    pub route_name: String,
    /// The route's program (its `command`), named in the event's diagnostics.
    #[serde(default)]
    pub command: String,
    /// The route's version once the event's change was applied (`Route::version`).
    pub version: u64,
    /// The routers to wait for: members whose tags match, less those the leader holds
    /// dead (in id order).
    pub routers: Vec<NodeId>,
    /// Routers the leader holds dead (no poll for its dead-after time): not waited for;
    /// they run the program on the latest version when they are back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routers_down: Vec<NodeId>,
}

/// How a router's latest run of a route's program went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCommandOutcome {
    /// The route version the program ran on (its stdin held that state).
    pub route_version: u64,
    /// Exit status 0.
    pub succeeded: bool,
    /// How it ended, in words: `exit status: 1`, or why it did not run or finish.
    pub status: String,
    /// The last [`ROUTE_COMMAND_TAIL_BYTES_MAX`] bytes of its stdout then its stderr.
    pub output_tail: String,
}

/// Bytes of a run's output a router keeps for the agent: as much as a lifecycle event's
/// log tail holds (`Diagnostics::log_tail`, 4 KiB).
pub const ROUTE_COMMAND_TAIL_BYTES_MAX: usize = 4096;
