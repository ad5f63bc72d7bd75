//! Running one lifecycle event's hook scripts on this host (`codedeploy.md` §1.5), and
//! turning the result into CodeDeploy diagnostics (§6.1 `LifecycleErrorCode`).
//!
//! Which event runs when, and which revision's scripts it uses (§2.4), is the lifecycle
//! executor's business; this module takes an event name and its scripts and runs them:
//!
//! ```text
//! run_event(event, scripts, bundle_root, env, log)
//!   for each script, in order (the first failure ends the event):
//!     missing? ─▶ ScriptMissing     not executable and chmod +x fails? ─▶ ScriptNotExecutable
//!     spawn in its own process group (runas: switch user), stdin closed
//!     stdout/stderr lines ─▶ scripts.log "[time] [stdout] line" and the 4 KiB log tail
//!     exit 0 ─▶ next    exit N ─▶ ScriptFailed    deadline ─▶ SIGTERM group, SIGKILL after 5 s ─▶ ScriptTimedOut
//!   ─▶ EventOutcome { succeeded, diagnostics }
//! ```
//!
//! Deadlines: each script has its own `timeout`, and all scripts of one event together
//! have [`EVENT_TIMEOUT_MAX`] (3600 s, what CodeDeploy's service allows one event, §1.5).
//! A script's deadline is the earlier of the two, so a script started late in the event
//! gets only what is left of the hour; when the event's limit ends a script, the message
//! says so.
//!
//! `runas` needs the revision directory to be readable by that user, as with CodeDeploy
//! (a known pain point, §11 #4); the lifecycle executor owns those permissions.
//!
//! Working directory: the bundle root. The CodeDeploy agent does not change directory,
//! so scripts inherit the agent's (`/opt/codedeploy-agent` under SysV init) and portable
//! scripts locate files from `$0`; those keep working, and scripts that assumed the
//! bundle root now find it.

mod control;
mod output;
mod process;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use fleetmesh_state::model::deployment::{Diagnostics, LifecycleErrorCode};
use nix::unistd::Pid;
use tokio::io::AsyncRead;
use tokio::process::Child;
use tokio::time::Instant;

use crate::agent::script_log::{LogStream, ScriptLog};
pub use control::{EventControl, HookGroups, Interrupt, InterruptReason};
use fleetmesh_core::appspec::{HookScript, EVENT_TIMEOUT_MAX};
use output::{LineReader, OutputTail};
use process::{Launch, RunAs};

/// Size of `diagnostics.logTail` (the API allows up to 4 KB, §1.5).
pub const LOG_TAIL_BYTES_MAX: usize = 4096;

/// How long output is still read after the script itself exited. A background process
/// that inherited stdout/stderr keeps the pipes open; CodeDeploy then waits until the
/// script's deadline and fails the event ("failed to close STDOUT/STDERR", §1.5). We are
/// deliberately friendlier: after this grace the event is judged by the exit code alone
/// and the log says the output was left open.
pub const OUTPUT_DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Far enough in the future to stand for "no deadline" (a timeout too large to add to
/// the clock).
const NO_DEADLINE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Environment given to every script of an event, on top of fleetmesh's own.
///
/// The caller fills the CodeDeploy variables (`DEPLOYMENT_ID`, `APPLICATION_NAME`,
/// `DEPLOYMENT_GROUP_NAME`, `DEPLOYMENT_GROUP_ID`, …, §1.5) and `FLEETMESH_*`.
/// `LIFECYCLE_EVENT` is set by [`run_event`] from its `event` argument unless listed here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookEnv {
    /// Variables in the order they are set (a later duplicate wins).
    pub vars: Vec<(String, String)>,
}

impl HookEnv {
    /// This environment plus `key=value`.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_string(), value.to_string()));
        self
    }
}

/// The result of one lifecycle event on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventOutcome {
    /// True when every script exited 0 in time.
    pub succeeded: bool,
    /// `Success`, or the first failure's code, script, message and the output's tail.
    pub diagnostics: Diagnostics,
}

/// Why one script failed.
struct ScriptFailure {
    code: LifecycleErrorCode,
    message: String,
}

impl ScriptFailure {
    fn new(code: LifecycleErrorCode, message: String) -> Self {
        Self { code, message }
    }
}

/// Runs `scripts` (all of one lifecycle `event`) in order from `bundle_root`, logging
/// their output to `log`. Stops at the first failure. An event without scripts
/// succeeds.
///
/// `control.interrupt` ends the running script's process group as a timeout does and
/// fails the event; each script's group is recorded in `control.groups` while it runs.
///
/// Cancel-safety: dropping the future kills the running script (not its process group).
pub async fn run_event(
    event: &str,
    scripts: &[HookScript],
    bundle_root: &Path,
    env: &HookEnv,
    log: &mut ScriptLog,
    control: &EventControl,
) -> EventOutcome {
    let limit = EventLimit { event, started: Instant::now(), length: EVENT_TIMEOUT_MAX, control };
    run_event_within(scripts, bundle_root, env, log, &limit).await
}

/// [`run_event`] within `limit` (tests use a short one).
async fn run_event_within(
    scripts: &[HookScript],
    bundle_root: &Path,
    env: &HookEnv,
    log: &mut ScriptLog,
    limit: &EventLimit<'_>,
) -> EventOutcome {
    let event = limit.event;
    let mut vars = vec![("LIFECYCLE_EVENT".to_string(), event.to_string())];
    vars.extend(env.vars.iter().cloned());
    let mut tail = OutputTail::new(LOG_TAIL_BYTES_MAX);
    for script in scripts {
        let runas = script.runas.as_ref().map_or(String::new(), |user| format!(" as {user}"));
        let started = format!("{event}: running {}{runas} (timeout {} s)", script.location, script.timeout.as_secs());
        log.write_line(LogStream::Agent, &started);
        if let Err(failure) = run_script(script, bundle_root, &vars, limit, log, &mut tail).await {
            log.write_line(LogStream::Agent, &format!("{event}: {}", failure.message));
            return EventOutcome {
                succeeded: false,
                diagnostics: Diagnostics {
                    error_code: failure.code,
                    script_name: script.location.clone(),
                    message: failure.message,
                    log_tail: tail.contents(),
                },
            };
        }
    }
    let message = if scripts.is_empty() {
        format!("{event} has no scripts")
    } else {
        format!("{event} succeeded ({} scripts)", scripts.len())
    };
    log.write_line(LogStream::Agent, &message);
    EventOutcome {
        succeeded: true,
        diagnostics: Diagnostics {
            error_code: LifecycleErrorCode::Success,
            script_name: String::new(),
            message,
            log_tail: tail.contents(),
        },
    }
}

/// The time all scripts of one event share, and what else ends them.
struct EventLimit<'a> {
    event: &'a str,
    started: Instant,
    length: Duration,
    control: &'a EventControl,
}

impl EventLimit<'_> {
    /// What is left of the event's time.
    fn remaining(&self) -> Duration {
        self.length.saturating_sub(self.started.elapsed())
    }

    /// The failure of a script the event's limit stopped (or never let start).
    fn reached(&self, name: &str, started: bool) -> ScriptFailure {
        let what = if started { "was stopped" } else { "was not started" };
        ScriptFailure::new(
            LifecycleErrorCode::ScriptTimedOut,
            format!(
                "script {name} {what}: {} reached its limit of {} seconds for all its scripts together",
                self.event,
                self.length.as_secs()
            ),
        )
    }
}

async fn run_script(
    script: &HookScript,
    bundle_root: &Path,
    vars: &[(String, String)],
    limit: &EventLimit<'_>,
    log: &mut ScriptLog,
    tail: &mut OutputTail,
) -> Result<(), ScriptFailure> {
    let name = &script.location;
    if let Some(reason) = limit.control.interrupt.reason() {
        return Err(ScriptFailure::new(
            LifecycleErrorCode::UnknownError,
            format!("script {name} was not started: {reason}"),
        ));
    }
    let remaining = limit.remaining();
    if remaining.is_zero() {
        return Err(limit.reached(name, false));
    }
    // The event's limit cuts this script short when less than its own timeout is left.
    let cut_by_event = remaining < script.timeout;
    let timeout = script.timeout.min(remaining);
    let path = bundle_root.join(name);
    ensure_executable(name, &path, log)?;
    let runas = match &script.runas {
        Some(user) => Some(
            RunAs::lookup(user)
                .map_err(|why| ScriptFailure::new(LifecycleErrorCode::ScriptFailed, format!("script {name}: {why}")))?,
        ),
        None => None,
    };
    let launch = Launch { script: &path, working_dir: bundle_root, env: vars, runas: runas.as_ref() };
    let mut child = process::spawn(&launch).await.map_err(|error| {
        let code = if error.kind() == std::io::ErrorKind::PermissionDenied {
            LifecycleErrorCode::ScriptNotExecutable
        } else {
            LifecycleErrorCode::UnknownError
        };
        ScriptFailure::new(code, format!("script {name} could not be started: {error}"))
    })?;
    let pgid = child.id().and_then(|pid| i32::try_from(pid).ok()).map(Pid::from_raw);
    let _recorded = pgid.map(|pgid| limit.control.groups.record(pgid, &format!("{name} of {}", limit.event)));
    let ending = supervise(&mut child, timeout, &limit.control.interrupt, log, tail).await;
    match ending {
        Ending::Interrupted(reason) => Err(ScriptFailure::new(
            LifecycleErrorCode::UnknownError,
            format!("script {name} was ended with its process group: {reason}"),
        )),
        Ending::TimedOut if cut_by_event => Err(limit.reached(name, true)),
        Ending::TimedOut => Err(ScriptFailure::new(
            LifecycleErrorCode::ScriptTimedOut,
            format!("script {name} failed to complete in {} seconds", script.timeout.as_secs()),
        )),
        Ending::Exited(status) => match (status.code(), status.signal()) {
            (Some(0), _) => Ok(()),
            (Some(code), _) => Err(ScriptFailure::new(
                LifecycleErrorCode::ScriptFailed,
                format!("script {name} failed with exit code {code}"),
            )),
            (None, signal) => Err(ScriptFailure::new(
                LifecycleErrorCode::ScriptFailed,
                format!("script {name} was killed by signal {}", signal.unwrap_or_default()),
            )),
        },
        Ending::WaitFailed(error) => Err(ScriptFailure::new(
            LifecycleErrorCode::UnknownError,
            format!("script {name}: cannot wait for it: {error}"),
        )),
    }
}

/// Checks the script exists and is executable, doing `chmod +x` when it is not (§1.5).
fn ensure_executable(name: &str, path: &Path, log: &mut ScriptLog) -> Result<(), ScriptFailure> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ScriptFailure::new(
                LifecycleErrorCode::ScriptMissing,
                format!("script {name} does not exist in the revision (looked for {})", path.display()),
            ));
        }
        Err(error) => {
            return Err(ScriptFailure::new(
                LifecycleErrorCode::ScriptMissing,
                format!("script {name} cannot be read at {}: {error}", path.display()),
            ));
        }
    };
    if !metadata.is_file() {
        return Err(ScriptFailure::new(
            LifecycleErrorCode::ScriptMissing,
            format!("script {name} is not a file ({})", path.display()),
        ));
    }
    let mode = metadata.permissions().mode();
    if mode & 0o111 == 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o111)).map_err(|error| {
            ScriptFailure::new(
                LifecycleErrorCode::ScriptNotExecutable,
                format!("script {name} is not executable and chmod +x failed: {error}"),
            )
        })?;
        log.write_line(LogStream::Agent, &format!("script {name} was not executable; ran chmod +x"));
    }
    Ok(())
}

/// How a supervised script ended.
enum Ending {
    Exited(std::process::ExitStatus),
    TimedOut,
    Interrupted(InterruptReason),
    WaitFailed(std::io::Error),
}

/// Pumps the script's output into the log and tail until it exits (then at most
/// [`OUTPUT_DRAIN_GRACE`] more) or its timeout passes (then its group is ended and
/// what it printed is collected for at most the same grace).
async fn supervise(
    child: &mut Child,
    timeout: Duration,
    interrupt: &Interrupt,
    log: &mut ScriptLog,
    tail: &mut OutputTail,
) -> Ending {
    let pgid = child.id().and_then(|pid| i32::try_from(pid).ok()).map(Pid::from_raw);
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Ending::WaitFailed(std::io::Error::other("stdout/stderr were not piped"));
    };
    let mut stdout = LineReader::new(stdout);
    let mut stderr = LineReader::new(stderr);
    let now = Instant::now();
    let deadline = now.checked_add(timeout).unwrap_or(now + NO_DEADLINE);
    // Until the script exits or its deadline passes; each arm makes progress (a line,
    // an end of stream) or ends the loop. Exit and deadline are polled before output so
    // a script that prints without pause cannot starve them.
    let status = loop {
        tokio::select! {
            biased;
            status = child.wait() => match status {
                Ok(status) => break status,
                Err(error) => return Ending::WaitFailed(error),
            },
            () = tokio::time::sleep_until(deadline) => {
                if let Some(pgid) = pgid {
                    process::terminate_group(child, pgid).await;
                }
                // The group is dead; collect what it printed before dying.
                drain(&mut stdout, &mut stderr, Instant::now() + OUTPUT_DRAIN_GRACE, log, tail).await;
                keep_draining(stdout);
                keep_draining(stderr);
                return Ending::TimedOut;
            }
            reason = interrupt.wait() => {
                if let Some(pgid) = pgid {
                    process::terminate_group(child, pgid).await;
                }
                drain(&mut stdout, &mut stderr, Instant::now() + OUTPUT_DRAIN_GRACE, log, tail).await;
                keep_draining(stdout);
                keep_draining(stderr);
                return Ending::Interrupted(reason);
            }
            line = stdout.next_line(), if !stdout.is_closed() => record(line, LogStream::Stdout, log, tail),
            line = stderr.next_line(), if !stderr.is_closed() => record(line, LogStream::Stderr, log, tail),
        }
    };
    drain(&mut stdout, &mut stderr, Instant::now() + OUTPUT_DRAIN_GRACE, log, tail).await;
    if !(stdout.is_closed() && stderr.is_closed()) {
        log.write_line(
            LogStream::Agent,
            "the script exited but a process it started still holds its stdout/stderr open; stopped reading \
             after 1 s (redirect background output: > /dev/null 2>&1 < /dev/null &)",
        );
    }
    keep_draining(stdout);
    keep_draining(stderr);
    Ending::Exited(status)
}

fn record(line: Option<Vec<u8>>, stream: LogStream, log: &mut ScriptLog, tail: &mut OutputTail) {
    if let Some(line) = line {
        let text = String::from_utf8_lossy(&line);
        log.write_line(stream, &text);
        tail.push_line(&format!("[{}] {text}", stream.tag()));
    }
}

async fn drain<O, E>(
    stdout: &mut LineReader<O>,
    stderr: &mut LineReader<E>,
    until: Instant,
    log: &mut ScriptLog,
    tail: &mut OutputTail,
) where
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    // Ends when both pipes close or at `until`.
    while !(stdout.is_closed() && stderr.is_closed()) {
        tokio::select! {
            biased;
            // First, so endless output cannot starve the bound.
            () = tokio::time::sleep_until(until) => break,
            line = stdout.next_line(), if !stdout.is_closed() => record(line, LogStream::Stdout, log, tail),
            line = stderr.next_line(), if !stderr.is_closed() => record(line, LogStream::Stderr, log, tail),
        }
    }
}

/// Keeps reading (and discarding) a pipe a background process still holds, so that
/// process does not die of SIGPIPE the next time it prints. The task ends when the
/// process closes the pipe, or with the runtime.
fn keep_draining<R: AsyncRead + Unpin + Send + 'static>(reader: LineReader<R>) {
    if reader.is_closed() {
        return;
    }
    let mut reader = reader.into_inner();
    tokio::spawn(async move {
        // A read error ends the draining as the end of the stream would: the output is
        // discarded either way.
        let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
    });
}

#[cfg(test)]
mod tests;
