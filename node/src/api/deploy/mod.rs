//! CodeDeploy-shaped operations: `POST /v1/deploy/<Operation>` with the AWS API's JSON
//! field names, handled on the leader. The same handlers can later sit behind
//! CodeDeploy's own wire protocol (AWS JSON 1.1, `X-Amz-Target`).
//!
//! `mod.rs` routes an operation: the writes (`writes.rs`) each propose one command through
//! Raft on the leader; the reads (`reads.rs`) answer from the leader's applied state.
//!
//! How fresh a read is: the leader answers from what it has applied, which includes every
//! write it acknowledged. A leader cut off from its voters does not know it at once and
//! keeps answering from its own state until it steps down (about an election timeout);
//! meanwhile a new leader may commit writes it does not see. `?consistent=true` (CLI
//! `--consistent`) closes that window: the leader first confirms with a quorum that it
//! still leads and has applied everything committed (a Raft read index), or refuses with
//! 503.

mod reads;
mod writes;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::{Command, Outcome};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Api, ApiError};
use crate::runtime::Node;

pub(super) fn router() -> Router<Arc<Api>> {
    Router::new()
        .route("/v1/deploy/{operation}", post(operation))
        .route("/v1/revisions/{revision}/distribution", get(distribution))
}

type ApiResult = Result<Json<Value>, ApiError>;

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("missing {name}")))
}

fn optional<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str).filter(|text| !text.is_empty())
}

fn parse<T: for<'de> Deserialize<'de>>(value: &Value, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(value.clone()).map_err(|error| ApiError::bad_request(format!("invalid {what}: {error}")))
}

fn random_id(node: &Node) -> String {
    let bytes: [u8; 16] = node.random_bytes();
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

async fn commit(node: &Node, command: Command) -> Result<(), ApiError> {
    match node.propose_one(command).await? {
        Outcome::Rejected(error) => Err(error.into()),
        _ => Ok(()),
    }
}

/// Options of a read, from the query string.
#[derive(Debug, Default, Deserialize)]
struct ReadOptions {
    /// Confirm leadership with a quorum before reading (see the module doc).
    #[serde(default)]
    consistent: bool,
}

/// One operation: a write proposes its command; anything else is a read of the applied state.
async fn operation(
    State(api): State<Arc<Api>>,
    Path(operation): Path<String>,
    Query(options): Query<ReadOptions>,
    body: Option<Json<Value>>,
) -> ApiResult {
    let body = body.map(|Json(body)| body).unwrap_or_else(|| json!({}));
    let node = &api.node;
    match operation.as_str() {
        "CreateApplication" => writes::create_application(node, &body).await,
        "DeleteApplication" => {
            commit(node, Command::DeleteApplication { name: field(&body, "applicationName")?.to_string() }).await?;
            Ok(Json(json!({})))
        }
        "CreateDeploymentGroup" => writes::create_deployment_group(node, &body).await,
        "DeleteDeploymentGroup" => {
            commit(
                node,
                Command::DeleteDeploymentGroup {
                    application_name: field(&body, "applicationName")?.to_string(),
                    deployment_group_name: field(&body, "deploymentGroupName")?.to_string(),
                },
            )
            .await?;
            Ok(Json(json!({})))
        }
        "CreateDeploymentConfig" => writes::create_deployment_config(node, &body).await,
        "DeleteDeploymentConfig" => {
            commit(node, Command::DeleteDeploymentConfig { name: field(&body, "deploymentConfigName")?.to_string() })
                .await?;
            Ok(Json(json!({})))
        }
        "RegisterApplicationRevision" => writes::register_revision(node, &body).await,
        "Prefetch" => writes::prefetch(node, &body).await,
        "CreateDeployment" => writes::create_deployment(node, &body).await,
        "StopDeployment" => writes::stop_deployment(node, &body).await,
        read => {
            if options.consistent {
                node.raft().ensure_linearizable().await.map_err(|error| {
                    ApiError::unavailable(format!("cannot confirm this node still leads (retry): {error}"))
                })?;
            }
            node.state()
                .read(|state| reads::answer(read, &body, state))
                .unwrap_or_else(|| Err(ApiError::not_found(format!("unknown operation {read}"))))
                .map(Json)
        }
    }
}

async fn distribution(State(api): State<Arc<Api>>, Path(revision): Path<String>) -> ApiResult {
    let node = &api.node;
    let revision: RevisionId = revision
        .parse()
        .map_err(|_| ApiError::bad_request(format!("revision id {revision:?} is not 64 hex digits")))?;
    let (size, holders, members) = node.state().read(|state| {
        let record = state.revisions.get(&revision);
        (
            record.map(|record| record.unique_bytes),
            state.revision_holders.get(&revision).cloned().unwrap_or_default(),
            state.members.keys().copied().collect::<Vec<_>>(),
        )
    });
    let size = size.ok_or_else(|| ApiError::not_found(format!("revision {revision} does not exist")))?;
    let progress = api.leader.revision_progress(revision);
    let nodes: Vec<Value> = members
        .into_iter()
        .filter_map(|id| {
            let reported = progress.get(&id);
            let complete = holders.contains(&id) || reported.is_some_and(|progress| progress.complete);
            let bytes_held = if complete { size } else { reported.map_or(0, |progress| progress.bytes_held) };
            (reported.is_some() || complete).then(|| json!({ "id": id, "bytesHeld": bytes_held, "complete": complete }))
        })
        .collect();
    Ok(Json(json!({ "revisionId": revision, "size": size, "nodes": nodes })))
}
