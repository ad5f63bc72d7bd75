//! openraft glue: the type configuration, timing, the runtime with a seedable RNG, the
//! durable stores and the network adapter.

// openraft's own error types (StorageError, ConfigError) are large; the functions here
// return them unchanged because openraft's traits demand them.
#![allow(clippy::result_large_err)]

mod log_store;
mod network;
mod prevote;
mod recover;
mod runtime;
mod state_machine;

use std::io::Cursor;
use std::time::Duration;

use fleetmesh_transport::NodeId;
pub use log_store::LogStore;
pub use network::{serve, NetworkFactory, RaftRequest, RaftResponse, RaftTransport};
use openraft::BasicNode;
pub use prevote::campaign;
pub use recover::{force_new_cluster, RecoverError, Recovered, SavedState, SAVED_STATE_FORMAT};
pub use runtime::{seed_thread_rng, FleetRuntime};
pub use state_machine::{ApplyTap, StateHandle, StateMachineStore, Versions};

use fleetmesh_state::{Proposal, ProposalResponse};

openraft::declare_raft_types!(
    /// fleetmesh's Raft types: proposals of commands in, one response per proposal out.
    pub TypeConfig:
        D = Proposal,
        R = ProposalResponse,
        NodeId = NodeId,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = FleetRuntime,
);

/// A Raft instance of fleetmesh.
pub type Raft = openraft::Raft<TypeConfig>;

/// Raft timing, tuned for a LAN: leader failover in well under a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftTiming {
    /// Leader heartbeat period.
    pub heartbeat: Duration,
    /// Election timeout range; a follower that hears no leader for a random time in this
    /// range starts an election.
    pub election_timeout_min: Duration,
    /// Upper end of the range.
    pub election_timeout_max: Duration,
}

impl Default for RaftTiming {
    fn default() -> Self {
        // A follower that knew a leader campaigns once the leader lease (= the election
        // timeout maximum) plus a random part of the window (0 to max − min) have passed
        // without a heartbeat, checked every half heartbeat, and only with a majority of
        // pre-vote grants (`prevote.rs`); a voter grants only once its own lease has
        // expired. With 50 ms heartbeats and a 150–250 ms window a follower campaigns
        // after 250–350 ms of silence (five or more missed heartbeats): failover ≈ 0.3 s.
        // Before, 100 ms heartbeats, a 200–400 ms window and the lease plus a whole
        // random timeout: 600–800 ms of silence, failover median 0.63–0.67 s. Numbers and
        // the spurious-election check on a loaded machine: docs/benchmarks.md.
        Self {
            heartbeat: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(150),
            election_timeout_max: Duration::from_millis(250),
        }
    }
}

impl RaftTiming {
    /// The timing of a node that is not a voter. openraft 0.9 runs a timer task per
    /// instance at 1.5 heartbeats, whether or not ticks are enabled, and a learner has
    /// no use for it; a fleet of thousands of agents spent a fifth of a simulation's CPU
    /// waking it. With this timing it fires once an hour. An agent must not keep it once
    /// it is a voter: it would neither campaign nor, as leader, send heartbeats (see
    /// `Node::activate_raft`, which restarts the instance with the voter timing).
    pub fn dormant() -> Self {
        Self {
            heartbeat: Duration::from_secs(3600),
            election_timeout_min: Duration::from_secs(7200),
            election_timeout_max: Duration::from_secs(7201),
        }
    }
}

/// Log entries kept after a snapshot, so a briefly lagging voter catches up from the
/// log rather than by a full snapshot.
pub const LOGS_KEPT_AFTER_SNAPSHOT: u64 = 500;

/// Entries between snapshots.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 2000;

/// Builds the openraft configuration.
///
/// # Errors
/// The timing is inconsistent (heartbeat must be below the election timeout).
pub fn raft_config(timing: RaftTiming) -> Result<openraft::Config, openraft::ConfigError> {
    openraft::Config {
        cluster_name: "fleetmesh".to_string(),
        heartbeat_interval: timing.heartbeat.as_millis() as u64,
        election_timeout_min: timing.election_timeout_min.as_millis() as u64,
        election_timeout_max: timing.election_timeout_max.as_millis() as u64,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        max_in_snapshot_log_to_keep: LOGS_KEPT_AFTER_SNAPSHOT,
        // `prevote::campaign` runs the election timer: openraft's own would raise the
        // term of a voter that cannot hear the leader, and that term deposes the leader.
        enable_elect: false,
        ..Default::default()
    }
    .validate()
}
