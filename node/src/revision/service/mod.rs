//! A node's revision content: the chunk store, the manifests it knows, the swarm
//! downloads it runs and the pieces it serves to peers.
//!
//! ```text
//!  poll answer (prefetch + swarm peers) ──▶ fetch::run (one per revision) ──GetPiece──▶ peers
//!                                               │ verified chunks              ▲
//!                                               ▼                              │ serve()
//!                                          ChunkStore ◀── uploads (push) ──────┘
//!  DownloadBundle ──wait_complete──▶ complete? ──▶ materialize
//! ```
//!
//! Every decision (what is tracked, fetched, advertised, served, kept) is made by the
//! [`book::Book`] core, a plain struct; [`RevisionService`] is its shell and does the
//! I/O: chunk store, manifest files, network calls and download tasks. The shell holds
//! the core behind one short lock, taken only to call one core method and never across
//! an `.await` or a disk or network operation ([`RevisionService::book`]).
//!
//! A single lock rather than an owner task is deliberate: the serve path answers every
//! piece request of every peer and is on the hot path of swarm throughput, and a task
//! hop per piece would cost more than an uncontended lock held for a few map lookups.

mod book;
mod error;
mod fetch;
mod import;
mod origin;
mod requests;
mod serve;
mod uploads;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetmesh_state::model::ids::{ChunkHash, RevisionId};
use fleetmesh_state::model::revision::Manifest;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::revision::{ChunkStore, MaterializeError, StoreError};
use crate::runtime::protocol::{self, Assignments, MemberAddress, Request, Response, RevisionProgress};
use crate::runtime::repeats::RepeatLimit;
use crate::runtime::Node;
use book::{Book, FetchStart, Tracked, Wake};
pub use error::{FetchError, ManifestFetchError, NoHolder, UploadError};
pub use fetch::{download, new_download, DownloadStore};
use fleetmesh_core::swarm::{Bitfield, PieceMap};
pub use import::ImportError;
pub use origin::{OriginDecision, Origins};
pub use requests::RevisionRequests;
pub use serve::upload_slots;
pub use uploads::{ChunkUploads, HonestUploads};

/// "fetch stopped" warnings: one per revision per 10 s (a waiter restarts a failing
/// download at once, and each failure would log).
static FETCH_STOPPED: RepeatLimit = RepeatLimit::new(Duration::from_secs(10));

/// Revisions whose chunks are kept per application besides the current ones.
pub const REVISIONS_KEPT_PER_APPLICATION: usize = 5;

/// The revision content of one node.
pub struct RevisionService {
    store: ChunkStore,
    manifests_dir: PathBuf,
    /// The decisions; locked only for one core call at a time (see the module docs).
    book: Mutex<Book>,
    /// Bumped whenever a tracked revision makes progress; waiters watch it.
    progress_tick: watch::Sender<u64>,
    bytes_fetched: AtomicU64,
    bytes_served: AtomicU64,
    /// What happens to each chunk served to a peer ([`HonestUploads`] in production).
    chunk_uploads: Arc<dyn ChunkUploads>,
    /// Revisions whose last download failed because some chunk had no live holder;
    /// a waiter takes the failure instead of restarting the download.
    unavailable: Mutex<BTreeMap<RevisionId, NoHolder>>,
}

impl std::fmt::Debug for RevisionService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("RevisionService").field("store", &self.store.dir()).finish_non_exhaustive()
    }
}

impl RevisionService {
    /// Opens the chunk store and manifest cache under `data_dir`, serving chunks as
    /// stored.
    ///
    /// # Errors
    /// The directories cannot be created or listed.
    pub fn open(data_dir: &Path) -> Result<Arc<Self>, StoreError> {
        Self::open_with(data_dir, Arc::new(HonestUploads))
    }

    /// Opens the chunk store and manifest cache under `data_dir`; every chunk served to
    /// a peer passes through `chunk_uploads` on its way out.
    ///
    /// # Errors
    /// The directories cannot be created or listed.
    pub fn open_with(data_dir: &Path, chunk_uploads: Arc<dyn ChunkUploads>) -> Result<Arc<Self>, StoreError> {
        let store = ChunkStore::open(&data_dir.join("chunks"))?;
        let manifests_dir = data_dir.join("manifests");
        std::fs::create_dir_all(&manifests_dir)
            .map_err(|source| StoreError::Io { path: manifests_dir.clone(), source })?;
        Ok(Arc::new(Self {
            store,
            manifests_dir,
            book: Mutex::new(Book::new(serve::upload_slots())),
            progress_tick: watch::channel(0).0,
            bytes_fetched: AtomicU64::new(0),
            bytes_served: AtomicU64::new(0),
            chunk_uploads,
            unavailable: Mutex::new(BTreeMap::new()),
        }))
    }

    /// The chunk store.
    pub fn store(&self) -> &ChunkStore {
        &self.store
    }

    /// Bytes this process fetched from peers.
    pub fn bytes_fetched(&self) -> u64 {
        self.bytes_fetched.load(Ordering::Relaxed)
    }

    /// Bytes this process served to peers.
    pub fn bytes_served(&self) -> u64 {
        self.bytes_served.load(Ordering::Relaxed)
    }

    fn manifest_path(&self, revision: RevisionId) -> PathBuf {
        self.manifests_dir.join(format!("{revision}.json"))
    }

    /// Calls one method of the core under its lock. The guard lives only inside this
    /// call, so no caller can hold it across an `.await`, a store access or a file.
    fn book<T>(&self, decide: impl FnOnce(&mut Book) -> T) -> T {
        let mut book = self.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        decide(&mut book)
    }

    /// Bumps the progress watch when the core says so.
    fn wake(&self, wake: Wake) {
        match wake {
            Wake::Waiters => self.progress_tick.send_modify(|tick| *tick = tick.wrapping_add(1)),
        }
    }

    /// A manifest this node has, checked against its id.
    pub fn manifest(&self, revision: RevisionId) -> Option<Arc<Manifest>> {
        let cached = self.book(|book| book.manifest(revision));
        cached.or_else(|| self.load_manifest(revision))
    }

    /// Reads a manifest saved earlier, checked against its id, and remembers it.
    fn load_manifest(&self, revision: RevisionId) -> Option<Arc<Manifest>> {
        let bytes = std::fs::read(self.manifest_path(revision)).ok()?;
        let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
        if manifest.revision_id() != revision || manifest.validate().is_err() {
            return None;
        }
        let manifest = Arc::new(manifest);
        Some(self.book(|book| book.remember(manifest)))
    }

    /// Checks a manifest hashes to its id and writes it to its file.
    fn write_manifest(&self, manifest: &Manifest) -> Result<(), ManifestFetchError> {
        manifest.validate()?;
        let path = self.manifest_path(manifest.revision_id());
        crate::runtime::identity::write_private_file(&path, &manifest.canonical_bytes())?;
        Ok(())
    }

    /// Stores a manifest (after checking it hashes to its id).
    ///
    /// # Errors
    /// The manifest is invalid or cannot be written.
    pub fn save_manifest(&self, manifest: Manifest) -> Result<Arc<Manifest>, ManifestFetchError> {
        self.write_manifest(&manifest)?;
        let manifest = Arc::new(manifest);
        Ok(self.book(|book| book.remember(manifest)))
    }

    /// A manifest from anywhere: this node, the replicated state (voters), or the
    /// leader; always checked against the revision id.
    ///
    /// # Errors
    /// Nobody reachable has it.
    pub async fn fetch_manifest(&self, node: &Node, revision: RevisionId) -> Result<Arc<Manifest>, ManifestFetchError> {
        if let Some(manifest) = self.manifest(revision) {
            return Ok(manifest);
        }
        if let Some(manifest) =
            node.state().read(|state| state.revisions.get(&revision).map(|record| record.manifest.clone()))
        {
            return self.save_manifest(manifest);
        }
        let leader = node.leader_hint().ok_or(ManifestFetchError::NoLeader)?;
        let (response, payload) = protocol::call(
            node.transport().as_ref(),
            leader.peer(),
            &Request::GetManifest { revision_id: revision },
            Duration::from_secs(30),
        )
        .await
        .map_err(|reason| ManifestFetchError::Unreachable { revision, reason })?;
        if !matches!(response, Response::Manifest) {
            return Err(ManifestFetchError::NotOnLeader { revision, answer: Box::new(response) });
        }
        let manifest: Manifest =
            serde_json::from_slice(&payload).map_err(|reason| ManifestFetchError::Malformed { revision, reason })?;
        if manifest.revision_id() != revision {
            return Err(ManifestFetchError::WrongHash { revision });
        }
        self.save_manifest(manifest)
    }

    /// Tracks a revision (computing what is already held: one pass over the store,
    /// outside the lock, the first time only).
    fn track(&self, manifest: &Manifest) -> Tracked {
        let revision = manifest.revision_id();
        if let Some(tracked) = self.book(|book| book.tracked(revision)) {
            return tracked;
        }
        let unique = manifest.unique_chunks();
        let held: BTreeSet<ChunkHash> =
            unique.iter().map(|chunk| chunk.hash()).filter(|hash| self.store.has(*hash)).collect();
        let scanned = Tracked::from_held(Arc::new(PieceMap::new(&unique)), &held);
        self.book(|book| book.handle_tracked(revision, scanned))
    }

    /// Records a download's progress: the pieces it holds, their bytes, and whether the
    /// revision is complete; wakes whoever waits for it.
    pub(crate) fn set_progress(&self, revision: RevisionId, have: &Bitfield, bytes_held: u64, complete: bool) {
        let wake = self.book(|book| book.handle_progress(revision, have, bytes_held, complete));
        self.wake(wake);
    }

    /// Records one turn of a download's progress (as [`Self::set_progress`]) and returns
    /// the peers listed for the revision now, for the next turn.
    fn download_turn(
        &self,
        revision: RevisionId,
        have: &Bitfield,
        bytes_held: u64,
        complete: bool,
    ) -> Vec<MemberAddress> {
        let (wake, peers) = self.book(|book| book.handle_download_turn(revision, have, bytes_held, complete));
        self.wake(wake);
        peers
    }

    /// True when every chunk of `revision` is held and verified.
    pub fn is_complete(&self, revision: RevisionId) -> bool {
        self.book(|book| book.is_complete(revision))
    }

    /// Progress of tracked revisions, for the poll.
    pub fn progress(&self) -> Vec<RevisionProgress> {
        self.book(|book| book.progress())
    }

    /// Starts fetching what the leader assigned (prefetch and deployments).
    pub fn on_assignments(
        self: &Arc<Self>,
        node: &Arc<Node>,
        assignments: &Assignments,
        peers: &BTreeMap<RevisionId, Vec<MemberAddress>>,
    ) {
        let wanted: BTreeSet<RevisionId> = assignments
            .prefetch
            .iter()
            .copied()
            .chain(assignments.deployments.iter().map(|assignment| assignment.revision_id))
            .collect();
        for revision in self.book(|book| book.handle_assignments(wanted, peers)) {
            self.spawn_fetch(node, revision);
        }
    }

    /// Starts a swarm download of `revision` unless one runs or it is complete.
    pub fn start_fetch(self: &Arc<Self>, node: &Arc<Node>, revision: RevisionId) {
        if self.book(|book| book.handle_fetch_wanted(revision)) == FetchStart::Start {
            self.spawn_fetch(node, revision);
        }
    }

    /// Runs the download of `revision` the core decided to start, and reports its end.
    fn spawn_fetch(self: &Arc<Self>, node: &Arc<Node>, revision: RevisionId) {
        let service = self.clone();
        let node = node.clone();
        tokio::spawn(async move {
            match fetch::run(&node, &service, revision).await {
                Ok(()) => {}
                Err(FetchError::ShuttingDown) => debug!(%revision, "fetch stopped: the node is shutting down"),
                Err(error) => {
                    if let FetchError::NoLiveHolder(missing) = &error {
                        service.unavailable().insert(revision, *missing);
                    }
                    if let Some(held_back) = FETCH_STOPPED.admit(&revision.to_string()) {
                        warn!(%revision, %error, held_back, "fetch stopped; it restarts with the next assignment");
                    }
                }
            }
            let wake = service.book(|book| book.handle_fetch_ended(revision));
            service.wake(wake);
        });
    }

    fn unavailable(&self) -> std::sync::MutexGuard<'_, BTreeMap<RevisionId, NoHolder>> {
        self.unavailable.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Peers listed for a revision.
    fn peers_of(&self, revision: RevisionId) -> Vec<MemberAddress> {
        self.book(|book| book.peers_of(revision))
    }

    /// Waits until `revision` is complete locally (starting its download if needed).
    ///
    /// # Errors
    /// The manifest cannot be found, the download finds chunks no live node holds (for
    /// the node's no-holder timeout) or does not finish in `timeout`, or the node is
    /// shutting down.
    pub async fn wait_complete(
        self: &Arc<Self>,
        node: &Arc<Node>,
        revision: RevisionId,
        timeout: Duration,
    ) -> Result<Arc<Manifest>, FetchError> {
        let manifest = self.fetch_manifest(node, revision).await?;
        self.track(&manifest);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ticks = self.progress_tick.subscribe();
        let mut shutdown = node.shutdown_signal();
        // A failure from before this wait (a prefetch) is not this wait's: start afresh.
        self.unavailable().remove(&revision);
        // Bounded by the deadline.
        loop {
            if *shutdown.borrow_and_update() {
                return Err(FetchError::ShuttingDown);
            }
            if let Some(missing) = self.unavailable().remove(&revision) {
                return Err(FetchError::NoLiveHolder(missing));
            }
            match self.book(|book| book.handle_fetch_wanted(revision)) {
                FetchStart::Complete => return Ok(manifest),
                FetchStart::Start => self.spawn_fetch(node, revision),
                FetchStart::Running => {}
            }
            tokio::select! {
                biased;
                _ = shutdown.changed() => {}
                _ = ticks.changed() => {}
                () = tokio::time::sleep_until(deadline) => {
                    let held_bytes = self.book(|book| book.bytes_held(revision));
                    return Err(FetchError::Timeout { revision, timeout, held_bytes });
                }
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    /// Unpacks a complete revision into `dest` (blocking; call from a blocking thread).
    ///
    /// A chunk found missing or corrupt on the way (the store drops it) makes the
    /// revision incomplete again: the next [`Self::wait_complete`] fetches what is
    /// missing instead of trusting the count taken when it was tracked.
    ///
    /// # Errors
    /// A chunk is missing or corrupt, or the destination cannot be written.
    pub fn materialize(&self, manifest: &Manifest, dest: &Path) -> Result<(), MaterializeError> {
        let outcome = crate::revision::materialize(manifest, &self.store, dest);
        if outcome.as_ref().is_err_and(MaterializeError::is_missing_chunk) {
            self.store.forget_vanished(&manifest.unique_chunks());
            self.book(|book| book.handle_content_vanished(manifest.revision_id()));
        }
        outcome
    }

    /// Records that this node received `revision` of `application` by a push (it is
    /// the first seed: its chunks are kept until newer pushes replace it).
    pub fn record_push(&self, application: &str, revision: RevisionId) {
        let mut index = self.push_index();
        let pushes = index.entry(application.to_string()).or_default();
        pushes.retain(|known| *known != revision);
        pushes.push(revision);
        if let Ok(bytes) = serde_json::to_vec(&index) {
            if let Err(error) =
                crate::runtime::identity::write_private_file(&self.manifests_dir.join("pushes.json"), &bytes)
            {
                // The revision still completes; only garbage collection no longer
                // knows to keep it as a push.
                warn!(%revision, %error, "cannot record the push in pushes.json");
            }
        }
    }

    fn push_index(&self) -> BTreeMap<String, Vec<RevisionId>> {
        std::fs::read(self.manifests_dir.join("pushes.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Drops every chunk that none of these revisions references: `keep` (the host's
    /// installed and retained deployments), the newest [`REVISIONS_KEPT_PER_APPLICATION`]
    /// pushes per application, and every revision still being fetched. The store's size
    /// is thereby bounded by what is deployed, retained and in flight.
    pub fn collect_garbage(&self, keep: &BTreeSet<RevisionId>) {
        let pushes: Vec<RevisionId> = self
            .push_index()
            .values()
            .flat_map(|pushes| pushes.iter().rev().take(REVISIONS_KEPT_PER_APPLICATION).copied())
            .collect();
        let plan = self.book(|book| book.handle_collect_garbage(keep, pushes));
        let mut chunks: BTreeSet<ChunkHash> = BTreeSet::new();
        for revision in &plan.revisions {
            match plan.manifests.get(revision).cloned().or_else(|| self.load_manifest(*revision)) {
                Some(manifest) => chunks.extend(manifest.unique_chunks().iter().map(|chunk| chunk.hash())),
                // Without its manifest we cannot tell which chunks are its: keep everything.
                None => return,
            }
        }
        match self.store.retain(&chunks) {
            Ok(0) => {}
            Ok(bytes) => info!(bytes, "removed chunks no kept revision references"),
            Err(error) => warn!(%error, "chunk garbage collection failed"),
        }
        self.book(|book| book.handle_garbage_collected(&plan.revisions));
    }
}
