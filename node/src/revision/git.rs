//! A Git commit as a bundle directory (`revisionType: GitHub`, or any Git URL): the node
//! that takes the request fetches the repository's branches and tags into a bare
//! repository with gix, checks that the commit is there, and writes the commit's tree
//! into a directory that then becomes a revision like any pushed directory.
//!
//! Transports, one fetch path for all (`fetch`):
//! - `https://` and `http://` (smart protocol only): gix-transport's HTTP transport on our
//!   own client ([`http`]: ureq, rustls on ring, the system's roots as
//!   `fleetmesh_aws::outbound_agent` loads them, so `SSL_CERT_FILE` works). gix's own
//!   HTTP clients (curl, reqwest) are not built: they bring a second TLS stack.
//!   `owner/name` is `https://github.com/owner/name.git`. No credentials are sent: a
//!   private repository answers 401/403/404 and fails naming the URL.
//! - `git://`: gix's daemon protocol on a TCP stream this module opens, with read and
//!   write timeouts ([`READ_TIMEOUT`]).
//! - `ssh://` and scp-like `host:path` (through the `ssh` program, or `GIT_SSH_COMMAND`,
//!   `core.sshCommand`) and local paths (through `git-upload-pack`): a child process this
//!   module starts, its pipes pumped by threads ([`process`]), so that the fetching
//!   thread never blocks on the child; the child's last stderr lines go into the error.
//!
//! A stalled server or child ends the fetch by itself: each read waits at most
//! [`READ_TIMEOUT`], and each HTTP exchange lasts at most [`http::EXCHANGE_TIMEOUT`].
//! Setting the interrupt flag stops a fetch at its next step; a fetch from a child
//! process also stops while it waits for the child's next bytes.

mod http;
mod process;

pub use http::HttpError;

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use process::Limits;

use gix::error::{message, ErrorExt, ResultExt};
use gix::remote::Direction;
use gix_transport::client::blocking_io::Transport;

/// Longest a fetch waits for the next bytes from an `http(s)://` or `git://` server.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a TCP connect to a `git://` server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a commit could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The commit id is not 40 hexadecimal digits.
    #[error("commitId {0:?} is not a full commit id (40 hexadecimal digits)")]
    CommitId(String),
    /// The repository could not be cloned (Git's reason).
    #[error("cannot clone {repository}: {reason}")]
    Clone {
        /// The repository as given.
        repository: String,
        /// What gix said.
        reason: String,
    },
    /// The repository has no such commit (reachable from its branches and tags).
    #[error("{repository} has no commit {commit}: {reason}")]
    NoCommit {
        /// The repository as given.
        repository: String,
        /// The commit asked for.
        commit: String,
        /// What gix said.
        reason: String,
    },
    /// The commit's tree could not be read or written out.
    #[error("cannot write out commit {commit}: {reason}")]
    Tree {
        /// The commit.
        commit: String,
        /// What failed.
        reason: String,
    },
}

/// The URL gix clones for `repository`: `owner/name` is a GitHub repository, anything
/// else is a Git URL or path as given.
pub fn clone_url(repository: &str) -> String {
    let github = repository.split('/').count() == 2
        && !repository.contains(':')
        && !repository.starts_with('.')
        && !repository.starts_with('/');
    if github {
        format!("https://github.com/{repository}.git")
    } else {
        repository.to_string()
    }
}

/// Clones `repository` bare under `scratch`, then writes the tree of `commit` into
/// `scratch/tree`, which it returns. Blocking (network and disk); setting `interrupt`
/// stops the fetch at its next step (the caller's timeout does).
///
/// # Errors
/// [`GitError`], naming the repository or commit and Git's reason.
pub fn checkout(
    repository: &str,
    commit: &str,
    scratch: &Path,
    interrupt: &Arc<AtomicBool>,
) -> Result<PathBuf, GitError> {
    checkout_within(
        repository,
        commit,
        scratch,
        &Limits { stall: READ_TIMEOUT, interrupt: interrupt.clone(), ssh: None },
    )
}

/// [`checkout`] with the stall timeout given (shorter in tests).
fn checkout_within(repository: &str, commit: &str, scratch: &Path, limits: &Limits) -> Result<PathBuf, GitError> {
    if commit.len() != 40 || !commit.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(GitError::CommitId(commit.to_string()));
    }
    let id = gix::ObjectId::from_hex(commit.to_ascii_lowercase().as_bytes())
        .map_err(|_| GitError::CommitId(commit.to_string()))?;
    let url = clone_url(repository);
    let repo = fetch(repository, &url, &scratch.join("repo"), limits)?;
    let missing =
        |reason: String| GitError::NoCommit { repository: repository.to_string(), commit: commit.to_string(), reason };
    let found = repo.find_object(id).map_err(|error| missing(error.to_string()))?;
    let tree = found
        .try_into_commit()
        .and_then(|commit| commit.tree())
        .map_err(|error| missing(format!("not a commit: {error}")))?;
    let dest = scratch.join("tree");
    std::fs::create_dir_all(&dest).map_err(|error| write_error(commit, &error))?;
    write_tree(&repo, &tree, &dest, commit)?;
    Ok(dest)
}

/// Fetches the branches and tags of `url` (`repository` as given) into a new bare
/// repository at `dir`.
fn fetch(repository: &str, url: &str, dir: &Path, limits: &Limits) -> Result<gix::Repository, GitError> {
    let mut stderr = None;
    let fetched = (|| -> gix::error::Result<gix::Repository> {
        let mut repo = gix::init_bare(dir)?;
        repo.committer_or_set_generic_fallback()?;
        {
            let remote = repo
                .remote_at(url)?
                .with_fetch_tags(gix::remote::fetch::Tags::None)
                .with_refspecs(["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], Direction::Fetch)?;
            let transport = connect(&remote, limits, &mut stderr)?;
            remote
                .to_connection_with_transport(transport)
                // No credential helpers and no prompts: this release sends no credentials.
                .with_credentials(|_| Ok(None))
                .prepare_fetch(gix::progress::Discard, gix::remote::ref_map::Options::default())?
                .receive(gix::progress::Discard, &limits.interrupt)?;
        }
        Ok(repo)
    })();
    fetched.map_err(|error| {
        let why = reason(url, &error, limits.stall);
        let reason = match stderr.as_ref().and_then(process::StderrTail::said) {
            Some(said) => format!("{why} ({said})"),
            None => why,
        };
        GitError::Clone { repository: repository.to_string(), reason }
    })
}

/// The transport for `remote`'s fetch URL (see the module comment); a child process's
/// stderr goes to `stderr`.
fn connect(
    remote: &gix::Remote<'_>,
    limits: &Limits,
    stderr: &mut Option<process::StderrTail>,
) -> gix::error::Result<Box<dyn Transport + Send>> {
    let url = remote.url(Direction::Fetch).ok_or_else(|| message("the remote has no fetch URL").raise())?.clone();
    let version = gix_transport::Protocol::V2;
    let own = || Limits { ssh: None, ..limits.clone() };
    Ok(match url.scheme {
        gix::url::Scheme::Http | gix::url::Scheme::Https if url.user().is_some() => {
            // The URL is replicated state and shown in answers: no secrets in it.
            return Err(message("credentials in the URL are not supported (this release sends none)").raise());
        }
        gix::url::Scheme::Http | gix::url::Scheme::Https => {
            Box::new(gix_transport::client::blocking_io::http::connect_http(
                http::UreqHttp::new(limits.stall),
                url,
                version,
                false,
            ))
        }
        gix::url::Scheme::Git => Box::new(connect_daemon(&url, version, limits.stall)?),
        gix::url::Scheme::Ssh => {
            let options = match &limits.ssh {
                Some(options) => options.clone(),
                None => remote.repo().ssh_connect_options()?,
            };
            let (connection, said) = process::connect_ssh(&url, &options, version, own())?;
            *stderr = Some(said);
            Box::new(connection)
        }
        gix::url::Scheme::File => {
            let (connection, said) = process::connect_local(&url, version, own())?;
            *stderr = Some(said);
            Box::new(connection)
        }
        other => return Err(message!("the {other} protocol is not supported (use https, git, ssh or a path)").raise()),
    })
}

type DaemonConnection = gix_transport::client::git::blocking_io::Connection<TcpStream, TcpStream>;

/// A `git://` connection like gix's own, but on a stream with read and write timeouts.
fn connect_daemon(
    url: &gix::Url,
    version: gix_transport::Protocol,
    stall: Duration,
) -> gix::error::Result<DaemonConnection> {
    let (Some(host), Some(virtual_host)) = (url.host_unbracketed(), url.host()) else {
        return Err(message("a git:// URL needs a host").raise());
    };
    let port = url.port.unwrap_or(9418);
    let address = (host, port)
        .to_socket_addrs()
        .or_raise(|| message!("cannot resolve {host}"))?
        .next()
        .ok_or_else(|| message!("{host} has no address").raise())?;
    let read =
        TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).or_raise(|| message!("cannot connect to {address}"))?;
    read.set_read_timeout(Some(stall)).or_raise(|| message("cannot set a read timeout"))?;
    read.set_write_timeout(Some(stall)).or_raise(|| message("cannot set a write timeout"))?;
    let write = read.try_clone().or_raise(|| message("cannot clone the connection"))?;
    Ok(DaemonConnection::new(
        read,
        write,
        version,
        url.path.clone(),
        Some((virtual_host.to_string(), url.port)),
        gix_transport::client::git::ConnectMode::Daemon,
        false,
    ))
}

/// The reason to show for a failed fetch of `url`: the HTTP failure when there is one, a
/// stall in plain words, else gix's chain of reasons on one line.
fn reason(url: &str, error: &gix::error::Error, stall: Duration) -> String {
    for cause in error.iter_errors() {
        let io = cause.downcast_ref::<std::io::Error>();
        let wrapped = io.and_then(std::io::Error::get_ref).and_then(|inner| inner.downcast_ref::<HttpError>());
        if let Some(http) = cause.downcast_ref::<HttpError>().or(wrapped) {
            return http.to_string();
        }
        if let Some(stalled) =
            io.and_then(std::io::Error::get_ref).and_then(|inner| inner.downcast_ref::<process::ChildStalled>())
        {
            return format!("{url}: {stalled}");
        }
        if let Some(io) =
            io.filter(|io| matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
        {
            return format!("{url} sent nothing for {} s ({io})", stall.as_secs());
        }
    }
    format!("{error:#}")
}

fn write_error(commit: &str, error: &dyn std::fmt::Display) -> GitError {
    GitError::Tree { commit: commit.to_string(), reason: error.to_string() }
}

/// Writes `tree`'s entries under `dir`: files with mode 0755 when executable, else
/// 0644; symlinks as symlinks; subtrees as directories. Submodules are left out (their
/// content is another repository's).
fn write_tree(repo: &gix::Repository, tree: &gix::Tree<'_>, dir: &Path, commit: &str) -> Result<(), GitError> {
    use std::os::unix::fs::PermissionsExt;
    for entry in tree.iter() {
        let entry = entry.map_err(|error| write_error(commit, &error))?;
        let name = entry.filename().to_string();
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(write_error(commit, &format!("tree entry {name:?} is not a file name")));
        }
        let path = dir.join(&name);
        let mode = entry.mode();
        if mode.is_commit() {
            continue;
        }
        let object = repo.find_object(entry.oid().to_owned()).map_err(|error| write_error(commit, &error))?;
        if mode.is_tree() {
            std::fs::create_dir(&path).map_err(|error| write_error(commit, &error))?;
            let subtree = object.try_into_tree().map_err(|error| write_error(commit, &error))?;
            write_tree(repo, &subtree, &path, commit)?;
        } else if mode.is_link() {
            let target = String::from_utf8(object.data.clone())
                .map_err(|_| write_error(commit, &format!("symlink {name:?} does not point at a UTF-8 path")))?;
            std::os::unix::fs::symlink(target, &path).map_err(|error| write_error(commit, &error))?;
        } else {
            std::fs::write(&path, &object.data).map_err(|error| write_error(commit, &error))?;
            let bits = if mode.is_executable() { 0o755 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bits))
                .map_err(|error| write_error(commit, &error))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{checkout, clone_url, Arc, AtomicBool, GitError};

    #[test]
    fn owner_and_name_is_github_and_anything_else_is_a_url() {
        assert_eq!(clone_url("acme/shop"), "https://github.com/acme/shop.git");
        assert_eq!(clone_url("git://127.0.0.1:9418/shop.git"), "git://127.0.0.1:9418/shop.git");
        assert_eq!(clone_url("/srv/git/shop.git"), "/srv/git/shop.git");
        assert_eq!(clone_url("git@example.com:acme/shop.git"), "git@example.com:acme/shop.git");
    }

    #[test]
    fn http_failures_name_the_repository_and_the_reason() {
        let scratch = tempfile::tempdir().expect("a temporary directory");
        let cases = [(404, "repository not found"), (401, "authentication required"), (403, "access denied")];
        for (index, (code, reason)) in cases.into_iter().enumerate() {
            let port = super::http::tests::serve(vec![super::http::tests::status(code, "")]);
            let repository = format!("http://127.0.0.1:{port}/shop.git");
            let dir = scratch.path().join(index.to_string());
            let error = checkout(&repository, &"a".repeat(40), &dir, &Arc::new(AtomicBool::new(false))).unwrap_err();
            assert!(matches!(&error, GitError::Clone { repository: named, .. } if *named == repository), "{error}");
            assert!(error.to_string().contains(reason), "{code}: {error}");
        }
    }

    #[test]
    fn a_git_daemon_connection_has_read_and_write_timeouts() {
        // A stalled daemon then fails after READ_TIMEOUT instead of blocking the thread.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = gix::Url::try_from(
            format!("git://127.0.0.1:{}/shop.git", listener.local_addr().expect("address").port()).as_str(),
        )
        .expect("a git URL");
        let connection =
            super::connect_daemon(&url, gix_transport::Protocol::V2, super::READ_TIMEOUT).expect("connects");
        let (read, _) = connection.into_inner();
        assert_eq!(read.read_timeout().ok().flatten(), Some(super::READ_TIMEOUT));
        assert_eq!(read.write_timeout().ok().flatten(), Some(super::READ_TIMEOUT));
    }

    #[test]
    fn a_short_or_non_hex_commit_id_is_refused_before_any_clone() {
        let scratch = std::env::temp_dir();
        for commit in ["abc123", "z".repeat(40).as_str(), ""] {
            assert!(
                matches!(
                    checkout("/nonexistent", commit, &scratch, &Arc::new(AtomicBool::new(false))),
                    Err(GitError::CommitId(_))
                ),
                "{commit}"
            );
        }
    }

    /// A repository with one commit (`app.txt`, executable `run.sh`) made with the `git`
    /// program; returns its directory and the commit id.
    fn repository_with_one_commit(root: &std::path::Path) -> (std::path::PathBuf, String) {
        let work = root.join("work");
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(&work)
                .args(["-c", "user.name=fleetmesh", "-c", "user.email=ci@fleetmesh.invalid"])
                .args(args)
                .output()
                .expect("the git program runs (apt install git)");
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        std::fs::create_dir_all(&work).expect("mkdir");
        git(&["init", "-q"]);
        std::fs::write(work.join("app.txt"), "version 1\n").expect("write");
        std::fs::write(work.join("run.sh"), "#!/bin/sh\n").expect("write");
        git(&["update-index", "--add", "--chmod=+x", "run.sh"]);
        git(&["add", "app.txt"]);
        git(&["commit", "-qm", "one"]);
        let commit = git(&["rev-parse", "HEAD"]);
        (work, commit)
    }

    /// An executable shell script at `path`.
    fn script(path: &std::path::Path, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path.to_path_buf()
    }

    fn limits(stall_ms: u64, ssh: Option<std::path::PathBuf>) -> super::Limits {
        super::Limits {
            stall: std::time::Duration::from_millis(stall_ms),
            interrupt: Arc::new(AtomicBool::new(false)),
            ssh: ssh.map(|command| gix_transport::client::blocking_io::ssh::connect::Options {
                command: Some(command.into_os_string()),
                disallow_shell: true,
                kind: Some(gix_transport::client::blocking_io::ssh::ProgramKind::Ssh),
            }),
        }
    }

    #[test]
    fn a_local_repository_is_read_at_its_commit_and_a_wrong_commit_is_refused() {
        let scratch = tempfile::tempdir().expect("a temporary directory");
        let (work, commit) = repository_with_one_commit(scratch.path());
        let path = work.to_string_lossy().into_owned();
        let tree =
            checkout(&path, &commit, &scratch.path().join("a"), &Arc::new(AtomicBool::new(false))).expect("checks out");
        assert_eq!(std::fs::read_to_string(tree.join("app.txt")).expect("app.txt"), "version 1\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tree.join("run.sh")).expect("run.sh").permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let wrong = "0123456789abcdef0123456789abcdef01234567";
        let error = checkout(&path, wrong, &scratch.path().join("b"), &Arc::new(AtomicBool::new(false))).unwrap_err();
        assert!(matches!(&error, GitError::NoCommit { commit, .. } if commit == wrong), "{error}");
    }

    #[test]
    fn a_local_path_that_is_no_repository_fails_with_what_git_said() {
        let scratch = tempfile::tempdir().expect("a temporary directory");
        let missing = scratch.path().join("no-such-repository");
        let path = missing.to_string_lossy().into_owned();
        let error =
            checkout(&path, &"a".repeat(40), &scratch.path().join("a"), &Arc::new(AtomicBool::new(false))).unwrap_err();
        assert!(matches!(&error, GitError::Clone { .. }), "{error}");
        assert!(error.to_string().contains("git-upload-pack said:"), "{error}");
        assert!(error.to_string().contains("does not appear to be a git repository"), "{error}");
    }

    #[test]
    fn an_ssh_url_runs_the_ssh_program_with_gits_arguments() {
        // A stand-in for ssh that runs the remote command locally, so the whole ssh path
        // is exercised without an ssh server.
        let scratch = tempfile::tempdir().expect("a temporary directory");
        let (work, commit) = repository_with_one_commit(scratch.path());
        let args = scratch.path().join("args");
        let ssh = script(
            &scratch.path().join("ssh"),
            &format!("printf '%s\\n' \"$@\" > '{}'\nshift 4\nexec sh -c \"$*\"", args.display()),
        );
        let url = format!("ssh://git@example.invalid:2222{}", work.display());
        let tree = super::checkout_within(&url, &commit, &scratch.path().join("a"), &limits(10_000, Some(ssh)))
            .expect("checks out over the stand-in ssh");
        assert_eq!(std::fs::read_to_string(tree.join("app.txt")).expect("app.txt"), "version 1\n");
        let seen = std::fs::read_to_string(&args).expect("the stand-in wrote its arguments");
        let expected =
            format!("-o\nSendEnv=GIT_PROTOCOL\n-p2222\ngit@example.invalid\ngit-upload-pack\n'{}'\n", work.display());
        assert_eq!(seen, expected);
    }

    /// True when process `pid` has ended (gone, or a zombie nobody reaped yet).
    fn ended(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .map_or(true, |stat| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
    }

    #[test]
    fn an_ssh_program_that_never_answers_ends_the_fetch_and_is_killed() {
        // The stand-in ssh starts a grandchild that holds its stdout (as a ProxyCommand
        // would), then never answers: asserts the fetch fails on the stall naming it
        // once, and that both the child and the grandchild are killed.
        let scratch = tempfile::tempdir().expect("a temporary directory");
        let (pid_file, grandchild_file) = (scratch.path().join("pid"), scratch.path().join("grandchild"));
        let body = format!(
            "sleep 60 &\necho $! > '{}'\necho $$ > '{}'\nexec sleep 60",
            grandchild_file.display(),
            pid_file.display()
        );
        let ssh = script(&scratch.path().join("ssh"), &body);
        let started = std::time::Instant::now();
        let error = super::checkout_within(
            "ssh://example.invalid/srv/shop.git",
            &"a".repeat(40),
            &scratch.path().join("a"),
            &limits(1_000, Some(ssh)),
        )
        .unwrap_err();
        let took = started.elapsed();
        assert!(error.to_string().contains("ssh sent nothing for 1 s"), "{error}");
        assert_eq!(error.to_string().matches("sent nothing").count(), 1, "{error}");
        assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
        let pid = std::fs::read_to_string(&pid_file).expect("the stand-in started");
        assert!(ended(&pid), "the ssh child {pid} still runs after the fetch failed");
        let grandchild = std::fs::read_to_string(&grandchild_file).expect("the stand-in started a grandchild");
        // SIGKILL is delivered at once, but give the kernel a moment to tear it down.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !ended(&grandchild) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(ended(&grandchild), "the ssh child's own child {grandchild} still runs after the fetch failed");
    }

    #[test]
    fn an_ssh_failure_carries_what_ssh_said() {
        let scratch = tempfile::tempdir().expect("a temporary directory");
        let ssh = script(
            &scratch.path().join("ssh"),
            "echo 'git@example.invalid: Permission denied (publickey).' >&2\nexit 255",
        );
        let error = super::checkout_within(
            "git@example.invalid:acme/shop.git",
            &"a".repeat(40),
            &scratch.path().join("a"),
            &limits(10_000, Some(ssh)),
        )
        .unwrap_err();
        assert!(
            matches!(&error, GitError::Clone { repository, .. } if repository == "git@example.invalid:acme/shop.git")
        );
        assert!(error.to_string().contains("said: git@example.invalid: Permission denied (publickey)."), "{error}");
    }

    #[test]
    fn an_interrupt_stops_a_fetch_that_waits_for_its_child() {
        let scratch = tempfile::tempdir().expect("a temporary directory");
        let ssh = script(&scratch.path().join("ssh"), "exec sleep 60");
        let limits = limits(60_000, Some(ssh));
        let interrupt = limits.interrupt.clone();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            interrupt.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let started = std::time::Instant::now();
        let result = super::checkout_within(
            "ssh://example.invalid/srv/shop.git",
            &"a".repeat(40),
            &scratch.path().join("a"),
            &limits,
        );
        stopper.join().expect("the stopper ends");
        assert!(result.is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}", started.elapsed());
    }
}
