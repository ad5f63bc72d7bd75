//! The deployment event log from outside: `GET /v1/events` (Server-Sent Events) and
//! `fleetmesh events`. A client that reconnects with the last number it saw, to
//! another node after the leader was killed, misses nothing and sees nothing twice.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use fleetmesh_model::{DeploymentStatus, GetDeploymentOutput};
use fleetmesh_tests::{http_agent_within, parse_metric, wait_until, write_bundle, Options, TestCluster};
use serde_json::Value;

const APPSPEC: &str = "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/app\n";

/// Reads node `via`'s event stream, resuming after `since` (as `Last-Event-ID`), until
/// `enough` holds for what was read or the connection ends. Checks that each frame's
/// `id:` is its event's number.
fn read_stream(cluster: &TestCluster, via: u32, since: u64, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let agent = http_agent_within(Some(&cluster.ca_bundle(via)), Duration::from_secs(120));
    let url = format!("{}/v1/events", cluster.api_url(via));
    let Ok(response) = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {}", cluster.admin_token))
        .header("Last-Event-ID", &since.to_string())
        .call()
    else {
        return Vec::new();
    };
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").and_then(|value| value.to_str().ok());
    assert_eq!(content_type, Some("text/event-stream"));
    let mut events = Vec::new();
    let mut frame_id = None;
    let reader = BufReader::new(response.into_body().into_with_config().limit(u64::MAX).reader());
    for line in reader.lines() {
        let Ok(line) = line else { break };
        if let Some(id) = line.strip_prefix("id: ") {
            frame_id = id.parse::<u64>().ok();
        } else if let Some(data) = line.strip_prefix("data: ") {
            let event: Value = serde_json::from_str(data).expect("an event is JSON");
            assert_eq!(event["id"].as_u64(), frame_id.take(), "the frame's id is its event's number: {event}");
            events.push(event);
            if enough(&events) {
                break;
            }
        }
    }
    events
}

/// Whether `events` hold deployment `id`'s final status.
fn ended(events: &[Value], id: &str) -> bool {
    events.iter().any(|event| {
        event["deploymentId"] == id
            && event["type"] == "DeploymentStatusChanged"
            && matches!(event["status"].as_str(), Some("Succeeded" | "Failed" | "Stopped"))
    })
}

fn deployment_id(answer: &GetDeploymentOutput) -> String {
    assert_eq!(answer.deployment_info.status, DeploymentStatus::Succeeded, "{answer:?}");
    answer.deployment_info.deployment_id.to_string()
}

#[test]
fn the_event_stream_resumes_on_another_node_after_a_leader_kill_without_gaps_or_repeats() {
    let mut cluster = TestCluster::start(3, Options::default());
    cluster.wait_alive(3, Duration::from_secs(60));
    // Events are numbered from the feature level that brought them: wait for it.
    let level = u64::from(fleetmesh_state::FeatureLevel::EVENTS.0);
    wait_until("the events feature level", Duration::from_secs(60), || {
        cluster.status(1).filter(|status| status["feature_level"].as_u64() >= Some(level))
    });
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    cluster.create_group("web", &["--tag", "role=web", "--deployment-config-name", "CodeDeployDefault.OneAtATime"]);
    let work = tempfile::tempdir().expect("tempdir");
    write_bundle(work.path(), &[("appspec.yml", APPSPEC, 0o644), ("site/index.html", "one\n", 0o644)]);
    let revision = cluster.push(1, "app", work.path());
    let first = deployment_id(&cluster.deploy_and_wait(1, "app", "web", &revision, &[]));

    // From the start, on the leader: the first deployment's story, numbered from 1.
    let leader = wait_until("a leader", Duration::from_secs(30), || cluster.leader_index(1));
    let mut seen = read_stream(&cluster, leader, 0, |events| ended(events, &first));
    let story: Vec<(String, String)> = seen
        .iter()
        .filter(|event| event["targetId"].is_null())
        .map(|event| (event["type"].as_str().unwrap_or("").into(), event["status"].as_str().unwrap_or("").into()))
        .collect();
    assert_eq!(story.first(), Some(&("DeploymentStatusChanged".into(), "Created".into())), "{story:?}");
    assert_eq!(story.iter().filter(|(kind, _)| kind == "WaveStarted").count(), 3, "one host per wave: {story:?}");
    let succeeded =
        seen.iter().filter(|event| event["type"] == "TargetStatusChanged" && event["status"] == "Succeeded");
    assert_eq!(succeeded.count(), 3, "every host's success is one event");

    // Following the leader while it is killed: the stream ends with the process.
    let last = seen.last().and_then(|event| event["id"].as_u64()).expect("events");
    let follower = {
        let (api, ca, token) = (cluster.api_url(leader), cluster.ca_bundle(leader), cluster.admin_token.clone());
        std::thread::spawn(move || {
            let agent = http_agent_within(Some(&ca), Duration::from_secs(120));
            let response = agent
                .get(&format!("{api}/v1/events?since={last}"))
                .header("Authorization", &format!("Bearer {token}"))
                .call();
            let lines = response.map(|response| {
                BufReader::new(response.into_body().into_with_config().limit(u64::MAX).reader())
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|line| line.strip_prefix("data: ").map(serde_json::from_str::<Value>))
                    .map(|event| event.expect("an event is JSON"))
                    .collect::<Vec<_>>()
            });
            lines.unwrap_or_default()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    cluster.kill9(leader);
    let mut during = follower.join().expect("the follower thread");
    seen.append(&mut during);
    let survivor = cluster.live_indices()[0];
    wait_until("a new leader", Duration::from_secs(30), || {
        cluster.leader_index(survivor).filter(|index| *index != leader)
    });

    // A second deployment under the new leader, read by reconnecting to a survivor with
    // the last number seen.
    // (It fails: the dead host is still a member of the group. Its events are as good.)
    let second = cluster.deploy_and_wait(survivor, "app", "web", &revision, &[]).deployment_info;
    let (second, second_status) = (second.deployment_id.to_string(), format!("{:?}", second.status));
    let resume_from = seen.last().and_then(|event| event["id"].as_u64()).unwrap_or(last);
    let mut after = read_stream(&cluster, survivor, resume_from, |events| ended(events, &second));
    assert!(ended(&after, &second), "the survivor's stream reaches the second deployment's end: {after:?}");
    seen.append(&mut after);
    let ids: Vec<u64> = seen.iter().filter_map(|event| event["id"].as_u64()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "no gap and no number twice");
    for event in &seen {
        assert_eq!(
            (event["applicationName"].as_str(), event["deploymentGroupName"].as_str()),
            (Some("app"), Some("web"))
        );
        assert!(event["time"].as_f64().is_some_and(|time| time > 1.7e9), "time in epoch seconds: {event}");
    }

    // Every node counts the same outcomes from the same log in /metrics: the first
    // deployment's success and the second's end, with their durations.
    for index in cluster.live_indices() {
        let text = wait_until("the outcomes in /metrics", Duration::from_secs(10), || {
            let text = cluster.metrics_text(index)?;
            (parse_metric(&text, "fleetmesh_deployments_completed_total")? >= 2).then_some(text)
        });
        let outcome = |status: &str| {
            text.lines().any(|line| {
                line.starts_with("fleetmesh_deployments_completed_total{")
                    && line.contains("platform=\"Server\"")
                    && line.contains(&format!("status=\"{status}\""))
            })
        };
        assert!(outcome("Succeeded") && outcome(&second_status), "{text}");
        let durations = parse_metric(&text, "fleetmesh_deployment_duration_seconds_count").unwrap_or(0);
        assert!(durations >= 2, "each outcome is timed: {text}");
        let lifecycle = parse_metric(&text, "fleetmesh_lifecycle_event_duration_seconds_count").unwrap_or(0);
        assert!(lifecycle >= 3 * 5, "every host's lifecycle events are timed: {text}");
        assert!(text.contains("fleetmesh_lifecycle_event_duration_seconds_bucket{"), "{text}");
        assert!(text.contains("fleetmesh_targets_in_flight{"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics text ends with # EOF");
    }

    // Retention is a cluster setting, checked: a bad one changes nothing.
    let refused = cluster.cli(survivor, &["cluster", "set-deployment-retention", "--max-deployments", "5"]);
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success() && said.contains("maxDeployments 5 is outside 10..=1000000"), "{said}");
    let set = cluster.ok(survivor, &["cluster", "set-deployment-retention", "--max-age-days", "30"]);
    assert!(set.contains("keeping at most 10000 deployments; finished ones for 30 days"), "{set}");

    // The CLI lists the same log, and filters it.
    let listed: Vec<Value> = cluster
        .ok(survivor, &["events", "--json"])
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event per line"))
        .collect();
    // The same events as streamed, and maybe later ones (the failed deployment's rollback).
    assert!(listed.len() >= seen.len(), "{} listed, {} streamed", listed.len(), seen.len());
    assert_eq!(listed[..seen.len()], seen[..]);
    let listed_ids: Vec<u64> = listed.iter().filter_map(|event| event["id"].as_u64()).collect();
    assert_eq!(listed_ids, (1..=listed.len() as u64).collect::<Vec<_>>());
    let only_second = cluster.ok(survivor, &["events", "--json", "--deployment-id", &second, "--since", "1"]);
    assert!(only_second.lines().all(|line| line.contains(&second)) && only_second.lines().count() > 5, "{only_second}");
    let table = cluster.ok(survivor, &["events", "--deployment-id", &first]);
    assert!(table.contains("TargetStatusChanged") && table.contains(&first), "{table}");

    // Bad resumption points are refused with 400, not streamed.
    let agent = cluster.http();
    for (query, header) in [("?since=x", None), ("", Some("twelve"))] {
        let mut request = agent
            .get(&format!("{}/v1/events{query}", cluster.api_url(survivor)))
            .header("Authorization", &format!("Bearer {}", cluster.admin_token));
        if let Some(header) = header {
            request = request.header("Last-Event-ID", header);
        }
        let response = request.call().expect("an answer");
        assert_eq!(response.status().as_u16(), 400, "{query} {header:?}");
    }
}
