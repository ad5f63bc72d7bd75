//! Alarm gates from outside, against a stand-in Prometheus that serves the query API's
//! JSON: an alarm that fires mid-deployment stops it with `ALARM_ACTIVE` and rolls it
//! back (`DEPLOYMENT_STOP_ON_ALARM`); an alarm that cannot be read stops a deployment
//! unless `ignorePollAlarmFailure` is set. CloudWatch alarms: `alarms_cloudwatch.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_model::{DeploymentInfo, DeploymentStatus, ErrorCode};
use fleetmesh_tests::{wait_until, write_bundle, HttpStub, Options, StubRequest, TestCluster};

pub(super) const APPSPEC: &str = "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/app\n";

/// Each host takes a few seconds, so the alarm has time to fire mid-deployment.
pub(super) const SLOW_APPSPEC: &str = "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/app\n\
                            hooks:\n  AfterInstall:\n    - location: hooks/slow.sh\n      timeout: 60\n";

fn alarm_configuration(url: &str, ignore_poll_failure: bool) -> String {
    format!(
        r#"{{"enabled":true,"ignorePollAlarmFailure":{ignore_poll_failure},"alarms":[{{"name":"errors",
            "prometheus":{{"url":"{url}","query":"sum(rate(http_errors_total[1m]))","threshold":5,
            "comparisonOperator":"GreaterThanThreshold"}}}}]}}"#
    )
}

pub(super) fn set_alarms(cluster: &TestCluster, configuration: &str) {
    let mut command = vec!["deploy", "update-deployment-group", "--application-name", "app"];
    command.extend(["--current-deployment-group-name", "web", "--alarm-configuration", configuration]);
    cluster.ok(1, &command);
}

pub(super) fn ended(cluster: &TestCluster, id: &str) -> DeploymentInfo {
    cluster.wait_deployment(id, Duration::from_secs(180)).deployment_info
}

pub(super) fn error_of(info: &DeploymentInfo) -> (Option<ErrorCode>, String) {
    let error = info.error_information.as_ref();
    (error.map(|error| error.code), error.map(|error| error.message.clone()).unwrap_or_default())
}

#[test]
fn a_prometheus_alarm_stops_and_rolls_back_and_unreadable_alarms_follow_ignore_poll_alarm_failure() {
    let cluster = TestCluster::start(3, Options::default());
    cluster.wait_alive(3, Duration::from_secs(60));
    let level = u64::from(fleetmesh_state::FeatureLevel::ALARMS.0);
    wait_until("the alarms feature level", Duration::from_secs(60), || {
        cluster.status(1).filter(|status| status["feature_level"].as_u64() >= Some(level))
    });
    // The error rate the stand-in Prometheus reports.
    let rate = Arc::new(AtomicU64::new(0f64.to_bits()));
    let reported = rate.clone();
    let prometheus = HttpStub::start(Arc::new(move |request: &StubRequest| {
        if !request.target.starts_with("/api/v1/query?") {
            return (404, String::new());
        }
        let value = f64::from_bits(reported.load(Ordering::SeqCst));
        let answer = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1.7e9,"{value}"]}}]}}}}"#
        );
        (200, answer)
    }));
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);

    let rollback_events = r#"{"enabled":true,"events":["DEPLOYMENT_FAILURE","DEPLOYMENT_STOP_ON_ALARM"]}"#;
    cluster.create_group(
        "web",
        &[
            "--tag",
            "role=web",
            "--deployment-config-name",
            "CodeDeployDefault.OneAtATime",
            "--auto-rollback-configuration",
            rollback_events,
            "--alarm-configuration",
            &alarm_configuration(&prometheus.url, false),
        ],
    );
    let work = tempfile::tempdir().expect("tempdir");
    let (quick, slow) = (work.path().join("quick"), work.path().join("slow"));
    write_bundle(&quick, &[("appspec.yml", APPSPEC, 0o644), ("site/index.html", "one\n", 0o644)]);
    write_bundle(
        &slow,
        &[
            ("appspec.yml", SLOW_APPSPEC, 0o644),
            ("site/index.html", "two\n", 0o644),
            ("hooks/slow.sh", "#!/bin/sh\nsleep 3\n", 0o755),
        ],
    );
    let (quick, slow) = (cluster.push(1, "app", &quick), cluster.push(1, "app", &slow));

    // A quiet alarm lets a deployment through; it was read.
    let first = cluster.deploy_and_wait(1, "app", "web", &quick, &[]).deployment_info;
    assert_eq!(first.status, DeploymentStatus::Succeeded, "{first:?}");
    let queries = prometheus.requests();
    assert!(
        queries.iter().any(|request| request.target.contains("query=sum(rate(http_errors_total%5B1m%5D))")),
        "the query reached Prometheus: {queries:?}"
    );

    // The error rate rises mid-deployment: stopped with ALARM_ACTIVE, rolled back.
    let second = cluster.start_deployment(1, "web", &slow);
    std::thread::sleep(Duration::from_secs(2));
    rate.store(12f64.to_bits(), Ordering::SeqCst);
    let stopped = ended(&cluster, &second);
    rate.store(0f64.to_bits(), Ordering::SeqCst);
    assert_eq!(stopped.status, DeploymentStatus::Stopped, "{stopped:?}");
    let (code, message) = error_of(&stopped);
    assert_eq!(code, Some(ErrorCode::AlarmActive));
    assert!(message.contains("alarm errors is on: value 12 GreaterThanThreshold 5"), "{message}");
    let rollback = stopped.rollback_info.as_ref().and_then(|info| info.rollback_deployment_id.clone());
    let rollback = ended(&cluster, &rollback.expect("DEPLOYMENT_STOP_ON_ALARM rolls back").0);
    assert_eq!(rollback.status, DeploymentStatus::Succeeded, "{rollback:?}");

    // Prometheus unreachable: a deployment stops, unless poll failures are ignored.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let unreachable = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    set_alarms(&cluster, &alarm_configuration(&unreachable, false));
    let third = cluster.deploy_and_wait(1, "app", "web", &slow, &[]).deployment_info;
    assert_eq!(third.status, DeploymentStatus::Stopped, "{third:?}");
    let (code, message) = error_of(&third);
    assert_eq!(code, Some(ErrorCode::AlarmActive));
    assert!(message.contains("alarm errors could not be read (ignorePollAlarmFailure is false)"), "{message}");
    if let Some(rollback) = third.rollback_info.as_ref().and_then(|info| info.rollback_deployment_id.clone()) {
        ended(&cluster, &rollback.0);
    }
    set_alarms(&cluster, &alarm_configuration(&unreachable, true));
    let fourth = cluster.deploy_and_wait(1, "app", "web", &slow, &[]).deployment_info;
    assert_eq!(fourth.status, DeploymentStatus::Succeeded, "ignorePollAlarmFailure lets it through: {fourth:?}");

    // The leader counted its polls by result in /metrics (summed over nodes: whoever led).
    let polls = |result: &str| -> u64 {
        let result = format!("result=\"{result}\"");
        let line_value = |text: String| {
            text.lines()
                .filter(|line| line.starts_with("fleetmesh_alarm_polls_total{"))
                .filter(|line| line.contains("kind=\"prometheus\"") && line.contains(&result))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
                .sum::<u64>()
        };
        cluster.live_indices().into_iter().filter_map(|index| cluster.metrics_text(index)).map(line_value).sum()
    };
    assert!(polls("firing") >= 1 && polls("ok") >= 1 && polls("failed") >= 2, "polls by result");
}
