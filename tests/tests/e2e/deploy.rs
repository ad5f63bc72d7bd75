//! In-place deployments of real bundles on real hosts (processes), as CodeDeploy runs
//! them: lifecycle order and environment, files and modes, waves under the
//! minimum-healthy-hosts rule, failure, rollback, leader loss, hook timeouts.

use std::path::Path;
use std::time::Duration;

use fleetmesh_model::{
    CreateDeploymentOutput, DeploymentCreator, DeploymentInfo, DeploymentStatus, EpochSeconds, ErrorCode,
    GetDeploymentGroupOutput, GetDeploymentOutput, LifecycleErrorCode, LifecycleEvent, LifecycleEventName,
    LifecycleEventStatus, ListDeploymentsOutput, TargetStatus,
};
use fleetmesh_tests::{wait_until, write_bundle, Options, TestCluster};

/// A hook that appends one line per event to the host's `events` file:
/// event, deployment id, application, group name, group id, the bundle's version and the
/// node's advertised address.
const RECORD: &str = r#"#!/bin/sh
ROOT="${FLEETMESH_INSTALL_ROOT%/}"
mkdir -p "$ROOT/var/log/app"
echo "$LIFECYCLE_EVENT $DEPLOYMENT_ID $APPLICATION_NAME $DEPLOYMENT_GROUP_NAME $DEPLOYMENT_GROUP_ID $(cat "$(dirname "$0")/../VERSION") $FLEETMESH_NODE_ADDRESS" >> "$ROOT/var/log/app/events"
"#;

fn appspec(extra_hooks: &str) -> String {
    format!(
        "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/app\n  - source: VERSION\n    destination: /srv/app\npermissions:\n  - object: /srv/app\n    pattern: \"*.sh\"\n    mode: \"0750\"\n    type: [file]\nhooks:\n{}{extra_hooks}",
        ["ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"]
            .iter()
            .map(|event| format!("  {event}:\n    - location: hooks/record.sh\n      timeout: 30\n"))
            .collect::<String>()
    )
}

fn bundle(dir: &Path, version: &str, appspec_text: &str, extra: &[(&str, &str, u32)]) {
    let mut files = vec![
        ("appspec.yml", appspec_text, 0o644),
        ("VERSION", version, 0o644),
        ("site/index.html", "<p>hello</p>\n", 0o644),
        ("site/run.sh", "#!/bin/sh\necho run\n", 0o644),
        ("hooks/record.sh", RECORD, 0o755),
    ];
    files.extend_from_slice(extra);
    write_bundle(dir, &files);
}

fn events(cluster: &TestCluster, index: u32) -> Vec<Vec<String>> {
    std::fs::read_to_string(cluster.nodes[&index].install_root.join("var/log/app/events"))
        .unwrap_or_default()
        .lines()
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn setup(cluster: &TestCluster, group: &str, config: &str, extra: &[&str]) {
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    let mut args = vec!["--tag", "role=web", "--deployment-config-name", config];
    args.extend_from_slice(extra);
    cluster.create_group(group, &args);
}

fn info(answer: &GetDeploymentOutput) -> &DeploymentInfo {
    &answer.deployment_info
}

/// The id of the rollback a failed deployment started.
fn rollback_of(failed: &DeploymentInfo) -> String {
    failed
        .rollback_info
        .as_ref()
        .and_then(|rollback| rollback.rollback_deployment_id.as_ref())
        .expect("a rollback deployment")
        .to_string()
}

/// The lifecycle events of one target of a deployment (`get-deployment-target --json`).
fn lifecycle_events(cluster: &TestCluster, via: u32, deployment_id: &str, target_id: &str) -> Vec<LifecycleEvent> {
    cluster
        .deployment_target(via, deployment_id, target_id)
        .deployment_target
        .instance_target
        .expect("an instance target")
        .lifecycle_events
}

/// The event named `name` among `events`.
fn event(events: &[LifecycleEvent], name: LifecycleEventName) -> &LifecycleEvent {
    events.iter().find(|event| event.lifecycle_event_name == name).unwrap_or_else(|| panic!("no {name} in {events:?}"))
}

/// Five hosts: every host runs the events of §2.2 in order with CodeDeploy's variables;
/// files land with their content and modes; a second deployment runs ApplicationStop
/// from the first revision and replaces the files.
#[test]
fn lifecycle_order_environment_files_and_application_stop_from_the_previous_revision() {
    let cluster = TestCluster::start(5, Options::default());
    setup(&cluster, "web", "CodeDeployDefault.AllAtOnce", &[]);
    let work = tempfile::tempdir().expect("tempdir");
    let (v1, v2) = (work.path().join("v1"), work.path().join("v2"));
    bundle(&v1, "1\n", &appspec(""), &[]);
    bundle(&v2, "2\n", &appspec(""), &[("site/new.txt", "second\n", 0o644)]);
    let rev1 = cluster.push(1, "app", &v1);
    let first = cluster.deploy_and_wait(2, "app", "web", &rev1, &[]);
    assert_eq!(info(&first).status, DeploymentStatus::Succeeded, "{first:?}");
    succeeded_on_every_host(&cluster, &first);
    let group: GetDeploymentGroupOutput = cluster
        .ok_as(1, &["deploy", "get-deployment-group", "--application-name", "app", "--deployment-group-name", "web"]);
    let group_id = group.deployment_group_info.deployment_group_id;
    let first_id = info(&first).deployment_id.to_string();

    let rev2 = cluster.push(3, "app", &v2);
    let second = cluster.deploy_and_wait(1, "app", "web", &rev2, &[]);
    assert_eq!(info(&second).status, DeploymentStatus::Succeeded, "{second:?}");
    let second_id = info(&second).deployment_id.to_string();
    succeeded_on_every_host(&cluster, &second);

    for index in 1..=5 {
        let lines = events(&cluster, index);
        let names: Vec<&str> = lines.iter().map(|line| line[0].as_str()).collect();
        assert_eq!(
            names,
            [
                "BeforeInstall",
                "AfterInstall",
                "ApplicationStart",
                "ValidateService",
                "ApplicationStop",
                "BeforeInstall",
                "AfterInstall",
                "ApplicationStart",
                "ValidateService"
            ],
            "host {index}: first deployment has no ApplicationStop (no previous install), the second runs all five"
        );
        for line in &lines[..4] {
            assert_eq!(
                line[1..6],
                [first_id.clone(), "app".into(), "web".into(), group_id.clone(), "1".into()],
                "host {index}"
            );
        }
        // ApplicationStop of the second deployment ran the FIRST revision's script (§2.4).
        assert_eq!(
            lines[4][1..6],
            [second_id.clone(), "app".into(), "web".into(), group_id.clone(), "1".into()],
            "host {index}"
        );
        for line in &lines[5..] {
            assert_eq!(line[5], "2", "host {index}: new-revision events run new scripts");
        }
        let address = cluster.ip(index).to_string();
        assert!(lines.iter().all(|line| line[6] == address), "host {index}: FLEETMESH_NODE_ADDRESS is {address}");
        let root = &cluster.nodes[&index].install_root;
        assert_eq!(std::fs::read_to_string(root.join("srv/app/VERSION")).expect("VERSION"), "2\n");
        assert_eq!(std::fs::read_to_string(root.join("srv/app/new.txt")).expect("new file"), "second\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("srv/app/run.sh")).expect("run.sh").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o750, "permissions applied on host {index}");
    }
    let events: Vec<&str> = lifecycle_events(&cluster, 4, &second_id, &cluster.node_id(4).to_string())
        .iter()
        .map(|event| event.lifecycle_event_name.as_str())
        .collect();
    assert_eq!(
        events,
        [
            "ApplicationStop",
            "DownloadBundle",
            "BeforeInstall",
            "Install",
            "AfterInstall",
            "ApplicationStart",
            "ValidateService"
        ]
    );
}

/// OneAtATime with a hook that fails on the third host: the deployment fails with
/// HEALTH_CONSTRAINTS, hosts 4–5 are skipped, and the automatic rollback puts the
/// previous revision back on the three hosts that changed.
#[test]
fn one_at_a_time_failure_on_the_third_host_skips_the_rest_and_rolls_back() {
    let cluster = TestCluster::start(5, Options::default());
    setup(&cluster, "web", "CodeDeployDefault.OneAtATime", &["--auto-rollback"]);
    let work = tempfile::tempdir().expect("tempdir");
    let shared = work.path().join("attempts");
    std::fs::create_dir_all(&shared).expect("mkdir");
    let (v1, v2) = (work.path().join("v1"), work.path().join("v2"));
    bundle(&v1, "1\n", &appspec(""), &[]);
    let failing = format!(
        "#!/bin/sh\nn=$(ls {dir} | wc -l)\ntouch {dir}/$FLEETMESH_NODE_ID\nif [ \"$n\" -eq 2 ]; then echo \"failing on purpose on node $FLEETMESH_NODE_ID\"; exit 7; fi\n",
        dir = shared.display()
    );
    let spec = appspec("").replace(
        "  ValidateService:\n    - location: hooks/record.sh\n      timeout: 30\n",
        "  ValidateService:\n    - location: hooks/record.sh\n      timeout: 30\n    - location: hooks/fail_third.sh\n      timeout: 30\n",
    );
    bundle(&v2, "2\n", &spec, &[("hooks/fail_third.sh", &failing, 0o755)]);
    let rev1 = cluster.push(1, "app", &v1);
    assert_eq!(info(&cluster.deploy_and_wait(1, "app", "web", &rev1, &[])).status, DeploymentStatus::Succeeded);
    let rev2 = cluster.push(1, "app", &v2);
    let failed = cluster.deploy_and_wait(1, "app", "web", &rev2, &[]);
    let failed = info(&failed);
    assert_eq!(failed.status, DeploymentStatus::Failed, "{failed:?}");
    assert_eq!(failed.error_information.as_ref().map(|error| error.code), Some(ErrorCode::HealthConstraints));
    let overview = &failed.deployment_overview;
    assert_eq!((overview.Succeeded, overview.Failed, overview.Skipped), (2, 1, 2), "{overview:?}");
    let waves = &failed.target_waves;
    let failed_target = waves.iter().find(|target| target.status == TargetStatus::Failed).expect("failed target");
    assert_eq!(failed_target.wave, 3, "the third host started failed");
    let target_events = lifecycle_events(&cluster, 1, &failed.deployment_id.0, &failed_target.target_id);
    let validate = event(&target_events, LifecycleEventName::ValidateService);
    assert_eq!(validate.status, LifecycleEventStatus::Failed, "{target_events:?}");
    let diagnostics = validate.diagnostics.as_ref().expect("diagnostics");
    assert_eq!(diagnostics.error_code, LifecycleErrorCode::ScriptFailed);
    assert!(diagnostics.log_tail.contains("failing on purpose"), "{validate:?}");

    let rollback_id = rollback_of(failed);
    let rollback = cluster.wait_deployment(&rollback_id, Duration::from_secs(120));
    assert_eq!(info(&rollback).status, DeploymentStatus::Succeeded, "{rollback:?}");
    assert_eq!(info(&rollback).creator, DeploymentCreator::CodeDeployRollback);
    assert_eq!(
        info(&rollback).rollback_info.as_ref().and_then(|rollback| rollback.rollback_triggering_deployment_id.as_ref()),
        Some(&failed.deployment_id)
    );
    // The failed deployment's rollbackInfo tells how its rollback ended, not only that
    // one was started.
    let failed_later = cluster.wait_deployment(&failed.deployment_id.0, Duration::from_secs(10));
    let message = info(&failed_later).rollback_info.as_ref().map(|rollback| rollback.rollback_message.clone());
    let expected = format!("rolled back to revision {} by {rollback_id}", info(&rollback).revision_id);
    assert_eq!(message.as_deref(), Some(expected.as_str()));
    let changed: Vec<u64> = waves
        .iter()
        .filter(|target| target.status != TargetStatus::Skipped)
        .map(|target| target.target_id.parse().expect("number"))
        .collect();
    assert_eq!(changed.len(), 3);
    for index in 1..=5 {
        let root = &cluster.nodes[&index].install_root;
        assert_eq!(
            std::fs::read_to_string(root.join("srv/app/VERSION")).expect("VERSION"),
            "1\n",
            "host {index} runs the previous revision"
        );
        let id = cluster.node_id(index);
        let ran_rollback = events(&cluster, index).iter().any(|line| line[1] == rollback_id);
        assert_eq!(ran_rollback, changed.contains(&id), "host {index}: only changed hosts are rolled back");
    }
}

/// HalfAtATime over three hosts goes one at a time (M = 2); the first host fails, so
/// the deployment fails having changed that host alone. Its rollback targets one host,
/// where HalfAtATime would keep every target in service: CodeDeploy never refuses its
/// own rollback, and neither does fleetmesh (HEALTH_CONSTRAINTS_INVALID was the answer
/// before). The rollback succeeds, the host runs the first revision again, and the
/// failed deployment's rollbackInfo says so.
#[test]
fn a_rollback_of_one_host_under_half_at_a_time_runs_and_says_how_it_ended() {
    let cluster = TestCluster::start(3, Options::default());
    setup(&cluster, "web", "CodeDeployDefault.HalfAtATime", &["--auto-rollback"]);
    let work = tempfile::tempdir().expect("tempdir");
    let (v1, v2) = (work.path().join("v1"), work.path().join("v2"));
    bundle(&v1, "1\n", &appspec(""), &[]);
    let spec = appspec("").replace(
        "  ValidateService:\n    - location: hooks/record.sh\n      timeout: 30\n",
        "  ValidateService:\n    - location: hooks/fail.sh\n      timeout: 30\n",
    );
    bundle(&v2, "2\n", &spec, &[("hooks/fail.sh", "#!/bin/sh\necho broken on purpose\nexit 1\n", 0o755)]);
    let rev1 = cluster.push(1, "app", &v1);
    assert_eq!(info(&cluster.deploy_and_wait(1, "app", "web", &rev1, &[])).status, DeploymentStatus::Succeeded);
    let rev2 = cluster.push(1, "app", &v2);
    let failed = cluster.deploy_and_wait(1, "app", "web", &rev2, &[]);
    let failed = info(&failed);
    assert_eq!(failed.status, DeploymentStatus::Failed, "{failed:?}");
    let changed: Vec<&str> = failed
        .target_waves
        .iter()
        .filter(|target| target.status != TargetStatus::Skipped)
        .map(|target| target.target_id.as_str())
        .collect();
    assert_eq!(changed.len(), 1, "one host at a time, and the first failed: {failed:?}");
    let rollback_id = rollback_of(failed);
    let rollback = cluster.wait_deployment(&rollback_id, Duration::from_secs(120));
    let rolled = info(&rollback);
    assert_eq!(rolled.status, DeploymentStatus::Succeeded, "{rolled:?}");
    assert_eq!(rolled.target_waves.len(), 1);
    assert_eq!(rolled.target_waves[0].target_id, changed[0]);
    for index in 1..=3 {
        let version = std::fs::read_to_string(cluster.nodes[&index].install_root.join("srv/app/VERSION"));
        assert_eq!(version.expect("VERSION"), "1\n", "host {index} runs the first revision");
    }
    let failed_later = cluster.wait_deployment(&failed.deployment_id.0, Duration::from_secs(10));
    let message = info(&failed_later).rollback_info.as_ref().map(|rollback| rollback.rollback_message.clone());
    assert_eq!(message, Some(format!("rolled back to revision {} by {rollback_id}", rolled.revision_id)));
}

/// Asserts a deployment succeeded on all five hosts (AllAtOnce succeeds with one); if
/// not, says which hosts failed and why, from their lifecycle diagnostics.
fn succeeded_on_every_host(cluster: &TestCluster, deployment: &GetDeploymentOutput) {
    if info(deployment).deployment_overview.Succeeded == 5 {
        return;
    }
    let id = info(deployment).deployment_id.to_string();
    let targets: Vec<String> = (1..=5)
        .map(|index| {
            let target = cluster.node_id(index).to_string();
            let args = ["deploy", "get-deployment-target", "--deployment-id", &id, "--target-id", &target];
            cluster.ok(1, &[&args[..], &["--json"]].concat())
        })
        .collect();
    panic!("deployment {id} did not succeed on every host: {deployment:?}\n{}", targets.join("\n"));
}

/// Per target of `deployment`: when its first lifecycle event started and its last ended.
fn intervals(cluster: &TestCluster, deployment: &GetDeploymentOutput) -> Vec<(EpochSeconds, EpochSeconds)> {
    let id = info(deployment).deployment_id.to_string();
    let earliest = |a: EpochSeconds, b: EpochSeconds| if b < a { b } else { a };
    let latest = |a: EpochSeconds, b: EpochSeconds| if b > a { b } else { a };
    info(deployment)
        .target_waves
        .iter()
        .map(|target| {
            let events = lifecycle_events(cluster, 1, &id, &target.target_id);
            let start = events.iter().filter_map(|event| event.start_time).reduce(earliest).expect("start");
            let end = events.iter().filter_map(|event| event.end_time).reduce(latest).expect("end");
            (start, end)
        })
        .collect()
}

fn max_overlap(intervals: &[(EpochSeconds, EpochSeconds)]) -> usize {
    intervals
        .iter()
        .map(|(start, _)| {
            intervals.iter().filter(|(other_start, other_end)| other_start <= start && start < other_end).count()
        })
        .max()
        .unwrap_or(0)
}

/// HalfAtATime and a custom HOST_COUNT configuration on five hosts: from the recorded
/// event times, never more targets in flight than the rule allows.
#[test]
fn half_at_a_time_and_host_count_never_exceed_the_rule() {
    let cluster = TestCluster::start(5, Options::default());
    setup(&cluster, "half", "CodeDeployDefault.HalfAtATime", &[]);
    cluster.ok(
        1,
        &[
            "deploy",
            "create-deployment-config",
            "--deployment-config-name",
            "two-healthy",
            "--minimum-healthy-hosts",
            "type=HOST_COUNT,value=2",
        ],
    );
    cluster.create_group("count", &["--tag", "role=web", "--deployment-config-name", "two-healthy"]);
    let work = tempfile::tempdir().expect("tempdir");
    let spec = appspec("").replace(
        "  ApplicationStart:\n    - location: hooks/record.sh\n",
        "  ApplicationStart:\n    - location: hooks/slow.sh\n      timeout: 30\n    - location: hooks/record.sh\n",
    );
    bundle(work.path(), "1\n", &spec, &[("hooks/slow.sh", "#!/bin/sh\nsleep 1\n", 0o755)]);
    let revision = cluster.push(1, "app", work.path());
    let half = cluster.deploy_and_wait(1, "app", "half", &revision, &[]);
    assert_eq!(info(&half).status, DeploymentStatus::Succeeded, "{half:?}");
    let overlap = max_overlap(&intervals(&cluster, &half));
    // 5 hosts, 50 % → M = ceil(2.5) = 3 healthy → at most 2 out of service.
    assert!((1..=2).contains(&overlap), "HalfAtATime had {overlap} targets in flight at once");
    // Another group installs to the same paths: as with CodeDeploy, that needs OVERWRITE
    // (DISALLOW, the default, refuses files another group installed).
    let count = cluster.deploy_and_wait(1, "app", "count", &revision, &["--file-exists-behavior", "OVERWRITE"]);
    assert_eq!(info(&count).status, DeploymentStatus::Succeeded, "{count:?}");
    let overlap = max_overlap(&intervals(&cluster, &count));
    assert!((1..=3).contains(&overlap), "HOST_COUNT 2 of 5 had {overlap} targets in flight at once");
    assert!(info(&count).waves >= 2);
}

/// `kill -9` the leader in the middle of a OneAtATime deployment (and bring it back as
/// systemd would): the deployment still ends Succeeded, and no host ran a lifecycle
/// event twice for it.
#[test]
fn leader_kill9_mid_rollout_still_succeeds_without_repeating_events() {
    let mut cluster = TestCluster::start(5, Options::default());
    setup(&cluster, "web", "CodeDeployDefault.OneAtATime", &[]);
    let work = tempfile::tempdir().expect("tempdir");
    let spec = appspec("").replace(
        "  ApplicationStart:\n    - location: hooks/record.sh\n",
        "  ApplicationStart:\n    - location: hooks/slow.sh\n      timeout: 30\n    - location: hooks/record.sh\n",
    );
    bundle(work.path(), "1\n", &spec, &[("hooks/slow.sh", "#!/bin/sh\nsleep 1\n", 0o755)]);
    let revision = cluster.push(1, "app", work.path());
    let created: CreateDeploymentOutput = cluster.ok_as(
        1,
        &[
            "deploy",
            "create-deployment",
            "--application-name",
            "app",
            "--deployment-group-name",
            "web",
            "--revision",
            &revision,
            "--json",
        ],
    );
    let id = created.deployment_id.to_string();
    let leader = wait_until("a leader", Duration::from_secs(10), || cluster.leader_index(1));
    let leader_id = cluster.node_id(leader).to_string();
    // Wait until the leader's own target is done and at least two hosts finished.
    wait_until("two hosts done, the leader's among them", Duration::from_secs(120), || {
        let deployment = cluster.deployment(1, &id)?;
        let waves = &info(&deployment).target_waves;
        let done = waves.iter().filter(|target| target.status == TargetStatus::Succeeded).count();
        let leader_done =
            waves.iter().any(|target| target.target_id == leader_id && target.status == TargetStatus::Succeeded);
        (done >= 2 && leader_done && info(&deployment).status == DeploymentStatus::InProgress).then_some(())
    });
    cluster.kill9(leader);
    std::thread::sleep(Duration::from_secs(2));
    cluster.restart(leader);
    let end = cluster.wait_deployment(&id, Duration::from_secs(180));
    assert_eq!(info(&end).status, DeploymentStatus::Succeeded, "{end:?}");
    for index in 1..=5 {
        let lines: Vec<Vec<String>> = events(&cluster, index).into_iter().filter(|line| line[1] == id).collect();
        let names: Vec<&str> = lines.iter().map(|line| line[0].as_str()).collect();
        assert_eq!(
            names,
            ["BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"],
            "host {index} ran each event once"
        );
    }
}

/// A hook past its timeout is killed with its process group and reported
/// ScriptTimedOut; a hook that leaves a background child holding stdout does not hang
/// the event.
#[test]
fn hook_timeouts_kill_the_process_group_and_background_children_do_not_hang() {
    let cluster = TestCluster::start(1, Options::default());
    setup(&cluster, "web", "CodeDeployDefault.AllAtOnce", &[]);
    let work = tempfile::tempdir().expect("tempdir");
    let pid_file = work.path().join("child.pid");
    let detached = work.path().join("detached");
    let background = "#!/bin/sh\nsleep 60 &\necho started a background child\nexit 0\n";
    let hang = format!("#!/bin/sh\nsleep 120 &\necho $! > {}\nsleep 120\n", pid_file.display());
    let spec = "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: background.sh\n      timeout: 30\n  ValidateService:\n    - location: hang.sh\n      timeout: 2\n";
    write_bundle(
        &detached,
        &[("appspec.yml", spec, 0o644), ("background.sh", background, 0o755), ("hang.sh", &hang, 0o755)],
    );
    let revision = cluster.push(1, "app", &detached);
    let started = std::time::Instant::now();
    let result = cluster.deploy_and_wait(1, "app", "web", &revision, &[]);
    assert_eq!(info(&result).status, DeploymentStatus::Failed, "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(40), "the deployment took {:?}", started.elapsed());
    let id = info(&result).deployment_id.to_string();
    let events = lifecycle_events(&cluster, 1, &id, "1");
    let after = event(&events, LifecycleEventName::AfterInstall);
    assert_eq!(
        after.status,
        LifecycleEventStatus::Succeeded,
        "a background child holding stdout must not hang: {after:?}"
    );
    let seconds = after.end_time.expect("end").secs_since(after.start_time.expect("start"));
    assert!(seconds < 5.0, "AfterInstall took {seconds} s");
    let validate = event(&events, LifecycleEventName::ValidateService);
    assert_eq!(
        validate.diagnostics.as_ref().map(|diagnostics| diagnostics.error_code),
        Some(LifecycleErrorCode::ScriptTimedOut),
        "{validate:?}"
    );
    let pid = std::fs::read_to_string(&pid_file).expect("pid").trim().to_string();
    wait_until("the hung script's child to be gone", Duration::from_secs(10), || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
}

/// Bad input gets a clear error and changes nothing: unknown group, configuration and
/// revision; a group matching no host fails with NO_INSTANCES; a malformed appspec
/// fails the target with a diagnostic naming the file and field instead of hanging.
#[test]
fn bad_input_is_refused_clearly() {
    let cluster = TestCluster::start(1, Options::default());
    setup(&cluster, "web", "CodeDeployDefault.AllAtOnce", &[]);
    cluster.create_group("nobody", &["--tag", "role=db"]);
    let work = tempfile::tempdir().expect("tempdir");
    bundle(work.path(), "1\n", &appspec(""), &[]);
    let revision = cluster.push(1, "app", work.path());
    let refuse = |args: &[&str], needle: &str| {
        let output = cluster.cli(1, args);
        assert!(!output.status.success(), "{args:?} should fail");
        let text = String::from_utf8_lossy(&output.stderr);
        assert!(text.contains(needle), "{args:?}: {text}");
    };
    refuse(
        &[
            "deploy",
            "create-deployment",
            "--application-name",
            "app",
            "--deployment-group-name",
            "nope",
            "--revision",
            &revision,
        ],
        "deployment group nope",
    );
    refuse(
        &[
            "deploy",
            "create-deployment",
            "--application-name",
            "app",
            "--deployment-group-name",
            "web",
            "--revision",
            &revision,
            "--deployment-config-name",
            "Nope",
        ],
        "deployment configuration Nope",
    );
    refuse(
        &[
            "deploy",
            "create-deployment",
            "--application-name",
            "app",
            "--deployment-group-name",
            "web",
            "--revision",
            &"ab".repeat(32),
        ],
        "does not exist",
    );
    refuse(
        &[
            "deploy",
            "create-deployment-group",
            "--application-name",
            "app",
            "--deployment-group-name",
            "bad name",
            "--tag",
            "a=b",
        ],
        "deployment group name",
    );
    refuse(
        &[
            "deploy",
            "create-deployment-config",
            "--deployment-config-name",
            "CodeDeployDefault.Mine",
            "--minimum-healthy-hosts",
            "type=HOST_COUNT,value=1",
        ],
        "reserved",
    );
    let none = cluster.deploy_and_wait(1, "app", "nobody", &revision, &[]);
    assert_eq!(info(&none).status, DeploymentStatus::Failed);
    assert_eq!(info(&none).error_information.as_ref().map(|error| error.code), Some(ErrorCode::NoInstances));
    let deployments: ListDeploymentsOutput = cluster.ok_as(1, &["deploy", "list-deployments", "--json"]);
    assert_eq!(deployments.deployments.len(), 1);

    let broken = work.path().join("broken");
    write_bundle(
        &broken,
        &[("appspec.yml", "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - timeout: 30\n", 0o644)],
    );
    let revision = cluster.push(1, "app", &broken);
    let result = cluster.deploy_and_wait(1, "app", "web", &revision, &[]);
    assert_eq!(info(&result).status, DeploymentStatus::Failed);
    let id = info(&result).deployment_id.to_string();
    let events = lifecycle_events(&cluster, 1, &id, "1");
    let failed = events.iter().find(|event| event.status == LifecycleEventStatus::Failed).expect("a failed event");
    let message = failed.diagnostics.as_ref().map(|diagnostics| diagnostics.message.as_str()).unwrap_or_default();
    assert!(message.contains("appspec.yml") && message.contains("location"), "{message}");
}
