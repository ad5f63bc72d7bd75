//! The decisions of a node's revision content, without I/O: what is tracked per
//! revision (piece map, have-set, bytes held, complete), which revisions have a download
//! running, the super-seeding state of pushed revisions, the peers listed per revision,
//! the upload slots and pushes in progress, and the manifests already read.
//!
//! ```text
//!  handle_assignments / handle_fetch_wanted ──▶ fetches to start (the shell spawns them)
//!  handle_fetch_ended / handle_progress     ──▶ Wake (the shell bumps the progress watch)
//!  handle_download_turn ──▶ Wake, and the peers the download asks next
//!  handle_piece_request ──▶ Serve | Busy ··· read the piece ··· handle_piece_done ──▶ have-set
//!  handle_upload_begin / handle_chunks_received / handle_upload_finished / handle_pushed
//!  handle_collect_garbage ──▶ GarbagePlan ··· store.retain ··· handle_garbage_collected
//! ```
//!
//! The shell ([`super::RevisionService`]) owns the chunk store, the manifest files, the
//! network and the download tasks; it holds a [`Book`] behind one lock and calls one
//! method per lock. Every method is plain data in, plain data out: no clock, no disk,
//! no tasks, so the tests feed events and check the answers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fleetmesh_core::swarm::{Bitfield, PieceMap, UploadDecision, UploadSlots};
use fleetmesh_state::model::ids::{ChunkHash, RevisionId};
use fleetmesh_state::model::revision::Manifest;
use fleetmesh_transport::NodeId;

use super::origin::{OriginDecision, Origins};
use super::UploadError;
use crate::runtime::protocol::{MemberAddress, RevisionProgress};

/// A revision this node fetches or holds.
#[derive(Debug, Clone)]
pub(super) struct Tracked {
    /// Its pieces.
    pub(super) map: Arc<PieceMap>,
    /// Pieces whose chunks are all in the store: what this node advertises. Computed
    /// from the store once when the revision is first tracked, then kept in step by the
    /// download, so answering a peer never walks the store (a relay of a 1 GiB revision
    /// answers several have-sets per second; a walk would be ~16k `stat` calls each).
    pub(super) have: Bitfield,
    /// Bytes of its distinct chunks in the store.
    pub(super) bytes_held: u64,
    /// Every chunk is held and verified.
    pub(super) complete: bool,
}

impl Tracked {
    /// What is held of the revision of `map`, given the chunks of it the store has.
    pub(super) fn from_held(map: Arc<PieceMap>, held: &BTreeSet<ChunkHash>) -> Self {
        let bytes_held =
            map.chunks().iter().filter(|chunk| held.contains(&chunk.hash())).map(|chunk| u64::from(chunk.len())).sum();
        let mut have = Bitfield::new(map.len());
        for index in 0..map.len() {
            if map.piece(index).iter().all(|chunk| held.contains(&chunk.hash())) {
                have.set(index);
            }
        }
        let complete = bytes_held == map.total_bytes();
        Self { map, have, bytes_held, complete }
    }
}

/// Whether the shell must wake whoever waits for progress (the progress watch).
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wake {
    /// Bump the watch: a tracked revision changed, or a download ended.
    Waiters,
}

/// What to do about a revision someone wants complete.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FetchStart {
    /// It is complete: nothing to fetch.
    Complete,
    /// A download task runs already (at most one per revision, or two tasks would
    /// request and count every piece twice).
    Running,
    /// Spawn a download task, then report its end with [`Book::handle_fetch_ended`].
    Start,
}

/// What to answer a peer's piece request.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PieceAnswer {
    /// An upload slot is taken: read and send the piece, then call
    /// [`Book::handle_piece_done`].
    Serve,
    /// Every upload slot is taken, or this node is the origin seed and already sent this
    /// piece while others were never sent: answer `Busy` (no slot is held).
    Busy,
}

/// The revisions whose chunks garbage collection keeps, and the manifests of those this
/// core already has; the shell reads the others from disk.
#[derive(Debug, Clone, Default)]
pub(super) struct GarbagePlan {
    /// Revisions to keep.
    pub(super) revisions: BTreeSet<RevisionId>,
    /// Manifests of kept revisions this core already has.
    pub(super) manifests: BTreeMap<RevisionId, Arc<Manifest>>,
}

/// One push in progress.
#[derive(Debug)]
struct UploadSession {
    /// Bytes the CLI declared.
    declared_bytes: u64,
    /// Bytes of chunks received so far.
    received_bytes: u64,
    /// Application it is for.
    application: String,
}

/// The revision content decisions of one node (see the module docs).
#[derive(Debug)]
pub(super) struct Book {
    manifests: BTreeMap<RevisionId, Arc<Manifest>>,
    tracked: BTreeMap<RevisionId, Tracked>,
    /// Revisions with a download task running.
    fetching: BTreeSet<RevisionId>,
    /// Super-seeding state of the revisions this node received by a push (see
    /// [`super::origin`]); in memory only, so after a restart the node is an ordinary seed.
    origins: Origins,
    /// Peers per revision, as the leader last listed them.
    peers: BTreeMap<RevisionId, Vec<MemberAddress>>,
    uploads: UploadSlots,
    upload_sessions: BTreeMap<String, UploadSession>,
}

impl Book {
    /// An empty book serving pieces within `uploads`.
    pub(super) fn new(uploads: UploadSlots) -> Self {
        Self {
            manifests: BTreeMap::new(),
            tracked: BTreeMap::new(),
            fetching: BTreeSet::new(),
            origins: Origins::default(),
            peers: BTreeMap::new(),
            uploads,
            upload_sessions: BTreeMap::new(),
        }
    }

    /// A manifest already read or saved.
    pub(super) fn manifest(&self, revision: RevisionId) -> Option<Arc<Manifest>> {
        self.manifests.get(&revision).cloned()
    }

    /// Keeps `manifest` (checked against its id by the shell) for later lookups.
    pub(super) fn remember(&mut self, manifest: Arc<Manifest>) -> Arc<Manifest> {
        self.manifests.insert(manifest.revision_id(), manifest.clone());
        manifest
    }

    /// What is tracked of `revision`, if anything.
    pub(super) fn tracked(&self, revision: RevisionId) -> Option<Tracked> {
        self.tracked.get(&revision).cloned()
    }

    /// Tracks `revision` as the shell found it in the store, unless it was tracked
    /// meanwhile (then that state wins); returns what is tracked.
    pub(super) fn handle_tracked(&mut self, revision: RevisionId, scanned: Tracked) -> Tracked {
        self.tracked.entry(revision).or_insert(scanned).clone()
    }

    /// True when every chunk of `revision` is held and verified.
    pub(super) fn is_complete(&self, revision: RevisionId) -> bool {
        self.tracked.get(&revision).is_some_and(|tracked| tracked.complete)
    }

    /// Progress of tracked revisions, for the poll.
    pub(super) fn progress(&self) -> Vec<RevisionProgress> {
        self.tracked
            .iter()
            .map(|(revision, tracked)| RevisionProgress {
                revision_id: *revision,
                bytes_held: tracked.bytes_held,
                complete: tracked.complete,
            })
            .collect()
    }

    /// Bytes held of `revision` (0 when it is not tracked).
    pub(super) fn bytes_held(&self, revision: RevisionId) -> u64 {
        self.tracked.get(&revision).map_or(0, |tracked| tracked.bytes_held)
    }

    /// Peers listed for a revision.
    pub(super) fn peers_of(&self, revision: RevisionId) -> Vec<MemberAddress> {
        self.peers.get(&revision).cloned().unwrap_or_default()
    }

    /// The leader's assignments arrived: `peers` replace the lists of their revisions,
    /// and every `wanted` revision not complete and not being fetched is returned, to be
    /// started (it counts as fetching from now on).
    pub(super) fn handle_assignments(
        &mut self,
        wanted: impl IntoIterator<Item = RevisionId>,
        peers: &BTreeMap<RevisionId, Vec<MemberAddress>>,
    ) -> Vec<RevisionId> {
        for (revision, list) in peers {
            self.peers.insert(*revision, list.clone());
        }
        wanted.into_iter().filter(|revision| self.handle_fetch_wanted(*revision) == FetchStart::Start).collect()
    }

    /// Someone wants `revision` complete: it is, a download runs, or one must start (and
    /// counts as running from now on).
    pub(super) fn handle_fetch_wanted(&mut self, revision: RevisionId) -> FetchStart {
        if self.is_complete(revision) {
            FetchStart::Complete
        } else if self.fetching.insert(revision) {
            FetchStart::Start
        } else {
            FetchStart::Running
        }
    }

    /// The download task of `revision` ended (complete or not).
    pub(super) fn handle_fetch_ended(&mut self, revision: RevisionId) -> Wake {
        self.fetching.remove(&revision);
        Wake::Waiters
    }

    /// A download of `revision` holds the pieces `have`, `bytes_held` bytes, and is
    /// `complete` or not (ignored unless it is tracked; a have-set
    /// of another length than its piece map is ignored too).
    pub(super) fn handle_progress(
        &mut self,
        revision: RevisionId,
        have: &Bitfield,
        bytes_held: u64,
        complete: bool,
    ) -> Wake {
        if let Some(tracked) = self.tracked.get_mut(&revision) {
            if tracked.have.len() == have.len() {
                tracked.have.clone_from(have);
            }
            tracked.bytes_held = bytes_held;
            tracked.complete = complete;
        }
        Wake::Waiters
    }

    /// One turn of the download of `revision`: its progress (as [`Self::handle_progress`]),
    /// answered with the peers listed for it now, which the download asks next.
    pub(super) fn handle_download_turn(
        &mut self,
        revision: RevisionId,
        have: &Bitfield,
        bytes_held: u64,
        complete: bool,
    ) -> (Wake, Vec<MemberAddress>) {
        (self.handle_progress(revision, have, bytes_held, complete), self.peers_of(revision))
    }

    /// Chunks of `revision` turned out missing or corrupt in the store: it is no longer
    /// tracked, so the next wait re-reads the store and fetches what is missing.
    pub(super) fn handle_content_vanished(&mut self, revision: RevisionId) {
        self.tracked.remove(&revision);
    }

    /// The have-set this node advertises for `revision`: while it super-seeds it as its
    /// origin, the pieces not handed out yet; otherwise the pieces held, if tracked.
    pub(super) fn advertised(&self, revision: RevisionId) -> Option<Bitfield> {
        if let Some(advertised) = self.origins.advertised(revision) {
            return Some(advertised.clone());
        }
        self.tracked.get(&revision).map(|tracked| tracked.have.clone())
    }

    /// `requester` asks for `piece` of `revision`: take an upload slot and let the
    /// origin's super-seeding decide; a declined request gives its slot back at once.
    pub(super) fn handle_piece_request(
        &mut self,
        requester: NodeId,
        revision: RevisionId,
        piece: usize,
    ) -> PieceAnswer {
        if self.uploads.try_acquire(requester) == UploadDecision::Busy {
            return PieceAnswer::Busy;
        }
        if self.origins.decide(revision, piece) == OriginDecision::Decline {
            self.uploads.release(requester);
            return PieceAnswer::Busy;
        }
        PieceAnswer::Serve
    }

    /// A piece served to `requester` was read (or failed to): its upload slot is free.
    /// Returns the have-set to send along, when this core knows it.
    pub(super) fn handle_piece_done(&mut self, requester: NodeId, revision: RevisionId) -> Option<Bitfield> {
        self.uploads.release(requester);
        self.advertised(revision)
    }

    /// Upload slots taken.
    #[cfg(test)]
    pub(super) fn uploads_in_flight(&self) -> usize {
        self.uploads.in_flight()
    }

    /// Opens push `id` of `declared_bytes` for `application`.
    ///
    /// # Errors
    /// The push is larger than `limit_bytes`.
    pub(super) fn handle_upload_begin(
        &mut self,
        id: String,
        application: &str,
        declared_bytes: u64,
        limit_bytes: u64,
    ) -> Result<(), UploadError> {
        if declared_bytes > limit_bytes {
            return Err(UploadError::TooLarge { declared_bytes, limit_bytes });
        }
        let session = UploadSession { declared_bytes, received_bytes: 0, application: application.to_string() };
        self.upload_sessions.insert(id, session);
        Ok(())
    }

    /// Push `id` brings `bytes` more of chunks (counted before they are stored).
    ///
    /// # Errors
    /// Unknown push, or more bytes than it declared.
    pub(super) fn handle_chunks_received(&mut self, id: &str, bytes: u64) -> Result<(), UploadError> {
        let session =
            self.upload_sessions.get_mut(id).ok_or_else(|| UploadError::UnknownUpload { id: id.to_string() })?;
        session.received_bytes += bytes;
        // The declared size counts file bytes; distinct chunks can never exceed it.
        if session.received_bytes > session.declared_bytes {
            return Err(UploadError::OverDeclared { declared_bytes: session.declared_bytes });
        }
        Ok(())
    }

    /// Closes push `id`; returns the application it was for.
    ///
    /// # Errors
    /// Unknown push.
    pub(super) fn handle_upload_finished(&mut self, id: &str) -> Result<String, UploadError> {
        self.upload_sessions
            .remove(id)
            .map(|session| session.application)
            .ok_or_else(|| UploadError::UnknownUpload { id: id.to_string() })
    }

    /// A push of `manifest` (whose pieces are `map`) is complete and saved: remember the
    /// manifest, track the revision as complete (every piece advertised) and start
    /// super-seeding it as its origin.
    pub(super) fn handle_pushed(&mut self, manifest: Arc<Manifest>, map: Arc<PieceMap>) -> Wake {
        let revision = manifest.revision_id();
        self.remember(manifest);
        let empty = Tracked { have: Bitfield::new(map.len()), map, bytes_held: 0, complete: false };
        let tracked = self.tracked.entry(revision).or_insert(empty);
        let pieces = tracked.map.len();
        tracked.have = Bitfield::full(pieces);
        tracked.bytes_held = tracked.map.total_bytes();
        tracked.complete = true;
        self.origins.begin(revision, pieces);
        Wake::Waiters
    }

    /// Garbage collection is asked to keep `keep` (the host's installed and retained
    /// deployments) and `pushes` (the newest pushes per application): the plan adds every
    /// tracked revision not complete or being fetched.
    pub(super) fn handle_collect_garbage(
        &self,
        keep: &BTreeSet<RevisionId>,
        pushes: impl IntoIterator<Item = RevisionId>,
    ) -> GarbagePlan {
        let mut revisions = keep.clone();
        revisions.extend(pushes);
        revisions.extend(self.in_flight());
        let manifests = revisions.iter().filter_map(|revision| Some((*revision, self.manifest(*revision)?))).collect();
        GarbagePlan { revisions, manifests }
    }

    /// The store now holds only the chunks of `kept`: stop tracking every other
    /// revision, except those tracked or fetched since the plan was made.
    pub(super) fn handle_garbage_collected(&mut self, kept: &BTreeSet<RevisionId>) {
        let in_flight: BTreeSet<RevisionId> = self.in_flight().collect();
        self.tracked.retain(|revision, _| kept.contains(revision) || in_flight.contains(revision));
    }

    /// Tracked revisions not complete, or with a download running.
    fn in_flight(&self) -> impl Iterator<Item = RevisionId> + '_ {
        self.tracked
            .iter()
            .filter(|(revision, tracked)| !tracked.complete || self.fetching.contains(*revision))
            .map(|(revision, _)| *revision)
    }
}

#[cfg(test)]
mod tests;
