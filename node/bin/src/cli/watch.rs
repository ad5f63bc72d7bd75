//! Human output for deployments and revisions, and `--wait`: live progress until a
//! deployment ends (a progress bar on a terminal, one line per change otherwise).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::ApiClient;
use super::table::Table;

/// Exit code when a deployment ends in anything but Succeeded.
pub(crate) const EXIT_DEPLOYMENT_NOT_SUCCEEDED: u8 = 3;

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// Prints `get-deployment` for humans.
pub(crate) fn print_deployment(answer: &Value) {
    let info = &answer["deploymentInfo"];
    println!("deployment   {}", text(&info["deploymentId"]));
    println!("status       {}", text(&info["status"]));
    println!("application  {}   group {}", text(&info["applicationName"]), text(&info["deploymentGroupName"]));
    println!("revision     {}", text(&info["revisionId"]));
    println!(
        "config       {}   creator {}   waves {}",
        text(&info["deploymentConfigName"]),
        text(&info["creator"]),
        text(&info["waves"])
    );
    let overview = &info["deploymentOverview"];
    println!(
        "targets      {} succeeded, {} failed, {} skipped, {} in progress, {} pending",
        text(&overview["Succeeded"]),
        text(&overview["Failed"]),
        text(&overview["Skipped"]),
        text(&overview["InProgress"]),
        text(&overview["Pending"])
    );
    if !info["errorInformation"].is_null() {
        println!(
            "error        {}: {}",
            text(&info["errorInformation"]["code"]),
            text(&info["errorInformation"]["message"])
        );
    }
    if !info["rollbackInfo"].is_null() {
        println!("rollback     {}", text(&info["rollbackInfo"]["rollbackMessage"]));
    }
}

/// Most deployments `list-deployments` describes in its table (newest first); `--json`
/// lists every id.
const LISTED_DEPLOYMENTS_MAX: usize = 50;

/// Prints `list-deployments` for humans: the newest deployments with their status, group
/// and times (one `GetDeployment` each).
///
/// # Errors
/// An API call failed.
pub(crate) fn print_deployments(client: &ApiClient, ids: &Value) -> anyhow::Result<()> {
    let ids = ids.as_array().cloned().unwrap_or_default();
    let mut table = Table::new(&["DEPLOYMENT", "STATUS", "APPLICATION", "GROUP", "CREATED (UTC)", "COMPLETED (UTC)"]);
    for id in ids.iter().take(LISTED_DEPLOYMENTS_MAX) {
        let answer = client.post("/v1/deploy/GetDeployment", &json!({"deploymentId": id}))?;
        let info = &answer["deploymentInfo"];
        table.row(vec![
            text(id),
            text(&info["status"]),
            text(&info["applicationName"]),
            text(&info["deploymentGroupName"]),
            utc(&info["createTime"]),
            utc(&info["completeTime"]),
        ]);
    }
    print!("{}", table.render());
    if ids.len() > LISTED_DEPLOYMENTS_MAX {
        println!("… and {} older (--json lists every id)", ids.len() - LISTED_DEPLOYMENTS_MAX);
    }
    Ok(())
}

/// A time in milliseconds since the epoch as UTC, to the second; `-` when absent.
fn utc(millis: &Value) -> String {
    match millis.as_u64() {
        Some(millis) => {
            let time = std::time::UNIX_EPOCH + Duration::from_millis(millis);
            let text = fleetmesh_node::agent::script_log::rfc3339_utc(time);
            text.get(..19).map_or(text.clone(), |seconds| seconds.replace('T', " "))
        }
        None => "-".to_string(),
    }
}

/// Prints a deployment's targets with their current event.
///
/// # Errors
/// The API call failed.
pub(crate) fn print_targets(client: &ApiClient, deployment_id: &str) -> anyhow::Result<()> {
    let answer = client.post("/v1/deploy/GetDeployment", &json!({"deploymentId": deployment_id}))?;
    let mut table = Table::new(&["TARGET", "WAVE", "STATUS", "EVENT"]);
    for target in answer["deploymentInfo"]["targetWaves"].as_array().into_iter().flatten() {
        let event = &target["currentEvent"];
        let event = if event.is_null() {
            "-".to_string()
        } else {
            format!("{} {}", text(&event["name"]), text(&event["status"]))
        };
        table.row(vec![text(&target["targetId"]), text(&target["wave"]), text(&target["status"]), event]);
    }
    print!("{}", table.render());
    Ok(())
}

/// Prints `get-deployment-target` for humans.
pub(crate) fn print_target(answer: &Value) {
    let target = &answer["deploymentTarget"]["instanceTarget"];
    println!(
        "target {}   status {}   wave {}",
        text(&target["targetId"]),
        text(&target["status"]),
        text(&target["wave"])
    );
    let mut table = Table::new(&["EVENT", "STATUS", "DURATION", "DIAGNOSTICS"]);
    for event in target["lifecycleEvents"].as_array().into_iter().flatten() {
        let duration = match (event["startTime"].as_u64(), event["endTime"].as_u64()) {
            (Some(start), Some(end)) => format!("{:.1}s", end.saturating_sub(start) as f64 / 1000.0),
            _ => "-".to_string(),
        };
        let diagnostics = &event["diagnostics"];
        let summary = if diagnostics.is_null() || diagnostics["errorCode"] == "Success" {
            String::new()
        } else {
            format!("{}: {}", text(&diagnostics["errorCode"]), text(&diagnostics["message"]))
        };
        table.row(vec![text(&event["lifecycleEventName"]), text(&event["status"]), duration, summary]);
    }
    print!("{}", table.render());
    for event in target["lifecycleEvents"].as_array().into_iter().flatten() {
        let tail = event["diagnostics"]["logTail"].as_str().unwrap_or_default();
        if event["status"] == "Failed" && !tail.is_empty() {
            println!("\n--- {} output (last 4 KiB) ---\n{}", text(&event["lifecycleEventName"]), tail.trim_end());
        }
    }
}

/// Prints `list-application-revisions` for humans.
pub(crate) fn print_revisions(answer: &Value) {
    let mut table = Table::new(&["REVISION", "SIZE", "CHUNKS", "FILES", "DESCRIPTION"]);
    for revision in answer["revisions"].as_array().into_iter().flatten() {
        table.row(vec![
            text(&revision["revisionId"]),
            human_bytes(revision["sizeBytes"].as_u64().unwrap_or(0)),
            text(&revision["chunkCount"]),
            text(&revision["files"]),
            text(&revision["description"]),
        ]);
    }
    print!("{}", table.render());
}

/// Prints `get-revision-distribution` for humans.
pub(crate) fn print_distribution(answer: &Value) {
    let size = answer["size"].as_u64().unwrap_or(0);
    println!("revision {}   {}", text(&answer["revisionId"]), human_bytes(size));
    let mut table = Table::new(&["NODE", "HELD", "COMPLETE"]);
    for node in answer["nodes"].as_array().into_iter().flatten() {
        let held = node["bytesHeld"].as_u64().unwrap_or(0);
        let percent = if size == 0 { 100.0 } else { held as f64 * 100.0 / size as f64 };
        table.row(vec![text(&node["id"]), format!("{} ({percent:.0}%)", human_bytes(held)), text(&node["complete"])]);
    }
    print!("{}", table.render());
}

/// Bytes in KiB/MiB/GiB.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Follows a deployment until it ends. Exit code 0 if it succeeded, 3 otherwise.
///
/// # Errors
/// The API failed repeatedly.
pub(crate) fn wait_for_deployment(
    client: &ApiClient,
    deployment_id: &str,
    json_output: bool,
) -> anyhow::Result<ExitCode> {
    let terminal = std::io::stderr().is_terminal() && !json_output;
    let bar = terminal.then(progress_bar);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut failures = 0u32;
    // Bounded by the deployment's own deadline (the engine fails it on TIMEOUT) and by
    // consecutive API failures.
    loop {
        let answer = match client.post("/v1/deploy/GetDeployment", &json!({"deploymentId": deployment_id})) {
            Ok(answer) => {
                failures = 0;
                answer
            }
            Err(error) if failures < 40 => {
                failures += 1;
                if failures == 1 {
                    eprintln!("waiting for the API: {error}");
                }
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let info = &answer["deploymentInfo"];
        let targets = info["targetWaves"].as_array().cloned().unwrap_or_default();
        let done = targets
            .iter()
            .filter(|target| matches!(target["status"].as_str(), Some("Succeeded" | "Failed" | "Skipped")))
            .count();
        print_changed_targets(&targets, &mut seen, bar.as_ref(), json_output);
        if let Some(bar) = &bar {
            bar.set_length(targets.len() as u64);
            bar.set_position(done as u64);
            bar.set_message(format!("{} (wave {})", text(&info["status"]), text(&info["waves"])));
        }
        let status = info["status"].as_str().unwrap_or_default().to_string();
        if matches!(status.as_str(), "Succeeded" | "Failed" | "Stopped") {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            if json_output {
                println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
            } else {
                print_deployment(&answer);
            }
            return Ok(if status == "Succeeded" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_DEPLOYMENT_NOT_SUCCEEDED)
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The spinner and bar shown on a terminal while a deployment runs.
fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} targets done  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Prints one line per target whose wave, status or current event changed since the last
/// answer (`seen` holds each target's last line).
fn print_changed_targets(
    targets: &[Value],
    seen: &mut BTreeMap<String, String>,
    bar: Option<&indicatif::ProgressBar>,
    json_output: bool,
) {
    for target in targets {
        let event = &target["currentEvent"];
        // A target that has not started belongs to no wave yet.
        if target["status"] == "Pending" && event.is_null() {
            continue;
        }
        let line = format!(
            "wave {} node {}: {}{}",
            text(&target["wave"]),
            text(&target["targetId"]),
            text(&target["status"]),
            if event.is_null() {
                String::new()
            } else {
                format!(" ({} {})", text(&event["name"]), text(&event["status"]))
            }
        );
        let key = text(&target["targetId"]);
        if seen.get(&key) != Some(&line) {
            match bar {
                Some(bar) => bar.println(&line),
                None if !json_output => println!("{line}"),
                None => {}
            }
            seen.insert(key, line);
        }
    }
}
