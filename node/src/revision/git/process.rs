//! `ssh://` (and scp-like `host:path`) and local-path fetches: the `ssh` program or
//! `git-upload-pack` runs as a child process, and threads pump its pipes, so the thread
//! that fetches never blocks on the child.
//!
//! - A read waits at most the stall timeout, and returns early once the fetch is
//!   interrupted. A child that never answers therefore ends the fetch instead of holding
//!   its thread.
//! - Dropping the connection kills and reaps the child. A pump thread may outlive the
//!   fetch only while a grandchild the child started still holds the pipe open.
//! - The child's last lines on stderr are kept, so that a failure can say what `ssh` or
//!   `git-upload-pack` said ("Permission denied (publickey)", "does not appear to be a
//!   git repository").
//!
//! The ssh invocation follows Git's `ssh.variant` rules: OpenSSH gets
//! `-o SendEnv=GIT_PROTOCOL` and `-p PORT`; plink and putty get `-P PORT` (TortoisePlink
//! also `-batch`); any other program is probed with `-G HOST` like Git does, and counts as
//! OpenSSH when that succeeds.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gix::error::{message, ErrorExt, ResultExt};
use gix::url::ArgumentSafety;
use gix_transport::client::blocking_io::ssh::{connect::Options as SshOptions, ProgramKind};
use gix_transport::client::git::blocking_io::Connection;
use gix_transport::client::git::ConnectMode;

/// A connection to a child process (see the module comment).
pub(super) type ProcessConnection = Connection<PipeRead, PipeWrite>;

/// How long a read waits between looks at the interrupt flag.
const INTERRUPT_POLL: Duration = Duration::from_millis(200);
/// Lines of the child's stderr kept for the error.
const STDERR_LINES: usize = 4;
/// Longest kept stderr line, in characters.
const STDERR_LINE_CHARS: usize = 300;
/// Reads of the child's stdout buffered ahead of the fetch (64 KiB each).
const READ_AHEAD: usize = 64;
/// Longest a failed fetch waits for the child's last stderr lines.
const STDERR_SETTLE: Duration = Duration::from_millis(500);
/// Longest the `-G` probe of an unknown ssh program may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Variables that would point `git-upload-pack` at another repository than the one asked
/// for (Git's own list of repository-local variables).
const REPOSITORY_ENV: &[&str] = &[
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_CONFIG",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_PARAMETERS",
    "GIT_DIR",
    "GIT_GRAFT_FILE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_OBJECT_DIRECTORY",
    "GIT_PREFIX",
    "GIT_REPLACE_REF_BASE",
    "GIT_SHALLOW_FILE",
    "GIT_WORK_TREE",
];

/// The last lines the child wrote to stderr.
pub(super) struct StderrTail {
    program: String,
    lines: Arc<Mutex<VecDeque<String>>>,
    /// Disconnects when the thread reading stderr ends.
    done: Receiver<()>,
}

impl StderrTail {
    /// "PROGRAM said: LINE; LINE", or `None` when the child said nothing. Waits a moment
    /// for the reading thread to see the child's last lines.
    pub(super) fn said(&self) -> Option<String> {
        // Timing out is fine: a grandchild may hold stderr open; the lines so far do.
        let _ = self.done.recv_timeout(STDERR_SETTLE);
        let lines = self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (!lines.is_empty())
            .then(|| format!("{} said: {}", self.program, lines.iter().cloned().collect::<Vec<_>>().join("; ")))
    }
}

fn keep(lines: &Mutex<VecDeque<String>>, line: &str) {
    let line = line.trim();
    if line.is_empty() {
        return;
    }
    let mut lines = lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if lines.len() == STDERR_LINES {
        lines.pop_front();
    }
    lines.push_back(line.chars().take(STDERR_LINE_CHARS).collect());
}

/// The child sent nothing for the stall limit (the cause inside the read's
/// `io::Error`, so the fetch's error can name it once).
#[derive(Debug, thiserror::Error)]
#[error("{program} sent nothing for {secs} s")]
pub(super) struct ChildStalled {
    program: String,
    secs: u64,
}

/// What bounds a process connection's reads.
#[derive(Clone)]
pub(super) struct Limits {
    /// Longest a read waits for the child's next bytes.
    pub stall: Duration,
    /// Set by the caller to stop the fetch.
    pub interrupt: Arc<AtomicBool>,
    /// The ssh program to run instead of the configured one (`GIT_SSH_COMMAND`,
    /// `core.sshCommand`, else `ssh`).
    pub ssh: Option<SshOptions>,
}

/// Starts `git-upload-pack` for a local repository at `url.path`.
pub(super) fn connect_local(
    url: &gix::Url,
    version: gix_transport::Protocol,
    limits: Limits,
) -> gix::error::Result<(ProcessConnection, StderrTail)> {
    if url.user().is_some() || url.host().is_some() || url.port.is_some() {
        return Err(message!("{} names a host or user, which a local path cannot use", url.to_bstring()).raise());
    }
    let path = std::ffi::OsStr::from_bytes(url.path.as_slice()).to_owned();
    refuse_option_like(&path)?;
    let program = "git-upload-pack";
    let mut command = Command::new(program);
    command.arg(&path);
    let mut fallback = Command::new("git");
    fallback.arg("upload-pack").arg(&path);
    for command in [&mut command, &mut fallback] {
        command.env("GIT_PROTOCOL", format!("version={}", version as usize));
    }
    let child = match spawn(&mut command) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            spawn(&mut fallback).or_raise(|| message("cannot start `git upload-pack` (is Git installed?)"))?
        }
        started => started.or_raise(|| message!("cannot start {program}"))?,
    };
    attach(child, program.into(), url.path.clone(), version, limits)
        .or_raise(|| message("cannot start a thread for git-upload-pack"))
}

/// Starts the ssh program for `url` (see the module comment for its arguments), running
/// `git-upload-pack` on the remote side.
pub(super) fn connect_ssh(
    url: &gix::Url,
    options: &SshOptions,
    version: gix_transport::Protocol,
    limits: Limits,
) -> gix::error::Result<(ProcessConnection, StderrTail)> {
    let program = options.ssh_command().to_owned();
    let shown = program.to_string_lossy().into_owned();
    let destination = match (url.user_as_argument(), url.host_as_argument()) {
        (ArgumentSafety::Absent, ArgumentSafety::Usable(host)) => host.to_string(),
        (ArgumentSafety::Usable(user), ArgumentSafety::Usable(host) | ArgumentSafety::Dangerous(host)) => {
            format!("{user}@{host}")
        }
        (ArgumentSafety::Dangerous(user), _) => {
            return Err(message!("the user name {user:?} would be read as an ssh option").raise())
        }
        (_, ArgumentSafety::Dangerous(host)) => {
            return Err(message!("the host name {host:?} would be read as an ssh option").raise())
        }
        (_, ArgumentSafety::Absent) => return Err(message("an ssh URL needs a host").raise()),
    };
    let kind = match options.kind {
        Some(kind) => kind,
        None => match ProgramKind::from(program.as_os_str()) {
            ProgramKind::Simple if probe_is_openssh(options, &program, &destination) => ProgramKind::Ssh,
            kind => kind,
        },
    };
    let mut args: Vec<OsString> = Vec::new();
    match (kind, url.port) {
        (ProgramKind::Ssh, port) => {
            args.extend(["-o".into(), "SendEnv=GIT_PROTOCOL".into()]);
            args.extend(port.map(|port| format!("-p{port}").into()));
        }
        (ProgramKind::Plink | ProgramKind::Putty | ProgramKind::TortoisePlink, port) => {
            if kind == ProgramKind::TortoisePlink {
                args.push("-batch".into());
            }
            if let Some(port) = port {
                args.extend(["-P".into(), port.to_string().into()]);
            }
        }
        (ProgramKind::Simple, Some(_)) => {
            return Err(message!("{shown} does not take a port (set ssh.variant if it is OpenSSH or plink)").raise())
        }
        (ProgramKind::Simple, None) => {}
    }
    let remote_path = gix::url::expand_path::for_shell(url.path.clone());
    if remote_path.first() == Some(&b'-') {
        return Err(message!("the path {remote_path:?} would be read as an option").raise());
    }
    args.push(destination.into());
    args.push("git-upload-pack".into());
    args.push(gix::quote::single(remote_path.as_ref()).to_string().into());
    let mut prepare = gix::command::prepare(program.clone()).command_may_be_shell_script().args(args);
    if options.disallow_shell {
        prepare.use_shell = false;
    }
    let mut command = Command::try_from(prepare).or_raise(|| message!("cannot prepare {shown}"))?;
    command.env("GIT_PROTOCOL", format!("version={}", version as usize)).env("LANG", "C").env("LC_ALL", "C");
    let child = spawn(&mut command).or_raise(|| message!("cannot start {shown}"))?;
    attach(child, shown.clone(), url.path.clone(), version, limits)
        .or_raise(|| message!("cannot start a thread for {shown}"))
}

/// Whether `program -G destination` succeeds, which only OpenSSH's ssh does (Git's test for
/// `ssh.variant=auto`). A probe that hangs counts as not OpenSSH.
fn probe_is_openssh(options: &SshOptions, program: &std::ffi::OsStr, destination: &str) -> bool {
    let mut prepare = gix::command::prepare(program.to_owned())
        .command_may_be_shell_script()
        .args(["-G", destination])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if options.disallow_shell {
        prepare.use_shell = false;
    }
    let Ok(mut command) = Command::try_from(prepare) else {
        return false;
    };
    let Ok(mut child) = command.spawn() else {
        return false;
    };
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                kill_and_reap(&mut child);
                return false;
            }
        }
    }
}

fn refuse_option_like(path: &std::ffi::OsStr) -> gix::error::Result<()> {
    if path.as_encoded_bytes().first() == Some(&b'-') {
        return Err(message!("the path {path:?} would be read as an option").raise());
    }
    Ok(())
}

fn spawn(command: &mut Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    for name in REPOSITORY_ENV {
        command.env_remove(name);
    }
    // A process group of its own, so that ending the fetch also ends what the child
    // started (an ssh ProxyCommand holding the pipes, say): see `kill_and_reap`.
    command.process_group(0);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()
}

/// Wires `child`'s pipes to pump threads and wraps them in a connection. A thread that
/// cannot start kills the child and fails the fetch.
fn attach(
    mut child: Child,
    program: String,
    path: gix::bstr::BString,
    version: gix_transport::Protocol,
    limits: Limits,
) -> io::Result<(ProcessConnection, StderrTail)> {
    let lines = Arc::new(Mutex::new(VecDeque::new()));
    let (finished, done) = mpsc::channel();
    let (read_tx, read_rx) = mpsc::sync_channel(READ_AHEAD);
    let (write_tx, write_rx) = mpsc::channel();
    let started = pump_out(child.stdout.take(), read_tx)
        .and_then(|()| pump_in(child.stdin.take(), write_rx))
        .and_then(|()| keep_stderr(child.stderr.take(), lines.clone(), finished));
    if let Err(error) = started {
        kill_and_reap(&mut child);
        return Err(error);
    }
    let tail = StderrTail { program: program.clone(), lines, done };
    let read = PipeRead { rx: read_rx, pending: Vec::new(), at: 0, limits, program, child };
    let connection = Connection::new(
        read,
        PipeWrite(write_tx),
        version,
        path,
        None::<(String, Option<u16>)>,
        ConnectMode::Process,
        false,
    );
    Ok((connection, tail))
}

fn missing_pipe(name: &str) -> io::Error {
    io::Error::other(format!("the Git child process has no {name} pipe"))
}

fn pump_out(stdout: Option<std::process::ChildStdout>, to: SyncSender<io::Result<Vec<u8>>>) -> io::Result<()> {
    let mut stdout = stdout.ok_or_else(|| missing_pipe("stdout"))?;
    std::thread::Builder::new().name("git child stdout".into()).spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match stdout.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => {
                    if to.send(Ok(buffer[..read].to_vec())).is_err() {
                        break;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // The fetch may have ended already; then nobody needs the error.
                    let _ = to.send(Err(error));
                    break;
                }
            }
        }
    })?;
    Ok(())
}

fn pump_in(stdin: Option<std::process::ChildStdin>, from: Receiver<Vec<u8>>) -> io::Result<()> {
    let mut stdin = stdin.ok_or_else(|| missing_pipe("stdin"))?;
    std::thread::Builder::new().name("git child stdin".into()).spawn(move || {
        for bytes in from {
            if stdin.write_all(&bytes).and_then(|()| stdin.flush()).is_err() {
                break;
            }
        }
    })?;
    Ok(())
}

/// Keeps the last lines of `stderr` in `lines`; `finished` drops when stderr closes.
fn keep_stderr(
    stderr: Option<std::process::ChildStderr>,
    lines: Arc<Mutex<VecDeque<String>>>,
    finished: Sender<()>,
) -> io::Result<()> {
    let stderr = stderr.ok_or_else(|| missing_pipe("stderr"))?;
    std::thread::Builder::new().name("git child stderr".into()).spawn(move || {
        let _finished = finished;
        for line in io::BufReader::new(stderr).lines() {
            match line {
                Ok(line) => keep(&lines, &line),
                Err(_) => break,
            }
        }
    })?;
    Ok(())
}

/// Kills `child` and its process group (what it started) and waits for it, so no
/// zombie is left.
fn kill_and_reap(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // The group may be gone already (every member exited): nothing left to end.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    // It may have exited already: then kill fails and wait returns at once.
    let _ = child.kill();
    // Its exit status says nothing the fetch's own error does not.
    let _ = child.wait();
}

/// The child's stdout as the fetch reads it; owns the child, which it kills on drop.
pub(super) struct PipeRead {
    rx: Receiver<io::Result<Vec<u8>>>,
    pending: Vec<u8>,
    at: usize,
    limits: Limits,
    program: String,
    child: Child,
}

impl Read for PipeRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.at == self.pending.len() {
            let deadline = Instant::now() + self.limits.stall;
            loop {
                if self.limits.interrupt.load(Ordering::Relaxed) {
                    // Not ErrorKind::Interrupted: readers retry on that.
                    return Err(io::Error::other("the fetch was stopped"));
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let stalled = ChildStalled { program: self.program.clone(), secs: self.limits.stall.as_secs() };
                    return Err(io::Error::new(io::ErrorKind::TimedOut, stalled));
                }
                match self.rx.recv_timeout(left.min(INTERRUPT_POLL)) {
                    Ok(Ok(bytes)) => {
                        self.pending = bytes;
                        self.at = 0;
                        break;
                    }
                    Ok(Err(error)) => return Err(error),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return Ok(0),
                }
            }
        }
        let count = buf.len().min(self.pending.len() - self.at);
        buf[..count].copy_from_slice(&self.pending[self.at..self.at + count]);
        self.at += count;
        Ok(count)
    }
}

impl Drop for PipeRead {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// The child's stdin as the fetch writes it: a write never blocks on the child.
pub(super) struct PipeWrite(Sender<Vec<u8>>);

impl Write for PipeWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the Git child process has exited"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
