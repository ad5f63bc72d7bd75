//! In-place deployments with traffic control, end to end: three hosts run a tiny web
//! app (a hook starts it on `FLEETMESH_NODE_ADDRESS`; it answers its revision, or
//! `STOPPED` from the moment `ApplicationStop` ran until the next `ApplicationStart`),
//! behind a route whose router is node 2. A client sends a steady stream of requests
//! through the router while a OneAtATime deployment replaces v1 by v2: every host is
//! taken off the route before `ApplicationStop` and put back after `ValidateService`,
//! so no client request sees `STOPPED` or fails. The block events run the old
//! revision's scripts and the allow events the new one's (§2.4), and bad input is
//! refused and changes nothing.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetmesh_model::{DeploymentStatus, LifecycleEventName, LifecycleEventStatus};
use fleetmesh_tests::{wait_until, write_bundle, Options, TestCluster};
use serde_json::Value;

pub(super) const LISTEN_PORT: u16 = 18100;
pub(super) const TARGET_PORT: u16 = 18180;

pub(super) const APPSPEC: &str = r#"version: 0.0
os: linux
files:
  - source: web
    destination: /srv/web
hooks:
  BeforeBlockTraffic:
    - location: hooks/record.sh
  AfterBlockTraffic:
    - location: hooks/record.sh
  ApplicationStop:
    - location: hooks/stop.sh
  ApplicationStart:
    - location: hooks/start.sh
      timeout: 30
  ValidateService:
    - location: hooks/validate.sh
      timeout: 30
  BeforeAllowTraffic:
    - location: hooks/record.sh
  AfterAllowTraffic:
    - location: hooks/record.sh
"#;

/// The app: answers every connection with its version, or STOPPED while the flag file
/// exists, and closes it. Retries its bind while the previous run lets go of the port.
pub(super) const SERVER: &str = r#"import os, socket, sys, time
address, port, version, flag = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
for attempt in range(200):
    try:
        server.bind((address, port))
        break
    except OSError:
        time.sleep(0.05)
server.listen(128)
while True:
    connection, _ = server.accept()
    answer = "STOPPED" if os.path.exists(flag) else version
    try:
        connection.sendall((answer + "\n").encode())
    except OSError:
        pass
    connection.close()
"#;

/// Marks the app stopped: it answers STOPPED (a failed request) until restarted; the
/// pause keeps that window wide enough that a host still on the route would be seen.
pub(super) const STOP: &str = "#!/bin/sh\ntouch \"${FLEETMESH_INSTALL_ROOT%/}/app-stopped\"\nsleep 0.5\n";

/// Replaces the running app by this revision's (in its own session, so it outlives the
/// hook's process group).
pub(super) const START: &str = r#"#!/bin/sh
ROOT="${FLEETMESH_INSTALL_ROOT%/}"
if [ -f "$ROOT/app.pid" ]; then kill "$(cat "$ROOT/app.pid")" 2>/dev/null; sleep 0.2; fi
rm -f "$ROOT/app-stopped"
setsid python3 "$ROOT/srv/web/server.py" "$FLEETMESH_NODE_ADDRESS" 18180 "$(cat "$ROOT/srv/web/VERSION")" "$ROOT/app-stopped" </dev/null >>"$ROOT/app.log" 2>&1 &
echo $! > "$ROOT/app.pid"
"#;

/// Passes once the app answers this revision's version.
pub(super) const VALIDATE: &str = r#"#!/bin/sh
ROOT="${FLEETMESH_INSTALL_ROOT%/}"
exec python3 - "$FLEETMESH_NODE_ADDRESS" 18180 "$(cat "$ROOT/srv/web/VERSION")" <<'PY'
import socket, sys, time
address, port, version = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for attempt in range(100):
    try:
        with socket.create_connection((address, port), timeout=1) as connection:
            if connection.makefile().readline().strip() == version:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit("the app does not answer " + version)
PY
"#;

/// Appends "<event> <version of the bundle this script is in>" to the host's log.
pub(super) const RECORD: &str = r#"#!/bin/sh
ROOT="${FLEETMESH_INSTALL_ROOT%/}"
echo "$LIFECYCLE_EVENT $(cat "$(dirname "$0")/../web/VERSION")" >> "$ROOT/traffic-events"
"#;

pub(super) fn bundle(dir: &Path, version: &str) {
    write_bundle(
        dir,
        &[
            ("appspec.yml", APPSPEC, 0o644),
            ("web/VERSION", version, 0o644),
            ("web/server.py", SERVER, 0o644),
            ("hooks/stop.sh", STOP, 0o755),
            ("hooks/start.sh", START, 0o755),
            ("hooks/validate.sh", VALIDATE, 0o755),
            ("hooks/record.sh", RECORD, 0o755),
        ],
    );
}

/// Kills the apps the hooks started (they run in their own sessions) when the test
/// ends, passed or not.
pub(super) struct Apps<'a>(pub(super) &'a TestCluster);

impl Drop for Apps<'_> {
    fn drop(&mut self) {
        for node in self.0.nodes.values() {
            if let Ok(pid) = std::fs::read_to_string(node.install_root.join("app.pid")) {
                let _ = std::process::Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

/// One request through `router`: the app's answer, or why there was none.
pub(super) fn ask(router: SocketAddr) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&router, Duration::from_secs(5)).map_err(|error| error.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|error| error.to_string())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|error| error.to_string())?;
    match answer.trim() {
        "" => Err("empty answer".to_string()),
        text => Ok(text.to_string()),
    }
}

pub(super) fn run(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Runs a CLI command that must fail; its stderr.
pub(super) fn refused(cluster: &TestCluster, args: &[&str]) -> String {
    let output = cluster.cli(1, args);
    assert!(!output.status.success(), "fleetmesh {} should fail", args.join(" "));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const STYLE: &str = "deploymentType=IN_PLACE,deploymentOption=WITH_TRAFFIC_CONTROL";

pub(super) fn lb_info(route: &str) -> String {
    serde_json::json!({"targetGroupInfoList": [{"name": route}]}).to_string()
}

#[test]
fn in_place_with_traffic_control_takes_each_host_off_the_route_and_no_request_fails() {
    let options = Options {
        tags: [(2, vec!["role=web".to_string(), "router=yes".to_string()])].into_iter().collect(),
        ..Options::default()
    };
    let cluster = TestCluster::start(3, options);
    let _apps = Apps(&cluster);
    wait_until("feature level 9", Duration::from_secs(60), || {
        (cluster.status(1)?["feature_level"].as_u64()? >= 9).then_some(())
    });
    cluster.create_route("web", LISTEN_PORT, TARGET_PORT, 1, &[]);
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);

    // Bad input: clear errors, nothing created.
    let group_args = |name: &'static str, style: &'static str, info: String| -> Vec<String> {
        [
            "deploy",
            "create-deployment-group",
            "--application-name",
            "app",
            "--deployment-group-name",
            name,
            "--tag",
            "role=web",
            "--deployment-style",
            style,
            "--load-balancer-info",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .chain([info])
        .collect()
    };
    let missing = refused(&cluster, &run(&group_args("bad", STYLE, lb_info("nope"))));
    assert!(missing.contains("names route \"nope\", which does not exist"), "{missing}");
    let blue_green =
        group_args("bad", "deploymentType=BLUE_GREEN,deploymentOption=WITHOUT_TRAFFIC_CONTROL", lb_info("web"));
    let blue_green = refused(&cluster, &run(&blue_green));
    assert!(blue_green.contains("BLUE_GREEN"), "{blue_green}");
    let shorthand = refused(&cluster, &run(&group_args("bad", "deploymentType=SIDEWAYS", lb_info("web"))));
    assert!(shorthand.contains("--deployment-style"), "{shorthand}");
    let elb = refused(&cluster, &run(&group_args("bad", STYLE, r#"{"elbInfoList":[{"name":"x"}]}"#.to_string())));
    assert!(elb.contains("elbInfoList"), "{elb}");
    let groups = cluster.ok(1, &["deploy", "list-deployment-groups", "--application-name", "app", "--json"]);
    assert!(!groups.contains("\"bad\""), "{groups}");

    cluster.ok(1, &run(&group_args("web", STYLE, lb_info("web"))));
    let group: Value = serde_json::from_str(
        &cluster
            .ok(1, &["deploy", "get-deployment-group", "--application-name", "app", "--deployment-group-name", "web"]),
    )
    .expect("get-deployment-group");
    let group = &group["deploymentGroupInfo"];
    assert_eq!(group["deploymentStyle"]["deploymentOption"], "WITH_TRAFFIC_CONTROL", "{group}");
    assert_eq!(group["loadBalancerInfo"]["targetGroupInfoList"][0]["name"], "web", "{group}");
    let in_use = refused(&cluster, &["traffic", "delete-route", "--route-name", "web"]);
    assert!(in_use.contains("used by deployment group web"), "{in_use}");

    // v1 onto an empty route: each host joins it after ValidateService.
    let work = tempfile::tempdir().expect("tempdir");
    let (v1, v2) = (work.path().join("v1"), work.path().join("v2"));
    bundle(&v1, "v1\n");
    bundle(&v2, "v2\n");
    let rev1 = cluster.push(1, "app", &v1);
    let first = cluster.deploy_and_wait(1, "app", "web", &rev1, &[]);
    assert_eq!(first.deployment_info.status, DeploymentStatus::Succeeded, "{first:?}");
    let route: Value = serde_json::from_str(&cluster.ok(1, &["traffic", "get-route", "--route-name", "web", "--json"]))
        .expect("get-route --json");
    let targets = route["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 3, "{route}");
    assert!(targets.iter().all(|target| target["state"] == "serving" && target["weight"] == 100), "{route}");

    // v2 while a client keeps asking through the router.
    let router = SocketAddr::new(cluster.ip(2), LISTEN_PORT);
    let mut last = Err(String::from("not asked"));
    let asking = Instant::now();
    while last.as_deref() != Ok("v1") {
        if asking.elapsed() > Duration::from_secs(10) {
            let direct: Vec<_> = (1..=3).map(|index| ask(SocketAddr::new(cluster.ip(index), TARGET_PORT))).collect();
            let logs: Vec<String> = (1..=3)
                .map(|index| {
                    std::fs::read_to_string(cluster.nodes[&index].install_root.join("app.log")).unwrap_or_default()
                })
                .collect();
            let ps = std::process::Command::new("sh")
                .arg("-c")
                .arg("ps -eo pid,pgid,sid,stat,cmd | grep -e server.py -e fleetmesh | grep -v grep")
                .output()
                .expect("ps");
            let root = &cluster.nodes[&1].install_root;
            let listing = std::process::Command::new("find").arg(root).output().expect("find");
            panic!("the app does not answer through the router: {last:?}; straight to the hosts: {direct:?}; app logs: {logs:?}\n{}\n{}", String::from_utf8_lossy(&ps.stdout), String::from_utf8_lossy(&listing.stdout));
        }
        last = ask(router);
        std::thread::sleep(Duration::from_millis(50));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::<Result<String, String>>::new()));
    let client = {
        let (stop, answers) = (stop.clone(), answers.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let answer = ask(router);
                answers.lock().expect("answers").push(answer);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let rev2 = cluster.push(1, "app", &v2);
    let started = Instant::now();
    let second = cluster.deploy_and_wait(1, "app", "web", &rev2, &[]);
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    client.join().expect("client thread");
    assert_eq!(second.deployment_info.status, DeploymentStatus::Succeeded, "{second:?}");
    let answers = answers.lock().expect("answers").clone();
    let count = |wanted: &str| answers.iter().filter(|answer| answer.as_deref() == Ok(wanted)).count();
    let failures: Vec<&Result<String, String>> =
        answers.iter().filter(|answer| !matches!(answer.as_deref(), Ok("v1" | "v2"))).collect();
    println!(
        "{} requests through the router during a {} ms OneAtATime deployment of 3 hosts: {} v1, {} v2, {} failed",
        answers.len(),
        took.as_millis(),
        count("v1"),
        count("v2"),
        failures.len()
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(count("v1") > 0 && count("v2") > 0, "both revisions served during the deployment");
    assert!(answers.iter().rev().take(20).all(|answer| answer.as_deref() == Ok("v2")), "v2 serves at the end");

    // Every host ran the thirteen events; the block events ran v1's scripts, the allow
    // events v2's.
    let id = second.deployment_info.deployment_id.to_string();
    for index in 1..=3 {
        let target = cluster.node_id(index).to_string();
        let events = cluster
            .deployment_target(1, &id, &target)
            .deployment_target
            .instance_target
            .expect("an instance target")
            .lifecycle_events;
        let names: Vec<LifecycleEventName> = events.iter().map(|event| event.lifecycle_event_name).collect();
        assert_eq!(names.first(), Some(&LifecycleEventName::BeforeBlockTraffic), "{names:?}");
        assert_eq!(names.last(), Some(&LifecycleEventName::AfterAllowTraffic), "{names:?}");
        assert_eq!(names.len(), 13, "{names:?}");
        assert!(events.iter().all(|event| event.status == LifecycleEventStatus::Succeeded), "{events:?}");
        let log = std::fs::read_to_string(cluster.nodes[&index].install_root.join("traffic-events")).expect("log");
        let lines: Vec<&str> = log.lines().collect();
        // First deployment: no previous install, so no block scripts; then the allow
        // events of v1. Second: block events of v1, allow events of v2.
        assert_eq!(
            lines,
            [
                "BeforeAllowTraffic v1",
                "AfterAllowTraffic v1",
                "BeforeBlockTraffic v1",
                "AfterBlockTraffic v1",
                "BeforeAllowTraffic v2",
                "AfterAllowTraffic v2"
            ],
            "host {index}"
        );
    }
}
