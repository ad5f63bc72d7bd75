//! Pieces: a revision's distinct chunks grouped, in order, into runs of about 1 MiB.
//!
//! Chunks (about 64 KiB each) are what gets verified and stored, but tracking who has
//! what chunk by chunk would make a 1 GiB have-set 16,384 bits and a request per 64 KiB.
//! The swarm therefore trades **pieces**: consecutive runs of a revision's unique
//! chunks ([`fleetmesh_state::model::revision::Manifest::unique_chunks`]) of about
//! [`PIECE_BYTES_TARGET`] bytes. A piece is the unit of have-sets and requests; every
//! chunk in it is still verified on its own against its hash.
//!
//! Every node derives the same [`PieceMap`] from the same manifest, so piece indices
//! mean the same thing everywhere without being sent.

use std::ops::Range;

use fleetmesh_state::model::revision::ChunkRef;

/// Bytes a piece aims at.
///
/// 1 MiB: a 1 GiB revision is ~1024 pieces (a 128-byte have-set), one piece takes
/// ~8 ms on a 1 Gbit/s link (long against a LAN round trip, so per-request overhead
/// is small, short against the whole transfer, so a piece spreads hop by hop quickly),
/// and a request in flight pins at most ~1 MiB of buffer.
pub const PIECE_BYTES_TARGET: u64 = 1 << 20;

/// The grouping of a revision's unique chunks into pieces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceMap {
    /// The unique chunks in manifest order.
    chunks: Vec<ChunkRef>,
    /// Piece `i` is `chunks[starts[i]..starts[i + 1]]`; `len() + 1` entries.
    starts: Vec<usize>,
    /// Bytes before piece `i`; `len() + 1` entries, the last the total.
    offsets: Vec<u64>,
}

impl PieceMap {
    /// Groups `unique_chunks` into pieces of about [`PIECE_BYTES_TARGET`] bytes.
    pub fn new(unique_chunks: &[ChunkRef]) -> Self {
        Self::with_target(unique_chunks, PIECE_BYTES_TARGET)
    }

    /// Groups `unique_chunks` into pieces of at most `piece_bytes_target` bytes, except
    /// that a single chunk larger than the target is a piece on its own (a piece is
    /// never empty). Chunks keep their order; every chunk is in exactly one piece.
    pub fn with_target(unique_chunks: &[ChunkRef], piece_bytes_target: u64) -> Self {
        let mut starts = vec![0];
        let mut offsets = vec![0];
        let mut piece_bytes = 0u64;
        let mut total = 0u64;
        for (index, chunk) in unique_chunks.iter().enumerate() {
            let bytes = u64::from(chunk.len());
            let current_start = *starts.last().expect("starts begins with one entry");
            if index > current_start && piece_bytes + bytes > piece_bytes_target {
                starts.push(index);
                offsets.push(total);
                piece_bytes = 0;
            }
            piece_bytes += bytes;
            total += bytes;
        }
        if !unique_chunks.is_empty() {
            starts.push(unique_chunks.len());
            offsets.push(total);
        }
        Self { chunks: unique_chunks.to_vec(), starts, offsets }
    }

    /// Number of pieces.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// True for a revision without content.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunks of piece `index`, in order.
    ///
    /// # Panics
    /// When `index >= len()`; indices from the network are validated by the caller.
    pub fn piece(&self, index: usize) -> &[ChunkRef] {
        &self.chunks[self.chunk_range(index)]
    }

    /// Bytes in piece `index`.
    ///
    /// # Panics
    /// When `index >= len()`.
    pub fn piece_bytes(&self, index: usize) -> u64 {
        self.offsets[index + 1] - self.offsets[index]
    }

    /// Bytes of all unique chunks: what a node holding nothing downloads.
    pub fn total_bytes(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// Number of unique chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Every unique chunk, in order (piece after piece).
    pub fn chunks(&self) -> &[ChunkRef] {
        &self.chunks
    }

    /// Positions of piece `index`'s chunks in [`Self::chunks`].
    ///
    /// # Panics
    /// When `index >= len()`.
    pub fn chunk_range(&self, index: usize) -> Range<usize> {
        self.starts[index]..self.starts[index + 1]
    }
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::ids::ChunkHash;

    use super::*;

    fn chunks(sizes: &[u32]) -> Vec<ChunkRef> {
        sizes.iter().enumerate().map(|(index, &size)| ChunkRef(ChunkHash::of(&index.to_le_bytes()), size)).collect()
    }

    #[test]
    fn groups_consecutive_chunks_up_to_the_target() {
        // Chunks of 40, 40, 30, 50 and 10 bytes with a 100-byte target: pieces close
        // before they would pass 100 bytes, keep chunk order and cover every chunk once.
        let map = PieceMap::with_target(&chunks(&[40, 40, 30, 50, 10]), 100);
        assert_eq!(map.len(), 2);
        assert_eq!(map.piece(0).iter().map(ChunkRef::len).collect::<Vec<_>>(), vec![40, 40]);
        assert_eq!(map.piece(1).iter().map(ChunkRef::len).collect::<Vec<_>>(), vec![30, 50, 10]);
        assert_eq!((map.piece_bytes(0), map.piece_bytes(1)), (80, 90));
        assert_eq!(map.total_bytes(), 170);
        assert_eq!(map.chunk_range(1), 2..5);
        assert_eq!(map.chunk_count(), 5);
    }

    #[test]
    fn an_oversized_chunk_is_a_piece_of_its_own() {
        // A 300-byte chunk between small ones with a 100-byte target: it forms its own
        // piece rather than an empty piece or a merged one.
        let map = PieceMap::with_target(&chunks(&[10, 300, 10]), 100);
        assert_eq!(map.len(), 3);
        assert_eq!(map.piece_bytes(1), 300);
        assert_eq!(map.piece(1).len(), 1);
    }

    #[test]
    fn an_empty_revision_has_no_pieces() {
        // No chunks: no pieces, zero bytes, and no panic.
        let map = PieceMap::new(&[]);
        assert!(map.is_empty());
        assert_eq!(map.total_bytes(), 0);
    }

    #[test]
    fn a_gibibyte_of_64_kib_chunks_is_about_1024_pieces() {
        // 16,384 chunks of 64 KiB with the default target: exactly 1024 pieces of
        // 1 MiB, the size the have-set budget was computed for.
        let map = PieceMap::new(&chunks(&vec![64 * 1024; 16 * 1024]));
        assert_eq!(map.len(), 1024);
        assert!((0..map.len()).all(|index| map.piece_bytes(index) == PIECE_BYTES_TARGET));
    }
}
