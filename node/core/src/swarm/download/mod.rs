//! One node fetching one revision from many peers at once: the piece picker.
//!
//! [`Download`] is a sans-I/O state machine. The shell feeds it what it learns (peers'
//! have-sets, responses, departures) and drains piece requests to send; it never reads
//! a clock, touches a socket or draws unseeded randomness, so the simulator drives
//! exactly this code with a thousand nodes on virtual time.
//!
//! ```text
//!  peer_bitfield / peer_has / peer_gone ──▶ ┌──────────┐ ──▶ next_requests(now): Vec<PieceRequest>
//!  piece_received(peer, piece, outcome, now)▶│ Download │ ──▶ next_deadline(now): wake me then
//!                                            └──────────┘ ──▶ have(), bytes_held(), is_complete()
//! ```
//!
//! Rules, in the order they bite:
//! - **Never fetch what is held.** Chunks already in the local store (earlier revisions)
//!   are marked at construction; a piece partly held requests only its missing chunks.
//! - **Rarest first.** Among pieces not held and not in flight that an eligible peer
//!   offers, take the one the fewest known peers hold; ties go to the seeded RNG, so
//!   nodes with the same view fetch different pieces and then trade them.
//! - **Bounded requests.** At most [`REQUESTS_PER_PEER_MAX`] per peer and
//!   [`REQUESTS_IN_FLIGHT_MAX`] in total.
//! - **Relay before seed.** For the chosen piece, a peer that is not a seed (its have-set
//!   is not full) is asked before a seed, and peers that failed recently last of all, so
//!   seeds spend their uplink on pieces only they hold and the others relay the rest.
//! - **Bad data bans.** A response with a chunk that failed verification bans the peer
//!   for the rest of the download; its requests are re-queued and it is never asked
//!   again. `Busy` and `Failed` re-queue the piece and back off from that peer, twice as
//!   long each time it repeats, up to a cap.
//! - **Endgame.** When every missing piece is in flight, a piece may be requested from a
//!   second peer; whichever answer comes first wins, the late one is ignored.
//!
//! Call order: feed every input as it happens, then call [`Download::next_requests`]
//! and send what it returns; if nothing else happens first, call it again at
//! [`Download::next_deadline`]. [`Download::is_saturated`] says when calling is
//! pointless (complete, or at the request cap until an answer arrives).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_state::model::ids::ChunkHash;
use fleetmesh_state::NodeId;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::bitfield::Bitfield;
use super::peers::PeerTable;
use super::pieces::PieceMap;
use super::rarity::Rarity;

mod choice;
mod interface;
mod invariants;
mod params;

pub use interface::{DownloadError, PieceRequest, Received};
pub use invariants::InvariantViolation;
pub use params::{
    DownloadParams, ENDGAME_REQUESTS_PER_PIECE_MAX, PEERS_WANTED_MIN, REQUESTS_IN_FLIGHT_MAX, REQUESTS_PER_PEER_MAX,
};

/// One node fetching one revision; see the module docs for the rules.
#[derive(Clone, Debug)]
pub struct Download {
    map: Arc<PieceMap>,
    params: DownloadParams,
    rng: ChaCha8Rng,
    /// Per unique chunk: in the local store.
    chunk_held: Bitfield,
    /// Per piece: every chunk held.
    have: Bitfield,
    /// Members of `have` (so completeness is O(1) on every event).
    pieces_held: usize,
    /// Pieces completed by this download so far (not counting those held at the start).
    completions: u32,
    /// Per piece: 0 if not held or held from the start, else its position in the order
    /// of completion (1 for the first piece completed by this download).
    completion_rank: Vec<u32>,
    /// Bytes of held unique chunks.
    bytes_held: u64,
    rarity: Rarity,
    peers: PeerTable,
    /// Peers that sent bad data; never asked again, their have-sets ignored.
    banned: BTreeSet<NodeId>,
    /// Requests sent and not answered, as (piece, peer). May name held pieces: a late
    /// endgame duplicate stays counted against its peer until it is answered.
    /// A short vector (at most `requests_in_flight_max` entries, in the order sent)
    /// rather than a tree: it is scanned whole in a few cache lines.
    outstanding: Vec<(usize, NodeId)>,
    /// Per piece: entries of `outstanding` (at most the endgame cap, kept small for the
    /// cache footprint of a thousand simulated downloads).
    requests_per_piece: Vec<u16>,
    /// Pieces not held with at least one request outstanding.
    in_flight: Bitfield,
    /// Set when [`Self::next_requests`] found nothing to ask for: until this time (the
    /// next back-off expiry), and unless an input changes the state first, asking
    /// again gives the same empty answer, so it is skipped. Starved downloads are asked
    /// on every event that touches them.
    idle_until: Option<Duration>,
    /// Buffers reused by every [`Self::next_requests`] (eligible peer positions and the
    /// union of their have-sets), so the hot path does not allocate.
    scratch_eligible: Vec<usize>,
    scratch_offered: Vec<u64>,
}

impl Download {
    /// Starts fetching the revision `map` describes. `held` answers whether a chunk is
    /// already in the local store; such chunks are never requested.
    pub fn new(map: Arc<PieceMap>, held: impl Fn(ChunkHash) -> bool, params: DownloadParams, rng_seed: u64) -> Self {
        let pieces = map.len();
        let mut chunk_held = Bitfield::new(map.chunk_count());
        let mut bytes_held = 0;
        for (index, chunk) in map.chunks().iter().enumerate() {
            if held(chunk.hash()) {
                chunk_held.set(index);
                bytes_held += u64::from(chunk.len());
            }
        }
        let mut have = Bitfield::new(pieces);
        for piece in 0..pieces {
            if map.chunk_range(piece).all(|index| chunk_held.get(index)) {
                have.set(piece);
            }
        }
        let download = Self {
            rarity: Rarity::new(&have),
            pieces_held: have.count(),
            completions: 0,
            completion_rank: vec![0; pieces],
            params: DownloadParams {
                requests_per_peer_max: params.requests_per_peer_max.max(1),
                requests_in_flight_max: params.requests_in_flight_max.max(1),
                endgame_requests_per_piece_max: params.endgame_requests_per_piece_max.clamp(1, usize::from(u16::MAX)),
                ..params
            },
            rng: ChaCha8Rng::seed_from_u64(rng_seed),
            chunk_held,
            have,
            bytes_held,
            peers: PeerTable::new(pieces),
            banned: BTreeSet::new(),
            outstanding: Vec::new(),
            requests_per_piece: vec![0; pieces],
            in_flight: Bitfield::new(pieces),
            idle_until: None,
            scratch_eligible: Vec::new(),
            scratch_offered: Vec::new(),
            map,
        };
        download.debug_check();
        download
    }

    /// `peer` advertised its whole have-set. Adds the peer if it is new; ignored for a
    /// banned peer.
    ///
    /// # Errors
    /// [`DownloadError::BitfieldLength`] when the set does not match this revision.
    pub fn peer_bitfield(&mut self, peer: NodeId, bitfield: &Bitfield) -> Result<(), DownloadError> {
        if bitfield.len() != self.map.len() {
            return Err(DownloadError::BitfieldLength { peer, got: bitfield.len(), expected: self.map.len() });
        }
        if self.banned.contains(&peer) {
            return Ok(());
        }
        let position = self.peers.insert(peer);
        if self.peers.have(position) != bitfield.words() {
            let old = self.peers.replace_have(position, bitfield);
            self.rarity.apply_change(&old, bitfield.words());
            // Only a gained piece we want and have not asked for can give a starved
            // download something new to do (or any gain in the endgame).
            let endgame = self.is_endgame();
            let useful =
                old.iter().zip(bitfield.words()).zip(self.have.words()).zip(self.in_flight.words()).any(
                    |(((old, new), held), asked)| new & !old & !held & (if endgame { u64::MAX } else { !asked }) != 0,
                );
            if useful {
                self.idle_until = None;
            }
        }
        self.debug_check();
        Ok(())
    }

    /// `peer` announced one more piece. Adds the peer if it is new; ignored for a banned
    /// peer.
    ///
    /// # Errors
    /// [`DownloadError::PieceOutOfRange`] for an index past the end.
    pub fn peer_has(&mut self, peer: NodeId, piece: usize) -> Result<(), DownloadError> {
        self.check_piece(peer, piece)?;
        if self.banned.contains(&peer) {
            return Ok(());
        }
        let position = self.peers.insert(peer);
        if self.peers.add_piece(position, piece) {
            self.rarity.increment(piece);
            if !self.have.get(piece) && (!self.in_flight.get(piece) || self.is_endgame()) {
                self.idle_until = None;
            }
        }
        self.debug_check();
        Ok(())
    }

    /// `peer` disconnected or died: its pieces no longer count and its requests are
    /// re-queued (answers that still arrive from it are ignored). It may come back with
    /// a new [`Self::peer_bitfield`].
    pub fn peer_gone(&mut self, peer: NodeId) {
        self.forget_peer(peer);
        self.idle_until = None;
        self.debug_check();
    }

    /// The answer to a request for `piece` from `peer` arrived at `now`.
    ///
    /// An `Ok` for a piece not held is taken even when no such request is outstanding
    /// (the chunks were verified, whoever sent them); an `Ok` for a held piece is a late
    /// endgame duplicate and only settles the request.
    ///
    /// # Errors
    /// [`DownloadError::PieceOutOfRange`] for an index past the end.
    pub fn piece_received(
        &mut self,
        peer: NodeId,
        piece: usize,
        outcome: Received,
        now: Duration,
    ) -> Result<(), DownloadError> {
        self.check_piece(peer, piece)?;
        self.idle_until = None;
        if let Some(index) = self.outstanding.iter().position(|entry| *entry == (piece, peer)) {
            self.outstanding.remove(index);
            self.settle(piece, peer);
        }
        match outcome {
            Received::Ok => {
                self.store_piece(piece);
                if let Some(state) = self.peers.state_of_mut(peer) {
                    state.failures = 0;
                    state.busy_streak = 0;
                }
            }
            Received::Corrupt { .. } => {
                self.forget_peer(peer);
                self.banned.insert(peer);
            }
            Received::Busy => {
                if let Some(state) = self.peers.state_of_mut(peer) {
                    state.busy_streak = state.busy_streak.saturating_add(1);
                    let doublings = (state.busy_streak - 1).min(16);
                    let backoff = self.params.busy_backoff.saturating_mul(1 << doublings);
                    let until = now + backoff.min(self.params.busy_backoff_max);
                    state.backoff_until = state.backoff_until.max(until);
                }
            }
            Received::Failed => {
                if let Some(state) = self.peers.state_of_mut(peer) {
                    state.failures = state.failures.saturating_add(1);
                    let doublings = (state.failures - 1).min(16);
                    let backoff = self.params.failed_backoff.saturating_mul(1 << doublings);
                    state.backoff_until = now + backoff.min(self.params.failed_backoff_max);
                }
            }
        }
        self.debug_check();
        Ok(())
    }

    /// The requests to send now, already counted as in flight. Empty when the caps are
    /// reached, when no eligible peer offers a missing piece, or when complete.
    pub fn next_requests(&mut self, now: Duration) -> Vec<PieceRequest> {
        let mut requests = Vec::new();
        // The common case in a busy swarm: called on every event, already at the cap.
        if self.is_saturated() || self.idle_until.is_some_and(|until| now < until) {
            return requests;
        }
        self.idle_until = None;
        // Positions in the peer table, stable for this call (no peer comes or goes).
        let mut eligible = std::mem::take(&mut self.scratch_eligible);
        let mut offered = std::mem::take(&mut self.scratch_offered);
        self.eligible_peers(now, &mut eligible);
        self.offered_by(&eligible, &mut offered);
        while self.outstanding.len() < self.params.requests_in_flight_max {
            let choice = match self.rarity.pick_rarest(&offered, &self.in_flight, &mut self.rng) {
                Some(piece) => self.choose_peer(piece, &eligible).map(|position| (piece, position)),
                None => self.choose_endgame(&eligible),
            };
            let Some((piece, position)) = choice else {
                // Nothing to ask for until an input changes the state or a back-off ends.
                self.idle_until = Some(self.next_backoff_end(now).unwrap_or(Duration::MAX));
                break;
            };
            let peer = self.peers.id(position);
            requests.push(self.register(piece, peer));
            if self.peers.state(position).in_flight as usize >= self.params.requests_per_peer_max {
                eligible.retain(|candidate| *candidate != position);
                self.offered_by(&eligible, &mut offered);
            }
        }
        self.scratch_eligible = eligible;
        self.scratch_offered = offered;
        self.debug_check();
        requests
    }

    /// The earliest time after `now` when a backed-off peer becomes eligible again; the
    /// shell calls [`Self::next_requests`] then if nothing else happens first. `None`
    /// when complete or at the request cap (only an answer can free a slot, and the
    /// shell calls [`Self::next_requests`] after every answer anyway).
    pub fn next_deadline(&self, now: Duration) -> Option<Duration> {
        if self.is_saturated() {
            return None;
        }
        self.next_backoff_end(now)
    }

    /// True when [`Self::next_requests`] would return nothing whatever the peers hold:
    /// complete, or at the total request cap. A shell can skip calling it then.
    pub fn is_saturated(&self) -> bool {
        self.is_complete() || self.outstanding.len() >= self.params.requests_in_flight_max
    }

    /// True once every piece is held.
    pub fn is_complete(&self) -> bool {
        self.pieces_held == self.map.len()
    }

    /// Bytes of this revision's unique chunks in the local store.
    pub fn bytes_held(&self) -> u64 {
        self.bytes_held
    }

    /// Pieces held completely: what this node advertises to its peers.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// When `piece` was completed, as a rank: `Some(0)` for a piece held from the start,
    /// `Some(k)` for the k-th piece this download completed, `None` if not held. The
    /// upload side sends fresher pieces first (see [`super::SendPriority`]).
    ///
    /// # Panics
    /// When `piece` is out of range.
    pub fn completion_rank(&self, piece: usize) -> Option<u32> {
        self.have.get(piece).then(|| self.completion_rank[piece])
    }

    /// The piece map this download follows.
    pub fn map(&self) -> &Arc<PieceMap> {
        &self.map
    }

    /// True when `peer` sent bad data and is never asked again.
    pub fn is_banned(&self, peer: NodeId) -> bool {
        self.banned.contains(&peer)
    }

    /// Requests in flight (including unanswered endgame duplicates).
    pub fn requests_in_flight(&self) -> usize {
        self.outstanding.len()
    }

    /// How many more peers the shell should find (ask the leader for) so the download
    /// can progress: the shortfall below `peers_wanted_min` known peers, or 1 when it is
    /// stalled (nothing in flight and no known peer holds a missing piece). Zero once
    /// complete.
    pub fn wanted_peers_hint(&self) -> usize {
        if self.is_complete() {
            return 0;
        }
        let shortfall = self.params.peers_wanted_min.saturating_sub(self.peers.len());
        let stalled = self.outstanding.is_empty() && !self.rarity.any_available();
        shortfall.max(usize::from(stalled))
    }

    /// True when every missing piece is in flight: duplicates are allowed.
    fn is_endgame(&self) -> bool {
        self.in_flight.count() + self.pieces_held == self.map.len()
    }

    /// The earliest end of a back-off after `now`.
    fn next_backoff_end(&self, now: Duration) -> Option<Duration> {
        self.peers.states().iter().map(|state| state.backoff_until).filter(|&until| until > now).min()
    }

    fn check_piece(&self, peer: NodeId, piece: usize) -> Result<(), DownloadError> {
        if piece >= self.map.len() {
            return Err(DownloadError::PieceOutOfRange { peer, piece, pieces: self.map.len() });
        }
        Ok(())
    }

    fn register(&mut self, piece: usize, peer: NodeId) -> PieceRequest {
        assert!(!self.have.get(piece), "piece {piece} is held and must not be requested");
        assert!(!self.banned.contains(&peer), "peer {peer} is banned and must not be asked");
        assert!(!self.outstanding.contains(&(piece, peer)), "piece {piece} requested twice from peer {peer}");
        self.outstanding.push((piece, peer));
        self.requests_per_piece[piece] += 1;
        self.in_flight.set(piece);
        if let Some(state) = self.peers.state_of_mut(peer) {
            state.in_flight += 1;
        }
        let range = self.map.chunk_range(piece);
        let chunks = self.map.chunks()[range.clone()]
            .iter()
            .zip(range)
            .filter(|(_, index)| !self.chunk_held.get(*index))
            .map(|(chunk, _)| *chunk)
            .collect();
        PieceRequest { peer, piece, chunks }
    }

    /// Bookkeeping for an outstanding (piece, peer) that was just removed.
    fn settle(&mut self, piece: usize, peer: NodeId) {
        self.requests_per_piece[piece] -= 1;
        if self.requests_per_piece[piece] == 0 && !self.have.get(piece) {
            self.in_flight.clear(piece);
        }
        if let Some(state) = self.peers.state_of_mut(peer) {
            state.in_flight -= 1;
        }
    }

    fn store_piece(&mut self, piece: usize) {
        if self.have.get(piece) {
            return;
        }
        for index in self.map.chunk_range(piece) {
            if !self.chunk_held.get(index) {
                self.chunk_held.set(index);
                self.bytes_held += u64::from(self.map.chunks()[index].len());
            }
        }
        self.have.set(piece);
        self.pieces_held += 1;
        self.completions += 1;
        self.completion_rank[piece] = self.completions;
        self.in_flight.clear(piece);
        self.rarity.mark_held(piece);
    }

    /// Drops `peer`: its pieces stop counting, its requests are re-queued.
    fn forget_peer(&mut self, peer: NodeId) {
        let Some((_, have)) = self.peers.remove(peer) else {
            return;
        };
        self.rarity.apply_change(&have, Bitfield::new(self.map.len()).words());
        let theirs: Vec<usize> =
            self.outstanding.iter().filter(|(_, to)| *to == peer).map(|(piece, _)| *piece).collect();
        self.outstanding.retain(|(_, to)| *to != peer);
        for piece in theirs {
            self.settle(piece, peer);
        }
    }
}

#[cfg(test)]
mod tests;
