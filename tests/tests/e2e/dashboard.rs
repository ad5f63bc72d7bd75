//! The dashboard at `/ui` in a real browser: Debian's Chromium, driven by playwright-core
//! (`tests/ui/dashboard.mjs`), against a 3-node cluster. The page is served without a
//! token; the browser signs in with the admin token, sees the members and the leader, and
//! follows a deployment created once the page is open: a target's cell turns Succeeded
//! from the event stream, without a reload. It stops a second (slow) deployment with
//! the button, and nothing overflows a 375 px wide screen. Screenshots go to
//! `target/ui-screenshot.png` and `target/ui-screenshot-narrow.png`.
//!
//! Needs `/usr/bin/chromium` (`apt-get install chromium`) and playwright-core in
//! `target/ui-node` (`npm install --prefix target/ui-node playwright-core@1.64.1`); `.ci/run`
//! installs both. Without them the test fails and says which is missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fleetmesh_model::DeploymentStatus;
use fleetmesh_tests::{write_bundle, Options, TestCluster};

const APPSPEC: &str = "version: 0.0\nos: linux\nfiles:\n  - source: VERSION\n    destination: /srv/app\n\
                       hooks:\n  ApplicationStart:\n    - location: start.sh\n      timeout: 90\n";

/// The browser's whole run: sign-in, a 2-host rolling deployment, a stop, 7 narrow pages.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(100);

const CHROMIUM: &str = "/usr/bin/chromium";

/// The workspace's `target/`, where `.ci/run` installs playwright-core.
fn workspace_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The playwright-core package directory.
///
/// # Panics
/// With a one-line reason when Chromium, Node.js or playwright-core is missing.
fn browser_tools() -> PathBuf {
    assert!(Path::new(CHROMIUM).exists(), "the dashboard test needs {CHROMIUM}: apt-get install -y chromium");
    let node = Command::new("node").arg("--version").output();
    assert!(node.is_ok_and(|output| output.status.success()), "the dashboard test needs Node.js (`node`) on PATH");
    let playwright = workspace_target().join("ui-node/node_modules/playwright-core");
    assert!(
        playwright.join("package.json").exists(),
        "the dashboard test needs {}: npm install --prefix target/ui-node playwright-core@1.64.1",
        playwright.display()
    );
    playwright
}

/// A bundle whose ApplicationStart hook sleeps `sleep_secs`.
fn bundle(dir: &Path, version: &str, sleep_secs: u32) {
    let start = format!("#!/bin/sh\necho starting version {version}\nsleep {sleep_secs}\necho started\n");
    write_bundle(dir, &[("appspec.yml", APPSPEC, 0o644), ("VERSION", version, 0o644), ("start.sh", &start, 0o755)]);
}

/// The page and its files answer without a token, with their types; others are 404.
fn check_static_files(cluster: &TestCluster) {
    let agent = cluster.http();
    for (path, status, content_type) in [
        ("/ui", 200, "text/html; charset=utf-8"),
        ("/ui/", 200, "text/html; charset=utf-8"),
        ("/ui/app.js", 200, "text/javascript; charset=utf-8"),
        ("/ui/style.css", 200, "text/css; charset=utf-8"),
        ("/ui/missing.js", 404, "application/json"),
    ] {
        let response = agent.get(&format!("{}{path}", cluster.api_url(2))).call().expect("an answer");
        let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(String::from);
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_eq!(header("content-type").as_deref(), Some(content_type), "{path}");
        if status == 200 {
            assert_eq!(header("cache-control").as_deref(), Some("no-cache"), "{path}");
        }
        if content_type.starts_with("text/html") {
            let policy = header("content-security-policy").unwrap_or_default();
            assert!(policy.starts_with("default-src 'self'"), "{path}: {policy}");
        }
    }
}

/// The script's process, killed if the test ends early (a panic) so no browser is left.
struct Script(Child);

impl Drop for Script {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            // It may end by itself meanwhile; either way it is reaped next.
            let _ = self.0.kill();
            // Reaps it; an error means there was nothing left to reap.
            let _ = self.0.wait();
        }
    }
}

impl Script {
    /// Its exit status once it ends, or after it was killed at `deadline`.
    fn finish(&mut self, deadline: Instant) -> std::process::ExitStatus {
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("the script's status") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // It may end by itself meanwhile; either way `wait` answers.
        let _ = self.0.kill();
        self.0.wait().expect("wait for the script")
    }
}

/// Lines of `child`'s stdout as they come, and all of its stderr once it ends.
fn outputs(child: &mut Child) -> (mpsc::Receiver<String>, std::thread::JoinHandle<String>) {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (lines, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        // What was read so far is kept when the pipe breaks.
        let _ = stderr.read_to_string(&mut text);
        text
    });
    (receiver, errors)
}

#[test]
fn the_dashboard_follows_a_deployment_live_and_stops_another_in_a_real_browser() {
    let playwright = browser_tools();
    let started = Instant::now();
    // Nodes 1 and 2 take the watched deployment; node 3 the one that is stopped.
    let mut options = Options::default();
    options.tags.insert(3, vec!["role=spare".into()]);
    let cluster = TestCluster::start(3, options);
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    cluster.create_group("web", &["--tag", "role=web", "--deployment-config-name", "CodeDeployDefault.OneAtATime"]);
    cluster.create_group("spare", &["--tag", "role=spare"]);
    let work = tempfile::tempdir().expect("tempdir");
    let (quick, slow) = (work.path().join("quick"), work.path().join("slow"));
    // Each host of the watched deployment takes 3 s or more: the page sees its cells change.
    bundle(&quick, "1", 3);
    bundle(&slow, "2", 80);
    let (quick, slow) = (cluster.push(1, "app", &quick), cluster.push(1, "app", &slow));
    check_static_files(&cluster);

    let target = workspace_target();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/dashboard.mjs");
    let child = Command::new("node")
        .arg(&script)
        .args([&cluster.api_url(1), &cluster.admin_token, "3", &quick])
        .arg(&target)
        .env("PLAYWRIGHT_CORE", &playwright)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node tests/ui/dashboard.mjs");
    let mut script = Script(child);
    let (lines, errors) = outputs(&mut script.0);
    let mut stdin = script.0.stdin.take().expect("piped stdin");
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let mut output = Vec::new();
    let mut deployments = None;
    // Until the script ends (its stdout closes) or the deadline passes.
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line == "ready" && deployments.is_none() {
            // The page is open on the deployments view: every change from here is live.
            let watched = cluster.start_deployment(1, "web", &quick);
            let stopped = cluster.start_deployment(1, "spare", &slow);
            writeln!(stdin, "{watched} {stopped}").expect("write the deployments to the script");
            deployments = Some((watched, stopped));
        }
        output.push(line);
    }
    // Its stdout closed: it is ending (a few seconds for the browser to close at most).
    let status = script.finish(deadline.max(Instant::now() + Duration::from_secs(5)));
    let output = output.join("\n");
    let errors = errors.join().unwrap_or_default();
    println!("dashboard.mjs after {:?}:\n{output}", started.elapsed());
    assert!(status.success(), "dashboard.mjs failed ({status}):\n{output}\n{errors}");
    assert!(output.lines().any(|line| line.starts_with("ok ")), "{output}\n{errors}");

    let (watched, stopped) = deployments.expect("the script asked for deployments");
    let watched = cluster.wait_deployment(&watched, Duration::from_secs(30)).deployment_info;
    assert_eq!(watched.status, DeploymentStatus::Succeeded, "{watched:?}");
    let stopped = cluster.wait_deployment(&stopped, Duration::from_secs(30)).deployment_info;
    assert_eq!(stopped.status, DeploymentStatus::Stopped, "{stopped:?}");
    assert!(target.join("ui-screenshot.png").exists(), "no screenshot in {}", target.display());
}
