//! The simulated host agent: a [`LifecycleBackend`] whose hooks take a seeded duration
//! and succeed, fail or hang per the fault plan, whose DownloadBundle fetches and
//! verifies chunks from peers, and whose Install records on a simulated disk which
//! revision, manifest and file digests the host now runs.
//!
//! The real agent runtime (`fleetmesh_node::agent`: poll answers, the lifecycle
//! sequencer, the journal, reports) runs unchanged on top of it.
//!
//! DownloadBundle runs the node's own swarm download over the simulated network: the
//! fetch loop, its session and the swarm core's piece picker, asking the peers the
//! leader listed in poll answers for have-sets and pieces through the node protocol;
//! only the chunk store and the links' bandwidth are simulated ([`swarm`]). Every host
//! answers its peers' requests from its disk ([`swarm::HostRevisions`]).

pub mod catalog;
pub mod disk;
pub mod faults;
pub mod journal;
pub mod swarm;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fleetmesh_core::swarm::PieceMap;
use fleetmesh_node::agent::hooks::EventOutcome;
use fleetmesh_node::agent::{Journal, LifecycleBackend, TargetContext};
use fleetmesh_node::revision::service::{download, new_download};
use fleetmesh_node::runtime::protocol::{Assignments, MemberAddress, RevisionProgress};
use fleetmesh_node::runtime::Node;
use fleetmesh_state::model::deployment::{Diagnostics, LifecycleErrorCode};
use fleetmesh_state::model::ids::{ChunkHash, RevisionId};
use fleetmesh_transport::{BoxFuture, NodeId};

use self::catalog::{file_digest, Catalog};
use self::disk::{InstallRecord, InstalledFile, InstalledRevision, SimDisk};
use self::faults::{HookFault, HostFaults};
use self::journal::JournalHandle;
use self::swarm::{HostStore, Links, SwarmState};
use crate::trace::Trace;

/// How long simulated host work takes.
#[derive(Clone, Copy, Debug)]
pub struct HostTiming {
    /// Shortest hook run.
    pub hook_min: Duration,
    /// Longest hook run (uniform between, seeded per host, deployment and event).
    pub hook_max: Duration,
    /// A hanging hook is killed after this long (the appspec's `timeout`).
    pub hook_timeout: Duration,
    /// Bytes per second a host sends, and receives (each way, see [`swarm`]).
    pub downlink_bytes_per_sec: u64,
    /// DownloadBundle fails when the revision is not complete after this long.
    pub download_timeout: Duration,
}

impl Default for HostTiming {
    fn default() -> Self {
        Self {
            hook_min: Duration::from_millis(100),
            hook_max: Duration::from_millis(1500),
            hook_timeout: Duration::from_secs(60),
            downlink_bytes_per_sec: 125_000_000,
            download_timeout: Duration::from_secs(120),
        }
    }
}

/// What every simulated host of a run shares: the revisions' contents, the fault
/// plan, who holds which revision, and the log of installs the invariants read.
#[derive(Debug)]
pub struct HostWorld {
    seed: u64,
    trace: Arc<Trace>,
    /// Host timing.
    pub timing: HostTiming,
    catalog: Mutex<Catalog>,
    /// Piece maps of the synthetic revisions, made once each.
    piece_maps: Mutex<BTreeMap<RevisionId, Arc<PieceMap>>>,
    faults: Mutex<HostFaults>,
    links: Mutex<Links>,
    /// Every download that completed: host, revision, virtual start and end.
    downloads: Mutex<Vec<DownloadRecord>>,
    installs: Mutex<Vec<InstallRecord>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A number drawn from the seed and a label: the same inputs give the same number,
/// whatever order tasks run in.
fn draw(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut hasher = blake3::Hasher::new_derive_key("fleetmesh-sim host draw v1");
    hasher.update(&seed.to_le_bytes());
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    u64::from_le_bytes(hasher.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

impl HostWorld {
    /// A world for one run.
    pub fn new(seed: u64, trace: Arc<Trace>, timing: HostTiming) -> Arc<Self> {
        Arc::new(Self {
            seed,
            trace,
            timing,
            catalog: Mutex::new(Catalog::default()),
            piece_maps: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(HostFaults::default()),
            links: Mutex::new(Links::default()),
            downloads: Mutex::new(Vec::new()),
            installs: Mutex::new(Vec::new()),
        })
    }

    /// Creates synthetic revision `version` (see [`Catalog::synthesize`]); the caller
    /// puts its chunks on the disk of the host that pushed it.
    pub fn synthesize(&self, version: u64, bin_chunks: u64) -> fleetmesh_state::model::revision::Manifest {
        lock(&self.catalog).synthesize(self.seed, version, bin_chunks)
    }

    /// The piece map of a synthetic revision (as a node makes it from the manifest).
    pub fn piece_map(&self, revision: &RevisionId) -> Option<Arc<PieceMap>> {
        if let Some(map) = lock(&self.piece_maps).get(revision) {
            return Some(map.clone());
        }
        let manifest = self.manifest(revision)?;
        let map = Arc::new(PieceMap::new(&manifest.unique_chunks()));
        lock(&self.piece_maps).insert(*revision, map.clone());
        Some(map)
    }

    /// `node` received `revision` by a push: it super-seeds it, as a node does.
    pub fn pushed(&self, node: NodeId, revision: RevisionId) {
        if let Some(map) = self.piece_map(&revision) {
            lock(&self.links).pushed(node, revision, map.len());
        }
    }

    /// `node` crashed: what it kept in memory about its uploads is gone.
    pub fn crashed(&self, node: NodeId) {
        lock(&self.links).crashed(node);
    }

    /// Declared bytes of every piece sent between hosts so far.
    pub fn bytes_sent(&self) -> u64 {
        lock(&self.links).bytes_sent()
    }

    /// Every download that fetched something and completed, in completion order.
    pub fn downloads(&self) -> Vec<DownloadRecord> {
        lock(&self.downloads).clone()
    }

    /// The bytes `node`'s uplink has sent to peers' piece requests, and the time it
    /// spent sending them.
    pub fn uplink_sent(&self, node: NodeId) -> (u64, std::time::Duration) {
        lock(&self.links).sent(node)
    }

    /// The time `node`'s downlink spent receiving piece answers.
    pub fn downlink_busy(&self, node: NodeId) -> std::time::Duration {
        lock(&self.links).received(node)
    }

    /// When the last first copy an origin seed handed out was through.
    pub fn first_copies_out(&self) -> Option<tokio::time::Instant> {
        lock(&self.links).first_copies_out()
    }

    /// The manifest of a synthetic revision.
    pub fn manifest(&self, revision: &RevisionId) -> Option<fleetmesh_state::model::revision::Manifest> {
        lock(&self.catalog).manifest(revision)
    }

    /// Bytes of `revision`'s distinct chunks, if the world has it.
    pub fn unique_bytes(&self, revision: &RevisionId) -> Option<u64> {
        lock(&self.catalog).unique_bytes(revision)
    }

    /// Changes the fault plan.
    pub fn update_faults(&self, update: impl FnOnce(&mut HostFaults)) {
        update(&mut lock(&self.faults));
    }

    /// Takes the installs recorded since the last call, oldest first.
    pub fn drain_installs(&self) -> Vec<InstallRecord> {
        std::mem::take(&mut lock(&self.installs))
    }
}

/// One completed download of a revision by a host (virtual times).
#[derive(Clone, Copy, Debug)]
pub struct DownloadRecord {
    /// The host.
    pub node: NodeId,
    /// The revision.
    pub revision: RevisionId,
    /// When its DownloadBundle started fetching.
    pub started: tokio::time::Instant,
    /// When the last piece was stored.
    pub ended: tokio::time::Instant,
}

/// The backend of one incarnation of one simulated host.
#[derive(Debug)]
pub struct SimHost {
    world: Arc<HostWorld>,
    me: NodeId,
    disk: Arc<Mutex<SimDisk>>,
    journal: JournalHandle,
    /// Peers listed by the leader and downloads running (this incarnation's memory).
    swarm: Arc<Mutex<SwarmState>>,
}

fn outcome(succeeded: bool, code: LifecycleErrorCode, message: String) -> EventOutcome {
    EventOutcome {
        succeeded,
        diagnostics: Diagnostics { error_code: code, script_name: String::new(), message, log_tail: String::new() },
    }
}

fn success(message: String) -> EventOutcome {
    outcome(true, LifecycleErrorCode::Success, message)
}

fn failure(code: LifecycleErrorCode, message: String) -> EventOutcome {
    outcome(false, code, message)
}

/// Runs `work` unless the node crashes first: a crashed node's lifecycle tasks outlive
/// its task set, and must stop at their next step instead of acting for a dead host.
async fn until_crash(node: &Node, work: impl Future<Output = EventOutcome>) -> EventOutcome {
    let mut shutdown = node.shutdown_signal();
    let crashed = || failure(LifecycleErrorCode::UnknownError, "the host crashed".to_string());
    if *shutdown.borrow_and_update() {
        return crashed();
    }
    tokio::select! {
        biased;
        _ = shutdown.changed() => crashed(),
        outcome = work => outcome,
    }
}

impl SimHost {
    /// The backend of host `me`'s next incarnation, on its surviving disk and journal.
    pub fn new(world: Arc<HostWorld>, me: NodeId, disk: Arc<Mutex<SimDisk>>, journal: JournalHandle) -> Self {
        Self { world, me, disk, journal, swarm: Arc::default() }
    }

    /// This incarnation's downloads and the peers listed for them.
    pub fn swarm(&self) -> Arc<Mutex<SwarmState>> {
        self.swarm.clone()
    }

    fn note(&self, context: &TargetContext, text: &str) {
        self.world.trace.note(&format!("host {} {}: {text}", self.me, context.assignment.deployment_id));
    }

    fn hook_duration(&self, context: &TargetContext, event: &str) -> Duration {
        let timing = &self.world.timing;
        let span = timing.hook_max.saturating_sub(timing.hook_min).as_millis() as u64;
        let drawn = draw(
            self.world.seed,
            &[&self.me.0.to_le_bytes(), context.assignment.deployment_id.0.as_bytes(), event.as_bytes()],
        );
        timing.hook_min + Duration::from_millis(drawn % (span + 1))
    }

    async fn hook(&self, context: &TargetContext, event: &str) -> EventOutcome {
        let group = &context.assignment.deployment_group_id;
        if event == "ApplicationStop" && !lock(&self.disk).current.contains_key(group) {
            return success("no earlier install of this deployment group on this host: nothing to stop".into());
        }
        let fault = lock(&self.world.faults).hook(self.me, event);
        let result = match fault {
            None => {
                tokio::time::sleep(self.hook_duration(context, event)).await;
                success(format!("{event}: simulated scripts succeeded"))
            }
            Some(HookFault::Fail) => {
                tokio::time::sleep(self.hook_duration(context, event)).await;
                failure(LifecycleErrorCode::ScriptFailed, format!("{event}: simulated script exited with 1"))
            }
            Some(HookFault::Hang) => {
                let timeout = self.world.timing.hook_timeout;
                tokio::time::sleep(timeout).await;
                failure(LifecycleErrorCode::ScriptTimedOut, format!("{event}: simulated script hung past {timeout:?}"))
            }
        };
        self.note(context, &format!("{event} {}", if result.succeeded { "ok" } else { "failed" }));
        result
    }

    /// DownloadBundle: the node's swarm download of the revision, until it is complete,
    /// fails, or the download timeout passes.
    async fn download(&self, node: &Arc<Node>, context: &TargetContext) -> EventOutcome {
        let revision = context.assignment.revision_id;
        let (Some(manifest), Some(map)) = (self.world.manifest(&revision), self.world.piece_map(&revision)) else {
            return failure(LifecycleErrorCode::UnknownError, format!("no peer knows revision {revision}"));
        };
        let held = self.disk.clone();
        let fetch = new_download(self.me, revision, map, move |hash| lock(&held).chunks.contains_key(&hash));
        let missing = fetch.map().total_bytes() - fetch.bytes_held();
        if !fetch.is_complete() {
            let store = Arc::new(HostStore::new(self.disk.clone(), self.swarm.clone()));
            let timeout = self.world.timing.download_timeout;
            let started = tokio::time::Instant::now();
            let result = tokio::time::timeout(timeout, download(node, store, revision, fetch)).await;
            lock(&self.swarm).ended(revision);
            let reason = match result {
                Ok(Ok(_)) => {
                    let ended = tokio::time::Instant::now();
                    lock(&self.world.downloads).push(DownloadRecord { node: self.me, revision, started, ended });
                    None
                }
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some(format!("revision {revision} was not complete within {timeout:?}")),
            };
            if let Some(reason) = reason {
                self.note(context, "DownloadBundle failed");
                return failure(LifecycleErrorCode::UnknownError, reason);
            }
        }
        {
            let mut disk = lock(&self.disk);
            disk.complete.insert(manifest.revision_id());
            disk.archives.insert(context.assignment.deployment_id.clone(), revision);
        }
        self.note(context, &format!("DownloadBundle ok ({missing} bytes fetched)"));
        success(format!("revision {revision} unpacked ({missing} bytes fetched)"))
    }

    async fn install_now(&self, context: &TargetContext) -> EventOutcome {
        let assignment = &context.assignment;
        let Some(revision) = lock(&self.disk).archives.get(&assignment.deployment_id).copied() else {
            return failure(LifecycleErrorCode::UnknownError, "the bundle of this deployment is not unpacked".into());
        };
        let Some(manifest) = self.world.manifest(&revision) else {
            return failure(LifecycleErrorCode::UnknownError, format!("revision {revision} is unknown"));
        };
        let files = {
            let disk = lock(&self.disk);
            let mut files = Vec::new();
            for (path, size, chunks) in manifest.files() {
                let received: Option<Vec<ChunkHash>> =
                    chunks.iter().map(|chunk| disk.chunks.get(&chunk.hash()).copied()).collect();
                let Some(received) = received else {
                    return failure(LifecycleErrorCode::UnknownError, format!("{path}: a chunk is missing"));
                };
                files.push(InstalledFile { path: path.to_string(), size, digest: file_digest(&received) });
            }
            files
        };
        tokio::time::sleep(self.hook_duration(context, "Install")).await;
        let installed = InstalledRevision {
            deployment_id: assignment.deployment_id.clone(),
            revision_id: revision,
            manifest_id: manifest.revision_id(),
            files,
        };
        {
            let mut disk = lock(&self.disk);
            disk.current.insert(assignment.deployment_group_id.clone(), installed.clone());
            disk.history.push((assignment.deployment_group_id.clone(), assignment.deployment_id.clone(), revision));
        }
        lock(&self.world.installs).push(InstallRecord {
            node: self.me,
            deployment_group_id: assignment.deployment_group_id.clone(),
            installed,
        });
        self.note(context, &format!("Install ok (revision {revision})"));
        success(format!("revision {revision} installed"))
    }
}

impl LifecycleBackend for SimHost {
    fn journal(&self) -> &dyn Journal {
        &self.journal
    }

    fn run_hooks<'a>(
        &'a self,
        node: &'a Arc<Node>,
        context: &'a TargetContext,
        event: &'a str,
    ) -> BoxFuture<'a, EventOutcome> {
        Box::pin(until_crash(node, self.hook(context, event)))
    }

    fn download_bundle<'a>(&'a self, node: &'a Arc<Node>, context: &'a TargetContext) -> BoxFuture<'a, EventOutcome> {
        Box::pin(until_crash(node, self.download(node, context)))
    }

    fn install<'a>(&'a self, node: &'a Arc<Node>, context: &'a TargetContext) -> BoxFuture<'a, EventOutcome> {
        Box::pin(until_crash(node, self.install_now(context)))
    }

    fn on_assignments(
        &self,
        _node: &Arc<Node>,
        _assignments: &Assignments,
        peers: &BTreeMap<RevisionId, Vec<MemberAddress>>,
    ) {
        // Prefetch is not simulated: a host fetches in DownloadBundle, from these peers.
        lock(&self.swarm).take_peers(peers);
    }

    fn revision_progress(&self) -> Vec<RevisionProgress> {
        let disk = lock(&self.disk);
        let complete = disk.complete.iter().map(|revision| {
            let bytes_held = self.world.unique_bytes(revision).unwrap_or(0);
            RevisionProgress { revision_id: *revision, bytes_held, complete: true }
        });
        let swarm = lock(&self.swarm);
        let fetching = swarm
            .fetching()
            .filter(|(revision, _)| !disk.complete.contains(revision))
            .map(|(revision_id, bytes_held)| RevisionProgress { revision_id, bytes_held, complete: false });
        complete.chain(fetching).collect()
    }
}
