//! Cluster membership as replicated: who is in the cluster, where, with which tags.
//!
//! Voter/agent roles are not stored here: the voter set is Raft's own membership
//! configuration, and every reader derives a member's role from it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::NodeId;
use serde::{Deserialize, Serialize};

use super::ids::UnixMillis;

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Assigned at join, never reused.
    pub id: NodeId,
    /// QUIC address (`--listen`).
    pub listen: SocketAddr,
    /// HTTP API address (`--api`).
    pub api: SocketAddr,
    /// `--tag KEY=VALUE` pairs; deployment groups select targets by them.
    pub tags: BTreeMap<String, String>,
    /// When it joined.
    pub joined_at: UnixMillis,
    /// `--advertise-address` (feature level 8): where other hosts and routers reach
    /// its services; `None` means the IP of `listen` (see [`Member::address`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<IpAddr>,
    /// The on-premises instance it holds (`--instance-name`, feature level 15): while it
    /// does, its tags are the instance's (see [`crate::model::instances`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
}

impl Member {
    /// The member as recorded from `spec`; the instance it names is taken by
    /// [`crate::ClusterState`]'s apply, which sets `instance_name`.
    pub fn from_spec(id: NodeId, spec: &MemberSpec, joined_at: UnixMillis) -> Self {
        Self {
            id,
            listen: spec.listen,
            api: spec.api,
            tags: spec.tags.clone(),
            joined_at,
            advertise: spec.advertise,
            instance_name: None,
        }
    }

    /// Its advertised address: `--advertise-address`, else the IP of `--listen`.
    pub fn address(&self) -> IpAddr {
        self.advertise.unwrap_or_else(|| self.listen.ip())
    }
}

/// A join token as the cluster remembers it: only its hash, never the secret.
///
/// The fields after `description` came with feature level 4 and are left out of the
/// encoding while unset, so a record without them reads and writes as before.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    /// BLAKE3 of the token's secret part, hex.
    pub secret_hash: String,
    /// After this instant the token is refused; `None` never expires.
    pub expires_at: Option<UnixMillis>,
    /// Free text: who minted it and why.
    pub description: String,
    /// How many nodes may join with it; `None` is no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    /// How many nodes joined with it (counted from feature level 4 on).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uses: u32,
    /// When it was added; `None` when it was added below feature level 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<UnixMillis>,
    /// Who created it (for audit); none for the bootstrap token and below feature level 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Actor>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// Why a join token admits no more nodes; the text goes back to the joining node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinTokenRefusal {
    /// Past its expiry.
    #[error("the join token expired {seconds_ago} s ago; create a new one with `fleetmesh cluster create-join-token`")]
    Expired {
        /// How long ago, in whole seconds.
        seconds_ago: u64,
    },
    /// Used as often as it may be.
    #[error(
        "the join token {token_id} was used {max_uses} time(s), its --max-uses; create a new one with \
         `fleetmesh cluster create-join-token`"
    )]
    UsedUp {
        /// The token.
        token_id: String,
        /// Its limit.
        max_uses: u32,
    },
}

impl JoinTokenRecord {
    /// The token's id: `jt-` and the first 16 hex digits of its secret's hash. Every
    /// record has one, also those written before ids existed, and it tells nothing about
    /// the secret.
    pub fn id(&self) -> String {
        format!("jt-{}", self.secret_hash.get(..16).unwrap_or(&self.secret_hash))
    }

    /// Why the token admits no node at `now`, or `None` when it does.
    pub fn refusal(&self, now: UnixMillis) -> Option<JoinTokenRefusal> {
        if let Some(expires_at) = self.expires_at {
            if now > expires_at {
                return Some(JoinTokenRefusal::Expired { seconds_ago: now.millis_since(expires_at) / 1000 });
            }
        }
        match self.max_uses {
            Some(max_uses) if self.uses >= max_uses => Some(JoinTokenRefusal::UsedUp { token_id: self.id(), max_uses }),
            _ => None,
        }
    }
}

/// The cluster certificate authority, as kept in the replicated state. Signing and
/// fingerprints are in `fleetmesh_transport::pki` (`CaAuthority`).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterCa {
    /// Random id of the cluster; part of the CA's subject.
    pub cluster_id: String,
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA private key (PKCS#8), PEM, in clear: empty when the key is sealed (clusters
    /// created before [`crate::FeatureLevel::SEALED_CA`] hold it in clear until the leader
    /// seals it).
    pub key_pem: String,
    /// The CA private key sealed under the voters' seal key (`fleetmesh_transport::seal`),
    /// which is never replicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_key: Option<String>,
}

impl ClusterCa {
    /// Whether the private key is sealed.
    pub fn is_sealed(&self) -> bool {
        self.sealed_key.is_some()
    }
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClusterCa")
            .field("cluster_id", &self.cluster_id)
            .field("key_pem", &"<redacted>")
            .field("sealed", &self.sealed_key.is_some())
            .finish_non_exhaustive()
    }
}

/// Cluster-wide facts fixed at bootstrap (or changed only by explicit commands).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The cluster CA, private key included: this struct is replicated to voters only.
    pub ca: ClusterCa,
    /// BLAKE3 of the admin token, hex. The API compares hashes only.
    pub admin_token_hash: String,
    /// Join tokens that are accepted.
    pub join_tokens: Vec<JoinTokenRecord>,
    /// How many voters the leader keeps (`--voters` of the first node).
    pub voters_desired: u32,
    /// BLAKE3 of the read-only token (reads only: dashboards, scripts), hex; none until
    /// one is created ([`crate::Command::SetApiToken`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_token_hash: Option<String>,
    /// BLAKE3 of the metrics token (`/metrics` only: Prometheus), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_token_hash: Option<String>,
    /// When the cluster was created.
    pub created_at: UnixMillis,
    /// The AWS protocol's access keys ([`crate::FeatureLevel::AWS_PROTOCOL`]), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_keys: Vec<AccessKeyRecord>,
    /// The region in the ARNs the AWS protocol shows (`node --aws-region` of the first
    /// node); `None` is [`DEFAULT_AWS_REGION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    /// The account in those ARNs (`--aws-account-id`); `None` is [`DEFAULT_AWS_ACCOUNT_ID`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_account_id: Option<String>,
}

/// The region of a cluster's ARNs unless `--aws-region` said otherwise.
pub const DEFAULT_AWS_REGION: &str = "us-east-1";
/// The account of a cluster's ARNs unless `--aws-account-id` said otherwise.
pub const DEFAULT_AWS_ACCOUNT_ID: &str = "000000000000";

/// An access key of the AWS protocol (SigV4): the id is public, the secret is sealed
/// under the voters' CA seal key (`fleetmesh_transport::seal`, context
/// [`AccessKeyRecord::seal_context`]), so a copy of the log or of a snapshot does not
/// carry a usable secret. The secret is shown once, when the key is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    /// `AKIA` and 16 upper-case letters and digits, as AWS's.
    pub access_key_id: String,
    /// The secret, sealed.
    pub sealed_secret: String,
    /// When it was created (set by `apply`).
    #[serde(default)]
    pub created_at: UnixMillis,
    /// Who created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Actor>,
}

impl AccessKeyRecord {
    /// The associated data its secret is sealed under: the key id and the cluster's, so a
    /// sealed secret does not open as another key's or in another cluster.
    pub fn seal_context(cluster_id: &str, access_key_id: &str) -> Vec<u8> {
        format!("fleetmesh-access-key:{cluster_id}:{access_key_id}").into_bytes()
    }

    /// Whether `id` has the form of an access key id.
    pub fn is_id(id: &str) -> bool {
        id.len() == 20
            && id.starts_with("AKIA")
            && id.bytes().all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit())
    }
}

/// The API's tokens, by what they may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiTokenKind {
    /// Everything (`DIR/admin-token` on the first node).
    Admin,
    /// Reads only: `Get*`, `List*`, `GET` paths and `/metrics`.
    ReadOnly,
    /// `/metrics` only (`DIR/metrics-token` on the first node).
    Metrics,
}

impl ApiTokenKind {
    /// The name operators use (`--kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::ReadOnly => "read-only",
            Self::Metrics => "metrics",
        }
    }
}

impl std::fmt::Display for ApiTokenKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl ClusterInfo {
    /// `arn:aws:codedeploy:<region>:<account>:<resource>`, with this cluster's region and
    /// account.
    pub fn arn(&self, resource: &str) -> String {
        format!("arn:aws:codedeploy:{}:{}:{resource}", self.region(), self.account_id())
    }

    /// The cluster's AWS region (`node --aws-region`, else [`DEFAULT_AWS_REGION`]).
    pub fn region(&self) -> &str {
        self.aws_region.as_deref().unwrap_or(DEFAULT_AWS_REGION)
    }

    /// The cluster's AWS account id (`node --aws-account-id`, else [`DEFAULT_AWS_ACCOUNT_ID`]).
    pub fn account_id(&self) -> &str {
        self.aws_account_id.as_deref().unwrap_or(DEFAULT_AWS_ACCOUNT_ID)
    }

    /// The hash of the token of `kind`, if there is one.
    pub fn token_hash(&self, kind: ApiTokenKind) -> Option<&str> {
        match kind {
            ApiTokenKind::Admin => Some(&self.admin_token_hash),
            ApiTokenKind::ReadOnly => self.read_only_token_hash.as_deref(),
            ApiTokenKind::Metrics => self.metrics_token_hash.as_deref(),
        }
    }
}

/// Who made a write, as the resources it creates or changes record it (for audit): the
/// kind of credential and a short id of it, never the secret. An API token is
/// `<kind>-token:<id>`, where the id is the first 8 hex digits of the BLAKE3 hash of the
/// token (`printf %s "$TOKEN" | b3sum | cut -c1-8`), so a rotated token shows as another
/// id. Later credentials (access keys) name themselves the same way.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor(pub String);

impl Actor {
    /// Hex digits of the token hash an actor shows.
    pub const ID_DIGITS: usize = 8;

    /// The holder of the API token of `kind` whose BLAKE3 hash (hex) is `hash`.
    pub fn api_token(kind: ApiTokenKind, hash: &str) -> Self {
        let id: String = hash.chars().take(Self::ID_DIGITS).collect();
        Self(format!("{kind}-token:{id}"))
    }

    /// The holder of the access key `access_key_id` (the AWS protocol).
    pub fn access_key(access_key_id: &str) -> Self {
        Self(format!("access-key:{access_key_id}"))
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// What a joining node asks to be recorded as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSpec {
    /// QUIC address.
    pub listen: SocketAddr,
    /// HTTP API address.
    pub api: SocketAddr,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// `--advertise-address`, when it differs from the listen IP or was given
    /// ([`crate::FeatureLevel::TRAFFIC_ROUTES`]; left out of the encoding when `None`,
    /// so older releases read the spec as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<IpAddr>,
    /// `--instance-name`: the on-premises instance the node takes
    /// ([`crate::FeatureLevel::AWS_PROTOCOL`]; left out of the encoding when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
}

impl MemberSpec {
    /// The spec as a cluster at `level` may record it: below
    /// [`crate::FeatureLevel::TRAFFIC_ROUTES`] without the advertised address, which
    /// older voters would drop (their states would differ).
    #[must_use]
    pub fn for_level(mut self, level: crate::FeatureLevel) -> Self {
        if level < crate::FeatureLevel::TRAFFIC_ROUTES {
            self.advertise = None;
        }
        if level < crate::FeatureLevel::AWS_PROTOCOL {
            self.instance_name = None;
        }
        self
    }
}
