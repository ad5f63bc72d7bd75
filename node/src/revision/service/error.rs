//! Why the revision service could not do what it was asked: find a manifest, download a
//! revision, or take a push. The messages are the ones users and logs have always seen.

use std::time::Duration;

use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::model::revision::ManifestError;

use crate::revision::StoreError;
use crate::runtime::identity::IdentityError;
use crate::runtime::protocol::{Response, RpcError};

/// Why a manifest could not be had (or kept).
#[derive(Debug, thiserror::Error)]
pub enum ManifestFetchError {
    /// The manifest breaks a rule of manifests.
    #[error(transparent)]
    Invalid(#[from] ManifestError),
    /// The manifest could not be written to the manifest cache.
    #[error(transparent)]
    Write(#[from] IdentityError),
    /// Neither this node nor the replicated state has it, and no leader is known to ask.
    #[error("no leader known to ask for the manifest")]
    NoLeader,
    /// The leader could not be asked.
    #[error("cannot fetch the manifest of {revision}: {reason}")]
    Unreachable {
        /// The revision asked for.
        revision: RevisionId,
        /// Why the request failed.
        reason: RpcError,
    },
    /// The leader answered without a manifest.
    #[error("the leader has no manifest for {revision}: {answer:?}")]
    NotOnLeader {
        /// The revision asked for.
        revision: RevisionId,
        /// What the leader answered instead (boxed: an answer is large, and this
        /// error travels in every `Result` of the fetch path).
        answer: Box<Response>,
    },
    /// The leader's answer is not a manifest.
    #[error("the manifest of {revision} is malformed: {reason}")]
    Malformed {
        /// The revision asked for.
        revision: RevisionId,
        /// Why it does not parse.
        reason: serde_json::Error,
    },
    /// The leader sent a manifest of another revision.
    #[error("the manifest sent for {revision} does not hash to it")]
    WrongHash {
        /// The revision asked for.
        revision: RevisionId,
    },
}

/// Chunks of a revision that no live node holds, as a download found them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoHolder {
    /// Chunks this node lacks that no live peer holds.
    pub missing_chunks: usize,
    /// Chunks of the revision.
    pub total_chunks: usize,
    /// How long they had no live holder.
    pub waited: Duration,
    /// Peers the download knew of.
    pub peers: usize,
}

/// Why a revision was not (fully) downloaded.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Its manifest could not be had.
    #[error(transparent)]
    Manifest(#[from] ManifestFetchError),
    /// The node is stopping.
    #[error("node shutting down")]
    ShuttingDown,
    /// The download's own event channel closed (its tasks are gone).
    #[error("event channel closed")]
    EventsClosed,
    /// No piece arrived for `stalled_for`; the next assignment restarts the download.
    #[error("no progress for {stalled_for:?} ({peers} peers known)")]
    Stalled {
        /// How long nothing arrived.
        stalled_for: Duration,
        /// Peers the download knew of.
        peers: usize,
    },
    /// Some chunk had no live holder for the no-holder timeout.
    #[error(
        "{} of {} chunks have no live holder: none of the {} peers listed for the revision has answered \
         with them for {:?}; the revision cannot be downloaded",
        .0.missing_chunks, .0.total_chunks, .0.peers, .0.waited
    )]
    NoLiveHolder(NoHolder),
    /// A waiter gave up before the revision was complete.
    #[error("revision {revision} was not fully downloaded within {timeout:?} ({held_bytes} bytes held)")]
    Timeout {
        /// The revision waited for.
        revision: RevisionId,
        /// How long the waiter waited.
        timeout: Duration,
        /// Bytes of it held when the waiter gave up.
        held_bytes: u64,
    },
}

/// Why a push (`fleetmesh deploy push`) was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The bundle is larger than this node accepts.
    #[error(
        "the bundle holds {declared_bytes} bytes of files; this node accepts revisions of at most {limit_bytes} bytes (node flag --max-revision-bytes)"
    )]
    TooLarge {
        /// Bytes of files the push declared.
        declared_bytes: u64,
        /// The node's `--max-revision-bytes`.
        limit_bytes: u64,
    },
    /// A chunk frame's 36-byte header is cut short.
    #[error("truncated chunk frame header")]
    TruncatedFrameHeader,
    /// A chunk frame holds fewer bytes than its header says.
    #[error("truncated chunk frame")]
    TruncatedFrame,
    /// No push with this id is open on this node.
    #[error("no upload {id} in progress on this node")]
    UnknownUpload {
        /// The upload id asked for.
        id: String,
    },
    /// The push sent more chunk bytes than it declared.
    #[error("the push sent more than the {declared_bytes} bytes it declared")]
    OverDeclared {
        /// Bytes of files the push declared.
        declared_bytes: u64,
    },
    /// A chunk could not be stored (or does not hash to its name).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Chunks of the manifest never arrived.
    #[error("{missing} chunks of the revision never arrived; push again")]
    MissingChunks {
        /// How many are missing.
        missing: usize,
    },
    /// The manifest is invalid or cannot be saved.
    #[error(transparent)]
    Manifest(#[from] ManifestFetchError),
}

/// The API answers a refused push with the message alone.
impl From<UploadError> for String {
    fn from(error: UploadError) -> Self {
        error.to_string()
    }
}
