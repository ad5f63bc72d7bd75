//! Faults on a [`NetnsCluster`], each bounded in time, and the cleanup that undoes
//! everything when the cluster is dropped.

use std::time::Duration;

use super::shell::{kill_namespace_processes, sh, sh_quiet};
use super::NetnsCluster;

/// Faults. Every one ends by itself after the duration it is given (or is undone by
/// the matching call), and [`Drop`] undoes whatever is left.
impl NetnsCluster {
    /// Takes node `index`'s link down at the bridge (its cable pulled), for `duration`,
    /// then up again. Blocks for `duration`.
    pub fn link_down_for(&self, index: u32, duration: Duration) {
        let port = format!("p{index}");
        sh("ip", &["-n", &self.bridge_ns, "link", "set", &port, "down"]);
        std::thread::sleep(duration);
        sh("ip", &["-n", &self.bridge_ns, "link", "set", &port, "up"]);
    }

    /// SIGSTOPs node `index` for `duration`, then SIGCONTs it. Blocks for `duration`.
    pub fn pause_for(&self, index: u32, duration: Duration) {
        use nix::sys::signal::{kill, Signal};
        let pid = nix::unistd::Pid::from_raw(self.pid(index).expect("node runs") as i32);
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
        std::thread::sleep(duration);
        kill(pid, Signal::SIGCONT).expect("SIGCONT");
    }

    /// Drops `percent` % of the frames the bridge forwards, at random, for `duration`.
    /// Blocks for `duration`.
    pub fn loss_for(&self, percent: u32, duration: Duration) {
        self.with_rule(&format!("numgen random mod 100 < {percent} drop"), duration);
    }

    /// Drops every packet to node `index` from the other nodes (it still sends: a
    /// one-way cut, it goes deaf) for `duration`. Blocks for `duration`.
    pub fn deafen_for(&self, index: u32, duration: Duration) {
        let rule = format!("ip saddr 10.213.{}.0/24 ip daddr {} drop", self.octet, self.ip(index));
        self.with_rule(&rule, duration);
    }

    /// Drops packets from node `from` to node `to` only, for `duration`. Blocks.
    pub fn cut_one_way_for(&self, from: u32, to: u32, duration: Duration) {
        self.with_rule(&format!("ip saddr {} ip daddr {} drop", self.ip(from), self.ip(to)), duration);
    }

    fn with_rule(&self, rule: &str, duration: Duration) {
        let command = format!("add rule bridge faults forward {rule}");
        sh("ip", &["netns", "exec", &self.bridge_ns, "sh", "-c", &format!("nft '{command}'")]);
        std::thread::sleep(duration);
        self.clear_rules();
    }

    /// Removes every fault rule.
    pub fn clear_rules(&self) {
        sh_quiet("ip", &["netns", "exec", &self.bridge_ns, "nft", "flush", "chain", "bridge", "faults", "forward"]);
    }
}

impl NetnsCluster {
    /// Copies every node's log to `/tmp/fleetmesh-netns-logs-RUN/` (the working
    /// directory goes away with the cluster).
    fn keep_logs(&self) {
        let keep = std::env::temp_dir().join(format!("fleetmesh-netns-logs-{}", self.run));
        if std::fs::create_dir_all(&keep).is_err() {
            return;
        }
        for node in self.nodes.values() {
            if let Some(name) = node.log.file_name() {
                // A log that cannot be copied is only missing from the failure report.
                let _ = std::fs::copy(&node.log, keep.join(name));
            }
        }
        eprintln!("node logs kept in {}", keep.display());
    }
}

impl Drop for NetnsCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
            self.keep_logs();
        }
        for index in self.nodes.keys().copied().collect::<Vec<_>>() {
            if let Some(pid) = self.pid(index) {
                // A paused node must not stay stopped; kill -9 follows anyway.
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGCONT);
            }
            self.kill9(index);
        }
        for netns in self.namespaces.iter().rev() {
            kill_namespace_processes(netns);
            sh_quiet("ip", &["netns", "del", netns]);
        }
        // Gone with the bridge's namespace already; this only catches a half-built run.
        sh_quiet("ip", &["link", "del", &self.host_veth]);
    }
}
