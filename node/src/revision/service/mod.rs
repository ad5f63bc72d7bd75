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

mod error;
mod fetch;
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
use tracing::{info, warn};

use crate::revision::{ChunkStore, MaterializeError, StoreError};
use crate::runtime::protocol::{self, Assignments, MemberAddress, Request, Response, RevisionProgress};
use crate::runtime::Node;
pub use error::{FetchError, ManifestFetchError, UploadError};
use fleetmesh_core::swarm::{Bitfield, PieceMap, UploadSlots};
pub use requests::RevisionRequests;
pub use uploads::{ChunkUploads, HonestUploads};

/// Revisions whose chunks are kept per application besides the current ones.
pub const REVISIONS_KEPT_PER_APPLICATION: usize = 5;

/// A revision this node fetches or holds.
#[derive(Debug, Clone)]
struct Tracked {
    map: Arc<PieceMap>,
    /// Pieces whose chunks are all in the store: what this node advertises. Computed
    /// from the store once when the revision is first tracked, then kept in step by the
    /// download, so answering a peer never walks the store (a relay of a 1 GiB revision
    /// answers several have-sets per second; a walk would be ~16k `stat` calls each).
    have: Bitfield,
    bytes_held: u64,
    complete: bool,
}

/// The revision content of one node.
pub struct RevisionService {
    store: ChunkStore,
    manifests_dir: PathBuf,
    manifests: Mutex<BTreeMap<RevisionId, Arc<Manifest>>>,
    tracked: Mutex<BTreeMap<RevisionId, Tracked>>,
    /// Revisions with a download task running; at most one per revision, or two tasks
    /// would request (and count) every piece twice.
    fetching: Mutex<BTreeSet<RevisionId>>,
    /// Super-seeding state of the revisions this node received by a push (see
    /// [`origin`]); in memory only, so after a restart the node is an ordinary seed.
    origin: Mutex<BTreeMap<RevisionId, fleetmesh_core::swarm::SeedAdvertisement>>,
    /// Peers per revision, as the leader last listed them.
    peers: Mutex<BTreeMap<RevisionId, Vec<MemberAddress>>>,
    uploads: Mutex<UploadSlots>,
    /// Bumped whenever a tracked revision makes progress; waiters watch it.
    progress_tick: watch::Sender<u64>,
    bytes_fetched: AtomicU64,
    bytes_served: AtomicU64,
    upload_sessions: Mutex<BTreeMap<String, serve::UploadSession>>,
    /// What happens to each chunk served to a peer ([`HonestUploads`] in production).
    chunk_uploads: Arc<dyn ChunkUploads>,
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
            manifests: Mutex::new(BTreeMap::new()),
            tracked: Mutex::new(BTreeMap::new()),
            fetching: Mutex::new(BTreeSet::new()),
            origin: Mutex::new(BTreeMap::new()),
            peers: Mutex::new(BTreeMap::new()),
            uploads: Mutex::new(serve::upload_slots()),
            progress_tick: watch::channel(0).0,
            bytes_fetched: AtomicU64::new(0),
            bytes_served: AtomicU64::new(0),
            upload_sessions: Mutex::new(BTreeMap::new()),
            chunk_uploads,
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

    /// A manifest this node has, checked against its id.
    pub fn manifest(&self, revision: RevisionId) -> Option<Arc<Manifest>> {
        if let Some(manifest) = self.manifests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&revision)
        {
            return Some(manifest.clone());
        }
        let bytes = std::fs::read(self.manifest_path(revision)).ok()?;
        let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
        (manifest.revision_id() == revision && manifest.validate().is_ok()).then(|| self.remember(manifest))
    }

    fn remember(&self, manifest: Manifest) -> Arc<Manifest> {
        let manifest = Arc::new(manifest);
        self.manifests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(manifest.revision_id(), manifest.clone());
        manifest
    }

    /// Stores a manifest (after checking it hashes to its id).
    ///
    /// # Errors
    /// The manifest is invalid or cannot be written.
    pub fn save_manifest(&self, manifest: Manifest) -> Result<Arc<Manifest>, ManifestFetchError> {
        manifest.validate()?;
        let revision = manifest.revision_id();
        crate::runtime::identity::write_private_file(&self.manifest_path(revision), &manifest.canonical_bytes())?;
        Ok(self.remember(manifest))
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

    fn bump(&self) {
        self.progress_tick.send_modify(|tick| *tick = tick.wrapping_add(1));
    }

    /// Tracks a revision (computing what is already held).
    fn track(&self, manifest: &Manifest) -> Tracked {
        let revision = manifest.revision_id();
        if let Some(tracked) = self.tracked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&revision) {
            return tracked.clone();
        }
        let unique = manifest.unique_chunks();
        let map = Arc::new(PieceMap::new(&unique));
        // One pass over the store: which chunks are held, hence bytes and pieces held.
        let held: BTreeSet<ChunkHash> =
            unique.iter().map(|chunk| chunk.hash()).filter(|hash| self.store.has(*hash)).collect();
        let bytes_held =
            unique.iter().filter(|chunk| held.contains(&chunk.hash())).map(|chunk| u64::from(chunk.len())).sum();
        let mut have = Bitfield::new(map.len());
        for index in 0..map.len() {
            if map.piece(index).iter().all(|chunk| held.contains(&chunk.hash())) {
                have.set(index);
            }
        }
        let complete = bytes_held == map.total_bytes();
        let tracked = Tracked { map, have, bytes_held, complete };
        self.tracked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(revision)
            .or_insert(tracked)
            .clone()
    }

    /// Records a download's progress: the pieces it holds, their bytes, and whether the
    /// revision is complete; wakes whoever waits for it.
    pub(crate) fn set_progress(&self, revision: RevisionId, have: &Bitfield, bytes_held: u64, complete: bool) {
        if let Some(tracked) = self.tracked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(&revision)
        {
            if tracked.have.len() == have.len() {
                tracked.have.clone_from(have);
            }
            tracked.bytes_held = bytes_held;
            tracked.complete = complete;
        }
        self.bump();
    }

    /// True when every chunk of `revision` is held and verified.
    pub fn is_complete(&self, revision: RevisionId) -> bool {
        self.tracked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&revision)
            .is_some_and(|tracked| tracked.complete)
    }

    /// Progress of tracked revisions, for the poll.
    pub fn progress(&self) -> Vec<RevisionProgress> {
        self.tracked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(revision, tracked)| RevisionProgress {
                revision_id: *revision,
                bytes_held: tracked.bytes_held,
                complete: tracked.complete,
            })
            .collect()
    }

    /// Starts fetching what the leader assigned (prefetch and deployments).
    pub fn on_assignments(
        self: &Arc<Self>,
        node: &Arc<Node>,
        assignments: &Assignments,
        peers: &BTreeMap<RevisionId, Vec<MemberAddress>>,
    ) {
        {
            let mut known = self.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (revision, list) in peers {
                known.insert(*revision, list.clone());
            }
        }
        let wanted: BTreeSet<RevisionId> = assignments
            .prefetch
            .iter()
            .copied()
            .chain(assignments.deployments.iter().map(|assignment| assignment.revision_id))
            .collect();
        for revision in wanted {
            self.start_fetch(node, revision);
        }
    }

    /// Starts a swarm download of `revision` unless one runs or it is complete.
    pub fn start_fetch(self: &Arc<Self>, node: &Arc<Node>, revision: RevisionId) {
        if self.is_complete(revision) {
            return;
        }
        if !self.fetching.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(revision) {
            return;
        }
        let service = self.clone();
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(error) = fetch::run(&node, &service, revision).await {
                warn!(%revision, %error, "fetch stopped; it restarts with the next assignment");
            }
            service.fetching.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&revision);
            service.bump();
        });
    }

    /// True while a download task for `revision` runs.
    fn is_fetching(&self, revision: RevisionId) -> bool {
        self.fetching.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&revision)
    }

    /// Peers listed for a revision.
    fn peers_of(&self, revision: RevisionId) -> Vec<MemberAddress> {
        self.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&revision).cloned().unwrap_or_default()
    }

    /// Waits until `revision` is complete locally (starting its download if needed).
    ///
    /// # Errors
    /// The manifest cannot be found or the download does not finish in `timeout`.
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
        // Bounded by the deadline.
        loop {
            if self.is_complete(revision) {
                return Ok(manifest);
            }
            self.start_fetch(node, revision);
            tokio::select! {
                biased;
                _ = ticks.changed() => {}
                () = tokio::time::sleep_until(deadline) => {
                    let held_bytes = self.progress().into_iter().find(|progress| progress.revision_id == revision).map_or(0, |progress| progress.bytes_held);
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
            self.tracked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&manifest.revision_id());
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
        let mut revisions = keep.clone();
        for pushes in self.push_index().values() {
            revisions.extend(pushes.iter().rev().take(REVISIONS_KEPT_PER_APPLICATION).copied());
        }
        let fetching: Vec<RevisionId> = self
            .tracked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(revision, tracked)| !tracked.complete || self.is_fetching(**revision))
            .map(|(revision, _)| *revision)
            .collect();
        revisions.extend(fetching);
        let mut chunks: BTreeSet<ChunkHash> = BTreeSet::new();
        for revision in &revisions {
            match self.manifest(*revision) {
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
        let mut tracked = self.tracked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tracked.retain(|revision, _| revisions.contains(revision));
    }
}
