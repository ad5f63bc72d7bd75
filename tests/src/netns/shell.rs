//! The root-only commands under the harness: running `ip` and `nft`, finding a free
//! subnet, and sweeping namespaces of runs that died.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::PREFIX;

/// Runs a command that must succeed.
///
/// # Panics
/// If it cannot run or fails (its stderr in the message).
pub(super) fn sh(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs a command whose failure does not matter (cleanup); says whether it worked.
pub(super) fn sh_quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Deletes namespaces left by runs whose process is gone (a test killed by a timeout
/// never ran its `Drop`).
pub(super) fn sweep_stale() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|pid| pid.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            kill_namespace_processes(name);
            sh_quiet("ip", &["netns", "del", name]);
        }
    }
}

/// `kill -9` every process left in namespace `netns` (hooks of a killed node).
pub(super) fn kill_namespace_processes(netns: &str) {
    let Ok(output) = Command::new("ip").args(["netns", "pids", netns]).output() else { return };
    for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            // The process may be gone already; there is nothing else to do about it.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// A third octet for `10.213.X.0/24` that no interface of the root namespace uses.
pub(super) fn free_octet(seed: u8) -> u8 {
    let used = Command::new("ip")
        .args(["-4", "-o", "addr"])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    (0..250u16)
        .map(|step| 1 + ((u16::from(seed) + step) % 250) as u8)
        .find(|octet| !used.contains(&format!("10.213.{octet}.")))
        .expect("a free 10.213.X.0/24")
}
