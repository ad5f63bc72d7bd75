//! A node's identity on disk, and the cluster's tokens.
//!
//! `DIR/node.json` (mode 0600) holds what a node needs to come back after a restart
//! without `--join`: its id, its certificate and key, the cluster CA certificate, the
//! admin token's hash (to check API calls) and the last known member addresses (to find
//! the cluster again). The first node also writes `DIR/admin-token` and `DIR/join-token`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use fleetmesh_state::model::ids::Hash32;
use fleetmesh_transport::pki::{CaFingerprint, PkiError, TlsIdentity, Validity};
use fleetmesh_transport::NodeId;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Format of `node.json` written by this release.
pub const IDENTITY_FORMAT: u32 = 1;

/// Why an identity could not be read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// `node.json` is not what this release writes.
    #[error("{path} is not a fleetmesh node identity ({reason}); use an empty --data-dir for a new node")]
    Corrupt {
        /// File.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// Certificates or keys are unusable.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// A member address as remembered between restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownPeer {
    /// Member id.
    pub id: NodeId,
    /// Its QUIC address.
    pub listen: SocketAddr,
}

/// `DIR/node.json`.
#[derive(Clone, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// [`IDENTITY_FORMAT`].
    pub format: u32,
    /// This node.
    pub node_id: NodeId,
    /// The cluster it belongs to.
    pub cluster_id: String,
    /// Fingerprint of the cluster CA (what join tokens pin).
    pub ca_fingerprint: CaFingerprint,
    /// Cluster CA certificate, PEM.
    pub ca_pem: String,
    /// This node's certificate, PEM.
    pub cert_pem: String,
    /// When the certificate is valid, as this node computed it when it got it; `None`
    /// for a certificate of an older release (which never expires) or one the node has
    /// not renewed since it joined: renewed at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_validity: Option<Validity>,
    /// This node's private key, PEM.
    pub key_pem: String,
    /// BLAKE3 of the admin token, hex.
    pub admin_token_hash: String,
    /// Tags this node registered with.
    pub tags: BTreeMap<String, String>,
    /// Members last seen, to find the cluster after a restart.
    pub peers: Vec<KnownPeer>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NodeIdentity")
            .field("node_id", &self.node_id)
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// Path of the identity file in a data directory.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("node.json")
    }

    /// Loads the identity of `data_dir`, `None` if the directory holds none.
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, IdentityError> {
        let path = Self::path(data_dir);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(IdentityError::Io { path, source }),
        };
        let identity: Self = serde_json::from_slice(&bytes)
            .map_err(|error| IdentityError::Corrupt { path: path.clone(), reason: error.to_string() })?;
        if identity.format != IDENTITY_FORMAT {
            return Err(IdentityError::Corrupt { path, reason: format!("format {}", identity.format) });
        }
        Ok(Some(identity))
    }

    /// Writes the identity atomically with mode 0600.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, data_dir: &Path) -> Result<(), IdentityError> {
        let bytes = serde_json::to_vec_pretty(self).expect("an identity always serializes");
        write_private_file(&Self::path(data_dir), &bytes)
    }

    /// The TLS identity for the transport.
    ///
    /// # Errors
    /// A PEM text is corrupt.
    pub fn tls(&self) -> Result<TlsIdentity, IdentityError> {
        Ok(TlsIdentity::from_pem(self.node_id, &self.ca_pem, &self.cert_pem, &self.key_pem)?)
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename) with mode 0600.
///
/// Each call writes its own temp file, so concurrent writers of one path (a prefetch
/// and a deployment saving the same manifest) each replace the file whole. With one
/// shared temp name, the second writer's rename found the temp file already moved
/// away and failed with "No such file or directory": the intermittent DownloadBundle
/// failure of one host in five in the e2e deploy tests.
///
/// # Errors
/// Any I/O step fails.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let io = |source| IdentityError::Io { path: path.to_path_buf(), source };
    let write = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
    temp_name.push(format!(".{}.{write}.tmp", std::process::id()));
    let temp = path.with_file_name(temp_name);
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temp, path).map_err(io)?;
    if let Some(parent) = path.parent() {
        if let Ok(dir) = std::fs::File::open(parent) {
            // The rename is already visible; syncing the directory only makes it survive a
            // power cut sooner, and some filesystems refuse to sync a directory at all.
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// 16 random bytes as hex, from the OS.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// BLAKE3 of a secret, hex: what the cluster stores instead of the secret.
pub fn secret_hash(secret: &str) -> String {
    Hash32::of(secret.as_bytes()).to_hex()
}

/// Compares two hex hashes in constant time.
pub fn hashes_equal(left: &str, right: &str) -> bool {
    left.len() == right.len() && left.bytes().zip(right.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// A join token: `fmj1.<CA fingerprint, 64 hex>.<secret, 32 hex>`.
///
/// The fingerprint lets the joiner verify the cluster before it sends anything (like
/// kubeadm's discovery hash); the secret lets the cluster admit the joiner.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// CA fingerprint.
    pub ca: CaFingerprint,
    /// The secret part.
    pub secret: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("JoinToken").field("ca", &self.ca).finish_non_exhaustive()
    }
}

/// Why a join token is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the join token is malformed: expected fmj1.<64 hex digits>.<32 hex digits> as written to DIR/join-token on the first node")]
pub struct JoinTokenError;

impl JoinToken {
    /// A new token for the CA with `ca` fingerprint.
    pub fn generate(ca: CaFingerprint) -> Self {
        Self { ca, secret: random_hex(16) }
    }

    /// Parses the text form.
    ///
    /// # Errors
    /// The text is not a join token.
    pub fn parse(text: &str) -> Result<Self, JoinTokenError> {
        let mut parts = text.trim().split('.');
        let (Some("fmj1"), Some(ca), Some(secret), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoinTokenError);
        };
        let is_hex = |text: &str, len: usize| text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_hex(ca, 64) || !is_hex(secret, 32) {
            return Err(JoinTokenError);
        }
        Ok(Self { ca: CaFingerprint(ca.to_ascii_lowercase()), secret: secret.to_ascii_lowercase() })
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "fmj1.{}.{}", self.ca.0, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_of_one_file_all_succeed_and_leave_one_whole_copy() {
        // Eight threads write the same path 50 times each, each its own content: every
        // write succeeds, the file holds one writer's bytes whole, and no temp file is
        // left behind.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("manifest.json");
        let threads: Vec<_> = (0..8u8)
            .map(|writer| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        write_private_file(&path, &[writer; 4096]).expect("every write succeeds");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("writer");
        }
        let bytes = std::fs::read(&path).expect("written");
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|byte| *byte == bytes[0]), "one writer's bytes, whole");
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).expect("list").map(|entry| entry.expect("entry").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("manifest.json")]);
    }

    #[test]
    fn join_tokens_round_trip_and_reject_garbage() {
        let token = JoinToken::generate(CaFingerprint("ab".repeat(32)));
        assert_eq!(JoinToken::parse(&token.to_string()), Ok(token.clone()));
        assert_eq!(JoinToken::parse("nope"), Err(JoinTokenError));
        assert_eq!(JoinToken::parse(&format!("fmj1.{}.zz", "ab".repeat(32))), Err(JoinTokenError));
    }

    #[test]
    fn hash_comparison() {
        assert!(hashes_equal(&secret_hash("a"), &secret_hash("a")));
        assert!(!hashes_equal(&secret_hash("a"), &secret_hash("b")));
    }

    #[test]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        write_private_file(&path, b"x").expect("write");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
