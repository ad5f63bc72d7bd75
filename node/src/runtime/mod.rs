//! The bottom layer of a node: Raft (through [`RaftHost`]), the address book, proposals,
//! the transport, the clock, and the dispatch of peers' requests to the services above.
//!
//! Everything a role needs from the cluster goes through [`Node`]; nothing here knows
//! the roles. The leader, the agent, the revision store and the API live in the layers
//! above, register the request families they answer ([`dispatch`]), and learn about
//! leadership by subscribing ([`Node::server_state`]), never by being called from here.
//!
//! ```text
//!  transport ─▶ NodeHandler ─▶ Node::dispatch ─┬─ Raft RPCs ─▶ RaftHost (openraft)
//!                                              └─ other families ─▶ registered services
//!  services ──▶ Node::propose ─▶ Raft ─▶ StateHandle (applied state, read by everyone)
//!  services ──▶ Node::call(peer | self) ─▶ transport | dispatch
//! ```

pub mod backoff;
pub mod ca_seal;
pub mod clock;
pub mod directory;
pub mod dispatch;
pub mod duty_metrics;
pub mod identity;
pub mod join;
mod propose;
pub mod protocol;
mod raft_transport;
pub mod removal;
pub mod repeats;
pub mod settings;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

pub use directory::Directory;
pub use dispatch::{Family, NodeHandler, Refusal, Service};
use fleetmesh_consensus::host::{HostError, RaftHost, ServerStateWatch};
use fleetmesh_consensus::raft::{Raft, StateHandle};
use fleetmesh_model::RouteInfo;
use fleetmesh_state::model::members::{Actor, ApiTokenKind};
use fleetmesh_state::FeatureLevel;
use fleetmesh_transport::{NodeId, Transport};
pub use propose::ProposeError;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
pub use settings::{NodeSettings, Timing};
use tokio::sync::watch;

use self::clock::Clock;
use self::protocol::{LeaderHint, MemberAddress, Role};

/// A running node's bottom layer.
pub struct Node {
    settings: NodeSettings,
    raft: Arc<RaftHost>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    directory: RwLock<Directory>,
    rng: Mutex<ChaCha8Rng>,
    shutdown: watch::Sender<bool>,
    leader_changes: AtomicU64,
    services: dispatch::Services,
    seal_keys: ca_seal::SealKeyStore,
    routes: watch::Sender<Arc<Vec<RouteInfo>>>,
    /// Routes this node cannot serve, by name, with the reason (see
    /// [`Node::set_route_error`]); one entry per route at most.
    route_errors: Mutex<BTreeMap<String, String>>,
    duty_metrics: duty_metrics::DutyMetrics,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Node").field("id", &self.settings.id).finish_non_exhaustive()
    }
}

impl Node {
    /// Creates a node: opens Raft on `db` (file-backed or in-memory redb), dormant, and
    /// wires it to `transport`. Nothing runs until [`Node::spawn`].
    ///
    /// # Errors
    /// The stored Raft state cannot be read, or the timing is invalid.
    pub async fn new(
        settings: NodeSettings,
        db: Arc<redb::Database>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, HostError> {
        let raft_transport = Arc::new(raft_transport::RaftOverTransport::new(transport.clone()));
        let raft = RaftHost::open(settings.id, db, raft_transport, settings.timing.raft).await?;
        let rng = ChaCha8Rng::seed_from_u64(settings.rng_seed);
        let seal_keys = ca_seal::SealKeyStore::new(settings.data_dir.as_deref());
        Ok(Arc::new(Self {
            settings,
            raft: Arc::new(raft),
            transport,
            clock,
            directory: RwLock::new(Directory::default()),
            rng: Mutex::new(rng),
            shutdown: watch::channel(false).0,
            leader_changes: AtomicU64::new(0),
            services: dispatch::Services::default(),
            seal_keys,
            routes: watch::channel(Arc::new(Vec::new())).0,
            route_errors: Mutex::new(BTreeMap::new()),
            duty_metrics: duty_metrics::DutyMetrics::default(),
        }))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.settings.id
    }

    /// This node's CA seal key ([`ca_seal`]).
    pub fn seal_keys(&self) -> &ca_seal::SealKeyStore {
        &self.seal_keys
    }

    /// What the leader's watch duties did here (`/metrics`).
    pub fn duty_metrics(&self) -> &duty_metrics::DutyMetrics {
        &self.duty_metrics
    }

    /// Its settings.
    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    /// What this node runs with, as a member record: its addresses and tags, the
    /// advertised address only when it differs from the listen IP (as at its join).
    pub fn member_spec(&self) -> fleetmesh_state::model::members::MemberSpec {
        let settings = &self.settings;
        let advertise = Some(settings.advertise).filter(|address| *address != settings.listen.ip());
        fleetmesh_state::model::members::MemberSpec {
            listen: settings.listen,
            api: settings.api,
            tags: settings.tags.clone(),
            advertise,
            instance_name: settings.instance_name.clone(),
        }
    }

    /// The Raft host: the instance and its life.
    pub fn raft_host(&self) -> &Arc<RaftHost> {
        &self.raft
    }

    /// The running Raft instance (see [`RaftHost::raft`]).
    pub fn raft(&self) -> Raft {
        self.raft.raft()
    }

    /// A watch of this node's vote, role, leader and voter set.
    pub fn server_state(&self) -> ServerStateWatch {
        self.raft.server_state()
    }

    /// The applied cluster state (complete on voters; agents hold no replica and see an
    /// empty state: they ask a voter).
    pub fn state(&self) -> &Arc<StateHandle> {
        self.raft.state()
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
        self.directory.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Reads the directory without copying it.
    pub fn read_directory<T>(&self, read: impl FnOnce(&Directory) -> T) -> T {
        read(&self.directory.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Changes the directory (the agent's poll loop, with what the leader answered).
    pub fn update_directory(&self, update: impl FnOnce(&mut Directory)) {
        update(&mut self.directory.write().unwrap_or_else(PoisonError::into_inner));
    }

    /// Draws random bytes from the node's seeded RNG (ids it generates).
    pub fn random_bytes<const N: usize>(&self) -> [u8; N] {
        use rand::RngCore;
        let mut bytes = [0u8; N];
        self.rng.lock().unwrap_or_else(PoisonError::into_inner).fill_bytes(&mut bytes);
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

    /// True when this node is the Raft leader.
    pub fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    /// True on a leader that has applied an entry of its own term (see
    /// [`RaftHost::leads_with_current_state`]).
    pub fn leads_with_current_state(&self) -> bool {
        self.raft.leads_with_current_state()
    }

    /// The current Raft term.
    pub fn term(&self) -> u64 {
        self.raft.term()
    }

    /// Voter ids in the applied membership (empty on agents).
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.state().voters().into_iter().collect()
    }

    /// Where the leader is, as far as this node knows: Raft's view on voters, the last
    /// poll answer on agents. Never this node unless it leads.
    pub fn leader_hint(&self) -> Option<LeaderHint> {
        if let Some((id, addr)) = self.raft.known_leader() {
            if let Ok(listen) = addr.parse() {
                return Some(LeaderHint { id, listen });
            }
        }
        let leading = self.is_leader();
        let me = self.id();
        // Not `directory()`: that clones every member's address, on every poll.
        self.read_directory(|directory| directory.leader.filter(|hint| hint.id != me || leading))
    }

    /// The feature level the cluster runs at: from the replicated state on voters, from
    /// the leader's poll answers on agents.
    pub fn cluster_feature_level(&self) -> FeatureLevel {
        let replicated = self.state().read(|state| state.cluster.is_some().then_some(state.feature_level));
        replicated.unwrap_or_else(|| self.read_directory(|directory| directory.feature_level))
    }

    /// True on a voter that has applied state and follows (or is) a known leader: its
    /// applied state lags the leader's by at most the replication in flight, and a voter
    /// cut off from the leader forgets it within an election timeout.
    pub fn answers_reads(&self) -> bool {
        let bootstrapped = self.state().read(|state| state.cluster.is_some());
        bootstrapped && self.voters().contains(&self.settings.id) && self.raft.known_leader().is_some()
    }

    /// The admin token hash the API checks against.
    pub fn admin_token_hash(&self) -> String {
        let from_state = self.state().read(|state| state.cluster.as_ref().map(|info| info.admin_token_hash.clone()));
        from_state.unwrap_or_else(|| self.read_directory(|directory| directory.admin_token_hash.clone()))
    }

    /// The hash of the API token of `kind`: from the replicated state on a voter, as the
    /// leader last said on an agent.
    pub fn token_hash(&self, kind: ApiTokenKind) -> Option<String> {
        let from_state =
            self.state().read(|state| state.cluster.as_ref().map(|info| info.token_hash(kind).map(str::to_string)));
        from_state.unwrap_or_else(|| {
            self.read_directory(|directory| match kind {
                ApiTokenKind::Admin => Some(directory.admin_token_hash.clone()).filter(|hash| !hash.is_empty()),
                ApiTokenKind::ReadOnly => directory.read_only_token_hash.clone(),
                ApiTokenKind::Metrics => directory.metrics_token_hash.clone(),
            })
        })
    }

    /// Who holds `token`, as writes record it (`Actor`): its kind and the start of its
    /// hash; `None` for a token that is not the cluster's.
    pub fn actor(&self, token: &str) -> Option<Actor> {
        let kind = self.token_kind(token)?;
        self.token_hash(kind).map(|hash| Actor::api_token(kind, &hash))
    }

    /// What `token` may do: the kind whose hash it matches, if any.
    pub fn token_kind(&self, token: &str) -> Option<ApiTokenKind> {
        let offered = identity::secret_hash(token);
        [ApiTokenKind::Admin, ApiTokenKind::ReadOnly, ApiTokenKind::Metrics]
            .into_iter()
            .find(|kind| self.token_hash(*kind).is_some_and(|expected| identity::hashes_equal(&offered, &expected)))
    }

    /// Member addresses from the replicated state (empty on agents).
    pub fn member_addresses(&self) -> Vec<MemberAddress> {
        self.state().read(|state| {
            state
                .members
                .values()
                .map(|member| MemberAddress { id: member.id, listen: member.listen, api: member.api })
                .collect()
        })
    }

    /// The node's role as far as it knows.
    pub fn role(&self) -> Role {
        if self.voters().contains(&self.settings.id) {
            Role::Voter
        } else {
            self.read_directory(|directory| directory.role).unwrap_or(Role::Agent)
        }
    }

    /// Records the routes this node serves as a router, as the leader's last poll answer
    /// listed them (the agent's poll loop calls it); wakes [`Node::routes`]' receivers
    /// only when they changed.
    pub fn publish_routes(&self, routes: &[RouteInfo]) {
        self.routes.send_if_modified(|current| {
            if current.as_slice() == routes {
                return false;
            }
            *current = Arc::new(routes.to_vec());
            true
        });
    }

    /// The routes this node serves as a router (see [`Node::publish_routes`]); the
    /// router follows it. Kept while no leader answers: routing goes on.
    pub fn routes(&self) -> watch::Receiver<Arc<Vec<RouteInfo>>> {
        self.routes.subscribe()
    }

    /// Records why this node cannot serve `route` (`None`: it can, or no longer serves
    /// it); the agent's polls report these to the leader.
    pub fn set_route_error(&self, route: &str, error: Option<String>) {
        let mut errors = self.route_errors.lock().unwrap_or_else(PoisonError::into_inner);
        match error {
            Some(error) => errors.insert(route.to_string(), error),
            None => errors.remove(route),
        };
    }

    /// Forgets the errors of routes `keep` says this node no longer serves.
    pub fn retain_route_errors(&self, keep: impl Fn(&str) -> bool) {
        self.route_errors.lock().unwrap_or_else(PoisonError::into_inner).retain(|route, _| keep(route));
    }

    /// The routes this node cannot serve, with the reasons.
    pub fn route_errors(&self) -> BTreeMap<String, String> {
        self.route_errors.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A receiver that flips to `true` when the node shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// True once the node has begun to shut down.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Leader changes this node has observed since it started.
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes.load(Ordering::Relaxed)
    }

    /// Starts the runtime's own loops: keeping Raft in step with the node's role, and
    /// counting leader changes. They stop when [`Node::shutdown`] is called. The layers
    /// above start their own.
    pub fn spawn(self: &Arc<Self>, tasks: &mut tokio::task::JoinSet<()>) {
        tasks.spawn(follow_role(self.clone()));
        tasks.spawn(count_leader_changes(self.clone()));
    }

    /// Gives this node a fresh, uninitialized Raft state (see [`RaftHost::reset`]).
    ///
    /// # Errors
    /// As [`RaftHost::reset`]; the node should stop.
    pub async fn reset_raft(&self) -> Result<(), HostError> {
        self.raft.reset().await
    }

    /// Makes this node the first voter of a new cluster.
    ///
    /// # Errors
    /// Raft cannot be restarted or initialized (for example, it already is).
    pub async fn initialize(&self, members: BTreeMap<NodeId, openraft::BasicNode>) -> Result<(), HostError> {
        self.raft.initialize(members).await
    }

    /// Stops the loops and Raft.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        self.raft.shutdown().await;
    }
}

/// Keeps Raft in step with the node's role; stops the node when that fails.
async fn follow_role(node: Arc<Node>) {
    let outcome = fleetmesh_consensus::host::follow_role(node.raft.clone(), node.shutdown_signal()).await;
    if let Err(reason) = outcome {
        tracing::error!(%reason, "Raft could not be restarted with the voter timing; stopping the node");
        node.shutdown().await;
    }
}

async fn count_leader_changes(node: Arc<Node>) {
    let mut server = node.server_state();
    let mut shutdown = node.shutdown_signal();
    let mut leader = server.current_leader();
    // Bounded by shutdown: every pass waits for a change of the server state.
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            () = server.changed(&node.raft) => {}
        }
        let now = server.current_leader();
        if let Some(elected) = now.filter(|_| now != leader) {
            node.leader_changes.fetch_add(1, Ordering::Relaxed);
            // Every node logs it: an election on a healthy cluster is worth seeing.
            tracing::info!(leader = %elected, term = node.term(), "following a new leader");
        }
        leader = now;
    }
}
