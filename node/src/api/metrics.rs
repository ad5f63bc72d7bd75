//! `GET /metrics`: this node's view, in the OpenMetrics text format that Prometheus
//! scrapes, written by the Prometheus project's `prometheus-client`. Every series
//! carries `node="<id>"`.
//!
//! ```text
//!  scrape ──▶ registry of this scrape ◀── Raft metrics, API counts, swarm counters (read now)
//!                                     ◀── deployments: outcomes from the event log, running from the state
//!                                     ◀── the leader's duties: trigger deliveries, alarm polls
//! ```

mod deployments;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub(super) use self::deployments::DeploymentTally;
use super::Api;
use fleetmesh_model::NodeHealth;

/// OpenMetrics 1.0, which Prometheus negotiates and reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) async fn render(State(api): State<Arc<Api>>) -> impl IntoResponse {
    let peers_alive = if api.node.is_leader() {
        api.leader.cluster_view().await.nodes.iter().filter(|view| view.health == NodeHealth::Alive).count()
    } else {
        api.node.read_directory(|directory| directory.members.len())
    };
    let mut registry = Registry::with_labels([("node".into(), api.node.id().to_string().into())].into_iter());
    register_node(&mut registry, &api, peers_alive);
    api.node.state().read(|state| api.tally.register(&mut registry, state));
    let duties = api.node.duty_metrics();
    registry.register(
        "fleetmesh_trigger_deliveries",
        "Trigger delivery attempts by this node as leader, by target kind and result (delivered, failed, undeliverable)",
        duties.trigger_deliveries.clone(),
    );
    registry.register(
        "fleetmesh_alarm_polls",
        "Alarm polls by this node as leader, by alarm kind and result (ok, firing, failed)",
        duties.alarm_polls.clone(),
    );
    let mut text = String::new();
    match encode(&mut text, &registry) {
        Ok(()) => ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the metrics: {error}")).into_response()
        }
    }
}

/// A gauge set to `value`.
fn gauge(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

/// A counter at `value` (read from this process's own atomics).
fn counter(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

/// Raft, the API's routing and the swarm.
fn register_node(registry: &mut Registry, api: &Api, peers_alive: usize) {
    let node = &api.node;
    let raft = node.raft().metrics().borrow().clone();
    registry.register("fleetmesh_raft_term", "Current Raft term", gauge(raft.current_term));
    registry.register(
        "fleetmesh_raft_leader_changes",
        "Leader changes this node has seen since it started",
        counter(node.leader_changes()),
    );
    registry.register(
        "fleetmesh_raft_commit_index",
        "Index of the last committed and applied Raft entry",
        gauge(raft.last_applied.map_or(0, |log_id| log_id.index)),
    );
    registry.register(
        "fleetmesh_raft_last_log_index",
        "Index of the last entry in this node's log",
        gauge(raft.last_log_index.unwrap_or(0)),
    );
    registry.register("fleetmesh_is_leader", "1 if this node is the Raft leader", gauge(u64::from(node.is_leader())));
    registry.register(
        "fleetmesh_peers_alive",
        "Members alive in the leader's view (members known, on other nodes)",
        gauge(peers_alive as u64),
    );
    let counts = &api.counts;
    for (name, help, count) in [
        ("fleetmesh_api_operations_answered", "API operations this node answered itself", &counts.here),
        (
            "fleetmesh_api_operations_forwarded",
            "API operations this node forwarded, typed, to the leader",
            &counts.forwarded,
        ),
        (
            "fleetmesh_api_operations_relayed",
            "API operations this node relayed as HTTP to a leader of an older release",
            &counts.relayed,
        ),
    ] {
        registry.register(name, help, counter(count.load(Ordering::Relaxed)));
    }
    if let Some(revisions) = &api.revisions {
        registry.register(
            "fleetmesh_swarm_bytes_fetched",
            "Bytes of piece answers this process received from peers (verified or not)",
            counter(revisions.bytes_fetched()),
        );
        registry.register(
            "fleetmesh_swarm_bytes_served",
            "Bytes of chunks this process sent to peers in piece answers",
            counter(revisions.bytes_served()),
        );
        registry.register(
            "fleetmesh_chunk_store_bytes",
            "Bytes of chunk files in this node's chunk store",
            gauge(revisions.store().total_bytes()),
        );
    }
}
