//! What crosses the download's boundary: requests out, outcomes in, refused input.

use fleetmesh_state::model::ids::ChunkHash;
use fleetmesh_state::model::revision::ChunkRef;
use fleetmesh_state::NodeId;

/// What came back for a piece request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Every requested chunk arrived, verified against its hash, and is stored.
    Ok,
    /// `chunk` failed verification; the shell discarded the response. The peer is banned.
    Corrupt {
        /// The first chunk whose bytes did not hash to its name.
        chunk: ChunkHash,
    },
    /// The peer had no free upload slot.
    Busy,
    /// No usable answer: a timeout, a lost response, a closed stream, or the peer lacks
    /// the piece after all.
    Failed,
}

/// One request to send: ask `peer` for the `chunks` of piece `piece`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceRequest {
    /// Who to ask.
    pub peer: NodeId,
    /// Which piece (index in the [`crate::swarm::PieceMap`]).
    pub piece: usize,
    /// Only the piece's chunks not held locally, in piece order; never empty.
    pub chunks: Vec<ChunkRef>,
}

/// Why an input from the network was refused (the download state is unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// A have-set of the wrong length: the peer is on another revision or broken.
    #[error("peer {peer} advertised {got} pieces but this revision has {expected}; drop the peer")]
    BitfieldLength {
        /// Who sent it.
        peer: NodeId,
        /// Its length.
        got: usize,
        /// This revision's piece count.
        expected: usize,
    },
    /// A piece index past the end.
    #[error("peer {peer} named piece {piece} but this revision has {pieces} pieces; drop the peer")]
    PieceOutOfRange {
        /// Who named it.
        peer: NodeId,
        /// The index.
        piece: usize,
        /// This revision's piece count.
        pieces: usize,
    },
}
