//! fleetmesh's cluster operations: the leader's view of the members (`GetCluster`) and
//! join tokens (`CreateJoinToken`, `ListJoinTokens`, `DeleteJoinToken`).
//!
//! A join token's id is derived from the hash of its secret (`JoinTokenRecord::id`), so
//! every token has one, the bootstrap token (`DIR/join-token`, which never expires and
//! has no use limit) and tokens from older releases included.

use fleetmesh_model::{
    CreateJoinTokenInput, CreateJoinTokenOutput, DeleteJoinTokenInput, Empty, GetClusterOutput, JoinTokenInfo,
    ListJoinTokensOutput, RemoveNodeInput, RotateApiTokenInput, RotateApiTokenOutput, SetDeploymentRetentionInput,
    SetDeploymentRetentionOutput,
};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::members::{Actor, ApiTokenKind, JoinTokenRecord};
use fleetmesh_state::{Command, DeploymentRetention, Outcome};
use fleetmesh_transport::pki::CaAuthority;

use super::{Api, ApiError};
use crate::runtime::identity::{random_hex, secret_hash, JoinToken};

/// The cluster as this node, the leader, sees it.
pub(super) async fn get_cluster(api: &Api) -> Result<GetClusterOutput, ApiError> {
    let view = api.leader.cluster_view().await;
    if view.nodes.is_empty() {
        return Err(ApiError::unavailable("the cluster is still bootstrapping"));
    }
    Ok(view)
}

/// Mints a join token and commits its hash.
pub(super) async fn create_join_token(
    api: &Api,
    input: CreateJoinTokenInput,
    by: Option<&Actor>,
) -> Result<CreateJoinTokenOutput, ApiError> {
    input.check()?;
    let node = &api.node;
    let fingerprint = node
        .state()
        .read(|state| state.cluster.as_ref().map(|info| info.ca.fingerprint()))
        .ok_or_else(|| ApiError::unavailable("the cluster is still bootstrapping"))?
        .map_err(|error| ApiError::internal(error.to_string()))?;
    let max_uses =
        input.max_uses.map(u32::try_from).transpose().map_err(|_| ApiError::invalid("maxUses", "too large"))?;
    let token = JoinToken::generate(fingerprint);
    let now = node.clock().now();
    // The bound checked above keeps this far from overflowing.
    let expires_at = input.lifetime_seconds().map(|ttl| UnixMillis(now.0.saturating_add(ttl.saturating_mul(1000))));
    let record = JoinTokenRecord {
        secret_hash: secret_hash(&token.secret),
        expires_at,
        description: input.description,
        max_uses,
        ..JoinTokenRecord::default()
    };
    let token_id = record.id();
    match node.propose_one_by(Command::AddJoinToken { record }, by).await? {
        Outcome::Rejected(error) => Err(error.into()),
        _ => Ok(CreateJoinTokenOutput { token: token.to_string(), expires_at: expires_at.map(Into::into), token_id }),
    }
}

/// Mints a new token of the asked kind and commits its hash; the old one of that kind
/// stops working when the entry applies.
pub(super) async fn rotate_api_token(
    api: &Api,
    input: RotateApiTokenInput,
    by: Option<&Actor>,
) -> Result<RotateApiTokenOutput, ApiError> {
    let prefix = match input.kind {
        ApiTokenKind::Admin => "fma1",
        ApiTokenKind::ReadOnly => "fmr1",
        ApiTokenKind::Metrics => "fmm1",
    };
    let token = format!("{prefix}.{}", random_hex(24));
    let command = Command::SetApiToken { kind: input.kind, hash: secret_hash(&token) };
    match api.node.propose_one_by(command, by).await? {
        Outcome::Rejected(error) => Err(error.into()),
        _ => {
            tracing::info!(kind = %input.kind, "an API token was rotated");
            Ok(RotateApiTokenOutput { kind: input.kind, token })
        }
    }
}

/// The join tokens the cluster accepts, without their secrets.
pub(super) fn list_join_tokens(api: &Api) -> Result<ListJoinTokensOutput, ApiError> {
    let join_tokens = api
        .node
        .state()
        .read(|state| state.cluster.as_ref().map(|info| info.join_tokens.iter().map(token_info).collect::<Vec<_>>()));
    let join_tokens = join_tokens.ok_or_else(|| ApiError::unavailable("the cluster is still bootstrapping"))?;
    Ok(ListJoinTokensOutput { join_tokens })
}

fn token_info(record: &JoinTokenRecord) -> JoinTokenInfo {
    JoinTokenInfo {
        token_id: record.id(),
        description: record.description.clone(),
        created_at: record.created_at.map(Into::into),
        expires_at: record.expires_at.map(Into::into),
        uses: u64::from(record.uses),
        max_uses: record.max_uses.map(u64::from),
        created_by: record.created_by.as_ref().map(ToString::to_string),
    }
}

/// Removes a member for good (see `leader::removal`).
pub(super) async fn remove_node(api: &Api, input: RemoveNodeInput) -> Result<Empty, ApiError> {
    use crate::leader::RemoveMemberError as Error;
    let id = fleetmesh_state::NodeId(input.node_id);
    match api.leader.remove_member(id).await {
        Ok(()) => Ok(Empty {}),
        Err(error @ (Error::NotMember(_) | Error::AlreadyRemoved(_))) => Err(ApiError::not_found(error.to_string())),
        Err(error @ (Error::IsLeader(_) | Error::LastVoter(_) | Error::Rejected(_))) => {
            Err(ApiError::new(axum::http::StatusCode::CONFLICT, error.to_string()))
        }
        Err(Error::Propose(error)) => Err(error.into()),
        Err(error @ (Error::NotLeader | Error::Voters { .. })) => Err(ApiError::unavailable(error.to_string())),
    }
}

/// Sets the deployment retention: the members given, the current values for the rest.
pub(super) async fn set_deployment_retention(
    api: &Api,
    input: SetDeploymentRetentionInput,
    by: Option<&Actor>,
) -> Result<SetDeploymentRetentionOutput, ApiError> {
    let current = api.node.state().read(|state| state.deployment_retention);
    let retention = DeploymentRetention {
        max_deployments: input.max_deployments.unwrap_or(current.max_deployments),
        max_age_days: input.max_age_days.unwrap_or(current.max_age_days),
    };
    match api.node.propose_one_by(Command::SetDeploymentRetention(retention), by).await? {
        Outcome::Rejected(error) => Err(error.into()),
        _ => Ok(SetDeploymentRetentionOutput {
            max_deployments: retention.max_deployments,
            max_age_days: retention.max_age_days,
        }),
    }
}

/// Stops accepting a join token.
pub(super) async fn delete_join_token(
    api: &Api,
    input: DeleteJoinTokenInput,
    by: Option<&Actor>,
) -> Result<Empty, ApiError> {
    let token_id = input.token_id;
    let well_formed = token_id
        .strip_prefix("jt-")
        .is_some_and(|hex| (1..=16).contains(&hex.len()) && hex.bytes().all(|byte| byte.is_ascii_hexdigit()));
    if !well_formed {
        return Err(ApiError::invalid(
            "tokenId",
            "not a join token id (jt- and 16 hex digits, as `fleetmesh cluster list-join-tokens` shows)",
        ));
    }
    match api.node.propose_one_by(Command::DeleteJoinToken { token_id }, by).await? {
        Outcome::Rejected(error) => Err(error.into()),
        _ => Ok(Empty {}),
    }
}
