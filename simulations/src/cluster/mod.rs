//! A simulated cluster: real [`Node`]s (Raft, leader duties, poll loops, the host agent
//! on a [`SimHost`] backend) on the simulated network and clock, with the fault verbs
//! scenarios use ([`faults`]) and the observer that feeds the continuous invariants.
//!
//! Built with [`Sim::builder`]:
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
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

mod builder;
pub mod faults;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use builder::{Sim, SimBuilder, SimConfig};
use fleetmesh_consensus::raft::{seed_thread_rng, LogStore};
use fleetmesh_node::agent::Agent;
use fleetmesh_node::leader::liveness::Health;
use fleetmesh_node::leader::Leader;
use fleetmesh_node::runtime::clock::VirtualClock;
use fleetmesh_node::runtime::protocol::MemberAddress;
use fleetmesh_node::runtime::{Node, NodeHandler, NodeSettings, ProposeError};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::members::{ClusterInfo, JoinTokenRecord, MemberSpec};
use fleetmesh_state::{Command, Outcome};
use fleetmesh_transport::pki::ClusterCa;
use fleetmesh_transport::NodeId;
use openraft::{BasicNode, Entry, RaftLogReader, ServerState};
use redb::backends::InMemoryBackend;

use crate::clock::SkewedClock;
use crate::host::disk::SimDisk;
use crate::host::journal::SimJournal;
use crate::host::{HostWorld, SimHost};
use crate::invariants::Monitor;
use crate::net::SimNet;
use crate::observer::{AppliedQueue, Observer};
use crate::trace::Trace;

/// A fixed epoch for virtual wall time (2026-01-01T00:00:00Z), so timestamps in the
/// replicated state are the same in every run.
pub const SIM_EPOCH: UnixMillis = UnixMillis(1_767_225_600_000);

/// Virtual time between two samples of a wait (leaders, the observer, the condition).
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(10);

/// How often [`SimCluster::leaders`] asks every node instead of the likely leaders:
/// every 10 virtual seconds. An agent cannot lead without first being listed as a voter
/// (its Raft is dormant, see `RaftTiming::dormant`), and the likely leaders include every
/// voter and learner; asking a thousand nodes every second cost 5 % of a run at N = 1000.
const FULL_SCAN_EVERY: u64 = 1000;

/// Members added per proposal while the cluster forms.
const MEMBERS_PER_PROPOSAL: usize = 100;

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
    clock_base: VirtualClock,
    nodes: BTreeMap<NodeId, SimNode>,
    durable: BTreeMap<NodeId, Durable>,
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

/// Progress lines on stderr for long runs, when `FLEETMESH_SIM_PROGRESS` is set: virtual
/// and wall time once per [`PROGRESS_EVERY`] of virtual time, so a run stopped by a wall
/// time limit still says how fast it went. The wall clock is read only to be printed;
/// nothing in the run depends on it.
#[derive(Debug)]
struct Progress {
    enabled: bool,
    next: tokio::time::Instant,
    virtual_start: tokio::time::Instant,
    wall_start: std::time::Instant,
}

/// Virtual time between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

impl Progress {
    fn new() -> Self {
        let now = tokio::time::Instant::now();
        Self {
            enabled: std::env::var_os("FLEETMESH_SIM_PROGRESS").is_some(),
            next: now + PROGRESS_EVERY,
            virtual_start: now,
            wall_start: std::time::Instant::now(),
        }
    }

    fn tick(&mut self, now: tokio::time::Instant, events: u64) {
        if !self.enabled || now < self.next {
            return;
        }
        self.next = now + PROGRESS_EVERY;
        let virtual_secs = (now - self.virtual_start).as_secs_f64();
        let wall_secs = self.wall_start.elapsed().as_secs_f64();
        eprintln!(
            "sim progress: {virtual_secs:.0} s virtual, {wall_secs:.1} s wall ({:.1}x), {events} events",
            virtual_secs / wall_secs.max(1e-9)
        );
    }
}

/// Which nodes [`SimCluster::leaders`] asks.
#[derive(Debug, Default)]
struct LeaderScan {
    /// Members of the newest leader's Raft membership, voters and learners.
    candidates: BTreeSet<NodeId>,
    /// Calls so far.
    calls: u64,
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SimCluster").field("nodes", &self.nodes.len()).finish_non_exhaustive()
    }
}

fn address(id: NodeId, port: u16) -> SocketAddr {
    let n = id.0 as u32;
    SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], port))
}

/// Tags of simulated node `id`: every node is a web host; odd nodes are also "odd".
pub fn sim_tags(id: NodeId) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([("role".to_string(), "web".to_string())]);
    if id.0 % 2 == 1 {
        tags.insert("parity".into(), "odd".into());
    }
    tags
}

fn spec(id: NodeId) -> MemberSpec {
    MemberSpec { listen: address(id, 7400), api: address(id, 7480), tags: sim_tags(id) }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SimCluster {
    /// Builds and starts a cluster: node 1 bootstraps, the others are added as members
    /// and promoted by the real autopilot. Returns once voters and liveness settle.
    ///
    /// # Errors
    /// The cluster did not form within the virtual time allowed.
    pub async fn start(config: SimConfig) -> anyhow::Result<Self> {
        seed_thread_rng(config.seed);
        let trace = Arc::new(Trace::new());
        let net = SimNet::new(config.seed, config.link, trace.clone());
        let world = HostWorld::new(config.seed, net.clone(), trace.clone(), config.host);
        let monitor = Monitor::new(Duration::from_millis(config.planner.deployment_timeout_ms));
        let mut cluster = Self {
            net,
            trace,
            world,
            clock_base: VirtualClock::new(SIM_EPOCH),
            nodes: BTreeMap::new(),
            durable: BTreeMap::new(),
            host_disks: BTreeMap::new(),
            clocks: BTreeMap::new(),
            observer: Mutex::new(Observer::new(monitor)),
            applied: AppliedQueue::default(),
            leader_scan: Mutex::new(LeaderScan::default()),
            violation_recent: Mutex::new(None),
            progress: Mutex::new(Progress::new()),
            member_seed: Arc::new(
                (1..=config.nodes as u64)
                    .map(|id| {
                        let MemberSpec { listen, api, .. } = spec(NodeId(id));
                        (NodeId(id), MemberAddress { id: NodeId(id), listen, api })
                    })
                    .collect(),
            ),
            config,
        };
        let first = NodeId(1);
        cluster.boot(first).await?;
        let node = cluster.node(first);
        node.initialize(BTreeMap::from([(first, BasicNode { addr: spec(first).listen.to_string() })])).await?;
        let info = ClusterInfo {
            // The simulated transport needs no certificates; fixed texts keep runs identical.
            ca: ClusterCa {
                cluster_id: format!("sim-{}", cluster.config.seed),
                cert_pem: "sim".into(),
                key_pem: "sim".into(),
            },
            admin_token_hash: "sim".into(),
            join_tokens: vec![JoinTokenRecord {
                secret_hash: "sim".into(),
                expires_at: None,
                description: "sim".into(),
            }],
            voters_desired: cluster.config.voters,
            created_at: SIM_EPOCH,
        };
        cluster.leader_of(first).set_pending_bootstrap(info, spec(first));
        cluster
            .wait_for("bootstrap", Duration::from_secs(30), |cluster| {
                cluster.node(first).state().read(|state| state.cluster.is_some())
            })
            .await?;
        // Every member first, then every boot: each agent then learns the member list
        // once, instead of once per batch of joiners.
        let ids: Vec<NodeId> = (2..=cluster.config.nodes as u64).map(NodeId).collect();
        for batch in ids.chunks(MEMBERS_PER_PROPOSAL) {
            let commands = batch.iter().map(|id| Command::AddMember { spec: spec(*id) }).collect();
            let outcomes = cluster.node(first).propose(commands).await?;
            for (id, outcome) in batch.iter().zip(outcomes) {
                anyhow::ensure!(outcome == Outcome::MemberAdded(*id), "node {id} was added as {outcome:?}");
            }
        }
        for id in ids {
            cluster.boot(id).await?;
        }
        let voters_wanted = (cluster.config.voters as usize).min(cluster.config.nodes);
        cluster
            .wait_for("voters and liveness", Duration::from_secs(120), move |cluster| {
                cluster.leader().is_some_and(|leader| {
                    let node = cluster.node(leader);
                    let duties = cluster.leader_of(leader);
                    node.voters().len() == voters_wanted
                        && duties.cluster_view().nodes.iter().all(|view| view.health == Health::Alive)
                })
            })
            .await?;
        cluster.trace.note("cluster formed");
        Ok(cluster)
    }

    async fn boot(&mut self, id: NodeId) -> anyhow::Result<()> {
        if !self.durable.contains_key(&id) {
            let raft = Arc::new(redb::Database::builder().create_with_backend(InMemoryBackend::new())?);
            let disk = Arc::new(Mutex::new(SimDisk::default()));
            self.host_disks.insert(id, disk.clone());
            self.durable.insert(id, Durable { raft, disk, journal: SimJournal::default(), skew_ms: 0, incarnation: 0 });
        }
        let durable = self.durable.get_mut(&id).expect("inserted above");
        durable.incarnation += 1;
        let (raft_disk, host_disk, journal) = (durable.raft.clone(), durable.disk.clone(), durable.journal.open());
        let clock = SkewedClock::new(self.clock_base, durable.skew_ms);
        let spec = spec(id);
        let settings = NodeSettings {
            id,
            listen: spec.listen,
            api: spec.api,
            tags: spec.tags,
            data_dir: None,
            install_root: "/sim".into(),
            timing: self.config.timing,
            // Per incarnation: a restarted node must not draw the ids it drew before.
            rng_seed: self
                .config
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(id.0)
                .wrapping_add((durable.incarnation - 1) << 40),
            max_revision_bytes: u64::MAX,
            planner: self.config.planner,
        };
        let handler = NodeHandler::new();
        let node = Node::new(settings, raft_disk, self.net.transport(id), clock.clone()).await?;
        let applied = self.applied.clone();
        // A fresh handle per boot, so the slot is free; entries a restarted node
        // re-applies from its log before this line were applied (and seen) before.
        let _ = node.state().set_apply_tap(Box::new(move |entry| lock(&applied).push((id, entry.clone()))));
        node.seed_directory(self.member_seed.clone(), "sim".into());
        let mut tasks = tokio::task::JoinSet::new();
        node.spawn(&mut tasks);
        let leader = Leader::start(&node, &mut tasks);
        let host = SimHost::new(self.world.clone(), id, host_disk, journal);
        Agent::start(&node, Arc::new(host), &mut tasks);
        handler.bind(node.clone());
        self.net.attach(id, handler);
        self.nodes.insert(id, SimNode { node, leader, tasks });
        self.clocks.insert(id, clock);
        Ok(())
    }

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
        self.durable.keys().filter(|id| !self.nodes.contains_key(id)).copied().collect()
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
        let manifest = self.world.synthesize(version, bin_chunks, &[seed]);
        if let Some(disk) = self.host_disks.get(&seed) {
            let mut disk = lock(disk);
            for chunk in manifest.unique_chunks() {
                disk.chunks.insert(chunk.hash(), chunk.hash());
            }
            disk.complete.insert(manifest.revision_id());
        }
        self.trace.note(&format!("node {seed} pushed revision {}", manifest.revision_id()));
        manifest
    }

    /// Every running node that believes it leads, with its term.
    ///
    /// Only nodes that may lead are asked: the voters (and learners) of the membership
    /// the last sampled leader knew, refreshed at every call, plus every node once per
    /// [`FULL_SCAN_EVERY`] calls — so that even an agent that wrongly thinks it leads is
    /// seen, without asking thousands of agents every 10 ms.
    pub fn leaders(&self) -> Vec<(u64, NodeId)> {
        let (full, candidates) = {
            let mut scan = lock(&self.leader_scan);
            scan.calls = scan.calls.wrapping_add(1);
            (scan.calls % FULL_SCAN_EVERY == 1 || scan.candidates.is_empty(), scan.candidates.clone())
        };
        let asked: Vec<&SimNode> = if full {
            self.nodes.values().collect()
        } else {
            candidates.iter().filter_map(|id| self.nodes.get(id)).collect()
        };
        let mut leaders = Vec::new();
        let mut newest: Option<(u64, BTreeSet<NodeId>)> = None;
        for sim in asked {
            let metrics = sim.node.raft().metrics();
            let metrics = metrics.borrow();
            if metrics.state != ServerState::Leader {
                continue;
            }
            leaders.push((metrics.current_term, sim.node.id()));
            if newest.as_ref().is_none_or(|(term, _)| metrics.current_term > *term) {
                let members = metrics.membership_config.membership().nodes().map(|(id, _)| *id).collect();
                newest = Some((metrics.current_term, members));
            }
        }
        if let Some((_, members)) = newest {
            lock(&self.leader_scan).candidates = members;
        }
        leaders
    }

    /// The running node that is leader of the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders().into_iter().max().map(|(_, id)| id)
    }

    /// Crashes a node: its traffic stops and its tasks end; its Raft store, disk and
    /// journal survive. With `lose_unsynced`, the journal's newest save is lost (see
    /// [`crate::host::journal`]).
    pub async fn crash(&mut self, id: NodeId, lose_unsynced: bool) {
        let lost = self.durable.get(&id).and_then(|durable| durable.journal.crash(lose_unsynced));
        let suffix =
            lost.map(|deployment| format!(", losing its unsynced journal save of {deployment}")).unwrap_or_default();
        self.trace.note(&format!("crash node {id}{suffix}"));
        self.net.crash(id);
        if let Some(mut sim) = self.nodes.remove(&id) {
            sim.tasks.abort_all();
            sim.node.shutdown().await;
        }
        self.clocks.remove(&id);
    }

    /// Restarts a crashed node from what survived.
    ///
    /// # Errors
    /// The node could not start.
    pub async fn restart(&mut self, id: NodeId) -> anyhow::Result<()> {
        self.trace.note(&format!("restart node {id}"));
        self.boot(id).await
    }

    /// Samples who leads which term (the single-leader invariant).
    pub fn observe(&self) {
        let leaders = self.leaders();
        lock(&self.observer).monitor.single_leader.observe(&leaders);
        self.snapshot_on_violation();
    }

    /// On the first violation of a continuous invariant: notes it in the trace and keeps
    /// the events that led to it for the failure report.
    fn snapshot_on_violation(&self) {
        if lock(&self.violation_recent).is_some() {
            return;
        }
        let Some((name, reason)) = lock(&self.observer).monitor.first_violation() else { return };
        self.trace.note(&format!("invariant {name} violated: {reason}"));
        *lock(&self.violation_recent) = Some(self.trace.recent());
    }

    /// The events a failure report prints: those up to the first violation of a
    /// continuous invariant if there was one, else the last ones of the run.
    pub fn recent_events(&self) -> Vec<String> {
        lock(&self.violation_recent).clone().unwrap_or_else(|| self.trace.recent())
    }

    /// The single-leader-per-term verdict so far.
    pub fn single_leader_verdict(&self) -> Result<(), String> {
        lock(&self.observer).monitor.single_leader.verdict()
    }

    /// Feeds the observer every entry applied since the last round, and checks new
    /// installs and open deployments.
    pub async fn pump(&self) {
        let now = tokio::time::Instant::now();
        let applied = std::mem::take(&mut *lock(&self.applied));
        let installs = self.world.drain_installs();
        let mut observer = lock(&self.observer);
        observer.ingest(applied, now, &self.host_disks);
        observer.check_round(installs, now);
        drop(observer);
        self.snapshot_on_violation();
        lock(&self.progress).tick(now, self.trace.events());
    }

    /// True once a monitor has halted the run (see [`crate::invariants::runaway`]).
    pub fn is_halted(&self) -> bool {
        lock(&self.observer).monitor.runaway.is_halted()
    }

    /// Runs `read` on the observer (its replayed state and monitor).
    pub fn with_observer<T>(&self, read: impl FnOnce(&mut Observer) -> T) -> T {
        read(&mut lock(&self.observer))
    }

    /// Lets virtual time pass, sampling leaders and the observer every
    /// [`SAMPLE_PERIOD`].
    pub async fn sleep(&self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        while tokio::time::Instant::now() < deadline && !self.is_halted() {
            self.observe();
            self.pump().await;
            tokio::time::sleep(SAMPLE_PERIOD.min(deadline - tokio::time::Instant::now())).await;
        }
    }

    /// Waits until `done` holds, sampling leaders and the observer every
    /// [`SAMPLE_PERIOD`].
    ///
    /// # Errors
    /// `timeout` passed first.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            self.observe();
            self.pump().await;
            if done(self) {
                return Ok(());
            }
            if self.is_halted() {
                anyhow::bail!("the run was halted while waiting for {what}: the cluster ran away");
            }
            tokio::time::sleep(SAMPLE_PERIOD).await;
        }
        anyhow::bail!("timed out after {timeout:?} of virtual time waiting for {what}")
    }

    /// Proposes `command` through whichever node leads, retrying (for up to `timeout`)
    /// while there is no leader or no quorum.
    ///
    /// # Errors
    /// No leader committed it within `timeout`; the last error.
    pub async fn propose(&self, command: Command, timeout: Duration) -> anyhow::Result<Outcome> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::from("no leader");
        while tokio::time::Instant::now() < deadline && !self.is_halted() {
            if let Some(leader) = self.leader() {
                match self.node(leader).propose_one(command.clone()).await {
                    Ok(outcome) => return Ok(outcome),
                    Err(ProposeError::Fatal(error)) => last = error,
                    Err(error) => last = error.to_string(),
                }
            }
            self.sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("no leader committed the command within {timeout:?}: {last}")
    }

    /// The Raft log of node `id`, read from its store.
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn log(&self, id: NodeId) -> anyhow::Result<Vec<Entry<fleetmesh_consensus::raft::TypeConfig>>> {
        let durable = self.durable.get(&id).ok_or_else(|| anyhow::anyhow!("no store for node {id}"))?;
        let mut store = LogStore::new(durable.raft.clone());
        Ok(store.try_get_log_entries(0..u64::MAX).await?)
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
