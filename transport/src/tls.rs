//! rustls and quinn configurations: mutual TLS under the cluster CA, and the pinned,
//! certificate-less client a joining node uses.
//!
//! Every node's QUIC endpoint offers two ALPN protocols:
//! - [`ALPN_CLUSTER`]: member to member. Both sides present certificates signed by the
//!   cluster CA; a certificate from another CA fails the handshake.
//! - [`ALPN_JOIN`]: a joining node that has a join token but no certificate yet. It
//!   presents no certificate and checks ours against the CA fingerprint in its token.
//!   The server answers only join requests on such a connection.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::pki::{CaFingerprint, TlsIdentity, CLUSTER_SERVER_NAME};
use crate::revocation::{MemberClientVerifier, MemberServerVerifier, Revocation};

/// ALPN for member-to-member connections (mutual TLS).
pub const ALPN_CLUSTER: &[u8] = b"fleetmesh/1";
/// ALPN for a joining node (server-authenticated only, CA pinned by the join token).
pub const ALPN_JOIN: &[u8] = b"fleetmesh-join/1";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// quinn refused the rustls configuration.
    #[error("quic crypto configuration: {0}")]
    Quic(String),
}

/// The crypto provider, passed explicitly so no process-wide default is needed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_cert: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.clone())?;
    Ok(Arc::new(roots))
}

/// QUIC transport parameters shared by both sides.
///
/// Windows are sized for bulk chunk transfer on a LAN (the defaults target
/// 100 Mbit/s × 100 ms); keep-alive stays well under the idle timeout so an idle
/// member connection survives, and a dead peer is noticed within the idle timeout.
///
/// Streams of one priority are sent one after another, in the order they were written,
/// not round-robin (quinn's `send_fairness`, on by default): a downloader keeps eight
/// ~1 MiB piece answers in flight to one peer, and round-robin interleaved them packet
/// by packet, so all eight finished together and the receiver verified and stored them
/// in bursts. One after another, each piece is stored while the next arrives. Measured
/// with `bench_swarm --size-mib 1024` (docs/benchmarks.md, 2026-12-06 21:29–21:54), the
/// median of ten alternated runs each at 2 nodes: swarm 439 → 489 MiB/s, the whole
/// cluster's CPU 4.07 → 3.59 s/GiB; four each at 5 nodes: last node 14.0 → 13.0 s.
/// Control messages do not queue behind bulk answers: those go at
/// [`crate::quic::BULK_PRIORITY`].
pub fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(10_000))))
        .keep_alive_interval(Some(Duration::from_secs(2)))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(1024))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
        .stream_receive_window(quinn::VarInt::from_u32(16 << 20))
        .receive_window(quinn::VarInt::from_u32(64 << 20))
        .send_window(64 << 20)
        .send_fairness(false);
    Arc::new(transport)
}

/// The server side of a node's endpoint: requires a cluster certificate on
/// [`ALPN_CLUSTER`], accepts certificate-less joiners on [`ALPN_JOIN`]. Nobody is
/// revoked (see [`server_config_with`]).
///
/// # Errors
/// The identity does not form a valid rustls configuration.
pub fn server_config(identity: &TlsIdentity) -> Result<quinn::ServerConfig, TlsError> {
    server_config_with(identity, Revocation::new())
}

/// [`server_config`] that also refuses a client certificate naming a member
/// `revocation` says was removed.
///
/// # Errors
/// The identity does not form a valid rustls configuration.
pub fn server_config_with(
    identity: &TlsIdentity,
    revocation: Arc<Revocation>,
) -> Result<quinn::ServerConfig, TlsError> {
    let provider = provider();
    // allow_unauthenticated lets joiners (no certificate) complete the handshake; a
    // certificate that is presented must still chain to the cluster CA, so a peer of
    // another cluster is refused during the handshake. Certificate-less connections
    // are restricted to ALPN_JOIN by the accept loop.
    let inner = WebPkiClientVerifier::builder_with_provider(roots(&identity.ca_cert)?, provider.clone())
        .allow_unauthenticated()
        .build()?;
    let verifier = Arc::new(MemberClientVerifier { inner, revocation });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.cert.clone(), identity.ca_cert.clone()], identity.private_key())?;
    config.alpn_protocols = vec![ALPN_CLUSTER.to_vec(), ALPN_JOIN.to_vec()];
    // No session resumption: a resumed handshake verifies no certificate, so a member
    // removed (or whose certificate expired) since its last handshake would get back in.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(config).map_err(|error| TlsError::Quic(error.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(transport_config());
    Ok(server)
}

/// The client side for member-to-member connections. Nobody is revoked (see
/// [`client_config_with`]).
///
/// # Errors
/// The identity does not form a valid rustls configuration.
pub fn client_config(identity: &TlsIdentity) -> Result<quinn::ClientConfig, TlsError> {
    client_config_with(identity, Revocation::new())
}

/// [`client_config`] that also refuses a server certificate naming a member
/// `revocation` says was removed.
///
/// # Errors
/// The identity does not form a valid rustls configuration.
pub fn client_config_with(
    identity: &TlsIdentity,
    revocation: Arc<Revocation>,
) -> Result<quinn::ClientConfig, TlsError> {
    let provider = provider();
    let inner = WebPkiServerVerifier::builder_with_provider(roots(&identity.ca_cert)?, provider.clone())
        .build()
        .map_err(TlsError::Verifier)?;
    let verifier = Arc::new(MemberServerVerifier { inner, revocation });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![identity.cert.clone()], identity.private_key())?;
    config.alpn_protocols = vec![ALPN_CLUSTER.to_vec()];
    // Every handshake checks the server's certificate again (see server_config_with).
    config.resumption = rustls::client::Resumption::disabled();
    quic_client(config)
}

/// The client a joining node uses: no certificate, and the server's chain must end in
/// a CA whose fingerprint is `pin`.
///
/// # Errors
/// rustls refused the configuration.
pub fn join_client_config(pin: CaFingerprint) -> Result<quinn::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedCaVerifier { pin, provider: provider.clone() });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_JOIN.to_vec()];
    quic_client(config)
}

fn quic_client(config: rustls::ClientConfig) -> Result<quinn::ClientConfig, TlsError> {
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(config).map_err(|error| TlsError::Quic(error.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(transport_config());
    Ok(client)
}

/// Accepts a server only if its chain carries the pinned CA and the leaf is signed by
/// that CA for [`CLUSTER_SERVER_NAME`].
#[derive(Debug)]
struct PinnedCaVerifier {
    pin: CaFingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates.iter().find(|cert| CaFingerprint::of(cert) == self.pin) else {
            return Err(rustls::Error::General(format!(
                "the seed's cluster CA does not match the join token (expected CA fingerprint {}); \
                 is the token for this cluster?",
                self.pin.0
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|error| rustls::Error::General(error.to_string()))?;
        let name =
            ServerName::try_from(CLUSTER_SERVER_NAME).map_err(|error| rustls::Error::General(error.to_string()))?;
        inner.verify_server_cert(end_entity, &[], &name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The certificate a node's HTTPS API presents, swappable while the server runs (a
/// renewed certificate takes effect on the next handshake). Until one is installed,
/// handshakes fail: the API is never served without TLS by accident.
#[derive(Debug, Default)]
pub struct ApiCertificate {
    current: std::sync::RwLock<Option<Arc<rustls::sign::CertifiedKey>>>,
}

impl ApiCertificate {
    /// Installs `cert_pem` (the API certificate), chained to `ca_pem`, with `key_pem`.
    ///
    /// # Errors
    /// A PEM text is corrupt or the key does not fit the provider.
    pub fn install(&self, cert_pem: &str, ca_pem: &str, key_pem: &str) -> Result<(), crate::pki::PkiError> {
        use rustls::pki_types::pem::PemObject;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|error| crate::pki::PkiError::Pem { what: "API key", reason: error.to_string() })?;
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|error| crate::pki::PkiError::Pem { what: "API key", reason: error.to_string() })?;
        let chain = vec![crate::pki::cert_from_pem(cert_pem)?, crate::pki::cert_from_pem(ca_pem)?];
        let certified = Arc::new(rustls::sign::CertifiedKey::new(chain, signing));
        // A poisoned lock only means a panic elsewhere mid-swap; the value is whole.
        let mut current = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = Some(certified);
        Ok(())
    }

    /// Whether a certificate is installed.
    pub fn is_ready(&self) -> bool {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
    }
}

impl rustls::server::ResolvesServerCert for ApiCertificate {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// The rustls configuration of a node's HTTPS API: TLS 1.2 and 1.3 (the AWS CLI and
/// older tools still offer 1.2), HTTP/1.1, the certificate from `certificate`.
///
/// # Errors
/// rustls refused the configuration.
pub fn api_server_config(certificate: Arc<ApiCertificate>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
