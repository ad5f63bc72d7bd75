//! Starting a hook script as its own process group, optionally as another user, and
//! ending that group on timeout.
//!
//! The script gets its own process group (pgid = its pid) so a timeout can signal
//! everything it started (`codedeploy.md` §1.5: the agent signals the process group).
//! `runas` switches user the way `su` would for the agent: uid, gid and supplementary
//! groups from the user database, HOME/USER/LOGNAME/SHELL from the passwd entry.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{geteuid, getgrouplist, Gid, Pid, Uid, User};
use tokio::process::{Child, Command};

/// How long a timed-out script's process group has between SIGTERM and SIGKILL.
pub(crate) const TERMINATE_GRACE: Duration = Duration::from_secs(5);

/// How often the group is checked during the grace period.
const TERMINATE_POLL: Duration = Duration::from_millis(50);

/// How many times a spawn is retried when the kernel says the script file is busy
/// (ETXTBSY: another thread's fork briefly inherited a write handle to a file that was
/// just written). Each retry waits [`TEXT_BUSY_WAIT`].
const TEXT_BUSY_RETRIES: u32 = 10;
const TEXT_BUSY_WAIT: Duration = Duration::from_millis(20);

/// Why a script cannot run as its appspec's `runas` user.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunAsError {
    /// The user database has no such user.
    #[error("runas user {name:?} does not exist on this host")]
    UnknownUser {
        /// The user named by the appspec.
        name: String,
    },
    /// The user database could not be read.
    #[error("cannot look up runas user {name:?}: {source}")]
    Lookup {
        /// The user named by the appspec.
        name: String,
        /// What the lookup said.
        source: Errno,
    },
    /// Switching to another user needs root, and this process is not.
    #[error("cannot run as {name:?}: fleetmesh runs as uid {uid} and only root can switch users")]
    NotRoot {
        /// The user named by the appspec.
        name: String,
        /// This process's effective uid.
        uid: Uid,
    },
    /// The name cannot be passed to the C library.
    #[error("runas user {name:?} contains a NUL byte")]
    NulByte {
        /// The user named by the appspec.
        name: String,
    },
    /// The user's supplementary groups could not be listed.
    #[error("cannot list the groups of {name:?}: {source}")]
    Groups {
        /// The user named by the appspec.
        name: String,
        /// What `getgrouplist` said.
        source: Errno,
    },
}

/// A user to run scripts as, looked up before spawning.
#[derive(Clone, Debug)]
pub(crate) struct RunAs {
    name: String,
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    home: PathBuf,
    shell: PathBuf,
}

impl RunAs {
    /// Looks `name` up in the user database.
    ///
    /// # Errors
    /// Unknown user, lookup failure, or a user this process cannot switch to (not
    /// root); the message goes into the event's diagnostics.
    pub(crate) fn lookup(name: &str) -> Result<Self, RunAsError> {
        let user = match User::from_name(name) {
            Ok(Some(user)) => user,
            Ok(None) => return Err(RunAsError::UnknownUser { name: name.to_string() }),
            Err(source) => return Err(RunAsError::Lookup { name: name.to_string(), source }),
        };
        let is_self = geteuid() == user.uid;
        if !is_self && !geteuid().is_root() {
            return Err(RunAsError::NotRoot { name: name.to_string(), uid: geteuid() });
        }
        let groups = if is_self {
            Vec::new()
        } else {
            let c_name = CString::new(name).map_err(|_| RunAsError::NulByte { name: name.to_string() })?;
            getgrouplist(&c_name, user.gid).map_err(|source| RunAsError::Groups { name: name.to_string(), source })?
        };
        Ok(Self { name: name.to_string(), uid: user.uid, gid: user.gid, groups, home: user.dir, shell: user.shell })
    }
}

/// What to start.
pub(crate) struct Launch<'a> {
    /// The script file.
    pub(crate) script: &'a Path,
    /// Working directory (the bundle root).
    pub(crate) working_dir: &'a Path,
    /// Environment added to the agent's own.
    pub(crate) env: &'a [(String, String)],
    /// User to switch to.
    pub(crate) runas: Option<&'a RunAs>,
}

/// Starts the script with stdin closed and stdout/stderr piped, in a new process group.
/// A script without `#!` fails exec with ENOEXEC; like the agent's Ruby `spawn`, it is
/// then run with `/bin/sh`.
///
/// # Errors
/// The spawn error of the last attempt.
pub(crate) async fn spawn(launch: &Launch<'_>) -> io::Result<Child> {
    match spawn_retrying(launch, None).await {
        Err(error) if error.raw_os_error() == Some(Errno::ENOEXEC as i32) => {
            spawn_retrying(launch, Some(Path::new("/bin/sh"))).await
        }
        other => other,
    }
}

async fn spawn_retrying(launch: &Launch<'_>, interpreter: Option<&Path>) -> io::Result<Child> {
    let mut attempt = 0;
    loop {
        match command(launch, interpreter).spawn() {
            Err(error) if error.raw_os_error() == Some(Errno::ETXTBSY as i32) && attempt < TEXT_BUSY_RETRIES => {
                attempt += 1;
                tokio::time::sleep(TEXT_BUSY_WAIT).await;
            }
            other => return other,
        }
    }
}

fn command(launch: &Launch<'_>, interpreter: Option<&Path>) -> Command {
    let mut command = match interpreter {
        Some(interpreter) => {
            let mut command = std::process::Command::new(interpreter);
            command.arg(launch.script);
            command
        }
        None => std::process::Command::new(launch.script),
    };
    command
        .current_dir(launch.working_dir)
        .envs(launch.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(runas) = launch.runas {
        command
            .env("HOME", &runas.home)
            .env("USER", &runas.name)
            .env("LOGNAME", &runas.name)
            .env("SHELL", &runas.shell);
        if geteuid() != runas.uid {
            switch_user_before_exec(&mut command, runas);
        }
    }
    let mut command = Command::from(command);
    command.kill_on_drop(true);
    command
}

/// Makes the child switch to `runas` between fork and exec: supplementary groups, then
/// gid, then uid (the order that keeps the privilege to do the next step).
///
/// std's own `uid`/`gid` setters cannot be used: they drop supplementary groups
/// (`setgroups(0)`) and run after `pre_exec` hooks, when the privilege to set groups is
/// gone. The group list is computed in the parent (`getgrouplist`) because `initgroups`
/// reads the group database, which is not safe in a forked child of a threaded process.
#[allow(unsafe_code)]
fn switch_user_before_exec(command: &mut std::process::Command, runas: &RunAs) {
    let (uid, gid, groups) = (runas.uid, runas.gid, runas.groups.clone());
    // SAFETY: the closure runs in the forked child before exec. It only makes the
    // setgroups, setgid and setuid system calls on data moved in from the parent: no
    // allocation, no locks, nothing that is unsafe after fork in a threaded program.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setgid(gid)?;
            nix::unistd::setuid(uid)?;
            Ok(())
        });
    }
}

/// True while any process of group `pgid` exists (zombies included).
pub(crate) fn group_exists(pgid: Pid) -> bool {
    !matches!(killpg(pgid, None), Err(Errno::ESRCH))
}

/// Ends a timed-out script: SIGTERM to its process group, then SIGKILL to whatever is
/// left after [`TERMINATE_GRACE`], and reaps the script itself.
pub(crate) async fn terminate_group(child: &mut Child, pgid: Pid) {
    // ESRCH (the group is already gone) is the only expected error; nothing to do then.
    let _ = killpg(pgid, Signal::SIGTERM);
    let grace_end = tokio::time::Instant::now() + TERMINATE_GRACE;
    // Bounded by the grace period.
    loop {
        // Reaps the leader so it does not count as alive; an error means it is already
        // reaped, which is as good.
        let _ = child.try_wait();
        if !group_exists(pgid) {
            break;
        }
        if tokio::time::Instant::now() >= grace_end {
            // ESRCH (the group ended since the check) is the only expected error.
            let _ = killpg(pgid, Signal::SIGKILL);
            break;
        }
        tokio::time::sleep(TERMINATE_POLL).await;
    }
    // After SIGKILL (or its own exit) the script ends promptly; this only reaps it, and
    // its exit status no longer matters (the event already timed out).
    let _ = child.wait().await;
}
