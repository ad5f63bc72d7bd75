//! The running node: Raft, the address book, the leader's duties and the agent's poll
//! loop, wired to a [`Transport`] and a [`Clock`] so the same code runs over QUIC in
//! production and over the simulated network in `fleetmesh-sim`.
//!
//! ```text
//!  transport ─▶ handler ─┬─ Raft RPCs ──────────▶ openraft
//!                        ├─ Join / Poll / Report ▶ leader duties (leader.rs)
//!                        └─ forwarded API calls ─▶ api::leader_router
//!  poll loop (every node) ──Poll──▶ leader ──▶ assignments, members, leader hint
//!  leader loop ──▶ bootstrap entry, autopilot (voters), rollout engine ──▶ Raft proposals
//! ```

pub mod autopilot;
pub(crate) mod backoff;
pub mod boot;
mod handler;
pub mod join;
mod leader;
pub mod liveness;
mod poll;
pub mod stale_voter;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fleetmesh_consensus::raft::{
    raft_config, LogStore, NetworkFactory, Raft, RaftRequest, RaftResponse, RaftTiming, RaftTransport, StateHandle,
    StateMachineStore,
};
use fleetmesh_state::model::members::ClusterInfo;
use fleetmesh_state::{Command, Outcome, Proposal};
use fleetmesh_transport::{BoxFuture, NodeId, Peer, Transport, TransportError};
pub use handler::NodeHandler;
pub use leader::{ClusterView, NodeView};
use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::protocol::{self, LeaderHint, MemberAddress, Request, Response, Role};

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
    /// Tags.
    pub tags: BTreeMap<String, String>,
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

/// What the node knows about the cluster outside Raft: where the leader and members
/// are, and the admin token hash. Filled from Raft on voters and from poll answers on
/// agents.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    /// The leader as last learned.
    pub leader: Option<LeaderHint>,
    /// Member addresses by id; shared, so that copying the directory is cheap (see
    /// `poll::shared_members`).
    pub members: Arc<BTreeMap<NodeId, MemberAddress>>,
    /// Version of `members` as the leader numbered it.
    pub members_version: u64,
    /// Admin token hash for API checks.
    pub admin_token_hash: String,
    /// This node's role as the leader last said.
    pub role: Option<Role>,
    /// The leader's term as last learned.
    pub term: u64,
    /// The voters as the leader last listed them (agents look for a lost leader there
    /// first).
    pub voters: Vec<NodeId>,
}

/// Why a proposal failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader proposes.
    #[error("this node is not the leader")]
    NotLeader {
        /// The leader, if known.
        leader: Option<LeaderHint>,
    },
    /// No quorum acknowledged the write in time.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// Raft stopped.
    #[error("raft failed: {0}")]
    Fatal(String),
}

/// A running node.
pub struct Node {
    settings: NodeSettings,
    raft: RwLock<Raft>,
    /// Whether `raft` runs with the voter timing rather than [`RaftTiming::dormant`].
    raft_active: std::sync::atomic::AtomicBool,
    /// Held while the Raft instance is replaced (activation, reset, shutdown), so two of
    /// those never open two instances on one store.
    raft_swap: tokio::sync::Mutex<()>,
    /// The Raft log and snapshots (kept to reset them, see [`Node::reset_raft`]).
    db: Arc<redb::Database>,
    state: Arc<StateHandle>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    directory: RwLock<Directory>,
    leader: leader::LeaderDuties,
    rng: Mutex<ChaCha8Rng>,
    /// Cluster facts of a bootstrap not yet committed (first node only).
    pending_bootstrap: Mutex<Option<(ClusterInfo, fleetmesh_state::model::members::MemberSpec)>>,
    shutdown: watch::Sender<bool>,
    leader_changes: std::sync::atomic::AtomicU64,
    /// The host agent, once started.
    pub(crate) agent: std::sync::OnceLock<Arc<crate::agent_runtime::AgentRuntime>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Node").field("id", &self.settings.id).finish_non_exhaustive()
    }
}

/// How [`Node::open_raft`] opens the state machine.
enum StateOpen {
    /// From the store, into a new handle (a node starting).
    Load,
    /// From the store, into an existing handle (after a reset erased the store).
    Reload(Arc<StateHandle>),
    /// Keeping an existing handle as it is (a restart on an untouched store).
    Resume(Arc<StateHandle>),
}

/// What [`Node::replace_raft`] does to the store between the two instances.
enum Replace {
    /// Erase log, vote and snapshot and reopen dormant: the node becomes a fresh agent.
    Erase,
    /// Keep everything and reopen with the voter timing.
    Activate,
}

/// Sends Raft RPCs through the node's transport in the node protocol's envelope.
struct RaftOverTransport {
    transport: Arc<dyn Transport>,
}

impl RaftTransport for RaftOverTransport {
    fn send(
        &self,
        target: NodeId,
        addr: &str,
        request: RaftRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<RaftResponse, TransportError>> {
        let transport = self.transport.clone();
        let addr = addr.parse::<SocketAddr>();
        Box::pin(async move {
            let addr = addr.map_err(|error| TransportError::Unreachable {
                peer: target,
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                reason: format!("bad raft address: {error}"),
            })?;
            let peer = Peer { id: target, addr };
            match protocol::call(transport.as_ref(), peer, &Request::Raft(request), timeout).await {
                Ok((Response::Raft(response), _)) => Ok(response),
                Ok((other, _)) => {
                    Err(TransportError::Refused { peer: target, reason: format!("unexpected answer {other:?}") })
                }
                Err(protocol::RpcError::Transport(error)) => Err(error),
                Err(error) => Err(TransportError::Refused { peer: target, reason: error.to_string() }),
            }
        })
    }
}

impl Node {
    /// Creates a node: opens Raft on `db` (file-backed or in-memory redb) and wires it
    /// to `transport`. Nothing runs until [`Node::spawn`].
    ///
    /// # Errors
    /// The stored Raft state cannot be read, or the timing is invalid.
    pub async fn new(
        settings: NodeSettings,
        db: Arc<redb::Database>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Arc<Self>> {
        // Every node starts dormant: most are agents, and a voter is restarted with the
        // voter timing as soon as its Raft reports the membership (see `follow_role`).
        let (raft, state) =
            Self::open_raft(&settings, db.clone(), transport.clone(), StateOpen::Load, RaftTiming::dormant()).await?;
        let leader = leader::LeaderDuties::new(&settings.timing);
        let rng = ChaCha8Rng::seed_from_u64(settings.rng_seed);
        Ok(Arc::new(Self {
            settings,
            raft: RwLock::new(raft),
            raft_active: std::sync::atomic::AtomicBool::new(false),
            raft_swap: tokio::sync::Mutex::new(()),
            db,
            state,
            transport,
            clock,
            directory: RwLock::new(Directory::default()),
            leader,
            rng: Mutex::new(rng),
            pending_bootstrap: Mutex::new(None),
            shutdown: watch::channel(false).0,
            leader_changes: std::sync::atomic::AtomicU64::new(0),
            agent: std::sync::OnceLock::new(),
        }))
    }

    /// Opens Raft on `db` with `timing`.
    async fn open_raft(
        settings: &NodeSettings,
        db: Arc<redb::Database>,
        transport: Arc<dyn Transport>,
        state: StateOpen,
        timing: RaftTiming,
    ) -> anyhow::Result<(Raft, Arc<StateHandle>)> {
        let config = Arc::new(raft_config(timing)?);
        let log_store = LogStore::new(db.clone());
        let state_machine = match state {
            StateOpen::Load => StateMachineStore::open(db)?,
            StateOpen::Reload(handle) => StateMachineStore::reopen(db, handle)?,
            StateOpen::Resume(handle) => StateMachineStore::resume(db, handle),
        };
        let state = state_machine.handle();
        let network = NetworkFactory::new(Arc::new(RaftOverTransport { transport }));
        let raft = Raft::new(settings.id, config, network, log_store, state_machine).await?;
        Ok((raft, state))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.settings.id
    }

    /// Its settings.
    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    /// The Raft handle.
    pub fn raft(&self) -> Raft {
        self.raft.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The applied cluster state (complete on voters; agents hold no replica and see an
    /// empty state: they ask the leader).
    pub fn state(&self) -> &Arc<StateHandle> {
        &self.state
    }

    /// The transport.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// The wall clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// A copy of the directory.
    pub fn directory(&self) -> Directory {
        self.directory.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn update_directory(&self, update: impl FnOnce(&mut Directory)) {
        update(&mut self.directory.write().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Draws random bytes from the node's seeded RNG (ids it generates).
    pub fn random_bytes<const N: usize>(&self) -> [u8; N] {
        use rand::RngCore;
        let mut bytes = [0u8; N];
        self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner).fill_bytes(&mut bytes);
        bytes
    }

    /// Fills the directory from what the data directory remembers, so the poll loop
    /// can find the cluster before the first poll answer.
    pub fn seed_directory(&self, members: Arc<BTreeMap<NodeId, MemberAddress>>, admin_token_hash: String) {
        self.update_directory(|directory| {
            directory.members = members;
            directory.admin_token_hash = admin_token_hash;
        });
    }

    /// Records the bootstrap entry to propose once this node leads (first node only).
    pub fn set_pending_bootstrap(&self, info: ClusterInfo, first: fleetmesh_state::model::members::MemberSpec) {
        *self.pending_bootstrap.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((info, first));
    }

    /// True when this node is the Raft leader.
    pub fn is_leader(&self) -> bool {
        // Borrowed, not cloned: this runs on every poll and every leader tick.
        let metrics = self.raft().metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader && metrics.current_leader == Some(self.settings.id)
    }

    /// True on a leader that has applied an entry of its own term, and with it every
    /// entry of earlier terms. Decisions that read the state and write back (the rollout
    /// engine, autopilot) wait for this: a new leader's applied state can lack entries
    /// the old leader replicated to it but had not committed, and planning on it would
    /// contradict them once they commit (the simulator found a new leader starting a
    /// second OneAtATime target while the old leader's start of another was still in
    /// its log: leader-kill-mid-wave seed 3).
    pub fn leads_with_current_state(&self) -> bool {
        let metrics = self.raft().metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader
            && metrics.current_leader == Some(self.settings.id)
            && metrics.last_applied.is_some_and(|applied| applied.leader_id.term == metrics.current_term)
    }

    /// Voter ids in the applied membership (empty on agents).
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.state.voters().into_iter().collect()
    }

    /// Where the leader is, as far as this node knows: Raft's view on voters, the last
    /// poll answer on agents.
    pub fn leader_hint(&self) -> Option<LeaderHint> {
        let metrics = self.raft().metrics();
        let metrics = metrics.borrow();
        // A node whose Raft has left the leader state can still hold a committed vote for
        // itself, and so name itself leader: sending pollers back to it would loop.
        let leading = metrics.state == ServerState::Leader;
        let me = self.settings.id;
        if let Some(leader) = metrics.current_leader.filter(|&leader| leader != me || leading) {
            let node = metrics.membership_config.membership().get_node(&leader).cloned();
            if let Some(listen) = node.and_then(|node| node.addr.parse().ok()) {
                return Some(LeaderHint { id: leader, listen });
            }
        }
        // Not `directory()`: that clones every member's address, on every poll.
        let directory = self.directory.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        directory.leader.filter(|hint| hint.id != me || leading)
    }

    /// The admin token hash the API checks against.
    pub fn admin_token_hash(&self) -> String {
        let from_state = self.state.read(|state| state.cluster.as_ref().map(|info| info.admin_token_hash.clone()));
        from_state.unwrap_or_else(|| self.directory().admin_token_hash)
    }

    /// A receiver that flips to `true` when the node shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Proposes commands through Raft (leader only) and returns one outcome per command.
    ///
    /// # Errors
    /// Not the leader, no quorum within the propose timeout, or Raft has stopped.
    pub async fn propose(&self, commands: Vec<Command>) -> Result<Vec<Outcome>, ProposeError> {
        if !self.is_leader() {
            return Err(ProposeError::NotLeader { leader: self.leader_hint() });
        }
        let raft = self.raft();
        // Fail fast when the leader has not heard from a quorum for several election
        // timeouts: it is partitioned, and the write would only wait and time out.
        let quorum_ack_ms = raft.metrics().borrow().millis_since_quorum_ack;
        let stale_after_ms = 3 * self.settings.timing.raft.election_timeout_max.as_millis() as u64;
        if quorum_ack_ms.is_some_and(|ms| ms > stale_after_ms) {
            return Err(ProposeError::NoQuorum(format!(
                "the leader has not heard from a majority of voters for {} ms; writes are refused until a quorum is reachable",
                quorum_ack_ms.unwrap_or_default()
            )));
        }
        let proposal = Proposal { at: self.clock.now(), commands };
        let timeout = self.settings.timing.propose_timeout;
        match tokio::time::timeout(timeout, raft.client_write(proposal)).await {
            Err(_) => Err(ProposeError::NoQuorum(format!(
                "the write was not committed within {timeout:?}; a majority of voters is unreachable"
            ))),
            Ok(Ok(response)) => Ok(response.data.outcomes),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                let leader = forward
                    .leader_id
                    .zip(forward.leader_node)
                    .and_then(|(id, node)| node.addr.parse().ok().map(|listen| LeaderHint { id, listen }));
                Err(ProposeError::NotLeader { leader })
            }
            Ok(Err(error)) => Err(ProposeError::Fatal(error.to_string())),
        }
    }

    /// Proposes one command and returns its outcome.
    ///
    /// # Errors
    /// As [`Node::propose`].
    pub async fn propose_one(&self, command: Command) -> Result<Outcome, ProposeError> {
        let mut outcomes = self.propose(vec![command]).await?;
        outcomes.pop().ok_or_else(|| ProposeError::Fatal("no outcome for the command".into()))
    }

    /// The node's role as far as it knows.
    pub fn role(&self) -> Role {
        if self.voters().contains(&self.settings.id) {
            Role::Voter
        } else {
            self.directory().role.unwrap_or(Role::Agent)
        }
    }

    /// Commits agents' reports (on the leader); the answer is `Ack` once committed.
    pub async fn submit_reports(self: &Arc<Self>, reports: Vec<fleetmesh_state::TargetReport>) -> Response {
        leader::handle_report(self, reports).await
    }

    /// Leader changes this node has observed since it started.
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Starts the node's background loops (poll loop, leader duties). They stop when
    /// [`Node::shutdown`] is called.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinSet<()> {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(poll::run(self.clone()));
        tasks.spawn(leader::run(self.clone()));
        tasks.spawn(leader::watch_poll_inputs(self.clone()));
        tasks.spawn(count_leader_changes(self.clone()));
        tasks.spawn(follow_role(self.clone()));
        tasks
    }

    /// Replaces this node's Raft state by a fresh, uninitialized one: stops the Raft
    /// instance, erases its log, vote and snapshot, and opens a new instance on the empty
    /// store (the applied state, shared through [`Node::state`], becomes empty). The node
    /// is then an agent like one that just joined, and the leader may promote it again.
    ///
    /// Only for a node the cluster no longer counts as a voter ([`stale_voter`]).
    ///
    /// # Errors
    /// Raft does not stop, or the store cannot be erased or reopened; the node should stop.
    pub async fn reset_raft(&self) -> anyhow::Result<()> {
        let _swap = self.raft_swap.lock().await;
        if *self.shutdown.borrow() {
            return Ok(());
        }
        self.replace_raft(Replace::Erase).await
    }

    /// Gives this node's Raft the voter timing, if it does not have it yet: stops the
    /// dormant instance and opens another on the same store, log, vote, snapshot and
    /// applied state untouched, so it is a restart like a process restart, without the
    /// replay. Raft calls that arrive in between fail and are retried by their senders.
    ///
    /// # Errors
    /// The old instance does not stop or the new one cannot open; the node should stop.
    pub async fn activate_raft(&self) -> anyhow::Result<()> {
        let _swap = self.raft_swap.lock().await;
        if self.raft_active.load(std::sync::atomic::Ordering::Relaxed) || *self.shutdown.borrow() {
            return Ok(());
        }
        self.replace_raft(Replace::Activate).await
    }

    /// Stops the running Raft instance and opens another on the same store: the one
    /// sequence behind [`Self::reset_raft`] and [`Self::activate_raft`]. The caller holds
    /// `raft_swap`, so two instances never run on one store.
    async fn replace_raft(&self, how: Replace) -> anyhow::Result<()> {
        let old = self.raft();
        old.shutdown().await.map_err(|error| anyhow::anyhow!("the old Raft instance did not stop: {error}"))?;
        let (state, timing, active) = match how {
            Replace::Erase => {
                LogStore::reset(&self.db).map_err(|error| anyhow::anyhow!("cannot erase the Raft state: {error}"))?;
                (StateOpen::Reload(self.state.clone()), RaftTiming::dormant(), false)
            }
            Replace::Activate => (StateOpen::Resume(self.state.clone()), self.settings.timing.raft, true),
        };
        let (raft, _) = Self::open_raft(&self.settings, self.db.clone(), self.transport.clone(), state, timing).await?;
        *self.raft.write().unwrap_or_else(std::sync::PoisonError::into_inner) = raft;
        self.raft_active.store(active, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Makes this node the first voter of a new cluster: gives Raft the voter timing,
    /// then initializes it with `members`.
    ///
    /// # Errors
    /// Raft cannot be restarted or initialized (for example, it already is).
    pub async fn initialize(&self, members: BTreeMap<NodeId, openraft::BasicNode>) -> anyhow::Result<()> {
        self.activate_raft().await?;
        self.raft().initialize(members).await?;
        Ok(())
    }

    /// Stops the loops and Raft.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        let _swap = self.raft_swap.lock().await;
        let _ = self.raft().shutdown().await;
    }
}

/// Follows this node's Raft server state: vote, role, leader and voter set. Unlike
/// `Raft::metrics`, which openraft sends on every pass of its loop (every tick and every
/// replication round, on every node), this changes only when one of those does, so
/// thousands of idle agents do not wake their watchers ten times a second.
pub(crate) struct ServerStateWatch {
    receiver: watch::Receiver<openraft::metrics::RaftServerMetrics<NodeId, openraft::BasicNode>>,
    /// Set when [`Self::changed`] moved to a new Raft instance.
    replaced: bool,
}

impl ServerStateWatch {
    pub(crate) fn new(node: &Node) -> Self {
        Self { receiver: node.raft().server_metrics(), replaced: false }
    }

    /// Waits for a change. When the Raft instance stops (shutdown, or a reset that
    /// replaced it), follows the current instance and counts that as a change.
    pub(crate) async fn changed(&mut self, node: &Node) {
        if self.receiver.changed().await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.receiver = node.raft().server_metrics();
            self.replaced = true;
        }
    }

    /// The current leader, as last seen.
    pub(crate) fn current_leader(&mut self) -> Option<NodeId> {
        self.receiver.borrow_and_update().current_leader
    }

    /// The term, and whether node `id` leads in it, as last seen. Read this rather than
    /// [`Node::is_leader`] after a wake-up from [`Self::changed`]: openraft publishes the
    /// server state before its full metrics, so on a multi-threaded runtime a waiter
    /// can see the change here while `Raft::metrics` still shows the old state (a
    /// single-node cluster never committed its bootstrap entry that way).
    pub(crate) fn leadership(&mut self, id: NodeId) -> (u64, bool) {
        let metrics = self.receiver.borrow_and_update();
        let leads = metrics.state == ServerState::Leader && metrics.current_leader == Some(id);
        (metrics.vote.leader_id().term, leads)
    }

    /// Whether node `id`'s Raft has any use for its timer tick: voters need it for
    /// election timeouts, a leader for heartbeats and for stepping down once removed.
    /// A learner or a follower outside the voter set does nothing on a tick.
    fn needs_tick(&mut self, id: NodeId) -> bool {
        let metrics = self.receiver.borrow_and_update();
        metrics.membership_config.membership().voter_ids().any(|voter| voter == id)
            || matches!(metrics.state, ServerState::Leader | ServerState::Candidate)
    }
}

/// Keeps this node's Raft in step with its role. A dormant instance (every node starts
/// with one, see [`RaftTiming::dormant`]) is restarted with the voter timing as soon as
/// its membership lists the node as a voter: a voter that restarts, an agent being
/// promoted, the first node of a cluster. Ticks are on while the node is a voter and off
/// otherwise: on a non-voter each is a no-op pass of openraft's main loop that also
/// republishes its metrics. A removed voter keeps the voter timing with ticks off until a
/// reset ([`Node::reset_raft`]) makes it dormant again.
async fn follow_role(node: Arc<Node>) {
    let mut server = ServerStateWatch::new(&node);
    let mut shutdown = node.shutdown_signal();
    let mut ticking = None;
    loop {
        let needed = server.needs_tick(node.id());
        if needed && !node.raft_active.load(std::sync::atomic::Ordering::Relaxed) {
            if let Err(reason) = node.activate_raft().await {
                tracing::error!(%reason, "Raft could not be restarted with the voter timing; stopping the node");
                node.shutdown().await;
                return;
            }
            server = ServerStateWatch::new(&node);
            ticking = None;
            continue;
        }
        if ticking != Some(needed) {
            node.raft().runtime_config().tick(needed);
            ticking = Some(needed);
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            () = server.changed(&node) => {}
        }
        if server.replaced {
            // Another Raft instance, which ticks until told otherwise.
            server.replaced = false;
            ticking = None;
        }
    }
}

async fn count_leader_changes(node: Arc<Node>) {
    let mut server = ServerStateWatch::new(&node);
    let mut shutdown = node.shutdown_signal();
    let mut leader = server.current_leader();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            () = server.changed(&node) => {}
        }
        let now = server.current_leader();
        if now != leader && now.is_some() {
            node.leader_changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        leader = now;
    }
}
