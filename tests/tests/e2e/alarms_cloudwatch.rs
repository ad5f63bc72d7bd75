//! CloudWatch alarms in alarm gates, against moto's server: the client
//! (`fleetmesh_aws::CloudWatchAlarms`, `DescribeAlarms` over AWS JSON 1.0 signed with
//! Signature V4) reads alarm states as the chain's user and as an assumed role; a cluster
//! whose group names a CloudWatch alarm is stopped with `ALARM_ACTIVE` and rolled back
//! when the alarm goes to `ALARM` mid-deployment, and an alarm CloudWatch does not have
//! stops a deployment unless `ignorePollAlarmFailure` is set.

use std::time::Duration;

use fleetmesh_aws::{AlarmStateValue, AwsErrorKind, AwsSettings, CloudWatchAlarms};
use fleetmesh_model::{DeploymentStatus, ErrorCode};
use fleetmesh_tests::moto::Moto;
use fleetmesh_tests::{wait_until, write_bundle, Options, TestCluster};

use super::alarms::{ended, error_of, set_alarms, APPSPEC, SLOW_APPSPEC};

/// Metric alarms `HighErrors` and `Latency`, both `OK`, and IAM role `deployer`, whose
/// ARN it prints.
const SETUP: &str = r#"
import boto3
cloudwatch = boto3.client("cloudwatch")
for name in ["HighErrors", "Latency"]:
    cloudwatch.put_metric_alarm(AlarmName=name, MetricName=name, Namespace="App", Statistic="Sum", Period=60,
                                EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="quiet")
print(boto3.client("iam").create_role(RoleName="deployer", AssumeRolePolicyDocument="{}")["Role"]["Arn"])
"#;

/// Sets alarm `name` to `state` (`ALARM`, `OK`) with `reason`, as boto3 does.
fn set_state(moto: &Moto, name: &str, state: &str, reason: &str) {
    let script = format!(
        "import boto3\nboto3.client('cloudwatch').set_alarm_state(AlarmName='{name}', StateValue='{state}', \
         StateReason='{reason}')"
    );
    moto.python(&script);
}

/// The client reads `Latency` in `ALARM` (with its reason) and `HighErrors` in `OK`, and
/// leaves out a name moto does not have, as the environment's user and as role
/// `deployer` (assumed through STS: the request carries a session token); an endpoint
/// nobody listens on is a retryable `DispatchFailure`. (Env vars are set for this
/// process: nextest runs each test in its own.)
#[test]
fn the_cloudwatch_client_reads_alarm_states_on_moto_as_the_chains_user_and_as_a_role() {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    let role_arn = moto.python(SETUP).trim().to_string();
    set_state(&moto, "Latency", "ALARM", "p99 above 1 s");
    for (key, value) in moto.env() {
        std::env::set_var(key, value);
    }
    let names = ["HighErrors", "Latency", "NoSuchAlarm"].map(String::from);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        for role_arn in [None, Some(role_arn.clone())] {
            let settings = AwsSettings { role_arn, ..AwsSettings::default() };
            let client = CloudWatchAlarms::new(&settings.load().await, &settings);
            assert_eq!((client.endpoint(), client.region()), (moto.endpoint.as_str(), "us-east-1"));
            let mut states = client.describe_alarms(&names).await.expect("DescribeAlarms");
            states.sort_by(|one, other| one.name.cmp(&other.name));
            let seen: Vec<_> = states.iter().map(|state| (state.name.as_str(), &state.state)).collect();
            assert_eq!(seen, [("HighErrors", &AlarmStateValue::Ok), ("Latency", &AlarmStateValue::Alarm)]);
            assert_eq!((states[1].reason.as_str(), states[1].is_composite), ("p99 above 1 s", false));
        }

        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let nobody = format!("http://{}", closed.local_addr().expect("address"));
        drop(closed);
        let settings = AwsSettings { endpoint_url: Some(nobody), ..AwsSettings::default() };
        let client = CloudWatchAlarms::new(&settings.load().await, &settings);
        let error = client.describe_alarms(&names).await.expect_err("nobody answers");
        assert_eq!((error.code.as_str(), error.kind), ("DispatchFailure", AwsErrorKind::Retryable), "{error}");
    });
}

/// A 3-node cluster reaching moto, group `web` (one host at a time, each taking 3 s)
/// running as role `deployer` and gated on CloudWatch alarm `HighErrors`:
/// - `OK`: a deployment goes through;
/// - set to `ALARM` mid-deployment: the deployment ends `Stopped` with `ALARM_ACTIVE`
///   naming the alarm and its state, and its rollback (`DEPLOYMENT_STOP_ON_ALARM`) runs;
/// - an alarm name moto does not have: stopped (`ignorePollAlarmFailure` false, the
///   message naming the alarm), or let through (true).
#[test]
fn a_cloudwatch_alarm_in_alarm_stops_and_rolls_back_and_an_unknown_one_follows_ignore_poll_alarm_failure() {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    let role_arn = moto.python(SETUP).trim().to_string();
    let env: Vec<(String, String)> = moto.env().iter().map(|(key, value)| (key.to_string(), value.clone())).collect();
    let options = Options { env: (1..=3).map(|index| (index, env.clone())).collect(), ..Options::default() };
    let cluster = TestCluster::start(3, options);
    cluster.wait_alive(3, Duration::from_secs(60));
    let level = u64::from(fleetmesh_state::FeatureLevel::ALARMS.0);
    wait_until("the alarms feature level", Duration::from_secs(60), || {
        cluster.status(1).filter(|status| status["feature_level"].as_u64() >= Some(level))
    });
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    let rollback_events = r#"{"enabled":true,"events":["DEPLOYMENT_FAILURE","DEPLOYMENT_STOP_ON_ALARM"]}"#;
    let alarms = r#"{"enabled":true,"ignorePollAlarmFailure":false,"alarms":[{"name":"HighErrors"}]}"#;
    let mut flags = vec!["--tag", "role=web", "--deployment-config-name", "CodeDeployDefault.OneAtATime"];
    flags.extend(["--service-role-arn", &role_arn, "--auto-rollback-configuration", rollback_events]);
    flags.extend(["--alarm-configuration", alarms]);
    cluster.create_group("web", &flags);
    let work = tempfile::tempdir().expect("tempdir");
    let (quick, slow) = (work.path().join("quick"), work.path().join("slow"));
    write_bundle(&quick, &[("appspec.yml", APPSPEC, 0o644), ("site/index.html", "one\n", 0o644)]);
    let slow_files = [
        ("appspec.yml", SLOW_APPSPEC, 0o644),
        ("site/index.html", "two\n", 0o644),
        ("hooks/slow.sh", "#!/bin/sh\nsleep 3\n", 0o755),
    ];
    write_bundle(&slow, &slow_files);
    let (quick, slow) = (cluster.push(1, "app", &quick), cluster.push(1, "app", &slow));

    let first = cluster.deploy_and_wait(1, "app", "web", &quick, &[]).deployment_info;
    assert_eq!(first.status, DeploymentStatus::Succeeded, "an OK alarm lets it through: {first:?}");

    // The alarm goes off mid-deployment: stopped with ALARM_ACTIVE, rolled back.
    let second = cluster.start_deployment(1, "web", &slow);
    std::thread::sleep(Duration::from_secs(2));
    set_state(&moto, "HighErrors", "ALARM", "errors above 1");
    let stopped = ended(&cluster, &second);
    assert_eq!(stopped.status, DeploymentStatus::Stopped, "{stopped:?}");
    let (code, message) = error_of(&stopped);
    assert_eq!(code, Some(ErrorCode::AlarmActive), "{message}");
    assert!(message.contains("alarm HighErrors is on: CloudWatch state ALARM (errors above 1)"), "{message}");
    let rollback = stopped.rollback_info.as_ref().and_then(|info| info.rollback_deployment_id.clone());
    let rollback = ended(&cluster, &rollback.expect("DEPLOYMENT_STOP_ON_ALARM rolls back").0);
    assert_eq!(rollback.status, DeploymentStatus::Succeeded, "rollbacks are not gated: {rollback:?}");
    set_state(&moto, "HighErrors", "OK", "quiet again");

    // An alarm CloudWatch does not have cannot be read: stopped, unless ignored.
    let unknown = |ignore: bool| {
        format!(r#"{{"enabled":true,"ignorePollAlarmFailure":{ignore},"alarms":[{{"name":"NoSuchAlarm"}}]}}"#)
    };
    set_alarms(&cluster, &unknown(false));
    let third = cluster.deploy_and_wait(1, "app", "web", &slow, &[]).deployment_info;
    assert_eq!(third.status, DeploymentStatus::Stopped, "{third:?}");
    let (code, message) = error_of(&third);
    assert_eq!(code, Some(ErrorCode::AlarmActive), "{message}");
    let expected = "alarm NoSuchAlarm could not be read (ignorePollAlarmFailure is false): \
                    CloudWatch has no alarm named NoSuchAlarm in us-east-1";
    assert!(message.contains(expected), "{message}");
    if let Some(rollback) = third.rollback_info.as_ref().and_then(|info| info.rollback_deployment_id.clone()) {
        ended(&cluster, &rollback.0);
    }
    set_alarms(&cluster, &unknown(true));
    let fourth = cluster.deploy_and_wait(1, "app", "web", &slow, &[]).deployment_info;
    assert_eq!(fourth.status, DeploymentStatus::Succeeded, "ignorePollAlarmFailure lets it through: {fourth:?}");
}
