//! Synthetic revisions: manifests that pass `Manifest::validate`, whose chunks carry
//! small phantom contents instead of their declared bytes.
//!
//! A chunk's hash is BLAKE3 of its 64-byte phantom content, while its length in the
//! manifest is the length a real chunk would have; the simulated download waits for
//! the declared bytes to cross the host's downlink and then verifies the phantom
//! content against the hash, exactly as a real host verifies a chunk. Revisions of one
//! run share most of their chunks (only the last chunk of `app/bin` and the small
//! files change), so a later revision moves few bytes to a host that has an earlier one.
//!
//! The catalog plays the pusher's chunk store: it is where seeds and honest peers read
//! chunk contents from.

use std::collections::BTreeMap;

use fleetmesh_state::model::ids::{ChunkHash, RevisionId};
use fleetmesh_state::model::revision::{ChunkRef, ChunkingParams, EntryKind, Manifest, ManifestEntry, MANIFEST_FORMAT};

/// Bytes of phantom content behind every chunk.
pub const PHANTOM_BYTES: usize = 64;

/// Declared length of a full `app/bin` chunk (the chunker's maximum).
pub const BIN_CHUNK_BYTES: u32 = 256 * 1024;

/// Phantom content of one chunk.
pub type Phantom = [u8; PHANTOM_BYTES];

/// Every synthetic revision of a run and the content of their chunks.
#[derive(Debug, Default)]
pub struct Catalog {
    manifests: BTreeMap<RevisionId, Manifest>,
    /// Bytes of each revision's distinct chunks (what a complete copy holds), asked on
    /// every poll of every host that holds the revision.
    unique_bytes: BTreeMap<RevisionId, u64>,
    contents: BTreeMap<ChunkHash, Phantom>,
}

fn phantom(seed: u64, label: &str, index: u64) -> Phantom {
    let mut hasher = blake3::Hasher::new_derive_key("fleetmesh-sim synthetic chunk v1");
    hasher.update(&seed.to_le_bytes());
    hasher.update(label.as_bytes());
    hasher.update(&index.to_le_bytes());
    let mut out = [0u8; PHANTOM_BYTES];
    hasher.finalize_xof().fill(&mut out);
    out
}

impl Catalog {
    fn chunk(&mut self, content: Phantom, declared_len: u32) -> ChunkRef {
        let hash = ChunkHash::of(&content);
        self.contents.insert(hash, content);
        ChunkRef(hash, declared_len)
    }

    fn file(&mut self, path: &str, chunks: Vec<ChunkRef>) -> ManifestEntry {
        let size = chunks.iter().map(|chunk| u64::from(chunk.len())).sum();
        ManifestEntry { path: path.to_string(), mode: 0o644, kind: EntryKind::File { size, chunks } }
    }

    /// Creates revision number `version` of the run's application: `app/bin` of
    /// `bin_chunks` chunks (all but the last shared by every version), `app/conf.json`
    /// and `appspec.yml` (different in every version). Returns its manifest.
    pub fn synthesize(&mut self, seed: u64, version: u64, bin_chunks: u64) -> Manifest {
        let bin_chunks = bin_chunks.max(1);
        let mut bin: Vec<ChunkRef> =
            (0..bin_chunks - 1).map(|index| self.chunk(phantom(seed, "bin", index), BIN_CHUNK_BYTES)).collect();
        bin.push(self.chunk(phantom(seed, "bin-tail", version), BIN_CHUNK_BYTES / 2));
        let conf = vec![self.chunk(phantom(seed, "conf", version), 900)];
        let appspec = vec![self.chunk(phantom(seed, "appspec", version), 420)];
        let entries = vec![
            ManifestEntry { path: "app".into(), mode: 0o755, kind: EntryKind::Dir },
            self.file("app/bin", bin),
            self.file("app/conf.json", conf),
            self.file("appspec.yml", appspec),
        ];
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            chunking: ChunkingParams {
                algorithm: "fastcdc-v2020".into(),
                min_bytes: 16 * 1024,
                avg_bytes: 64 * 1024,
                max_bytes: 256 * 1024,
            },
            entries,
        };
        let unique_bytes = manifest.unique_chunks().iter().map(|chunk| u64::from(chunk.len())).sum();
        self.unique_bytes.insert(manifest.revision_id(), unique_bytes);
        self.manifests.insert(manifest.revision_id(), manifest.clone());
        manifest
    }

    /// The manifest of `revision`, if it was synthesized in this run.
    pub fn manifest(&self, revision: &RevisionId) -> Option<Manifest> {
        self.manifests.get(revision).cloned()
    }

    /// Bytes of `revision`'s distinct chunks.
    pub fn unique_bytes(&self, revision: &RevisionId) -> Option<u64> {
        self.unique_bytes.get(revision).copied()
    }

    /// The phantom content of a chunk, as an honest peer serves it.
    pub fn content(&self, chunk: &ChunkHash) -> Option<Phantom> {
        self.contents.get(chunk).copied()
    }
}

/// The digest of a file as installed: BLAKE3 over the hashes of its chunks, in file
/// order. A host computes it from the digests of the bytes it received; the invariant
/// computes it from the manifest; they agree iff every chunk was received intact.
pub fn file_digest<'a>(chunk_digests: impl IntoIterator<Item = &'a ChunkHash>) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    for digest in chunk_digests {
        hasher.update(&digest.0);
    }
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_revisions_validate_and_share_chunks() {
        // Two versions of a 4-chunk revision: asserts both manifests validate (they have
        // an appspec.yml), differ, share the first three bin chunks, and that every chunk
        // hash is BLAKE3 of the content the catalog serves.
        let mut catalog = Catalog::default();
        let first = catalog.synthesize(7, 1, 4);
        let second = catalog.synthesize(7, 2, 4);
        assert_eq!(first.validate(), Ok(()));
        assert_eq!(second.validate(), Ok(()));
        assert_ne!(first.revision_id(), second.revision_id());
        let shared = first.unique_chunks().iter().filter(|chunk| second.unique_chunks().contains(chunk)).count();
        assert_eq!(shared, 3);
        for chunk in first.unique_chunks() {
            let content = catalog.content(&chunk.hash()).expect("served");
            assert_eq!(ChunkHash::of(&content), chunk.hash());
        }
        assert_eq!(catalog.manifest(&first.revision_id()), Some(first));
    }
}
