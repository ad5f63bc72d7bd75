//! The simulated host agent: a [`LifecycleBackend`] whose hooks take a seeded duration
//! and succeed, fail or hang per the fault plan, whose DownloadBundle fetches and
//! verifies chunks from peers, and whose Install records on a simulated disk which
//! revision, manifest and file digests the host now runs.
//!
//! The real agent runtime (`fleetmesh_node::agent`: poll answers, the lifecycle
//! sequencer, the journal, reports) runs unchanged on top of it.
//!
//! DownloadBundle is modelled, not the real swarm: the host fetches each chunk it lacks
//! from a peer that holds the revision complete (a seed or a host that finished it) or
//! claims to (a corrupt peer), waiting for the chunk's declared bytes to cross its
//! downlink; a peer it cannot reach is skipped, a chunk that fails verification is
//! fetched again from another peer and the bad peer is dropped. The real swarm's piece
//! picker is exercised by the discrete-event [`crate::swarm`] simulation instead; running
//! it here would multiply the events per host without testing anything the rollout
//! invariants depend on.

pub mod catalog;
pub mod disk;
pub mod faults;
pub mod holders;
pub mod journal;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fleetmesh_node::agent::hooks::EventOutcome;
use fleetmesh_node::agent::{Journal, LifecycleBackend, TargetContext};
use fleetmesh_node::runtime::protocol::{Assignments, MemberAddress, RevisionProgress};
use fleetmesh_node::runtime::Node;
use fleetmesh_state::model::deployment::{Diagnostics, LifecycleErrorCode};
use fleetmesh_state::model::ids::{ChunkHash, RevisionId};
use fleetmesh_transport::{BoxFuture, NodeId};

use self::catalog::{file_digest, Catalog};
use self::disk::{InstallRecord, InstalledFile, InstalledRevision, SimDisk};
use self::faults::{HookFault, HostFaults};
use self::journal::JournalHandle;
use crate::net::SimNet;
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
    /// Bytes per second a host downloads.
    pub downlink_bytes_per_sec: u64,
    /// Pause before asking again when no peer with the revision is reachable.
    pub fetch_retry: Duration,
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
            fetch_retry: Duration::from_millis(500),
            download_timeout: Duration::from_secs(120),
        }
    }
}

/// What every simulated host of a run shares: the revisions' contents, the fault
/// plan, who holds which revision, and the log of installs the invariants read.
#[derive(Debug)]
pub struct HostWorld {
    seed: u64,
    net: Arc<SimNet>,
    trace: Arc<Trace>,
    /// Host timing.
    pub timing: HostTiming,
    catalog: Mutex<Catalog>,
    faults: Mutex<HostFaults>,
    holders: Mutex<BTreeMap<RevisionId, holders::Holders>>,
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
    pub fn new(seed: u64, net: Arc<SimNet>, trace: Arc<Trace>, timing: HostTiming) -> Arc<Self> {
        Arc::new(Self {
            seed,
            net,
            trace,
            timing,
            catalog: Mutex::new(Catalog::default()),
            faults: Mutex::new(HostFaults::default()),
            holders: Mutex::new(BTreeMap::new()),
            installs: Mutex::new(Vec::new()),
        })
    }

    /// Creates synthetic revision `version` (see [`Catalog::synthesize`]) held by `seeds`.
    pub fn synthesize(
        &self,
        version: u64,
        bin_chunks: u64,
        seeds: &[NodeId],
    ) -> fleetmesh_state::model::revision::Manifest {
        let manifest = lock(&self.catalog).synthesize(self.seed, version, bin_chunks);
        let mut holders = lock(&self.holders);
        let holders = holders.entry(manifest.revision_id()).or_default();
        seeds.iter().for_each(|seed| holders.insert(*seed));
        manifest
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

/// The backend of one incarnation of one simulated host.
#[derive(Debug)]
pub struct SimHost {
    world: Arc<HostWorld>,
    me: NodeId,
    disk: Arc<Mutex<SimDisk>>,
    journal: JournalHandle,
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

/// Why a simulated host could not fetch a chunk.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// No reachable peer delivered it before DownloadBundle's deadline.
    #[error("chunk {chunk} of revision {revision} could not be fetched within {timeout:?}")]
    TimedOut {
        /// The chunk.
        chunk: ChunkHash,
        /// Its revision.
        revision: RevisionId,
        /// DownloadBundle's timeout.
        timeout: Duration,
    },
    /// The world has no content for it (a revision that was never synthesized).
    #[error("no peer has chunk {chunk} of revision {revision}")]
    Unknown {
        /// The chunk.
        chunk: ChunkHash,
        /// Its revision.
        revision: RevisionId,
    },
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
        Self { world, me, disk, journal }
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

    /// Fetches one chunk, trying peers until one delivers bytes that verify.
    async fn fetch_chunk(
        &self,
        revision: RevisionId,
        chunk: ChunkHash,
        len: u32,
        deadline: tokio::time::Instant,
    ) -> Result<ChunkHash, FetchError> {
        let timing = self.world.timing;
        let mut dropped: BTreeSet<NodeId> = BTreeSet::new();
        let mut attempt = 0u64;
        // Bounded by the deadline: every pass sleeps.
        loop {
            attempt += 1;
            if tokio::time::Instant::now() >= deadline {
                return Err(FetchError::TimedOut { chunk, revision, timeout: timing.download_timeout });
            }
            let corrupt = lock(&self.world.faults).corrupt_peers.clone();
            let draw = |probe: u64| {
                draw(
                    self.world.seed,
                    &[&self.me.0.to_le_bytes(), &chunk.0, &attempt.to_le_bytes(), &probe.to_le_bytes()],
                )
            };
            let usable = |peer: NodeId| {
                peer != self.me
                    && !dropped.contains(&peer)
                    && self.world.net.reachable(self.me, peer)
                    && self.world.net.reachable(peer, self.me)
            };
            let picked = lock(&self.world.holders).get(&revision).map_or_else(
                || holders::Holders::default().pick(&corrupt, draw, usable),
                |holders| holders.pick(&corrupt, draw, usable),
            );
            let Some(peer) = picked else {
                tokio::time::sleep(timing.fetch_retry).await;
                continue;
            };
            let sending = Duration::from_nanos(u64::from(len) * 1_000_000_000 / timing.downlink_bytes_per_sec.max(1));
            tokio::time::sleep(sending + Duration::from_millis(1)).await;
            let Some(mut content) = lock(&self.world.catalog).content(&chunk) else {
                return Err(FetchError::Unknown { chunk, revision });
            };
            if corrupt.contains(&peer) {
                content[0] ^= 0x5a;
            }
            let received = ChunkHash::of(&content);
            if received == chunk {
                return Ok(received);
            }
            self.world.trace.note(&format!("host {} dropped peer {peer}: chunk {chunk} failed verification", self.me));
            dropped.insert(peer);
        }
    }

    async fn download(&self, context: &TargetContext) -> EventOutcome {
        let revision = context.assignment.revision_id;
        let Some(manifest) = self.world.manifest(&revision) else {
            return failure(LifecycleErrorCode::UnknownError, format!("no peer knows revision {revision}"));
        };
        let deadline = tokio::time::Instant::now() + self.world.timing.download_timeout;
        let mut fetched = 0u64;
        for chunk in manifest.unique_chunks() {
            if lock(&self.disk).chunks.contains_key(&chunk.hash()) {
                continue;
            }
            match self.fetch_chunk(revision, chunk.hash(), chunk.len(), deadline).await {
                Ok(received) => {
                    lock(&self.disk).chunks.insert(chunk.hash(), received);
                    fetched += u64::from(chunk.len());
                }
                Err(error) => {
                    self.note(context, "DownloadBundle failed");
                    return failure(LifecycleErrorCode::UnknownError, error.to_string());
                }
            }
        }
        {
            let mut disk = lock(&self.disk);
            disk.complete.insert(revision);
            disk.archives.insert(context.assignment.deployment_id.clone(), revision);
        }
        lock(&self.world.holders).entry(revision).or_default().insert(self.me);
        self.note(context, &format!("DownloadBundle ok ({fetched} bytes fetched)"));
        success(format!("revision {revision} unpacked ({fetched} bytes fetched)"))
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
        Box::pin(until_crash(node, self.download(context)))
    }

    fn install<'a>(&'a self, node: &'a Arc<Node>, context: &'a TargetContext) -> BoxFuture<'a, EventOutcome> {
        Box::pin(until_crash(node, self.install_now(context)))
    }

    fn on_assignments(
        &self,
        _node: &Arc<Node>,
        _assignments: &Assignments,
        _peers: &BTreeMap<RevisionId, Vec<MemberAddress>>,
    ) {
        // Prefetch is not simulated: a host fetches in DownloadBundle.
    }

    fn revision_progress(&self) -> Vec<RevisionProgress> {
        let disk = lock(&self.disk);
        disk.complete
            .iter()
            .map(|revision| {
                let bytes_held = self.world.unique_bytes(revision).unwrap_or(0);
                RevisionProgress { revision_id: *revision, bytes_held, complete: true }
            })
            .collect()
    }
}
