//! fleetmesh's cluster operations: the leader's view of the members (`GetCluster`) and
//! join-token minting (`CreateJoinToken`).

use fleetmesh_model::{CreateJoinTokenInput, CreateJoinTokenOutput, GetClusterOutput};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::members::JoinTokenRecord;
use fleetmesh_state::{Command, Outcome};
use fleetmesh_transport::pki::CaAuthority;

use super::{Api, ApiError};
use crate::runtime::identity::{secret_hash, JoinToken};

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
) -> Result<CreateJoinTokenOutput, ApiError> {
    let node = &api.node;
    let fingerprint = node
        .state()
        .read(|state| state.cluster.as_ref().map(|info| info.ca.fingerprint()))
        .ok_or_else(|| ApiError::unavailable("the cluster is still bootstrapping"))?
        .map_err(|error| ApiError::internal(error.to_string()))?;
    let token = JoinToken::generate(fingerprint);
    let expires_at =
        input.ttl_seconds.map(|ttl| UnixMillis(node.clock().now().0.saturating_add(ttl.saturating_mul(1000))));
    let record =
        JoinTokenRecord { secret_hash: secret_hash(&token.secret), expires_at, description: input.description };
    match node.propose_one(Command::AddJoinToken { record }).await? {
        Outcome::Rejected(error) => Err(error.into()),
        _ => Ok(CreateJoinTokenOutput { token: token.to_string(), expires_at: expires_at.map(Into::into) }),
    }
}
