//! What operators do around deployments: stop one (with and without rollback), and
//! hosts that join a group after its last success get that revision on their own.

use std::time::Duration;

use fleetmesh_model::{
    CreateDeploymentOutput, DeploymentCreator, DeploymentStatus, ErrorCode, GetDeploymentOutput, ListDeploymentsOutput,
    StopDeploymentOutput, StopStatus,
};
use fleetmesh_tests::{wait_until, write_bundle, Options, TestCluster};

const SLOW_APPSPEC: &str = "version: 0.0\nos: linux\nfiles:\n  - source: VERSION\n    destination: /srv/app\nhooks:\n  ApplicationStart:\n    - location: start.sh\n      timeout: 60\n";

fn bundle(dir: &std::path::Path, version: &str, sleep_secs: u32) {
    let start = format!("#!/bin/sh\nsleep {sleep_secs}\n");
    write_bundle(
        dir,
        &[("appspec.yml", SLOW_APPSPEC, 0o644), ("VERSION", version, 0o644), ("start.sh", &start, 0o755)],
    );
}

fn version_on(cluster: &TestCluster, index: u32) -> Option<String> {
    std::fs::read_to_string(cluster.nodes[&index].install_root.join("srv/app/VERSION"))
        .ok()
        .map(|text| text.trim().to_string())
}

/// Stopping a OneAtATime deployment after its first host: Stopped with MANUAL_STOP, the
/// hosts not reached are skipped; since the group rolls back on DEPLOYMENT_STOP_ON_REQUEST,
/// a rollback deployment puts the previous revision back on the host that changed.
#[test]
fn stop_deployment_with_rollback() {
    let cluster = TestCluster::start(3, Options::default());
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    cluster.create_group("web", &["--tag", "role=web", "--deployment-config-name", "CodeDeployDefault.AllAtOnce"]);
    // The slow group rolls back when stopped, without the stop saying so.
    let on_stop = r#"{"enabled":true,"events":["DEPLOYMENT_FAILURE","DEPLOYMENT_STOP_ON_REQUEST"]}"#;
    cluster.create_group("slow", &["--tag", "role=web", "--auto-rollback-configuration", on_stop]);
    let work = tempfile::tempdir().expect("tempdir");
    let (v1, v2) = (work.path().join("v1"), work.path().join("v2"));
    bundle(&v1, "1", 0);
    bundle(&v2, "2", 3);
    let rev1 = cluster.push(1, "app", &v1);
    let first = cluster.deploy_and_wait(1, "app", "slow", &rev1, &[]);
    assert_eq!(first.deployment_info.status, DeploymentStatus::Succeeded, "{first:?}");
    let rev2 = cluster.push(1, "app", &v2);
    let created: CreateDeploymentOutput = cluster.ok_as(
        1,
        &[
            "deploy",
            "create-deployment",
            "--application-name",
            "app",
            "--deployment-group-name",
            "slow",
            "--revision",
            &rev2,
            "--json",
        ],
    );
    let id = created.deployment_id.to_string();
    // A second deployment to the same group is refused while this one runs.
    let second = cluster.cli(
        1,
        &[
            "deploy",
            "create-deployment",
            "--application-name",
            "app",
            "--deployment-group-name",
            "slow",
            "--revision",
            &rev1,
        ],
    );
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already has deployment"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    wait_until("the first host to finish", Duration::from_secs(60), || {
        let info = cluster.deployment(1, &id)?;
        (info.deployment_info.deployment_overview.Succeeded == 1).then_some(())
    });
    let stop: StopDeploymentOutput = cluster.ok_as(1, &["deploy", "stop-deployment", "--deployment-id", &id, "--json"]);
    assert_eq!(stop.status, StopStatus::Pending);
    let stopped = cluster.wait_deployment(&id, Duration::from_secs(30));
    let info = &stopped.deployment_info;
    assert_eq!(info.status, DeploymentStatus::Stopped, "{stopped:?}");
    assert_eq!(info.error_information.as_ref().map(|error| error.code), Some(ErrorCode::ManualStop));
    assert!(info.deployment_overview.Skipped >= 1, "{info:?}");
    let rollback_id = info
        .rollback_info
        .as_ref()
        .and_then(|rollback| rollback.rollback_deployment_id.as_ref())
        .expect("a rollback")
        .to_string();
    let rollback = cluster.wait_deployment(&rollback_id, Duration::from_secs(90));
    assert_eq!(rollback.deployment_info.status, DeploymentStatus::Succeeded, "{rollback:?}");
    // A leader-checked read (through a node that is not the leader) gives the same answer.
    let via = if cluster.leader_index(1) == Some(1) { 2 } else { 1 };
    let checked: GetDeploymentOutput =
        cluster.ok_as(via, &["deploy", "get-deployment", "--deployment-id", &rollback_id, "--consistent", "--json"]);
    assert_eq!(checked.deployment_info.status, DeploymentStatus::Succeeded, "{checked:?}");
    let listed = cluster.ok(via, &["deploy", "list-deployments", "--application-name", "app"]);
    assert!(listed.contains(&rollback_id) && listed.contains("Succeeded") && listed.contains("Stopped"), "{listed}");
    for index in 1..=3 {
        wait_until("every host back on version 1", Duration::from_secs(30), || {
            (version_on(&cluster, index).as_deref() == Some("1")).then_some(())
        });
    }
    // Stopping a finished deployment is refused.
    let again = cluster.cli(1, &["deploy", "stop-deployment", "--deployment-id", &id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
}

/// A host that joins with the group's tags after a successful deployment gets that
/// revision automatically (CodeDeploy's Auto Scaling launch behaviour, §5.1).
#[test]
fn a_host_that_joins_later_gets_the_groups_revision() {
    let mut cluster = TestCluster::start(2, Options::default());
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    cluster.create_group("web", &["--tag", "role=web"]);
    let work = tempfile::tempdir().expect("tempdir");
    bundle(work.path(), "7", 0);
    let revision = cluster.push(1, "app", work.path());
    assert_eq!(
        cluster.deploy_and_wait(1, "app", "web", &revision, &[]).deployment_info.status,
        DeploymentStatus::Succeeded
    );
    let seed = cluster.nodes[&1].listen;
    let token = cluster.join_token.clone();
    cluster.add_node(3, Some((seed, token)));
    cluster.wait_alive(3, Duration::from_secs(60));
    wait_until("the new host to run the group's revision", Duration::from_secs(60), || {
        (version_on(&cluster, 3).as_deref() == Some("7")).then_some(())
    });
    let list: ListDeploymentsOutput = cluster.ok_as(1, &["deploy", "list-deployments", "--json"]);
    let auto = list
        .deployments
        .iter()
        .filter_map(|id| cluster.deployment(1, &id.0))
        .find(|answer| answer.deployment_info.creator == DeploymentCreator::Autoscaling)
        .expect("an autoscaling deployment");
    let auto = cluster.wait_deployment(&auto.deployment_info.deployment_id.0, Duration::from_secs(30));
    assert_eq!(auto.deployment_info.status, DeploymentStatus::Succeeded);
    assert_eq!(auto.deployment_info.deployment_overview.Succeeded, 1, "only the new host is a target");
}
