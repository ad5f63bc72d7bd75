//! The download's table of known peers: what each holds and how it has behaved.
//!
//! A download knows a few dozen peers and walks all of them on most events (who is
//! eligible, what they offer together, when the next back-off ends), and a simulator
//! runs a thousand downloads side by side, so the table is laid out for the cache:
//! sorted ids in one vector (a lookup is a binary search over a few cache lines),
//! compact per-peer counters in a parallel vector, and every have-set in one
//! contiguous arena of words rather than one allocation per peer. Sorted order also
//! keeps every walk deterministic.

use std::time::Duration;

use fleetmesh_state::NodeId;

use super::bitfield::Bitfield;

/// What a download knows about one peer besides its have-set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PeerState {
    /// Pieces in its have-set.
    pub(crate) have_count: u32,
    /// Our requests to it not yet answered.
    pub(crate) in_flight: u32,
    /// Failures since its last good answer.
    pub(crate) failures: u32,
    /// `Busy` answers since its last good answer.
    pub(crate) busy_streak: u32,
    /// Not asked before this time.
    pub(crate) backoff_until: Duration,
}

/// Known peers, sorted by id, with their have-sets over `pieces` pieces.
#[derive(Clone, Debug)]
pub(crate) struct PeerTable {
    pieces: usize,
    /// Words per have-set.
    words: usize,
    ids: Vec<NodeId>,
    states: Vec<PeerState>,
    /// Have-set of the peer at position `i`: `haves[i * words..(i + 1) * words]`.
    haves: Vec<u64>,
}

impl PeerTable {
    /// An empty table for a revision of `pieces` pieces.
    pub(crate) fn new(pieces: usize) -> Self {
        Self { pieces, words: pieces.div_ceil(64), ids: Vec::new(), states: Vec::new(), haves: Vec::new() }
    }

    /// Number of known peers.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The position of a known peer; positions are stable until a peer is added or
    /// removed.
    pub(crate) fn position(&self, peer: NodeId) -> Option<usize> {
        self.ids.binary_search(&peer).ok()
    }

    /// The position of the peer, added with an empty have-set if unknown.
    pub(crate) fn insert(&mut self, peer: NodeId) -> usize {
        match self.ids.binary_search(&peer) {
            Ok(position) => position,
            Err(position) => {
                self.ids.insert(position, peer);
                self.states.insert(position, PeerState::default());
                let at = position * self.words;
                self.haves.splice(at..at, std::iter::repeat_n(0, self.words));
                position
            }
        }
    }

    /// Forgets the peer, returning its state and have-set words.
    pub(crate) fn remove(&mut self, peer: NodeId) -> Option<(PeerState, Vec<u64>)> {
        let position = self.position(peer)?;
        self.ids.remove(position);
        let state = self.states.remove(position);
        let at = position * self.words;
        let have = self.haves.drain(at..at + self.words).collect();
        Some((state, have))
    }

    /// The id at `position`.
    pub(crate) fn id(&self, position: usize) -> NodeId {
        self.ids[position]
    }

    /// The counters at `position`.
    pub(crate) fn state(&self, position: usize) -> &PeerState {
        &self.states[position]
    }

    /// The counters of `peer`, mutably, if known.
    pub(crate) fn state_of_mut(&mut self, peer: NodeId) -> Option<&mut PeerState> {
        let position = self.position(peer)?;
        Some(&mut self.states[position])
    }

    /// Every peer's counters, in id order (positions are indices).
    pub(crate) fn states(&self) -> &[PeerState] {
        &self.states
    }

    /// Every peer id, in order.
    pub(crate) fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// The have-set words of the peer at `position`.
    pub(crate) fn have(&self, position: usize) -> &[u64] {
        &self.haves[position * self.words..(position + 1) * self.words]
    }

    /// True when the peer at `position` advertises `piece`.
    pub(crate) fn has(&self, position: usize, piece: usize) -> bool {
        self.have(position)[piece / 64] & (1 << (piece % 64)) != 0
    }

    /// True when the peer at `position` advertises every piece.
    pub(crate) fn is_seed(&self, position: usize) -> bool {
        self.states[position].have_count as usize == self.pieces
    }

    /// Adds `piece` to the have-set at `position`; false if it was there already.
    pub(crate) fn add_piece(&mut self, position: usize, piece: usize) -> bool {
        let word = &mut self.haves[position * self.words + piece / 64];
        let bit = 1 << (piece % 64);
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        self.states[position].have_count += 1;
        true
    }

    /// Replaces the have-set at `position` (of this table's length) and returns the old
    /// words.
    pub(crate) fn replace_have(&mut self, position: usize, bitfield: &Bitfield) -> Vec<u64> {
        let range = position * self.words..(position + 1) * self.words;
        let old = self.haves[range.clone()].to_vec();
        self.haves[range].copy_from_slice(bitfield.words());
        self.states[position].have_count = u32::try_from(bitfield.count()).unwrap_or(u32::MAX);
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_peers_sorted_with_their_have_sets() {
        // Peers added out of order come back in id order, each with its own have-set;
        // removing one returns its set and leaves the others' sets intact.
        let mut table = PeerTable::new(70);
        for id in [5, 1, 3] {
            let position = table.insert(NodeId(id));
            assert!(table.add_piece(position, id as usize * 10));
        }
        assert_eq!(table.ids(), &[NodeId(1), NodeId(3), NodeId(5)]);
        assert_eq!(table.insert(NodeId(3)), 1, "existing peer keeps its position");
        assert!(!table.add_piece(1, 30), "already there");
        assert!(table.has(2, 50) && !table.has(2, 10));
        let (state, have) = table.remove(NodeId(3)).expect("known");
        assert_eq!(state.have_count, 1);
        assert_eq!(have, vec![1 << 30, 0]);
        assert!(table.has(0, 10) && table.has(1, 50));
        assert_eq!(table.position(NodeId(3)), None);
        let mut full = Bitfield::full(70);
        full.clear(69);
        table.replace_have(0, &full);
        assert!(!table.is_seed(0));
        table.replace_have(0, &Bitfield::full(70));
        assert!(table.is_seed(0));
        assert_eq!(table.len(), 2);
    }
}
