//! Revoked members: refused during the QUIC handshake.
//!
//! Node ids are never reused, so a member that was removed stays revoked forever
//! without a revocation list: the node answers "is node N revoked?" from what it knows
//! of the membership (a [`Revocation`] policy the node installs once it runs). The
//! verifiers below wrap rustls' WebPKI ones: a certificate must first chain to the
//! cluster CA and be within its validity window (an expired certificate is refused
//! there), then the node id it names must not be revoked.
//!
//! ```text
//!  handshake ──▶ WebPKI (CA chain, notBefore..notAfter) ──▶ node id from the certificate
//!            ──▶ Revocation::is_revoked(id)? refuse (alert certificate_revoked) : accept
//! ```

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::pki::node_id_of;
use crate::NodeId;

/// The question "is this member revoked?", answered by the node from its view of the
/// membership.
pub type RevocationPolicy = dyn Fn(NodeId) -> bool + Send + Sync;

/// Which members the transport refuses. Until a policy is installed nobody is revoked
/// (a starting node does not know the membership yet; the CA chain is still checked).
#[derive(Default)]
pub struct Revocation {
    policy: OnceLock<Arc<RevocationPolicy>>,
}

impl std::fmt::Debug for Revocation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Revocation").field("installed", &self.policy.get().is_some()).finish()
    }
}

impl Revocation {
    /// A revocation that revokes nobody until [`Revocation::install`].
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Installs the policy. One per node life: a second one is ignored (returns false).
    pub fn install(&self, policy: Arc<RevocationPolicy>) -> bool {
        self.policy.set(policy).is_ok()
    }

    /// True when `id` was removed from the cluster.
    pub fn is_revoked(&self, id: NodeId) -> bool {
        self.policy.get().is_some_and(|policy| policy(id))
    }

    /// The error a handshake fails with when the certificate of `end_entity` names a
    /// revoked member.
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        match node_id_of(end_entity) {
            Some(id) if self.is_revoked(id) => Err(rustls::Error::InvalidCertificate(CertificateError::Revoked)),
            _ => Ok(()),
        }
    }
}

/// The text a handshake refused for a revoked certificate leaves in the error the
/// refused side sees (QUIC closes with the TLS alert and rustls' message as reason).
const REVOKED_REASON: &str = "invalid peer certificate: Revoked";

/// True when `reason` (a transport error's text) says the peer refused this node's
/// certificate as revoked: the node was removed from the cluster.
pub fn is_revoked_by_peer(reason: &str) -> bool {
    reason.contains("aborted by peer") && reason.contains(REVOKED_REASON)
}

/// The server side: WebPKI client verification, then the revocation check.
#[derive(Debug)]
pub(crate) struct MemberClientVerifier {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) revocation: Arc<Revocation>,
}

impl ClientCertVerifier for MemberClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        self.revocation.check(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The client side: WebPKI server verification, then the revocation check.
#[derive(Debug)]
pub(crate) struct MemberServerVerifier {
    pub(crate) inner: Arc<dyn ServerCertVerifier>,
    pub(crate) revocation: Arc<Revocation>,
}

impl ServerCertVerifier for MemberServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        self.revocation.check(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls::client::WebPkiServerVerifier;
    use rustls::server::WebPkiClientVerifier;

    use super::*;
    use crate::pki::{cert_from_pem, CaAuthority, ClusterCa, NodeKey, Validity};
    use crate::tls::provider;

    fn verifiers(ca: &ClusterCa, revoked: &'static [u64]) -> (MemberClientVerifier, MemberServerVerifier) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().expect("ca")).expect("root");
        let roots = Arc::new(roots);
        let revocation = Revocation::new();
        assert!(revocation.install(Arc::new(move |id: NodeId| revoked.contains(&id.0))));
        let client = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .allow_unauthenticated()
            .build()
            .expect("client verifier");
        let server = WebPkiServerVerifier::builder_with_provider(roots, provider()).build().expect("server verifier");
        (
            MemberClientVerifier { inner: client, revocation: revocation.clone() },
            MemberServerVerifier { inner: server, revocation },
        )
    }

    fn cert(ca: &ClusterCa, id: u64, validity: Validity) -> CertificateDer<'static> {
        let key = NodeKey::generate().expect("key");
        cert_from_pem(&ca.sign_node_valid(NodeId(id), &key.public_key, validity).expect("sign")).expect("der")
    }

    fn at(secs: i64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(secs).expect("positive")))
    }

    /// Both sides: a member is accepted, a revoked member and an expired certificate
    /// are refused, a certificate of another CA too.
    #[test]
    fn members_pass_revoked_and_expired_certificates_do_not() {
        let ca = ClusterCa::generate("t").expect("ca");
        let (client, server) = verifiers(&ca, &[3]);
        let window = Validity { not_before: 1_000_000, not_after: 1_000_100 };
        let name = |id: u64| ServerName::try_from(NodeId(id).server_name()).expect("name");
        let member = cert(&ca, 2, window);
        let revoked = cert(&ca, 3, window);
        client.verify_client_cert(&member, &[], at(1_000_050)).expect("member accepted by the server");
        server.verify_server_cert(&member, &[], &name(2), &[], at(1_000_050)).expect("member accepted by the client");
        for error in [
            client.verify_client_cert(&revoked, &[], at(1_000_050)).map(|_| ()),
            server.verify_server_cert(&revoked, &[], &name(3), &[], at(1_000_050)).map(|_| ()),
        ] {
            assert_eq!(error, Err(rustls::Error::InvalidCertificate(CertificateError::Revoked)));
        }
        let expired = client.verify_client_cert(&member, &[], at(1_000_200));
        assert!(
            matches!(expired, Err(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }))),
            "{expired:?}"
        );
        assert!(server.verify_server_cert(&member, &[], &name(2), &[], at(1_000_200)).is_err(), "expired");
        let other = ClusterCa::generate("o").expect("other ca");
        assert!(client.verify_client_cert(&cert(&other, 2, window), &[], at(1_000_050)).is_err(), "other CA");
    }

    #[test]
    fn nobody_is_revoked_before_a_policy_is_installed_and_only_one_is() {
        let revocation = Revocation::new();
        assert!(!revocation.is_revoked(NodeId(1)));
        assert!(revocation.install(Arc::new(|_| true)));
        assert!(!revocation.install(Arc::new(|_| false)), "a second policy is ignored");
        assert!(revocation.is_revoked(NodeId(1)));
    }

    #[test]
    fn only_a_peer_s_revocation_counts_as_removal() {
        assert!(is_revoked_by_peer(
            "aborted by peer: the cryptographic handshake failed: error 44: invalid peer certificate: Revoked"
        ));
        assert!(!is_revoked_by_peer("the cryptographic handshake failed: error 44: invalid peer certificate: Revoked"));
        assert!(!is_revoked_by_peer("timed out"));
    }
}
