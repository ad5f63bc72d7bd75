//! The dashboard at `/ui` in a real browser: Debian's Chromium, driven by Playwright for
//! Python (`tests/ui/dashboard.py`), against a 3-node cluster. The page is served without a
//! token; a wrong token gets a clear refusal on the sign-in form; the browser signs in with
//! the admin token, sees the members and the leader, and follows a deployment created once
//! the page is open: a target's cell turns Succeeded from the event stream, without a
//! reload. It stops a second (slow) deployment with the Stop button, then presses "Stop and
//! roll back" on a third (slow, to the group the first one just succeeded in) and sees the
//! rollback deployment appear, linked and listed, redeploy the first revision and succeed;
//! the API says the same. Nothing overflows a 375 px wide screen. Screenshots go to
//! `target/ui-screenshot.png`, `target/ui-screenshot-rollback.png` and
//! `target/ui-screenshot-narrow.png`.
//!
//! Needs `/usr/bin/chromium` (`apt-get install chromium`) and Playwright for Python in
//! `target/ui-venv` (`python3 -m venv target/ui-venv && target/ui-venv/bin/pip install
//! playwright==1.64.1`; it drives the system Chromium, so no `playwright install`);
//! `.ci/run` installs both. Without them the test fails and says which is missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fleetmesh_model::{DeploymentCreator, DeploymentStatus};
use fleetmesh_tests::{write_bundle, Options, TestCluster};

const APPSPEC: &str = "version: 0.0\nos: linux\nfiles:\n  - source: VERSION\n    destination: /srv/app\n\
                       hooks:\n  ApplicationStart:\n    - location: start.sh\n      timeout: 90\n";

/// The browser's whole run: sign-in, a 2-host rolling deployment, a stop, a stop with
/// rollback and the rollback's run, 8 narrow pages. The script gives up 10 s before.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

/// What the script saves in `target/`.
const SCREENSHOTS: [&str; 3] = ["ui-screenshot.png", "ui-screenshot-rollback.png", "ui-screenshot-narrow.png"];

const CHROMIUM: &str = "/usr/bin/chromium";

/// How `.ci/run` installs Playwright for Python (from the workspace root).
const INSTALL_PLAYWRIGHT: &str = "python3 -m venv target/ui-venv && target/ui-venv/bin/pip install playwright==1.64.1";

/// The workspace's `target/`, where `.ci/run` installs Playwright for Python.
fn workspace_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The Python of `target/ui-venv`, which has Playwright.
///
/// # Panics
/// With a one-line reason when Chromium, the virtualenv or Playwright in it is missing.
fn browser_tools() -> PathBuf {
    assert!(Path::new(CHROMIUM).exists(), "the dashboard test needs {CHROMIUM}: apt-get install -y chromium");
    let python = workspace_target().join("ui-venv/bin/python");
    assert!(python.exists(), "the dashboard test needs target/ui-venv/bin/python: {INSTALL_PLAYWRIGHT}");
    let import = Command::new(&python).args(["-c", "import playwright.sync_api"]).output();
    assert!(
        import.is_ok_and(|output| output.status.success()),
        "the dashboard test needs Playwright for Python in target/ui-venv: {INSTALL_PLAYWRIGHT}"
    );
    python
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

/// What the script printed and how it ended.
struct Run {
    status: std::process::ExitStatus,
    output: String,
    errors: String,
}

/// Runs `tests/ui/dashboard.py` with `args`; each line it prints is passed to `answer`,
/// and what that returns is written back to its stdin.
fn run_script(python: &Path, args: &[&str], mut answer: impl FnMut(&str) -> Option<String>) -> Run {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/dashboard.py");
    let child = Command::new(python)
        .arg(&script)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run target/ui-venv/bin/python tests/ui/dashboard.py");
    let mut script = Script(child);
    let (lines, errors) = outputs(&mut script.0);
    let mut stdin = script.0.stdin.take().expect("piped stdin");
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let mut output = Vec::new();
    // Until the script ends (its stdout closes) or the deadline passes.
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some(reply) = answer(&line) {
            writeln!(stdin, "{reply}").expect("write the deployments to the script");
        }
        output.push(line);
    }
    // Its stdout closed: it is ending (a few seconds for the browser to close at most).
    let status = script.finish(deadline.max(Instant::now() + Duration::from_secs(5)));
    Run { status, output: output.join("\n"), errors: errors.join().unwrap_or_default() }
}

/// The deployments the test created when the script asked for them.
#[derive(Default)]
struct Created {
    /// Followed live to Succeeded (group web).
    watched: Option<String>,
    /// Stopped with the Stop button (group spare).
    stopped: Option<String>,
    /// Stopped with the "Stop and roll back" button (group web, after `watched`).
    rolled: Option<String>,
}

impl Created {
    /// The script's `ready` (the page is open: every change from here is live) and
    /// `ready-rollback` (group web has a good revision to go back to) get deployments.
    fn answer(&mut self, cluster: &TestCluster, line: &str, quick: &str, slow: &str) -> Option<String> {
        match line {
            "ready" if self.watched.is_none() => {
                let watched = cluster.start_deployment(1, "web", quick);
                let stopped = cluster.start_deployment(1, "spare", slow);
                let reply = format!("{watched} {stopped}");
                (self.watched, self.stopped) = (Some(watched), Some(stopped));
                Some(reply)
            }
            "ready-rollback" if self.rolled.is_none() => {
                let watched = self.watched.as_deref().expect("ready came first");
                let ended = cluster.wait_deployment(watched, Duration::from_secs(30)).deployment_info;
                assert_eq!(ended.status, DeploymentStatus::Succeeded, "{ended:?}");
                let rolled = cluster.start_deployment(1, "web", slow);
                self.rolled = Some(rolled.clone());
                Some(rolled)
            }
            _ => None,
        }
    }
}

/// What the API says of the three deployments and of the rollback the page showed.
fn check_through_the_api(cluster: &TestCluster, created: &Created, rollback_shown: &str, quick: &str) {
    let ended = |id: &Option<String>| {
        let id = id.as_deref().expect("the script asked for it");
        cluster.wait_deployment(id, Duration::from_secs(30)).deployment_info
    };
    let watched = ended(&created.watched);
    assert_eq!(watched.status, DeploymentStatus::Succeeded, "{watched:?}");
    let stopped = ended(&created.stopped);
    assert_eq!(stopped.status, DeploymentStatus::Stopped, "{stopped:?}");
    let no_rollback = stopped.rollback_info.as_ref().and_then(|info| info.rollback_deployment_id.as_ref());
    assert!(no_rollback.is_none(), "Stop alone rolled back: {stopped:?}");
    let rolled = ended(&created.rolled);
    assert_eq!(rolled.status, DeploymentStatus::Stopped, "{rolled:?}");
    let rollback = rolled.rollback_info.as_ref().and_then(|info| info.rollback_deployment_id.clone());
    let rollback = rollback.expect("Stop and roll back created a rollback deployment").to_string();
    assert_eq!(rollback, rollback_shown, "the page showed another rollback");
    let rollback = cluster.wait_deployment(&rollback, Duration::from_secs(60)).deployment_info;
    assert_eq!(rollback.status, DeploymentStatus::Succeeded, "{rollback:?}");
    assert_eq!(rollback.creator, DeploymentCreator::CodeDeployRollback, "{rollback:?}");
    assert_eq!(rollback.revision_id.to_string(), quick, "the rollback goes back to the first revision");
    let triggering = rollback.rollback_info.as_ref().and_then(|info| info.rollback_triggering_deployment_id.as_ref());
    assert_eq!(triggering.map(ToString::to_string).as_deref(), created.rolled.as_deref(), "{rollback:?}");
}

#[test]
fn the_dashboard_follows_a_deployment_live_stops_one_and_rolls_another_back_in_a_real_browser() {
    let python = browser_tools();
    let started = Instant::now();
    // Nodes 1 and 2 take the watched deployment and the rolled back one; node 3 the
    // stopped one.
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
    for shot in SCREENSHOTS {
        // Those of an earlier run must not pass for this one's; most runs have some.
        let _ = std::fs::remove_file(target.join(shot));
    }
    let (url, shots) = (cluster.api_url(1), target.to_string_lossy().into_owned());
    let mut created = Created::default();
    let args = [url.as_str(), cluster.admin_token.as_str(), "3", quick.as_str(), shots.as_str()];
    let run = run_script(&python, &args, |line| created.answer(&cluster, line, &quick, &slow));
    let Run { status, output, errors } = run;
    println!("dashboard.py after {:?}:\n{output}", started.elapsed());
    assert!(status.success(), "dashboard.py failed ({status}):\n{output}\n{errors}");
    assert!(output.lines().any(|line| line.starts_with("ok ")), "{output}\n{errors}");
    let rollback_shown = output.lines().find_map(|line| line.strip_prefix("rollback "));
    let rollback_shown = rollback_shown.expect("the script names the rollback it saw");

    check_through_the_api(&cluster, &created, rollback_shown, &quick);
    for shot in SCREENSHOTS {
        assert!(target.join(shot).exists(), "no {shot} in {}", target.display());
    }
}
