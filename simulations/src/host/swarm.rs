//! The swarm on simulated hosts: DownloadBundle runs the node's own download
//! ([`fleetmesh_node::revision::service::download`]: the fetch loop, its session and the
//! swarm core's piece picker) over the simulated network, and every host answers its
//! peers' have-set and piece requests through the node protocol, as a real node does.
//!
//! What is simulated here, and nothing else:
//! - **the store**: a host's chunks are its [`SimDisk`]'s map; a piece answer carries
//!   each chunk's 64-byte phantom content (see [`super::catalog`]), which the receiver
//!   hashes against the chunk's name before it stores anything, as the chunk store does
//!   with real bytes;
//! - **the bandwidth**: a piece answer leaves only once its declared bytes have crossed
//!   the server's uplink and the requester's downlink (each a first-come queue at
//!   [`super::HostTiming::downlink_bytes_per_sec`]), so a busy uploader or a downlink
//!   fetching from many peers slows every transfer it carries; latency and partitions
//!   come from the simulated network as for every message;
//! - **the serving side**: the node's upload slots
//!   ([`fleetmesh_node::revision::service::upload_slots`]) and, on the host a revision
//!   was pushed to, the node's super-seeding ([`Origins`]) decide `Busy`, as the
//!   revision service's core does; the have-set is the origin's advertisement or what
//!   the disk holds. The rest of the production serve path (`RevisionService` reading
//!   pack files on blocking threads, which a deterministic single-threaded simulation
//!   cannot run) is not.
//!
//! Lying peers ([`super::faults::HostFaults`]): a *corrupt* peer advertises every piece
//! and flips a byte of every chunk it sends; a *withholding* peer advertises every piece
//! and answers every piece request with an error; a *slow* peer advertises what it holds
//! and sends at a hundredth of the bandwidth.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fleetmesh_core::swarm::{Bitfield, PieceMap, Received, UploadDecision};
use fleetmesh_node::revision::service::{upload_slots, DownloadStore, OriginDecision, Origins};
use fleetmesh_node::runtime::protocol::{MemberAddress, Request, Response};
use fleetmesh_node::runtime::{Refusal, Service};
use fleetmesh_state::model::ids::{ChunkHash, RevisionId};
use fleetmesh_state::model::revision::ChunkRef;
use fleetmesh_transport::{BoxFuture, Caller, NodeId};

use super::catalog::PHANTOM_BYTES;
use super::disk::SimDisk;
use super::{lock, HostWorld};

/// A slow peer sends at this fraction of the bandwidth.
const SLOW_PEER_DIVISOR: u64 = 100;

/// Chunks one piece request may name (the node's own cap).
const PIECE_CHUNKS_MAX: usize = 256;

/// What one incarnation of a host knows about its downloads: the peers the leader
/// listed per revision (from poll answers) and the bytes held of each revision being
/// fetched (reported in polls, so that the leader lists this host to other fetchers)
/// and the pieces held of it (advertised to peers, as the revision service's book
/// keeps them from the download's turns).
#[derive(Debug, Default)]
pub struct SwarmState {
    peers: BTreeMap<RevisionId, Vec<MemberAddress>>,
    fetching: BTreeMap<RevisionId, u64>,
    have: BTreeMap<RevisionId, Bitfield>,
}

impl SwarmState {
    /// Takes the peers of a poll answer (a revision's list replaces the one before).
    pub fn take_peers(&mut self, peers: &BTreeMap<RevisionId, Vec<MemberAddress>>) {
        for (revision, list) in peers {
            self.peers.insert(*revision, list.clone());
        }
    }

    /// Revisions being fetched and the bytes held of each.
    pub fn fetching(&self) -> impl Iterator<Item = (RevisionId, u64)> + '_ {
        self.fetching.iter().map(|(revision, held)| (*revision, *held))
    }

    /// The download of `revision` ended.
    pub fn ended(&mut self, revision: RevisionId) {
        self.fetching.remove(&revision);
        self.have.remove(&revision);
    }
}

/// The queues of every host's uplink and downlink, and every host's upload slots:
/// shared by the run, they survive a host's crash (a restarted host's slots are free
/// again once the transfers its old incarnation accepted have ended).
#[derive(Debug, Default)]
pub struct Links {
    /// When each host's uplink finishes what is queued on it.
    up_free: BTreeMap<NodeId, tokio::time::Instant>,
    /// When each host's downlink finishes what is queued on it.
    down_free: BTreeMap<NodeId, tokio::time::Instant>,
    /// The time each host's downlink spent receiving.
    received: BTreeMap<NodeId, std::time::Duration>,
    /// When the last first copy an origin handed out was through.
    first_copies_out: Option<tokio::time::Instant>,
    /// What each host's uplink has sent: bytes, and the time it spent sending them.
    sent: BTreeMap<NodeId, (u64, std::time::Duration)>,
    slots: BTreeMap<NodeId, fleetmesh_core::swarm::UploadSlots>,
    /// The super-seeding state of each host that was pushed a revision (in memory only,
    /// as on a node: a crash ends it, see [`Links::crashed`]).
    origins: BTreeMap<NodeId, Origins>,
}

impl Links {
    /// `node` received `revision`, of `pieces` pieces, by a push: it super-seeds it.
    pub fn pushed(&mut self, node: NodeId, revision: RevisionId, pieces: usize) {
        self.origins.entry(node).or_default().begin(revision, pieces);
    }

    /// The bytes `node`'s uplink has sent, and the time it spent sending them.
    pub fn sent(&self, node: NodeId) -> (u64, std::time::Duration) {
        self.sent.get(&node).copied().unwrap_or_default()
    }

    /// The bytes every uplink has sent.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.values().map(|(bytes, _)| bytes).sum()
    }

    /// The time `node`'s downlink spent receiving piece answers.
    pub fn received(&self, node: NodeId) -> std::time::Duration {
        self.received.get(&node).copied().unwrap_or_default()
    }

    /// When the last first copy an origin seed handed out was through.
    pub fn first_copies_out(&self) -> Option<tokio::time::Instant> {
        self.first_copies_out
    }

    /// `node` crashed: its restarted incarnation is an ordinary seed.
    pub fn crashed(&mut self, node: NodeId) {
        self.origins.remove(&node);
    }

    /// Queues `bytes` from `from` to `to` on `from`'s uplink at `up_rate` bytes/s and on
    /// `to`'s downlink at `down_rate`, and returns when they are through both: each queue
    /// sends what it holds one transfer after another, and the bytes are through when the
    /// later of the two has sent them. (Holding both ends for one interval instead left
    /// either end idle while the other was busy elsewhere.) A slow sender's bytes take
    /// its uplink for long but the receiver's downlink only for what they are at the
    /// downlink's rate: a drip from one peer does not stop a host receiving from others.
    fn reserve(&mut self, from: NodeId, to: NodeId, bytes: u64, up_rate: u64, down_rate: u64) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let sending = |rate: u64| {
            std::time::Duration::from_nanos((u128::from(bytes) * 1_000_000_000 / u128::from(rate.max(1))) as u64)
        };
        let up = self.up_free.get(&from).copied().unwrap_or(now).max(now) + sending(up_rate);
        let sent = self.sent.entry(from).or_default();
        *sent = (sent.0 + bytes, sent.1 + sending(up_rate));
        *self.received.entry(to).or_default() += sending(down_rate);
        let down = self.down_free.get(&to).copied().unwrap_or(now).max(now) + sending(down_rate);
        self.up_free.insert(from, up);
        self.down_free.insert(to, down);
        up.max(down)
    }
}

/// Gives back an upload slot when the answer is sent, failed, or its task was dropped.
struct SlotGuard {
    world: Arc<HostWorld>,
    server: NodeId,
    requester: NodeId,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(slots) = lock(&self.world.links).slots.get_mut(&self.server) {
            slots.release(self.requester);
        }
    }
}

/// The pieces of `map` whose chunks `disk` holds.
fn have_of(map: &PieceMap, disk: &SimDisk) -> Bitfield {
    let mut have = Bitfield::new(map.len());
    for piece in 0..map.len() {
        if map.piece(piece).iter().all(|chunk| disk.chunks.contains_key(&chunk.hash())) {
            have.set(piece);
        }
    }
    have
}

/// A host's answers to its peers' revision requests (the runtime's revision family).
#[derive(Debug)]
pub struct HostRevisions {
    world: Arc<HostWorld>,
    me: NodeId,
    disk: Arc<Mutex<SimDisk>>,
    swarm: Arc<Mutex<SwarmState>>,
}

impl HostRevisions {
    /// The revision service of host `me`, serving from `disk`, advertising what the
    /// downloads of `swarm` (the same incarnation's) hold.
    pub fn new(world: Arc<HostWorld>, me: NodeId, disk: Arc<Mutex<SimDisk>>, swarm: Arc<Mutex<SwarmState>>) -> Self {
        Self { world, me, disk, swarm }
    }

    /// The have-set this host advertises: a lying peer claims every piece; an origin
    /// seed advertises the pieces it has not handed out yet; a download advertises what
    /// it holds (as of its last turn); otherwise what the disk holds, every piece of a
    /// complete revision. (Only the last case looks at every chunk.)
    fn have(&self, revision: RevisionId, map: &PieceMap) -> Bitfield {
        let faults = lock(&self.world.faults);
        if faults.corrupt_peers.contains(&self.me) || faults.withholding_peers.contains(&self.me) {
            return Bitfield::full(map.len());
        }
        drop(faults);
        let links = lock(&self.world.links);
        if let Some(advertised) = links.origins.get(&self.me).and_then(|origins| origins.advertised(revision)) {
            return advertised.clone();
        }
        drop(links);
        if let Some(have) = lock(&self.swarm).have.get(&revision) {
            return have.clone();
        }
        let disk = lock(&self.disk);
        if disk.complete.contains(&revision) {
            return Bitfield::full(map.len());
        }
        have_of(map, &disk)
    }

    /// Answers a piece request: `Busy` when no upload slot is free, else the chunks'
    /// phantom contents once their declared bytes have crossed both links.
    async fn piece(
        &self,
        requester: NodeId,
        revision: RevisionId,
        piece: u32,
        chunks: Vec<ChunkHash>,
    ) -> (Response, Bytes) {
        let refused = |reason: String| (Response::Error(reason), Bytes::new());
        let Some(map) = self.world.piece_map(&revision) else {
            return refused(format!("this node does not know revision {revision}"));
        };
        if chunks.len() > PIECE_CHUNKS_MAX {
            return refused(format!("a piece request names at most {PIECE_CHUNKS_MAX} chunks"));
        }
        if piece as usize >= map.len() {
            return refused(format!("revision {revision} has {} pieces, not piece {piece}", map.len()));
        }
        let (corrupt, withholding, slow) = {
            let faults = lock(&self.world.faults);
            (
                faults.corrupt_peers.contains(&self.me),
                faults.withholding_peers.contains(&self.me),
                faults.slow_peers.contains(&self.me),
            )
        };
        if withholding {
            return refused("a chunk of the piece is not available here".to_string());
        }
        let decision = {
            // As the revision service's core: an upload slot, then the origin's say.
            let mut links = lock(&self.world.links);
            let slots = links.slots.entry(self.me).or_insert_with(upload_slots);
            if slots.try_acquire(requester) == UploadDecision::Busy {
                return (Response::Busy, Bytes::new());
            }
            links.origins.get_mut(&self.me).map(|origins| origins.decide(revision, piece as usize))
        };
        let _slot = SlotGuard { world: self.world.clone(), server: self.me, requester };
        if decision == Some(OriginDecision::Decline) {
            return (Response::Busy, Bytes::new());
        }
        let held = {
            let disk = lock(&self.disk);
            chunks.iter().all(|chunk| disk.chunks.contains_key(chunk))
        };
        if !held && !corrupt {
            return refused("a chunk of the piece is not available here".to_string());
        }
        let declared = map.piece_bytes(piece as usize);
        let full = self.world.timing.downlink_bytes_per_sec;
        let up_rate = if slow { full / SLOW_PEER_DIVISOR } else { full };
        let through = {
            let mut links = lock(&self.world.links);
            let through = links.reserve(self.me, requester, declared, up_rate, full);
            if decision == Some(OriginDecision::FirstCopy) {
                links.first_copies_out = links.first_copies_out.max(Some(through));
            }
            through
        };
        tokio::time::sleep_until(through).await;
        let mut payload = Vec::with_capacity(chunks.len() * PHANTOM_BYTES);
        {
            let catalog = lock(&self.world.catalog);
            for chunk in &chunks {
                let mut content = catalog.content(chunk).unwrap_or([0; PHANTOM_BYTES]);
                if corrupt {
                    content[0] ^= 0x5a;
                }
                payload.extend_from_slice(&content);
            }
        }
        (Response::Piece { have: self.have(revision, &map).to_string() }, Bytes::from(payload))
    }
}

impl Service for HostRevisions {
    fn handle(
        self: Arc<Self>,
        caller: Caller,
        request: Request,
        _payload: Bytes,
    ) -> BoxFuture<'static, Result<(Response, Bytes), Refusal>> {
        Box::pin(async move {
            let Caller::Node(peer) = caller else {
                return Err(Refusal::Forbidden("revision content is served to members only".to_string()));
            };
            match request {
                Request::GetHave { revision_id } => Ok(match self.world.piece_map(&revision_id) {
                    Some(map) => (Response::Have { have: self.have(revision_id, &map).to_string() }, Bytes::new()),
                    None => (Response::Error(format!("this node does not know revision {revision_id}")), Bytes::new()),
                }),
                Request::GetPiece { revision_id, piece, chunks } => {
                    Ok(self.piece(peer, revision_id, piece, chunks).await)
                }
                Request::GetManifest { revision_id } => Ok((
                    Response::Error(format!("simulated hosts read the manifest of {revision_id} from the world")),
                    Bytes::new(),
                )),
                other => Err(Refusal::Malformed(format!("not a revision request: {other:?}"))),
            }
        })
    }
}

/// Where a simulated host's download stores what it fetched: its disk, after checking
/// every chunk's phantom content against the chunk's name.
#[derive(Debug)]
pub struct HostStore {
    disk: Arc<Mutex<SimDisk>>,
    state: Arc<Mutex<SwarmState>>,
}

impl HostStore {
    /// The store of one host's downloads.
    pub fn new(disk: Arc<Mutex<SimDisk>>, state: Arc<Mutex<SwarmState>>) -> Self {
        Self { disk, state }
    }

    fn verify_and_store(&self, chunks: &[ChunkRef], payload: &[u8]) -> Received {
        if payload.len() != chunks.len() * PHANTOM_BYTES {
            return chunks.first().map_or(Received::Failed, |first| Received::Corrupt { chunk: first.hash() });
        }
        let mut verified = Vec::with_capacity(chunks.len());
        for (chunk, content) in chunks.iter().zip(payload.chunks_exact(PHANTOM_BYTES)) {
            let received = ChunkHash::of(content);
            if received != chunk.hash() {
                return Received::Corrupt { chunk: chunk.hash() };
            }
            verified.push(received);
        }
        let mut disk = lock(&self.disk);
        for received in verified {
            disk.chunks.insert(received, received);
        }
        Received::Ok
    }
}

impl DownloadStore for HostStore {
    fn store_piece(&self, chunks: Vec<ChunkRef>, payload: Bytes) -> BoxFuture<'static, Received> {
        let received = self.verify_and_store(&chunks, &payload);
        Box::pin(std::future::ready(received))
    }

    fn peers(&self, revision: RevisionId) -> Vec<MemberAddress> {
        lock(&self.state).peers.get(&revision).cloned().unwrap_or_default()
    }

    fn turn(&self, revision: RevisionId, have: &Bitfield, bytes_held: u64, complete: bool) -> Vec<MemberAddress> {
        let mut state = lock(&self.state);
        if complete {
            state.fetching.remove(&revision);
        } else {
            state.fetching.insert(revision, bytes_held);
        }
        // Complete: kept until the download ends and the disk lists the revision.
        state.have.insert(revision, have.clone());
        state.peers.get(&revision).cloned().unwrap_or_default()
    }

    fn fetched(&self, _bytes: u64) {
        // A piece answer carries 64 bytes of phantom content per chunk; what crossed
        // the simulated links is counted by the server, in declared bytes.
    }
}
