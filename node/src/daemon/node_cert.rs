//! Keeping the node certificate (the one a node speaks QUIC with) valid.
//!
//! A node certificate is valid for `--cert-lifetime-secs` (the flag that also sets the
//! API certificate's; default one year) from when it was signed, backdated an hour for
//! clocks that run behind. Two thirds in, the node renews it over the same key: a voter
//! signs it with the CA in its replicated state, an agent asks a voter over mutual TLS
//! with the certificate it still has. The new certificate is written to `node.json`
//! (atomically, with its validity) and presented from the next handshake on, without a
//! restart. A certificate of an older release (which never expires), or one that outlives
//! the lifetime this node is configured with (a joiner's first one, a shortened flag), is
//! renewed at once.
//!
//! An agent whose certificate expired (it was down longer than the lifetime) cannot
//! renew it: peers refuse it, so it has to join afresh. A voter renews its own.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fleetmesh_transport::pki::{NodeKey, Validity};
use fleetmesh_transport::quic::QuicTransport;
use tracing::{debug, info, warn};

use super::api_tls::{ask_voters, AskError};
use crate::leader::{api_validity, sign_node_certificate, CertificateError};
use crate::runtime::identity::NodeIdentity;
use crate::runtime::protocol::{NodeCertificateRequest, Request, Response};
use crate::runtime::Node;

/// When a certificate valid for `validity` should be renewed by a node configured with
/// `lifetime_secs`, at `now` (Unix seconds): `None` when it should be now.
fn renew_at(validity: Option<Validity>, lifetime_secs: u64, now: i64) -> Option<i64> {
    let lifetime = i64::try_from(lifetime_secs).unwrap_or(i64::MAX / 4);
    let validity = validity?;
    let at = validity.not_after.saturating_sub(lifetime / 3);
    // A certificate that outlives what this node would get now was not made for its
    // lifetime: an older release's (no expiry) or a joiner's first one.
    let outlives = validity.not_after.saturating_sub(now) > lifetime;
    (at > now && !outlives).then_some(at)
}

/// The renewal task's state.
pub(super) struct NodeCertificate {
    node: Arc<Node>,
    transport: Arc<QuicTransport>,
    /// `node.json` as loaded, shared with the task that keeps its peer list current.
    identity: Arc<Mutex<NodeIdentity>>,
    data_dir: PathBuf,
    lifetime_secs: u64,
}

impl NodeCertificate {
    /// A renewal task for `node`, whose identity `identity` is saved in `data_dir`.
    pub(super) fn new(
        node: Arc<Node>,
        transport: Arc<QuicTransport>,
        identity: Arc<Mutex<NodeIdentity>>,
        data_dir: PathBuf,
        lifetime_secs: u64,
    ) -> Self {
        Self { node, transport, identity, data_dir, lifetime_secs }
    }

    /// Renews the certificate when due until the node stops; retries with backoff while
    /// no voter signs.
    pub(super) async fn maintain(self) {
        let mut shutdown = self.node.shutdown_signal();
        let mut backoff = Duration::from_secs(1);
        let mut failures = 0u32;
        // Until shutdown; every pass renews or waits.
        loop {
            let now = unix_secs(&self.node);
            let validity = self.identity.lock().unwrap_or_else(PoisonError::into_inner).cert_validity;
            let wait = match renew_at(validity, self.lifetime_secs, now) {
                Some(at) => Duration::from_secs(u64::try_from(at - now).unwrap_or(1).clamp(1, 60)),
                None => match self.renew(now).await {
                    Ok(validity) => {
                        info!(
                            not_after = validity.not_after,
                            lifetime_secs = self.lifetime_secs,
                            "node certificate renewed"
                        );
                        failures = 0;
                        backoff = Duration::from_secs(1);
                        continue;
                    }
                    Err(error) => {
                        failures += 1;
                        // Routine for a moment after a join or a leader change; say so
                        // once, then every 20th try.
                        if failures == 3 || failures % 20 == 0 {
                            warn!(%error, failures, "the node certificate is due for renewal and was not renewed yet");
                        } else {
                            debug!(%error, "node certificate not renewed yet; asking again");
                        }
                        let wait = backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        wait
                    }
                },
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Gets a new certificate over the node's key, saves it and presents it.
    async fn renew(&self, now: i64) -> Result<Validity, RenewError> {
        let key_pem = self.identity.lock().unwrap_or_else(PoisonError::into_inner).key_pem.clone();
        let key = NodeKey::from_pem(&key_pem).map_err(|error| RenewError::Local(error.to_string()))?;
        let request =
            NodeCertificateRequest { public_key: hex::encode(&key.public_key), lifetime_secs: self.lifetime_secs };
        let cert_pem = match sign_node_certificate(&self.node, self.node.id(), &request) {
            Ok(cert_pem) => cert_pem,
            Err(CertificateError::NoCa(_) | CertificateError::NotMember(_)) => {
                fn answer(response: &Response) -> Option<&str> {
                    match response {
                        Response::NodeCertificate(cert_pem) => Some(cert_pem),
                        _ => None,
                    }
                }
                ask_voters(&self.node, || Request::SignNodeCertificate(request.clone()), answer).await?
            }
            Err(error) => return Err(RenewError::Refused(error.to_string())),
        };
        // The signer's clock set the exact window; this node's view of it only decides
        // when to renew.
        let validity = api_validity(now, self.lifetime_secs);
        let mut identity = self.identity.lock().unwrap_or_else(PoisonError::into_inner);
        let mut renewed = identity.clone();
        renewed.cert_pem = cert_pem;
        renewed.cert_validity = Some(validity);
        let tls = renewed.tls().map_err(|error| RenewError::Local(error.to_string()))?;
        renewed.save(&self.data_dir).map_err(|error| RenewError::Local(error.to_string()))?;
        *identity = renewed;
        drop(identity);
        self.transport.set_identity(&tls).map_err(|error| RenewError::Local(error.to_string()))?;
        Ok(validity)
    }
}

/// Why the certificate was not renewed this time.
#[derive(Debug, thiserror::Error)]
enum RenewError {
    #[error(transparent)]
    Ask(#[from] AskError),
    #[error("a voter refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Local(String),
}

fn unix_secs(node: &Node) -> i64 {
    i64::try_from(node.clock().now().0 / 1000).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_two_thirds_in_at_once_for_a_certificate_without_expiry_or_a_longer_one() {
        let year: u64 = 365 * 86_400;
        let fresh = Validity { not_before: 1_000 - 3_600, not_after: 1_000 + 300 };
        assert_eq!(renew_at(Some(fresh), 300, 1_000), Some(1_200));
        assert_eq!(renew_at(Some(fresh), 300, 1_200), None, "two thirds in");
        assert_eq!(renew_at(None, 300, 1_000), None, "unknown validity (older release, or just joined)");
        let joiners = Validity { not_before: 0, not_after: 1_000 + 365 * 86_400 };
        assert_eq!(renew_at(Some(joiners), 10, 1_000), None, "a year-long certificate for a 10 s node");
        assert!(renew_at(Some(joiners), year, 1_000).is_some(), "a year-long one for a node configured so");
        let never = Validity { not_before: 0, not_after: 64_000_000_000 };
        assert_eq!(renew_at(Some(never), year, 1_000), None, "no expiry in practice");
    }
}
