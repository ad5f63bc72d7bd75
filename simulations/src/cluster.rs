//! A simulated cluster: real [`Node`]s (Raft, leader duties, poll loops) on the
//! simulated network and clock, with the fault verbs scenarios use.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_consensus::model::ids::UnixMillis;
use fleetmesh_consensus::model::members::{ClusterInfo, JoinTokenRecord, MemberSpec};
use fleetmesh_consensus::raft::{seed_thread_rng, LogStore};
use fleetmesh_consensus::state::{Command, Outcome};
use fleetmesh_node::clock::VirtualClock;
use fleetmesh_node::runtime::{Node, NodeHandler, NodeSettings, Timing};
use fleetmesh_transport::pki::ClusterCa;
use fleetmesh_transport::NodeId;
use openraft::{BasicNode, Entry, RaftLogReader, ServerState};
use redb::backends::InMemoryBackend;

use crate::invariants::single_leader::LeaderPerTerm;
use crate::net::{LinkModel, SimNet};
use crate::trace::Trace;

/// A fixed epoch for virtual wall time (2026-01-01T00:00:00Z), so timestamps in the
/// replicated state are the same in every run.
pub const SIM_EPOCH: UnixMillis = UnixMillis(1_767_225_600_000);

/// How a simulated cluster is built.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of everything.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Voters to keep.
    pub voters: u32,
    /// Network behaviour.
    pub link: LinkModel,
    /// Node timing.
    pub timing: Timing,
}

impl SimConfig {
    /// Defaults for `nodes` nodes.
    pub fn new(seed: u64, nodes: usize) -> Self {
        Self { seed, nodes, voters: 3, link: LinkModel::default(), timing: Timing::default() }
    }
}

struct SimNode {
    node: Arc<Node>,
    tasks: tokio::task::JoinSet<()>,
}

/// A running simulated cluster.
pub struct SimCluster {
    /// Its configuration.
    pub config: SimConfig,
    /// The network.
    pub net: Arc<SimNet>,
    /// The trace.
    pub trace: Arc<Trace>,
    nodes: BTreeMap<NodeId, SimNode>,
    disks: BTreeMap<NodeId, Arc<redb::Database>>,
    crashed: BTreeSet<NodeId>,
    leader_terms: std::sync::Mutex<LeaderPerTerm>,
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

impl SimCluster {
    /// Builds and starts a cluster: node 1 bootstraps, the others are added as members
    /// and promoted by the real autopilot. Returns once voters and liveness settle.
    ///
    /// # Errors
    /// The cluster did not form within a minute of virtual time.
    pub async fn start(config: SimConfig) -> anyhow::Result<Self> {
        seed_thread_rng(config.seed);
        let trace = Arc::new(Trace::new());
        let net = SimNet::new(config.seed, config.link, trace.clone());
        let mut cluster = Self {
            config,
            net,
            trace,
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            crashed: BTreeSet::new(),
            leader_terms: std::sync::Mutex::new(LeaderPerTerm::default()),
        };
        let first = NodeId(1);
        cluster.boot(first).await?;
        let node = cluster.node(first);
        node.raft().initialize(BTreeMap::from([(first, BasicNode { addr: spec(first).listen.to_string() })])).await?;
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
        node.set_pending_bootstrap(info, spec(first));
        cluster
            .wait_for("bootstrap", Duration::from_secs(30), |cluster| {
                cluster.node(first).state().read(|state| state.cluster.is_some())
            })
            .await?;
        for index in 2..=cluster.config.nodes as u64 {
            let id = NodeId(index);
            let outcome = cluster.node(first).propose_one(Command::AddMember { spec: spec(id) }).await?;
            anyhow::ensure!(outcome == Outcome::MemberAdded(id), "node {id} was added as {outcome:?}");
            cluster.boot(id).await?;
        }
        let voters_wanted = (cluster.config.voters as usize).min(cluster.config.nodes);
        cluster
            .wait_for("voters and liveness", Duration::from_secs(120), move |cluster| {
                cluster.leader().is_some_and(|leader| {
                    let node = cluster.node(leader);
                    node.voters().len() == voters_wanted
                        && node
                            .cluster_view()
                            .nodes
                            .iter()
                            .all(|view| view.health == fleetmesh_node::runtime::liveness::Health::Alive)
                })
            })
            .await?;
        cluster.trace.note("cluster formed");
        Ok(cluster)
    }

    async fn boot(&mut self, id: NodeId) -> anyhow::Result<()> {
        let disk = match self.disks.get(&id) {
            Some(disk) => disk.clone(),
            None => {
                let disk = Arc::new(redb::Database::builder().create_with_backend(InMemoryBackend::new())?);
                self.disks.insert(id, disk.clone());
                disk
            }
        };
        let spec = spec(id);
        let settings = NodeSettings {
            id,
            listen: spec.listen,
            api: spec.api,
            tags: spec.tags,
            data_dir: None,
            install_root: "/sim".into(),
            timing: self.config.timing,
            rng_seed: self.config.seed.wrapping_mul(1_000_003).wrapping_add(id.0),
            max_revision_bytes: u64::MAX,
            planner: fleetmesh_node::rollout::PlannerSettings::default(),
        };
        let handler = NodeHandler::new();
        let node = Node::new(settings, disk, self.net.transport(id), Arc::new(VirtualClock::new(SIM_EPOCH))).await?;
        handler.bind(node.clone());
        node.seed_directory(
            self.disks
                .keys()
                .map(|peer| fleetmesh_node::protocol::MemberAddress {
                    id: *peer,
                    listen: address(*peer, 7400),
                    api: address(*peer, 7480),
                })
                .collect(),
            "sim".into(),
        );
        self.net.attach(id, handler);
        let tasks = node.spawn();
        self.nodes.insert(id, SimNode { node, tasks });
        self.crashed.remove(&id);
        Ok(())
    }

    /// The node with id `id`.
    ///
    /// # Panics
    /// If the node does not exist or is crashed (a scenario bug).
    pub fn node(&self, id: NodeId) -> Arc<Node> {
        self.nodes.get(&id).map(|sim| sim.node.clone()).unwrap_or_else(|| panic!("node {id} is not running"))
    }

    /// Ids of running nodes.
    pub fn running(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Ids of every node ever started.
    pub fn all(&self) -> Vec<NodeId> {
        self.disks.keys().copied().collect()
    }

    /// The running node that is leader of the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter(|sim| !self.crashed.contains(&sim.node.id()))
            .filter_map(|sim| {
                let metrics = sim.node.raft().metrics().borrow().clone();
                (metrics.state == ServerState::Leader).then_some((metrics.current_term, sim.node.id()))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// Every running node that believes it leads, with its term.
    pub fn leaders(&self) -> Vec<(u64, NodeId)> {
        self.nodes
            .values()
            .filter_map(|sim| {
                let metrics = sim.node.raft().metrics().borrow().clone();
                (metrics.state == ServerState::Leader).then_some((metrics.current_term, sim.node.id()))
            })
            .collect()
    }

    /// Crashes a node: its traffic stops and its tasks end; its disk survives.
    pub async fn crash(&mut self, id: NodeId) {
        self.trace.note(&format!("crash node {id}"));
        self.net.crash(id);
        if let Some(mut sim) = self.nodes.remove(&id) {
            sim.tasks.abort_all();
            sim.node.shutdown().await;
        }
        self.crashed.insert(id);
    }

    /// Restarts a crashed node from its disk.
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
        self.leader_terms.lock().unwrap_or_else(std::sync::PoisonError::into_inner).observe(&leaders);
    }

    /// The single-leader-per-term verdict so far.
    pub fn single_leader_verdict(&self) -> Result<(), String> {
        self.leader_terms.lock().unwrap_or_else(std::sync::PoisonError::into_inner).verdict()
    }

    /// Lets virtual time pass, sampling leaders every 10 ms.
    pub async fn sleep(&self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        while tokio::time::Instant::now() < deadline {
            self.observe();
            tokio::time::sleep(Duration::from_millis(10).min(deadline - tokio::time::Instant::now())).await;
        }
    }

    /// Waits until `done` holds, checking every 10 ms of virtual time.
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
            if done(self) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::bail!("timed out after {timeout:?} of virtual time waiting for {what}")
    }

    /// The Raft log of node `id`, entries `from..` (read from its disk).
    ///
    /// # Errors
    /// The disk cannot be read.
    pub async fn log(&self, id: NodeId) -> anyhow::Result<Vec<Entry<fleetmesh_consensus::raft::TypeConfig>>> {
        let disk = self.disks.get(&id).ok_or_else(|| anyhow::anyhow!("no disk for node {id}"))?;
        let mut store = LogStore::new(disk.clone());
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
