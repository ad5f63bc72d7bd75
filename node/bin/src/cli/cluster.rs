//! `fleetmesh cluster ...`.

use fleetmesh_model::{
    CreateJoinTokenInput, CreateJoinTokenOutput, DeleteJoinTokenInput, Empty, GetClusterOutput, ListJoinTokensInput,
    ListJoinTokensOutput, RemoveNodeInput, RotateApiTokenInput, RotateApiTokenOutput, SetDeploymentRetentionInput,
    SetDeploymentRetentionOutput,
};
use fleetmesh_state::model::members::ApiTokenKind;
use fleetmesh_state::Release;

use super::client::{ApiClient, ClientError};
use super::table::{spelled, Table};
use super::watch::utc;
use super::{ClusterCommand, SnapshotCommand};

/// `cluster status`.
fn status(client: &ApiClient, json: bool) -> Result<(), ClientError> {
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
    let mut table = Table::new(&["ID", "NAME", "ROLE", "HEALTH", "RELEASE", "ADDRESS", "API", "TAGS"]);
    for node in &view.nodes {
        let tags = node.tags.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(",");
        let mut id = node.id.to_string();
        if Some(node.id) == view.leader {
            id.push('*');
        }
        table.row(vec![
            id,
            or_dash(node.instance_name.clone()),
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

/// Runs a `cluster` verb.
///
/// # Errors
/// The API call failed.
pub(crate) fn run(client: &ApiClient, command: ClusterCommand) -> Result<(), ClientError> {
    match command {
        ClusterCommand::Status { json } => status(client, json),
        ClusterCommand::CreateJoinToken { ttl_secs, max_uses, description } => {
            let input = CreateJoinTokenInput { ttl_seconds: Some(ttl_secs), description, max_uses };
            create_join_token(client, &input)
        }
        ClusterCommand::ListJoinTokens { json } => list_join_tokens(client, json),
        ClusterCommand::DeleteJoinToken { token_id } => {
            client.call::<_, Empty>("DeleteJoinToken", &DeleteJoinTokenInput { token_id: token_id.clone() })?;
            println!("deleted join token {token_id}");
            Ok(())
        }
        ClusterCommand::CreateAccessKey { json } => super::access_keys::create(client, json),
        ClusterCommand::ListAccessKeys { json } => super::access_keys::list(client, json),
        ClusterCommand::DeleteAccessKey { access_key_id } => super::access_keys::delete(client, access_key_id),
        ClusterCommand::Snapshot { command: SnapshotCommand::Save { file } } => save_snapshot(client, &file),
        ClusterCommand::RemoveNode { id, node_id } => {
            // clap requires exactly one of the two.
            let node_id = id.or(node_id).unwrap_or_default();
            client.call::<_, Empty>("RemoveNode", &RemoveNodeInput { node_id })?;
            println!("removed node {node_id}; its certificate is refused from now on");
            Ok(())
        }
        ClusterCommand::SetDeploymentRetention { max_deployments, max_age_days } => {
            let input = SetDeploymentRetentionInput { max_deployments, max_age_days };
            let now: SetDeploymentRetentionOutput = client.call("SetDeploymentRetention", &input)?;
            println!(
                "keeping at most {} deployments; finished ones for {} days",
                now.max_deployments, now.max_age_days
            );
            Ok(())
        }
        ClusterCommand::RotateAdminToken => rotate_token(client, ApiTokenKind::Admin),
        ClusterCommand::RotateToken { kind } => {
            let kind = match kind.as_str() {
                "admin" => ApiTokenKind::Admin,
                "read-only" => ApiTokenKind::ReadOnly,
                _ => ApiTokenKind::Metrics,
            };
            rotate_token(client, kind)
        }
    }
}

/// `cluster snapshot save FILE`: written to a temporary name, then renamed, so FILE is
/// never half a snapshot.
fn save_snapshot(client: &ApiClient, file: &std::path::Path) -> Result<(), ClientError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let saved = client.get("/v1/cluster/snapshot")?;
    let write_error =
        |error: std::io::Error| ClientError::WriteFile { path: file.display().to_string(), reason: error.to_string() };
    let bytes = serde_json::to_vec(&saved).map_err(|error| ClientError::Decode(error.to_string()))?;
    let mut temp_name = file.file_name().unwrap_or_default().to_os_string();
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = file.with_file_name(temp_name);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(write_error)?;
    out.write_all(&bytes).and_then(|()| out.sync_all()).map_err(write_error)?;
    std::fs::rename(&temp, file).map_err(write_error)?;
    let last = saved["last_applied"]["index"].as_u64().unwrap_or_default();
    let members = saved["state"]["members"].as_object().map_or(0, serde_json::Map::len);
    println!(
        "saved the cluster state through entry {last} ({members} members, {} bytes) to {}",
        bytes.len(),
        file.display()
    );
    Ok(())
}

/// `cluster rotate-token`: the new token on stdout (for `$(...)`), what changed on stderr.
fn rotate_token(client: &ApiClient, kind: ApiTokenKind) -> Result<(), ClientError> {
    let answer: RotateApiTokenOutput = client.call("RotateApiToken", &RotateApiTokenInput { kind })?;
    println!("{}", answer.token);
    let note = match kind {
        ApiTokenKind::Admin => "; the old admin token no longer works (the first node's DIR/admin-token is removed)",
        ApiTokenKind::ReadOnly => "; it may call get-*, list-* and status, nothing that changes the cluster",
        ApiTokenKind::Metrics => "; it may only read /metrics (the first node's DIR/metrics-token is removed)",
    };
    eprintln!("new {kind} token{note}");
    Ok(())
}

/// `cluster create-join-token`: the token on stdout (for `$(...)`), its id and expiry on
/// stderr.
fn create_join_token(client: &ApiClient, input: &CreateJoinTokenInput) -> Result<(), ClientError> {
    let answer: CreateJoinTokenOutput = client.post_as("/v1/join-tokens", input)?;
    println!("{}", answer.token);
    let expires = match answer.expires_at {
        Some(time) => format!("expires {} UTC", utc(Some(time))),
        None => "never expires".to_string(),
    };
    let uses = input.max_uses.map_or(String::new(), |uses| format!(", admits {uses} node(s)"));
    if answer.token_id.is_empty() {
        eprintln!("join token {expires}{uses}");
    } else {
        eprintln!("join token {} {expires}{uses}", answer.token_id);
    }
    Ok(())
}

/// `cluster list-join-tokens`.
fn list_join_tokens(client: &ApiClient, json: bool) -> Result<(), ClientError> {
    let answer: ListJoinTokensOutput = client.call("ListJoinTokens", &ListJoinTokensInput {})?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
        return Ok(());
    }
    let mut table = Table::new(&["ID", "DESCRIPTION", "CREATED", "EXPIRES", "USES"]);
    for token in &answer.join_tokens {
        let expires = if token.expires_at.is_some() { utc(token.expires_at) } else { "never".to_string() };
        let uses = match token.max_uses {
            Some(max) => format!("{}/{max}", token.uses),
            None => token.uses.to_string(),
        };
        table.row(vec![token.token_id.clone(), token.description.clone(), utc(token.created_at), expires, uses]);
    }
    print!("{}", table.render());
    Ok(())
}
