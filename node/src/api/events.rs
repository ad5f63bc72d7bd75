//! `GET /v1/events`: the deployment event log as Server-Sent Events, on every node.
//!
//! ```text
//!  client ──GET /v1/events?since=N (or Last-Event-ID: N)──▶ node
//!         ◀── id: N+1 / data: {...}, id: N+2 …   then every new event as it commits
//! ```
//!
//! The stream reads through `ListEvents`, so it is answered where reads are (a voter
//! from its applied state, an agent from the leader) and follows leader changes like any
//! read. The first page is read before the answer starts: a purged `since` is a 410 and
//! a bad one a 400, as HTTP statuses. After that, a voter reads again after each apply,
//! an agent once a second; a comment line every 15 s keeps idle connections open. A
//! client that reconnects with the last `id:` it saw misses nothing and sees nothing
//! twice.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use fleetmesh_model::{ListEventsInput, ListEventsOutput, Operation, Output};
use fleetmesh_state::model::ids::DeploymentId;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{bearer, route, Api, ApiError};

/// How often an agent asks the leader for new events.
const AGENT_POLL: Duration = Duration::from_secs(1);

/// Silence after which a comment line goes out, so proxies keep the connection.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a stream waits after an error answer (no leader) before reading again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Frames buffered for a slow client before the stream waits for it.
const FRAMES_BUFFERED: usize = 64;

/// The query of `GET /v1/events`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct EventsQuery {
    since: Option<u64>,
    application_name: Option<String>,
    deployment_group_name: Option<String>,
    deployment_id: Option<DeploymentId>,
}

/// `GET /v1/events`.
pub(super) async fn stream(
    State(api): State<Arc<Api>>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let resumed = match headers.get("last-event-id").map(|value| value.to_str().map(str::trim)) {
        None => None,
        Some(Ok(id)) => match id.parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => {
                return ApiError::bad_request(format!("Last-Event-ID: {id:?} is not an event number")).into_response()
            }
        },
        Some(Err(_)) => return ApiError::bad_request("Last-Event-ID is not text").into_response(),
    };
    // A reconnecting EventSource sends Last-Event-ID: it wins over the `since` of its URL.
    let input = ListEventsInput {
        since: resumed.or(query.since).unwrap_or(0),
        application_name: query.application_name,
        deployment_group_name: query.deployment_group_name,
        deployment_id: query.deployment_id,
        max_items: None,
    };
    let token = bearer(&headers).unwrap_or_default().to_string();
    let first = match read(&api, input.clone(), &token).await {
        Ok(first) => first,
        Err(error) => return error.into_response(),
    };
    let (frames, receiver) = mpsc::channel(FRAMES_BUFFERED);
    tokio::spawn(follow(api, input, token, first, frames));
    let headers = [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")];
    (StatusCode::OK, headers, Body::from_stream(Frames(receiver))).into_response()
}

/// One page of events after `input.since`.
async fn read(api: &Arc<Api>, input: ListEventsInput, token: &str) -> Result<ListEventsOutput, ApiError> {
    let operation = route::for_cluster_level(api, Operation::ListEvents(input))?;
    match route::answer(api, operation, false, token).await {
        Some(Ok(Output::ListEvents(output))) => Ok(output),
        Some(Ok(other)) => Err(ApiError::internal(format!("ListEvents was answered with {}", other.name()))),
        Some(Err(error)) => Err(error),
        // Below the events' feature level `for_cluster_level` refused already.
        None => Err(ApiError::unavailable("the leader runs a release without the event log")),
    }
}

/// Sends `first`, then every later page, until the client goes or the node stops.
/// Bounded by the client: every pass waits for a change, a tick or the client's going.
async fn follow(
    api: Arc<Api>,
    mut input: ListEventsInput,
    token: String,
    first: ListEventsOutput,
    frames: mpsc::Sender<Bytes>,
) {
    let mut changes = api.node.state().subscribe();
    let mut shutdown = api.node.shutdown_signal();
    let mut page: Result<ListEventsOutput, ApiError> = Ok(first);
    let mut quiet = Duration::ZERO;
    loop {
        let pause = match page {
            Ok(output) => {
                let caught_up = output.next_since >= output.last_event_id;
                for event in &output.events {
                    let Ok(data) = serde_json::to_string(event) else { continue };
                    let frame = format!("id: {}\nevent: {:?}\ndata: {data}\n\n", event.id, event.what.kind);
                    if frames.send(Bytes::from(frame)).await.is_err() {
                        return;
                    }
                }
                if !output.events.is_empty() {
                    quiet = Duration::ZERO;
                }
                input.since = output.next_since;
                if caught_up {
                    None
                } else {
                    Some(Duration::ZERO)
                }
            }
            Err(error) if error.status == StatusCode::GONE || error.status.is_client_error() => {
                // The stream cannot go on (events purged while it was behind): say why, and
                // end; the client reconnects and gets the 410 as a status.
                let frame = format!("event: error\ndata: {}\n\n", error.body());
                // The stream ends here whether or not the client still reads it.
                let _ = frames.send(Bytes::from(frame)).await;
                return;
            }
            Err(error) => {
                let frame = format!(": {}\n\n", error.message.replace('\n', " "));
                if frames.send(Bytes::from(frame)).await.is_err() {
                    return;
                }
                Some(RETRY_AFTER_ERROR)
            }
        };
        // A voter reads its own state again when it changes; an agent asks the leader.
        let holds_state = api.node.is_leader() || api.node.answers_reads();
        let wait = pause.unwrap_or(if holds_state { KEEP_ALIVE } else { AGENT_POLL });
        let started = tokio::time::Instant::now();
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            () = frames.closed() => return,
            _ = changes.changed(), if holds_state && pause.is_none() => {}
            () = tokio::time::sleep(wait) => {}
        }
        quiet += started.elapsed();
        if quiet >= KEEP_ALIVE {
            quiet = Duration::ZERO;
            if frames.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                return;
            }
        }
        page = read(&api, input.clone(), &token).await;
    }
}

/// The frames of a stream as a response body.
struct Frames(mpsc::Receiver<Bytes>);

impl futures_core::Stream for Frames {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(context).map(|frame| frame.map(Ok))
    }
}
