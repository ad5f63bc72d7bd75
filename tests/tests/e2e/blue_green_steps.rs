//! A canary blue/green deployment of servers, end to end, with the leader killed
//! mid-shift: seven nodes, 1–3 the voters (no role), 4 the router of route `web`, 5
//! tagged `fleet=blue` and 6–7 `fleet=green`, all four hosts in the group (`role=web`).
//!
//! v1 goes to host 5 (a first deployment onto the empty route). Then, while a client asks
//! through the router every 5 ms, v2 goes to the standby hosts 6–7 under a canary
//! configuration (25 %, then the rest after 6 s): during the bake about a quarter of the
//! answers are v2 and `get-route` shows the split; the leader is killed with `kill -9`
//! during the bake and a new one finishes the deployment from the committed step. Then
//! v3, whose `ValidateService` fails, goes to the standby host 5: the deployment fails
//! before traffic moves. No request fails, and v2 serves alone at the end.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fleetmesh_model::{DeploymentStatus, GetDeploymentOutput};
use fleetmesh_tests::{wait_until, write_bundle, Options, TestCluster};
use serde_json::Value;

use super::blue_green::{failures, Client};
use super::traffic_control::{ask, bundle, lb_info, LISTEN_PORT, TARGET_PORT};

const STYLE: &str = "deploymentType=BLUE_GREEN,deploymentOption=WITH_TRAFFIC_CONTROL";

/// The node CLI calls go through: the router, never killed.
const VIA: u32 = 4;

/// Kills the apps the hooks started when the test ends, passed or not (the cluster
/// itself is borrowed mutably for the kill, so this keeps only the pid files).
struct AppPids(Vec<PathBuf>);

impl Drop for AppPids {
    fn drop(&mut self) {
        for file in &self.0 {
            if let Ok(pid) = std::fs::read_to_string(file) {
                // Best effort: the app may have exited already.
                let _ = std::process::Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

/// The deployment, or `None` while no leader answers (reads go to the leader).
fn deployment(cluster: &TestCluster, id: &str) -> Option<GetDeploymentOutput> {
    let output = cluster.cli(VIA, &["deploy", "get-deployment", "--deployment-id", id, "--json"]);
    output.status.success().then(|| serde_json::from_slice(&output.stdout).ok()).flatten()
}

fn wait_status(cluster: &TestCluster, id: &str, wanted: DeploymentStatus, within: Duration) {
    wait_until(&format!("deployment {id} {wanted:?}"), within, || {
        let status = deployment(cluster, id)?.deployment_info.status;
        assert!(status == wanted || !status.is_terminal(), "deployment {id} ended {status:?}");
        (status == wanted).then_some(())
    });
}

fn create(cluster: &TestCluster, group: &str, revision: &str, extra: &[&str]) -> String {
    let mut args = vec!["deploy", "create-deployment", "--application-name", "app", "--deployment-group-name", group];
    args.extend_from_slice(&["--revision", revision, "--json"]);
    args.extend_from_slice(extra);
    let answer: Value = serde_json::from_str(&cluster.ok(VIA, &args)).expect("create-deployment --json");
    answer["deploymentId"].as_str().expect("deploymentId").to_string()
}

fn group(cluster: &TestCluster, name: &str, config: Option<&str>) {
    let info = lb_info("web");
    let blue_green = serde_json::json!({
        "terminateBlueInstancesOnDeploymentSuccess": {"action": "KEEP_ALIVE", "terminationWaitTimeInSeconds": 1}})
    .to_string();
    let mut args = vec!["deploy", "create-deployment-group", "--application-name", "app", "--deployment-group-name"];
    args.extend_from_slice(&[name, "--tag", "role=web", "--deployment-style", STYLE, "--load-balancer-info", &info]);
    args.extend_from_slice(&["--blue-green-deployment-configuration", &blue_green, "--auto-rollback"]);
    if let Some(config) = config {
        args.extend_from_slice(&["--deployment-config-name", config]);
    }
    cluster.ok(VIA, &args);
}

fn start_cluster() -> TestCluster {
    let tags = |fleet: &str| vec!["role=web".to_string(), format!("fleet={fleet}")];
    let options = Options {
        tags: [(4, vec!["router=yes".to_string()]), (5, tags("blue")), (6, tags("green")), (7, tags("green"))]
            .into_iter()
            .chain((1..=3).map(|voter| (voter, vec!["voter=yes".to_string()])))
            .collect(),
        ..Options::default()
    };
    let cluster = TestCluster::start(7, options);
    wait_until("feature level 11", Duration::from_secs(60), || {
        (cluster.status(VIA)?["feature_level"].as_u64()? >= 11).then_some(())
    });
    cluster
}

#[test]
fn a_canary_blue_green_gives_green_a_quarter_then_everything_across_a_leader_kill() {
    let mut cluster = start_cluster();
    let _apps = AppPids(cluster.nodes.values().map(|node| node.install_root.join("app.pid")).collect());
    cluster.create_route("web", LISTEN_PORT, TARGET_PORT, 1, &[]);
    cluster.ok(VIA, &["deploy", "create-application", "--application-name", "app"]);
    let routing = r#"{"type":"TimeBasedCanary","timeBasedCanary":{"canaryPercentage":25,"canaryIntervalSeconds":6}}"#;
    let mut config = vec!["deploy", "create-deployment-config", "--deployment-config-name", "canary25"];
    config.extend_from_slice(&[
        "--minimum-healthy-hosts",
        "type=HOST_COUNT,value=0",
        "--traffic-routing-config",
        routing,
    ]);
    cluster.ok(VIA, &config);
    group(&cluster, "first", None);
    group(&cluster, "web", Some("canary25"));
    let work = tempfile::tempdir().expect("tempdir");
    let revisions: Vec<String> = ["v1", "v2"]
        .iter()
        .map(|version| {
            let dir = work.path().join(version);
            bundle(&dir, &format!("{version}\n"));
            cluster.push(VIA, "app", &dir)
        })
        .collect();

    // v1 onto the empty route, on host 5.
    let blue_filter =
        serde_json::json!({"tagFilters": [{"Key": "fleet", "Value": "blue", "Type": "KEY_AND_VALUE"}]}).to_string();
    let first = create(&cluster, "first", &revisions[0], &["--target-instances", &blue_filter]);
    wait_status(&cluster, &first, DeploymentStatus::Succeeded, Duration::from_secs(90));
    let router = SocketAddr::new(cluster.ip(VIA), LISTEN_PORT);
    wait_until("v1 answers through the router", Duration::from_secs(20), || (ask(router).ok()? == "v1").then_some(()));

    // v2 under the canary, to the standby hosts 6-7 (the "web" group has no history on
    // host 5, which is blue: only green installs).
    let client = Client::start(router);
    let second = create(&cluster, "web", &revisions[1], &[]);
    let shifting = wait_until("the canary step", Duration::from_secs(90), || {
        let info = deployment(&cluster, &second)?.deployment_info;
        assert!(!info.status.is_terminal(), "ended early: {info:?}");
        (info.green_traffic_percent == Some(25) && format!("{:?}", info.blue_green_phase) == "Some(Shifting)")
            .then(Instant::now)
    });
    let route: Value =
        serde_json::from_str(&cluster.ok(VIA, &["traffic", "get-route", "--route-name", "web", "--json"]))
            .expect("route");
    assert_eq!(route["trafficSplit"]["greenPercent"], 25, "{route}");
    std::thread::sleep(Duration::from_millis(2000));
    let bake: Vec<_> = client.answers().into_iter().filter(|(at, _)| *at >= shifting).collect();
    let v2 = bake.iter().filter(|(_, answer)| answer.as_deref() == Ok("v2")).count();
    println!("canary 25 %: {v2} of {} answers in 2 s of the bake were v2 ({:.1} %)", bake.len(), pct(v2, bake.len()));
    assert!(bake.len() >= 50, "too few answers to judge: {}", bake.len());
    assert!((0.10..=0.45).contains(&(v2 as f64 / bake.len() as f64)), "v2 share {v2}/{}", bake.len());

    // kill -9 the leader mid-bake; a new leader ends the bake from the committed step.
    let info = deployment(&cluster, &second).expect("the deployment").deployment_info;
    let targets: std::collections::BTreeSet<String> =
        info.target_waves.iter().map(|wave| wave.target_id.clone()).collect();
    let expected = [5, 6, 7].iter().map(|index| cluster.node_id(*index).to_string()).collect();
    assert_eq!(targets, expected, "the targets are blue host 5 and green hosts 6-7");
    let leader = cluster.leader_index(VIA).expect("a leader");
    assert!(leader <= 3, "the voters are nodes 1-3, the leader is {leader}");
    let killed = Instant::now();
    cluster.kill9(leader);
    wait_status(&cluster, &second, DeploymentStatus::Succeeded, Duration::from_secs(90));
    println!("leader {leader} killed mid-shift; the deployment succeeded {} ms later", killed.elapsed().as_millis());
    cluster.restart(leader);

    // v3's ValidateService fails on green (host 5, the standby now): the deployment
    // fails before any traffic moves, and v2 keeps serving.
    let broken = work.path().join("v3");
    bundle(&broken, "v3\n");
    write_bundle(&broken, &[("hooks/validate.sh", "#!/bin/sh\necho 'v3 does not validate' >&2\nexit 1\n", 0o755)]);
    // (Host 5 holds v1 from the "first" group: overwrite, as in CodeDeploy.)
    let third = create(&cluster, "web", &cluster.push(VIA, "app", &broken), &["--file-exists-behavior", "OVERWRITE"]);
    wait_status(&cluster, &third, DeploymentStatus::Failed, Duration::from_secs(90));
    let failed = deployment(&cluster, &third).expect("the deployment").deployment_info;
    let message = failed.error_information.map(|error| error.message).unwrap_or_default();
    assert!(message.contains("green target(s) failed") && message.contains("traffic did not move"), "{message}");
    let route: Value =
        serde_json::from_str(&cluster.ok(VIA, &["traffic", "get-route", "--route-name", "web", "--json"]))
            .expect("route");
    let serving: std::collections::BTreeSet<u64> = route["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter(|target| target["state"] == "serving")
        .filter_map(|target| target["targetId"].as_u64())
        .collect();
    assert_eq!(serving, [6, 7].iter().map(|index| cluster.node_id(*index)).collect(), "{route}");
    std::thread::sleep(Duration::from_millis(300));
    let answers = client.finish();
    assert!(failures(&answers).is_empty(), "failed requests: {:?}", failures(&answers));
    assert!(answers.iter().rev().take(20).all(|(_, answer)| answer.as_deref() == Ok("v2")), "v2 serves at the end");
    let route: Value =
        serde_json::from_str(&cluster.ok(VIA, &["traffic", "get-route", "--route-name", "web", "--json"]))
            .expect("route");
    assert!(route.get("trafficSplit").is_none(), "no split after the deployment: {route}");
    println!("blue/green canary: {} requests, {} failed", answers.len(), failures(&answers).len());
}

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    part as f64 * 100.0 / whole as f64
}
