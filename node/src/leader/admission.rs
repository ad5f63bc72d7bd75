//! Admitting a joining node, on the leader: the joiner's token is checked against the
//! replicated token hashes, the member is committed (its id assigned), and its
//! certificate is signed with the cluster CA. A member that is not the leader forwards
//! the request there. The joiner's side is `runtime::join`.

use std::time::Duration;

use fleetmesh_state::model::members::{ClusterCa, JoinTokenRefusal};
use fleetmesh_state::{Command, NodeId, Outcome};
use fleetmesh_transport::pki::{CaAuthority, PkiError, Validity};
use tracing::info;

use super::liveness::Health;
use super::Leader;
use crate::runtime::ca_seal::CaKeyError;
use crate::runtime::identity::{hashes_equal, secret_hash};
use crate::runtime::protocol::{
    ApiCertificateRequest, JoinRequest, JoinResponse, NodeCertificateRequest, Request, Response,
};
use crate::runtime::{Node, ProposeError};

/// Shortest API certificate lifetime a member may ask for (a test renews every few seconds).
pub const API_CERT_LIFETIME_MIN_SECS: u64 = 10;
/// Longest API certificate lifetime a member may ask for: ten years.
pub const API_CERT_LIFETIME_MAX_SECS: u64 = 10 * 365 * 86_400;
/// Lifetime of the node certificate a joiner gets: one year. A node whose
/// `--cert-lifetime-secs` differs renews it to its own lifetime at once.
pub const NODE_CERT_LIFETIME_DEFAULT_SECS: u64 = 365 * 86_400;
/// How far back a certificate's validity starts, for members whose clocks run behind.
const CLOCK_SKEW_SECS: i64 = 3_600;

/// Why an API certificate was not signed; the text goes back to the asking member.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The asker is not in the member list.
    #[error("node {0} is not a member of this cluster")]
    NotMember(NodeId),
    /// This node's state holds no cluster CA: it is not a voter, or the cluster is new.
    #[error("node {0} holds no cluster CA (only voters do); ask a voter")]
    NoCa(NodeId),
    /// The public key is not hex.
    #[error("the API public key is not hex")]
    PublicKeyNotHex,
    /// A lifetime out of range.
    #[error(
        "a certificate lifetime of {0} s is out of range ({API_CERT_LIFETIME_MIN_SECS}..={API_CERT_LIFETIME_MAX_SECS})"
    )]
    Lifetime(u64),
    /// The CA refused (bad key or names).
    #[error(transparent)]
    Sign(#[from] PkiError),
    /// The CA is sealed and this voter cannot open it.
    #[error(transparent)]
    Ca(CaKeyError),
}

/// Signs member `id`'s API certificate with the cluster CA held in `node`'s replicated
/// state (any voter can; the leader need not be involved). The certificate is valid from
/// an hour ago (clock skew) for the asked lifetime.
///
/// # Errors
/// As [`CertificateError`].
pub fn sign_api_certificate(
    node: &Node,
    id: NodeId,
    request: &ApiCertificateRequest,
) -> Result<String, CertificateError> {
    let (ca, now) = signer_for(node, id, request.lifetime_secs)?;
    let public_key = hex::decode(&request.public_key).map_err(|_| CertificateError::PublicKeyNotHex)?;
    Ok(ca.sign_api(id, &public_key, &request.names, api_validity(now, request.lifetime_secs))?)
}

/// The CA in `node`'s state and its clock (Unix seconds), once `lifetime_secs` is in
/// range and `id` is a member.
fn signer_for(node: &Node, id: NodeId, lifetime_secs: u64) -> Result<(ClusterCa, i64), CertificateError> {
    if !(API_CERT_LIFETIME_MIN_SECS..=API_CERT_LIFETIME_MAX_SECS).contains(&lifetime_secs) {
        return Err(CertificateError::Lifetime(lifetime_secs));
    }
    let ca = node.cluster_ca().map_err(|error| match error {
        CaKeyError::NoCa => CertificateError::NoCa(node.id()),
        other => CertificateError::Ca(other),
    })?;
    if !node.state().read(|state| state.members.contains_key(&id)) {
        return Err(CertificateError::NotMember(id));
    }
    Ok((ca, i64::try_from(node.clock().now().0 / 1000).unwrap_or(i64::MAX / 2)))
}

/// Renews member `id`'s node certificate over `request`'s key with the cluster CA held
/// in `node`'s replicated state (any voter can), valid from an hour ago for the asked
/// lifetime. The asker is authenticated by its current certificate, which names `id`.
///
/// # Errors
/// As [`CertificateError`].
pub fn sign_node_certificate(
    node: &Node,
    id: NodeId,
    request: &NodeCertificateRequest,
) -> Result<String, CertificateError> {
    let (ca, now) = signer_for(node, id, request.lifetime_secs)?;
    let public_key = hex::decode(&request.public_key).map_err(|_| CertificateError::PublicKeyNotHex)?;
    Ok(ca.sign_node_valid(id, &public_key, api_validity(now, request.lifetime_secs))?)
}

/// The validity of an API certificate signed at `now` (Unix seconds) for `lifetime_secs`:
/// from an hour before, for members whose clocks run behind.
pub fn api_validity(now: i64, lifetime_secs: u64) -> Validity {
    let lifetime = i64::try_from(lifetime_secs).unwrap_or(i64::MAX / 4);
    Validity { not_before: now.saturating_sub(CLOCK_SKEW_SECS), not_after: now.saturating_add(lifetime) }
}

/// Why the leader refuses a joiner; the text goes back to the joining node.
#[derive(Debug, thiserror::Error)]
enum AdmissionError {
    #[error("the cluster is still bootstrapping; retry in a few seconds")]
    Bootstrapping,
    #[error("the join token is not valid for this cluster")]
    UnknownToken,
    #[error(transparent)]
    Token(#[from] JoinTokenRefusal),
    #[error("the public key is not hex")]
    PublicKeyNotHex,
    #[error("node {id} is alive at {listen}; give this node another --listen address")]
    AddressInUse { id: NodeId, listen: String },
    #[error(transparent)]
    Propose(#[from] ProposeError),
    #[error("the member could not be added: {0}")]
    NotAdded(String),
    #[error(transparent)]
    Sign(#[from] PkiError),
    #[error("this leader cannot use the cluster CA: {0}")]
    Ca(#[from] CaKeyError),
}

/// Admits a joiner (on the leader) or forwards the request to the leader.
impl Leader {
    pub(super) async fn admit(&self, request: JoinRequest) -> JoinResponse {
        let node = &self.node;
        if !node.is_leader() {
            let Some(leader) = node.leader_hint().filter(|hint| hint.id != node.id()) else {
                return JoinResponse::Refused("no leader is elected right now; retry in a few seconds".into());
            };
            return match node.call(leader.peer(), Request::Join(request), Duration::from_secs(10)).await {
                Ok((Response::Join(answer), _)) => answer,
                Ok((other, _)) => JoinResponse::Refused(format!("the leader answered {other:?}")),
                Err(error) => JoinResponse::Refused(format!("cannot reach the leader: {error}")),
            };
        }
        match self.admit_on_leader(request).await {
            Ok(answer) => answer,
            Err(error) => JoinResponse::Refused(error.to_string()),
        }
    }

    /// Answers a member's request to renew its node certificate.
    pub(super) fn answer_node_certificate_request(&self, peer: NodeId, request: &NodeCertificateRequest) -> Response {
        match sign_node_certificate(&self.node, peer, request) {
            Ok(cert_pem) => {
                info!(node = %peer, lifetime_secs = request.lifetime_secs, "renewed a node certificate");
                Response::NodeCertificate(cert_pem)
            }
            Err(error) => Response::Error(error.to_string()),
        }
    }

    /// Answers a member's request to certify its API key.
    pub(super) fn answer_certificate_request(&self, peer: NodeId, request: &ApiCertificateRequest) -> Response {
        match sign_api_certificate(&self.node, peer, request) {
            Ok(cert_pem) => {
                info!(node = %peer, names = ?request.names, "signed an API certificate");
                Response::ApiCertificate(cert_pem)
            }
            Err(error) => Response::Error(error.to_string()),
        }
    }

    async fn admit_on_leader(&self, request: JoinRequest) -> Result<JoinResponse, AdmissionError> {
        let node = &self.node;
        let now = node.clock().now();
        let (info, same_address, level) = node.state().read(|state| {
            let same =
                state.members.values().find(|member| member.listen == request.spec.listen).map(|member| member.id);
            (state.cluster.clone(), same, state.feature_level)
        });
        let info = info.ok_or(AdmissionError::Bootstrapping)?;
        let offered = secret_hash(&request.secret);
        let record = info
            .join_tokens
            .iter()
            .find(|record| hashes_equal(&record.secret_hash, &offered))
            .ok_or(AdmissionError::UnknownToken)?;
        // Checked again when the member is added (`Command::admit`), where racing joins
        // for a token's last use are decided.
        if let Some(refusal) = record.refusal(now) {
            return Err(refusal.into());
        }
        let public_key = hex::decode(&request.public_key).map_err(|_| AdmissionError::PublicKeyNotHex)?;
        // Before the member is committed: a leader that cannot sign admits nobody.
        let ca = node.cluster_ca()?;
        let mut commands = Vec::new();
        if let Some(previous) = same_address {
            // A host that lost its data directory rejoins on the same address: replace the
            // dead record instead of leaving a ghost. A live member at that address is a
            // configuration mistake.
            if self.health(previous).await != Health::Dead {
                return Err(AdmissionError::AddressInUse { id: previous, listen: request.spec.listen.to_string() });
            }
            commands.push(Command::RemoveMember { id: previous });
        }
        commands.push(Command::admit(request.spec.clone(), record, level));
        let outcomes = node.propose(commands).await?;
        let node_id = match outcomes.last() {
            Some(Outcome::MemberAdded(id)) => *id,
            Some(Outcome::Rejected(error)) => return Err(AdmissionError::NotAdded(error.message.clone())),
            other => return Err(AdmissionError::NotAdded(format!("{other:?}"))),
        };
        let now_secs = i64::try_from(now.0 / 1000).unwrap_or(i64::MAX / 2);
        let validity = api_validity(now_secs, NODE_CERT_LIFETIME_DEFAULT_SECS);
        let cert_pem = ca.sign_node_valid(node_id, &public_key, validity)?;
        info!(node = %node_id, listen = %request.spec.listen, "admitted a new node");
        let members = node.member_addresses();
        Ok(JoinResponse::Admitted {
            node_id,
            cluster_id: info.ca.cluster_id.clone(),
            ca_pem: info.ca.cert_pem.clone(),
            cert_pem,
            admin_token_hash: info.admin_token_hash.clone(),
            members,
        })
    }
}
