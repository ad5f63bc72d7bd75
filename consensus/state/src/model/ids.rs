//! Identifier newtypes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch, stamped by the leader when it proposes a command
/// (so `apply` never reads a clock and replays identically).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// Seconds as a float, the way the AWS CLI prints timestamps.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn millis_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A deployment id in CodeDeploy's shape: `d-` and nine characters of `[A-Z0-9]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeploymentId(pub String);

impl DeploymentId {
    /// Builds an id from 9 random bytes drawn by the caller (so the leader's seeded RNG
    /// decides ids in simulation).
    pub fn from_random(bytes: [u8; 9]) -> Self {
        const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let text: String = bytes.iter().map(|byte| ALPHABET[usize::from(*byte) % 36] as char).collect();
        Self(format!("d-{text}"))
    }

    /// True when the text has the shape of a deployment id.
    pub fn is_well_formed(text: &str) -> bool {
        text.strip_prefix("d-").is_some_and(|rest| {
            rest.len() == 9 && rest.bytes().all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit())
        })
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A 32-byte BLAKE3 hash, printed and serialized as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// BLAKE3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", &self.to_hex()[..12])
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

/// Why text is not a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not 64 hex digits")]
pub struct HashParseError(pub String);

impl FromStr for Hash32 {
    type Err = HashParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        if text.len() != 64 {
            return Err(HashParseError(text.to_string()));
        }
        hex::decode_to_slice(text, &mut bytes).map_err(|_| HashParseError(text.to_string()))?;
        Ok(Self(bytes))
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The id of a revision: BLAKE3 of its canonical manifest.
pub type RevisionId = Hash32;

/// The id of a chunk: BLAKE3 of its bytes.
pub type ChunkHash = Hash32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_have_codedeploy_shape() {
        let id = DeploymentId::from_random([0, 1, 2, 25, 26, 35, 36, 200, 255]);
        assert!(DeploymentId::is_well_formed(&id.0), "{id}");
        assert!(!DeploymentId::is_well_formed("d-abc"));
    }

    #[test]
    fn hash_hex_round_trips() {
        let hash = Hash32::of(b"fleetmesh");
        let json = serde_json::to_string(&hash).expect("json");
        assert_eq!(json.len(), 66);
        assert_eq!(serde_json::from_str::<Hash32>(&json).expect("parse"), hash);
        assert!("zz".parse::<Hash32>().is_err());
    }
}
