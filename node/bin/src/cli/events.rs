//! `fleetmesh events`: the deployment event log, printed or followed.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use fleetmesh_model::{EventInfo, ListEventsInput, ListEventsOutput, EVENTS_PAGE_MAX};
use fleetmesh_state::model::ids::DeploymentId;

use super::client::{ApiClient, ClientError};
use super::watch::utc;

/// `fleetmesh events`.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Keep printing new events as they happen (Server-Sent Events from
    /// GET /v1/events), reconnecting from the last one seen; stop with Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Only events numbered above N (numbers are cluster-wide and never reused).
    #[arg(long, value_name = "N", default_value_t = 0)]
    since: u64,
    /// Only this application's events.
    #[arg(long, value_name = "NAME")]
    application_name: Option<String>,
    /// Only this deployment group's events.
    #[arg(long, value_name = "NAME")]
    deployment_group_name: Option<String>,
    /// Only this deployment's events.
    #[arg(long, value_name = "ID")]
    deployment_id: Option<String>,
    /// Print one JSON object per line ({"id","time","type","applicationName",
    /// "deploymentGroupName","deploymentId", and "targetId", "lifecycleEventName",
    /// "status", "message" where they apply}).
    #[arg(long)]
    json: bool,
}

/// How long `--follow` waits before reconnecting after the stream broke.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

pub(crate) fn run(client: &ApiClient, args: EventsArgs) -> anyhow::Result<()> {
    let mut input = ListEventsInput {
        since: args.since,
        application_name: args.application_name.clone(),
        deployment_group_name: args.deployment_group_name.clone(),
        deployment_id: args.deployment_id.clone().map(DeploymentId),
        max_items: Some(EVENTS_PAGE_MAX),
    };
    if args.follow {
        return follow(client, &args, input.since);
    }
    // Page by page up to the newest event when the command started.
    loop {
        let page: ListEventsOutput = client.call("ListEvents", &input).context("ListEvents")?;
        for event in &page.events {
            print(event, args.json)?;
        }
        if page.next_since >= page.last_event_id || page.next_since == input.since {
            return Ok(());
        }
        input.since = page.next_since;
    }
}

/// Follows the stream from `since`, reconnecting with the last number seen.
/// Runs until interrupted, or until the events it needs are purged.
fn follow(client: &ApiClient, args: &EventsArgs, mut since: u64) -> anyhow::Result<()> {
    // Bounded by the operator: --follow runs until Ctrl-C, as `tail -f` does.
    loop {
        let path = stream_path(args, since);
        match client.stream(&path) {
            Ok(lines) => {
                let broke = read_stream(lines, args.json, &mut since)?;
                eprintln!("fleetmesh: the event stream ended ({broke}); reconnecting after event {since}");
            }
            Err(ClientError::Api { status: 410, message }) => anyhow::bail!("{message}"),
            Err(error @ (ClientError::Unauthorized(_) | ClientError::Api { .. })) => return Err(error.into()),
            Err(error) => eprintln!("fleetmesh: {error}; retrying after event {since}"),
        }
        std::thread::sleep(RECONNECT_AFTER);
    }
}

fn stream_path(args: &EventsArgs, since: u64) -> String {
    let mut path = format!("/v1/events?since={since}");
    let filters = [
        ("applicationName", &args.application_name),
        ("deploymentGroupName", &args.deployment_group_name),
        ("deploymentId", &args.deployment_id),
    ];
    for (name, value) in filters {
        if let Some(value) = value {
            path.push_str(&format!("&{name}={}", percent_encode(value)));
        }
    }
    path
}

/// `value` with everything but unreserved URL characters percent-encoded.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(byte).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Prints the events of one connection, moving `since` past each. Returns why the
/// connection ended, or the server's error event as an error.
fn read_stream(lines: impl BufRead, json: bool, since: &mut u64) -> anyhow::Result<String> {
    let mut error_event = false;
    for line in lines.lines() {
        let line = match line {
            Ok(line) => line,
            Err(error) => return Ok(error.to_string()),
        };
        if line == "event: error" {
            error_event = true;
        } else if let Some(data) = line.strip_prefix("data: ") {
            if error_event {
                anyhow::bail!("the event stream stopped: {data}");
            }
            let event: EventInfo =
                serde_json::from_str(data).with_context(|| format!("an event the API sent is not valid: {data}"))?;
            print(&event, json)?;
            *since = event.id;
        }
    }
    Ok("the connection closed".into())
}

fn print(event: &EventInfo, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(event)?)?;
    } else {
        let what = &event.what;
        let detail = [
            &what.target_id.as_ref().map(|id| format!("target {id}")),
            &what.lifecycle_event_name,
            &what.status,
            &what.message,
        ];
        let detail: Vec<&str> = detail.into_iter().flatten().map(String::as_str).collect();
        writeln!(
            out,
            "{:>6}  {}  {}  {}/{}  {:?}  {}",
            event.id,
            utc(Some(event.time)),
            what.deployment_id,
            what.application_name,
            what.deployment_group_name,
            what.kind,
            detail.join("  ")
        )?;
    }
    // Followers read it as it comes (a pipe would otherwise hold it back).
    out.flush()?;
    Ok(())
}
