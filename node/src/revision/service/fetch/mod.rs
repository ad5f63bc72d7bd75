//! The swarm download of one revision: the sans-I/O [`Session`] (around the swarm
//! core's [`Download`]) decides which peer to ask for what and when; this shell, its
//! only owner, sends the requests over the node's transport, has every answer verified
//! and stored by a [`DownloadStore`], and feeds the outcomes back.
//!
//! The store is the one seam: production stores into the chunk store
//! ([`RevisionService`]); the simulator stores into a simulated host's disk, so that
//! its hosts run this loop, the session and the core unchanged over the simulated
//! network ([`download`]).

mod session;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::model::revision::ChunkRef;
use fleetmesh_transport::{BoxFuture, NodeId, Peer};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{FetchError, RevisionService};
use crate::revision::StoreError;
use crate::runtime::protocol::{self, MemberAddress, Request, Response};
use crate::runtime::Node;
use fleetmesh_core::swarm::{Bitfield, Download, DownloadParams, PieceMap, PieceRequest, Received};
use session::{Action, Session};

/// Piece requests in flight to one peer.
///
/// 8, twice the swarm core's default (which its simulation tuned for WAN links, where
/// more would only queue at the uploader): on loopback a piece request spends most of
/// its time in processing (read and verify at the sender, encrypt, send, verify and
/// write here), not on the wire, and four outstanding left the pipeline short. Measured
/// with `bench_swarm` on 1 GiB, 2 nodes: 92-98 MiB/s with 4, 120-208 MiB/s with 8; the
/// receiver's peak RSS rose from ~10 to ~20 MiB above idle (see docs/benchmarks.md).
/// The total stays [`REQUESTS_IN_FLIGHT`], so buffers per download stay bounded.
pub(crate) const REQUESTS_PER_PEER: usize = 8;

/// Piece requests in flight in total (each pins up to ~1 MiB until it is stored).
///
/// 8, the swarm core's default, measured in its simulation; it bounds this download's
/// buffers to ~8 MiB whatever the revision size.
pub(crate) const REQUESTS_IN_FLIGHT: usize = fleetmesh_core::swarm::REQUESTS_IN_FLIGHT_MAX;

/// How long one piece request may take at most (the session shortens it once it has
/// seen how long pieces take: [`Session::piece_timeout`]).
pub(super) const PIECE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often have-sets of peers are refreshed when no piece response brought them.
///
/// 40 ms: a peer's new pieces are found only by asking (or in a piece answer), and at
/// 1 Gbit/s a 1 MiB piece takes ~8 ms, so a slower refresh leaves fetchers asking the
/// few holders they know. Measured with `fleetmesh sim --scenario swarm-nodes --size-mib
/// 64` (the node's download on simulated 1 Gbit/s links), first start to last end over
/// the bandwidth bound: 300 → 100 ms took 20 nodes from 2.45 to 1.99 and 100 nodes from
/// 3.05 to 2.30 (with 16 upload slots per node); with 8 slots, 100 → 40 ms took 1,000
/// nodes from 2.27 / 2.25 / 2.16 to 1.84 / 2.04 / 1.86 (seeds 1-3) and 100 nodes from
/// 2.04 to 1.66; 20 ms was no better (2.09 at 1,000 nodes). The cost is one small
/// request per listed peer (at most 24) per 40 ms while a download runs.
const HAVE_REFRESH: Duration = Duration::from_millis(40);

/// A download that makes no progress for this long gives up (the next assignment
/// restarts it).
const STALL_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a piece this node lacks may have no live holder before the download fails
/// (the default of the node's `no_holder_timeout` timing).
pub(super) const NO_HOLDER_TIMEOUT: Duration = Duration::from_secs(60);

enum Event {
    Piece { peer: NodeId, piece: usize, received: Received, have: Option<Bitfield>, bytes: u64, took: Duration },
    Have { peer: NodeId, have: Option<Bitfield> },
}

/// Verifies each chunk of a piece answer and stores it (blocking: file writes).
///
/// The store hashes every chunk before it writes any, which is the verification: if a
/// chunk does not hash to its name, nothing of the piece is written and the answer
/// counts as corrupt.
fn store_piece(service: &RevisionService, chunks: &[ChunkRef], payload: &Bytes) -> Received {
    let expected: usize = chunks.iter().map(|chunk| chunk.len() as usize).sum();
    if payload.len() != expected {
        return match chunks.first() {
            Some(first) => Received::Corrupt { chunk: first.hash() },
            None => Received::Failed,
        };
    }
    let mut offset = 0;
    let mut batch = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        batch.push((chunk.hash(), &payload[offset..offset + chunk.len() as usize]));
        offset += chunk.len() as usize;
    }
    // One batch per piece, appended to the store's open pack (see the chunk store's docs
    // for why not one file per chunk).
    match service.store.put_many(&batch) {
        Ok(_) => {}
        Err(StoreError::HashMismatch { expected, .. } | StoreError::TooLarge { hash: expected, .. }) => {
            return Received::Corrupt { chunk: expected };
        }
        Err(error) => {
            tracing::warn!(%error, "cannot store a fetched piece");
            return Received::Failed;
        }
    }
    Received::Ok
}

fn seed_of(node: NodeId, revision: RevisionId) -> u64 {
    node.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from_le_bytes(revision.0[..8].try_into().expect("8 bytes"))
}

/// Where a download's pieces go, and its bookkeeping: what [`download`] needs from its
/// node besides the network.
pub trait DownloadStore: Send + Sync + 'static {
    /// Verifies every chunk of a piece answer and stores them ([`Received::Ok`]), or
    /// says why not: [`Received::Corrupt`] names a chunk that does not match its hash
    /// (the peer is not asked again), [`Received::Failed`] anything else. Nothing of a
    /// piece that does not verify is stored.
    fn store_piece(&self, chunks: Vec<ChunkRef>, payload: Bytes) -> BoxFuture<'static, Received>;

    /// The peers listed for `revision` now.
    fn peers(&self, revision: RevisionId) -> Vec<MemberAddress>;

    /// Records one turn of the download (the pieces held, their bytes, whether it is
    /// complete) and returns the peers listed for `revision` now, for the next turn.
    fn turn(&self, revision: RevisionId, have: &Bitfield, bytes_held: u64, complete: bool) -> Vec<MemberAddress>;

    /// Counts the bytes of a piece answer that crossed the network, good or bad.
    fn fetched(&self, bytes: u64);
}

/// The production store: verified pieces go to the chunk store, on a blocking thread
/// (a piece is ~1 MiB of hashing and one append to a pack).
struct ServiceStore(Arc<RevisionService>);

impl DownloadStore for ServiceStore {
    fn store_piece(&self, chunks: Vec<ChunkRef>, payload: Bytes) -> BoxFuture<'static, Received> {
        let service = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store_piece(&service, &chunks, &payload))
                .await
                .unwrap_or(Received::Failed)
        })
    }

    fn peers(&self, revision: RevisionId) -> Vec<MemberAddress> {
        self.0.peers_of(revision)
    }

    fn turn(&self, revision: RevisionId, have: &Bitfield, bytes_held: u64, complete: bool) -> Vec<MemberAddress> {
        self.0.download_turn(revision, have, bytes_held, complete)
    }

    fn fetched(&self, bytes: u64) {
        self.0.bytes_fetched.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A download of the revision `map` describes, by node `node`, with the production
/// parameters (requests in flight per peer and in total) and a seed drawn from the node
/// and the revision; `held` says which chunks are already stored.
pub fn new_download(
    node: NodeId,
    revision: RevisionId,
    map: Arc<PieceMap>,
    held: impl Fn(fleetmesh_state::model::ids::ChunkHash) -> bool,
) -> Download {
    Download::new(
        map,
        held,
        DownloadParams {
            requests_per_peer_max: REQUESTS_PER_PEER,
            requests_in_flight_max: REQUESTS_IN_FLIGHT,
            ..DownloadParams::default()
        },
        seed_of(node, revision),
    )
}

/// Runs until the revision is complete, or the download stalls.
pub(super) async fn run(
    node: &Arc<Node>,
    service: &Arc<RevisionService>,
    revision: RevisionId,
) -> Result<(), FetchError> {
    let manifest = service.fetch_manifest(node, revision).await?;
    let tracked = service.track(&manifest);
    if tracked.complete {
        return Ok(());
    }
    let store_service = service.clone();
    let download = new_download(node.id(), revision, tracked.map.clone(), move |hash| store_service.store.has(hash));
    let download = self::download(node, Arc::new(ServiceStore(service.clone())), revision, download).await?;
    service.set_progress(revision, download.have(), download.bytes_held(), true);
    Ok(())
}

/// Runs `download` of `revision` until it is complete (and returns it) or fails: it
/// stalls, some piece has no live holder for the node's no-holder timeout, or the node
/// shuts down. Requests go over `node`'s transport; answers are verified and stored by
/// `store`.
///
/// # Errors
/// [`FetchError::Stalled`], [`FetchError::NoLiveHolder`], [`FetchError::ShuttingDown`].
pub async fn download(
    node: &Arc<Node>,
    store: Arc<dyn DownloadStore>,
    revision: RevisionId,
    download: Download,
) -> Result<Download, FetchError> {
    info!(%revision, bytes = download.map().total_bytes(), held = download.bytes_held(), "fetching from the swarm");
    let mut fetch = Fetch::new(node, store, revision, download);
    fetch.run().await?;
    info!(%revision, secs = fetch.started.elapsed().as_secs_f64(), "revision complete");
    Ok(fetch.session.into_download())
}

/// The shell around one download's [`Session`]: it is the session's only owner, sends
/// what the session asks for (each request in its own task), and feeds the answers
/// back as they arrive on `inbox`.
struct Fetch {
    node: Arc<Node>,
    store: Arc<dyn DownloadStore>,
    revision: RevisionId,
    session: Session,
    started: Instant,
    events: mpsc::Sender<Event>,
    inbox: mpsc::Receiver<Event>,
}

impl Fetch {
    fn new(node: &Arc<Node>, store: Arc<dyn DownloadStore>, revision: RevisionId, download: Download) -> Self {
        let (events, inbox) = mpsc::channel::<Event>(256);
        Self {
            node: node.clone(),
            store,
            revision,
            session: Session::new(node.id(), download, Duration::ZERO)
                .with_no_holder_timeout(node.settings().timing.no_holder_timeout),
            started: Instant::now(),
            events,
            inbox,
        }
    }

    /// The loop: send what the session asks for, wait for one answer or a deadline,
    /// feed it, record progress.
    async fn run(&mut self) -> Result<(), FetchError> {
        let mut shutdown = self.node.shutdown_signal();
        let mut members = self.store.peers(self.revision);
        // Bounded: ends on completion, shutdown or a stall of STALL_TIMEOUT.
        while !self.session.download().is_complete() {
            if *shutdown.borrow() {
                return Err(FetchError::ShuttingDown);
            }
            self.session.handle_members(members.iter().map(|member| Peer { id: member.id, addr: member.listen }));
            for action in self.session.poll_actions(self.started.elapsed()) {
                match action {
                    Action::AskHave(peer) => self.ask_have(peer),
                    Action::AskPiece(peer, request) => self.ask_piece(peer, request),
                }
            }
            let wake = self.session.next_wake(self.started.elapsed());
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Err(FetchError::ShuttingDown),
                event = self.inbox.recv() => {
                    let Some(event) = event else { return Err(FetchError::EventsClosed) };
                    self.handle(event);
                }
                () = tokio::time::sleep(wake.max(Duration::from_millis(1))) => {}
            }
            let download = self.session.download();
            // One call records this turn's progress and reads the peers for the next.
            members = self.store.turn(self.revision, download.have(), download.bytes_held(), download.is_complete());
            self.session.check_progress(self.started.elapsed())?;
            self.session.check_holders(self.started.elapsed())?;
        }
        Ok(())
    }

    /// Asks `peer` for its have-set in a task of its own.
    fn ask_have(&self, peer: Peer) {
        let (node, events, revision) = (self.node.clone(), self.events.clone(), self.revision);
        tokio::spawn(async move {
            let answer = protocol::call(
                node.transport().as_ref(),
                peer,
                &Request::GetHave { revision_id: revision },
                Duration::from_secs(10),
            )
            .await;
            let have = match answer {
                Ok((Response::Have { have }, _)) => have.parse::<Bitfield>().ok(),
                _ => None,
            };
            // The receiver is gone only once the download has ended, and then
            // nobody needs this have-set.
            let _ = events.send(Event::Have { peer: peer.id, have }).await;
        });
    }

    /// Asks `peer` for a piece in a task of its own, which verifies and stores it.
    fn ask_piece(&self, peer: Peer, request: PieceRequest) {
        let (node, events, store, revision) =
            (self.node.clone(), self.events.clone(), self.store.clone(), self.revision);
        let timeout = self.session.piece_timeout();
        tokio::spawn(async move {
            let asked = Instant::now();
            let ask = Request::GetPiece {
                revision_id: revision,
                piece: request.piece as u32,
                chunks: request.chunks.iter().map(|chunk| chunk.hash()).collect(),
            };
            let answer = protocol::call(node.transport().as_ref(), peer, &ask, timeout).await;
            let took = asked.elapsed();
            let (received, have, bytes) = match answer {
                Ok((Response::Piece { have }, payload)) => {
                    let size = payload.len() as u64;
                    let received = store.store_piece(request.chunks.clone(), payload).await;
                    (received, have.parse::<Bitfield>().ok(), size)
                }
                Ok((Response::Busy, _)) => (Received::Busy, None, 0),
                Ok((other, _)) => {
                    debug!(peer = %peer.id, ?other, "piece request refused");
                    (Received::Failed, None, 0)
                }
                Err(error) => {
                    debug!(peer = %peer.id, %error, "piece request failed");
                    (Received::Failed, None, 0)
                }
            };
            // The receiver is gone only once the download has ended; the chunks
            // are stored either way, and the next download finds them.
            let _ =
                events.send(Event::Piece { peer: peer.id, piece: request.piece, received, have, bytes, took }).await;
        });
    }

    /// Feeds one answer to the session.
    fn handle(&mut self, event: Event) {
        match event {
            Event::Piece { peer, piece, received, have, bytes, took } => {
                // Every byte that crossed the network, good or bad.
                self.store.fetched(bytes);
                if received == Received::Ok {
                    self.session.note_piece_time(took);
                }
                self.session.handle_piece(peer, piece, received, have, self.started.elapsed());
            }
            Event::Have { peer, have } => self.session.handle_have(peer, have),
        }
    }
}
