//! Serving revision content: manifests, pieces and have-sets to peers, and chunk
//! uploads from `fleetmesh deploy push`.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use fleetmesh_state::model::ids::{ChunkHash, RevisionId};
use fleetmesh_transport::NodeId;

use super::book::PieceAnswer;
use super::{RevisionService, UploadError};
use crate::revision::StoreError;
use crate::runtime::protocol::Response;
use fleetmesh_core::swarm::{Bitfield, PieceMap, UploadSlots};

/// Chunks one piece request may name (a piece is about 1 MiB of ≥16 KiB chunks).
pub(crate) const PIECE_CHUNKS_MAX: usize = 256;

/// Piece requests this node serves at once, from all requesters together.
///
/// The swarm core's default, 8 (a 1 MiB piece takes ~8 ms at 1 Gbit/s, so a full set is
/// ~70 ms of uplink work). An accepted request waits behind every other one, so more
/// slots only lengthen the wait of a download's requests while other uploaders idle;
/// fewer answer `Busy` sooner and the download asks elsewhere. Measured with `fleetmesh
/// sim --scenario swarm-nodes` (this node's download and slots on simulated 1 Gbit/s
/// links, 1 GiB): first start to last end over the bandwidth bound 1.369 with 16 slots →
/// 1.095 with 8 at 1,000 nodes (each downlink busy 94 % of its download instead of
/// ~75 %); at 100 nodes 16 / 8 / 6 / 4 slots gave 1.305 / 1.060 / 1.077 / 1.211 (with 4
/// the origin seed's uplink idled). On loopback, 5 nodes sharing 2 cores, 8 and 16
/// slots were within run-to-run noise (`bench_swarm --nodes 5`). Each slot pins at most
/// one piece (~1 MiB) of buffer, so uploads hold ~8 MiB at most.
pub(crate) const UPLOADS_IN_FLIGHT_MAX: usize = fleetmesh_core::swarm::UPLOADS_IN_FLIGHT_MAX;

/// The upload slots of a node (see [`UPLOADS_IN_FLIGHT_MAX`]); one requester may hold as
/// many as the download side ever asks of one peer ([`super::fetch::REQUESTS_PER_PEER`]).
pub fn upload_slots() -> UploadSlots {
    UploadSlots::new(UPLOADS_IN_FLIGHT_MAX, super::fetch::REQUESTS_PER_PEER)
}

impl RevisionService {
    /// Answers a manifest request.
    pub(crate) fn serve_manifest(&self, revision: RevisionId) -> (Response, Bytes) {
        match self.manifest(revision) {
            Some(manifest) => (Response::Manifest, Bytes::from(manifest.canonical_bytes())),
            None => (Response::Error(format!("this node has no manifest for {revision}")), Bytes::new()),
        }
    }

    /// The have-set this node advertises for a revision: the pieces whose chunks are
    /// all held (kept in memory, see [`super::book::Tracked`]), or while this node
    /// super-seeds it as its origin, the pieces not handed out yet.
    pub(crate) fn have(&self, revision: RevisionId) -> Option<Bitfield> {
        let advertised = self.book(|book| book.advertised(revision));
        advertised.or_else(|| self.have_untracked(revision))
    }

    /// The have-set of a revision not tracked yet: tracked from the store now, if this
    /// node has its manifest.
    fn have_untracked(&self, revision: RevisionId) -> Option<Bitfield> {
        let manifest = self.manifest(revision)?;
        Some(self.track(&manifest).have)
    }

    /// Answers a have-set request.
    pub(crate) fn serve_have(&self, revision: RevisionId) -> (Response, Bytes) {
        match self.have(revision) {
            Some(have) => (Response::Have { have: have.to_string() }, Bytes::new()),
            None => (Response::Error(format!("this node does not know revision {revision}")), Bytes::new()),
        }
    }

    /// Answers a piece request: the named chunks, verified as they are read (on a
    /// blocking thread: a piece is ~16 file reads and 1 MiB of hashing), in the order
    /// asked; `Busy` when every upload slot is taken, or when this node is the origin
    /// seed and already sent this piece while others were never sent.
    pub(crate) async fn serve_piece(
        self: &Arc<Self>,
        requester: NodeId,
        revision: RevisionId,
        piece: u32,
        chunks: Vec<ChunkHash>,
    ) -> (Response, Bytes) {
        if chunks.len() > PIECE_CHUNKS_MAX {
            return (Response::Error(format!("a piece request names at most {PIECE_CHUNKS_MAX} chunks")), Bytes::new());
        }
        if self.book(|book| book.handle_piece_request(requester, revision, piece as usize)) == PieceAnswer::Busy {
            return (Response::Busy, Bytes::new());
        }
        let service = self.clone();
        let read = tokio::task::spawn_blocking(move || service.read_piece(&chunks)).await;
        let have = self.book(|book| book.handle_piece_done(requester, revision));
        let payload = match read {
            Ok(Ok(payload)) => payload,
            Ok(Err(reason)) => return (Response::Error(reason.to_string()), Bytes::new()),
            Err(error) => return (Response::Error(format!("reading the piece failed: {error}")), Bytes::new()),
        };
        self.bytes_served.fetch_add(payload.len() as u64, Ordering::Relaxed);
        let have = have.or_else(|| self.have_untracked(revision)).map(|have| have.to_string()).unwrap_or_default();
        (Response::Piece { have }, payload)
    }

    /// Reads the named chunks into one buffer (blocking), each checked as
    /// [`crate::revision::ChunkStore::read_for_peer`] says: one `pread` per chunk into
    /// the answer, hashed again unless this process wrote and verified its pack.
    fn read_piece(&self, chunks: &[ChunkHash]) -> Result<Bytes, ChunkUnavailable> {
        let payload = self.store.read_for_peer(chunks, |chunk| self.chunk_uploads.outgoing(chunk))?;
        Ok(Bytes::from(payload))
    }

    /// Opens a push of `declared_bytes`, refused when over `limit`.
    ///
    /// # Errors
    /// The bundle is larger than the limit.
    pub fn begin_upload(
        &self,
        id: String,
        application: &str,
        declared_bytes: u64,
        limit: u64,
    ) -> Result<(), UploadError> {
        self.book(|book| book.handle_upload_begin(id, application, declared_bytes, limit))
    }

    /// Which of `hashes` this node lacks.
    pub fn missing_chunks(&self, hashes: &[ChunkHash]) -> Vec<ChunkHash> {
        let mut seen = BTreeSet::new();
        hashes.iter().copied().filter(|hash| seen.insert(*hash) && !self.store.has(*hash)).collect()
    }

    /// Stores uploaded chunks (`[hash 32][len u32 BE][bytes]` frames), each verified.
    ///
    /// # Errors
    /// Unknown session, a malformed frame, a chunk that does not hash to its name, or
    /// more bytes than the push declared.
    pub fn receive_chunks(&self, id: &str, body: &[u8]) -> Result<usize, UploadError> {
        let mut offset = 0;
        let mut batch = Vec::new();
        let mut batch_bytes = 0u64;
        // Bounded: each turn consumes a 36-byte header and its chunk from the body.
        while offset < body.len() {
            let header = body.get(offset..offset + 36).ok_or(UploadError::TruncatedFrameHeader)?;
            let (hash, len) = header.split_at(32);
            let hash =
                fleetmesh_state::model::ids::Hash32(hash.try_into().expect("a 36-byte header starts with 32 bytes"));
            let len = u32::from_be_bytes(len.try_into().expect("a 36-byte header ends with 4 bytes")) as usize;
            let bytes = body.get(offset + 36..offset + 36 + len).ok_or(UploadError::TruncatedFrame)?;
            batch.push((hash, bytes));
            batch_bytes += len as u64;
            offset += 36 + len;
        }
        self.book(|book| book.handle_chunks_received(id, batch_bytes))?;
        // The whole batch in one append to a pack file, every chunk verified first.
        self.store.put_many(&batch)?;
        Ok(batch.len())
    }

    /// Closes a push: checks every chunk of `manifest` is held and saves the manifest.
    ///
    /// # Errors
    /// Unknown session, missing chunks, or an invalid manifest.
    pub fn finish_upload(
        &self,
        id: &str,
        manifest: fleetmesh_state::model::revision::Manifest,
    ) -> Result<(RevisionId, String), UploadError> {
        let application = self.book(|book| book.handle_upload_finished(id))?;
        let unique = manifest.unique_chunks();
        let missing = self.store.missing(&unique);
        if !missing.is_empty() {
            return Err(UploadError::MissingChunks { missing: missing.len() });
        }
        self.write_manifest(&manifest)?;
        let revision = manifest.revision_id();
        let map = Arc::new(PieceMap::new(&unique));
        let wake = self.book(|book| book.handle_pushed(Arc::new(manifest), map));
        self.wake(wake);
        self.record_push(&application, revision);
        Ok((revision, application))
    }
}

/// A chunk a piece request named that this node cannot read (answered to the peer as
/// an error; the store's error names the chunk or the file).
#[derive(Debug, thiserror::Error)]
#[error("a chunk of the piece is not available here: {0}")]
struct ChunkUnavailable(#[from] StoreError);
