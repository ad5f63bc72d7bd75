//! The node-to-node protocol: what travels in a transport [`Message`] header.
//!
//! One request enum, one response enum, JSON-encoded. Unknown fields are ignored and
//! new fields carry `#[serde(default)]`, so a node of the next release can add to a
//! message without breaking this one; a request this release does not know is answered
//! with [`Response::Error`] naming it. Bulk bytes (chunks) travel in the message
//! payload, never in JSON.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fleetmesh_consensus::raft::{RaftRequest, RaftResponse};
use fleetmesh_model::{Operation, OperationError, Output};
use fleetmesh_state::model::ids::{ChunkHash, DeploymentId, RevisionId};
use fleetmesh_state::model::members::MemberSpec;
use fleetmesh_state::{FeatureLevel, Release, TargetReport};
use fleetmesh_transport::{Message, NodeId, Peer, Transport, TransportError};
use serde::{Deserialize, Serialize};

mod route_commands;
pub use route_commands::{CommandRouteWait, RouteCommandOutcome, ROUTE_COMMAND_TAIL_BYTES_MAX};

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Raft replication and elections (voters only).
    Raft(RaftRequest),
    /// A node asks to join (from a joiner, or forwarded by a member to the leader).
    Join(JoinRequest),
    /// An agent asks the leader for its assignments (long poll; also its heartbeat).
    Poll(PollRequest),
    /// An agent reports lifecycle progress to the leader.
    Report(Vec<TargetReport>),
    /// An HTTP API call forwarded to the leader (feature levels 1 and 2; kept for nodes
    /// of those releases).
    Api(ApiRequest),
    /// An API operation forwarded to the node that can answer it: a write to the
    /// leader, a read to a voter (feature level 3).
    Operation(OperationRequest),
    /// A revision's manifest (any node holding it answers).
    GetManifest {
        /// Revision.
        revision_id: RevisionId,
    },
    /// Chunks of one piece of a revision, from a peer that holds them.
    GetPiece {
        /// Revision.
        revision_id: RevisionId,
        /// Piece index in the revision's piece map.
        piece: u32,
        /// The chunks wanted (only those the asker lacks).
        chunks: Vec<ChunkHash>,
    },
    /// Which pieces of a revision the peer holds.
    GetHave {
        /// Revision.
        revision_id: RevisionId,
    },
    /// A member asks a voter to certify its HTTPS API key (nodes of this release; an
    /// older voter refuses the unknown request and the member asks again later).
    SignApiCertificate(ApiCertificateRequest),
    /// A member asks a voter to renew its node certificate (the one it speaks QUIC
    /// with) over the same key; an older voter refuses the unknown request.
    SignNodeCertificate(NodeCertificateRequest),
    /// The leader hands a node the CA seal key (hex) before making it a voter, or to
    /// every voter before it seals the CA of an older cluster. Accepted from a voter only.
    HoldCaSealKey {
        /// The key, 64 hex digits.
        key: SealKeyText,
    },
    /// An agent asks the leader to take it off its deployment's routes (`BlockTraffic`)
    /// or put it back on them (`AllowTraffic`); feature level 9, sent only for
    /// deployments with traffic control.
    Traffic(TrafficRequest),
    /// An agent asks a router how its latest run of `route_name`'s program went
    /// (`--command` routes, during a traffic event); an older router refuses it.
    RouteCommandOutcome {
        /// The route.
        route_name: String,
    },
}

/// What an agent sends for a `BlockTraffic` or `AllowTraffic` event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrafficRequest {
    /// The deployment whose routes.
    pub deployment_id: DeploymentId,
    /// True for `AllowTraffic`, false for `BlockTraffic`.
    pub allow: bool,
    /// The agent's latest report of this target, committed in the same entry before the
    /// traffic change: the leader's check that `ValidateService` passed sees what the
    /// agent saw (its queued copy of the same report is then ignored as stale).
    pub report: Option<TargetReport>,
}

/// What a member sends to have its node certificate renewed by the cluster CA.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeCertificateRequest {
    /// The node's Ed25519 public key (32 bytes, hex).
    pub public_key: String,
    /// How long the certificate should be valid, seconds.
    pub lifetime_secs: u64,
}

/// A CA seal key in transit, hex; never printed.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealKeyText(pub String);

impl std::fmt::Debug for SealKeyText {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("<redacted>")
    }
}

/// What a member sends to have its API key certified by the cluster CA.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiCertificateRequest {
    /// The API's ECDSA P-256 public key (65 bytes, uncompressed, hex).
    pub public_key: String,
    /// The names the certificate is for: IP addresses and DNS names.
    pub names: Vec<String>,
    /// How long the certificate should be valid, seconds.
    pub lifetime_secs: u64,
}

/// The answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Raft`].
    Raft(RaftResponse),
    /// Answer to [`Request::Join`].
    Join(JoinResponse),
    /// Answer to [`Request::Poll`].
    Poll(Box<PollResponse>),
    /// The request was handled.
    Ack,
    /// Answer to [`Request::Api`].
    Api(ApiResponse),
    /// Answer to [`Request::Operation`]: the operation's output or its error.
    Operation(Box<Result<Output, OperationError>>),
    /// A manifest as canonical JSON bytes, in the message payload.
    Manifest,
    /// Piece chunks in the payload, concatenated in the asked order; `have` is the
    /// sender's have-set (hex bitfield) so the asker learns it for free.
    Piece {
        /// Sender's have-set.
        have: String,
    },
    /// The peer has too many uploads in flight; ask another.
    Busy,
    /// Have-set as a hex bitfield.
    Have {
        /// Bitfield.
        have: String,
    },
    /// Answer to [`Request::SignApiCertificate`]: the certificate, PEM.
    ApiCertificate(String),
    /// Answer to [`Request::SignNodeCertificate`]: the certificate, PEM.
    NodeCertificate(String),
    /// Answer to [`Request::Traffic`]: the change is committed; routers stop new
    /// connections to a blocked target and end the open ones after `drain_seconds` (the
    /// longest drain time of the deployment's routes).
    Traffic {
        /// Seconds open connections may still run on a blocked target.
        drain_seconds: u32,
        /// The deployment's `--command` routes: whose runs the agent waits for (left
        /// out while none; an older leader sends none, and its agents wait for none).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        command_routes: Vec<CommandRouteWait>,
    },
    /// Answer to [`Request::Traffic`]: the cluster state refuses the change (the
    /// target is not in progress, has not passed `ValidateService`, ...); retrying
    /// will not help.
    TrafficRefused(String),
    /// Answer to [`Request::RouteCommandOutcome`]: the router's latest finished run,
    /// none while it has not finished one (or does not serve the route).
    RouteCommandOutcome(Option<RouteCommandOutcome>),
    /// This node is not the leader; try the hinted one.
    NotLeader {
        /// The leader this node knows of.
        leader: Option<LeaderHint>,
    },
    /// The request failed; the text says why.
    Error(String),
    /// Answer to [`Request::Traffic`] (level 14): the change is committed and the host
    /// deregistered from an ELBv2 target group that still drains it; ask again. The
    /// text says which group.
    TrafficDraining(String),
}

/// Where the leader is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderHint {
    /// Leader id.
    pub id: NodeId,
    /// Its QUIC address.
    pub listen: SocketAddr,
}

impl LeaderHint {
    /// As a transport peer.
    pub fn peer(self) -> Peer {
        Peer { id: self.id, addr: self.listen }
    }
}

/// A node asking to join.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The secret part of the join token.
    pub secret: String,
    /// The joiner's Ed25519 public key (32 bytes, hex).
    pub public_key: String,
    /// Its addresses and tags.
    pub spec: MemberSpec,
}

/// What a joiner gets.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum JoinResponse {
    /// Admitted.
    Admitted {
        /// Its new id.
        node_id: NodeId,
        /// Cluster id.
        cluster_id: String,
        /// Cluster CA certificate, PEM.
        ca_pem: String,
        /// Its certificate, PEM.
        cert_pem: String,
        /// Admin token hash, for checking API calls.
        admin_token_hash: String,
        /// Current members' addresses.
        members: Vec<MemberAddress>,
    },
    /// Refused; the text says why (bad or expired token, no quorum).
    Refused(String),
}

/// A member's addresses, as agents learn them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddress {
    /// Member.
    pub id: NodeId,
    /// QUIC.
    pub listen: SocketAddr,
    /// HTTP API.
    pub api: SocketAddr,
}

/// A node's role as the leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Replicates the Raft log and votes.
    Voter,
    /// Everything else: runs deployments, does not replicate the log.
    Agent,
}

/// Download progress of one revision on the polling node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionProgress {
    /// Revision.
    pub revision_id: RevisionId,
    /// Bytes of distinct chunks held.
    pub bytes_held: u64,
    /// Every chunk held and verified.
    pub complete: bool,
}

/// An agent's long poll.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PollRequest {
    /// The polling node.
    pub node: NodeId,
    /// Digest of the assignments it already has; the leader answers at once if its
    /// view differs, else holds the poll until something changes or `hold_ms` passes.
    #[serde(default)]
    pub assignments_digest: String,
    /// Version of the member list it has.
    #[serde(default)]
    pub members_version: u64,
    /// How long the leader may hold the poll.
    pub hold_ms: u64,
    /// Download progress of revisions it is fetching or holds.
    #[serde(default)]
    pub revisions: Vec<RevisionProgress>,
    /// The poller's release; a release that sends none is the first one
    /// ([`Release::default`]). The leader raises the cluster's feature level from these.
    #[serde(default)]
    pub release: Release,
    /// The cluster's feature level as the poller knows it; the leader answers at once
    /// when it differs. Releases before level 3 send none (and need none).
    #[serde(default)]
    pub feature_level: Option<FeatureLevel>,
    /// Routes this node should serve and cannot (a listen port in use), by name, with
    /// the reason; left out while there are none. The leader shows them in `GetRoute`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub route_errors: BTreeMap<String, String>,
    /// What the poller runs with now (its addresses and tags), so the leader records a
    /// restart with other tags or addresses; releases before this one send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<fleetmesh_state::model::members::MemberSpec>,
}

/// What one agent must do for one deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentAssignment {
    /// Deployment.
    pub deployment_id: DeploymentId,
    /// Application.
    pub application_name: String,
    /// Group name.
    pub deployment_group_name: String,
    /// Group id.
    pub deployment_group_id: String,
    /// Revision to install.
    pub revision_id: RevisionId,
    /// Continue past ApplicationStop failures.
    pub ignore_application_stop_failures: bool,
    /// Install's existing-file behaviour (the appspec's wins).
    pub file_exists_behavior: fleetmesh_state::model::resources::FileExistsBehavior,
    /// The routes (and ELBv2 target groups, by ARN: level 14) the target leaves before
    /// `ApplicationStop` and rejoins after `ValidateService` (feature level 9; empty
    /// without traffic control, and then left out so older agents and digests see no
    /// change).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic_routes: Vec<String>,
    /// The target's lifecycle events, when they are not the in-place ones (a blue/green
    /// target; feature level 10). Empty: the in-place events, with or without traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// The event before which the run pauses, reporting the target `Ready` (blue/green:
    /// green waits before `BeforeAllowTraffic` until traffic moves). A later assignment
    /// without it resumes the run from the journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_before: Option<String>,
    /// Where the revision came from when the cluster fetched it (an S3 object, a Git
    /// commit; feature level 15): the hooks' `BUNDLE_*` variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Box<fleetmesh_state::model::revision::RevisionSource>>,
}

/// The agent's whole to-do list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignments {
    /// Deployments in which this host is an in-progress target.
    pub deployments: Vec<DeploymentAssignment>,
    /// Revisions to fetch ahead of deployment.
    pub prefetch: Vec<RevisionId>,
    /// The traffic routes this host serves as a router, targets resolved (feature
    /// level 8; left out while empty, so older agents and digests see no change).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<fleetmesh_model::RouteInfo>,
}

impl Assignments {
    /// A digest that changes whenever the content does.
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("assignments always serialize");
        blake3::hash(&bytes).to_hex()[..16].to_string()
    }
}

/// The leader's answer to a poll.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PollResponse {
    /// The leader.
    pub leader: LeaderHint,
    /// Its Raft term.
    pub term: u64,
    /// The poller's role.
    pub role: Role,
    /// When the poller's member list is out of date: the version of the current one,
    /// which travels as the message's payload (a JSON array of [`MemberAddress`] whose
    /// BLAKE3 hash begins with the version's little-endian bytes). The leader encodes
    /// the list once per change and every answer shares those bytes: a fleet joining
    /// costs one encoding, not one per agent.
    #[serde(default)]
    pub members_in_payload: Option<u64>,
    /// Admin token hash, so every node can check API calls.
    pub admin_token_hash: String,
    /// Read-only token hash (feature level 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_token_hash: Option<String>,
    /// Metrics token hash (feature level 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_token_hash: Option<String>,
    /// Assignments and their digest.
    pub assignments: Assignments,
    /// [`Assignments::digest`] of the above.
    pub assignments_digest: String,
    /// Peers to fetch each prefetched or assigned revision from (the swarm view).
    #[serde(default)]
    pub swarm_peers: BTreeMap<RevisionId, Vec<MemberAddress>>,
    /// The voters, in id order: where an agent that lost the leader looks for the next
    /// one first (a few nodes instead of the whole fleet).
    #[serde(default)]
    pub voters: Vec<NodeId>,
    /// The cluster's feature level (agents have no state to read it from); a leader of
    /// a release before level 3 sends none, which reads as the base level.
    #[serde(default)]
    pub feature_level: FeatureLevel,
}

/// An API operation forwarded to another node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OperationRequest {
    /// The operation and its input.
    pub operation: Operation,
    /// A read must be answered by the leader after it confirmed its leadership.
    #[serde(default)]
    pub consistent: bool,
    /// The client's admin token, checked again by the answering node: a member cannot
    /// act as an operator without the token.
    pub token: String,
    /// The client's SigV4 signature instead of a token (the AWS protocol, feature level
    /// 15), checked again by the answering node with the key's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<Box<fleetmesh_model::sigv4::SignedRequest>>,
}

/// An HTTP request forwarded to the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Request body (JSON).
    pub body: String,
    /// The client's admin token, checked again by the leader: a member cannot act as
    /// an operator without the token.
    #[serde(default)]
    pub token: String,
}

/// The leader's HTTP answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response body.
    pub body: String,
}

/// Why a typed request failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The answer was not valid.
    #[error("node {peer} sent an invalid answer: {reason}")]
    Decode {
        /// Peer.
        peer: NodeId,
        /// Parser message.
        reason: String,
    },
}

/// The version of an encoded member list: the first 8 bytes of its BLAKE3 hash. A
/// function of the list alone, the same on every leader, and checkable by the receiver.
pub fn members_version(encoded: &[u8]) -> u64 {
    let hash = blake3::hash(encoded);
    u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("a BLAKE3 hash has 32 bytes"))
}

/// Encodes a request.
pub fn encode_request(request: &Request, payload: Bytes) -> Message {
    Message::with_payload(serde_json::to_vec(request).expect("requests always serialize"), payload)
}

/// Encodes a response.
pub fn encode_response(response: &Response, payload: Bytes) -> Message {
    Message::with_payload(serde_json::to_vec(response).expect("responses always serialize"), payload)
}

/// Sends a typed request and decodes the answer; the payload comes back beside it.
///
/// # Errors
/// Transport failure or an undecodable answer.
pub async fn call(
    transport: &dyn Transport,
    peer: Peer,
    request: &Request,
    timeout: Duration,
) -> Result<(Response, Bytes), RpcError> {
    let answer = transport.request(peer, encode_request(request, Bytes::new()), timeout).await?;
    let response = serde_json::from_slice(&answer.header)
        .map_err(|error| RpcError::Decode { peer: peer.id, reason: error.to_string() })?;
    Ok((response, answer.payload))
}
