//! The swarm: how a node fetches a revision's chunks from many peers at once.
//!
//! This module owns the decisions, not the bytes: which piece to ask for next, from
//! whom, how many requests to keep in flight, what to do with a peer that sent bad data
//! or went away, and how many uploads to serve at once. It is sans-I/O: the shell
//! (QUIC in production, `fleetmesh-sim` in simulation) moves the bytes, verifies each
//! chunk against its BLAKE3 hash, stores it, and feeds the outcome back. It does not
//! own the chunk store, the wire messages or peer discovery (the leader hands out peer
//! lists; [`Download::wanted_peers_hint`] says when more are needed).
//!
//! - [`PieceMap`]: a revision's unique chunks grouped, in order, into ~1 MiB pieces,
//!   the unit of have-sets ([`Bitfield`]) and requests.
//! - [`Download`]: one node fetching one revision: rarest first, bounded requests per
//!   peer and in total, relays before seeds, bans on corrupt data, endgame duplicates.
//! - [`UploadSlots`]: bounded concurrent uploads; `Busy` beyond them; accepted
//!   requests sent freshest piece first ([`SendPriority`]).
//! - [`SeedAdvertisement`]: what an origin seed advertises (super-seeding), so its
//!   uplink sends every piece once before it sends any piece twice.
//!
//! ```text
//!   peers' have-sets ──▶ Download ──PieceRequest{peer, piece, chunks}──▶ shell ──▶ peer
//!   shell: verify each chunk, store ──piece_received(peer, piece, Ok|Corrupt|Busy|Failed, now)──▶ Download
//!   peer's request ──▶ UploadSlots::try_acquire ──Accept──▶ read + send ──▶ release
//!                                               └─Busy──▶ answer Busy
//! ```

mod bitfield;
mod download;
mod peers;
mod pieces;
mod rarity;
mod seeding;
mod upload;

pub use bitfield::{Bitfield, BitfieldParseError};
pub use download::{
    Download, DownloadError, DownloadParams, InvariantViolation, PieceRequest, Received,
    ENDGAME_REQUESTS_PER_PIECE_MAX, PEERS_WANTED_MIN, REQUESTS_IN_FLIGHT_MAX, REQUESTS_PER_PEER_MAX,
};
pub use pieces::{PieceMap, PIECE_BYTES_TARGET};
pub use seeding::SeedAdvertisement;
pub use upload::{
    SendPriority, UploadDecision, UploadSlots, SEED_UPLOADS_IN_FLIGHT_MAX, UPLOADS_IN_FLIGHT_MAX,
    UPLOADS_PER_REQUESTER_MAX,
};
