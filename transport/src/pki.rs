//! The cluster PKI: one CA per cluster, one certificate per node.
//!
//! The first node creates the CA. Its private key lives only in the replicated state,
//! which only voters hold, so only voters can sign. A joining node generates its own
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

    /// Signs a certificate for node `id` over its Ed25519 public key (32 raw bytes).
    ///
    /// # Errors
    /// A malformed public key or a signing failure.
    fn sign_node(&self, id: NodeId, public_key: &[u8]) -> Result<String, PkiError>;
}

impl CaAuthority for ClusterCa {
    fn generate(cluster_id: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let cert = ca_params(cluster_id).self_signed(&key)?;
        Ok(Self { cluster_id: cluster_id.to_string(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    fn cert_der(&self) -> Result<CertificateDer<'static>, PkiError> {
        cert_from_pem(&self.cert_pem)
    }

    fn sign_node(&self, id: NodeId, public_key: &[u8]) -> Result<String, PkiError> {
        if public_key.len() != 32 {
            return Err(PkiError::PublicKey(public_key.len()));
        }
        let ca_key = KeyPair::from_pem(&self.key_pem)
            .map_err(|error| PkiError::Pem { what: "CA key", reason: error.to_string() })?;
        let issuer = Issuer::new(ca_params(&self.cluster_id), ca_key);
        let mut params = CertificateParams::new(vec![id.server_name(), CLUSTER_SERVER_NAME.to_string()])?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, id.server_name());
        params.distinguished_name = name;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&Ed25519PublicKey(public_key), &issuer)?;
        Ok(cert.pem())
    }
}

struct Ed25519PublicKey<'a>(&'a [u8]);

impl PublicKeyData for Ed25519PublicKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ED25519
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

    #[test]
    fn wrong_public_key_size_is_refused() {
        let ca = ClusterCa::generate("test").expect("ca");
        assert!(matches!(ca.sign_node(NodeId(1), &[0u8; 5]), Err(PkiError::PublicKey(5))));
    }
}
