//! Human output for deployments and revisions, and `--wait`: live progress until a
//! deployment ends (a progress bar on a terminal, one line per change otherwise).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use fleetmesh_model::{
    DeploymentStatus, EpochSeconds, GetDeploymentOutput, GetDeploymentTargetOutput, GetRevisionDistributionOutput,
    LifecycleErrorCode, LifecycleEventStatus, ListApplicationRevisionsOutput, TargetStatus, TargetWave,
};
use fleetmesh_state::model::ids::DeploymentId;

use super::client::ApiClient;
use super::deploy::deployment;
use super::table::{spelled, Table};

/// A blue/green deployment's phase, green's share during a shift, and how to end a
/// wait that waits for an operator.
fn print_blue_green(info: &fleetmesh_model::DeploymentInfo, phase: fleetmesh_state::model::blue_green::BlueGreenPhase) {
    use fleetmesh_state::model::blue_green::BlueGreenPhase;
    let share = info.green_traffic_percent.map(|percent| format!("   green gets {percent} % of new connections"));
    println!("blue/green   {phase:?}{}", share.unwrap_or_default());
    let wait = match phase {
        _ if info.status.is_terminal() => None,
        BlueGreenPhase::Ready => Some("READY_WAIT"),
        BlueGreenPhase::TerminationWait => Some("TERMINATION_WAIT"),
        _ => None,
    };
    if let Some(wait) = wait {
        println!(
            "             continue now: fleetmesh deploy continue-deployment --deployment-id {} \
             --deployment-wait-type {wait}",
            info.deployment_id
        );
    }
}

/// Exit code when a deployment ends in anything but Succeeded.
pub(crate) const EXIT_DEPLOYMENT_NOT_SUCCEEDED: u8 = 3;

/// Prints `get-deployment` for humans.
pub(crate) fn print_deployment(answer: &GetDeploymentOutput) {
    let info = &answer.deployment_info;
    println!("deployment   {}", info.deployment_id);
    println!("status       {}", spelled(&info.status));
    println!("application  {}   group {}", info.application_name, info.deployment_group_name);
    println!("revision     {}", info.revision_id);
    println!(
        "config       {}   creator {}   waves {}",
        info.deployment_config_name,
        spelled(&info.creator),
        info.waves
    );
    let overview = &info.deployment_overview;
    println!(
        "targets      {} succeeded, {} failed, {} skipped, {} in progress, {} pending",
        overview.Succeeded, overview.Failed, overview.Skipped, overview.InProgress, overview.Pending
    );
    if let Some(phase) = info.blue_green_phase {
        print_blue_green(info, phase);
    }
    if let Some(error) = &info.error_information {
        println!("error        {}: {}", spelled(&error.code), error.message);
    }
    if let Some(by) = &info.created_by {
        println!("created by   {by}");
    }
    if let Some(by) = &info.stopped_by {
        println!("stopped by   {by}");
    }
    if let Some(rollback) = &info.rollback_info {
        println!("rollback     {}", rollback.rollback_message);
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
pub(crate) fn print_deployments(client: &ApiClient, ids: &[DeploymentId]) -> anyhow::Result<()> {
    let mut table = Table::new(&["DEPLOYMENT", "STATUS", "APPLICATION", "GROUP", "CREATED (UTC)", "COMPLETED (UTC)"]);
    for id in ids.iter().take(LISTED_DEPLOYMENTS_MAX) {
        let answer: GetDeploymentOutput = client.call("GetDeployment", &deployment(&id.0))?;
        let info = answer.deployment_info;
        table.row(vec![
            id.to_string(),
            spelled(&info.status),
            info.application_name,
            info.deployment_group_name,
            utc(Some(info.create_time)),
            utc(info.complete_time),
        ]);
    }
    print!("{}", table.render());
    if ids.len() > LISTED_DEPLOYMENTS_MAX {
        println!("… and {} older (--json lists every id)", ids.len() - LISTED_DEPLOYMENTS_MAX);
    }
    Ok(())
}

/// A time as UTC, to the second; `-` when absent.
pub(crate) fn utc(time: Option<EpochSeconds>) -> String {
    match time {
        Some(time) => {
            let time = std::time::UNIX_EPOCH + Duration::from_millis(time.as_millis());
            let text = fleetmesh_node::agent::script_log::rfc3339_utc(time);
            text.get(..19).map_or(text.clone(), |seconds| seconds.replace('T', " "))
        }
        None => "-".to_string(),
    }
}

/// A target's current event as a cell: `Install InProgress`, `-` before it starts.
fn current_event(target: &TargetWave) -> Option<String> {
    target.current_event.as_ref().map(|event| format!("{} {}", event.name, spelled(&event.status)))
}

/// Prints a deployment's targets with their current event.
///
/// # Errors
/// The API call failed.
pub(crate) fn print_targets(client: &ApiClient, deployment_id: &str) -> anyhow::Result<()> {
    let answer: GetDeploymentOutput = client.call("GetDeployment", &deployment(deployment_id))?;
    let mut table = Table::new(&["TARGET", "WAVE", "STATUS", "EVENT"]);
    for target in &answer.deployment_info.target_waves {
        let event = current_event(target).unwrap_or_else(|| "-".to_string());
        table.row(vec![target.target_id.clone(), target.wave.to_string(), spelled(&target.status), event]);
    }
    print!("{}", table.render());
    Ok(())
}

/// Prints `get-deployment-target` for humans.
pub(crate) fn print_target(answer: &GetDeploymentTargetOutput) {
    let deployment_target = &answer.deployment_target;
    let (events, hook) = match (&deployment_target.instance_target, &deployment_target.lambda_target) {
        (Some(target), _) => {
            println!("target {}   status {}   wave {}", target.target_id, spelled(&target.status), target.wave);
            (&target.lifecycle_events, None)
        }
        (None, Some(target)) => {
            let info = &target.lambda_function_info;
            println!(
                "target {}   status {}   version {} -> {}   weight {:.0} %",
                target.target_id,
                spelled(&target.status),
                info.current_version,
                info.target_version,
                info.target_version_weight * 100.0
            );
            let hook =
                target.lifecycle_events.iter().find_map(|event| event.lifecycle_event_hook_execution_id.as_deref());
            (&target.lifecycle_events, hook)
        }
        (None, None) => match &deployment_target.ecs_target {
            Some(target) => {
                println!("target {}   status {}", target.target_id, spelled(&target.status));
                for set in &target.task_sets_info {
                    println!(
                        "  {} task set {}   {:.0} % of production traffic",
                        set.task_set_label, set.identifer, set.traffic_weight
                    );
                }
                let hook =
                    target.lifecycle_events.iter().find_map(|event| event.lifecycle_event_hook_execution_id.as_deref());
                (&target.lifecycle_events, hook)
            }
            None => return println!("the target has no record"),
        },
    };
    if let Some(hook) = hook {
        println!("waiting for hook execution {hook} (put-lifecycle-event-hook-execution-status)");
    }
    let mut table = Table::new(&["EVENT", "STATUS", "DURATION", "DIAGNOSTICS"]);
    for event in events {
        let duration = match (event.start_time, event.end_time) {
            (Some(start), Some(end)) => format!("{:.1}s", end.secs_since(start)),
            _ => "-".to_string(),
        };
        let summary = match &event.diagnostics {
            Some(diagnostics) if diagnostics.error_code != LifecycleErrorCode::Success => {
                format!("{}: {}", spelled(&diagnostics.error_code), diagnostics.message)
            }
            _ => String::new(),
        };
        table.row(vec![event.lifecycle_event_name.to_string(), spelled(&event.status), duration, summary]);
    }
    print!("{}", table.render());
    for event in events {
        let tail = event.diagnostics.as_ref().map(|diagnostics| diagnostics.log_tail.as_str()).unwrap_or_default();
        if event.status == LifecycleEventStatus::Failed && !tail.is_empty() {
            println!("\n--- {} output (last 4 KiB) ---\n{}", event.lifecycle_event_name, tail.trim_end());
        }
    }
}

/// Prints `list-application-revisions` for humans.
pub(crate) fn print_revisions(answer: &ListApplicationRevisionsOutput) {
    let mut table = Table::new(&["REVISION", "SIZE", "CHUNKS", "FILES", "DESCRIPTION"]);
    for revision in &answer.revisions {
        table.row(vec![
            revision.revision_id.to_string(),
            human_bytes(revision.size_bytes),
            revision.chunk_count.to_string(),
            revision.files.to_string(),
            revision.description.clone(),
        ]);
    }
    print!("{}", table.render());
}

/// Prints `get-revision-distribution` for humans.
pub(crate) fn print_distribution(answer: &GetRevisionDistributionOutput) {
    let size = answer.size;
    println!("revision {}   {}", answer.revision_id, human_bytes(size));
    let mut table = Table::new(&["NODE", "HELD", "COMPLETE"]);
    for node in &answer.nodes {
        let held = node.bytes_held;
        let percent = if size == 0 { 100.0 } else { held as f64 * 100.0 / size as f64 };
        table.row(vec![
            node.id.to_string(),
            format!("{} ({percent:.0}%)", human_bytes(held)),
            node.complete.to_string(),
        ]);
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

/// Follows a deployment until it ends. Exit code 0 if it succeeded, 3 otherwise. When it
/// failed or stopped and started a rollback, follows the rollback too (for humans) and
/// says how it ended, so "rolled back" is printed only when it is true.
///
/// # Errors
/// The API failed repeatedly.
pub(crate) fn wait_for_deployment(
    client: &ApiClient,
    deployment_id: &str,
    json_output: bool,
) -> anyhow::Result<ExitCode> {
    let answer = follow(client, deployment_id, json_output)?;
    let info = &answer.deployment_info;
    if json_output {
        println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
    } else {
        print_deployment(&answer);
    }
    let rollback = info.rollback_info.as_ref().and_then(|rollback| rollback.rollback_deployment_id.as_ref());
    if let (false, Some(rollback)) = (json_output, rollback) {
        println!("following rollback {rollback} …");
        let rolled = follow(client, &rollback.0, false)?;
        println!("rollback {rollback}: {}", spelled(&rolled.deployment_info.status));
        let again: GetDeploymentOutput = client.call("GetDeployment", &deployment(deployment_id))?;
        if let Some(rollback) = &again.deployment_info.rollback_info {
            println!("rollback     {}", rollback.rollback_message);
        }
    }
    Ok(if info.status == DeploymentStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DEPLOYMENT_NOT_SUCCEEDED)
    })
}

/// Shows a deployment's progress until it ends, and returns its last answer.
fn follow(client: &ApiClient, deployment_id: &str, json_output: bool) -> anyhow::Result<GetDeploymentOutput> {
    let terminal = std::io::stderr().is_terminal() && !json_output;
    let bar = terminal.then(progress_bar);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut failures = 0u32;
    // Bounded by the deployment's own deadline (the engine fails it on TIMEOUT) and by
    // consecutive API failures.
    loop {
        let answer: GetDeploymentOutput = match client.call("GetDeployment", &deployment(deployment_id)) {
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
        let info = &answer.deployment_info;
        let targets = &info.target_waves;
        let done = targets.iter().filter(|target| target.status.is_terminal()).count();
        print_changed_targets(targets, &mut seen, bar.as_ref(), json_output);
        if let Some(bar) = &bar {
            bar.set_length(targets.len() as u64);
            bar.set_position(done as u64);
            bar.set_message(format!("{} (wave {})", spelled(&info.status), info.waves));
        }
        if info.status.is_terminal() {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            return Ok(answer);
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
    targets: &[TargetWave],
    seen: &mut BTreeMap<String, String>,
    bar: Option<&indicatif::ProgressBar>,
    json_output: bool,
) {
    for target in targets {
        // A target that has not started belongs to no wave yet.
        if target.status == TargetStatus::Pending && target.current_event.is_none() {
            continue;
        }
        let line = format!(
            "wave {} node {}: {}{}",
            target.wave,
            target.target_id,
            spelled(&target.status),
            current_event(target).map(|event| format!(" ({event})")).unwrap_or_default()
        );
        if seen.get(&target.target_id) != Some(&line) {
            match bar {
                Some(bar) => bar.println(&line),
                None if !json_output => println!("{line}"),
                None => {}
            }
            seen.insert(target.target_id.clone(), line);
        }
    }
}
