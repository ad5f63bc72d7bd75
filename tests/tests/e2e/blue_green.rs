//! Blue/green deployments of servers, end to end (`codedeploy.md` §2.3, §5.3): five
//! nodes, node 1 the router of route `web`, hosts 2–3 tagged `fleet=blue` and 4–5
//! `fleet=green`, all four in the group (`role=web`). The app and its hooks are the
//! traffic-control test's: it answers its revision on `FLEETMESH_NODE_ADDRESS`.
//!
//! v1 goes to 2–3 (an empty route: a first blue/green deployment only allows its green
//! fleet), waits `Ready` until `continue-deployment`, and serves. Then, while a client
//! asks through the router every 5 ms, v2 goes to the standby hosts 4–5 by default:
//! installed while blue serves, rerouted, blue taken off and terminated (its
//! `ApplicationStop` runs and its installed files are removed); no request fails. Then a group
//! with a long termination wait moves traffic to v3 on 2–3 and is stopped with rollback
//! during the wait: v2 on 4–5 serves again at once (decision to 100 % blue measured),
//! again with no failed request. Bad input is refused and changes nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fleetmesh_model::{DeploymentStatus, GetDeploymentOutput, TargetStatus};
use fleetmesh_tests::{wait_until, Options, TestCluster};
use serde_json::Value;

use super::traffic_control::{ask, bundle, lb_info, refused, Apps, LISTEN_PORT, TARGET_PORT};

const STYLE: &str = "deploymentType=BLUE_GREEN,deploymentOption=WITH_TRAFFIC_CONTROL";

/// One answer through the router (or why there was none), with when it came.
pub(super) type Answer = (Instant, Result<String, String>);

/// A client asking through the router every 5 ms until stopped; every answer, in order.
pub(super) struct Client {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    pub(super) fn start(router: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, answers) = (stop.clone(), answers.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let answer = ask(router);
                    answers.lock().expect("answers").push((Instant::now(), answer));
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Self { stop, answers, thread: Some(thread) }
    }

    pub(super) fn answers(&self) -> Vec<Answer> {
        self.answers.lock().expect("answers").clone()
    }

    pub(super) fn finish(mut self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("client thread");
        }
        self.answers()
    }
}

fn group(cluster: &TestCluster, name: &str, configuration: &Value) {
    let configuration = configuration.to_string();
    let info = lb_info("web");
    cluster.ok(
        1,
        &[
            "deploy",
            "create-deployment-group",
            "--application-name",
            "app",
            "--deployment-group-name",
            name,
            "--tag",
            "role=web",
            "--deployment-style",
            STYLE,
            "--load-balancer-info",
            &info,
            "--blue-green-deployment-configuration",
            &configuration,
            "--auto-rollback",
        ],
    );
}

/// Creates a deployment (not waiting); its id.
fn create(cluster: &TestCluster, group: &str, revision: &str, extra: &[&str]) -> String {
    let mut args = vec!["deploy", "create-deployment", "--application-name", "app", "--deployment-group-name", group];
    args.extend_from_slice(&["--revision", revision, "--json"]);
    args.extend_from_slice(extra);
    let answer: Value = serde_json::from_str(&cluster.ok(1, &args)).expect("create-deployment --json");
    answer["deploymentId"].as_str().expect("deploymentId").to_string()
}

fn wait_status(cluster: &TestCluster, id: &str, wanted: DeploymentStatus, within: Duration) -> GetDeploymentOutput {
    wait_until(&format!("deployment {id} {wanted:?}"), within, || {
        let answer = cluster.deployment(1, id)?;
        let status = answer.deployment_info.status;
        assert!(status == wanted || !status.is_terminal(), "deployment {id} ended {status:?}: {answer:?}");
        (status == wanted).then_some(answer)
    })
}

/// The route's targets as (node id, state).
fn route_states(cluster: &TestCluster) -> Vec<(u64, String)> {
    let route: Value = serde_json::from_str(&cluster.ok(1, &["traffic", "get-route", "--route-name", "web", "--json"]))
        .expect("get-route --json");
    let mut states: Vec<(u64, String)> = route["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|target| (target["targetId"].as_u64().unwrap_or(0), target["state"].as_str().unwrap_or("").to_string()))
        .collect();
    states.sort();
    states
}

/// The node ids of test nodes `indexes`, sorted.
fn serving(cluster: &TestCluster, indexes: &[u32]) -> Vec<u64> {
    let mut ids: Vec<u64> = indexes.iter().map(|index| cluster.node_id(*index)).collect();
    ids.sort_unstable();
    ids
}

pub(super) fn failures(answers: &[Answer]) -> Vec<&Result<String, String>> {
    answers
        .iter()
        .map(|(_, answer)| answer)
        .filter(|answer| !matches!(answer.as_deref(), Ok("v1" | "v2" | "v3")))
        .collect()
}

#[test]
fn blue_green_installs_beside_the_serving_fleet_moves_traffic_and_rolls_back_at_once() {
    let tags = |fleet: &str| vec!["role=web".to_string(), format!("fleet={fleet}")];
    let options = Options {
        tags: [
            (1, vec!["router=yes".to_string()]),
            (2, tags("blue")),
            (3, tags("blue")),
            (4, tags("green")),
            (5, tags("green")),
        ]
        .into_iter()
        .collect(),
        ..Options::default()
    };
    let cluster = TestCluster::start(5, options);
    let _apps = Apps(&cluster);
    wait_until("feature level 10", Duration::from_secs(60), || {
        (cluster.status(1)?["feature_level"].as_u64()? >= 10).then_some(())
    });
    cluster.create_route("web", LISTEN_PORT, TARGET_PORT, 1, &[]);
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);

    // Bad group input: both minutes and seconds, blue/green without traffic control.
    let both = serde_json::json!({"deploymentReadyOption": {"actionOnTimeout": "STOP_DEPLOYMENT",
        "waitTimeInMinutes": 1, "waitTimeInSeconds": 5}});
    let mut bad = vec!["deploy", "create-deployment-group", "--application-name", "app"];
    let (both, info) = (both.to_string(), lb_info("web"));
    bad.extend_from_slice(&["--deployment-group-name", "bad", "--tag", "role=web", "--deployment-style", STYLE]);
    bad.extend_from_slice(&["--load-balancer-info", &info, "--blue-green-deployment-configuration", &both]);
    assert!(refused(&cluster, &bad).contains("not both"));

    let waits = serde_json::json!({
        "deploymentReadyOption": {"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 60},
        "terminateBlueInstancesOnDeploymentSuccess": {"action": "TERMINATE", "terminationWaitTimeInSeconds": 1}});
    group(&cluster, "web", &waits);
    let work = tempfile::tempdir().expect("tempdir");
    let revisions: Vec<String> = ["v1", "v2", "v3"]
        .iter()
        .map(|version| {
            let dir = work.path().join(version);
            bundle(&dir, &format!("{version}\n"));
            cluster.push(1, "app", &dir)
        })
        .collect();

    // v1 onto the empty route: green is the fleet=blue hosts, ready, then continued.
    let green_filter = |fleet: &str| {
        serde_json::json!({"tagFilters": [{"Key": "fleet", "Value": fleet, "Type": "KEY_AND_VALUE"}]}).to_string()
    };
    let first_green = green_filter("blue");
    let first = create(&cluster, "web", &revisions[0], &["--target-instances", &first_green]);
    let ready = wait_status(&cluster, &first, DeploymentStatus::Ready, Duration::from_secs(90));
    assert_eq!(ready.deployment_info.deployment_overview.Ready, 2, "{ready:?}");
    assert!(route_states(&cluster).is_empty(), "no traffic before the continue");
    let early = refused(
        &cluster,
        &["deploy", "continue-deployment", "--deployment-id", &first, "--deployment-wait-type", "TERMINATION_WAIT"],
    );
    assert!(early.contains("not in its termination wait"), "{early}");
    cluster.ok(1, &["deploy", "continue-deployment", "--deployment-id", &first]);
    wait_status(&cluster, &first, DeploymentStatus::Succeeded, Duration::from_secs(60));
    let blue_ids = serving(&cluster, &[2, 3]);
    let states = route_states(&cluster);
    assert_eq!(states.iter().map(|(id, _)| *id).collect::<Vec<_>>(), blue_ids, "{states:?}");

    // v2 to the standby hosts (4-5, by default) while the client asks.
    let router = SocketAddr::new(cluster.ip(1), LISTEN_PORT);
    wait_until("v1 answers through the router", Duration::from_secs(20), || (ask(router).ok()? == "v1").then_some(()));
    let client = Client::start(router);
    let second = create(&cluster, "web", &revisions[1], &[]);
    wait_status(&cluster, &second, DeploymentStatus::Ready, Duration::from_secs(90));
    cluster
        .ok(1, &["deploy", "continue-deployment", "--deployment-id", &second, "--deployment-wait-type", "READY_WAIT"]);
    let done = wait_status(&cluster, &second, DeploymentStatus::Succeeded, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(300));
    let answers = client.answers();
    let count = |wanted: &str| answers.iter().filter(|(_, answer)| answer.as_deref() == Ok(wanted)).count();
    println!(
        "v2 blue/green: {} requests, {} v1, {} v2, {} failed",
        answers.len(),
        count("v1"),
        count("v2"),
        failures(&answers).len()
    );
    assert!(failures(&answers).is_empty(), "failed requests: {:?}", failures(&answers));
    assert!(answers.iter().rev().take(20).all(|(_, answer)| answer.as_deref() == Ok("v2")), "v2 serves at the end");
    let labels: Vec<(String, Option<String>)> = done
        .deployment_info
        .target_waves
        .iter()
        .map(|wave| (wave.target_id.clone(), wave.label.map(|label| format!("{label:?}"))))
        .collect();
    assert_eq!(labels.iter().filter(|(_, label)| label.as_deref() == Some("Green")).count(), 2, "{labels:?}");
    assert!(done.deployment_info.target_waves.iter().all(|wave| wave.status == TargetStatus::Succeeded), "{done:?}");
    // TERMINATE: blue (2-3) ran v1's ApplicationStop and its installed files are gone.
    let installed = |index: u32| cluster.nodes[&index].install_root.join("srv/web/VERSION");
    for index in [2, 3] {
        assert!(!installed(index).exists(), "{} is still there after TERMINATE", installed(index).display());
    }
    assert_eq!(std::fs::read_to_string(installed(4)).ok().as_deref(), Some("v2\n"), "green keeps its files");
    let states = route_states(&cluster);
    let green_ids = serving(&cluster, &[4, 5]);
    for (id, state) in &states {
        let expected = if green_ids.contains(id) { "serving" } else { "draining" };
        assert_eq!(state, expected, "{states:?}");
    }

    // Bad deployments: green overlapping blue (4-5 serve now), an empty green fleet.
    let refused_green = |fleet: &str| {
        let filter = green_filter(fleet);
        let mut args = vec!["deploy", "create-deployment", "--application-name", "app"];
        args.extend_from_slice(&["--deployment-group-name", "web", "--revision", &revisions[2]]);
        args.extend_from_slice(&["--target-instances", &filter]);
        refused(&cluster, &args)
    };
    let overlap = refused_green("green");
    assert!(overlap.contains("overlaps blue"), "{overlap}");
    let nobody = refused_green("nobody");
    assert!(nobody.contains("green fleet is empty"), "{nobody}");

    // v3 through a group that continues at once and waits long before finishing: stop
    // with rollback during the wait gives the traffic back to v2 at once.
    let slow = serde_json::json!({
        "terminateBlueInstancesOnDeploymentSuccess": {"action": "KEEP_ALIVE", "terminationWaitTimeInMinutes": 60}});
    group(&cluster, "web-slow", &slow);
    // (A new group has no install history on the hosts, so v1's files on 2-3 are
    // "existing files" to it, as in CodeDeploy: overwrite them.)
    let third = create(&cluster, "web-slow", &revisions[2], &["--file-exists-behavior", "OVERWRITE"]);
    wait_status(&cluster, &third, DeploymentStatus::Baking, Duration::from_secs(90));
    wait_until("v3 answers", Duration::from_secs(10), || {
        client.answers().last().is_some_and(|(_, answer)| answer.as_deref() == Ok("v3")).then_some(())
    });
    let decided = Instant::now();
    cluster.ok(1, &["deploy", "stop-deployment", "--deployment-id", &third, "--auto-rollback"]);
    let back = wait_until("v2 serves alone again", Duration::from_secs(10), || {
        let answers = client.answers();
        let recent: Vec<_> = answers.iter().filter(|(at, _)| *at > decided).collect();
        let first_v2_run =
            recent.windows(10).position(|run| run.iter().all(|(_, answer)| answer.as_deref() == Ok("v2")))?;
        Some(recent[first_v2_run].0.duration_since(decided))
    });
    let answers = client.finish();
    println!("rollback: decision to 100 % blue in {} ms (ten v2 answers in a row from then)", back.as_millis());
    assert!(failures(&answers).is_empty(), "failed requests: {:?}", failures(&answers));
    let stopped = cluster.deployment(1, &third).expect("get-deployment");
    assert_eq!(stopped.deployment_info.status, DeploymentStatus::Stopped);
    let message = stopped.deployment_info.rollback_info.map(|info| info.rollback_message).unwrap_or_default();
    assert!(message.contains("traffic went back to the original fleet"), "{message}");
}
