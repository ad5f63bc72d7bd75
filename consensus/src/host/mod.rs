//! One node's Raft: the instance, its store, and its life — open dormant, activate with
//! the voter timing, reset to a fresh agent, shut down — plus the leadership view that
//! the layers above subscribe to.
//!
//! A [`RaftHost`] owns the only running Raft instance of a node and replaces it under a
//! lock, so two instances never run on one store. Everything above reads leadership
//! through it ([`RaftHost::is_leader`], [`RaftHost::leads_with_current_state`]) or
//! subscribes to changes ([`ServerStateWatch`]); nothing above holds an instance across
//! a replacement.
//!
//! ```text
//!  open (dormant) ──membership lists this node as voter──▶ activate (voter timing)
//!        ▲                                                      │
//!        └──────────── reset (erase log, vote, snapshot) ◀──────┘ stale voter
//!  every change of vote, role, leader or voters ──▶ ServerStateWatch::changed
//! ```

mod follow;
mod watch;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use fleetmesh_transport::NodeId;
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, ServerState};

pub use self::follow::follow_role;
pub use self::watch::ServerStateWatch;
use crate::raft::StateMachineStore;
use crate::raft::{
    campaign, raft_config, LogStore, NetworkFactory, Raft, RaftRequest, RaftResponse, RaftTiming, RaftTransport,
    StateHandle,
};

/// Why opening, replacing or initializing a Raft instance failed. Every variant but
/// [`HostError::Initialize`] means the node cannot go on and should stop.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The timing is inconsistent (heartbeat at or above the election timeout).
    #[error("invalid Raft timing: {0}")]
    Config(#[from] openraft::ConfigError),
    /// The store could not be read, written or erased.
    #[error("the Raft store failed: {0}")]
    Storage(String),
    /// openraft refused to start or stop.
    #[error("raft failed: {0}")]
    Fatal(String),
    /// The cluster could not be initialized (for example, it already is).
    #[error("cannot initialize the cluster: {0}")]
    Initialize(#[from] RaftError<NodeId, InitializeError<NodeId, BasicNode>>),
}

/// How [`RaftHost::open_instance`] opens the state machine.
enum StateOpen {
    /// From the store, into a new handle (a node starting).
    Load,
    /// From the store, into an existing handle (after a reset erased the store).
    Reload(Arc<StateHandle>),
    /// Keeping an existing handle as it is (a restart on an untouched store).
    Resume(Arc<StateHandle>),
}

/// What [`RaftHost::replace`] does to the store between the two instances.
enum Replace {
    /// Erase log, vote and snapshot and reopen dormant: the node becomes a fresh agent.
    Erase,
    /// Keep everything and reopen with the voter timing.
    Activate,
}

/// The running Raft instance and its metrics receiver, kept together so that the hot
/// reads (is this node the leader, the term, the known leader: every poll and every
/// leader tick ask) borrow the metrics in place instead of cloning handles.
struct Instance {
    raft: Raft,
    metrics: tokio::sync::watch::Receiver<Metrics>,
}

/// openraft's metrics for this type configuration.
pub type Metrics = openraft::RaftMetrics<NodeId, BasicNode>;

impl Instance {
    fn new(raft: Raft) -> Self {
        let metrics = raft.metrics();
        Self { raft, metrics }
    }
}

/// One node's Raft instance and store.
pub struct RaftHost {
    id: NodeId,
    /// The timing this node uses once it is a voter.
    voter_timing: RaftTiming,
    raft: RwLock<Instance>,
    /// Whether `raft` runs with the voter timing rather than [`RaftTiming::dormant`].
    active: AtomicBool,
    /// Set once by [`RaftHost::shutdown`]; no instance is opened after it.
    stopped: AtomicBool,
    /// Held while the instance is replaced (activation, reset, shutdown), so two of those
    /// never open two instances on one store.
    swap: tokio::sync::Mutex<()>,
    /// Peers' Raft RPCs hold it shared; a replacement holds it alone, so an RPC that
    /// arrives meanwhile waits a few milliseconds for the new instance instead of meeting
    /// the stopped one (which made every routine promotion log errors on both sides).
    serving: tokio::sync::RwLock<()>,
    /// The Raft log and snapshots (kept to reset them, see [`RaftHost::reset`]).
    db: Arc<redb::Database>,
    state: Arc<StateHandle>,
    transport: Arc<dyn RaftTransport>,
    /// Whether the election timer of the running instance heard a leader within the
    /// lease (true while no timer runs: a dormant instance never campaigns).
    hears_leader: Arc<AtomicBool>,
}

impl std::fmt::Debug for RaftHost {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("RaftHost").field("id", &self.id).finish_non_exhaustive()
    }
}

impl RaftHost {
    /// Opens node `id`'s Raft on `db` (file-backed or in-memory redb), dormant: most
    /// nodes are agents, and a voter gets the voter timing as soon as its membership
    /// says so ([`follow_role`]).
    ///
    /// # Errors
    /// The stored state cannot be read, or `voter_timing` is invalid.
    pub async fn open(
        id: NodeId,
        db: Arc<redb::Database>,
        transport: Arc<dyn RaftTransport>,
        voter_timing: RaftTiming,
    ) -> Result<Self, HostError> {
        raft_config(voter_timing)?;
        let (raft, state) =
            Self::open_instance(id, db.clone(), transport.clone(), StateOpen::Load, RaftTiming::dormant(), None)
                .await?;
        Ok(Self {
            id,
            voter_timing,
            raft: RwLock::new(Instance::new(raft)),
            active: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            swap: tokio::sync::Mutex::new(()),
            serving: tokio::sync::RwLock::new(()),
            db,
            state,
            transport,
            hears_leader: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Opens one Raft instance; with a voter timing, its election timer (`campaign`)
    /// runs too and keeps `hears_leader` current.
    async fn open_instance(
        id: NodeId,
        db: Arc<redb::Database>,
        transport: Arc<dyn RaftTransport>,
        state: StateOpen,
        timing: RaftTiming,
        hears_leader: Option<Arc<AtomicBool>>,
    ) -> Result<(Raft, Arc<StateHandle>), HostError> {
        let config = Arc::new(raft_config(timing)?);
        let log_store = LogStore::new(db.clone());
        let storage = |error: openraft::StorageError<NodeId>| HostError::Storage(error.to_string());
        let state_machine = match state {
            StateOpen::Load => StateMachineStore::open(db).map_err(storage)?,
            StateOpen::Reload(handle) => StateMachineStore::reopen(db, handle).map_err(storage)?,
            StateOpen::Resume(handle) => StateMachineStore::resume(db, handle),
        };
        let state = state_machine.handle();
        let network = NetworkFactory::new(transport.clone());
        let raft = Raft::new(id, config, network, log_store, state_machine)
            .await
            .map_err(|error| HostError::Fatal(error.to_string()))?;
        match hears_leader {
            Some(hears_leader) if timing != RaftTiming::dormant() => {
                // The election timer with pre-vote; it ends with the instance.
                tokio::spawn(campaign(raft.clone(), transport, timing, hears_leader));
            }
            Some(hears_leader) => hears_leader.store(true, Ordering::Relaxed),
            None => {}
        }
        Ok((raft, state))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The running instance. Do not hold it across an await that may outlive a
    /// replacement; ask again instead.
    pub fn raft(&self) -> Raft {
        self.raft.read().unwrap_or_else(PoisonError::into_inner).raft.clone()
    }

    /// Reads the running instance's current metrics in place (no handle is cloned).
    pub fn with_metrics<T>(&self, read: impl FnOnce(&Metrics) -> T) -> T {
        let instance = self.raft.read().unwrap_or_else(PoisonError::into_inner);
        let metrics = instance.metrics.borrow();
        read(&metrics)
    }

    /// The applied cluster state. The handle survives replacements: a reset empties it,
    /// an activation keeps it.
    pub fn state(&self) -> &Arc<StateHandle> {
        &self.state
    }

    /// The voter timing this node uses once it is a voter.
    pub fn voter_timing(&self) -> RaftTiming {
        self.voter_timing
    }

    /// True when the instance runs with the voter timing.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// A watch of this node's vote, role, leader and voter set.
    pub fn server_state(&self) -> ServerStateWatch {
        ServerStateWatch::new(self)
    }

    /// True when this node is the Raft leader.
    pub fn is_leader(&self) -> bool {
        // Borrowed, not cloned: this runs on every poll and every leader tick.
        self.with_metrics(|metrics| metrics.state == ServerState::Leader && metrics.current_leader == Some(self.id))
    }

    /// True on a leader that has applied an entry of its own term, and with it every
    /// entry of earlier terms. Decisions that read the state and write back (the rollout
    /// engine, autopilot) wait for this: a new leader's applied state can lack entries
    /// the old leader replicated to it but had not committed, and planning on it would
    /// contradict them once they commit (the simulator found a new leader starting a
    /// second OneAtATime target while the old leader's start of another was still in
    /// its log: leader-kill-mid-wave seed 3).
    pub fn leads_with_current_state(&self) -> bool {
        self.with_metrics(|metrics| {
            metrics.state == ServerState::Leader
                && metrics.current_leader == Some(self.id)
                && metrics.last_applied.is_some_and(|applied| applied.leader_id.term == metrics.current_term)
        })
    }

    /// The current Raft term.
    pub fn term(&self) -> u64 {
        self.with_metrics(|metrics| metrics.current_term)
    }

    /// The leader Raft knows, with its Raft address, unless that is this node and it has
    /// left the leader state (a node whose Raft has stepped down can still hold a
    /// committed vote for itself, and naming itself would send pollers in a loop).
    pub fn known_leader(&self) -> Option<(NodeId, String)> {
        self.with_metrics(|metrics| {
            let leading = metrics.state == ServerState::Leader;
            let leader = metrics.current_leader.filter(|&leader| leader != self.id || leading)?;
            let node = metrics.membership_config.membership().get_node(&leader)?;
            Some((leader, node.addr.clone()))
        })
    }

    /// Whether this voter's election timer heard from a leader within the leader lease
    /// (always true on an agent, whose dormant instance never campaigns). Unlike
    /// openraft's `current_leader`, which keeps the last leader it knew while no
    /// election happens, this turns false once the leader falls silent.
    pub fn hears_leader(&self) -> bool {
        self.hears_leader.load(Ordering::Relaxed)
    }

    /// Milliseconds since the leader last heard from a quorum, on a leader.
    pub fn millis_since_quorum_ack(&self) -> Option<u64> {
        self.with_metrics(|metrics| metrics.millis_since_quorum_ack)
    }

    /// Replaces this node's Raft state by a fresh, uninitialized one: stops the instance,
    /// erases its log, vote and snapshot, and opens a new dormant instance on the empty
    /// store (the applied state becomes empty). The node is then an agent like one that
    /// just joined, and the leader may promote it again.
    ///
    /// Only for a node the cluster no longer counts as a voter (a stale voter).
    ///
    /// # Errors
    /// Raft does not stop, or the store cannot be erased or reopened; the node should stop.
    pub async fn reset(&self) -> Result<(), HostError> {
        let _swap = self.swap.lock().await;
        if self.stopped.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.replace(Replace::Erase).await
    }

    /// Gives this node's Raft the voter timing, if it does not have it yet: stops the
    /// dormant instance and opens another on the same store, log, vote, snapshot and
    /// applied state untouched, so it is a restart like a process restart, without the
    /// replay. Raft calls that arrive in between fail and are retried by their senders.
    ///
    /// # Errors
    /// The old instance does not stop or the new one cannot open; the node should stop.
    pub async fn activate(&self) -> Result<(), HostError> {
        let _swap = self.swap.lock().await;
        if self.is_active() || self.stopped.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.replace(Replace::Activate).await
    }

    /// Answers a peer's Raft RPC with the running instance, waiting while it is being
    /// replaced.
    pub async fn serve(&self, request: RaftRequest) -> RaftResponse {
        let _serving = self.serving.read().await;
        crate::raft::serve(&self.raft(), request).await
    }

    /// Stops the running instance and opens another on the same store: the one sequence
    /// behind [`Self::reset`] and [`Self::activate`]. The caller holds `swap`.
    async fn replace(&self, how: Replace) -> Result<(), HostError> {
        let _serving = self.serving.write().await;
        let old = self.raft();
        old.shutdown()
            .await
            .map_err(|error| HostError::Fatal(format!("the old Raft instance did not stop: {error}")))?;
        let (state, timing, active) = match how {
            Replace::Erase => {
                LogStore::reset(&self.db)
                    .map_err(|error| HostError::Storage(format!("cannot erase the Raft state: {error}")))?;
                (StateOpen::Reload(self.state.clone()), RaftTiming::dormant(), false)
            }
            Replace::Activate => (StateOpen::Resume(self.state.clone()), self.voter_timing, true),
        };
        let hears_leader = Some(self.hears_leader.clone());
        let (raft, _) =
            Self::open_instance(self.id, self.db.clone(), self.transport.clone(), state, timing, hears_leader).await?;
        *self.raft.write().unwrap_or_else(PoisonError::into_inner) = Instance::new(raft);
        self.active.store(active, Ordering::Relaxed);
        Ok(())
    }

    /// Makes this node the first voter of a new cluster: gives Raft the voter timing,
    /// then initializes it with `members`.
    ///
    /// # Errors
    /// Raft cannot be restarted or initialized (for example, it already is).
    pub async fn initialize(&self, members: BTreeMap<NodeId, BasicNode>) -> Result<(), HostError> {
        self.activate().await?;
        self.raft().initialize(members).await?;
        Ok(())
    }

    /// True when this node's Raft has been initialized (it is or was part of a cluster).
    ///
    /// Asked of the running instance while no replacement is under way: a restarted voter
    /// is activated as soon as its leader calls, and the instance asked must not be the
    /// one being stopped (the e2e suite saw a restart fail with "raft stopped").
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn is_initialized(&self) -> Result<bool, HostError> {
        let _serving = self.serving.read().await;
        self.raft().is_initialized().await.map_err(|error| HostError::Fatal(error.to_string()))
    }

    /// Stops Raft for good; later replacements do nothing.
    pub async fn shutdown(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        let _swap = self.swap.lock().await;
        if let Err(error) = self.raft().shutdown().await {
            // Stopping an instance that already failed is the only way here; its error
            // has been logged by openraft and changes nothing about stopping.
            tracing::debug!(%error, "raft was already stopped");
        }
    }
}
