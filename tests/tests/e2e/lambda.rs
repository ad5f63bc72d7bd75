//! Lambda deployments end to end (issue 15): a cluster whose leader moves a function's
//! alias on moto's server through the AWS SDK, the AppSpec given inline, hooks answered
//! through `put-lifecycle-event-hook-execution-status` (moto does not run the hook
//! function's code, so the test answers as the hook would), every weight observed by a
//! boto3 watcher polling `GetAlias`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout};
use std::time::Duration;

use fleetmesh_model::{
    ComputePlatform, DeploymentStatus, ErrorCode, GetDeploymentOutput, LambdaTarget, LifecycleEventStatus,
};
use fleetmesh_tests::moto::Moto;
use fleetmesh_tests::{wait_until, Options, TestCluster};

/// Polls alias `live` every 20 ms; prints `ready` after the first read, then, once it
/// has seen `sys.argv[1]` routings (or after 90 s), every routing that differed from
/// the one before, as `[seconds since the first, version, {version: weight}]`.
const WATCH: &str = r#"
import json, sys, time, boto3
client, seen, deadline, start = boto3.client("lambda"), [], time.time() + 90, time.time()
while len(seen) < int(sys.argv[1]) and time.time() < deadline:
    alias = client.get_alias(FunctionName="app", Name="live")
    state = [alias["FunctionVersion"], alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})]
    if not seen or seen[-1][1:] != state:
        seen.append([time.time() - start] + state)
        if len(seen) == 1:
            print("ready", flush=True)
    time.sleep(0.02)
print(json.dumps(seen))
"#;

/// A Lambda AppSpec moving `app:live` from 1 to 2 with `hooks` (`- Event: fn` lines).
fn appspec(hooks: &str) -> String {
    let revision = format!(
        "version: 0.0\nResources:\n  - app:\n      Type: AWS::Lambda::Function\n      Properties:\n        \
         Name: app\n        Alias: live\n        CurrentVersion: 1\n        TargetVersion: 2\nHooks:\n{hooks}"
    );
    serde_json::json!({"revisionType": "AppSpecContent", "appSpecContent": {"content": revision}}).to_string()
}

/// A cluster of `nodes` whose nodes reach moto, with `flags`, at feature level 13, and
/// application `fn` for Lambda.
fn lambda_cluster(moto: &Moto, nodes: u32, flags: &[&str]) -> TestCluster {
    let env: Vec<(String, String)> = moto.env().iter().map(|(key, value)| (key.to_string(), value.clone())).collect();
    let options = Options {
        node_flags: flags.iter().map(ToString::to_string).collect(),
        env: (1..=nodes).map(|index| (index, env.clone())).collect(),
        ..Options::default()
    };
    let cluster = TestCluster::start(nodes, options);
    wait_until("feature level 13", Duration::from_secs(60), || {
        (cluster.status(1)?["feature_level"].as_u64()? >= 13).then_some(())
    });
    cluster.ok(1, &["deploy", "create-application", "--application-name", "fn", "--compute-platform", "Lambda"]);
    cluster
}

/// The alias watcher, once it has read the alias: it stops after `count` routings.
fn watch(moto: &Moto, count: usize) -> (Child, BufReader<ChildStdout>) {
    let mut child = moto.spawn_python(&format!("import sys; sys.argv = ['watch', '{count}']\n{WATCH}"));
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line).expect("the watcher's first line");
    assert_eq!(line.trim(), "ready", "the watcher could not read the alias");
    (child, out)
}

/// What the watcher saw: the routings, and when each was first seen (seconds).
fn seen_at((mut child, mut out): (Child, BufReader<ChildStdout>)) -> (serde_json::Value, Vec<f64>) {
    let mut text = String::new();
    out.read_to_string(&mut text).expect("the watcher's output");
    // Reaped; it printed already.
    let _ = child.wait();
    let rows: Vec<Vec<serde_json::Value>> =
        serde_json::from_str(text.trim()).unwrap_or_else(|error| panic!("watcher printed {text:?}: {error}"));
    let times = rows.iter().map(|row| row[0].as_f64().expect("a time")).collect();
    (rows.into_iter().map(|row| serde_json::Value::Array(row[1..].to_vec())).collect(), times)
}

/// What the watcher saw.
fn seen(watcher: (Child, BufReader<ChildStdout>)) -> serde_json::Value {
    seen_at(watcher).0
}

fn wait_finished(cluster: &TestCluster, id: &str) -> GetDeploymentOutput {
    wait_until(&format!("deployment {id} ends"), Duration::from_secs(90), || {
        let via = cluster.live_indices()[0];
        let answer: GetDeploymentOutput = serde_json::from_value(
            cluster.cli_json(via, &["deploy", "get-deployment", "--deployment-id", id, "--json"])?,
        )
        .ok()?;
        answer.deployment_info.status.is_terminal().then_some(answer)
    })
}

fn lambda_target(cluster: &TestCluster, id: &str) -> LambdaTarget {
    let answer = cluster.deployment_target(cluster.live_indices()[0], id, "app:live");
    answer.deployment_target.lambda_target.expect("a Lambda target")
}

/// The waiting hook's execution id, on its event.
fn hook_execution(target: &LambdaTarget) -> Option<String> {
    target.lifecycle_events.iter().find_map(|event| event.lifecycle_event_hook_execution_id.clone())
}

fn create(cluster: &TestCluster, group: &str, revision: &str) -> String {
    let args = ["deploy", "create-deployment", "--application-name", "fn", "--deployment-group-name", group];
    cluster.ok(1, &[&args[..], &["--revision", revision]].concat()).trim().to_string()
}

/// Linear 25 % every 2 s with a BeforeAllowTraffic hook: the alias does not move until
/// the hook reports Succeeded, then goes 25 → 50 → 75 → 100 %, each step seen by
/// boto3, at least 2 s apart; the target shows the hook's execution id while it waits.
#[test]
fn a_linear_lambda_deployment_waits_for_its_hook_then_moves_the_alias_step_by_step_on_moto() {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    moto.lambda_setup(&["pre", "post"]);
    let cluster = lambda_cluster(&moto, 3, &[]);
    let routing = r#"{"type":"TimeBasedLinear","timeBasedLinear":{"linearPercentage":25,"linearIntervalSeconds":2}}"#;
    let config = ["deploy", "create-deployment-config", "--deployment-config-name", "linear25"];
    cluster.ok(1, &[&config[..], &["--compute-platform", "Lambda", "--traffic-routing-config", routing]].concat());
    let group = ["deploy", "create-deployment-group", "--application-name", "fn", "--deployment-group-name", "live"];
    cluster.ok(1, &[&group[..], &["--deployment-config-name", "linear25"]].concat());
    let watcher = watch(&moto, 5);

    let id = create(&cluster, "live", &appspec("  - BeforeAllowTraffic: pre\n"));
    let execution = wait_until("the hook's execution id", Duration::from_secs(30), || {
        hook_execution(&lambda_target(&cluster, &id))
    });
    let target = lambda_target(&cluster, &id);
    let before = &target.lifecycle_events[0];
    assert_eq!(before.status, LifecycleEventStatus::InProgress, "{target:?}");
    assert_eq!(before.lifecycle_event_hook_execution_id.as_ref(), Some(&execution), "on its event");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lambda_target(&cluster, &id).lambda_function_info.target_version_weight, 0.0, "moved before the hook");
    let shown = cluster.ok(1, &["deploy", "get-deployment-target", "--deployment-id", &id, "--target-id", "app:live"]);
    assert!(shown.contains(&format!("waiting for hook execution {execution}")), "{shown}");
    let put = ["deploy", "put-lifecycle-event-hook-execution-status", "--deployment-id", &id];
    cluster.ok(1, &[&put[..], &["--lifecycle-event-hook-execution-id", &execution, "--status", "Succeeded"]].concat());

    let done = wait_finished(&cluster, &id);
    let info = &done.deployment_info;
    assert_eq!(info.status, DeploymentStatus::Succeeded, "{done:?}");
    assert_eq!((info.compute_platform, info.deployment_overview.Succeeded), (ComputePlatform::Lambda, 1));
    assert_eq!(info.target_waves.iter().map(|target| target.target_id.as_str()).collect::<Vec<_>>(), ["app:live"]);
    let expected = serde_json::json!([
        ["1", {}], ["1", {"2": 0.25}], ["1", {"2": 0.5}], ["1", {"2": 0.75}], ["2", {}]
    ]);
    let (routings, times) = seen_at(watcher);
    assert_eq!(routings, expected, "every weight, in order, once");
    let gaps: Vec<f64> = times.windows(2).skip(1).map(|pair| pair[1] - pair[0]).collect();
    eprintln!("seconds between steps (2 s scheduled): {gaps:?}");
    assert!(gaps.iter().all(|gap| *gap >= 1.95), "a step came early: {gaps:?}");
    let target = lambda_target(&cluster, &id);
    assert_eq!(target.lambda_function_info.target_version_weight, 1.0);
    let events: Vec<_> = target.lifecycle_events.iter().map(|event| event.status).collect();
    assert_eq!(
        events,
        [LifecycleEventStatus::Succeeded, LifecycleEventStatus::Succeeded, LifecycleEventStatus::Skipped]
    );
    let allow = &target.lifecycle_events[1];
    let (start, end) = (allow.start_time.expect("started"), allow.end_time.expect("ended"));
    assert!(end.secs_since(start) >= 6.0, "three 2 s intervals between four steps: {allow:?}");
    let wrong = cluster
        .cli(1, &[&put[..], &["--lifecycle-event-hook-execution-id", &execution, "--status", "Failed"]].concat());
    assert!(!wrong.status.success(), "a finished deployment takes no hook status");
}

/// AllAtOnce with auto-rollback, the group's calls made as its service role (a user
/// ARN is refused): an AfterAllowTraffic hook that reports Failed fails
/// the deployment (HOOK_EXECUTION_FAILURE) and its rollback moves the alias back to 1;
/// then a hook that never reports fails its deployment after --hook-timeout-secs, and
/// with the alias never moved there is nothing to roll back. An AppSpec with an error
/// is refused with CodeDeploy's code and creates nothing.
#[test]
fn a_failed_hook_rolls_the_alias_back_and_a_silent_hook_times_out_on_moto() {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    moto.lambda_setup(&["pre", "post"]);
    let cluster = lambda_cluster(&moto, 3, &["--hook-timeout-secs", "3"]);
    let group = ["deploy", "create-deployment-group", "--application-name", "fn", "--deployment-group-name", "live"];
    let user = cluster.cli(1, &[&group[..], &["--service-role-arn", "arn:aws:iam::123456789012:user/ops"]].concat());
    let stderr = String::from_utf8_lossy(&user.stderr);
    assert!(!user.status.success() && stderr.contains("is not an IAM role ARN"), "{stderr}");
    // The leader's calls for this group run as the role, assumed through moto's STS.
    let role = "arn:aws:iam::123456789012:role/deployer";
    cluster.ok(1, &[&group[..], &["--auto-rollback", "--service-role-arn", role]].concat());
    let group_args = ["deploy", "get-deployment-group", "--application-name", "fn", "--deployment-group-name", "live"];
    let shown: serde_json::Value = cluster.ok_as(1, &group_args);
    assert_eq!(shown["deploymentGroupInfo"]["serviceRoleArn"], role, "{shown}");

    let bad = appspec("  - AfterAllowTraffic: post\n").replace("TargetVersion: 2", "TargetVersion: two");
    let refused = cluster.cli(
        1,
        &[
            "deploy",
            "create-deployment",
            "--application-name",
            "fn",
            "--deployment-group-name",
            "live",
            "--revision",
            &bad,
        ],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("INVALID_LAMBDA_CONFIGURATION"), "{stderr}");
    assert!(!cluster.ok(1, &["deploy", "list-deployments", "--json"]).contains("d-"), "nothing created");

    let watcher = watch(&moto, 3);
    let id = create(&cluster, "live", &appspec("  - AfterAllowTraffic: post\n"));
    let execution = wait_until("the AfterAllowTraffic hook", Duration::from_secs(30), || {
        hook_execution(&lambda_target(&cluster, &id))
    });
    let put = ["deploy", "put-lifecycle-event-hook-execution-status", "--deployment-id", &id];
    cluster.ok(1, &[&put[..], &["--lifecycle-event-hook-execution-id", &execution, "--status", "Failed"]].concat());
    let failed = wait_finished(&cluster, &id).deployment_info;
    assert_eq!(failed.status, DeploymentStatus::Failed);
    assert_eq!(failed.error_information.as_ref().map(|error| error.code), Some(ErrorCode::HookExecutionFailure));
    let rollback = failed.rollback_info.and_then(|info| info.rollback_deployment_id).expect("a rollback deployment");
    let rolled = wait_finished(&cluster, &rollback.to_string()).deployment_info;
    assert_eq!(rolled.status, DeploymentStatus::Succeeded, "{rolled:?}");
    assert_eq!(seen(watcher), serde_json::json!([["1", {}], ["2", {}], ["1", {}]]), "to 2, then back");

    let id = create(&cluster, "live", &appspec("  - BeforeAllowTraffic: pre\n"));
    let failed = wait_finished(&cluster, &id).deployment_info;
    assert_eq!(failed.status, DeploymentStatus::Failed);
    let error = failed.error_information.expect("why it failed");
    assert_eq!(error.code, ErrorCode::HookExecutionFailure);
    assert!(error.message.contains("did not report its status within 3 s"), "{}", error.message);
    let info = failed.rollback_info.expect("rollback info");
    assert!(info.rollback_deployment_id.is_none() && info.rollback_message.contains("not moved"), "{info:?}");
    let alias = moto.python(
        "import boto3\nprint(boto3.client('lambda').get_alias(FunctionName='app', Name='live')['FunctionVersion'])",
    );
    assert_eq!(alias.trim(), "1");
}

/// Linear 25 % every 3 s; the leader is killed (-9) once the first step is in place:
/// the new leader carries on from the committed steps, the deployment succeeds, and
/// the watcher sees every weight once, in order.
#[test]
fn a_leader_killed_in_the_middle_of_a_shift_leaves_each_weight_applied_once_in_order_on_moto() {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    moto.lambda_setup(&[]);
    let mut cluster = lambda_cluster(&moto, 3, &[]);
    let routing = r#"{"type":"TimeBasedLinear","timeBasedLinear":{"linearPercentage":25,"linearIntervalSeconds":3}}"#;
    let config = ["deploy", "create-deployment-config", "--deployment-config-name", "linear25"];
    cluster.ok(1, &[&config[..], &["--compute-platform", "Lambda", "--traffic-routing-config", routing]].concat());
    let group = ["deploy", "create-deployment-group", "--application-name", "fn", "--deployment-group-name", "live"];
    cluster.ok(1, &[&group[..], &["--deployment-config-name", "linear25"]].concat());
    wait_until("three voters", Duration::from_secs(60), || {
        let status = cluster.status(1)?;
        let voters = status["nodes"].as_array()?.iter().filter(|node| node["role"] == "voter").count();
        (voters == 3).then_some(())
    });
    let watcher = watch(&moto, 5);

    let id = create(&cluster, "live", &appspec(""));
    wait_until("the first step", Duration::from_secs(30), || {
        (lambda_target(&cluster, &id).lambda_function_info.target_version_weight > 0.0).then_some(())
    });
    let leader = cluster.leader_index(1).expect("a leader");
    cluster.kill9(leader);
    eprintln!("killed the leader, node {leader}");

    let done = wait_finished(&cluster, &id);
    assert_eq!(done.deployment_info.status, DeploymentStatus::Succeeded, "{done:?}");
    let expected = serde_json::json!([
        ["1", {}], ["1", {"2": 0.25}], ["1", {"2": 0.5}], ["1", {"2": 0.75}], ["2", {}]
    ]);
    assert_eq!(seen(watcher), expected, "every weight once, in order, across the failover");
}
