//! A route in `--command` mode: instead of proxying, this router runs the route's
//! program with the route's JSON (as `get-route --json` prints it) on stdin after every
//! change, one run at a time; changes that arrive during a run are folded into the next
//! one, so the latest state always wins. The program's output is captured, bounded, and
//! logged when it exits non-zero; each run's outcome (the route version it ran on, its
//! exit status, the tail of its output) is recorded for the agents whose traffic events
//! wait for it (`outcomes.rs`): a non-zero exit fails their event.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_model::RouteInfo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::watch;
use tracing::{info, warn};

use super::outcomes::CommandOutcomes;
use crate::runtime::protocol::{RouteCommandOutcome, ROUTE_COMMAND_TAIL_BYTES_MAX};

/// Longest run of the program before it is killed (an nginx reload takes well under a
/// second; a minute allows for a slow config check).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes of the program's stdout and of its stderr kept for the log; the rest is read
/// and dropped, so a chatty program neither blocks on a full pipe nor fills memory.
pub(super) const OUTPUT_BYTES_MAX: usize = 16 << 10;

/// Runs the route's program after every change of `route`, until the sender is gone or
/// the task is aborted, recording each run's outcome in `outcomes`.
pub(super) async fn run(mut route: watch::Receiver<Arc<RouteInfo>>, outcomes: Arc<CommandOutcomes>) {
    // One run per observed change; bounded by the route's life.
    loop {
        let info = route.borrow_and_update().clone();
        let result = run_once(&info).await;
        outcomes.record(&info.route_name, outcome_of(info.version, &result));
        match result {
            Ok(outcome) if outcome.success => {
                info!(route = %info.route_name, "route command succeeded");
            }
            Ok(outcome) => warn!(
                route = %info.route_name,
                status = %outcome.status,
                stdout = %String::from_utf8_lossy(&outcome.stdout),
                stderr = %String::from_utf8_lossy(&outcome.stderr),
                "route command failed"
            ),
            Err(error) => warn!(route = %info.route_name, %error, "route command could not run"),
        }
        if route.changed().await.is_err() {
            return;
        }
    }
}

/// What the router tells agents of one run on route version `version`.
fn outcome_of(version: u64, result: &Result<RunOutcome, CommandError>) -> RouteCommandOutcome {
    match result {
        Ok(run) => RouteCommandOutcome {
            route_version: version,
            succeeded: run.success,
            status: run.status.clone(),
            output_tail: output_tail(&run.stdout, &run.stderr, ROUTE_COMMAND_TAIL_BYTES_MAX),
        },
        Err(error) => RouteCommandOutcome {
            route_version: version,
            succeeded: false,
            status: error.to_string(),
            output_tail: String::new(),
        },
    }
}

/// The last `bytes_max` bytes of `stdout` followed by `stderr` (the error explains the
/// failure, so it is what is kept), cut forward to a character boundary.
fn output_tail(stdout: &[u8], stderr: &[u8], bytes_max: usize) -> String {
    let mut text = String::from_utf8_lossy(stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(stderr));
    let mut start = text.len().saturating_sub(bytes_max);
    // Bounded by the 4 bytes of a UTF-8 character.
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text.split_off(start)
}

/// How one run ended.
#[derive(Debug)]
pub(super) struct RunOutcome {
    /// Exit status zero.
    pub(super) success: bool,
    /// The exit status, in words.
    pub(super) status: String,
    /// The first [`OUTPUT_BYTES_MAX`] bytes of stdout.
    pub(super) stdout: Vec<u8>,
    /// The first [`OUTPUT_BYTES_MAX`] bytes of stderr.
    pub(super) stderr: Vec<u8>,
}

/// Why a run did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub(super) enum CommandError {
    /// The route has no command.
    #[error("the route has no command")]
    NoCommand,
    /// The program could not be started.
    #[error("cannot start {path}: {source}")]
    Spawn {
        /// The program.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Waiting for it failed.
    #[error("waiting for {path} failed: {source}")]
    Wait {
        /// The program.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ran longer than [`COMMAND_TIMEOUT`] and was killed.
    #[error("{path} ran longer than {COMMAND_TIMEOUT:?} and was killed")]
    Timeout {
        /// The program.
        path: String,
    },
}

/// Runs the route's program once with the route's JSON on stdin.
///
/// # Errors
/// No command, it cannot start, or it timed out.
pub(super) async fn run_once(info: &RouteInfo) -> Result<RunOutcome, CommandError> {
    let path = info.command.clone().ok_or(CommandError::NoCommand)?;
    let mut child = Command::new(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CommandError::Spawn { path: path.clone(), source })?;
    let json = serde_json::to_vec(info).unwrap_or_default();
    let stdin = child.stdin.take();
    let feed = async move {
        if let Some(mut stdin) = stdin {
            // A program that does not read its input closes the pipe; that is its choice.
            let _ = stdin.write_all(&json).await;
        }
    };
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let ((), stdout, stderr, status) = tokio::join!(feed, bounded(stdout), bounded(stderr), child.wait());
        (stdout, stderr, status)
    };
    let (stdout, stderr, status) =
        tokio::time::timeout(COMMAND_TIMEOUT, work).await.map_err(|_| CommandError::Timeout { path: path.clone() })?;
    let status = status.map_err(|source| CommandError::Wait { path, source })?;
    Ok(RunOutcome { success: status.success(), status: status.to_string(), stdout, stderr })
}

/// The first [`OUTPUT_BYTES_MAX`] bytes of `reader`, reading the rest to its end.
async fn bounded(reader: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut reader) = reader else { return kept };
    let mut buffer = [0u8; 4096];
    // Bounded by the program's output: ends at end of file or a read error.
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => return kept,
            Ok(read) => {
                let room = OUTPUT_BYTES_MAX.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..read.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_model::RouteTargetInfo;
    use fleetmesh_state::model::routes::TrafficState;
    use fleetmesh_state::NodeId;
    use std::os::unix::fs::PermissionsExt;

    fn route(command: &std::path::Path) -> RouteInfo {
        RouteInfo {
            route_name: "web".into(),
            listen_port: 9000,
            target_port: 80,
            routers: vec![NodeId(1)],
            targets: vec![RouteTargetInfo {
                target_id: NodeId(2),
                address: "127.0.0.2:80".into(),
                weight: 5,
                state: TrafficState::Serving,
            }],
            router_tags: Default::default(),
            drain_seconds: 30,
            command: Some(command.display().to_string()),
            router_errors: Vec::new(),
            created_by: None,
            targets_set_by: None,
            version: 1,
            traffic_split: None,
        }
    }

    fn script(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
        let path = dir.join("route-command.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[tokio::test]
    async fn the_program_gets_the_route_on_stdin_and_its_output_is_bounded() {
        // A program that echoes its input, then floods stdout, and fails: the outcome has
        // the route's JSON first, at most OUTPUT_BYTES_MAX bytes, and the failure.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = script(dir.path(), "cat; head -c 100000 /dev/zero; echo oops >&2; exit 3");
        let outcome = run_once(&route(&path)).await.expect("runs");
        assert!(!outcome.success, "{}", outcome.status);
        assert_eq!(outcome.stdout.len(), OUTPUT_BYTES_MAX);
        let json = serde_json::to_vec(&route(&path)).expect("encodes");
        assert_eq!(&outcome.stdout[..json.len()], json.as_slice());
        assert_eq!(outcome.stderr, b"oops\n");
        // What agents are told: the version run on, the failure, the last 4 KiB ending
        // with the error output.
        let reported = outcome_of(7, &Ok(outcome));
        assert_eq!((reported.route_version, reported.succeeded), (7, false));
        assert_eq!(reported.status, "exit status: 3");
        assert_eq!(reported.output_tail.len(), ROUTE_COMMAND_TAIL_BYTES_MAX);
        assert!(reported.output_tail.ends_with("\0oops\n"), "{:?}", &reported.output_tail[4000..]);
    }

    #[test]
    fn the_output_tail_keeps_the_end_of_stdout_then_stderr_on_a_character_boundary() {
        // 3 bytes of stdout, a 2-byte character and "!" on stderr: 4 bytes keep "cé!";
        // 2 bytes would cut the character in two, so the tail starts after it.
        assert_eq!(output_tail(b"abc", "é!".as_bytes(), 4), "cé!");
        assert_eq!(output_tail(b"abc", "é!".as_bytes(), 2), "!");
        assert_eq!(output_tail(b"out\n", b"err\n", 4096), "out\nerr\n");
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_not_a_panic() {
        let missing = std::path::Path::new("/nonexistent/fleetmesh-route-command");
        let error = run_once(&route(missing)).await.expect_err("no such program");
        assert!(error.to_string().contains("cannot start /nonexistent/fleetmesh-route-command"), "{error}");
    }
}
