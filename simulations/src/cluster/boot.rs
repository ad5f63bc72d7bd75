//! Forming a cluster, and booting, crashing and restarting its nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetmesh_consensus::raft::seed_thread_rng;
use fleetmesh_core::rollout::{CodeDeployPlanner, WavePlanner};
use fleetmesh_model::NodeHealth;
use fleetmesh_node::agent::Agent;
use fleetmesh_node::leader::shift::AwsEdges;
use fleetmesh_node::leader::Leader;
use fleetmesh_node::runtime::clock::VirtualClock;
use fleetmesh_node::runtime::protocol::MemberAddress;
use fleetmesh_node::runtime::{Family, Node, NodeHandler, NodeSettings};
use fleetmesh_state::model::members::{ClusterInfo, JoinTokenRecord, MemberSpec};
use fleetmesh_state::{Command, Outcome};
use fleetmesh_transport::pki::ClusterCa;
use fleetmesh_transport::NodeId;
use openraft::BasicNode;

use super::leaders::LeaderScan;
use super::observe::Progress;
use super::{lock, ClusterError, Durable, SimCluster, SimConfig, SimNode, SIM_EPOCH};
use crate::clock::SkewedClock;
use crate::host::disk::SimDisk;
use crate::host::journal::SimJournal;
use crate::host::swarm::HostRevisions;
use crate::host::{HostWorld, SimHost};
use crate::invariants::Monitor;
use crate::net::SimNet;
use crate::observer::{AppliedQueue, Observer};
use crate::trace::Trace;

/// Members added per proposal while the cluster forms.
const MEMBERS_PER_PROPOSAL: usize = 100;

/// The node that bootstraps the cluster; every other one joins it.
const FIRST: NodeId = NodeId(1);

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
    MemberSpec {
        listen: address(id, 7400),
        api: address(id, 7480),
        tags: sim_tags(id),
        advertise: None,
        instance_name: None,
    }
}

impl SimCluster {
    /// Builds and starts a cluster: node 1 bootstraps, the others are added as members
    /// and promoted by the real autopilot. Returns once voters and liveness settle.
    ///
    /// # Errors
    /// The cluster did not form within the virtual time allowed.
    pub async fn start(config: SimConfig) -> Result<Self, ClusterError> {
        seed_thread_rng(config.seed);
        let mut cluster = Self::new(config);
        cluster.bootstrap().await?;
        cluster.add_members().await?;
        cluster.wait_formed().await?;
        cluster.trace.note("cluster formed");
        Ok(cluster)
    }

    /// A cluster with no node running yet: its trace, network, hosts and observer.
    fn new(config: SimConfig) -> Self {
        let trace = Arc::new(Trace::new());
        let net = SimNet::new(config.seed, config.link, trace.clone());
        let world = HostWorld::new(config.seed, trace.clone(), config.host);
        let monitor = Monitor::new(Duration::from_millis(config.planner.deployment_timeout_ms));
        Self {
            net,
            trace,
            world,
            lambda: crate::aws::SimLambda::new(config.seed, config.lambda_fault_rate, 1),
            triggers: crate::trigger_sink::SimTriggerSink::new(config.seed),
            clock_base: VirtualClock::new(SIM_EPOCH),
            nodes: BTreeMap::new(),
            durable: BTreeMap::new(),
            down: BTreeSet::new(),
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
        }
    }

    /// Boots the first node, initializes its Raft, and waits for it to commit the
    /// cluster's bootstrap record.
    async fn bootstrap(&mut self) -> Result<(), ClusterError> {
        self.boot(FIRST).await?;
        let node = self.node(FIRST);
        node.initialize(BTreeMap::from([(FIRST, BasicNode { addr: spec(FIRST).listen.to_string() })])).await?;
        let info = ClusterInfo {
            // The simulated transport needs no certificates; fixed texts keep runs identical.
            ca: ClusterCa {
                cluster_id: format!("sim-{}", self.config.seed),
                cert_pem: "sim".into(),
                key_pem: "sim".into(),
                sealed_key: None,
            },
            admin_token_hash: "sim".into(),
            join_tokens: vec![JoinTokenRecord {
                secret_hash: "sim".into(),
                expires_at: None,
                description: "sim".into(),
                ..JoinTokenRecord::default()
            }],
            read_only_token_hash: None,
            metrics_token_hash: None,
            voters_desired: self.config.voters,
            created_at: SIM_EPOCH,
            access_keys: Vec::new(),
            aws_region: None,
            aws_account_id: None,
        };
        self.leader_of(FIRST).set_pending_bootstrap(info, spec(FIRST));
        self.wait_for("bootstrap", Duration::from_secs(30), |cluster| {
            cluster.node(FIRST).state().read(|state| state.cluster.is_some())
        })
        .await
    }

    /// Adds every other node as a member, then boots them.
    async fn add_members(&mut self) -> Result<(), ClusterError> {
        // Every member first, then every boot: each agent then learns the member list
        // once, instead of once per batch of joiners.
        let ids: Vec<NodeId> = (2..=self.config.nodes as u64).map(NodeId).collect();
        for batch in ids.chunks(MEMBERS_PER_PROPOSAL) {
            let commands = batch.iter().map(|id| Command::AddMember { spec: spec(*id) }).collect();
            let outcomes = self.node(FIRST).propose(commands).await?;
            for (id, outcome) in batch.iter().zip(outcomes) {
                if outcome != Outcome::MemberAdded(*id) {
                    return Err(ClusterError::MemberNotAdded { id: *id, outcome });
                }
            }
        }
        for id in ids {
            self.boot(id).await?;
        }
        Ok(())
    }

    /// Waits until a leader keeps the voters wanted and sees every node alive.
    async fn wait_formed(&self) -> Result<(), ClusterError> {
        let voters_wanted = (self.config.voters as usize).min(self.config.nodes);
        let timeout = Duration::from_secs(120);
        let deadline = tokio::time::Instant::now() + timeout;
        // Bounded by the deadline: every pass waits for the voters, then asks the leader.
        while tokio::time::Instant::now() < deadline {
            self.wait_for("voters and liveness", timeout, move |cluster| {
                cluster.leader().is_some_and(|leader| cluster.node(leader).voters().len() == voters_wanted)
            })
            .await?;
            let Some(leader) = self.leader() else { continue };
            let view = self.leader_of(leader).cluster_view().await;
            if view.nodes.iter().all(|view| view.health == NodeHealth::Alive) {
                return Ok(());
            }
            tokio::time::sleep(super::SAMPLE_PERIOD).await;
        }
        Err(ClusterError::TimedOut { what: "voters and liveness".to_string(), timeout })
    }

    async fn boot(&mut self, id: NodeId) -> Result<(), ClusterError> {
        if !self.durable.contains_key(&id) {
            let raft =
                Arc::new(redb::Database::builder().create_with_backend(super::sparse_store::SparseStore::default())?);
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
            advertise: spec.listen.ip(),
            tags: spec.tags,
            instance_name: None,
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
        let (applied, triggers) = (self.applied.clone(), self.triggers.clone());
        // A fresh handle per boot, so the slot is free; entries a restarted node
        // re-applies from its log before this line were applied (and seen) before.
        let _ = node.state().set_apply_tap(Box::new(move |entry| {
            triggers.note_applied(entry.log_id.index);
            lock(&applied).push((id, entry.clone()));
        }));
        node.seed_directory(self.member_seed.clone(), "sim".into());
        let mut tasks = tokio::task::JoinSet::new();
        node.spawn(&mut tasks);
        let planner: Arc<dyn WavePlanner> = match self.config.planted_bug {
            Some(bug) => bug.planner(),
            None => Arc::new(CodeDeployPlanner),
        };
        let aws = AwsEdges { lambda: Arc::new(self.lambda.clone()), ecs: Arc::new(crate::aws::Unsimulated) };
        let leader = Leader::start_with_trigger_sink(&node, &mut tasks, planner, aws, self.triggers.for_node(&node));
        let host = SimHost::new(self.world.clone(), id, host_disk.clone(), journal);
        let revisions = HostRevisions::new(self.world.clone(), id, host_disk, host.swarm());
        node.register(Family::Revision, Arc::new(revisions));
        Agent::start(&node, Arc::new(host), &mut tasks);
        handler.bind(node.clone());
        self.net.attach(id, handler);
        self.nodes.insert(id, SimNode { node, leader, tasks });
        self.down.remove(&id);
        self.clocks.insert(id, clock);
        Ok(())
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
        self.world.crashed(id);
        if let Some(mut sim) = self.nodes.remove(&id) {
            self.down.insert(id);
            sim.tasks.abort_all();
            sim.node.shutdown().await;
        }
        self.clocks.remove(&id);
    }

    /// Restarts a crashed node from what survived.
    ///
    /// # Errors
    /// The node could not start.
    pub async fn restart(&mut self, id: NodeId) -> Result<(), ClusterError> {
        self.trace.note(&format!("restart node {id}"));
        self.boot(id).await
    }
}
