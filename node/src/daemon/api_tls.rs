//! The HTTPS API's certificate.
//!
//! Each node keeps its own ECDSA P-256 key in `DIR/api-key.pem` (0600; it never leaves
//! the node) and a certificate from the cluster CA for the API's names in
//! `DIR/api-cert.pem`, with the names and validity beside it in `DIR/api-cert.json`.
//! `DIR/ca.pem` is the CA certificate clients trust (`--ca-bundle`).
//!
//! A voter signs its own certificate with the CA in its replicated state; an agent asks
//! the leader (any voter can sign). The certificate is renewed when two thirds of its
//! lifetime have passed, and a certificate for other names (a changed `--api` or
//! `--api-san`) is replaced at start. The server picks the new certificate up on the
//! next handshake.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_state::model::members::ClusterCa;
use fleetmesh_transport::pki::{ApiKey, CaAuthority, Validity};
use fleetmesh_transport::tls::ApiCertificate;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::DaemonError;
use crate::leader::{api_validity, sign_api_certificate, CertificateError};
use crate::runtime::identity::write_private_file;
use crate::runtime::protocol::{ApiCertificateRequest, Request, Response};
use crate::runtime::Node;

/// Default lifetime of an API certificate: one year.
pub const API_CERT_LIFETIME_DEFAULT_SECS: u64 = 365 * 86_400;

/// What `DIR/api-cert.json` records about the stored certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredCert {
    names: Vec<String>,
    validity: Validity,
    lifetime_secs: u64,
}

impl StoredCert {
    /// Unix second at which the certificate should be renewed: two thirds into its
    /// lifetime.
    fn renew_at(&self) -> i64 {
        let lifetime = i64::try_from(self.lifetime_secs).unwrap_or(i64::MAX / 4);
        self.validity.not_after.saturating_sub(lifetime / 3)
    }
}

/// The names an API certificate is for: the API's IP address (unless it listens on a
/// wildcard), loopback and `localhost` (so a CLI on the host itself can use
/// `https://127.0.0.1:PORT`), then `--api-san`s, without repeats.
pub fn api_names(api: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    if !api.ip().is_unspecified() {
        names.push(api.ip().to_string());
    }
    names.extend(["127.0.0.1", "::1", "localhost"].map(str::to_string));
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|name| seen.insert(name.clone()));
    names
}

/// A node's API key, certificate and the files that hold them.
#[derive(Debug)]
pub(super) struct ApiTls {
    data_dir: PathBuf,
    key: ApiKey,
    names: Vec<String>,
    lifetime_secs: u64,
    ca_pem: String,
    /// What the server presents.
    pub(super) certificate: Arc<ApiCertificate>,
}

impl ApiTls {
    /// Loads (or creates) the API key, writes `DIR/ca.pem`, and installs the stored
    /// certificate when it is for `names` and still valid at `now` (Unix seconds).
    ///
    /// # Errors
    /// The key or `ca.pem` cannot be written, or a stored key is corrupt.
    pub(super) fn open(
        data_dir: &Path,
        ca_pem: &str,
        names: Vec<String>,
        lifetime_secs: u64,
        now: i64,
    ) -> Result<Self, DaemonError> {
        fleetmesh_transport::pki::check_api_names(&names).map_err(DaemonError::ApiCertificate)?;
        write_public_file(&data_dir.join("ca.pem"), ca_pem.as_bytes())?;
        let key_path = data_dir.join("api-key.pem");
        let key = match std::fs::read_to_string(&key_path) {
            Ok(text) => ApiKey::from_pem(&text).map_err(DaemonError::ApiCertificate)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = ApiKey::generate().map_err(DaemonError::ApiCertificate)?;
                write_private_file(&key_path, key.key_pem.as_bytes())?;
                key
            }
            Err(source) => return Err(DaemonError::ReadFile { path: key_path, source }),
        };
        let tls = Self {
            data_dir: data_dir.to_path_buf(),
            key,
            names,
            lifetime_secs,
            ca_pem: ca_pem.to_string(),
            certificate: Arc::default(),
        };
        if let Some(stored) = tls.stored().filter(|stored| stored.names == tls.names && now < stored.validity.not_after)
        {
            match std::fs::read_to_string(tls.cert_path()) {
                Ok(cert_pem) => match tls.certificate.install(&cert_pem, &tls.ca_pem, &tls.key.key_pem) {
                    Ok(()) => debug!(renew_at = stored.renew_at(), "API certificate loaded"),
                    Err(error) => warn!(%error, "the stored API certificate is unusable; a new one is requested"),
                },
                Err(error) => warn!(%error, "cannot read the stored API certificate; a new one is requested"),
            }
        }
        Ok(tls)
    }

    fn cert_path(&self) -> PathBuf {
        self.data_dir.join("api-cert.pem")
    }

    fn meta_path(&self) -> PathBuf {
        self.data_dir.join("api-cert.json")
    }

    fn stored(&self) -> Option<StoredCert> {
        let bytes = std::fs::read(self.meta_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// What this node sends to have its key certified.
    fn request(&self) -> ApiCertificateRequest {
        ApiCertificateRequest {
            public_key: hex::encode(&self.key.public_key),
            names: self.names.clone(),
            lifetime_secs: self.lifetime_secs,
        }
    }

    /// Signs the certificate with `ca` directly (the first node, which created the CA).
    ///
    /// # Errors
    /// Signing or writing failed.
    pub(super) fn sign_with(
        &self,
        ca: &ClusterCa,
        node: fleetmesh_transport::NodeId,
        now: i64,
    ) -> Result<(), DaemonError> {
        let validity = api_validity(now, self.lifetime_secs);
        let cert_pem =
            ca.sign_api(node, &self.key.public_key, &self.names, validity).map_err(DaemonError::ApiCertificate)?;
        self.store(&cert_pem, validity)
    }

    /// Writes a new certificate and presents it from the next handshake on.
    fn store(&self, cert_pem: &str, validity: Validity) -> Result<(), DaemonError> {
        self.certificate.install(cert_pem, &self.ca_pem, &self.key.key_pem).map_err(DaemonError::ApiCertificate)?;
        write_public_file(&self.cert_path(), cert_pem.as_bytes())?;
        let stored = StoredCert { names: self.names.clone(), validity, lifetime_secs: self.lifetime_secs };
        write_public_file(&self.meta_path(), &serde_json::to_vec_pretty(&stored)?)?;
        Ok(())
    }

    /// Keeps the certificate valid until the node stops: gets one when there is none,
    /// renews it two thirds into its lifetime, and retries with backoff when no voter
    /// answers.
    pub(super) async fn maintain(self: Arc<Self>, node: Arc<Node>) {
        let mut shutdown = node.shutdown_signal();
        let mut backoff = Duration::from_secs(1);
        let mut failures = 0u32;
        loop {
            let now = unix_secs(&node);
            // Read once per pass: the record only changes when this loop stores a new one.
            let renew_at = self.stored().filter(|_| self.certificate.is_ready()).map(|stored| stored.renew_at());
            let due = renew_at.is_none_or(|at| at <= now);
            let wait = if due {
                match self.obtain(&node, now).await {
                    Ok(()) => {
                        info!(names = ?self.names, lifetime_secs = self.lifetime_secs, "API certificate issued");
                        failures = 0;
                        backoff = Duration::from_secs(1);
                        continue;
                    }
                    Err(error) => {
                        failures += 1;
                        // The first failures are routine while a cluster forms; say so
                        // once, then again every 20th try.
                        if failures == 3 || failures % 20 == 0 {
                            warn!(%error, failures, "no API certificate yet; the API refuses TLS handshakes until one is issued");
                        } else {
                            debug!(%error, "no API certificate yet; asking again");
                        }
                        let wait = backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        wait
                    }
                }
            } else {
                let until = renew_at.map_or(60, |at| at.saturating_sub(now));
                Duration::from_secs(u64::try_from(until).unwrap_or(1).clamp(1, 60))
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Gets a certificate: signed here when this node's state holds the CA (a voter),
    /// else by the leader.
    async fn obtain(&self, node: &Node, now: i64) -> Result<(), ObtainError> {
        let request = self.request();
        let cert_pem = match sign_api_certificate(node, node.id(), &request) {
            Ok(cert_pem) => cert_pem,
            Err(CertificateError::NoCa(_) | CertificateError::NotMember(_)) => {
                fn answer(response: &Response) -> Option<&str> {
                    match response {
                        Response::ApiCertificate(cert_pem) => Some(cert_pem),
                        _ => None,
                    }
                }
                ask_voters(node, || Request::SignApiCertificate(request.clone()), answer).await?
            }
            Err(error) => return Err(ObtainError::Sign(error)),
        };
        // The signer's clock set the exact window; this node's view of it only decides
        // when to renew.
        let validity = api_validity(now, self.lifetime_secs);
        self.store(&cert_pem, validity).map_err(|error| ObtainError::Store(error.to_string()))
    }
}

/// Asks the leader, then every other known member, to sign `request` (an API or node
/// certificate): any voter can, and during an upgrade the leader may be of a release
/// that cannot yet. `certificate` picks the PEM out of the expected answer.
pub(super) async fn ask_voters(
    node: &Node,
    request: impl Fn() -> Request,
    certificate: fn(&Response) -> Option<&str>,
) -> Result<String, AskError> {
    let directory = node.directory();
    let mut peers: Vec<_> = directory.leader.map(|leader| leader.peer()).into_iter().collect();
    for member in directory.members.values().filter(|member| member.id != node.id()) {
        let peer = fleetmesh_transport::Peer { id: member.id, addr: member.listen };
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }
    let mut last = AskError::NoMember;
    for peer in peers {
        let answer = node.call(peer, request(), Duration::from_secs(10)).await;
        last = match answer {
            Ok((Response::Error(message), _)) => AskError::Refused(message),
            Ok((response, _)) => match certificate(&response) {
                Some(cert_pem) => return Ok(cert_pem.to_string()),
                None => AskError::Refused(format!("unexpected answer {response:?}")),
            },
            Err(error) => AskError::Call(error.to_string()),
        };
    }
    Err(last)
}

/// Why no voter signed a certificate this time.
#[derive(Debug, thiserror::Error)]
pub(super) enum AskError {
    #[error("no member is known yet")]
    NoMember,
    #[error("cannot reach a voter: {0}")]
    Call(String),
    #[error("a voter refused: {0}")]
    Refused(String),
}

/// Why no certificate was obtained this time.
#[derive(Debug, thiserror::Error)]
enum ObtainError {
    #[error(transparent)]
    Ask(#[from] AskError),
    #[error(transparent)]
    Sign(CertificateError),
    #[error("cannot store the certificate: {0}")]
    Store(String),
}

fn unix_secs(node: &Node) -> i64 {
    i64::try_from(node.clock().now().0 / 1000).unwrap_or(i64::MAX / 2)
}

/// Writes a file anyone may read (certificates), atomically.
fn write_public_file(path: &Path, bytes: &[u8]) -> Result<(), DaemonError> {
    write_private_file(path, bytes)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|source| DaemonError::ReadFile { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use fleetmesh_transport::pki::CaAuthority;

    use super::*;

    #[test]
    fn the_names_are_the_api_address_loopback_and_the_extra_ones_once_each() {
        let names = api_names("10.1.2.3:7480".parse().expect("addr"), &["api.example".into(), "127.0.0.1".into()]);
        assert_eq!(names, ["10.1.2.3", "127.0.0.1", "::1", "localhost", "api.example"]);
        let wildcard = api_names("0.0.0.0:7480".parse().expect("addr"), &[]);
        assert_eq!(wildcard, ["127.0.0.1", "::1", "localhost"]);
    }

    #[test]
    fn renewal_is_due_two_thirds_into_the_lifetime() {
        let stored = StoredCert {
            names: vec![],
            validity: Validity { not_before: 0 - 3_600, not_after: 300 },
            lifetime_secs: 300,
        };
        assert_eq!(stored.renew_at(), 200);
    }

    #[test]
    fn the_key_is_private_the_ca_public_and_a_stored_certificate_is_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = ClusterCa::generate("t").expect("ca");
        let names = vec!["127.0.0.1".to_string()];
        let tls = ApiTls::open(dir.path(), &ca.cert_pem, names.clone(), 3_600, 1_000).expect("open");
        assert!(!tls.certificate.is_ready(), "no certificate before one is signed");
        tls.sign_with(&ca, fleetmesh_transport::NodeId(1), 1_000).expect("sign");
        assert!(tls.certificate.is_ready());
        let mode = |name: &str| std::fs::metadata(dir.path().join(name)).expect("file").permissions().mode() & 0o777;
        assert_eq!((mode("api-key.pem"), mode("ca.pem"), mode("api-cert.pem")), (0o600, 0o644, 0o644));

        let again = ApiTls::open(dir.path(), &ca.cert_pem, names, 3_600, 2_000).expect("reopen");
        assert!(again.certificate.is_ready(), "the stored certificate is loaded");
        assert_eq!(again.key.public_key, tls.key.public_key, "the key is kept");
        let expired =
            ApiTls::open(dir.path(), &ca.cert_pem, vec!["127.0.0.1".into()], 3_600, 1_000 + 3_600).expect("open");
        assert!(!expired.certificate.is_ready(), "an expired certificate is not presented");
        let renamed = ApiTls::open(dir.path(), &ca.cert_pem, vec!["10.0.0.1".into()], 3_600, 2_000).expect("open");
        assert!(!renamed.certificate.is_ready(), "a certificate for other names is replaced");
    }
}
