//! What an origin seed advertises: every piece once, before any piece twice.
//!
//! The node that pushed a revision is at first its only source, and its uplink is the
//! bottleneck of the whole distribution: the swarm cannot finish before every piece
//! has left the seed once, so every second copy the seed sends early delays the last
//! fresh piece by one piece time. Requesters pick rarest-first from their own
//! neighbourhood's view, and a piece the seed sent a moment ago to a node on the other
//! side of the swarm still looks "only at the seed" to them, so a seed that advertises
//! everything is asked for the same pieces again and again (measured: 20-30 % of its
//! upload at 200 nodes).
//!
//! [`SeedAdvertisement`] is the remedy BitTorrent calls super-seeding, reduced to its
//! core: the seed advertises only the pieces it has not handed out yet. A piece it has
//! sent is, by construction, held by a peer that will relay it (rarest-first makes that
//! peer's neighbours fetch it next). Once every piece has gone out, the seed advertises
//! everything and serves as an ordinary seed, so a piece whose only recipient died is
//! still available. A send that failed puts the piece back among the advertised ones.
//!
//! An advertisement reaches requesters a round trip or a pull late, so requests for
//! pieces already out still arrive. While unsent pieces remain, the seed declines them
//! ([`SeedAdvertisement::accepts`] is false: the shell answers `Busy`, piggybacking the
//! fresh advertisement), which keeps its uplink for first copies. Once every piece is
//! out, it accepts anything.

use super::bitfield::Bitfield;

/// The have-set an origin seed advertises, and the per-piece count of copies it sent.
#[derive(Clone, Debug)]
pub struct SeedAdvertisement {
    /// Per piece: copies accepted for sending, minus those whose sending failed.
    copies: Vec<u32>,
    /// Pieces with no copy out: the advertisement while any remain.
    unsent: Bitfield,
    /// Members of `unsent`.
    unsent_count: usize,
    /// Every piece: the advertisement once all are out.
    everything: Bitfield,
}

impl SeedAdvertisement {
    /// A seed holding all `pieces` pieces, none sent yet.
    pub fn new(pieces: usize) -> Self {
        Self {
            copies: vec![0; pieces],
            unsent: Bitfield::full(pieces),
            unsent_count: pieces,
            everything: Bitfield::full(pieces),
        }
    }

    /// True when a request for `piece` should be served now: the piece has not been
    /// sent yet, or every piece has. Otherwise answer `Busy`.
    ///
    /// # Panics
    /// When `piece` is out of range.
    pub fn accepts(&self, piece: usize) -> bool {
        self.unsent.get(piece) || self.unsent_count == 0
    }

    /// A request for `piece` was accepted: a copy is on its way into the swarm.
    ///
    /// # Panics
    /// When `piece` is out of range (the shell validates requests first).
    pub fn sending(&mut self, piece: usize) {
        self.copies[piece] += 1;
        if self.unsent.get(piece) {
            self.unsent.clear(piece);
            self.unsent_count -= 1;
        }
    }

    /// Sending a copy of `piece` failed (stream reset, connection lost): if no other
    /// copy is out, the piece is advertised again.
    ///
    /// # Panics
    /// When `piece` is out of range.
    pub fn send_failed(&mut self, piece: usize) {
        self.copies[piece] = self.copies[piece].saturating_sub(1);
        if self.copies[piece] == 0 && !self.unsent.get(piece) {
            self.unsent.set(piece);
            self.unsent_count += 1;
        }
    }

    /// What to advertise now: the pieces not yet sent, or every piece once none is left.
    pub fn advertised(&self) -> &Bitfield {
        if self.unsent_count == 0 {
            &self.everything
        } else {
            &self.unsent
        }
    }

    /// Pieces not yet sent.
    pub fn unsent(&self) -> usize {
        self.unsent_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_and_accepts_unsent_pieces_then_everything() {
        // Three pieces. Sending 0 and 2 leaves only 1 advertised and accepted; once 1 is
        // sent too, the seed advertises and accepts all three again.
        let mut seed = SeedAdvertisement::new(3);
        assert!(seed.advertised().is_full());
        seed.sending(0);
        seed.sending(2);
        assert_eq!(seed.advertised().iter().collect::<Vec<_>>(), vec![1]);
        assert_eq!(seed.unsent(), 1);
        assert!(!seed.accepts(0), "a second copy while piece 1 was never sent");
        assert!(seed.accepts(1));
        seed.sending(1);
        assert!(seed.advertised().is_full());
        assert!(seed.accepts(0), "every piece is out: serve anything");
        assert_eq!(seed.unsent(), 0);
    }

    #[test]
    fn a_failed_send_is_advertised_again_only_if_no_copy_is_out() {
        // Piece 0 sent twice, one send fails: still out, not advertised. The second
        // failure puts it back in the advertisement.
        let mut seed = SeedAdvertisement::new(2);
        seed.sending(0);
        seed.sending(0);
        seed.send_failed(0);
        assert_eq!(seed.advertised().iter().collect::<Vec<_>>(), vec![1]);
        seed.send_failed(0);
        assert_eq!(seed.advertised().iter().collect::<Vec<_>>(), vec![0, 1]);
    }
}
