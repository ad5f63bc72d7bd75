//! What a node is started with: its identity, addresses, tags, directories and timing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use fleetmesh_consensus::raft::RaftTiming;
use fleetmesh_transport::NodeId;

/// How much longer than the hold an agent waits for the answer to a held poll before it
/// gives up on that leader and searches for another.
pub const POLL_ANSWER_SLACK: Duration = Duration::from_secs(3);

/// How long an agent's search may take to reach a new leader once its poll to the old
/// one has timed out: the first pause with its jitter, then two candidates that do not
/// answer (a dead or paused voter costs the search's per-candidate timeout and a
/// pause), with 2 s to spare for a loaded machine. A test in `agent::poll` checks the
/// search's constants against it.
pub const LEADER_SEARCH_ALLOWANCE: Duration = Duration::from_secs(5);

/// Timing knobs; the defaults suit a LAN.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Raft heartbeat and election timeouts.
    pub raft: RaftTiming,
    /// How long the leader holds an agent's poll when nothing changes.
    pub poll_hold: Duration,
    /// Silence after which a node is suspect.
    pub suspect_after: Duration,
    /// Silence after which a node is dead.
    pub dead_after: Duration,
    /// How long a voter may be dead before an agent replaces it.
    pub voter_grace: Duration,
    /// How long a write may wait for a quorum before it fails with "no quorum".
    pub propose_timeout: Duration,
    /// How long a piece of a revision being downloaded may have no live holder before
    /// the download (and the DownloadBundle waiting for it) fails.
    pub no_holder_timeout: Duration,
}

impl Timing {
    /// How long an agent may wait for a held poll's answer.
    pub fn poll_timeout(&self) -> Duration {
        self.poll_hold + POLL_ANSWER_SLACK
    }

    /// Silence after which a node that a new leader has never heard from is dead: the
    /// dead threshold plus the time an agent that was polling the old leader may take
    /// to find the new one (its poll timing out, then its search). Counting such a node
    /// dead at `dead_after` failed pending targets of live hosts at every failover where
    /// an agent's search met a paused voter.
    pub fn first_contact_after(&self) -> Duration {
        self.dead_after + self.poll_timeout() + LEADER_SEARCH_ALLOWANCE
    }
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            raft: RaftTiming::default(),
            poll_hold: Duration::from_millis(1000),
            suspect_after: Duration::from_millis(2500),
            dead_after: Duration::from_millis(5000),
            voter_grace: Duration::from_secs(30),
            propose_timeout: Duration::from_secs(3),
            no_holder_timeout: Duration::from_secs(60),
        }
    }
}

/// What a node is started with.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// This node.
    pub id: NodeId,
    /// QUIC address.
    pub listen: SocketAddr,
    /// HTTP API address.
    pub api: SocketAddr,
    /// Where other hosts reach this node's services (`--advertise-address`, else the
    /// listen IP): routers listen on it.
    pub advertise: std::net::IpAddr,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// `--instance-name`: the on-premises instance it takes, if any.
    pub instance_name: Option<String>,
    /// Data directory (`None` in simulation).
    pub data_dir: Option<PathBuf>,
    /// Where appspec destinations resolve.
    pub install_root: PathBuf,
    /// Timing.
    pub timing: Timing,
    /// Seed for this node's RNG (ids it generates); random in production.
    pub rng_seed: u64,
    /// Largest revision (bytes of files) this node accepts in a push.
    pub max_revision_bytes: u64,
    /// The rollout planner's settings (defaults in production).
    pub planner: fleetmesh_core::rollout::PlannerSettings,
}
