//! The seam between reading a chunk for a peer and sending it: production sends what
//! the store verified ([`HonestUploads`]); an end-to-end test wires in a node that
//! damages what it sends, to prove that receivers never store what they cannot verify.

use std::fmt;

/// What a node does to each chunk of a piece it serves, after the store has read and
/// verified it and before it goes out.
///
/// Called on a blocking thread once per chunk, in the order the chunks are sent; an
/// implementation must not block for long, since a piece holds an upload slot while it
/// is being assembled.
pub trait ChunkUploads: Send + Sync + fmt::Debug + 'static {
    /// Adjusts `chunk` (the bytes of one chunk, exactly as stored) before it is sent.
    fn outgoing(&self, chunk: &mut [u8]);
}

/// Sends every chunk as stored: the only behaviour of a production node.
#[derive(Debug, Clone, Copy, Default)]
pub struct HonestUploads;

impl ChunkUploads for HonestUploads {
    fn outgoing(&self, _chunk: &mut [u8]) {}
}
