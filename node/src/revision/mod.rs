//! Revisions on a node: from a bundle on disk to a manifest and chunks, and back.
//!
//! A revision is a bundle (a directory, `.tar`, `.tar.gz`/`.tgz` or `.zip`) with an
//! `appspec.yml` at its root (codedeploy.md §1.1). This module owns everything a node
//! does with revision *content*; the manifest type itself is replicated state and lives
//! in `fleetmesh_state::model::revision`.
//!
//! ```text
//!  push:     source ──bundle──▶ entries ──chunker──▶ chunks ──BLAKE3──▶ sink (ChunkStore::put)
//!                                  │                                     │
//!                                  └──layout (strip, checks, sort)──▶ Manifest (validate())
//!  install:  Manifest + ChunkStore ──materialize──▶ <dest> (staged next to it, then renamed)
//! ```
//!
//! - [`bundle_size`] is the cheap first pass (headers only, no chunking): it refuses every
//!   bad bundle [`build_manifest`] would refuse, so a caller can check size limits and input
//!   before any chunk is stored.
//! - [`build_manifest`] streams: a reader thread walks the bundle and cuts chunks, the
//!   calling thread hashes them and hands each to the sink; memory stays bounded by a few
//!   maximum-size chunks whatever the revision size.
//! - [`ChunkStore`] keeps chunks as files named by their hash, verified on write and read.
//! - [`materialize`] writes a manifest's tree from the store, atomically.
//!
//! - [`service`] is the node's revision service: the manifests it knows, the swarm
//!   downloads it runs (with the piece picker of `fleetmesh_core::swarm`), the pieces it
//!   serves to peers, and pushes received through the API.
//!
//! What this module does not do: decide which chunks to fetch from whom (the swarm's
//! state machines in `fleetmesh-core` do), or interpret the appspec (the host agent).

mod archive;
mod bench;
mod build;
mod bundle;
mod chunker;
mod directory;
#[doc(hidden)]
pub mod fuzz;
pub mod git;
mod layout;
mod materialize;
mod pipeline;
pub mod service;
mod store;

pub use bench::{bench_pipeline, PipelineFigures};
pub use build::{build_manifest, bundle_size, BuiltRevision, ChunkSink};
pub use bundle::BundleError;
pub use chunker::{
    chunking, Chunker, ChunkingError, CHUNKING_ALGORITHM, CHUNK_AVG_BYTES, CHUNK_MAX_BYTES, CHUNK_MIN_BYTES,
};
pub use materialize::{materialize, MaterializeError};
pub use store::{ChunkStore, StoreError, CHUNK_FILE_BYTES_MAX};

#[cfg(test)]
pub(crate) mod testkit;
