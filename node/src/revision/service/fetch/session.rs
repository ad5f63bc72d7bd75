//! The decisions of one swarm download, without I/O: which peers to ask for their
//! have-sets and when, which piece requests to send, what each answer changes, and
//! when the download has stalled. The shell ([`super::Fetch`]) does the asking.
//!
//! ```text
//!  handle_members(peers listed by the leader) ─┐
//!  handle_have(peer, have-set)                 ├─▶ Session (owns the Download core)
//!  handle_piece(peer, piece, outcome, have)   ─┘        │
//!                       poll_actions(now) ◀─────────────┘ AskHave(peer) / AskPiece(peer, request)
//!                       check_progress(now), next_wake(now)
//! ```
//!
//! Call order, every turn of the shell: `handle_members`, `poll_actions` (send them
//! all), wait for one answer or `next_wake`, feed it with `handle_*`, then
//! `check_progress`. Times are durations since the download started.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use fleetmesh_core::swarm::{Bitfield, Download, PieceRequest, Received};
use fleetmesh_transport::{NodeId, Peer};
use tracing::debug;

use super::{HAVE_REFRESH, PIECE_TIMEOUT, STALL_TIMEOUT};
use crate::revision::service::{FetchError, NoHolder};

/// A peer's have-set counts as live for this long after it was asked for (answers come
/// every [`HAVE_REFRESH`] from a peer that is up).
const HOLDER_FRESH: Duration = Duration::from_secs(3);

/// How often the pieces without a live holder are counted (a pass over pieces × peers).
const HOLDER_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Piece answers whose durations set the piece timeout (the most recent ones).
const PIECE_TIMES_KEPT: usize = 32;

/// A piece request may take this many times the median of recent answers...
const PIECE_TIMEOUT_FACTOR: u32 = 8;

/// ...but never less than this (a LAN round trip plus a busy uploader's queue), so a
/// fast swarm does not cut requests on a scheduling hiccup.
const PIECE_TIMEOUT_MIN: Duration = Duration::from_secs(2);

/// What the shell must do for the download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Ask `peer` for its have-set, and feed the answer to [`Session::handle_have`].
    AskHave(Peer),
    /// Ask `peer` for the chunks of a piece, verify and store them, and feed the outcome
    /// to [`Session::handle_piece`].
    AskPiece(Peer, PieceRequest),
}

/// One download of one revision, fed with events and polled for actions.
pub(super) struct Session {
    /// This node (never a peer of its own download).
    own_id: NodeId,
    download: Download,
    /// Peers listed for the revision; only grows.
    peers: BTreeMap<NodeId, Peer>,
    /// When each peer's have-set was last asked for or brought by a piece answer.
    last_have: BTreeMap<NodeId, Duration>,
    /// Peers with a have-set request in flight (at most one per peer).
    have_pending: BTreeSet<NodeId>,
    /// When the bytes held last grew, and to how many.
    last_progress: (Duration, u64),
    /// The last have-set of each peer, and when it was asked for.
    holders: BTreeMap<NodeId, (Bitfield, Duration)>,
    /// Since when some piece this node lacks has had no live holder, if one has not.
    orphaned_since: Option<Duration>,
    /// When the holders were last counted.
    holders_checked: Option<Duration>,
    /// How long a piece may have no live holder before the download fails.
    no_holder_timeout: Duration,
    /// How long the most recent good piece answers took, newest last.
    piece_times: VecDeque<Duration>,
}

impl Session {
    /// A session for `download`, started at `now`, run by node `own_id`.
    pub(super) fn new(own_id: NodeId, download: Download, now: Duration) -> Self {
        let last_progress = (now, download.bytes_held());
        Self {
            own_id,
            download,
            peers: BTreeMap::new(),
            last_have: BTreeMap::new(),
            have_pending: BTreeSet::new(),
            last_progress,
            holders: BTreeMap::new(),
            orphaned_since: None,
            holders_checked: None,
            no_holder_timeout: super::NO_HOLDER_TIMEOUT,
            piece_times: VecDeque::with_capacity(PIECE_TIMES_KEPT),
        }
    }

    /// This session with `timeout` as the time a piece may have no live holder.
    pub(super) fn with_no_holder_timeout(mut self, timeout: Duration) -> Self {
        self.no_holder_timeout = timeout;
        self
    }

    /// The download core (what is held, whether it is complete).
    pub(super) fn download(&self) -> &Download {
        &self.download
    }

    /// The download core, once the session is over.
    pub(super) fn into_download(self) -> Download {
        self.download
    }

    /// The peers the leader lists for the revision now; new ones are added (this node
    /// is skipped), none is removed.
    pub(super) fn handle_members(&mut self, members: impl IntoIterator<Item = Peer>) {
        for peer in members {
            if peer.id != self.own_id {
                self.peers.insert(peer.id, peer);
            }
        }
    }

    /// What to send now: a have-set request to every peer whose have-set is older than
    /// [`HAVE_REFRESH`] (one at a time per peer; banned peers are not asked), then the
    /// piece requests the core wants. A request for a peer not listed fails at once.
    pub(super) fn poll_actions(&mut self, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        for (id, peer) in &self.peers {
            let stale = self.last_have.get(id).is_none_or(|at| now.saturating_sub(*at) >= HAVE_REFRESH);
            if stale && !self.have_pending.contains(id) && !self.download.is_banned(*id) {
                self.have_pending.insert(*id);
                self.last_have.insert(*id, now);
                actions.push(Action::AskHave(*peer));
            }
        }
        for request in self.download.next_requests(now) {
            match self.peers.get(&request.peer).copied() {
                Some(peer) => actions.push(Action::AskPiece(peer, request)),
                None => {
                    // Cannot fail: `piece` is the index of a request the download made.
                    let _ = self.download.piece_received(request.peer, request.piece, Received::Failed, now);
                }
            }
        }
        actions
    }

    /// A have-set answer from `peer` (`None`: it did not answer, or not with a have-set).
    pub(super) fn handle_have(&mut self, peer: NodeId, have: Option<Bitfield>) {
        self.have_pending.remove(&peer);
        if let Some(have) = have {
            let asked = self.last_have.get(&peer).copied().unwrap_or_default();
            self.take_bitfield(peer, &have);
            self.holders.insert(peer, (have, asked));
        }
    }

    /// The outcome of a piece request to `peer` at `now`, with the have-set the answer
    /// carried, if any.
    pub(super) fn handle_piece(
        &mut self,
        peer: NodeId,
        piece: usize,
        received: Received,
        have: Option<Bitfield>,
        now: Duration,
    ) {
        if let Some(have) = have {
            self.take_bitfield(peer, &have);
            self.last_have.insert(peer, now);
            self.holders.insert(peer, (have, now));
        }
        if let Received::Corrupt { chunk } = received {
            tracing::warn!(%peer, %chunk, "peer sent a chunk that does not match its hash; it will not be asked again");
        }
        // Cannot fail: `piece` is the index of a request the download made.
        let _ = self.download.piece_received(peer, piece, received, now);
    }

    /// A piece answer that verified took `took` from request to answer.
    pub(super) fn note_piece_time(&mut self, took: Duration) {
        if self.piece_times.len() == PIECE_TIMES_KEPT {
            self.piece_times.pop_front();
        }
        self.piece_times.push_back(took);
    }

    /// How long the next piece request may take: [`PIECE_TIMEOUT_FACTOR`] times the
    /// median of recent good answers, within [`PIECE_TIMEOUT_MIN`] and the shell's
    /// [`PIECE_TIMEOUT`]; the latter until a few answers have come.
    ///
    /// A peer that sends far slower than the others (a slow link, or one that drips
    /// on purpose) would otherwise hold the pieces asked of it, and with them part of
    /// the requests in flight, for up to the full timeout: measured in the simulator
    /// (`byzantine-peer`, a tenth of 1,000 hosts lying, a third of them sending at 1 %
    /// speed, 16 upload slots per node), the last download took 8.71 s with a fixed
    /// 30 s timeout and 3.16 s with this one, against a median of 1.31 s. A request cut
    /// this way counts as failed: the peer is backed off and the piece asked of another.
    pub(super) fn piece_timeout(&self) -> Duration {
        if self.piece_times.len() < PIECE_TIMES_KEPT / 4 {
            return PIECE_TIMEOUT;
        }
        let mut sorted: Vec<Duration> = self.piece_times.iter().copied().collect();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        (median * PIECE_TIMEOUT_FACTOR).clamp(PIECE_TIMEOUT_MIN, PIECE_TIMEOUT)
    }

    fn take_bitfield(&mut self, peer: NodeId, have: &Bitfield) {
        if let Err(error) = self.download.peer_bitfield(peer, have) {
            debug!(%error, "have-set ignored");
        }
    }

    /// How long the shell may wait for an answer before polling again.
    pub(super) fn next_wake(&self, now: Duration) -> Duration {
        self.download.next_deadline(now).map_or(HAVE_REFRESH, |deadline| deadline.saturating_sub(now).min(HAVE_REFRESH))
    }

    /// Counts, at most every [`HOLDER_CHECK_EVERY`], the chunks this node lacks that no
    /// live peer holds (a peer whose have-set was asked for in the last
    /// [`HOLDER_FRESH`], not banned).
    ///
    /// # Errors
    /// [`FetchError::NoLiveHolder`] once some chunk has had no live holder for the
    /// session's no-holder timeout (60 s by default) without a break.
    pub(super) fn check_holders(&mut self, now: Duration) -> Result<(), FetchError> {
        if self.holders_checked.is_some_and(|checked| now.saturating_sub(checked) < HOLDER_CHECK_EVERY) {
            return Ok(());
        }
        self.holders_checked = Some(now);
        let missing = self.chunks_without_live_holder(now);
        if missing == 0 {
            self.orphaned_since = None;
            return Ok(());
        }
        let since = *self.orphaned_since.get_or_insert(now);
        if now.saturating_sub(since) < self.no_holder_timeout {
            return Ok(());
        }
        Err(FetchError::NoLiveHolder(NoHolder {
            missing_chunks: missing,
            total_chunks: self.download.map().chunk_count(),
            waited: self.no_holder_timeout,
            peers: self.peers.len(),
        }))
    }

    /// The chunks of the pieces this node lacks that no live peer's have-set lists.
    fn chunks_without_live_holder(&self, now: Duration) -> usize {
        let map = self.download.map();
        let have = self.download.have();
        let live: Vec<&Bitfield> = self
            .holders
            .iter()
            .filter(|(peer, (bits, asked))| {
                now.saturating_sub(*asked) <= HOLDER_FRESH
                    && !self.download.is_banned(**peer)
                    && bits.len() == map.len()
            })
            .map(|(_, (bits, _))| bits)
            .collect();
        (0..map.len())
            .filter(|piece| !have.get(*piece) && !live.iter().any(|bits| bits.get(*piece)))
            .map(|piece| map.piece(piece).len())
            .sum()
    }

    /// Notes progress at `now`.
    ///
    /// # Errors
    /// [`FetchError::Stalled`] when the bytes held have not grown for [`STALL_TIMEOUT`].
    pub(super) fn check_progress(&mut self, now: Duration) -> Result<(), FetchError> {
        let held = self.download.bytes_held();
        if held > self.last_progress.1 {
            self.last_progress = (now, held);
        } else if now.saturating_sub(self.last_progress.0) > STALL_TIMEOUT {
            return Err(FetchError::Stalled { stalled_for: STALL_TIMEOUT, peers: self.peers.len() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
