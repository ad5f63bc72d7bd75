//! Phantom payloads: a synthetic revision made of sizes and hashes only, and the
//! phantom chunk store that verifies what it is given.
//!
//! Moving a real gibibyte to a thousand simulated nodes would take a terabyte of memory
//! and hours of hashing. The simulation moves *names* instead: a chunk in transit is its
//! [`ChunkRef`] plus the hash its bytes would have. An honest sender's bytes hash to the
//! chunk's name; a byzantine sender's bytes hash to something else. The receiver checks
//! that hash against the manifest exactly as the real node does with real bytes, and
//! stores only chunks that pass.

use std::sync::Arc;

use fleetmesh_core::swarm::{Bitfield, PieceMap};
use fleetmesh_state::model::ids::{ChunkHash, Hash32};
use fleetmesh_state::model::revision::{ChunkRef, ChunkingParams, EntryKind, Manifest, ManifestEntry, MANIFEST_FORMAT};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Smallest synthetic chunk (except the last), bytes.
const CHUNK_BYTES_MIN: u32 = 16 * 1024;
/// Largest synthetic chunk, bytes; sizes are uniform between min and max, so the
/// average is 64 KiB like the real chunker's target.
const CHUNK_BYTES_MAX: u32 = 112 * 1024;

/// A synthetic manifest of `total_bytes` in one file with random hashes, all drawn from
/// `rng`: chunked into random sizes around 64 KiB, or with `coarse_chunk_bytes` into
/// chunks of that size (the last one shorter), each of which is then a piece of its own.
pub(crate) fn synthetic_manifest(total_bytes: u64, coarse_chunk_bytes: Option<u32>, rng: &mut ChaCha8Rng) -> Manifest {
    let mut chunks = Vec::new();
    let mut left = total_bytes;
    while left > 0 {
        // Even sizes, as fastcdc 5 produces.
        let size = match coarse_chunk_bytes {
            Some(coarse) => u64::from(coarse.max(1)),
            None => u64::from(rng.gen_range(CHUNK_BYTES_MIN / 2..=CHUNK_BYTES_MAX / 2) * 2),
        }
        .min(left);
        let mut hash = [0u8; 32];
        rng.fill(&mut hash);
        chunks.push(ChunkRef(Hash32(hash), u32::try_from(size).expect("a chunk is at most one u32 chunk size")));
        left -= size;
    }
    Manifest {
        format: MANIFEST_FORMAT,
        chunking: ChunkingParams {
            algorithm: "fastcdc-v2020".into(),
            min_bytes: CHUNK_BYTES_MIN,
            avg_bytes: 64 * 1024,
            max_bytes: CHUNK_BYTES_MAX,
        },
        entries: vec![ManifestEntry {
            path: "payload.bin".into(),
            mode: 0o644,
            kind: EntryKind::File { size: total_bytes, chunks },
        }],
    }
}

/// The piece map every node derives from the manifest.
pub(crate) fn piece_map(manifest: &Manifest) -> Arc<PieceMap> {
    Arc::new(PieceMap::new(&manifest.unique_chunks()))
}

/// The hash of the bytes a sender puts on the wire for `chunk`: the chunk's own name
/// from an honest sender, anything else from a forger.
pub(crate) fn bytes_hash(chunk: &ChunkRef, forged: bool) -> ChunkHash {
    if forged {
        let mut garbage = chunk.hash().0.to_vec();
        garbage.extend_from_slice(b"forged");
        ChunkHash::of(&garbage)
    } else {
        chunk.hash()
    }
}

/// A fingerprint of a set of chunk hashes that does not depend on order: the wrapping
/// sum of their first eight bytes. Equal to the manifest's only if exactly the
/// manifest's chunks were stored.
fn fingerprint(hash: &ChunkHash) -> u64 {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&hash.0[..8]);
    u64::from_le_bytes(prefix)
}

/// The fingerprint a node holding exactly `map`'s chunks has.
pub(crate) fn expected_fingerprint(map: &PieceMap) -> u64 {
    map.chunks().iter().fold(0u64, |sum, chunk| sum.wrapping_add(fingerprint(&chunk.hash())))
}

/// One node's chunk store, without bytes.
#[derive(Clone, Debug)]
pub(crate) struct PhantomStore {
    /// Per unique chunk of the revision: stored.
    stored: Bitfield,
    /// Wrapping sum of the fingerprints of the hashes of the bytes stored.
    fingerprint: u64,
}

/// What a verified delivery did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verified {
    /// Every chunk matched its name and is stored.
    Stored,
    /// This chunk did not match; nothing of the delivery was stored.
    Corrupt(ChunkHash),
}

impl PhantomStore {
    /// An empty store for `map`'s chunks.
    pub(crate) fn empty(map: &PieceMap) -> Self {
        Self { stored: Bitfield::new(map.chunk_count()), fingerprint: 0 }
    }

    /// A store holding every chunk (the seed).
    pub(crate) fn full(map: &PieceMap) -> Self {
        Self { stored: Bitfield::full(map.chunk_count()), fingerprint: expected_fingerprint(map) }
    }

    /// True when the store holds every chunk of `piece`.
    pub(crate) fn holds_piece(&self, map: &PieceMap, piece: usize) -> bool {
        map.chunk_range(piece).all(|index| self.stored.get(index))
    }

    /// Verifies a delivery of `piece`: for each chunk, the hash of the bytes received
    /// (see [`bytes_hash`]; `forged` bytes from a byzantine sender) must be the chunk's
    /// name. Stores the delivery only if every chunk matches (the real shell discards a
    /// response with a bad chunk, see `Received::Corrupt`).
    pub(crate) fn verify_and_store(
        &mut self,
        map: &PieceMap,
        piece: usize,
        chunks: &[ChunkRef],
        forged: bool,
    ) -> Verified {
        if let Some(chunk) = chunks.iter().find(|chunk| bytes_hash(chunk, forged) != chunk.hash()) {
            return Verified::Corrupt(chunk.hash());
        }
        // Requests list a piece's missing chunks in piece order, so one forward walk
        // finds each delivered chunk's position.
        let mut positions = map.chunk_range(piece);
        for chunk in chunks {
            if let Some(index) = positions.find(|&index| map.chunks()[index] == *chunk) {
                if !self.stored.get(index) {
                    self.stored.set(index);
                    self.fingerprint = self.fingerprint.wrapping_add(fingerprint(&bytes_hash(chunk, forged)));
                }
            }
        }
        Verified::Stored
    }

    /// Chunks stored.
    pub(crate) fn chunk_count(&self) -> usize {
        self.stored.count()
    }

    /// Bytes of the chunks stored.
    pub(crate) fn bytes(&self, map: &PieceMap) -> u64 {
        self.stored.iter().map(|index| u64::from(map.chunks()[index].len())).sum()
    }

    /// The store's fingerprint (see [`expected_fingerprint`]).
    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn synthetic_manifest_has_the_requested_size_and_64_kib_chunks() {
        // 64 MiB from a fixed seed: the chunks sum exactly to the size, average about
        // 64 KiB, and the same seed gives the same manifest.
        let manifest = synthetic_manifest(64 << 20, None, &mut ChaCha8Rng::seed_from_u64(5));
        let chunks = manifest.unique_chunks();
        assert_eq!(manifest.total_bytes(), 64 << 20);
        let average = (64u64 << 20) / chunks.len() as u64;
        assert!((56 * 1024..72 * 1024).contains(&average), "average chunk {average} bytes");
        assert_eq!(manifest, synthetic_manifest(64 << 20, None, &mut ChaCha8Rng::seed_from_u64(5)));
    }

    #[test]
    fn the_store_refuses_forged_bytes_and_fingerprints_what_it_holds() {
        // A forged delivery is reported corrupt and leaves the store empty; the honest
        // delivery of every piece fills it, and its fingerprint equals the manifest's.
        let manifest = synthetic_manifest(3 << 20, None, &mut ChaCha8Rng::seed_from_u64(9));
        let map = piece_map(&manifest);
        let mut store = PhantomStore::empty(&map);
        assert_eq!(store.verify_and_store(&map, 0, map.piece(0), true), Verified::Corrupt(map.piece(0)[0].hash()));
        assert_eq!(store.chunk_count(), 0);
        for piece in 0..map.len() {
            assert_eq!(store.verify_and_store(&map, piece, map.piece(piece), false), Verified::Stored);
            assert!(store.holds_piece(&map, piece));
        }
        assert_eq!(store.chunk_count(), map.chunk_count());
        assert_eq!(store.fingerprint(), expected_fingerprint(&map));
        assert_eq!(PhantomStore::full(&map).fingerprint(), expected_fingerprint(&map));
    }
}
