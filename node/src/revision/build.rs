//! From a bundle source to a canonical manifest, streaming chunks to a sink.
//!
//! This is what `deploy push` runs on the pushing node: the revision id is BLAKE3 of the
//! manifest built here, and the chunks handed to the sink are what the store seeds to
//! the swarm. Whatever the source format, the same content gives the same manifest, byte
//! for byte.

use std::path::Path;

use fleetmesh_state::model::ids::ChunkHash;
use fleetmesh_state::model::revision::{ChunkRef, ChunkingParams, EntryKind, Manifest, MANIFEST_FORMAT};

use super::bundle::{visit_entries, BundleEntry, BundleEntryKind, BundleError, Content};
use super::chunker::{chunking, Chunker};
use super::layout::Layout;
use super::pipeline::{self, Feed, Piece};

/// Where [`build_manifest`] hands each chunk: its reference and bytes, once per
/// occurrence. An error stops the build.
pub type ChunkSink<'a, E> = dyn FnMut(ChunkRef, &[u8]) -> Result<(), E> + 'a;

/// A manifest and the figures a revision record needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltRevision {
    /// The canonical manifest; it has passed `Manifest::validate`.
    pub manifest: Manifest,
    /// Bytes of file content, counting repeated chunks each time.
    pub total_bytes: u64,
    /// Bytes of distinct chunks: what a host holding none of them downloads.
    pub unique_bytes: u64,
    /// Distinct chunks.
    pub chunk_count: u64,
}

/// Reads the bundle at `source`, cuts and hashes its files, and returns its manifest.
///
/// Each chunk goes to `sink` once per occurrence, with its hash and length, before the
/// manifest exists; the caller deduplicates (the chunk store ignores a chunk it holds).
/// Memory stays bounded by a few maximum-size chunks whatever the bundle size: files are
/// streamed, never held whole. Reading and chunking run on a second thread; hashing and
/// the sink run on the calling thread.
///
/// Whole-bundle rules (missing appspec, symlink escapes, duplicates) can only be decided
/// once every entry is read, so a bad bundle may have sent chunks to the sink before its
/// error: call [`bundle_size`] first, which refuses every such bundle without chunking.
/// Chunks left behind by a failed build are unreferenced and go at the next garbage
/// collection of the store.
///
/// # Errors
/// [`BundleError`] naming the offending entry or file; [`BundleError::Sink`] when the sink
/// fails, which stops the build.
pub fn build_manifest<E>(source: &Path, sink: &mut ChunkSink<'_, E>) -> Result<BuiltRevision, BundleError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let params = chunking();
    let mut layout = Layout::default();
    let mut assembly = FileAssembly::default();
    pipeline::run(|feed| produce(source, &params, feed), |piece| assembly.consume(piece, &mut layout, sink))?;
    let manifest = Manifest { format: MANIFEST_FORMAT, chunking: params, entries: layout.finish()? };
    // Paired check: the layout already enforces these rules, and the manifest is checked
    // again by every node that receives it.
    manifest.validate()?;
    let unique = manifest.unique_chunks();
    let unique_bytes = unique.iter().map(|chunk| u64::from(chunk.len())).sum();
    Ok(BuiltRevision { total_bytes: manifest.total_bytes(), unique_bytes, chunk_count: unique.len() as u64, manifest })
}

/// Sums the file sizes of the bundle at `source` without chunking anything.
///
/// It reads only the listing (directory metadata, archive headers; a `.tar.gz` is still
/// decompressed) and applies every rule [`build_manifest`] applies except content
/// checks, so a caller can refuse a bad or too large bundle before storing any chunk.
///
/// # Errors
/// The same [`BundleError`]s as [`build_manifest`], naming the entry.
pub fn bundle_size(source: &Path) -> Result<u64, BundleError> {
    let mut layout = Layout::default();
    visit_entries(source, Content::Skip, &mut |entry, _| {
        let kind = match entry.kind {
            BundleEntryKind::Dir => EntryKind::Dir,
            BundleEntryKind::File { size } => EntryKind::File { size, chunks: Vec::new() },
            BundleEntryKind::Symlink { target } => EntryKind::Symlink { target },
        };
        layout.insert(entry.path, entry.mode, kind)
    })?;
    let entries = layout.finish()?;
    Ok(entries
        .iter()
        .map(|entry| match entry.kind {
            EntryKind::File { size, .. } => size,
            _ => 0,
        })
        .sum())
}

/// The producer thread: walks the bundle and sends entries and chunks in order.
fn produce(source: &Path, params: &ChunkingParams, feed: &Feed) -> Result<(), BundleError> {
    visit_entries(source, Content::Read, &mut |entry: BundleEntry, content| {
        let path = entry.path.clone();
        let declared = match entry.kind {
            BundleEntryKind::File { size } => Some(size),
            _ => None,
        };
        feed.send(Piece::Entry(entry))?;
        let (Some(expected), Some(reader)) = (declared, content) else {
            return Ok(());
        };
        let mut actual: u64 = 0;
        for chunk in Chunker::new(reader, params)? {
            let chunk = chunk.map_err(|source| BundleError::EntryRead { entry: path.clone(), source })?;
            actual += chunk.len() as u64;
            feed.send(Piece::Chunk(chunk))?;
        }
        if actual != expected {
            return Err(BundleError::SizeMismatch { entry: path, expected, actual });
        }
        feed.send(Piece::FileEnd)
    })
}

/// The consumer's state: the file whose chunks are arriving.
#[derive(Default)]
struct FileAssembly {
    /// Path of the current file, between its entry and its [`Piece::FileEnd`].
    path: Option<String>,
    /// Its chunks so far.
    chunks: Vec<ChunkRef>,
    /// Its bytes so far.
    size: u64,
}

impl FileAssembly {
    /// Hashes chunks, feeds the sink and records entries in the layout.
    fn consume<E>(&mut self, piece: Piece, layout: &mut Layout, sink: &mut ChunkSink<'_, E>) -> Result<(), BundleError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match piece {
            Piece::Entry(entry) => {
                assert!(self.path.is_none(), "the producer ends a file before the next entry");
                let kind = match entry.kind {
                    BundleEntryKind::Dir => EntryKind::Dir,
                    BundleEntryKind::Symlink { target } => EntryKind::Symlink { target },
                    BundleEntryKind::File { .. } => {
                        self.path = Some(entry.path.clone());
                        EntryKind::File { size: 0, chunks: Vec::new() }
                    }
                };
                layout.insert(entry.path, entry.mode, kind)
            }
            Piece::Chunk(bytes) => {
                assert!(self.path.is_some(), "the producer sends chunks only inside a file");
                let length = u32::try_from(bytes.len()).expect("a chunk is at most the chunker's max, far below 4 GiB");
                let chunk = ChunkRef(ChunkHash::of(&bytes), length);
                sink(chunk, &bytes).map_err(|error| BundleError::Sink(error.into()))?;
                self.chunks.push(chunk);
                self.size += u64::from(length);
                Ok(())
            }
            Piece::FileEnd => {
                let path = self.path.take().expect("the producer ends only a file it started");
                let kind = layout.kind_mut(&path).expect("the file's entry was inserted when it started");
                *kind =
                    EntryKind::File { size: std::mem::take(&mut self.size), chunks: std::mem::take(&mut self.chunks) };
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
