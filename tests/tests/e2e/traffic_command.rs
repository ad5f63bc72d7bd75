//! A `--command` route's exit status decides the traffic events of deployments on it,
//! end to end: node 1 is the only target, node 2 the only router, and the route's
//! program is a script that records the route's JSON and exits 1 while a marker file
//! exists. An in-place deployment with traffic control succeeds while the marker is
//! absent (the router confirmed each run), fails at `BlockTraffic` with the script's
//! output in `get-deployment-target`'s diagnostics while it is present, and succeeds
//! again once it is gone.

use std::path::Path;
use std::time::{Duration, Instant};

use fleetmesh_model::{DeploymentStatus, LifecycleEventName, LifecycleEventStatus};
use fleetmesh_tests::{wait_until, write_bundle, Options, TestCluster};
use serde_json::Value;

const LISTEN_PORT: u16 = 18200;

const STYLE: &str = "deploymentType=IN_PLACE,deploymentOption=WITH_TRAFFIC_CONTROL";

/// The route's program: keeps the route's JSON, then fails while `fail` exists.
fn write_command(script: &Path, dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let text = format!(
        "#!/bin/sh\ncat > {dir}/route.json.tmp && mv {dir}/route.json.tmp {dir}/route.json\n\
         if [ -e {dir}/fail ]; then echo \"upstream config rejected: marker present\"; \
         echo \"reload aborted\" >&2; exit 1; fi\necho reloaded\n",
        dir = dir.display()
    );
    std::fs::write(script, text).expect("write route command");
    std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).expect("chmod route command");
}

/// `get-deployment-target`'s event `name` of node `index`, as JSON.
fn event(cluster: &TestCluster, deployment: &str, index: u32, name: LifecycleEventName) -> Value {
    let target = cluster.node_id(index).to_string();
    let events = cluster
        .deployment_target(1, deployment, &target)
        .deployment_target
        .instance_target
        .expect("an instance target")
        .lifecycle_events;
    let found = events.iter().find(|event| event.lifecycle_event_name == name);
    serde_json::to_value(found.unwrap_or_else(|| panic!("no {name:?} in {events:?}"))).expect("event as JSON")
}

#[test]
fn a_route_commands_exit_status_fails_or_passes_the_traffic_events() {
    let options = Options {
        tags: [(1, vec!["role=web".to_string()]), (2, vec!["router=yes".to_string()])].into_iter().collect(),
        ..Options::default()
    };
    let cluster = TestCluster::start(2, options);
    wait_until("feature level 9", Duration::from_secs(60), || {
        (cluster.status(1)?["feature_level"].as_u64()? >= 9).then_some(())
    });
    let script = cluster.dir.path().join("route-command.sh");
    write_command(&script, cluster.dir.path());
    let marker = cluster.dir.path().join("fail");
    cluster.create_route("lb", LISTEN_PORT, 8080, 0, &["--command", script.to_str().expect("utf-8 path")]);
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    let lb_info = serde_json::json!({"targetGroupInfoList": [{"name": "lb"}]}).to_string();
    cluster.create_group("web", &["--tag", "role=web", "--deployment-style", STYLE, "--load-balancer-info", &lb_info]);
    let work = tempfile::tempdir().expect("tempdir");
    let appspec = "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/app\n";
    write_bundle(work.path(), &[("appspec.yml", appspec, 0o644), ("site/index.html", "<p>1</p>\n", 0o644)]);
    let revision = cluster.push(1, "app", work.path());
    let (target, router) = (cluster.node_id(1), cluster.node_id(2));

    // Marker absent: both traffic events wait for the router's successful run.
    let started = Instant::now();
    let first = cluster.deploy_and_wait(1, "app", "web", &revision, &[]);
    println!("deployment with a passing route command: {} ms", started.elapsed().as_millis());
    assert_eq!(first.deployment_info.status, DeploymentStatus::Succeeded, "{first:?}");
    let id = first.deployment_info.deployment_id.to_string();
    let allow = event(&cluster, &id, 1, LifecycleEventName::AllowTraffic);
    let message = allow["diagnostics"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("route lb's command succeeded on router node(s) {router}")), "{allow}");
    let route: Value =
        serde_json::from_str(&std::fs::read_to_string(cluster.dir.path().join("route.json")).expect("route.json"))
            .expect("the route's JSON");
    assert_eq!(route["targets"][0]["targetId"], target, "{route}");
    assert_eq!(route["targets"][0]["state"], "serving", "{route}");

    // Marker present: BlockTraffic fails with the script's output, and nothing after it runs.
    std::fs::write(&marker, "").expect("marker");
    let started = Instant::now();
    let second = cluster.deploy_and_wait(1, "app", "web", &revision, &[]);
    println!("deployment failing at a route command: {} ms", started.elapsed().as_millis());
    assert_eq!(second.deployment_info.status, DeploymentStatus::Failed, "{second:?}");
    let id = second.deployment_info.deployment_id.to_string();
    let block = event(&cluster, &id, 1, LifecycleEventName::BlockTraffic);
    assert_eq!(block["status"], serde_json::to_value(LifecycleEventStatus::Failed).expect("status"), "{block}");
    let diagnostics = &block["diagnostics"];
    println!("BlockTraffic diagnostics: {diagnostics}");
    assert_eq!(diagnostics["errorCode"], "ScriptFailed", "{block}");
    let message = diagnostics["message"].as_str().unwrap_or_default();
    assert!(message.contains("route lb") && message.contains(&format!("router node {router}")), "{block}");
    let tail = diagnostics["logTail"].as_str().unwrap_or_default();
    assert!(tail.contains("upstream config rejected: marker present") && tail.contains("reload aborted"), "{block}");
    let stop = event(&cluster, &id, 1, LifecycleEventName::ApplicationStop);
    assert_ne!(stop["status"], "Succeeded", "ApplicationStop must not run after a failed block: {stop}");

    // Marker gone: the next deployment's block runs the command again and passes.
    std::fs::remove_file(&marker).expect("remove marker");
    let third = cluster.deploy_and_wait(1, "app", "web", &revision, &[]);
    assert_eq!(third.deployment_info.status, DeploymentStatus::Succeeded, "{third:?}");
    let route: Value =
        serde_json::from_str(&std::fs::read_to_string(cluster.dir.path().join("route.json")).expect("route.json"))
            .expect("the route's JSON");
    assert_eq!(route["targets"][0]["state"], "serving", "{route}");
}
