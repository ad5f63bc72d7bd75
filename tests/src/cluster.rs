//! Test clusters as processes: starting node 1 and its joiners on their own loopback
//! addresses, killing and restarting them, and their logs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{binary, wait_until, API_PORT, QUIC_PORT};

fn subnet() -> (u8, u8) {
    let seed = std::process::id() as u64 ^ (Instant::now().elapsed().as_nanos() as u64) ^ {
        #[allow(clippy::disallowed_methods)]
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        now.as_nanos() as u64
    };
    let hash = blake3::hash(&seed.to_le_bytes());
    let bytes = hash.as_bytes();
    (10 + bytes[0] % 240, 1 + bytes[1] % 250)
}

/// Options of a test cluster.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Extra flags for every node.
    pub node_flags: Vec<String>,
    /// Tags per node index (1-based); default `role=web`.
    pub tags: BTreeMap<u32, Vec<String>>,
    /// Extra environment variables per node index (1-based). Kept across restarts.
    pub env: BTreeMap<u32, Vec<(String, String)>>,
    /// The program a node index (1-based) runs instead of [`binary`], with the same
    /// command line (`node --data-dir ...`): a test binary that wires a misbehaving
    /// node, such as `corrupting_node`. Kept across restarts.
    pub programs: BTreeMap<u32, PathBuf>,
}

/// One node process.
#[derive(Debug)]
pub struct TestNode {
    /// 1-based index (the first node is also node id 1; others get ids in join order).
    pub index: u32,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Install root.
    pub install_root: PathBuf,
    /// QUIC address.
    pub listen: SocketAddr,
    /// API address.
    pub api: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
    tags: Vec<String>,
}

/// A cluster of real processes.
pub struct TestCluster {
    /// Working directory (deleted at the end).
    pub dir: tempfile::TempDir,
    /// Nodes by index.
    pub nodes: BTreeMap<u32, TestNode>,
    subnet: (u8, u8),
    options: Options,
    /// The bootstrap join token.
    pub join_token: String,
    /// The admin token.
    pub admin_token: String,
    /// Flags for the next node started only ([`TestCluster::restart_with`]).
    once: Vec<String>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TestCluster").field("dir", &self.dir.path()).finish_non_exhaustive()
    }
}

impl TestCluster {
    /// Starts node 1 and `count - 1` joiners, and waits until all are alive.
    ///
    /// # Panics
    /// If the cluster does not form within 90 s.
    pub fn start(count: u32, options: Options) -> Self {
        let dir = tempfile::Builder::new().prefix("fleetmesh-e2e-").tempdir().expect("tempdir");
        let mut cluster = Self {
            dir,
            nodes: BTreeMap::new(),
            subnet: subnet(),
            options,
            join_token: String::new(),
            admin_token: String::new(),
            once: Vec::new(),
        };
        cluster.add_node(1, None);
        let first = cluster.nodes[&1].data_dir.clone();
        cluster.join_token =
            wait_until("join-token", Duration::from_secs(30), || read_trimmed(&first.join("join-token")));
        cluster.admin_token =
            wait_until("admin-token", Duration::from_secs(5), || read_trimmed(&first.join("admin-token")));
        // Joiners only once node 1 has bootstrapped: a join sent earlier is refused
        // ("still bootstrapping") and the joiner exits, which a loaded machine hit.
        cluster.wait_alive(1, Duration::from_secs(60));
        for index in 2..=count {
            let seed = cluster.nodes[&1].listen;
            let token = cluster.join_token.clone();
            cluster.add_node(index, Some((seed, token)));
        }
        cluster.wait_alive(count as usize, Duration::from_secs(90));
        cluster
    }

    /// The address of node `index`.
    pub fn ip(&self, index: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.subnet.0, self.subnet.1, index as u8))
    }

    /// Starts a new node with the next index, joining through node 1.
    pub fn add_node(&mut self, index: u32, join: Option<(SocketAddr, String)>) {
        let data_dir = self.dir.path().join(format!("n{index}"));
        let install_root = data_dir.join("root");
        std::fs::create_dir_all(&install_root).expect("create install root");
        let tags = self.options.tags.get(&index).cloned().unwrap_or_else(|| vec!["role=web".to_string()]);
        let node = TestNode {
            index,
            data_dir,
            install_root,
            listen: SocketAddr::new(self.ip(index), QUIC_PORT),
            api: SocketAddr::new(self.ip(index), API_PORT),
            child: None,
            log: self.dir.path().join(format!("n{index}.log")),
            tags,
        };
        self.nodes.insert(index, node);
        self.spawn(index, join);
    }

    fn spawn(&mut self, index: u32, join: Option<(SocketAddr, String)>) {
        let mut flags = self.options.node_flags.clone();
        flags.append(&mut self.once);
        let env = self.options.env.get(&index).cloned().unwrap_or_default();
        let program = self.options.programs.get(&index).cloned().unwrap_or_else(binary);
        let node = self.nodes.get_mut(&index).expect("node exists");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("log file");
        let mut command = Command::new(&program);
        command
            .arg("node")
            .arg("--data-dir")
            .arg(&node.data_dir)
            .arg("--listen")
            .arg(node.listen.to_string())
            .arg("--api")
            .arg(node.api.to_string())
            .arg("--install-root")
            .arg(&node.install_root)
            .args(flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .envs(env);
        for tag in &node.tags {
            command.arg("--tag").arg(tag);
        }
        if let Some((seed, token)) = join {
            command.arg("--join").arg(seed.to_string()).arg("--token").arg(token);
        }
        node.child =
            Some(command.spawn().unwrap_or_else(|error| panic!("cannot start {}: {error}", program.display())));
    }

    /// `kill -9` node `index`.
    pub fn kill9(&mut self, index: u32) {
        let node = self.nodes.get_mut(&index).expect("node exists");
        if let Some(mut child) = node.child.take() {
            // The process may have exited already; either way it is reaped below.
            let _ = child.kill();
            // Reaps the process; an error means there was nothing left to reap.
            let _ = child.wait();
        }
    }

    /// Makes node `index` run `program` from its next start (`None`: the binary under
    /// test), as an operator replacing the binary on one host does.
    pub fn set_program(&mut self, index: u32, program: Option<PathBuf>) {
        match program {
            Some(program) => self.options.programs.insert(index, program),
            None => self.options.programs.remove(&index),
        };
    }

    /// Restarts node `index` from its data directory (no --join).
    pub fn restart(&mut self, index: u32) {
        self.restart_with(index, &[]);
    }

    /// `kill -9` node `index` and start it again with `extra` flags, for this start only.
    pub fn restart_with(&mut self, index: u32, extra: &[&str]) {
        self.kill9(index);
        self.once = extra.iter().map(ToString::to_string).collect();
        self.spawn(index, None);
    }

    /// Indices of nodes whose process runs.
    pub fn live_indices(&self) -> Vec<u32> {
        self.nodes.values().filter(|node| node.child.is_some()).map(|node| node.index).collect()
    }

    /// The node index whose QUIC address is `address`.
    pub fn index_of_address(&self, address: &str) -> Option<u32> {
        self.nodes.values().find(|node| node.listen.to_string() == address).map(|node| node.index)
    }

    /// Tail of every node's log, for failure output.
    pub fn logs(&self) -> String {
        self.nodes.values().map(|node| log_tail(node.index, &node.log, 30)).collect()
    }

    /// The process id of node `index` while its process runs (benchmarks read
    /// `/proc/<pid>` for memory and CPU).
    pub fn pid(&self, index: u32) -> Option<u32> {
        self.nodes.get(&index)?.child.as_ref().map(Child::id)
    }

    /// The base URL of node `index`'s API, e.g. `https://127.9.9.1:7480`: `http://` when
    /// the nodes run with `--api-plaintext`, or when the node wrote no DIR/ca.pem (a
    /// release before the HTTPS API; a current node writes it before its API listens).
    pub fn api_url(&self, index: u32) -> String {
        let plaintext =
            self.options.node_flags.iter().any(|flag| flag == "--api-plaintext") || !self.ca_bundle(index).exists();
        let scheme = if plaintext { "http" } else { "https" };
        format!("{scheme}://{}", self.nodes[&index].api)
    }

    /// Node `index`'s DIR/ca.pem: the CA its API certificate chains to (the CLI's
    /// `--ca-bundle`).
    pub fn ca_bundle(&self, index: u32) -> PathBuf {
        self.nodes[&index].data_dir.join("ca.pem")
    }

    /// Everything node `index` has logged so far (stdout and stderr).
    pub fn log(&self, index: u32) -> String {
        std::fs::read_to_string(&self.nodes[&index].log).unwrap_or_default()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for index in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.kill9(index);
        }
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|text| text.trim().to_string()).filter(|text| !text.is_empty())
}

/// The last `lines` lines of node `index`'s log at `path`, under a header naming it.
pub fn log_tail(index: u32, path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.reverse();
    let mut out = format!("--- node {index} ({}) ---\n", path.display());
    for line in tail {
        out.push_str(line);
        out.push('\n');
    }
    out
}
