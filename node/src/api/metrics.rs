//! `GET /metrics`: Prometheus text format, this node's view.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;

use super::Api;
use fleetmesh_model::NodeHealth;

pub(super) async fn render(State(api): State<Arc<Api>>) -> impl IntoResponse {
    let node = &api.node;
    let metrics = node.raft().metrics().borrow().clone();
    let id = node.id();
    let is_leader = node.is_leader();
    let peers_alive = if is_leader {
        api.leader.cluster_view().await.nodes.iter().filter(|view| view.health == NodeHealth::Alive).count()
    } else {
        node.read_directory(|directory| directory.members.len())
    };
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, value: u64| {
        // Writing into a String cannot fail.
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node=\"{id}\"}} {value}");
    };
    gauge("fleetmesh_raft_term", "Current Raft term.", "gauge", metrics.current_term);
    gauge(
        "fleetmesh_raft_leader_changes_total",
        "Leader changes this node has seen since it started.",
        "counter",
        node.leader_changes(),
    );
    gauge(
        "fleetmesh_raft_commit_index",
        "Index of the last committed and applied Raft entry.",
        "gauge",
        metrics.last_applied.map_or(0, |log_id| log_id.index),
    );
    gauge(
        "fleetmesh_raft_last_log_index",
        "Index of the last entry in this node's log.",
        "gauge",
        metrics.last_log_index.unwrap_or(0),
    );
    gauge("fleetmesh_is_leader", "1 if this node is the Raft leader.", "gauge", u64::from(is_leader));
    gauge(
        "fleetmesh_peers_alive",
        "Members alive in the leader's view (members known, on other nodes).",
        "gauge",
        peers_alive as u64,
    );
    let counts = &api.counts;
    for (name, help, count) in [
        ("fleetmesh_api_operations_answered_total", "API operations this node answered itself.", &counts.here),
        (
            "fleetmesh_api_operations_forwarded_total",
            "API operations this node forwarded, typed, to the leader.",
            &counts.forwarded,
        ),
        (
            "fleetmesh_api_operations_relayed_total",
            "API operations this node relayed as HTTP to a leader of an older release.",
            &counts.relayed,
        ),
    ] {
        gauge(name, help, "counter", count.load(std::sync::atomic::Ordering::Relaxed));
    }
    if let Some(revisions) = &api.revisions {
        gauge(
            "fleetmesh_swarm_bytes_fetched_total",
            "Bytes of piece answers this process received from peers (verified or not).",
            "counter",
            revisions.bytes_fetched(),
        );
        gauge(
            "fleetmesh_swarm_bytes_served_total",
            "Bytes of chunks this process sent to peers in piece answers.",
            "counter",
            revisions.bytes_served(),
        );
        gauge(
            "fleetmesh_chunk_store_bytes",
            "Bytes of chunk files in this node's chunk store.",
            "gauge",
            revisions.store().total_bytes(),
        );
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
