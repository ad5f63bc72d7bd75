//! What reaches a running lifecycle event from outside: an [`Interrupt`] that ends it at
//! once (the deployment was stopped, or the node's shutdown grace is over), and the
//! record of the hook process groups that run ([`HookGroups`]), so an agent restarted
//! after `kill -9` can end the groups its predecessor left behind.

use std::fmt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::watch;
use tracing::warn;

/// Why a running lifecycle event is ended before it finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptReason {
    /// The leader withdrew the assignment (`stop-deployment`, or the deployment ended).
    Stopped,
    /// The node is stopping and its shutdown grace period is over.
    ShuttingDown,
}

impl fmt::Display for InterruptReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Stopped => "the deployment was stopped",
            Self::ShuttingDown => "the node is shutting down and its grace period is over",
        })
    }
}

/// Ends a running lifecycle event at once: its running script's process group gets
/// SIGTERM, then SIGKILL, as on a timeout. Cloned into everything the event runs.
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    receiver: Option<watch::Receiver<Option<InterruptReason>>>,
}

impl Interrupt {
    /// An interrupt that never comes (tests, the simulator).
    pub fn never() -> Self {
        Self { receiver: None }
    }

    /// An interrupt and the sender that triggers it.
    pub fn channel() -> (watch::Sender<Option<InterruptReason>>, Self) {
        let (sender, receiver) = watch::channel(None);
        (sender, Self { receiver: Some(receiver) })
    }

    /// The reason, once the interrupt came.
    pub fn reason(&self) -> Option<InterruptReason> {
        self.receiver.as_ref().and_then(|receiver| *receiver.borrow())
    }

    /// Resolves when the interrupt comes; never if it cannot come any more.
    pub async fn wait(&self) -> InterruptReason {
        if let Some(receiver) = &self.receiver {
            let mut receiver = receiver.clone();
            let reason = receiver.wait_for(Option::is_some).await.ok().and_then(|reason| *reason);
            if let Some(reason) = reason {
                return reason;
            }
        }
        std::future::pending().await
    }
}

/// What an event's scripts run under besides their inputs: the interrupt that ends them
/// and the record of their process groups.
#[derive(Clone, Debug, Default)]
pub struct EventControl {
    /// Ends the event at once.
    pub interrupt: Interrupt,
    /// Where each script's process group is recorded while it runs.
    pub groups: HookGroups,
}

/// Where the process groups of running hook scripts are recorded: one file per group,
/// named by its id, holding the leader's start time (so a recycled id is not mistaken
/// for it) and what it runs. The file is written as soon as the script is spawned and
/// removed when its group has been waited for.
#[derive(Clone, Debug, Default)]
pub struct HookGroups {
    dir: Option<PathBuf>,
}

/// A recorded group, removed from the record when dropped.
#[derive(Debug)]
pub(super) struct RecordedGroup {
    path: Option<PathBuf>,
}

impl Drop for RecordedGroup {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            if let Err(error) = std::fs::remove_file(path) {
                warn!(%error, path = %path.display(), "cannot remove the record of a finished hook's process group");
            }
        }
    }
}

impl HookGroups {
    /// Records in `dir` (created if missing).
    pub fn in_dir(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self { dir: Some(dir.to_path_buf()) })
    }

    /// Records group `pgid` (its leader is the script just spawned) running `what`.
    pub(super) fn record(&self, pgid: Pid, what: &str) -> RecordedGroup {
        let Some(dir) = &self.dir else { return RecordedGroup { path: None } };
        let path = dir.join(pgid.as_raw().to_string());
        let start = start_time(pgid).unwrap_or_default();
        match crate::runtime::identity::write_private_file(&path, format!("{start}\n{what}\n").as_bytes()) {
            Ok(()) => RecordedGroup { path: Some(path) },
            Err(error) => {
                warn!(%error, pgid = pgid.as_raw(), "cannot record a hook's process group; a kill -9 of this node would leave it running");
                RecordedGroup { path: None }
            }
        }
    }

    /// Ends (SIGKILL) every recorded group that still runs: hooks of an agent that was
    /// killed without ending them. Returns one line per group found, for the log.
    pub fn end_leftovers(&self) -> Vec<String> {
        let Some(dir) = &self.dir else { return Vec::new() };
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut ended = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let recorded = std::fs::read_to_string(&path).unwrap_or_default();
            let pgid = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()).filter(|id| *id > 1);
            if let Some(pgid) = pgid.map(Pid::from_raw) {
                if let Some(line) = end_leftover(pgid, &recorded) {
                    ended.push(line);
                }
            }
            if let Err(error) = std::fs::remove_file(&path) {
                warn!(%error, path = %path.display(), "cannot remove the record of a hook's process group");
            }
        }
        ended
    }
}

/// Ends group `pgid` recorded as `recorded` (start time, then what it ran) if it is
/// still the same group; the log line saying so.
fn end_leftover(pgid: Pid, recorded: &str) -> Option<String> {
    let mut lines = recorded.lines();
    let start: u64 = lines.next().and_then(|line| line.trim().parse().ok()).unwrap_or_default();
    let what = lines.next().unwrap_or("a hook script");
    // A live leader with another start time is a new process that reused the id.
    if start_time(pgid).is_some_and(|now| now != start) {
        return None;
    }
    match killpg(pgid, Signal::SIGKILL) {
        Ok(()) => Some(format!(
            "killed process group {} ({what}) left running by this node before it restarted",
            pgid.as_raw()
        )),
        Err(Errno::ESRCH) => None,
        Err(error) => {
            Some(format!("cannot kill process group {} ({what}) left from before a restart: {error}", pgid.as_raw()))
        }
    }
}

/// The start time of process `pid` (clock ticks since boot, `/proc/PID/stat` field 22).
fn start_time(pid: Pid) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw())).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    // `rest` starts at field 3 (state); field 22 is the 20th of it.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_interrupt_says_why_and_never_comes_for_never() {
        let (sender, interrupt) = Interrupt::channel();
        assert_eq!(interrupt.reason(), None);
        sender.send_replace(Some(InterruptReason::Stopped));
        assert_eq!(interrupt.wait().await, InterruptReason::Stopped);
        assert_eq!(interrupt.reason(), Some(InterruptReason::Stopped));
        let never = Interrupt::never();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), never.wait()).await;
        assert!(waited.is_err() && never.reason().is_none());
    }

    #[test]
    fn leftover_groups_are_killed_once_and_a_reused_id_is_left_alone() {
        // A sleeping group recorded in the directory is killed by end_leftovers; a record
        // whose start time does not match its live leader is not.
        let dir = tempfile::tempdir().expect("dir");
        let groups = HookGroups::in_dir(dir.path()).expect("groups");
        let spawn = || {
            let mut command = std::process::Command::new("sleep");
            std::os::unix::process::CommandExt::process_group(command.arg("30"), 0);
            command.spawn().expect("spawn sleep")
        };
        let (mut recorded, mut reused) = (spawn(), spawn());
        let recorded_pid = Pid::from_raw(recorded.id() as i32);
        std::mem::forget(groups.record(recorded_pid, "scripts/hang.sh of d-1"));
        let reused_pid = Pid::from_raw(reused.id() as i32);
        std::fs::write(dir.path().join(reused_pid.as_raw().to_string()), "1\nold\n").expect("write");
        let lines = groups.end_leftovers();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("scripts/hang.sh of d-1") && lines[0].contains("killed"), "{lines:?}");
        let status = recorded.wait().expect("wait");
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
        assert!(reused.try_wait().expect("try_wait").is_none(), "the reused id must be left alone");
        reused.kill().expect("kill");
        reused.wait().expect("reap");
        assert!(std::fs::read_dir(dir.path()).expect("list").next().is_none(), "records are removed");
    }
}
