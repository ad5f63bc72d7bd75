//! Scenario tests of `run_event` with real processes in temporary bundles.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fleetmesh_state::model::deployment::LifecycleErrorCode;

use super::*;

/// A bundle directory with scripts, and a deployment directory for the log.
struct Bundle {
    root: tempfile::TempDir,
    deployment: tempfile::TempDir,
}

impl Bundle {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("bundle dir");
        // Readable by other users, for the runas test.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod bundle");
        Self { root, deployment: tempfile::tempdir().expect("deployment dir") }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    /// Writes `scripts/<name>` with `body` and `mode`.
    fn script(&self, name: &str, body: &str, mode: u32) -> HookScript {
        let path = self.path().join("scripts").join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("scripts dir");
        std::fs::set_permissions(self.path().join("scripts"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(&path, body).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod script");
        HookScript { location: format!("scripts/{name}"), timeout: Duration::from_secs(30), runas: None }
    }

    fn log(&self) -> ScriptLog {
        ScriptLog::for_deployment(self.deployment.path()).expect("open log")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.deployment.path().join("logs/scripts.log")).expect("read log")
    }

    async fn run(&self, scripts: &[HookScript], env: &HookEnv) -> EventOutcome {
        let mut log = self.log();
        run_event("AfterInstall", scripts, self.path(), env, &mut log, &EventControl::default()).await
    }
}

/// True while `pid` is a live (not zombie) process.
fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesized command name.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn read_pid(path: &PathBuf) -> i32 {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(5), "pid file {} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn successful_scripts_log_their_output() {
    // Runs two scripts that print to stdout and stderr; asserts success, the Success
    // code, the tail, and the stamped, tagged lines in scripts.log.
    let bundle = Bundle::new();
    let first = bundle.script("first.sh", "#!/bin/sh\necho hello\necho warn >&2\n", 0o755);
    let second = bundle.script("second.sh", "#!/bin/sh\necho second\n", 0o755);
    let outcome = bundle.run(&[first, second], &HookEnv::default()).await;
    assert!(outcome.succeeded, "{outcome:?}");
    assert_eq!(outcome.diagnostics.error_code, LifecycleErrorCode::Success);
    assert!(outcome.diagnostics.log_tail.contains("[stdout] hello\n"), "{outcome:?}");
    assert!(outcome.diagnostics.log_tail.contains("[stderr] warn\n"), "{outcome:?}");
    assert!(outcome.diagnostics.log_tail.ends_with("[stdout] second\n"), "{outcome:?}");
    let log = bundle.log_text();
    let output: Vec<&str> = log.lines().filter(|line| !line.contains("] [agent] ")).collect();
    assert_eq!(output.len(), 3, "{log}");
    for (line, suffix) in output.iter().zip(["] [stdout] hello", "] [stderr] warn", "] [stdout] second"]) {
        // `[2026-11-26T10:00:00.123Z] [stdout] hello`
        assert_eq!(line.len(), 25 + suffix.len(), "{line}");
        assert!(line.starts_with('[') && line[1..25].ends_with('Z') && line.ends_with(suffix), "{line}");
    }
}

#[tokio::test]
async fn non_zero_exit_fails_the_event_and_stops_it() {
    // Runs a script exiting 3 followed by one that would leave a marker; asserts
    // ScriptFailed with the exit code in the message and that the second never ran.
    let bundle = Bundle::new();
    let failing = bundle.script("fail.sh", "#!/bin/sh\necho about to fail\nexit 3\n", 0o755);
    let marker = bundle.path().join("marker");
    let after = bundle.script("after.sh", &format!("#!/bin/sh\ntouch {}\n", marker.display()), 0o755);
    let outcome = bundle.run(&[failing, after], &HookEnv::default()).await;
    assert!(!outcome.succeeded);
    assert_eq!(outcome.diagnostics.error_code, LifecycleErrorCode::ScriptFailed);
    assert_eq!(outcome.diagnostics.script_name, "scripts/fail.sh");
    assert_eq!(outcome.diagnostics.message, "script scripts/fail.sh failed with exit code 3");
    assert_eq!(outcome.diagnostics.log_tail, "[stdout] about to fail\n");
    assert!(!marker.exists());
}

#[tokio::test]
async fn missing_script_is_script_missing() {
    // Names a script that is not in the bundle; asserts ScriptMissing naming it.
    let bundle = Bundle::new();
    let script = HookScript { location: "scripts/nope.sh".into(), timeout: Duration::from_secs(5), runas: None };
    let outcome = bundle.run(&[script], &HookEnv::default()).await;
    assert!(!outcome.succeeded);
    assert_eq!(outcome.diagnostics.error_code, LifecycleErrorCode::ScriptMissing);
    assert!(outcome.diagnostics.message.starts_with("script scripts/nope.sh does not exist in the revision"));
}

#[tokio::test]
async fn non_executable_script_is_fixed_with_chmod() {
    // Writes a script without execute bits; asserts it runs and is now executable.
    let bundle = Bundle::new();
    let script = bundle.script("plain.sh", "#!/bin/sh\necho ran\n", 0o644);
    let outcome = bundle.run(&[script], &HookEnv::default()).await;
    assert!(outcome.succeeded, "{outcome:?}");
    assert!(outcome.diagnostics.log_tail.contains("[stdout] ran"));
    let mode = std::fs::metadata(bundle.path().join("scripts/plain.sh")).expect("stat").permissions().mode();
    assert_eq!(mode & 0o111, 0o111);
    assert!(bundle.log_text().contains("was not executable; ran chmod +x"));
}

#[tokio::test]
async fn script_without_shebang_runs_with_sh() {
    // Writes a script with no #! line; asserts it runs (through /bin/sh, like the agent).
    let bundle = Bundle::new();
    let script = bundle.script("bare.sh", "echo bare $((1 + 2))\n", 0o755);
    let outcome = bundle.run(&[script], &HookEnv::default()).await;
    assert!(outcome.succeeded, "{outcome:?}");
    assert_eq!(outcome.diagnostics.log_tail, "[stdout] bare 3\n");
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    // Runs a script that starts a background sleep and then sleeps, with a 1 s timeout;
    // asserts ScriptTimedOut, that both the script's child and the script are gone, and
    // that it took about the timeout, not the sleep.
    let bundle = Bundle::new();
    let pid_file = bundle.path().join("child.pid");
    let body = format!("#!/bin/sh\nsleep 60 &\necho $! > {}\necho started\nsleep 60\n", pid_file.display());
    let mut script = bundle.script("slow.sh", &body, 0o755);
    script.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let outcome = bundle.run(&[script], &HookEnv::default()).await;
    let elapsed = started.elapsed();
    assert!(!outcome.succeeded);
    assert_eq!(outcome.diagnostics.error_code, LifecycleErrorCode::ScriptTimedOut);
    assert_eq!(outcome.diagnostics.message, "script scripts/slow.sh failed to complete in 1 seconds");
    assert!(outcome.diagnostics.log_tail.contains("[stdout] started"));
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    let child = read_pid(&pid_file);
    let gone_by = Instant::now() + Duration::from_secs(2);
    while is_alive(child) && Instant::now() < gone_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!is_alive(child), "background child {child} survived the timeout");
}

#[tokio::test]
async fn timeout_escalates_to_sigkill_when_sigterm_is_ignored() {
    // Runs a script that ignores SIGTERM, with a 1 s timeout; asserts ScriptTimedOut
    // after the 5 s grace (SIGKILL), and the script is gone.
    let bundle = Bundle::new();
    let pid_file = bundle.path().join("self.pid");
    let body = format!("#!/bin/sh\ntrap '' TERM\necho $$ > {}\nwhile true; do sleep 0.1; done\n", pid_file.display());
    let mut script = bundle.script("stubborn.sh", &body, 0o755);
    script.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let outcome = bundle.run(&[script], &HookEnv::default()).await;
    let elapsed = started.elapsed();
    assert_eq!(outcome.diagnostics.error_code, LifecycleErrorCode::ScriptTimedOut);
    assert!(elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(9), "took {elapsed:?}");
    assert!(!is_alive(read_pid(&pid_file)));
}

#[tokio::test]
async fn background_child_holding_stdout_does_not_hang_the_event() {
    // Runs a script that leaves a background sleep holding stdout and exits 0; asserts
    // the event succeeds in well under 3 s and the log notes the open output.
    let bundle = Bundle::new();
    let pid_file = bundle.path().join("daemon.pid");
    let body = format!("#!/bin/sh\nsleep 30 &\necho $! > {}\necho launched\nexit 0\n", pid_file.display());
    let script = bundle.script("daemon.sh", &body, 0o755);
    let started = Instant::now();
    let outcome = bundle.run(&[script], &HookEnv::default()).await;
    let elapsed = started.elapsed();
    assert!(outcome.succeeded, "{outcome:?}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(outcome.diagnostics.log_tail.contains("[stdout] launched"));
    assert!(bundle.log_text().contains("still holds its stdout/stderr open"));
    let daemon = read_pid(&pid_file);
    assert!(is_alive(daemon), "the background process should survive the event");
    let _ = nix::sys::signal::kill(Pid::from_raw(daemon), nix::sys::signal::Signal::SIGKILL);
}

#[tokio::test]
async fn environment_and_working_directory_reach_the_script() {
    // Passes CodeDeploy variables; asserts the script sees them, LIFECYCLE_EVENT and
    // the bundle root as its working directory.
    let bundle = Bundle::new();
    let body = "#!/bin/sh\necho \"$LIFECYCLE_EVENT $DEPLOYMENT_ID $DEPLOYMENT_GROUP_NAME\"\npwd -P\n";
    let script = bundle.script("env.sh", body, 0o755);
    let env = HookEnv::default().with("DEPLOYMENT_ID", "d-ABCDEFGHI").with("DEPLOYMENT_GROUP_NAME", "web");
    let outcome = bundle.run(&[script], &env).await;
    assert!(outcome.succeeded, "{outcome:?}");
    let root = std::fs::canonicalize(bundle.path()).expect("canonical root");
    assert_eq!(
        outcome.diagnostics.log_tail,
        format!("[stdout] AfterInstall d-ABCDEFGHI web\n[stdout] {}\n", root.display())
    );
}

#[tokio::test]
async fn runas_unknown_user_fails_clearly() {
    // Asks for a user that does not exist; asserts the event fails naming the user and
    // the script never ran.
    let bundle = Bundle::new();
    let marker = bundle.path().join("ran");
    let mut script = bundle.script("as.sh", &format!("#!/bin/sh\ntouch {}\n", marker.display()), 0o755);
    script.runas = Some("fleetmesh-no-such-user".into());
    let outcome = bundle.run(&[script], &HookEnv::default()).await;
    assert!(!outcome.succeeded);
    assert_eq!(outcome.diagnostics.error_code, LifecycleErrorCode::ScriptFailed);
    assert_eq!(
        outcome.diagnostics.message,
        "script scripts/as.sh: runas user \"fleetmesh-no-such-user\" does not exist on this host"
    );
    assert!(!marker.exists());
}

#[tokio::test]
async fn runas_switches_user_and_login_environment() {
    // As root, runs a script as `nobody`; asserts its uid, HOME/USER/LOGNAME from the
    // passwd entry. Without root there is no other user to become: the scenario needs
    // root, so it only checks that the refusal says so.
    let bundle = Bundle::new();
    let mut script = bundle.script("who.sh", "#!/bin/sh\necho \"$(id -u) $USER $LOGNAME $HOME\"\n", 0o755);
    script.runas = Some("nobody".into());
    let outcome = bundle.run(&[script], &HookEnv::default()).await;
    let nobody = nix::unistd::User::from_name("nobody").expect("lookup").expect("nobody exists");
    if nix::unistd::geteuid().is_root() {
        assert!(outcome.succeeded, "{outcome:?}");
        let expected = format!("[stdout] {} nobody nobody {}\n", nobody.uid, nobody.dir.display());
        assert_eq!(outcome.diagnostics.log_tail, expected);
    } else {
        assert!(outcome.diagnostics.message.contains("only root can switch users"), "{outcome:?}");
    }
}

#[tokio::test]
async fn event_without_scripts_succeeds() {
    // Runs an empty script list; asserts success with an explanatory message.
    let bundle = Bundle::new();
    let outcome = bundle.run(&[], &HookEnv::default()).await;
    assert!(outcome.succeeded);
    assert_eq!(outcome.diagnostics.message, "AfterInstall has no scripts");
}

#[tokio::test]
async fn endless_output_does_not_starve_the_timeout() {
    // Runs a script printing without pause, with a 1 s timeout; asserts ScriptTimedOut
    // well before the grace period would have been exceeded, and a bounded tail.
    let bundle = Bundle::new();
    let mut script = bundle.script("chatty.sh", "#!/bin/sh\nwhile true; do echo chatter; done\n", 0o755);
    script.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let outcome = bundle.run(&[script], &HookEnv::default()).await;
    assert_eq!(outcome.diagnostics.error_code, LifecycleErrorCode::ScriptTimedOut);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(outcome.diagnostics.log_tail.len() <= LOG_TAIL_BYTES_MAX);
    assert!(outcome.diagnostics.log_tail.ends_with("[stdout] chatter\n"));
}

#[tokio::test]
async fn the_event_limit_cuts_a_script_short() {
    // Runs two scripts with 30 s timeouts under a 2 s event limit: the first takes about
    // 1 s, the second sleeps; asserts the second is stopped about when the event's 2 s
    // are used up, with the event-limit message, not the script's own.
    let bundle = Bundle::new();
    let first = bundle.script("first.sh", "#!/bin/sh\nsleep 1\n", 0o755);
    let second = bundle.script("second.sh", "#!/bin/sh\necho waiting\nsleep 60\n", 0o755);
    let mut log = bundle.log();
    let started = Instant::now();
    let control = EventControl::default();
    let limit = EventLimit {
        event: "AfterInstall",
        started: tokio::time::Instant::now(),
        length: Duration::from_secs(2),
        control: &control,
    };
    let outcome = run_event_within(&[first, second], bundle.path(), &HookEnv::default(), &mut log, &limit).await;
    let elapsed = started.elapsed();
    assert!(!outcome.succeeded);
    assert_eq!(outcome.diagnostics.error_code, LifecycleErrorCode::ScriptTimedOut);
    assert_eq!(outcome.diagnostics.script_name, "scripts/second.sh");
    assert_eq!(
        outcome.diagnostics.message,
        "script scripts/second.sh was stopped: AfterInstall reached its limit of 2 seconds for all its scripts together"
    );
    assert!(outcome.diagnostics.log_tail.contains("[stdout] waiting"));
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[tokio::test]
async fn a_script_left_no_time_by_the_event_does_not_start() {
    // Runs a script that exits 0 after 0.5 s but leaves a background sleep holding its
    // stdout (so the agent reads on for its 1 s grace, past the 1 s event limit), then a
    // second script; asserts the second never starts (no marker file) and the message
    // says the event's limit was reached.
    let bundle = Bundle::new();
    let marker = bundle.path().join("second.ran");
    let first = bundle.script("first.sh", "#!/bin/sh\nsleep 5 &\nsleep 0.5\nexit 0\n", 0o755);
    let second = bundle.script("second.sh", &format!("#!/bin/sh\ntouch {}\n", marker.display()), 0o755);
    let mut log = bundle.log();
    let control = EventControl::default();
    let limit = EventLimit {
        event: "ApplicationStart",
        started: tokio::time::Instant::now(),
        length: Duration::from_secs(1),
        control: &control,
    };
    let outcome = run_event_within(&[first, second], bundle.path(), &HookEnv::default(), &mut log, &limit).await;
    assert_eq!(outcome.diagnostics.error_code, LifecycleErrorCode::ScriptTimedOut);
    assert_eq!(outcome.diagnostics.script_name, "scripts/second.sh");
    assert_eq!(
        outcome.diagnostics.message,
        "script scripts/second.sh was not started: ApplicationStart reached its limit of 1 seconds for all its \
         scripts together"
    );
    assert!(!marker.exists());
}

#[tokio::test]
async fn an_interrupt_ends_the_script_with_its_process_group_and_says_why() {
    // A script starts a background sleep (its pid in a file) and sleeps itself; the
    // interrupt comes after 0.5 s. The event fails at once with the reason, the whole
    // group is gone, and the group's record is removed.
    let bundle = Bundle::new();
    let pid_file = bundle.path().join("child.pid");
    let hang = bundle.script(
        "hang.sh",
        &format!("#!/bin/sh\nsleep 60 &\necho $! > {}\nsleep 60\n", pid_file.display()),
        0o755,
    );
    let groups_dir = tempfile::tempdir().expect("groups dir");
    let (sender, interrupt) = Interrupt::channel();
    let control = EventControl { interrupt, groups: HookGroups::in_dir(groups_dir.path()).expect("groups") };
    let mut log = bundle.log();
    let started = Instant::now();
    let interrupter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sender.send_replace(Some(InterruptReason::Stopped));
        sender
    });
    let recorded = groups_dir.path().to_path_buf();
    let outcome = run_event("BeforeInstall", &[hang], bundle.path(), &HookEnv::default(), &mut log, &control).await;
    let elapsed = started.elapsed();
    assert!(!outcome.succeeded);
    assert_eq!(
        outcome.diagnostics.message,
        "script scripts/hang.sh was ended with its process group: the deployment was stopped"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    let child: i32 = std::fs::read_to_string(&pid_file).expect("pid").trim().parse().expect("pid number");
    assert!(!is_alive(child), "the background child must be gone with the group");
    assert!(std::fs::read_dir(&recorded).expect("list").next().is_none(), "the group's record is removed");
    drop(interrupter.await);
}
