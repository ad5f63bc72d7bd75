//! The CA seal key on this node and the cluster CA opened with it.
//!
//! The replicated state holds the CA's private key sealed ([`fleetmesh_transport::seal`]);
//! the key that opens it lives in `DIR/ca-seal-key` (0600) on each voter and is never
//! replicated, so a copy of the Raft log or of a snapshot does not carry a usable CA key.
//! The leader hands the seal key to a node before making it a voter
//! (`Request::HoldCaSealKey`). In simulation (no data directory) it is kept in memory.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fleetmesh_transport::pki::ClusterCa;
use fleetmesh_transport::seal::{CaSealKey, SealError};

use super::identity::{write_private_file, IdentityError};
use super::Node;

/// The seal key's file in the data directory.
pub const SEAL_KEY_FILE: &str = "ca-seal-key";

/// Why the cluster CA cannot be used here.
#[derive(Debug, thiserror::Error)]
pub enum CaKeyError {
    /// No CA in this node's replicated state.
    #[error("this node holds no cluster CA (it is not a voter, or the cluster is not bootstrapped yet)")]
    NoCa,
    /// The CA is sealed and this node has no seal key.
    #[error(
        "the cluster CA key is sealed and this voter holds no seal key (DIR/{SEAL_KEY_FILE}); \
         the leader hands it over when it makes a node a voter"
    )]
    NoSealKey,
    /// Sealing or opening failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The key file could not be read or written.
    #[error(transparent)]
    Io(#[from] IdentityError),
    /// Reading the key file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another seal key, which opens this cluster's CA, is held here already.
    #[error("this node holds another CA seal key, and that one opens the cluster's CA key: not replacing it")]
    Conflict,
}

/// This node's seal key: on disk (`DIR/ca-seal-key`), cached after the first read.
#[derive(Debug)]
pub struct SealKeyStore {
    path: Option<PathBuf>,
    key: Mutex<Option<CaSealKey>>,
}

impl SealKeyStore {
    /// The store of `data_dir` (in memory without one).
    pub fn new(data_dir: Option<&Path>) -> Self {
        Self { path: data_dir.map(|dir| dir.join(SEAL_KEY_FILE)), key: Mutex::new(None) }
    }

    /// The key, if this node holds one.
    ///
    /// # Errors
    /// The file exists but cannot be read or is not a seal key.
    pub fn get(&self) -> Result<Option<CaSealKey>, CaKeyError> {
        let mut cached = self.key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cached.is_none() {
            if let Some(path) = &self.path {
                match std::fs::read_to_string(path) {
                    Ok(text) => *cached = Some(CaSealKey::from_hex(&text)?),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(CaKeyError::Read { path: path.clone(), source }),
                }
            }
        }
        Ok(cached.clone())
    }

    /// Keeps `key` (written 0600 before it is used).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn put(&self, key: &CaSealKey) -> Result<(), CaKeyError> {
        let mut cached = self.key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(path) = &self.path {
            write_private_file(path, format!("{}\n", key.to_hex()).as_bytes())?;
        }
        *cached = Some(key.clone());
        Ok(())
    }
}

/// This node's seal key with the cluster's id, which every seal context names: what
/// seals the secrets the replicated state keeps (access keys, trigger secrets) and
/// derives the cluster's webhook secret.
#[derive(Debug)]
pub struct Sealer {
    key: CaSealKey,
    cluster_id: String,
}

impl Sealer {
    /// The cluster's id, for the seal contexts.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// `plain` sealed under `context`.
    ///
    /// # Errors
    /// The system random source failed.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Result<String, SealError> {
        self.key.seal_bytes(plain, context)
    }

    /// `sealed` opened under `context`.
    ///
    /// # Errors
    /// It is malformed, or was sealed under another key or context.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Vec<u8>, SealError> {
        self.key.open_bytes(sealed, context)
    }

    /// A secret derived from the key under `label`.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        self.key.derive(label)
    }
}

impl Node {
    /// The seal key and the cluster's id, to seal or open a secret with.
    ///
    /// # Errors
    /// The cluster is not bootstrapped here ([`CaKeyError::NoCa`]), this node holds no
    /// seal key ([`CaKeyError::NoSealKey`]), or its file cannot be read.
    pub fn sealer(&self) -> Result<Sealer, CaKeyError> {
        let key = self.seal_keys().get()?.ok_or(CaKeyError::NoSealKey)?;
        let cluster_id = self
            .state()
            .read(|state| state.cluster.as_ref().map(|info| info.ca.cluster_id.clone()))
            .ok_or(CaKeyError::NoCa)?;
        Ok(Sealer { key, cluster_id })
    }

    /// The cluster CA with its private key usable (opened in memory when sealed), to sign.
    ///
    /// # Errors
    /// No CA here (not a voter), or it is sealed and this node cannot open it.
    pub fn cluster_ca(&self) -> Result<ClusterCa, CaKeyError> {
        let ca =
            self.state().read(|state| state.cluster.as_ref().map(|info| info.ca.clone())).ok_or(CaKeyError::NoCa)?;
        if !ca.is_sealed() {
            return Ok(ca);
        }
        let key = self.seal_keys().get()?.ok_or(CaKeyError::NoSealKey)?;
        Ok(key.unseal(&ca)?)
    }

    /// Keeps `key`, handed over by the leader. A key that opens this node's sealed CA
    /// is never replaced by another; one that does not (or with no CA here: an agent)
    /// is stale and is.
    ///
    /// # Errors
    /// `key` does not open the sealed CA this node holds, a conflicting key is held, or
    /// the file cannot be written.
    pub fn hold_seal_key(&self, key: &CaSealKey) -> Result<(), CaKeyError> {
        let sealed =
            self.state().read(|state| state.cluster.as_ref().map(|info| info.ca.clone())).filter(ClusterCa::is_sealed);
        let held = self.seal_keys().get()?;
        if held.as_ref() == Some(key) {
            return Ok(());
        }
        if let Some(ca) = &sealed {
            if held.is_some_and(|held| held.opens(ca)) {
                return Err(CaKeyError::Conflict);
            }
            if !key.opens(ca) {
                return Err(SealError::WrongKey.into());
            }
        }
        self.seal_keys().put(key)
    }
}
