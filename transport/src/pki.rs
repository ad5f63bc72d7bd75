//! The cluster PKI: one CA per cluster, one certificate per node.
//!
//! The first node creates the CA. Its private key lives only in the replicated state,
//! which only voters hold, sealed under a key only voters hold ([`crate::seal`]), so
//! only voters can sign. A joining node generates its own
//! Ed25519 key, sends the public half, and gets back a certificate naming
//! `node-<id>.fleetmesh` (and `cluster.fleetmesh`, which a joiner that does not yet know
//! the seed's id checks instead). Node private keys never leave their node.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SignatureAlgorithm,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use crate::NodeId;

/// The DNS name every node certificate carries besides its own, so a joiner can check a
/// seed's certificate before it knows the seed's node id.
pub const CLUSTER_SERVER_NAME: &str = "cluster.fleetmesh";

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused to build or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// Stored PEM text could not be read back.
    #[error("stored {what} is not valid PEM: {reason}")]
    Pem {
        /// Which object.
        what: &'static str,
        /// Parser message.
        reason: String,
    },
    /// A public key of the wrong size was offered for signing.
    #[error("node public key must be 32 bytes of Ed25519, got {0} bytes")]
    PublicKey(usize),
    /// An API public key of the wrong size was offered for signing.
    #[error("API public key must be 65 bytes of uncompressed ECDSA P-256, got {0} bytes")]
    ApiPublicKey(usize),
    /// A name for an API certificate is neither an IP address nor a DNS name.
    #[error("{name:?} is not an IP address or a DNS name (letters, digits, '-', '.', at most 253 characters)")]
    ApiName {
        /// The name as given.
        name: String,
    },
    /// Too many names for one API certificate.
    #[error("an API certificate takes at most {max} names, got {count}")]
    ApiNameCount {
        /// Names given.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// A validity window that is empty or out of range.
    #[error("certificate validity {not_before}..{not_after} (Unix seconds) is not a valid window")]
    Validity {
        /// Start, Unix seconds.
        not_before: i64,
        /// End, Unix seconds.
        not_after: i64,
    },
}

/// Most names (`--api-san`s plus the API address and loopback) one API certificate carries.
pub const API_NAMES_MAX: usize = 32;

/// When a signed certificate is valid, in Unix seconds. The caller reads the clock; the
/// PKI does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validity {
    /// First second of validity.
    pub not_before: i64,
    /// Last second of validity.
    pub not_after: i64,
}

impl Validity {
    fn apply(self, params: &mut CertificateParams) -> Result<(), PkiError> {
        let invalid = || PkiError::Validity { not_before: self.not_before, not_after: self.not_after };
        if self.not_after <= self.not_before {
            return Err(invalid());
        }
        params.not_before = time::OffsetDateTime::from_unix_timestamp(self.not_before).map_err(|_| invalid())?;
        params.not_after = time::OffsetDateTime::from_unix_timestamp(self.not_after).map_err(|_| invalid())?;
        Ok(())
    }
}

/// Checks the names of an API certificate: each an IP address or a DNS name.
///
/// # Errors
/// A name that is neither, or more than [`API_NAMES_MAX`] names.
pub fn check_api_names(names: &[String]) -> Result<(), PkiError> {
    if names.len() > API_NAMES_MAX {
        return Err(PkiError::ApiNameCount { count: names.len(), max: API_NAMES_MAX });
    }
    for name in names {
        if name.parse::<std::net::IpAddr>().is_ok() {
            continue;
        }
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'*')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(PkiError::ApiName { name: name.chars().take(64).collect() });
        }
    }
    Ok(())
}

/// BLAKE3 of the CA certificate (DER), hex: what a join token pins, like kubeadm's
/// discovery hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaFingerprint(pub String);

impl CaFingerprint {
    /// Fingerprint of a DER certificate.
    pub fn of(cert_der: &[u8]) -> Self {
        Self(blake3::hash(cert_der).to_hex().to_string())
    }
}

pub use fleetmesh_state::model::members::ClusterCa;

fn ca_params(cluster_id: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("fleetmesh cluster {cluster_id}"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

/// What the cluster CA does: create itself, name itself (the fingerprint a join token
/// pins) and sign node certificates. A trait because [`ClusterCa`] is replicated data
/// defined with the cluster state (`fleetmesh-state`), which does no cryptography.
pub trait CaAuthority: Sized {
    /// Creates a new CA for a new cluster.
    ///
    /// # Errors
    /// Key generation or self-signing failed.
    fn generate(cluster_id: &str) -> Result<Self, PkiError>;

    /// The CA certificate, DER.
    ///
    /// # Errors
    /// The stored PEM is corrupt.
    fn cert_der(&self) -> Result<CertificateDer<'static>, PkiError>;

    /// What a join token pins.
    ///
    /// # Errors
    /// The stored PEM is corrupt.
    fn fingerprint(&self) -> Result<CaFingerprint, PkiError> {
        Ok(CaFingerprint::of(&self.cert_der()?))
    }

    /// Signs a certificate for node `id` over its Ed25519 public key (32 raw bytes)
    /// that never expires (rcgen's default window): for tests and tools; nodes get
    /// [`CaAuthority::sign_node_valid`]'s.
    ///
    /// # Errors
    /// A malformed public key or a signing failure.
    fn sign_node(&self, id: NodeId, public_key: &[u8]) -> Result<String, PkiError>;

    /// Signs a certificate for node `id` over its Ed25519 public key (32 raw bytes),
    /// valid for `validity` only.
    ///
    /// # Errors
    /// A malformed public key, an empty validity or a signing failure.
    fn sign_node_valid(&self, id: NodeId, public_key: &[u8], validity: Validity) -> Result<String, PkiError>;

    /// Signs a server certificate for node `id`'s HTTPS API over its ECDSA P-256 public
    /// key (65 raw bytes, uncompressed), naming `names` (IP addresses and DNS names).
    ///
    /// # Errors
    /// A malformed key, a bad name, an empty validity or a signing failure.
    fn sign_api(&self, id: NodeId, public_key: &[u8], names: &[String], validity: Validity)
        -> Result<String, PkiError>;
}

impl CaAuthority for ClusterCa {
    fn generate(cluster_id: &str) -> Result<Self, PkiError> {
        // ECDSA P-256 rather than Ed25519: the API's certificates chain to this CA, and
        // browsers verify no Ed25519 signatures. Older clusters keep their Ed25519 CA.
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = ca_params(cluster_id).self_signed(&key)?;
        Ok(Self {
            cluster_id: cluster_id.to_string(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            sealed_key: None,
        })
    }

    fn cert_der(&self) -> Result<CertificateDer<'static>, PkiError> {
        cert_from_pem(&self.cert_pem)
    }

    fn sign_node(&self, id: NodeId, public_key: &[u8]) -> Result<String, PkiError> {
        self.node_cert(id, public_key, None)
    }

    fn sign_node_valid(&self, id: NodeId, public_key: &[u8], validity: Validity) -> Result<String, PkiError> {
        self.node_cert(id, public_key, Some(validity))
    }

    fn sign_api(
        &self,
        id: NodeId,
        public_key: &[u8],
        names: &[String],
        validity: Validity,
    ) -> Result<String, PkiError> {
        if public_key.len() != 65 || public_key.first() != Some(&4) {
            return Err(PkiError::ApiPublicKey(public_key.len()));
        }
        check_api_names(names)?;
        let issuer = self.issuer()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, format!("fleetmesh API of {}", id.server_name()));
        params.distinguished_name = name;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        validity.apply(&mut params)?;
        let cert = params.signed_by(&RawPublicKey(public_key, &rcgen::PKCS_ECDSA_P256_SHA256), &issuer)?;
        Ok(cert.pem())
    }
}

trait IssuerOf {
    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError>;

    /// A node certificate for `id`, valid for `validity` (`None`: rcgen's default, which
    /// in practice never expires).
    fn node_cert(&self, id: NodeId, public_key: &[u8], validity: Option<Validity>) -> Result<String, PkiError> {
        if public_key.len() != 32 {
            return Err(PkiError::PublicKey(public_key.len()));
        }
        let issuer = self.issuer()?;
        let mut params = CertificateParams::new(vec![id.server_name(), CLUSTER_SERVER_NAME.to_string()])?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, id.server_name());
        params.distinguished_name = name;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        if let Some(validity) = validity {
            validity.apply(&mut params)?;
        }
        let cert = params.signed_by(&RawPublicKey(public_key, &rcgen::PKCS_ED25519), &issuer)?;
        Ok(cert.pem())
    }
}

impl IssuerOf for ClusterCa {
    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem)
            .map_err(|error| PkiError::Pem { what: "CA key", reason: error.to_string() })?;
        Ok(Issuer::new(ca_params(&self.cluster_id), ca_key))
    }
}

/// A raw public key of a known algorithm: what a node sends to have it certified.
struct RawPublicKey<'a>(&'a [u8], &'static SignatureAlgorithm);

impl PublicKeyData for RawPublicKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.1
    }
}

/// The key of a node's HTTPS API: ECDSA P-256, which every TLS client takes. Generated
/// on the node; only its public half is sent to be certified.
pub struct ApiKey {
    /// PKCS#8 private key, PEM.
    pub key_pem: String,
    /// Raw public key (65 bytes, uncompressed point).
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ApiKey").field("public_key", &hex::encode(&self.public_key)).finish_non_exhaustive()
    }
}

impl ApiKey {
    /// Generates a fresh P-256 key.
    ///
    /// # Errors
    /// Key generation failed.
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        Ok(Self { key_pem: key.serialize_pem(), public_key: key.public_key_raw().to_vec() })
    }

    /// Reads a stored key back.
    ///
    /// # Errors
    /// The text is not a PEM P-256 key.
    pub fn from_pem(key_pem: &str) -> Result<Self, PkiError> {
        let key =
            KeyPair::from_pem(key_pem).map_err(|error| PkiError::Pem { what: "API key", reason: error.to_string() })?;
        if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(PkiError::Pem { what: "API key", reason: "not an ECDSA P-256 key".to_string() });
        }
        Ok(Self { key_pem: key_pem.to_string(), public_key: key.public_key_raw().to_vec() })
    }
}

/// A node's own key pair, generated on the node.
pub struct NodeKey {
    /// PKCS#8 private key, PEM.
    pub key_pem: String,
    /// Raw Ed25519 public key (32 bytes), what the node sends when it joins.
    pub public_key: Vec<u8>,
}

impl NodeKey {
    /// Generates a fresh Ed25519 key.
    ///
    /// # Errors
    /// Key generation failed.
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        Ok(Self { key_pem: key.serialize_pem(), public_key: key.public_key_raw().to_vec() })
    }

    /// Reads a stored node key back (to have its certificate renewed).
    ///
    /// # Errors
    /// The text is not a PEM Ed25519 key.
    pub fn from_pem(key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)
            .map_err(|error| PkiError::Pem { what: "node key", reason: error.to_string() })?;
        if key.algorithm() != &rcgen::PKCS_ED25519 {
            return Err(PkiError::Pem { what: "node key", reason: "not an Ed25519 key".to_string() });
        }
        Ok(Self { key_pem: key_pem.to_string(), public_key: key.public_key_raw().to_vec() })
    }
}

/// What a node needs to speak mutual TLS in its cluster.
pub struct TlsIdentity {
    /// This node.
    pub node_id: NodeId,
    /// The cluster CA certificate (trust anchor), DER.
    pub ca_cert: CertificateDer<'static>,
    /// This node's certificate, DER.
    pub cert: CertificateDer<'static>,
    /// This node's private key.
    pub key: PrivatePkcs8KeyDer<'static>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TlsIdentity").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            node_id: self.node_id,
            ca_cert: self.ca_cert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsIdentity {
    /// Builds an identity from the PEM texts a node keeps in its data directory.
    ///
    /// # Errors
    /// Any PEM text is corrupt.
    pub fn from_pem(node_id: NodeId, ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|error| PkiError::Pem { what: "node key", reason: error.to_string() })?;
        Ok(Self { node_id, ca_cert: cert_from_pem(ca_pem)?, cert: cert_from_pem(cert_pem)?, key })
    }

    /// The private key in the form rustls takes.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// Parses one PEM certificate.
///
/// # Errors
/// The text is not a PEM certificate.
pub fn cert_from_pem(pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|error| PkiError::Pem { what: "certificate", reason: error.to_string() })
}

/// The node id named by a certificate that the cluster CA signed, if any.
///
/// Only call this on a certificate whose chain was verified: the name is trusted
/// because the CA put it there.
pub fn node_id_of(cert: &CertificateDer<'_>) -> Option<NodeId> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    parsed.valid_dns_names().find_map(NodeId::from_server_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_node_certificate_names_the_node() {
        let ca = ClusterCa::generate("test").expect("ca");
        let key = NodeKey::generate().expect("key");
        let cert_pem = ca.sign_node(NodeId(7), &key.public_key).expect("sign");
        let identity = TlsIdentity::from_pem(NodeId(7), &ca.cert_pem, &cert_pem, &key.key_pem).expect("identity");
        assert_eq!(node_id_of(&identity.cert), Some(NodeId(7)));
        assert_eq!(ca.fingerprint().expect("fp").0.len(), 64);
    }

    fn verify_api(ca: &ClusterCa, cert_pem: &str, name: &str, at_unix: u64) -> Result<(), rustls::Error> {
        use rustls::client::danger::ServerCertVerifier;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().expect("ca der")).expect("root");
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            crate::tls::provider(),
        )
        .build()
        .expect("verifier");
        let server = rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
        let now = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(at_unix));
        verifier.verify_server_cert(&cert_from_pem(cert_pem).expect("leaf"), &[], &server, &[], now).map(|_| ())
    }

    #[test]
    fn an_api_certificate_is_valid_for_its_names_and_window_only() {
        let ca = ClusterCa::generate("test").expect("ca");
        let key = ApiKey::generate().expect("key");
        let names = vec!["10.0.0.1".to_string(), "localhost".to_string(), "api.example.com".to_string()];
        let validity = Validity { not_before: 1_000_000, not_after: 1_000_100 };
        let cert_pem = ca.sign_api(NodeId(3), &key.public_key, &names, validity).expect("sign");
        for name in &names {
            verify_api(&ca, &cert_pem, name, 1_000_050).unwrap_or_else(|error| panic!("{name}: {error}"));
        }
        assert!(verify_api(&ca, &cert_pem, "10.0.0.2", 1_000_050).is_err(), "another address");
        assert!(verify_api(&ca, &cert_pem, "evil.example.com", 1_000_050).is_err(), "another name");
        assert!(verify_api(&ca, &cert_pem, "10.0.0.1", 1_000_200).is_err(), "expired");
        assert_eq!(ApiKey::from_pem(&key.key_pem).expect("reload").public_key, key.public_key);
    }

    #[test]
    fn api_certificate_requests_out_of_bounds_are_refused() {
        let ca = ClusterCa::generate("test").expect("ca");
        let key = ApiKey::generate().expect("key");
        let ok = Validity { not_before: 0, not_after: 10 };
        let name = |text: &str| vec![text.to_string()];
        assert!(matches!(ca.sign_api(NodeId(1), &[4u8; 5], &name("a"), ok), Err(PkiError::ApiPublicKey(5))));
        assert!(matches!(
            ca.sign_api(NodeId(1), &key.public_key, &name("bad name"), ok),
            Err(PkiError::ApiName { .. })
        ));
        assert!(matches!(ca.sign_api(NodeId(1), &key.public_key, &name("-x.com"), ok), Err(PkiError::ApiName { .. })));
        let many: Vec<String> = (0..=API_NAMES_MAX).map(|index| format!("n{index}.example")).collect();
        assert!(matches!(ca.sign_api(NodeId(1), &key.public_key, &many, ok), Err(PkiError::ApiNameCount { .. })));
        let backwards = Validity { not_before: 10, not_after: 10 };
        assert!(matches!(
            ca.sign_api(NodeId(1), &key.public_key, &name("a"), backwards),
            Err(PkiError::Validity { .. })
        ));
        let huge = Validity { not_before: 0, not_after: i64::MAX };
        assert!(matches!(ca.sign_api(NodeId(1), &key.public_key, &name("a"), huge), Err(PkiError::Validity { .. })));
        let node_key = NodeKey::generate().expect("node key");
        assert!(ApiKey::from_pem(&node_key.key_pem).is_err(), "an Ed25519 key is not an API key");
    }

    #[test]
    fn wrong_public_key_size_is_refused() {
        let ca = ClusterCa::generate("test").expect("ca");
        assert!(matches!(ca.sign_node(NodeId(1), &[0u8; 5]), Err(PkiError::PublicKey(5))));
    }
}
