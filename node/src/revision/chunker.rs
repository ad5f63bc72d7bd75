//! Content-defined chunking of a byte stream (FastCDC v2020) and the chunk sizes.
//!
//! Chunk boundaries depend on content, not offsets, so an edit moves only the chunks
//! around it and every other chunk keeps its hash: a small change to a revision costs a
//! few chunks on the wire (DESIGN.md "Revisions and the swarm"). The parameters are
//! written into every manifest so a later release with other defaults still re-chunks an
//! old revision identically.

use std::io::{self, Read};

use fastcdc::v2020::{self, StreamCDC};
use fleetmesh_state::model::revision::ChunkingParams;

/// The algorithm name written into manifests: fastcdc v2020 with the crate's default
/// normalization (level 1) and gear seed 0.
pub const CHUNKING_ALGORITHM: &str = "fastcdc-v2020";

/// Smallest chunk (except a file's last): a quarter of the average, as FastCDC's
/// normalized chunking recommends, so tiny chunks never dominate the chunk count.
pub const CHUNK_MIN_BYTES: u32 = 16 * 1024;

/// Target average chunk size; see [`chunking`] for why 64 KiB.
pub const CHUNK_AVG_BYTES: u32 = 64 * 1024;

/// Largest chunk: four times the average. It bounds the buffer of each chunk in flight
/// (chunker, channel, swarm requests) and what a peer sending bad data can waste.
pub const CHUNK_MAX_BYTES: u32 = 256 * 1024;

/// The chunking parameters this release writes into new manifests.
///
/// Why an average of 64 KiB: it is the balance between delta granularity and per-chunk
/// overhead. A one-byte edit re-sends about one chunk (64 KiB on average, 256 KiB at
/// most) instead of a whole file, while a GiB of content is ~16k chunks: ~16k files in
/// the store, ~16k swarm requests and ~1.3 MB of chunk references in the manifest that
/// goes through Raft. An average of 1 MiB would shrink the manifest 16-fold but make every
/// small edit cost a MiB; 4–16 KiB would make the manifest and request count dominate.
/// All three sizes are even, as fastcdc 5 requires (STACK.md §5).
pub fn chunking() -> ChunkingParams {
    ChunkingParams {
        algorithm: CHUNKING_ALGORITHM.to_string(),
        min_bytes: CHUNK_MIN_BYTES,
        avg_bytes: CHUNK_AVG_BYTES,
        max_bytes: CHUNK_MAX_BYTES,
    }
}

/// Why chunking parameters (usually read from a manifest) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkingError {
    /// The manifest names an algorithm this release does not implement.
    #[error("chunking algorithm {0:?} is not supported (this node chunks with {CHUNKING_ALGORITHM:?})")]
    Algorithm(String),
    /// Sizes out of fastcdc's ranges, odd, or not ordered min <= avg <= max.
    #[error(
        "chunk sizes min {min_bytes}, avg {avg_bytes}, max {max_bytes} are not usable \
         (they must be even, ordered, and within fastcdc's limits)"
    )]
    Sizes {
        /// Smallest chunk in bytes.
        min_bytes: u32,
        /// Average chunk in bytes.
        avg_bytes: u32,
        /// Largest chunk in bytes.
        max_bytes: u32,
    },
}

/// Cuts a byte stream into content-defined chunks.
///
/// Iterate it to get each chunk's bytes in stream order; the concatenation of all chunks
/// is the whole stream. It holds one buffer of `max_bytes` plus the chunk it returns, so
/// memory is bounded whatever the stream length. Hashing is left to the caller (the build
/// pipeline hashes on another thread).
pub struct Chunker<R: Read> {
    inner: StreamCDC<R>,
}

impl<R: Read> Chunker<R> {
    /// Starts chunking `reader` with `params` (normally [`chunking`], or a manifest's).
    ///
    /// # Errors
    /// [`ChunkingError`] when the parameters are not ones this release can reproduce.
    pub fn new(reader: R, params: &ChunkingParams) -> Result<Self, ChunkingError> {
        if params.algorithm != CHUNKING_ALGORITHM {
            return Err(ChunkingError::Algorithm(params.algorithm.clone()));
        }
        let (min, avg, max) = (params.min_bytes, params.avg_bytes, params.max_bytes);
        let within = |value: u32, low: usize, high: usize| {
            usize::try_from(value).is_ok_and(|value| (low..=high).contains(&value))
        };
        let usable = within(min, v2020::MINIMUM_MIN, v2020::MINIMUM_MAX)
            && within(avg, v2020::AVERAGE_MIN, v2020::AVERAGE_MAX)
            && within(max, v2020::MAXIMUM_MIN, v2020::MAXIMUM_MAX)
            && min <= avg
            && avg <= max
            && [min, avg, max].iter().all(|size| size % 2 == 0);
        if !usable {
            return Err(ChunkingError::Sizes { min_bytes: min, avg_bytes: avg, max_bytes: max });
        }
        // The casts cannot truncate: each size was just checked to fit fastcdc's usize ranges.
        let inner = StreamCDC::new(reader, min as usize, avg as usize, max as usize);
        Ok(Self { inner })
    }
}

impl<R: Read> Iterator for Chunker<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|chunk| chunk.map(|chunk| chunk.data).map_err(io::Error::from))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
        bytes
    }

    fn cut(bytes: &[u8]) -> Vec<Vec<u8>> {
        Chunker::new(bytes, &chunking())
            .expect("default params are usable")
            .collect::<io::Result<Vec<_>>>()
            .expect("reading a slice cannot fail")
    }

    #[test]
    fn default_params_are_even_ordered_and_accepted() {
        // Builds the default parameters; asserts the fastcdc 5 rules hold and that the
        // constructor accepts them while refusing an odd size and a foreign algorithm.
        let params = chunking();
        assert_eq!((params.min_bytes, params.avg_bytes, params.max_bytes), (16384, 65536, 262144));
        assert!(Chunker::new(&b""[..], &params).is_ok());
        let odd = ChunkingParams { max_bytes: 262_143, ..chunking() };
        assert!(matches!(Chunker::new(&b""[..], &odd), Err(ChunkingError::Sizes { .. })));
        let disordered = ChunkingParams { min_bytes: 131_072, ..chunking() };
        assert!(matches!(Chunker::new(&b""[..], &disordered), Err(ChunkingError::Sizes { .. })));
        let other = ChunkingParams { algorithm: "rabin".into(), ..chunking() };
        assert_eq!(Chunker::new(&b""[..], &other).err(), Some(ChunkingError::Algorithm("rabin".into())));
    }

    #[test]
    fn empty_stream_has_no_chunks() {
        // Chunks an empty stream; asserts no chunk comes out (an empty file has an empty list).
        assert!(cut(b"").is_empty());
    }

    #[test]
    fn one_byte_edit_in_five_mib_changes_few_chunks() {
        // Builds 5 MiB of random bytes and a copy with one byte changed in the middle;
        // asserts at most 2 of the edited version's chunks are new (the edited chunk, and
        // possibly its neighbour if the boundary moved), out of ~80.
        let original = random_bytes(7, 5 * 1024 * 1024);
        let mut edited = original.clone();
        edited[2_500_000] ^= 0x55;
        let before: std::collections::BTreeSet<Vec<u8>> = cut(&original).into_iter().collect();
        let after = cut(&edited);
        let changed = after.iter().filter(|chunk| !before.contains(*chunk)).count();
        assert!(after.len() > 40, "expected ~80 chunks, got {}", after.len());
        assert!((1..=2).contains(&changed), "{changed} of {} chunks changed", after.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn chunks_tile_the_stream_within_bounds(seed in any::<u64>(), len in 0usize..1_200_000) {
            // Chunks random streams of up to ~1.2 MiB; asserts the chunks concatenate to the
            // input, none is empty, none exceeds the max, and only the last is below the min.
            let bytes = random_bytes(seed, len);
            let chunks = cut(&bytes);
            prop_assert_eq!(chunks.concat(), bytes);
            for (index, chunk) in chunks.iter().enumerate() {
                prop_assert!(!chunk.is_empty());
                prop_assert!(chunk.len() <= CHUNK_MAX_BYTES as usize);
                if index + 1 < chunks.len() {
                    prop_assert!(chunk.len() >= CHUNK_MIN_BYTES as usize);
                }
            }
        }
    }
}
