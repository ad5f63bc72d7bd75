//! A simulated cluster: real [`Node`]s (Raft, leader duties, poll loops, the host agent
//! on a [`SimHost`](crate::host::SimHost) backend) on the simulated network and clock,
//! with the fault verbs scenarios use ([`faults`]) and the observer that feeds the
//! continuous invariants.
//!
//! One file per job: `builder` (the seeded builder), `boot` (forming the cluster,
//! booting, crashing and restarting nodes), `leaders` (who leads), `observe` (the
//! observer and the continuous invariants), `wait` (letting virtual time pass, waiting,
//! proposing), `logs` (reading the nodes' stored logs), [`faults`], and [`ClusterError`].
//!
//! Built with [`Sim::builder`]:
//!
//! ```no_run
//! # async fn example() -> Result<(), fleetmesh_sim::cluster::ClusterError> {
//! use std::time::Duration;
//! use fleetmesh_sim::cluster::Sim;
//!
//! let mut cluster = Sim::builder()
//!     .seed(7)
//!     .nodes(5)
//!     .latency(Duration::from_micros(200), Duration::from_millis(2))
//!     .loss(0.01)
//!     .start()
//!     .await?;
//! let leader = cluster.leader().expect("formed");
//! cluster.crash(leader, false).await;
//! cluster.sleep(Duration::from_secs(5)).await;
//! cluster.restart(leader).await?;
//! # Ok(()) }
//! ```

mod boot;
mod builder;
mod error;
pub mod faults;
mod leaders;
mod logs;
mod observe;
pub mod sparse_store;
mod wait;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use boot::sim_tags;
pub use builder::{Sim, SimBuilder, SimConfig};
pub use error::ClusterError;
use fleetmesh_node::leader::Leader;
use fleetmesh_node::runtime::clock::VirtualClock;
use fleetmesh_node::runtime::protocol::MemberAddress;
use fleetmesh_node::runtime::Node;
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_transport::NodeId;

use self::leaders::LeaderScan;
use self::observe::Progress;
use crate::clock::SkewedClock;
use crate::host::disk::SimDisk;
use crate::host::journal::SimJournal;
use crate::host::HostWorld;
use crate::net::SimNet;
use crate::observer::{AppliedQueue, Observer};
use crate::trace::Trace;

/// A fixed epoch for virtual wall time (2026-01-01T00:00:00Z), so timestamps in the
/// replicated state are the same in every run.
pub const SIM_EPOCH: UnixMillis = UnixMillis(1_767_225_600_000);

/// Virtual time between two samples of a wait (leaders, the observer, the condition).
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(10);

/// A running node: the node, its leader duties, and the tasks that run both.
struct SimNode {
    node: Arc<Node>,
    leader: Arc<Leader>,
    tasks: tokio::task::JoinSet<()>,
}

/// What survives a node's crash: its Raft store, its host's disk and journal, its
/// clock's skew, and how many times it booted.
struct Durable {
    raft: Arc<redb::Database>,
    disk: Arc<Mutex<SimDisk>>,
    journal: SimJournal,
    skew_ms: i64,
    incarnation: u64,
}

/// A running simulated cluster.
pub struct SimCluster {
    /// Its configuration.
    pub config: SimConfig,
    /// The network.
    pub net: Arc<SimNet>,
    /// The trace.
    pub trace: Arc<Trace>,
    /// What the simulated hosts share (revision contents, the hook fault plan).
    pub world: Arc<HostWorld>,
    /// The simulated AWS Lambda every leader calls.
    pub lambda: crate::aws::SimLambda,
    /// Where every leader's trigger duty delivers.
    pub triggers: crate::trigger_sink::SimTriggerSink,
    clock_base: VirtualClock,
    nodes: BTreeMap<NodeId, SimNode>,
    durable: BTreeMap<NodeId, Durable>,
    /// Nodes crashed and not restarted: [`Self::crashed`], which the observer reads
    /// every [`SAMPLE_PERIOD`] (computing it from `durable` and `nodes` each time was a
    /// fifth of the wall time at N = 1000).
    down: BTreeSet<NodeId>,
    host_disks: BTreeMap<NodeId, Arc<Mutex<SimDisk>>>,
    clocks: BTreeMap<NodeId, Arc<SkewedClock>>,
    observer: Mutex<Observer>,
    /// What every node's apply tap copied since the observer's last round.
    applied: AppliedQueue,
    leader_scan: Mutex<LeaderScan>,
    /// The trace's last events when a continuous invariant was first seen violated:
    /// what a failure report prints, rather than the end of the run.
    violation_recent: Mutex<Option<Vec<String>>>,
    progress: Mutex<Progress>,
    /// The member list every node boots with, one copy for all: a list per node made
    /// booting O(N²) in memory, about half of the peak at N = 10,000.
    member_seed: Arc<BTreeMap<NodeId, MemberAddress>>,
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SimCluster").field("nodes", &self.nodes.len()).finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SimCluster {
    /// The node with id `id`.
    ///
    /// # Panics
    /// If the node does not exist or is crashed (a scenario bug).
    pub fn node(&self, id: NodeId) -> Arc<Node> {
        self.nodes.get(&id).map(|sim| sim.node.clone()).unwrap_or_else(|| panic!("node {id} is not running"))
    }

    /// The leader duties of node `id` (its cluster view, its liveness verdicts).
    ///
    /// # Panics
    /// If the node does not exist or is crashed (a scenario bug).
    pub fn leader_of(&self, id: NodeId) -> Arc<Leader> {
        self.nodes.get(&id).map(|sim| sim.leader.clone()).unwrap_or_else(|| panic!("node {id} is not running"))
    }

    /// Ids of running nodes.
    pub fn running(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Ids of crashed nodes.
    pub fn crashed(&self) -> Vec<NodeId> {
        self.down.iter().copied().collect()
    }

    /// Ids of every node ever started.
    pub fn all(&self) -> Vec<NodeId> {
        self.durable.keys().copied().collect()
    }

    /// The simulated disks of every host.
    pub fn host_disks(&self) -> &BTreeMap<NodeId, Arc<Mutex<SimDisk>>> {
        &self.host_disks
    }

    /// Creates synthetic revision `version` (see
    /// [`Catalog::synthesize`](crate::host::catalog::Catalog::synthesize)) as if `seed`
    /// had pushed it: every chunk is on `seed`'s disk, and `seed` holds it complete.
    pub fn push_revision(
        &self,
        version: u64,
        bin_chunks: u64,
        seed: NodeId,
    ) -> fleetmesh_state::model::revision::Manifest {
        let manifest = self.world.synthesize(version, bin_chunks);
        if let Some(disk) = self.host_disks.get(&seed) {
            let mut disk = lock(disk);
            for chunk in manifest.unique_chunks() {
                disk.chunks.insert(chunk.hash(), chunk.hash());
            }
            disk.complete.insert(manifest.revision_id());
        }
        self.world.pushed(seed, manifest.revision_id());
        self.trace.note(&format!("node {seed} pushed revision {}", manifest.revision_id()));
        manifest
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for (_, mut sim) in std::mem::take(&mut self.nodes) {
            sim.tasks.abort_all();
            sim.node.shutdown().await;
        }
    }
}

/// Crash bookkeeping the fault verbs need.
impl SimCluster {
    fn durable_mut(&mut self, id: NodeId) -> Option<&mut Durable> {
        self.durable.get_mut(&id)
    }

    fn running_ids(&self) -> BTreeSet<NodeId> {
        self.nodes.keys().copied().collect()
    }
}
