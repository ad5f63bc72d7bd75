//! Canary waves for an in-place deployment (issue 14, item 4) on real hosts: a Server
//! configuration with `trafficRoutingConfig`, `create-deployment --dry-run`, and the bake
//! between the canary and the rest, measured from the hosts' lifecycle event times.

use std::time::Duration;

use fleetmesh_model::{DeploymentStatus, EpochSeconds, PlanDeploymentOutput};
use fleetmesh_tests::{wait_until, write_bundle, Options, TestCluster};

/// Four hosts, canary 25 % baking 3 s with HOST_COUNT 0: the dry run prints one host, a
/// 3 s bake, then three hosts, and creates nothing; the deployment then runs exactly
/// those waves, the second starting at least 3 s after the canary's last event ended.
#[test]
fn a_canary_goes_first_and_the_rest_follow_after_the_bake() {
    let cluster = TestCluster::start(4, Options::default());
    // Routing configs need level 9, which the leader sets once every voter reports it.
    wait_until("feature level 9", Duration::from_secs(60), || {
        (cluster.status(1)?["feature_level"].as_u64()? >= 9).then_some(())
    });
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    let routing = r#"{"type":"TimeBasedCanary","timeBasedCanary":{"canaryPercentage":25,"canaryIntervalSeconds":3}}"#;
    cluster.ok(
        1,
        &[
            "deploy",
            "create-deployment-config",
            "--deployment-config-name",
            "canary",
            "--minimum-healthy-hosts",
            "type=HOST_COUNT,value=0",
            "--traffic-routing-config",
            routing,
        ],
    );
    let shown = cluster.ok(1, &["deploy", "get-deployment-config", "--deployment-config-name", "canary"]);
    assert!(shown.contains("TimeBasedCanary 25 %, then the rest after 3 s"), "{shown}");
    cluster.create_group("web", &["--tag", "role=web", "--deployment-config-name", "canary"]);
    let work = tempfile::tempdir().expect("tempdir");
    let appspec = "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/app\n";
    write_bundle(work.path(), &[("appspec.yml", appspec, 0o644), ("site/index.html", "<p>1</p>\n", 0o644)]);
    let revision = cluster.push(1, "app", work.path());

    let create = ["deploy", "create-deployment", "--application-name", "app", "--deployment-group-name", "web"];
    let dry_run = [&create[..], &["--revision", &revision, "--dry-run", "--json"]].concat();
    let plan: PlanDeploymentOutput = serde_json::from_str(&cluster.ok(1, &dry_run)).expect("a plan");
    let sizes: Vec<Option<usize>> = plan.steps.iter().map(|step| step.target_ids.as_ref().map(Vec::len)).collect();
    assert_eq!(sizes, vec![Some(1), None, Some(3)], "{plan:?}");
    assert_eq!(plan.steps[1].bake_seconds, Some(3.0));
    assert_eq!(plan.outcome, "Succeeded");
    let listed = cluster.ok(1, &["deploy", "list-deployments", "--json"]);
    assert!(!listed.contains("d-"), "the dry run created a deployment: {listed}");

    let deployment = cluster.deploy_and_wait(1, "app", "web", &revision, &[]);
    let info = &deployment.deployment_info;
    assert_eq!(info.status, DeploymentStatus::Succeeded, "{deployment:?}");
    let id = info.deployment_id.to_string();
    // Per wave: the earliest event start and the latest event end of its targets.
    let mut waves: Vec<(u32, EpochSeconds, EpochSeconds)> = Vec::new();
    for target in &info.target_waves {
        let events = cluster
            .deployment_target(1, &id, &target.target_id)
            .deployment_target
            .instance_target
            .expect("an instance target");
        let start =
            events.lifecycle_events.iter().filter_map(|event| event.start_time).map(|t| t.0).fold(f64::MAX, f64::min);
        let end = events.lifecycle_events.iter().filter_map(|event| event.end_time).map(|t| t.0).fold(0.0, f64::max);
        waves.push((target.wave, EpochSeconds(start), EpochSeconds(end)));
    }
    let canary: Vec<_> = waves.iter().filter(|(wave, _, _)| *wave == 1).collect();
    let rest: Vec<_> = waves.iter().filter(|(wave, _, _)| *wave == 2).collect();
    assert_eq!((canary.len(), rest.len()), (1, 3), "{waves:?}");
    let canary_end = canary[0].2 .0;
    let rest_start = rest.iter().map(|(_, start, _)| start.0).fold(f64::MAX, f64::min);
    // The bake runs from the canary's report being committed, after its last event
    // ended on the host: at least 3 s (a little slack for the two clocks' rounding).
    assert!(rest_start - canary_end >= 2.95, "the rest started {:.3} s after the canary", rest_start - canary_end);
}

/// One host at feature level 12: a Lambda configuration without a minimum is created as
/// `AllAtOnce` and shows no minimum; one with a minimum is refused naming the platform
/// and nothing is created; the predefined Lambda canary reads back as AWS defines it;
/// a Server application refuses an ECS configuration for its group, naming both
/// platforms.
#[test]
fn lambda_and_ecs_configurations_follow_their_platform_rules() {
    let cluster = TestCluster::start(1, Options::default());
    wait_until("feature level 12", Duration::from_secs(60), || {
        (cluster.status(1)?["feature_level"].as_u64()? >= 12).then_some(())
    });
    let config = ["deploy", "create-deployment-config", "--compute-platform", "Lambda", "--deployment-config-name"];
    cluster.ok(1, &[&config[..], &["lam"]].concat());
    let shown = cluster.ok(1, &["deploy", "get-deployment-config", "--deployment-config-name", "lam"]);
    assert!(shown.contains("traffic routing   AllAtOnce") && !shown.contains("minimum healthy"), "{shown}");

    let with_minimum = [&config[..], &["bad", "--minimum-healthy-hosts", "type=HOST_COUNT,value=1"]].concat();
    let refused = cluster.cli(1, &with_minimum);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("only to the Server compute platform, not Lambda"),
        "{stderr}"
    );
    let names = cluster.ok(1, &["deploy", "list-deployment-configs"]);
    assert!(!names.contains("bad") && names.contains("CodeDeployDefault.ECSAllAtOnce"), "{names}");

    let predefined = "CodeDeployDefault.LambdaCanary10Percent30Minutes";
    let shown = cluster.ok(1, &["deploy", "get-deployment-config", "--deployment-config-name", predefined]);
    assert!(
        shown.contains("compute platform  Lambda") && shown.contains("10 %, then the rest after 30 min"),
        "{shown}"
    );

    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    let group = ["deploy", "create-deployment-group", "--application-name", "app", "--deployment-group-name", "web"];
    let ecs =
        [&group[..], &["--tag", "role=web", "--deployment-config-name", "CodeDeployDefault.ECSAllAtOnce"]].concat();
    let refused = cluster.cli(1, &ecs);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let expected = "is for the ECS compute platform; application app deploys to Server";
    assert!(!refused.status.success() && stderr.contains(expected), "{stderr}");
}
