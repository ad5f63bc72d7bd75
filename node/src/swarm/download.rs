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
//!   is not full) is asked before a seed (failing peers last of all), so seeds spend their uplink on pieces only they
//!   hold and the others relay the rest.
//! - **Bad data bans.** A response with a chunk that failed verification bans the peer
//!   for the rest of the download; its requests are re-queued and it is never asked again.
//!   `Busy` and `Failed` re-queue the piece and back off from that peer for a while.
//! - **Endgame.** When every missing piece is in flight, a piece may be requested from a
//!   second peer; whichever answer comes first wins, the late one is ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_consensus::model::ids::ChunkHash;
use fleetmesh_consensus::model::revision::ChunkRef;
use fleetmesh_transport::NodeId;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::bitfield::Bitfield;
use super::pieces::PieceMap;
use super::rarity::Rarity;

/// Requests in flight to one peer.
///
/// 4: one 1 MiB piece takes ~8 ms at 1 Gbit/s against a ~1 ms LAN round trip, so two
/// outstanding requests already keep a peer's uplink busy for us; four also cover WAN
/// round trips up to ~25 ms. More would only queue at the uploader (which answers
/// `Busy` past its own slots) and commit pieces to a source long before it can send them.
pub const REQUESTS_PER_PEER_MAX: usize = 4;

/// Requests in flight in total.
///
/// 8: enough to keep the downlink fed from several peers while some of them are slow
/// or busy, and it bounds receive buffers to ~8 MiB per download whatever the revision
/// size. Measured in the swarm simulation: 16 changed completion time by under 1 %.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 8;

/// Requests for one piece in the endgame: the first one plus one duplicate. More would
/// spend peers' uplinks on bytes that are thrown away.
pub const ENDGAME_REQUESTS_PER_PIECE_MAX: usize = 2;

/// Known peers below which the download asks the shell for more (see
/// [`Download::wanted_peers_hint`]).
pub const PEERS_WANTED_MIN: usize = 4;

/// Tuning of a [`Download`]; [`Default`] holds the values the constants justify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadParams {
    /// Requests in flight to one peer, at least 1.
    pub requests_per_peer_max: usize,
    /// Requests in flight in total, at least 1.
    pub requests_in_flight_max: usize,
    /// Requests for one piece once every missing piece is in flight, at least 1.
    pub endgame_requests_per_piece_max: usize,
    /// How long a peer that answered `Busy` is left alone; doubles per consecutive
    /// `Busy` from it up to `busy_backoff_max`.
    pub busy_backoff: Duration,
    /// Longest back-off after `Busy` answers.
    pub busy_backoff_max: Duration,
    /// How long a peer is left alone after its first failure; doubles per consecutive
    /// failure up to `failed_backoff_max`.
    pub failed_backoff: Duration,
    /// Longest back-off after failures.
    pub failed_backoff_max: Duration,
    /// Known peers below which [`Download::wanted_peers_hint`] asks for more.
    pub peers_wanted_min: usize,
}

impl Default for DownloadParams {
    fn default() -> Self {
        Self {
            requests_per_peer_max: REQUESTS_PER_PEER_MAX,
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX,
            endgame_requests_per_piece_max: ENDGAME_REQUESTS_PER_PIECE_MAX,
            // A busy uploader frees a slot every ~8 ms (one piece); 10 ms lets others
            // take turns without leaving its queue empty.
            busy_backoff: Duration::from_millis(10),
            busy_backoff_max: Duration::from_millis(80),
            // A failure is a lost response or a dead connection: give it a few round
            // trips before retrying, and up to 2 s if it keeps failing.
            failed_backoff: Duration::from_millis(50),
            failed_backoff_max: Duration::from_secs(2),
            peers_wanted_min: PEERS_WANTED_MIN,
        }
    }
}

/// What came back for a piece request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Every requested chunk arrived, verified against its hash, and is stored.
    Ok,
    /// `chunk` failed verification; the shell discarded the response. The peer is banned.
    Corrupt {
        /// The first chunk whose bytes did not hash to its name.
        chunk: ChunkHash,
    },
    /// The peer had no free upload slot.
    Busy,
    /// No usable answer: a timeout, a lost response, a closed stream, or the peer lacks
    /// the piece after all.
    Failed,
}

/// One request to send: ask `peer` for the `chunks` of piece `piece`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceRequest {
    /// Who to ask.
    pub peer: NodeId,
    /// Which piece (index in the [`PieceMap`]).
    pub piece: usize,
    /// Only the piece's chunks not held locally, in piece order; never empty.
    pub chunks: Vec<ChunkRef>,
}

/// Why an input from the network was refused (the download state is unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// A have-set of the wrong length: the peer is on another revision or broken.
    #[error("peer {peer} advertised {got} pieces but this revision has {expected}; drop the peer")]
    BitfieldLength {
        /// Who sent it.
        peer: NodeId,
        /// Its length.
        got: usize,
        /// This revision's piece count.
        expected: usize,
    },
    /// A piece index past the end.
    #[error("peer {peer} named piece {piece} but this revision has {pieces} pieces; drop the peer")]
    PieceOutOfRange {
        /// Who named it.
        peer: NodeId,
        /// The index.
        piece: usize,
        /// This revision's piece count.
        pieces: usize,
    },
}

/// A broken internal rule: a bug, reported by `check_invariants`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("swarm invariant violated: {0}")]
pub struct InvariantViolation(pub String);

/// What the download knows about one peer.
#[derive(Clone, Debug)]
struct PeerState {
    /// Pieces it holds, as last advertised.
    have: Bitfield,
    /// Members of `have`.
    have_count: usize,
    /// Our requests to it not yet answered.
    in_flight: usize,
    /// Not asked before this time.
    backoff_until: Duration,
    /// Failures since its last good answer.
    failures: u32,
    /// `Busy` answers since its last accepted request.
    busy_streak: u32,
}

impl PeerState {
    fn new(pieces: usize) -> Self {
        Self {
            have: Bitfield::new(pieces),
            have_count: 0,
            in_flight: 0,
            backoff_until: Duration::ZERO,
            failures: 0,
            busy_streak: 0,
        }
    }

    fn is_seed(&self) -> bool {
        self.have_count == self.have.len()
    }
}

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
    peers: BTreeMap<NodeId, PeerState>,
    /// Peers that sent bad data; never asked again, their have-sets ignored.
    banned: BTreeSet<NodeId>,
    /// Requests sent and not answered, as (piece, peer). May name held pieces: a late
    /// endgame duplicate stays counted against its peer until it is answered.
    outstanding: BTreeSet<(usize, NodeId)>,
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
            peers: BTreeMap::new(),
            banned: BTreeSet::new(),
            outstanding: BTreeSet::new(),
            requests_per_piece: vec![0; pieces],
            in_flight: Bitfield::new(pieces),
            idle_until: None,
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
        let pieces = self.map.len();
        let endgame = self.is_endgame();
        let state = self.peers.entry(peer).or_insert_with(|| PeerState::new(pieces));
        if state.have != *bitfield {
            // Only a gained piece we want and have not asked for can give a starved
            // download something new to do (or any gain in the endgame).
            let useful =
                state.have.words().iter().zip(bitfield.words()).zip(self.have.words()).zip(self.in_flight.words()).any(
                    |(((old, new), held), asked)| new & !old & !held & (if endgame { u64::MAX } else { !asked }) != 0,
                );
            self.rarity.apply_change(&state.have, bitfield);
            state.have.clone_from(bitfield);
            state.have_count = bitfield.count();
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
        let pieces = self.map.len();
        let state = self.peers.entry(peer).or_insert_with(|| PeerState::new(pieces));
        if !state.have.get(piece) {
            state.have.set(piece);
            state.have_count += 1;
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
        if self.outstanding.remove(&(piece, peer)) {
            self.settle(piece, peer);
        }
        match outcome {
            Received::Ok => {
                self.store_piece(piece);
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.failures = 0;
                    state.busy_streak = 0;
                }
            }
            Received::Corrupt { .. } => {
                self.forget_peer(peer);
                self.banned.insert(peer);
            }
            Received::Busy => {
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.busy_streak = state.busy_streak.saturating_add(1);
                    let doublings = (state.busy_streak - 1).min(16);
                    let backoff = self.params.busy_backoff.saturating_mul(1 << doublings);
                    let until = now + backoff.min(self.params.busy_backoff_max);
                    state.backoff_until = state.backoff_until.max(until);
                }
            }
            Received::Failed => {
                if let Some(state) = self.peers.get_mut(&peer) {
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
        let mut eligible = self.eligible_peers(now);
        let mut offered = self.offered_by(&eligible);
        while self.outstanding.len() < self.params.requests_in_flight_max {
            let choice = match self.rarity.pick_rarest(&offered, &self.in_flight, &mut self.rng) {
                Some(piece) => self.choose_peer(piece, &eligible).map(|peer| (piece, peer)),
                None => self.choose_endgame(&eligible),
            };
            let Some((piece, peer)) = choice else {
                // Nothing to ask for until an input changes the state or a back-off ends.
                self.idle_until = Some(self.next_backoff_end(now).unwrap_or(Duration::MAX));
                break;
            };
            requests.push(self.register(piece, peer));
            if self.peers[&peer].in_flight >= self.params.requests_per_peer_max {
                eligible.retain(|candidate| *candidate != peer);
                offered = self.offered_by(&eligible);
            }
        }
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

    /// Checks every bookkeeping rule: counts of requests per peer and per piece agree
    /// with the outstanding set and respect the caps, no request is outstanding to a
    /// banned peer, no piece in flight is held, availability matches the peers'
    /// have-sets, and held pieces match held chunks and bytes. Runs after every input in
    /// test and debug builds; the simulator also calls it.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let fail = |text: String| Err(InvariantViolation(text));
        let mut per_peer: BTreeMap<NodeId, usize> = BTreeMap::new();
        let mut per_piece = vec![0usize; self.map.len()];
        for &(piece, peer) in &self.outstanding {
            if self.banned.contains(&peer) {
                return fail(format!("request for piece {piece} outstanding to banned peer {peer}"));
            }
            if !self.peers.contains_key(&peer) {
                return fail(format!("request for piece {piece} outstanding to unknown peer {peer}"));
            }
            *per_peer.entry(peer).or_insert(0) += 1;
            per_piece[piece] += 1;
        }
        if self.outstanding.len() > self.params.requests_in_flight_max {
            return fail(format!(
                "{} requests in flight, cap {}",
                self.outstanding.len(),
                self.params.requests_in_flight_max
            ));
        }
        for (peer, state) in &self.peers {
            let counted = per_peer.get(peer).copied().unwrap_or(0);
            if state.in_flight != counted || counted > self.params.requests_per_peer_max {
                return fail(format!("peer {peer}: {} in flight, {counted} outstanding", state.in_flight));
            }
            if self.banned.contains(peer) {
                return fail(format!("banned peer {peer} is still known"));
            }
            if state.have_count != state.have.count() {
                return fail(format!("peer {peer}: have count {} is stale", state.have_count));
            }
        }
        for piece in 0..self.map.len() {
            if per_piece[piece] != usize::from(self.requests_per_piece[piece]) {
                return fail(format!(
                    "piece {piece}: {} requests counted, {} outstanding",
                    self.requests_per_piece[piece], per_piece[piece]
                ));
            }
            if self.in_flight.get(piece) != (per_piece[piece] > 0 && !self.have.get(piece)) {
                return fail(format!("piece {piece}: in-flight mark is stale"));
            }
            let all_chunks = self.map.chunk_range(piece).all(|index| self.chunk_held.get(index));
            if self.have.get(piece) != all_chunks {
                return fail(format!("piece {piece}: have-set disagrees with held chunks"));
            }
        }
        if self.pieces_held != self.have.count() {
            return fail(format!("{} pieces counted as held, have-set has {}", self.pieces_held, self.have.count()));
        }
        let held_bytes: u64 = self.chunk_held.iter().map(|index| u64::from(self.map.chunks()[index].len())).sum();
        if held_bytes != self.bytes_held {
            return fail(format!("bytes held {} but held chunks sum to {held_bytes}", self.bytes_held));
        }
        let mut recomputed = vec![0u32; self.map.len()];
        for state in self.peers.values() {
            for piece in state.have.iter() {
                recomputed[piece] += 1;
            }
        }
        self.rarity.check(&recomputed, &self.have).map_err(InvariantViolation)
    }

    /// True when every missing piece is in flight: duplicates are allowed.
    fn is_endgame(&self) -> bool {
        self.in_flight.count() + self.pieces_held == self.map.len()
    }

    /// The earliest end of a back-off after `now`.
    fn next_backoff_end(&self, now: Duration) -> Option<Duration> {
        self.peers.values().map(|state| state.backoff_until).filter(|&until| until > now).min()
    }

    fn debug_check(&self) {
        if cfg!(any(test, debug_assertions)) {
            if let Err(violation) = self.check_invariants() {
                panic!("{violation}");
            }
        }
    }

    fn check_piece(&self, peer: NodeId, piece: usize) -> Result<(), DownloadError> {
        if piece >= self.map.len() {
            return Err(DownloadError::PieceOutOfRange { peer, piece, pieces: self.map.len() });
        }
        Ok(())
    }

    /// Peers we may ask now: known, not backed off, below their request cap.
    fn eligible_peers(&self, now: Duration) -> Vec<NodeId> {
        self.peers
            .iter()
            .filter(|(_, state)| state.backoff_until <= now && state.in_flight < self.params.requests_per_peer_max)
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// Union of the have-sets of `peers` (a sorted subset of the known peers), as words.
    fn offered_by(&self, peers: &[NodeId]) -> Vec<u64> {
        let mut offered = vec![0u64; self.have.words().len()];
        // One ordered walk over the known peers instead of a lookup per eligible peer.
        let mut wanted = peers.iter().peekable();
        for (peer, state) in &self.peers {
            if wanted.peek() != Some(&peer) {
                continue;
            }
            wanted.next();
            for (word, theirs) in offered.iter_mut().zip(state.have.words()) {
                *word |= theirs;
            }
        }
        offered
    }

    /// Among `eligible` peers holding `piece`: the ones with the fewest failures since
    /// their last good answer (so a peer that keeps failing cannot keep winning the
    /// piece from an honest seed), then non-seeds before seeds, then the ones we have
    /// the fewest requests with, then at random.
    fn choose_peer(&mut self, piece: usize, eligible: &[NodeId]) -> Option<NodeId> {
        let holders: Vec<(NodeId, &PeerState)> =
            eligible.iter().map(|peer| (*peer, &self.peers[peer])).filter(|(_, state)| state.have.get(piece)).collect();
        let relays_exist = holders.iter().any(|(_, state)| !state.is_seed());
        let rank = |state: &PeerState| (state.failures, relays_exist && state.is_seed(), state.in_flight);
        let best = holders.iter().map(|(_, state)| rank(state)).min()?;
        let tied: Vec<NodeId> =
            holders.iter().filter(|(_, state)| rank(state) == best).map(|(peer, _)| *peer).collect();
        tied.choose(&mut self.rng).copied()
    }

    /// Endgame: only when every missing piece is already in flight, a second request
    /// for one of them to an eligible peer not yet asked for it.
    fn choose_endgame(&mut self, eligible: &[NodeId]) -> Option<(usize, NodeId)> {
        if !self.is_endgame() {
            return None;
        }
        let mut candidates = Vec::new();
        for piece in self.in_flight.iter() {
            if usize::from(self.requests_per_piece[piece]) >= self.params.endgame_requests_per_piece_max {
                continue;
            }
            for peer in eligible {
                if self.peers[peer].have.get(piece) && !self.outstanding.contains(&(piece, *peer)) {
                    candidates.push((piece, *peer));
                }
            }
        }
        candidates.choose(&mut self.rng).copied()
    }

    fn register(&mut self, piece: usize, peer: NodeId) -> PieceRequest {
        assert!(!self.have.get(piece), "piece {piece} is held and must not be requested");
        assert!(!self.banned.contains(&peer), "peer {peer} is banned and must not be asked");
        let inserted = self.outstanding.insert((piece, peer));
        assert!(inserted, "piece {piece} requested twice from peer {peer}");
        self.requests_per_piece[piece] += 1;
        self.in_flight.set(piece);
        if let Some(state) = self.peers.get_mut(&peer) {
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
        if let Some(state) = self.peers.get_mut(&peer) {
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
        let Some(state) = self.peers.remove(&peer) else { return };
        self.rarity.apply_change(&state.have, &Bitfield::new(self.map.len()));
        let theirs: Vec<(usize, NodeId)> = self.outstanding.iter().filter(|(_, to)| *to == peer).copied().collect();
        for key in theirs {
            self.outstanding.remove(&key);
            self.settle(key.0, peer);
        }
    }
}

#[cfg(test)]
#[path = "download_tests.rs"]
mod tests;
