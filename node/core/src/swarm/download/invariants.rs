//! The download's bookkeeping rules, checked from scratch.
//!
//! Every input updates several redundant structures incrementally (requests per peer
//! and per piece, the in-flight set, availability levels, held chunks and bytes); this
//! recomputes each from the ground truth and compares. It runs after every input in
//! test and debug builds, and the simulator calls it too.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_state::NodeId;

use super::Download;

/// A broken internal rule: a bug, reported by `check_invariants`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("swarm invariant violated: {0}")]
pub struct InvariantViolation(pub String);

impl Download {
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
        let distinct: BTreeSet<&(usize, NodeId)> = self.outstanding.iter().collect();
        if distinct.len() != self.outstanding.len() {
            return fail("a (piece, peer) request is outstanding twice".to_string());
        }
        for &(piece, peer) in &self.outstanding {
            if self.banned.contains(&peer) {
                return fail(format!("request for piece {piece} outstanding to banned peer {peer}"));
            }
            if self.peers.position(peer).is_none() {
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
        for (position, (&peer, state)) in self.peers.ids().iter().zip(self.peers.states()).enumerate() {
            let counted = per_peer.get(&peer).copied().unwrap_or(0);
            if state.in_flight as usize != counted || counted > self.params.requests_per_peer_max {
                return fail(format!("peer {peer}: {} in flight, {counted} outstanding", state.in_flight));
            }
            if self.banned.contains(&peer) {
                return fail(format!("banned peer {peer} is still known"));
            }
            let counted_pieces: u32 = self.peers.have(position).iter().map(|word| word.count_ones()).sum();
            if state.have_count != counted_pieces {
                return fail(format!("peer {peer}: have count {} is stale", state.have_count));
            }
        }
        for (piece, (&outstanding, &counted)) in per_piece.iter().zip(&self.requests_per_piece).enumerate() {
            if outstanding != usize::from(counted) {
                return fail(format!("piece {piece}: {counted} requests counted, {outstanding} outstanding"));
            }
            if self.in_flight.get(piece) != (outstanding > 0 && !self.have.get(piece)) {
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
        for position in 0..self.peers.len() {
            for (piece, count) in recomputed.iter_mut().enumerate() {
                if self.peers.has(position, piece) {
                    *count += 1;
                }
            }
        }
        self.rarity.check(&recomputed, &self.have)
    }

    pub(super) fn debug_check(&self) {
        if cfg!(any(test, debug_assertions)) {
            if let Err(violation) = self.check_invariants() {
                panic!("{violation}");
            }
        }
    }
}
