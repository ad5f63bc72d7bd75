//! Test clusters on a real (virtual) network: one Linux network namespace per node,
//! joined by veth pairs to a bridge that lives in its own namespace, on a private
//! subnet `10.213.X.0/24` that never leaves the machine. The root namespace gets
//! `10.213.X.254` on the bridge too, so the test talks to every node's API directly.
//!
//! ```text
//!   root ns (test, CLI) ─veth─┐
//!   node 1 ns ─veth───────────┤ bridge ns: br0 + nftables `bridge faults forward`
//!   node N ns ─veth───────────┘
//! ```
//!
//! Faults, each bounded in time: a node's link down and up, SIGSTOP/SIGCONT, kill -9 and
//! restart (same data directory), random loss and one-way cuts (nftables rules in the
//! bridge's forward chain: the kernel here has no `sch_netem`). Dropping the cluster
//! kills every process and deletes every namespace, also when the test failed; a run
//! that was killed outright is swept by the next one (the namespaces carry the pid).
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables): [`NetnsCluster::available`] says
//! why not.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

mod faults;
mod shell;

use self::shell::{free_octet, kill_namespace_processes, sh, sh_quiet, sweep_stale};

use crate::{binary, http_agent_within, log_tail, parse_metric, wait_until, API_PORT, QUIC_PORT};

/// Prefix of every namespace this harness creates: `fleetmesh-PID-RUN-...`.
const PREFIX: &str = "fleetmesh-";

/// One node process in its own namespace.
#[derive(Debug)]
pub struct NetNode {
    /// 1-based index; also the last octet of its address.
    pub index: u32,
    /// The node's network namespace.
    pub netns: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Install root.
    pub install_root: PathBuf,
    /// The running process; behind a lock so that faults can hit it while other
    /// threads read the cluster.
    child: Mutex<Option<Child>>,
    log: PathBuf,
}

/// A cluster of real processes, one network namespace each, on one bridge.
pub struct NetnsCluster {
    /// Working directory (deleted at the end).
    pub dir: tempfile::TempDir,
    /// Nodes by index.
    pub nodes: BTreeMap<u32, NetNode>,
    /// The bootstrap join token.
    pub join_token: String,
    /// The admin token.
    pub admin_token: String,
    run: String,
    octet: u8,
    bridge_ns: String,
    host_veth: String,
    node_flags: Vec<String>,
    namespaces: Vec<String>,
}

impl std::fmt::Debug for NetnsCluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("NetnsCluster").field("run", &self.run).field("dir", &self.dir.path()).finish()
    }
}

/// Random bytes for names and the subnet, different per run.
fn run_seed() -> [u8; 32] {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seed = (u128::from(std::process::id()) << 64) ^ now.as_nanos();
    *blake3::hash(&seed.to_le_bytes()).as_bytes()
}

impl NetnsCluster {
    /// Whether this machine can run namespace tests; `Err` says why not.
    ///
    /// # Errors
    /// Not root, `ip` or `nft` missing, or a namespace cannot be created.
    pub fn available() -> Result<(), String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("network namespace tests need root".to_string());
        }
        for tool in ["ip", "nft"] {
            let found = Command::new(tool).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
            if found.is_err() {
                return Err(format!("`{tool}` is not installed (apt-get install iproute2 nftables)"));
            }
        }
        let probe = format!("{PREFIX}{}-probe", std::process::id());
        let made = Command::new("ip").args(["netns", "add", &probe]).output().map_err(|error| error.to_string())?;
        if !made.status.success() {
            return Err(format!("cannot create a network namespace: {}", String::from_utf8_lossy(&made.stderr).trim()));
        }
        let nft = Command::new("ip")
            .args(["netns", "exec", &probe, "nft", "add", "table", "bridge", "probe"])
            .output()
            .map_err(|error| error.to_string());
        sh_quiet("ip", &["netns", "del", &probe]);
        match nft {
            Ok(output) if output.status.success() => Ok(()),
            Ok(output) => {
                Err(format!("nftables bridge tables fail: {}", String::from_utf8_lossy(&output.stderr).trim()))
            }
            Err(error) => Err(error),
        }
    }

    /// Builds the bridge, starts node 1 and `count - 1` joiners (each with
    /// `node_flags`), and waits until all are alive.
    ///
    /// # Panics
    /// If the network cannot be built or the cluster does not form within 90 s.
    pub fn start(count: u32, node_flags: &[&str]) -> Self {
        sweep_stale();
        let seed = run_seed();
        let run = format!("{}-{:02x}{:02x}", std::process::id(), seed[0], seed[1]);
        let dir = tempfile::Builder::new().prefix("fleetmesh-netns-").tempdir().expect("tempdir");
        let mut cluster = Self {
            dir,
            nodes: BTreeMap::new(),
            join_token: String::new(),
            admin_token: String::new(),
            octet: free_octet(seed[2]),
            bridge_ns: format!("{PREFIX}{run}-br"),
            host_veth: format!("fm{:02x}{:02x}h", seed[0], seed[1]),
            run,
            node_flags: node_flags.iter().map(|flag| flag.to_string()).collect(),
            namespaces: Vec::new(),
        };
        cluster.build_bridge();
        for index in 1..=count {
            cluster.build_node_namespace(index);
        }
        cluster.spawn(1, false);
        let first = cluster.nodes[&1].data_dir.clone();
        cluster.join_token =
            wait_until("join-token", Duration::from_secs(30), || read_trimmed(&first.join("join-token")));
        cluster.admin_token =
            wait_until("admin-token", Duration::from_secs(5), || read_trimmed(&first.join("admin-token")));
        cluster.wait_alive(1, Duration::from_secs(60));
        for index in 2..=count {
            cluster.spawn(index, true);
        }
        cluster.wait_alive(count as usize, Duration::from_secs(90));
        cluster
    }

    fn build_bridge(&mut self) {
        let br = self.bridge_ns.clone();
        sh("ip", &["netns", "add", &br]);
        self.namespaces.push(br.clone());
        sh("ip", &["-n", &br, "link", "add", "br0", "type", "bridge"]);
        sh("ip", &["-n", &br, "link", "set", "br0", "up"]);
        sh("ip", &["link", "add", &self.host_veth, "type", "veth", "peer", "name", "host", "netns", &br]);
        sh("ip", &["-n", &br, "link", "set", "host", "master", "br0", "up"]);
        let address = format!("{}/24", self.host_ip());
        sh("ip", &["addr", "add", &address, "dev", &self.host_veth]);
        sh("ip", &["link", "set", &self.host_veth, "up"]);
        let rules =
            "table bridge faults {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n }\n}\n";
        let mut nft = Command::new("ip")
            .args(["netns", "exec", &br, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run nft");
        std::io::Write::write_all(nft.stdin.as_mut().expect("nft stdin"), rules.as_bytes()).expect("write nft rules");
        drop(nft.stdin.take());
        assert!(nft.wait().expect("nft").success(), "nft could not create the bridge's fault table");
    }

    fn build_node_namespace(&mut self, index: u32) {
        let netns = format!("{PREFIX}{}-n{index}", self.run);
        sh("ip", &["netns", "add", &netns]);
        self.namespaces.push(netns.clone());
        let port = format!("p{index}");
        sh(
            "ip",
            &["link", "add", "eth0", "netns", &netns, "type", "veth", "peer", "name", &port, "netns", &self.bridge_ns],
        );
        sh("ip", &["-n", &self.bridge_ns, "link", "set", &port, "master", "br0", "up"]);
        let address = format!("{}/24", self.ip(index));
        sh("ip", &["-n", &netns, "addr", "add", &address, "dev", "eth0"]);
        sh("ip", &["-n", &netns, "link", "set", "eth0", "up"]);
        sh("ip", &["-n", &netns, "link", "set", "lo", "up"]);
        let data_dir = self.dir.path().join(format!("n{index}"));
        let install_root = data_dir.join("root");
        std::fs::create_dir_all(&install_root).expect("create install root");
        let log = self.dir.path().join(format!("n{index}.log"));
        self.nodes.insert(index, NetNode { index, netns, data_dir, install_root, child: Mutex::new(None), log });
    }

    /// The address of node `index`.
    pub fn ip(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.octet, index as u8)
    }

    /// The root namespace's address on the bridge.
    fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.octet, 254)
    }

    fn spawn(&self, index: u32, join: bool) {
        let seed = format!("{}:{QUIC_PORT}", self.ip(1));
        let listen = format!("{}:{QUIC_PORT}", self.ip(index));
        let api = format!("{}:{API_PORT}", self.ip(index));
        let token = self.join_token.clone();
        let flags = self.node_flags.clone();
        let node = &self.nodes[&index];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("log file");
        let mut command = Command::new("ip");
        // `ip netns exec` execs the program, so the child's pid is the node's.
        command
            .args(["netns", "exec", &node.netns])
            .arg(binary())
            .arg("node")
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--listen", &listen, "--api", &api, "--tag", "role=web"])
            .arg("--install-root")
            .arg(&node.install_root)
            .args(flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if join {
            command.args(["--join", &seed, "--token", &token]);
        }
        *node.child.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(command.spawn().expect("start a node with ip netns exec"));
    }

    /// `kill -9` node `index` (and whatever it left running in its namespace).
    pub fn kill9(&self, index: u32) {
        let node = &self.nodes[&index];
        if let Some(mut child) = node.child.lock().unwrap_or_else(PoisonError::into_inner).take() {
            // The process may have exited already; either way it is reaped below.
            let _ = child.kill();
            // Reaps the process; an error means there was nothing left to reap.
            let _ = child.wait();
        }
        kill_namespace_processes(&node.netns);
    }

    /// Restarts node `index` from its data directory (no --join).
    pub fn restart(&self, index: u32) {
        self.kill9(index);
        self.spawn(index, false);
    }

    /// The process id of node `index` while its process runs.
    pub fn pid(&self, index: u32) -> Option<u32> {
        self.nodes.get(&index)?.child.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(Child::id)
    }

    /// Indices of nodes whose process runs.
    pub fn live_indices(&self) -> Vec<u32> {
        self.nodes.keys().copied().filter(|index| self.pid(*index).is_some()).collect()
    }

    /// The CA bundle the CLI must trust: the first node's `DIR/ca.pem` once the API
    /// speaks HTTPS; `None` while it is plain HTTP.
    pub fn ca_bundle(&self) -> Option<PathBuf> {
        let path = self.nodes.get(&1)?.data_dir.join("ca.pem");
        path.exists().then_some(path)
    }

    /// The base URL of node `index`'s API: the one place that decides between `https`
    /// (when the cluster wrote `ca.pem`) and `http`.
    pub fn api_url(&self, index: u32) -> String {
        let scheme = if self.ca_bundle().is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{API_PORT}", self.ip(index))
    }

    /// Runs the CLI against node `via`'s API with the admin token; killed after
    /// `timeout` (then `None`).
    pub fn cli_within(&self, via: u32, args: &[&str], timeout: Duration) -> Option<Output> {
        let mut command = Command::new(binary());
        command
            .args(args)
            .env("FLEETMESH_API", self.api_url(via))
            .env("FLEETMESH_TOKEN", &self.admin_token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(bundle) = self.ca_bundle() {
            command.env("FLEETMESH_CA_BUNDLE", bundle);
        }
        let mut child = command.spawn().expect("run fleetmesh");
        let deadline = Instant::now() + timeout;
        loop {
            if child.try_wait().ok().flatten().is_some() {
                return child.wait_with_output().ok();
            }
            if Instant::now() > deadline {
                // The child may have just exited; it is reaped below either way.
                let _ = child.kill();
                // Reaps the killed child; nothing else to do if that fails.
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs the CLI against node `via` (30 s at most).
    ///
    /// # Panics
    /// If the CLI does not end within 30 s.
    pub fn cli(&self, via: u32, args: &[&str]) -> Output {
        self.cli_within(via, args, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("fleetmesh {} took over 30 s", args.join(" ")))
    }

    /// Runs a CLI command that must succeed; returns stdout.
    ///
    /// # Panics
    /// If the command fails (its stderr in the message).
    pub fn ok(&self, via: u32, args: &[&str]) -> String {
        let output = self.cli(via, args);
        assert!(
            output.status.success(),
            "fleetmesh {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs the CLI and parses its stdout as JSON, `None` if it failed.
    pub fn cli_json(&self, via: u32, args: &[&str]) -> Option<Value> {
        let output = self.cli_within(via, args, Duration::from_secs(10))?;
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// `cluster status --json` through node `via`.
    pub fn status(&self, via: u32) -> Option<Value> {
        self.cli_json(via, &["cluster", "status", "--json"])
    }

    /// Waits until `count` nodes are alive and a leader is known (through any live node).
    pub fn wait_alive(&self, count: usize, timeout: Duration) -> Value {
        wait_until(&format!("{count} alive nodes"), timeout, || {
            self.live_indices().into_iter().find_map(|via| {
                let status = self.status(via)?;
                let alive = status["nodes"].as_array()?.iter().filter(|node| node["health"] == "alive").count();
                (alive == count && !status["leader"].is_null()).then_some(status)
            })
        })
    }

    /// The node index whose QUIC address is `address`.
    pub fn index_of_address(&self, address: &str) -> Option<u32> {
        self.nodes.keys().copied().find(|index| format!("{}:{QUIC_PORT}", self.ip(*index)) == address)
    }

    /// The leader's index and the voters' indices, as node `via` reports them.
    pub fn leader_and_voters(&self, via: u32) -> Option<(u32, Vec<u32>)> {
        let status = self.status(via)?;
        let leader = status["leader"].as_u64()?;
        let mut leader_index = None;
        let mut voters = Vec::new();
        for node in status["nodes"].as_array()? {
            let index = self.index_of_address(node["address"].as_str()?)?;
            if node["id"].as_u64() == Some(leader) {
                leader_index = Some(index);
            }
            if node["role"] == "voter" {
                voters.push(index);
            }
        }
        Some((leader_index?, voters))
    }

    /// Node `index`'s own view of Raft, from its `/metrics`: `(term, is leader)`;
    /// `None` when it does not answer within 2 s.
    pub fn raft_view(&self, index: u32) -> Option<(u64, bool)> {
        let text = self.http_get(index, "/metrics", Duration::from_secs(2))?;
        Some((parse_metric(&text, "fleetmesh_raft_term")?, parse_metric(&text, "fleetmesh_is_leader")? == 1))
    }

    /// A GET on node `index`'s API with the scrape token (`DIR/metrics-token` of node
    /// 1 if there is one, else the admin token), trusting [`Self::ca_bundle`] for HTTPS;
    /// `None` unless it answers 200.
    pub fn http_get(&self, index: u32, path: &str, timeout: Duration) -> Option<String> {
        let token =
            read_trimmed(&self.nodes[&1].data_dir.join("metrics-token")).unwrap_or_else(|| self.admin_token.clone());
        let url = format!("{}{path}", self.api_url(index));
        let agent = http_agent_within(self.ca_bundle().as_deref(), timeout);
        let mut response = agent.get(&url).header("Authorization", &format!("Bearer {token}")).call().ok()?;
        if response.status().as_u16() != 200 {
            return None;
        }
        response.body_mut().read_to_string().ok()
    }

    /// Everything node `index` has logged so far.
    pub fn log(&self, index: u32) -> String {
        std::fs::read_to_string(&self.nodes[&index].log).unwrap_or_default()
    }

    /// Tail of every node's log, for failure output.
    pub fn logs(&self) -> String {
        self.nodes.values().map(|node| log_tail(node.index, &node.log, 40)).collect()
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|text| text.trim().to_string()).filter(|text| !text.is_empty())
}
