//! The seal on the cluster CA's private key.
//!
//! The replicated state (and so the Raft log, its snapshots and any copy of them) holds
//! the CA key encrypted with ChaCha20-Poly1305 under a 256-bit seal key that is never
//! replicated: each voter keeps it in its data directory (`DIR/ca-seal-key`, 0600) and
//! the leader hands it to a node before making it a voter. The cluster id is the
//! associated data, so a sealed key does not open under another cluster's name.
//!
//! ```text
//!   ClusterCa { cert_pem, key_pem: "", sealed_key: "chacha20poly1305:<hex nonce ‖ ciphertext ‖ tag>" }
//!                                            └── CaSealKey::unseal ──▶ ClusterCa { key_pem: "-----BEGIN PRIVATE KEY…" }
//! ```

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::pki::ClusterCa;

/// What a sealed key starts with: the algorithm, so another can follow.
const SCHEME: &str = "chacha20poly1305:";

/// Why sealing or unsealing failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The system's random source failed.
    #[error("the system random source failed")]
    Random,
    /// A seal key that is not 64 hex digits.
    #[error("a CA seal key is 64 hex digits (32 bytes)")]
    KeyFormat,
    /// The CA is sealed already (sealing twice would lose the key).
    #[error("the cluster CA key is sealed already")]
    AlreadySealed,
    /// The CA carries no sealed key.
    #[error("the cluster CA key is not sealed")]
    NotSealed,
    /// The sealed text is not of a known scheme or not hex.
    #[error("the sealed CA key is malformed")]
    Malformed,
    /// Authentication failed: another seal key, or altered text.
    #[error(
        "the CA seal key does not open the cluster's sealed CA key (another cluster's seal key, or a damaged one)"
    )]
    WrongKey,
}

/// A 256-bit key that seals the CA's private key.
#[derive(Clone, PartialEq, Eq)]
pub struct CaSealKey([u8; 32]);

impl std::fmt::Debug for CaSealKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("CaSealKey(<redacted>)")
    }
}

impl CaSealKey {
    /// A new random key.
    ///
    /// # Errors
    /// The system random source failed.
    pub fn generate() -> Result<Self, SealError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| SealError::Random)?;
        Ok(Self(bytes))
    }

    /// Reads the hex form ([`CaSealKey::to_hex`]); surrounding whitespace is ignored.
    ///
    /// # Errors
    /// Not 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, SealError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SealError::KeyFormat)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| SealError::KeyFormat)?;
        Ok(Self(bytes))
    }

    /// A secret derived from this key for `label` (HMAC-SHA256 of the label): the same
    /// on every node that holds the key, and useless for opening what the key seals.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let mut secret = [0u8; 32];
        secret.copy_from_slice(ring::hmac::sign(&key, label).as_ref());
        secret
    }

    /// 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn aead(&self) -> Result<LessSafeKey, SealError> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &self.0).map_err(|_| SealError::KeyFormat)?;
        Ok(LessSafeKey::new(unbound))
    }

    /// `ca` with its private key sealed: `key_pem` emptied, `sealed_key` set.
    ///
    /// # Errors
    /// The CA is sealed already, or the random source failed.
    pub fn seal(&self, ca: &ClusterCa) -> Result<ClusterCa, SealError> {
        if ca.sealed_key.is_some() {
            return Err(SealError::AlreadySealed);
        }
        let sealed = self.seal_bytes(ca.key_pem.as_bytes(), ca.cluster_id.as_bytes())?;
        Ok(ClusterCa {
            cluster_id: ca.cluster_id.clone(),
            cert_pem: ca.cert_pem.clone(),
            key_pem: String::new(),
            sealed_key: Some(sealed),
        })
    }

    /// `ca` with its private key in clear again (in memory only: never replicate it).
    ///
    /// # Errors
    /// The CA is not sealed, the sealed text is malformed, or this key does not open it.
    pub fn unseal(&self, ca: &ClusterCa) -> Result<ClusterCa, SealError> {
        let sealed = ca.sealed_key.as_deref().ok_or(SealError::NotSealed)?;
        let plain = self.open_bytes(sealed, ca.cluster_id.as_bytes())?;
        let key_pem = String::from_utf8(plain).map_err(|_| SealError::Malformed)?;
        Ok(ClusterCa { cluster_id: ca.cluster_id.clone(), cert_pem: ca.cert_pem.clone(), key_pem, sealed_key: None })
    }

    /// `plain` sealed under this key, bound to `context` (the associated data: the same
    /// text does not open under another context): `chacha20poly1305:<hex nonce ‖
    /// ciphertext ‖ tag>`. The CA key uses the cluster id as context; other secrets kept in
    /// the replicated state (the API's access keys) use their own.
    ///
    /// # Errors
    /// The random source failed.
    pub fn seal_bytes(&self, plain: &[u8], context: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        // A random 96-bit nonce per seal: a cluster seals a few secrets, not billions.
        SystemRandom::new().fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut text = plain.to_vec();
        self.aead()?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut text)
            .map_err(|_| SealError::Random)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&text);
        Ok(format!("{SCHEME}{}", hex::encode(sealed)))
    }

    /// Opens what [`CaSealKey::seal_bytes`] sealed under `context`.
    ///
    /// # Errors
    /// The text is malformed, or this key (or this context) does not open it.
    pub fn open_bytes(&self, sealed: &str, context: &[u8]) -> Result<Vec<u8>, SealError> {
        let sealed = sealed.strip_prefix(SCHEME).ok_or(SealError::Malformed)?;
        let mut bytes = hex::decode(sealed).map_err(|_| SealError::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Malformed);
        }
        let mut text = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| SealError::Malformed)?;
        let plain =
            self.aead()?.open_in_place(nonce, Aad::from(context), &mut text).map_err(|_| SealError::WrongKey)?;
        Ok(plain.to_vec())
    }

    /// Whether this key opens `ca`'s sealed key.
    pub fn opens(&self, ca: &ClusterCa) -> bool {
        self.unseal(ca).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::CaAuthority;
    use crate::NodeId;

    #[test]
    fn a_sealed_ca_key_opens_with_its_seal_key_only_and_still_signs() {
        let ca = ClusterCa::generate("c1").expect("ca");
        let key = CaSealKey::generate().expect("key");
        let sealed = key.seal(&ca).expect("seal");
        assert!(sealed.key_pem.is_empty());
        assert!(!sealed.sealed_key.as_deref().unwrap_or_default().contains("PRIVATE KEY"));
        assert_eq!(key.seal(&sealed), Err(SealError::AlreadySealed));
        let opened = key.unseal(&sealed).expect("unseal");
        assert_eq!(opened, ca);
        opened.sign_node(NodeId(2), &[7u8; 32]).expect("an unsealed CA signs");
        let other = CaSealKey::generate().expect("key");
        assert_eq!(other.unseal(&sealed), Err(SealError::WrongKey));
        // Bound to the cluster's name.
        let renamed = ClusterCa { cluster_id: "c2".into(), ..sealed.clone() };
        assert_eq!(key.unseal(&renamed), Err(SealError::WrongKey));
        assert_eq!(key.unseal(&ca), Err(SealError::NotSealed));
    }

    #[test]
    fn damaged_sealed_text_and_bad_keys_are_refused() {
        let ca = ClusterCa::generate("c1").expect("ca");
        let key = CaSealKey::generate().expect("key");
        let sealed = key.seal(&ca).expect("seal");
        let text = sealed.sealed_key.clone().unwrap_or_default();
        for damaged in ["", "chacha20poly1305:", "chacha20poly1305:zz", "aes:00", &text[..text.len() - 2]] {
            let damaged = ClusterCa { sealed_key: Some(damaged.to_string()), ..sealed.clone() };
            assert!(key.unseal(&damaged).is_err(), "{damaged:?}");
        }
        assert_eq!(CaSealKey::from_hex(&key.to_hex()), Ok(key));
        assert_eq!(CaSealKey::from_hex("abc"), Err(SealError::KeyFormat));
        assert_eq!(CaSealKey::from_hex(&"g".repeat(64)), Err(SealError::KeyFormat));
    }
}
