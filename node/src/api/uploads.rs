//! Chunk uploads from `fleetmesh deploy push`, handled by the node the CLI talks to
//! (it becomes the revision's first seed; chunks are never forwarded to the leader).
//!
//! ```text
//!  POST /v1/uploads                      {applicationName, totalBytes} → {uploadId}   (size limit checked here)
//!  POST /v1/uploads/{id}/missing         {chunks: [hash…]}             → {missing: [hash…]}
//!  POST /v1/uploads/{id}/chunks          [hash 32][len u32][bytes]…    → {stored}      (each chunk verified)
//!  POST /v1/uploads/{id}/finish          {manifest, description}       → the revision record (registered via the leader)
//! ```

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use fleetmesh_model::{bounds, Operation, RegisterPushedRevisionInput};
use fleetmesh_state::model::ids::ChunkHash;
use fleetmesh_state::model::revision::Manifest;
use serde_json::{json, Value};

use super::{Api, ApiError};
use crate::revision::service::RevisionService;

/// Largest chunk batch in one upload request.
pub(super) const UPLOAD_BATCH_BYTES_MAX: usize = 32 << 20;

pub(super) fn router() -> Router<Arc<Api>> {
    Router::new()
        .route("/v1/uploads", post(begin))
        .route("/v1/uploads/{id}/missing", post(missing))
        .route("/v1/uploads/{id}/chunks", post(chunks))
        .route("/v1/uploads/{id}/finish", post(finish))
        .layer(DefaultBodyLimit::max(UPLOAD_BATCH_BYTES_MAX + (1 << 20)))
}

/// A client's `RegisterApplicationRevision`: the node it reached must hold every chunk of
/// the manifest and names itself as the seed. `seeds` and `registeredBy` are the node's
/// to record, not the client's: a made-up seed list would leave deployments waiting
/// for chunks nobody has.
///
/// # Errors
/// 400 naming the field: `seeds` or `registeredBy` given, or chunks this node lacks.
pub(super) fn settle_registration(
    api: &Api,
    mut input: RegisterPushedRevisionInput,
) -> Result<RegisterPushedRevisionInput, ApiError> {
    if !input.seeds.is_empty() {
        return Err(ApiError::bad_request(
            "seeds: recorded by the node that holds the revision's chunks, not set by a client; \
             upload the chunks with `fleetmesh deploy push`",
        ));
    }
    if input.registered_by.is_some() {
        return Err(ApiError::bad_request("registeredBy: recorded by the node that registers, not set by a client"));
    }
    let hashes: Vec<ChunkHash> = input.manifest.unique_chunks().iter().map(|chunk| chunk.hash()).collect();
    let missing = service(api)?.missing_chunks(&hashes).len();
    if missing > 0 {
        return Err(ApiError::bad_request(format!(
            "manifest: {missing} of {} chunks are not held by node {}, so no node could serve them; \
             upload them first (`fleetmesh deploy push` does)",
            hashes.len(),
            api.node.id()
        )));
    }
    input.seeds = vec![api.node.id()];
    input.registered_by = Some(format!("api via node {}", api.node.id()));
    Ok(input)
}

fn service(api: &Api) -> Result<Arc<RevisionService>, ApiError> {
    api.revisions.clone().ok_or_else(|| ApiError::unavailable("this node stores no chunks (it has no revision store)"))
}

async fn begin(State(api): State<Arc<Api>>, Json(body): Json<Value>) -> Result<Json<Value>, ApiError> {
    let application = body["applicationName"]
        .as_str()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| ApiError::invalid("applicationName", "missing"))?;
    let total = body["totalBytes"]
        .as_u64()
        .ok_or_else(|| ApiError::invalid("totalBytes", "missing, or not a whole number of bytes"))?;
    let service = service(&api)?;
    let id = hex::encode(api.node.random_bytes::<12>());
    service
        .begin_upload(id.clone(), application, total, api.node.settings().max_revision_bytes)
        .map_err(|message| ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, message))?;
    Ok(Json(json!({ "uploadId": id, "seed": api.node.id() })))
}

async fn missing(
    State(api): State<Arc<Api>>,
    Path(_id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let hashes: Vec<ChunkHash> = serde_json::from_value(body["chunks"].clone())
        .map_err(|error| ApiError::invalid("chunks", bounds::shorten_echoes(&error.to_string())))?;
    let missing = service(&api)?.missing_chunks(&hashes);
    Ok(Json(json!({ "missing": missing })))
}

async fn chunks(State(api): State<Arc<Api>>, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let service = service(&api)?;
    let stored = tokio::task::spawn_blocking(move || service.receive_chunks(&id, &body))
        .await
        .map_err(|error| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?
        .map_err(ApiError::bad_request)?;
    Ok(Json(json!({ "stored": stored })))
}

async fn finish(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let manifest: Manifest = serde_json::from_value(body["manifest"].clone())
        .map_err(|error| ApiError::invalid("manifest", bounds::shorten_echoes(&error.to_string())))?;
    let (_revision, application) =
        service(&api)?.finish_upload(&id, manifest.clone()).map_err(ApiError::bad_request)?;
    let input = RegisterPushedRevisionInput {
        application_name: application,
        description: body["description"].as_str().map(ToString::to_string),
        manifest,
        seeds: vec![api.node.id()],
        registered_by: Some(format!("push via node {}", api.node.id())),
    };
    // Serializing plain data cannot fail; the bytes only matter when relayed to an old leader.
    let body = Bytes::from(serde_json::to_vec(&input).unwrap_or_default());
    let incoming = super::Incoming {
        method: axum::http::Method::POST,
        uri: axum::http::Uri::from_static("/v1/deploy/RegisterApplicationRevision"),
        headers,
        body,
    };
    Ok(super::respond(&api, Operation::RegisterPushedRevision(input), false, incoming).await)
}
