//! Rarity: how many known peers hold each wanted piece, indexed for rarest-first picks.
//!
//! A download asks "which is the rarest piece I still want that one of these peers can
//! give me?" on every request it makes, a million times per simulated gigabyte at a
//! thousand nodes, so the answer cannot scan every piece against every peer. The index
//! keeps, for each availability `a`, the bitfield of wanted pieces that exactly `a`
//! known peers hold. A pick walks the levels upwards and intersects each with the
//! pieces the eligible peers offer (a few dozen word operations per level), then draws
//! a uniformly random member of the first non-empty intersection, so that nodes with
//! the same view still pick different pieces.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::bitfield::{nth_member, Bitfield};
use super::download::InvariantViolation;

/// Availability of every piece and the wanted pieces bucketed by it.
#[derive(Clone, Debug)]
pub(crate) struct Rarity {
    /// Per piece: known, not banned peers that hold it.
    availability: Vec<u32>,
    /// Words per level.
    words: usize,
    /// Level `a` (wanted pieces with availability `a`) is the bitfield in
    /// `levels[a * words..(a + 1) * words]`: one contiguous arena, which grows a level
    /// at a time as peers arrive.
    levels: Vec<u64>,
    /// `level_counts[a] == levels[a].count()`, to skip empty levels cheaply.
    level_counts: Vec<usize>,
    /// Pieces not yet held.
    wanted: Bitfield,
}

impl Rarity {
    /// An index over `pieces` pieces where the members of `held` are not wanted and no
    /// peer is known yet.
    pub(crate) fn new(held: &Bitfield) -> Self {
        let pieces = held.len();
        let mut wanted = Bitfield::new(pieces);
        for piece in (0..pieces).filter(|&piece| !held.get(piece)) {
            wanted.set(piece);
        }
        let count = wanted.count();
        Self {
            availability: vec![0; pieces],
            words: wanted.words().len(),
            levels: wanted.words().to_vec(),
            level_counts: vec![count],
            wanted,
        }
    }

    /// Known peers holding `piece`.
    #[cfg(test)]
    pub(crate) fn availability(&self, piece: usize) -> u32 {
        self.availability[piece]
    }

    /// True when some wanted piece is held by at least one known peer.
    pub(crate) fn any_available(&self) -> bool {
        self.level_counts.iter().skip(1).any(|&count| count > 0)
    }

    /// One more known peer holds `piece`.
    pub(crate) fn increment(&mut self, piece: usize) {
        let before = self.availability[piece];
        self.availability[piece] = before + 1;
        self.move_level(piece, before, before + 1);
    }

    /// One fewer known peer holds `piece`.
    ///
    /// # Panics
    /// When no peer was counted for `piece` (a bookkeeping bug in the caller).
    pub(crate) fn decrement(&mut self, piece: usize) {
        let before = self.availability[piece];
        assert!(before > 0, "piece {piece} availability would drop below zero");
        self.availability[piece] = before - 1;
        self.move_level(piece, before, before - 1);
    }

    /// A peer's have-set changed from `old` to `new` (words of sets of the revision's
    /// length).
    pub(crate) fn apply_change(&mut self, old: &[u64], new: &[u64]) {
        for (index, (&was, &now)) in old.iter().zip(new).enumerate() {
            let mut gained = now & !was;
            while gained != 0 {
                let bit = gained.trailing_zeros() as usize;
                gained &= gained - 1;
                self.increment(index * 64 + bit);
            }
            let mut lost = was & !now;
            while lost != 0 {
                let bit = lost.trailing_zeros() as usize;
                lost &= lost - 1;
                self.decrement(index * 64 + bit);
            }
        }
    }

    /// `piece` is now held locally: it is no longer wanted (its availability is still
    /// counted, so a later change of a peer's have-set stays balanced).
    pub(crate) fn mark_held(&mut self, piece: usize) {
        if self.wanted.get(piece) {
            self.wanted.clear(piece);
            let level = self.availability[piece] as usize;
            self.levels[level * self.words + piece / 64] &= !(1 << (piece % 64));
            self.level_counts[level] -= 1;
        }
    }

    /// The rarest wanted piece among `offered` (the union of the eligible peers'
    /// have-sets) that is not in `excluded` (pieces already in flight), ties broken
    /// uniformly at random. `None` when no such piece exists.
    pub(crate) fn pick_rarest(&self, offered: &[u64], excluded: &Bitfield, rng: &mut ChaCha8Rng) -> Option<usize> {
        let excluded = excluded.words();
        for (level, words) in self.levels.chunks_exact(self.words.max(1)).enumerate().skip(1) {
            if self.level_counts[level] == 0 {
                continue;
            }
            let word_at = |index: usize| words[index] & offered[index] & !excluded[index];
            let candidates: usize = (0..self.words).map(|index| word_at(index).count_ones() as usize).sum();
            if candidates > 0 {
                return nth_member(self.words, word_at, rng.gen_range(0..candidates));
            }
        }
        None
    }

    /// Checks the index against availability recomputed from scratch.
    ///
    /// # Errors
    /// A description of the first disagreement.
    pub(crate) fn check(&self, recomputed: &[u32], held: &Bitfield) -> Result<(), InvariantViolation> {
        for (piece, (&counted, &actual)) in self.availability.iter().zip(recomputed).enumerate() {
            if counted != actual {
                return Err(InvariantViolation(format!("piece {piece}: availability {counted}, peers hold {actual}")));
            }
            if self.wanted.get(piece) == held.get(piece) {
                return Err(InvariantViolation(format!("piece {piece}: wanted and held disagree")));
            }
            for level in 0..self.level_counts.len() {
                let expected = self.wanted.get(piece) && level == counted as usize;
                if self.level_has(level, piece) != expected {
                    return Err(InvariantViolation(format!("piece {piece}: misfiled at availability level {level}")));
                }
            }
        }
        for (level, words) in self.levels.chunks_exact(self.words.max(1)).enumerate() {
            let members: usize = words.iter().map(|word| word.count_ones() as usize).sum();
            if members != self.level_counts[level] {
                return Err(InvariantViolation(format!(
                    "availability level {level}: count {} is stale",
                    self.level_counts[level]
                )));
            }
        }
        Ok(())
    }

    fn level_has(&self, level: usize, piece: usize) -> bool {
        self.levels[level * self.words + piece / 64] & (1 << (piece % 64)) != 0
    }

    fn move_level(&mut self, piece: usize, from: u32, to: u32) {
        if !self.wanted.get(piece) {
            return;
        }
        let (from, to) = (from as usize, to as usize);
        while self.level_counts.len() <= to {
            self.levels.extend(std::iter::repeat_n(0, self.words));
            self.level_counts.push(0);
        }
        let (word, bit) = (piece / 64, 1u64 << (piece % 64));
        self.levels[from * self.words + word] &= !bit;
        self.level_counts[from] -= 1;
        self.levels[to * self.words + word] |= bit;
        self.level_counts[to] += 1;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn field(len: usize, members: &[usize]) -> Bitfield {
        let mut bits = Bitfield::new(len);
        for &member in members {
            bits.set(member);
        }
        bits
    }

    #[test]
    fn picks_the_rarest_offered_piece_and_skips_excluded_ones() {
        // Four pieces, piece 3 held. Peer A holds 0,1,2, peer B holds 0,1: piece 2 is
        // the rarest (1 holder) and is picked; once it is excluded (in flight) the
        // pick falls to 0 or 1; when only B's pieces are offered, 2 is never picked.
        let held = field(4, &[3]);
        let mut rarity = Rarity::new(&held);
        rarity.apply_change(Bitfield::new(4).words(), field(4, &[0, 1, 2, 3]).words());
        rarity.apply_change(Bitfield::new(4).words(), field(4, &[0, 1]).words());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let everything = field(4, &[0, 1, 2, 3]);
        let nothing = Bitfield::new(4);
        assert_eq!(rarity.pick_rarest(everything.words(), &nothing, &mut rng), Some(2));
        let picked = rarity.pick_rarest(everything.words(), &field(4, &[2]), &mut rng);
        assert!(matches!(picked, Some(0 | 1)), "{picked:?}");
        let only_b = field(4, &[0, 1]);
        for _ in 0..20 {
            assert_ne!(rarity.pick_rarest(only_b.words(), &nothing, &mut rng), Some(2));
        }
        let recomputed = [2, 2, 1, 1];
        assert_eq!(rarity.check(&recomputed, &held), Ok(()));
    }

    #[test]
    fn ties_are_broken_differently_by_different_seeds() {
        // 64 equally rare pieces: draws from eight seeds do not all land on the same
        // piece, which is what keeps a swarm's nodes from requesting in lockstep.
        let mut rarity = Rarity::new(&Bitfield::new(64));
        rarity.apply_change(Bitfield::new(64).words(), Bitfield::full(64).words());
        let offered = Bitfield::full(64);
        let picks: std::collections::BTreeSet<_> = (0..8)
            .map(|seed| rarity.pick_rarest(offered.words(), &Bitfield::new(64), &mut ChaCha8Rng::seed_from_u64(seed)))
            .collect();
        assert!(picks.len() > 1, "{picks:?}");
    }

    #[test]
    fn held_pieces_leave_the_index_but_keep_their_count() {
        // A piece held locally is never picked again, and a later loss of its only
        // holder still balances its availability back to zero.
        let mut rarity = Rarity::new(&Bitfield::new(2));
        let peer = Bitfield::full(2);
        rarity.apply_change(Bitfield::new(2).words(), peer.words());
        rarity.mark_held(0);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..10 {
            assert_eq!(rarity.pick_rarest(peer.words(), &Bitfield::new(2), &mut rng), Some(1));
        }
        rarity.apply_change(peer.words(), Bitfield::new(2).words());
        assert_eq!(rarity.availability(0), 0);
        assert!(!rarity.any_available());
        assert_eq!(rarity.check(&[0, 0], &field(2, &[0])), Ok(()));
    }
}
