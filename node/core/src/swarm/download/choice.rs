//! Who to ask for what: eligible peers, the pieces they offer together, the peer for
//! a chosen piece, and the endgame's duplicate requests.
//!
//! Peers are referred to by their position in the peer table, which is stable for the
//! duration of one [`Download::next_requests`] call (no peer comes or goes during it).

use std::time::Duration;

use rand::seq::SliceRandom;

use super::Download;

impl Download {
    /// Positions (in the peer table) of the peers we may ask now: not backed off and
    /// below their request cap.
    pub(super) fn eligible_peers(&self, now: Duration, eligible: &mut Vec<usize>) {
        eligible.clear();
        eligible.extend(
            self.peers
                .states()
                .iter()
                .enumerate()
                .filter(|(_, state)| {
                    state.backoff_until <= now && (state.in_flight as usize) < self.params.requests_per_peer_max
                })
                .map(|(position, _)| position),
        );
    }

    /// Writes into `offered` the union of the have-sets of the peers at `positions`.
    pub(super) fn offered_by(&self, positions: &[usize], offered: &mut Vec<u64>) {
        offered.clear();
        offered.resize(self.have.words().len(), 0);
        for &position in positions {
            for (word, theirs) in offered.iter_mut().zip(self.peers.have(position)) {
                *word |= theirs;
            }
        }
    }

    /// Among the `eligible` peers holding `piece`: the ones with the fewest failures
    /// since their last good answer (so a peer that keeps failing cannot keep winning
    /// the piece from an honest seed), then non-seeds before seeds, then the ones we
    /// have the fewest requests with, then at random. Returns a table position.
    pub(super) fn choose_peer(&mut self, piece: usize, eligible: &[usize]) -> Option<usize> {
        let peers = &self.peers;
        let holders: Vec<usize> = eligible.iter().copied().filter(|&position| peers.has(position, piece)).collect();
        let relays_exist = holders.iter().any(|&position| !peers.is_seed(position));
        let rank = |position: usize| {
            let state = peers.state(position);
            (state.failures, relays_exist && peers.is_seed(position), state.in_flight)
        };
        let best = holders.iter().map(|&position| rank(position)).min()?;
        let tied: Vec<usize> = holders.into_iter().filter(|&position| rank(position) == best).collect();
        tied.choose(&mut self.rng).copied()
    }

    /// Endgame: only when every missing piece is already in flight, a second request
    /// for one of them to an eligible peer not yet asked for it.
    pub(super) fn choose_endgame(&mut self, eligible: &[usize]) -> Option<(usize, usize)> {
        if !self.is_endgame() {
            return None;
        }
        let mut candidates = Vec::new();
        for piece in self.in_flight.iter() {
            if usize::from(self.requests_per_piece[piece]) >= self.params.endgame_requests_per_piece_max {
                continue;
            }
            for &position in eligible {
                let peer = self.peers.id(position);
                if self.peers.has(position, piece) && !self.outstanding.contains(&(piece, peer)) {
                    candidates.push((piece, position));
                }
            }
        }
        candidates.choose(&mut self.rng).copied()
    }
}
