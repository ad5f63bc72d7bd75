//! `fleetmesh cluster ...`.

use serde_json::Value;

use super::client::{ApiClient, ClientError};
use super::table::Table;

/// `cluster status`.
///
/// # Errors
/// The API call failed.
pub(crate) fn status(client: &ApiClient, json: bool) -> Result<(), ClientError> {
    let view = client.get("/v1/cluster")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view).unwrap_or_default());
        return Ok(());
    }
    print!("{}", render_status(&view));
    Ok(())
}

/// The human table for a cluster view.
pub(crate) fn render_status(view: &Value) -> String {
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let mut out = format!(
        "cluster {}   term {}   leader {}   feature level {}\n\n",
        text(&view["cluster_id"]),
        text(&view["term"]),
        text(&view["leader"]),
        text(&view["feature_level"])
    );
    let mut table = Table::new(&["ID", "ROLE", "HEALTH", "RELEASE", "ADDRESS", "API", "TAGS"]);
    for node in view["nodes"].as_array().into_iter().flatten() {
        let tags = node["tags"]
            .as_object()
            .map(|tags| tags.iter().map(|(key, value)| format!("{key}={}", text(value))).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        let mut id = text(&node["id"]);
        if node["id"] == view["leader"] {
            id.push('*');
        }
        table.row(vec![
            id,
            text(&node["role"]),
            text(&node["health"]),
            release(&node["release"]),
            text(&node["address"]),
            text(&node["api"]),
            tags,
        ]);
    }
    out.push_str(&table.render());
    out
}

/// A node's release as `cluster status` shows it: its version and the feature level it
/// knows, or `-` before it has polled the leader.
fn release(release: &Value) -> String {
    match (release["version"].as_str(), release["featureLevel"].as_u64()) {
        (Some(version), Some(level)) if !version.is_empty() => format!("{version} (level {level})"),
        (_, Some(level)) => format!("level {level}"),
        _ => "-".to_string(),
    }
}

/// `cluster create-join-token`.
///
/// # Errors
/// The API call failed.
pub(crate) fn create_join_token(
    client: &ApiClient,
    ttl_seconds: Option<u64>,
    description: &str,
) -> Result<(), ClientError> {
    let answer = client
        .post("/v1/join-tokens", &serde_json::json!({ "ttlSeconds": ttl_seconds, "description": description }))?;
    println!("{}", answer["token"].as_str().unwrap_or_default());
    Ok(())
}
