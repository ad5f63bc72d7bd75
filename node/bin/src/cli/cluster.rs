//! `fleetmesh cluster ...`.

use fleetmesh_model::{CreateJoinTokenInput, CreateJoinTokenOutput, GetClusterOutput};
use fleetmesh_state::Release;

use super::client::{ApiClient, ClientError};
use super::table::{spelled, Table};

/// `cluster status`.
///
/// # Errors
/// The API call failed.
pub(crate) fn status(client: &ApiClient, json: bool) -> Result<(), ClientError> {
    let view: GetClusterOutput = client.get_as("/v1/cluster")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view).unwrap_or_default());
        return Ok(());
    }
    print!("{}", render_status(&view));
    Ok(())
}

/// The human table for a cluster view.
pub(crate) fn render_status(view: &GetClusterOutput) -> String {
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_string());
    let leader = or_dash(view.leader.map(|id| id.to_string()));
    let mut out = format!(
        "cluster {}   term {}   leader {leader}   feature level {}\n\n",
        view.cluster_id, view.term, view.feature_level
    );
    let mut table = Table::new(&["ID", "ROLE", "HEALTH", "RELEASE", "ADDRESS", "API", "TAGS"]);
    for node in &view.nodes {
        let tags = node.tags.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(",");
        let mut id = node.id.to_string();
        if Some(node.id) == view.leader {
            id.push('*');
        }
        table.row(vec![
            id,
            spelled(&node.role),
            spelled(&node.health),
            release(node.release.as_ref()),
            node.address.clone(),
            node.api.clone(),
            tags,
        ]);
    }
    out.push_str(&table.render());
    out
}

/// A node's release as `cluster status` shows it: its version and the feature level it
/// knows, or `-` before it has polled the leader.
fn release(release: Option<&Release>) -> String {
    match release {
        Some(release) if !release.version.is_empty() => {
            format!("{} (level {})", release.version, release.feature_level)
        }
        Some(release) => format!("level {}", release.feature_level),
        None => "-".to_string(),
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
    let input = CreateJoinTokenInput { ttl_seconds, description: description.to_string() };
    let answer: CreateJoinTokenOutput = client.post_as("/v1/join-tokens", &input)?;
    println!("{}", answer.token);
    Ok(())
}
