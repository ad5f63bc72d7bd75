//! Honest failures and clean stops with real processes: `stop-deployment` ends a running
//! hook with its process group; a DownloadBundle whose chunks no live node holds fails
//! within the no-holder timeout and says how many are missing; SIGTERM ends a running
//! hook after the grace and records why; hooks left by a `kill -9` are killed on restart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fleetmesh_model::{DeploymentStatus, LifecycleEvent, LifecycleEventName, LifecycleEventStatus};
use fleetmesh_tests::{wait_until, write_bundle, Options, TestCluster};

/// A BeforeInstall hook that writes its own pid and a background child's to `dir`, then
/// sleeps long: only an interrupt ends it in a test's time.
fn sleeper_bundle(source: &Path, dir: &Path) {
    let hook = format!(
        "#!/bin/sh\nsleep 300 &\necho $! > {dir}/child.pid\necho $$ > {dir}/hook.pid\nsleep 300\n",
        dir = dir.display()
    );
    let spec = "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: sleep.sh\n      timeout: 600\n";
    write_bundle(source, &[("appspec.yml", spec, 0o644), ("sleep.sh", &hook, 0o755)]);
}

fn setup(cluster: &TestCluster, tag: &str) {
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    cluster.create_group("web", &["--tag", tag, "--deployment-config-name", "CodeDeployDefault.AllAtOnce"]);
}

fn create(cluster: &TestCluster, revision: &str) -> String {
    cluster.start_deployment(1, "web", revision)
}

/// The pids the sleeper hook wrote, once it wrote both.
fn hook_pids(dir: &Path, within: Duration) -> (u32, u32) {
    wait_until("the hook to start", within, || {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok()?.trim().parse::<u32>().ok();
        Some((read("hook.pid")?, read("child.pid")?))
    })
}

/// True while `pid` runs (a zombie does not count).
fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until neither pid runs; how long that took.
fn wait_gone(pids: (u32, u32), within: Duration) -> Duration {
    let started = Instant::now();
    wait_until("the hook and its child to be gone", within, || (!is_alive(pids.0) && !is_alive(pids.1)).then_some(()));
    started.elapsed()
}

fn events(cluster: &TestCluster, via: u32, id: &str) -> Vec<LifecycleEvent> {
    cluster
        .deployment_target(via, id, "1")
        .deployment_target
        .instance_target
        .expect("an instance target")
        .lifecycle_events
}

fn event(events: &[LifecycleEvent], name: LifecycleEventName) -> &LifecycleEvent {
    events.iter().find(|event| event.lifecycle_event_name == name).unwrap_or_else(|| panic!("no {name} in {events:?}"))
}

fn message(event: &LifecycleEvent) -> String {
    event.diagnostics.as_ref().map(|diagnostics| diagnostics.message.clone()).unwrap_or_default()
}

/// The per-deployment script logs under a node's data directory.
fn script_logs(data_dir: &Path) -> String {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.file_name().is_some_and(|name| name == "scripts.log") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&data_dir.join("deployment-root"), &mut found);
    found.iter().map(|path| std::fs::read_to_string(path).unwrap_or_default()).collect()
}

/// `stop-deployment` during a hook that would sleep 300 s: the hook and its background
/// child are gone within seconds (SIGTERM to the group), the deployment is Stopped, and
/// the withdrawal is logged once, not every second.
#[test]
fn stop_deployment_ends_a_running_hook_with_its_process_group() {
    let cluster = TestCluster::start(1, Options::default());
    setup(&cluster, "role=web");
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("bundle");
    sleeper_bundle(&source, work.path());
    let revision = cluster.push(1, "app", &source);
    let id = create(&cluster, &revision);
    let pids = hook_pids(work.path(), Duration::from_secs(30));
    cluster.ok(1, &["deploy", "stop-deployment", "--deployment-id", &id]);
    let gone = wait_gone(pids, Duration::from_secs(10));
    println!("hook and child gone {gone:?} after stop-deployment returned");
    let stopped = cluster.wait_deployment(&id, Duration::from_secs(10));
    assert_eq!(stopped.deployment_info.status, DeploymentStatus::Stopped, "{stopped:?}");
    // Long enough for a per-second repeat to show.
    std::thread::sleep(Duration::from_secs(3));
    let withdrawn = cluster.log(1).matches("assignment withdrawn").count();
    assert_eq!(withdrawn, 1, "the withdrawal is logged once:\n{}", cluster.log(1));
    let scripts = script_logs(&cluster.nodes[&1].data_dir);
    assert!(
        scripts.contains("script sleep.sh was ended with its process group: the deployment was stopped"),
        "{scripts}"
    );
}

/// A revision whose only holder is dead: DownloadBundle on the other hosts fails within
/// the no-holder timeout (3 s here) plus the time to notice, naming how many chunks have
/// no live holder, instead of waiting out the hour.
#[test]
fn a_download_whose_chunks_nobody_live_holds_fails_within_the_no_holder_timeout() {
    // One voter: the killed seed is an agent, so Raft is not busy replacing a voter
    // (that stalled commits for over 30 s in a first run: "already undergoing a
    // configuration change").
    let flags = ["--no-holder-timeout-secs", "3", "--voters", "1"];
    let mut options = Options { node_flags: flags.map(String::from).to_vec(), ..Options::default() };
    options.tags.insert(3, vec!["role=seed".into()]);
    let mut cluster = TestCluster::start(3, options);
    setup(&cluster, "role=web");
    let work = tempfile::tempdir().expect("tempdir");
    let files: Vec<(String, String)> =
        (0..3).map(|index| (format!("site/file{index}.txt"), format!("{index}").repeat(300_000 + index))).collect();
    let mut bundle: Vec<(&str, &str, u32)> =
        files.iter().map(|(name, body)| (name.as_str(), body.as_str(), 0o644)).collect();
    let spec = "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/app\n";
    bundle.push(("appspec.yml", spec, 0o644));
    write_bundle(work.path(), &bundle);
    let revision = cluster.push(3, "app", work.path());
    cluster.kill9(3);
    let started = Instant::now();
    let id = create(&cluster, &revision);
    let ended = cluster.wait_deployment(&id, Duration::from_secs(40));
    let took = started.elapsed();
    println!("the deployment ended {took:?} after it was created");
    assert_eq!(ended.deployment_info.status, DeploymentStatus::Failed, "{ended:?}");
    let target = cluster.deployment_target(1, &id, &cluster.node_id(1).to_string());
    let events = target.deployment_target.instance_target.expect("an instance target").lifecycle_events;
    let download = event(&events, LifecycleEventName::DownloadBundle);
    assert_eq!(download.status, LifecycleEventStatus::Failed, "{download:?}");
    let text = message(download);
    assert!(text.contains(" chunks have no live holder"), "{text}");
    let counts = text.split(" chunks have").next().unwrap_or_default().to_string();
    let (missing, total) = counts.split_once(" of ").expect("N of M");
    assert!(missing.trim().parse::<u32>().is_ok_and(|missing| missing > 0), "{text}");
    assert_eq!(missing.trim(), total.trim(), "node 1 holds none of them: {text}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

/// SIGTERM during a hook that sleeps 300 s with a 2 s grace: the node ends the hook's
/// group after the grace and exits within seconds, logs no flood, and after a restart
/// the target says BeforeInstall failed because the node shut down, with DownloadBundle
/// succeeded (the truth).
#[test]
fn sigterm_ends_a_running_hook_after_the_grace_and_the_record_says_why() {
    let options = Options { node_flags: vec!["--shutdown-grace-secs".into(), "2".into()], ..Options::default() };
    let mut cluster = TestCluster::start(1, options);
    setup(&cluster, "role=web");
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("bundle");
    sleeper_bundle(&source, work.path());
    let revision = cluster.push(1, "app", &source);
    let id = create(&cluster, &revision);
    let pids = hook_pids(work.path(), Duration::from_secs(30));
    let node_pid = cluster.pid(1).expect("node 1 runs");
    let signalled = Instant::now();
    let status = Command::new("kill").arg("-TERM").arg(node_pid.to_string()).status().expect("kill -TERM");
    assert!(status.success());
    wait_until("node 1 to exit", Duration::from_secs(20), || (!is_alive(node_pid)).then_some(()));
    let exited = signalled.elapsed();
    println!("node exited {exited:?} after SIGTERM (grace 2 s)");
    assert!(!is_alive(pids.0) && !is_alive(pids.1), "the hook's group must be ended before the node exits");
    assert!(exited >= Duration::from_secs(2), "the grace is given: {exited:?}");
    let log = cluster.log(1);
    let busiest = most_repeated_line(&log);
    assert!(busiest.1 <= 5, "a line repeated {} times: {}", busiest.1, busiest.0);
    cluster.restart(1);
    cluster.wait_alive(1, Duration::from_secs(60));
    let ended = cluster.wait_deployment(&id, Duration::from_secs(30));
    assert_eq!(ended.deployment_info.status, DeploymentStatus::Failed, "{ended:?}");
    let events = events(&cluster, 1, &id);
    assert_eq!(event(&events, LifecycleEventName::DownloadBundle).status, LifecycleEventStatus::Succeeded);
    let before = event(&events, LifecycleEventName::BeforeInstall);
    assert_eq!(before.status, LifecycleEventStatus::Failed, "{before:?}");
    assert!(message(before).contains("shutting down"), "{before:?}");
}

/// `kill -9` of a node during a hook leaves the hook running (its own process group);
/// the restarted node kills that group, says so, and reports the event failed.
#[test]
fn hooks_left_by_a_kill9_are_killed_when_the_node_restarts() {
    let mut cluster = TestCluster::start(1, Options::default());
    setup(&cluster, "role=web");
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("bundle");
    sleeper_bundle(&source, work.path());
    let revision = cluster.push(1, "app", &source);
    let id = create(&cluster, &revision);
    let pids = hook_pids(work.path(), Duration::from_secs(30));
    cluster.kill9(1);
    assert!(is_alive(pids.0) && is_alive(pids.1), "kill -9 of the node leaves its hook running");
    cluster.restart(1);
    let gone = wait_gone(pids, Duration::from_secs(30));
    println!("left-over hook gone {gone:?} after the restart began");
    assert!(cluster.log(1).contains("left running by this node before it restarted"), "{}", cluster.log(1));
    cluster.wait_alive(1, Duration::from_secs(60));
    let ended = cluster.wait_deployment(&id, Duration::from_secs(30));
    assert_eq!(ended.deployment_info.status, DeploymentStatus::Failed, "{ended:?}");
    let events = events(&cluster, 1, &id);
    let before = event(&events, LifecycleEventName::BeforeInstall);
    assert_eq!(before.status, LifecycleEventStatus::Failed, "{before:?}");
    assert!(message(before).contains("restarted while BeforeInstall was running"), "{before:?}");
}

/// The log line (timestamp cut off) that occurs most often, and how often.
fn most_repeated_line(log: &str) -> (String, usize) {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for line in log.lines() {
        // "2026-12-03T10:50:11.123456Z  WARN message": drop the timestamp.
        let body = line.split_once(' ').map_or(line, |(_, rest)| rest).trim().to_string();
        *counts.entry(body).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, count)| *count).unwrap_or_default()
}
