//! Why a node could not start, or stopped by itself. The messages are the ones the
//! `fleetmesh node` command has always printed.

use std::net::SocketAddr;
use std::path::PathBuf;

use fleetmesh_consensus::host::HostError;
use fleetmesh_transport::pki::PkiError;
use fleetmesh_transport::quic::QuicError;
use fleetmesh_transport::NodeId;

use crate::revision::StoreError;
use crate::runtime::identity::{IdentityError, JoinTokenError};
use crate::runtime::join::JoinError;

/// Why a node could not start, or stopped by itself.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// `--data-dir` could not be created.
    #[error("cannot create the data directory {}", path.display())]
    CreateDataDir {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The data directory holds a node of another cluster than the join token's.
    #[error(
        "{} belongs to cluster {cluster_id} but the join token is for another cluster; use an empty --data-dir to join a new cluster",
        data_dir.display()
    )]
    OtherCluster {
        /// `--data-dir`.
        data_dir: PathBuf,
        /// The cluster the data directory belongs to.
        cluster_id: String,
    },
    /// `--listen` is a wildcard address and no `--advertise-address` says where other
    /// hosts reach this one.
    #[error(
        "--listen {listen} is a wildcard address: give --advertise-address IP, the address other hosts and \
         routers reach this node at"
    )]
    AdvertiseAddressNeeded {
        /// `--listen`.
        listen: std::net::SocketAddr,
    },
    /// `--join` without `--token`.
    #[error("--join needs --token (the contents of DIR/join-token on the first node)")]
    JoinWithoutToken,
    /// `--token` without `--join`.
    #[error("--token needs --join SEED:PORT (the address of any node of the cluster)")]
    TokenWithoutJoin,
    /// `--voters` is out of range.
    #[error("--voters must be 1 to {max}, got {voters}")]
    VoterCount {
        /// The flag's value.
        voters: u32,
        /// The largest count accepted ([`super::VOTERS_MAX`]).
        max: u32,
    },
    /// The node's identity (or a file beside it) could not be read, written or used.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The join token does not parse.
    #[error(transparent)]
    JoinToken(#[from] JoinTokenError),
    /// The join failed.
    #[error(transparent)]
    Join(#[from] JoinError),
    /// The cluster CA or the node's key could not be made.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The bootstrap facts could not be encoded.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    /// QUIC could not bind `--listen`.
    #[error(transparent)]
    Quic(#[from] QuicError),
    /// The Raft database could not be opened.
    #[error("cannot open {}", path.display())]
    OpenDatabase {
        /// `raft.redb` in the data directory.
        path: PathBuf,
        /// What redb said.
        source: redb::DatabaseError,
    },
    /// The Raft database's mode could not be set to owner-only.
    #[error("cannot make {} readable by its owner only", path.display())]
    ProtectDatabase {
        /// `raft.redb` in the data directory.
        path: PathBuf,
        /// What chmod said.
        source: std::io::Error,
    },
    /// Raft could not start or be initialized (boxed: its errors are large).
    #[error(transparent)]
    Raft(Box<HostError>),
    /// The chunk store or manifest cache could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The API address is in use or not ours.
    #[error("cannot listen for the API on {address}")]
    ApiListen {
        /// `--api`.
        address: SocketAddr,
        /// What the socket said.
        source: std::io::Error,
    },
    /// `--force-new-cluster` refused to rewrite the store.
    #[error("--force-new-cluster: {0}")]
    Recover(fleetmesh_consensus::raft::RecoverError),
    /// `--from-snapshot` is not a saved state.
    #[error("{} is not a state saved by `cluster snapshot save`: {reason}", path.display())]
    SavedState {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// The cluster CA could not be sealed or opened.
    #[error("cluster CA: {0}")]
    CaKey(#[from] crate::runtime::ca_seal::CaKeyError),
    /// The API certificate could not be made (a bad `--api-san`, a corrupt key).
    #[error("API certificate: {0}")]
    ApiCertificate(PkiError),
    /// A file of the data directory could not be read or written.
    #[error("cannot access {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A secret file that others can read and that this user does not own.
    #[error(
        "{} holds a secret, others can read it (mode {mode:o}) and it belongs to uid {owner}, not to this node's \
         user: give it to this user or make it readable by its owner only (chmod 600)",
        path.display()
    )]
    ExposedSecret {
        /// The file or directory.
        path: PathBuf,
        /// Its mode.
        mode: u32,
        /// Its owner.
        owner: u32,
    },
    /// `--api-plaintext` on an address other machines can reach.
    #[error(
        "--api-plaintext is only allowed on a loopback address (127.0.0.0/8 or ::1), not {address}: \
         the admin token would cross the network in clear; drop --api-plaintext to serve HTTPS"
    )]
    PlaintextNotLoopback {
        /// The `--api` address.
        address: SocketAddr,
    },
    /// The HTTPS server configuration could not be built.
    #[error("HTTPS API configuration: {0}")]
    ApiTls(#[from] fleetmesh_transport::tls::TlsError),
    /// The data directory is of a node that was removed from the cluster.
    #[error("{reason}")]
    Removed {
        /// What the node wrote when it learned it (`DIR/removed`).
        reason: String,
    },
    /// The node stopped by itself after a fatal error it logged.
    #[error("node {node} stopped after a fatal error (the log above says which)")]
    Fatal {
        /// This node.
        node: NodeId,
    },
}

impl From<HostError> for DaemonError {
    fn from(error: HostError) -> Self {
        Self::Raft(Box::new(error))
    }
}
