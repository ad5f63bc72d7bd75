//! A harness for end-to-end tests: real `fleetmesh` processes on loopback.
//!
//! Each cluster gets its own loopback subnet `127.A.B.0/24` (A, B random per cluster),
//! one address per node and fixed ports, so tests running in parallel never fight
//! over ports. Every node logs to a file; when a test fails, the harness prints the
//! tail of every node's log.

pub mod compat;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// QUIC port of every test node (each has its own IP).
pub const QUIC_PORT: u16 = 7400;
/// API port of every test node.
pub const API_PORT: u16 = 7480;

/// The `fleetmesh` binary under test: `FLEETMESH_BIN`, else `target/release/fleetmesh`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLEETMESH_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release/fleetmesh")
}

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
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TestCluster").field("dir", &self.dir.path()).finish_non_exhaustive()
    }
}

/// Waits until `check` returns `Some`, polling every 100 ms.
///
/// # Panics
/// After `timeout`, naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
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
        let flags = self.options.node_flags.clone();
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

    /// Restarts node `index` from its data directory (no --join).
    pub fn restart(&mut self, index: u32) {
        self.kill9(index);
        self.spawn(index, None);
    }

    /// Runs the CLI against node `via`'s API with the admin token.
    pub fn cli(&self, via: u32, args: &[&str]) -> Output {
        Command::new(binary())
            .args(args)
            .env("FLEETMESH_API", format!("http://{}", self.nodes[&via].api))
            .env("FLEETMESH_TOKEN", &self.admin_token)
            .output()
            .expect("run fleetmesh")
    }

    /// Runs the CLI and parses its stdout as JSON, `None` if it failed.
    pub fn cli_json(&self, via: u32, args: &[&str]) -> Option<Value> {
        let output = self.cli(via, args);
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// `cluster status --json` through node `via`.
    pub fn status(&self, via: u32) -> Option<Value> {
        self.cli_json(via, &["cluster", "status", "--json"])
    }

    /// Waits until `count` nodes are alive (as node 1 or any live node reports).
    pub fn wait_alive(&self, count: usize, timeout: Duration) -> Value {
        wait_until(&format!("{count} alive nodes"), timeout, || {
            self.live_indices().into_iter().find_map(|via| {
                let status = self.status(via)?;
                let alive = status["nodes"].as_array()?.iter().filter(|node| node["health"] == "alive").count();
                (alive == count && !status["leader"].is_null()).then_some(status)
            })
        })
    }

    /// Indices of nodes whose process runs.
    pub fn live_indices(&self) -> Vec<u32> {
        self.nodes.values().filter(|node| node.child.is_some()).map(|node| node.index).collect()
    }

    /// The node index whose QUIC address is `address`.
    pub fn index_of_address(&self, address: &str) -> Option<u32> {
        self.nodes.values().find(|node| node.listen.to_string() == address).map(|node| node.index)
    }

    /// The index of the current leader as seen through node `via`.
    pub fn leader_index(&self, via: u32) -> Option<u32> {
        let status = self.status(via)?;
        let leader = status["leader"].as_u64()?;
        let node = status["nodes"].as_array()?.iter().find(|node| node["id"].as_u64() == Some(leader))?;
        self.index_of_address(node["address"].as_str()?)
    }

    /// Tail of every node's log, for failure output.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in self.nodes.values() {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out.push_str(&format!("--- node {} ({}) ---\n", node.index, node.log.display()));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
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

/// Writes a bundle: `(path, contents, mode)` triples under `dir`.
pub fn write_bundle(dir: &Path, files: &[(&str, &str, u32)]) {
    use std::os::unix::fs::PermissionsExt;
    for (path, contents, mode) in files {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::write(&target, contents).expect("write bundle file");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(*mode)).expect("chmod");
    }
}

impl TestCluster {
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

    /// Pushes a bundle and returns the revision id.
    pub fn push(&self, via: u32, application: &str, source: &Path) -> String {
        let out =
            self.ok(via, &["deploy", "push", "--application-name", application, "--source", &source.to_string_lossy()]);
        out.trim().lines().last().expect("revision id").trim().to_string()
    }

    /// Creates a deployment, waits for it to end, and returns `get-deployment --json`.
    pub fn deploy_and_wait(&self, via: u32, application: &str, group: &str, revision: &str, extra: &[&str]) -> Value {
        let mut args = vec![
            "deploy",
            "create-deployment",
            "--application-name",
            application,
            "--deployment-group-name",
            group,
            "--revision",
            revision,
            "--wait",
            "--json",
        ];
        args.extend_from_slice(extra);
        let output = self.cli(via, &args);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
            panic!("create-deployment --wait printed no JSON: {}", String::from_utf8_lossy(&output.stderr))
        })
    }

    /// `get-deployment --json` of a deployment.
    pub fn deployment(&self, via: u32, id: &str) -> Option<Value> {
        self.cli_json(via, &["deploy", "get-deployment", "--deployment-id", id, "--json"])
    }

    /// Waits until a deployment has ended; returns its `get-deployment --json`.
    pub fn wait_deployment(&self, id: &str, timeout: Duration) -> Value {
        wait_until(&format!("deployment {id} to end"), timeout, || {
            self.live_indices().into_iter().find_map(|via| {
                let info = self.deployment(via, id)?;
                matches!(info["deploymentInfo"]["status"].as_str(), Some("Succeeded" | "Failed" | "Stopped"))
                    .then_some(info)
            })
        })
    }

    /// The id node `index` was given (from `cluster status`).
    pub fn node_id(&self, index: u32) -> u64 {
        let address = self.nodes[&index].listen.to_string();
        let status = self.status(self.live_indices()[0]).expect("status");
        status["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|node| node["address"] == address.as_str())
            .and_then(|node| node["id"].as_u64())
            .expect("node id")
    }
}

impl TestCluster {
    /// The process id of node `index` while its process runs (benchmarks read
    /// `/proc/<pid>` for memory and CPU).
    pub fn pid(&self, index: u32) -> Option<u32> {
        self.nodes.get(&index)?.child.as_ref().map(Child::id)
    }

    /// The base URL of node `index`'s HTTP API, e.g. `http://127.9.9.1:7480`.
    pub fn api_url(&self, index: u32) -> String {
        format!("http://{}", self.nodes[&index].api)
    }
}

impl TestCluster {
    /// Everything node `index` has logged so far (stdout and stderr).
    pub fn log(&self, index: u32) -> String {
        std::fs::read_to_string(&self.nodes[&index].log).unwrap_or_default()
    }
}
/// An HTTP agent that returns error statuses as answers instead of errors.
fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

impl TestCluster {
    /// Waits until node 1 reports 3 voters, then returns a voter other than the leader:
    /// its index and its QUIC address.
    pub fn follower_voter(&self) -> (u32, String) {
        let status = wait_until("3 voters", Duration::from_secs(60), || {
            self.status(1).filter(|status| {
                status["nodes"]
                    .as_array()
                    .is_some_and(|nodes| nodes.iter().filter(|n| n["role"] == "voter").count() == 3)
            })
        });
        let victim = status["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|node| node["role"] == "voter" && node["id"] != status["leader"])
            .cloned()
            .expect("a non-leader voter");
        let address = victim["address"].as_str().expect("address").to_string();
        (self.index_of_address(&address).expect("index"), address)
    }

    /// Creates deployment group `group` of application `app` through node 1, with
    /// `args` after the names (tags, configuration, rollback flags).
    pub fn create_group(&self, group: &str, args: &[&str]) {
        let mut command =
            vec!["deploy", "create-deployment-group", "--application-name", "app", "--deployment-group-name", group];
        command.extend_from_slice(args);
        self.ok(1, &command);
    }

    /// Reads the value of metric `name` from node `index`'s `/metrics` (summed over its
    /// label sets); `None` when the node does not answer or has no such metric.
    pub fn metric(&self, index: u32, name: &str) -> Option<u64> {
        let url = format!("http://{}/metrics", self.nodes[&index].api);
        let mut response =
            http_agent().get(&url).header("Authorization", &format!("Bearer {}", self.admin_token)).call().ok()?;
        let text = response.body_mut().read_to_string().ok()?;
        parse_metric(&text, name)
    }

    /// POSTs a JSON body to node `via`'s API with the admin token; returns the status
    /// and the parsed body (`Null` if it was not JSON).
    pub fn api_post(&self, via: u32, path: &str, body: &Value) -> (u16, Value) {
        let url = format!("http://{}{path}", self.nodes[&via].api);
        let response = http_agent()
            .post(&url)
            .header("Authorization", &format!("Bearer {}", self.admin_token))
            .send_json(body)
            .unwrap_or_else(|error| panic!("POST {url}: {error}"));
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Asks every node to fetch `revision` (`deploy prefetch --all-nodes`, no wait).
    pub fn prefetch_all(&self, via: u32, revision: &str) {
        self.ok(via, &["deploy", "prefetch", "--revision", revision, "--all-nodes"]);
    }

    /// Waits until node `index`'s chunk store holds at least `bytes` (its
    /// `fleetmesh_chunk_store_bytes`), polling every 20 ms; returns the time it took.
    ///
    /// # Panics
    /// After `timeout`.
    pub fn wait_store_bytes(&self, index: u32, bytes: u64, timeout: Duration) -> Duration {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            let held = self.metric(index, "fleetmesh_chunk_store_bytes").unwrap_or(0);
            if held >= bytes {
                return start.elapsed();
            }
            assert!(Instant::now() < deadline, "node {index} holds {held} of {bytes} chunk bytes after {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `get-revision-distribution` lists every node in `indices` as
    /// complete for `revision`.
    pub fn wait_distributed(&self, revision: &str, indices: &[u32], timeout: Duration) {
        let ids: Vec<u64> = indices.iter().map(|index| self.node_id(*index)).collect();
        wait_until(&format!("revision {revision} complete on nodes {indices:?}"), timeout, || {
            let answer = self.cli_json(
                self.live_indices()[0],
                &["deploy", "get-revision-distribution", "--revision", revision, "--json"],
            )?;
            let nodes = answer["nodes"].as_array()?;
            ids.iter()
                .all(|id| nodes.iter().any(|node| node["id"].as_u64() == Some(*id) && node["complete"] == true))
                .then_some(())
        });
    }

    /// Checks every chunk in node `index`'s store against the hash it is stored under:
    /// chunk files (named by their hash) and pack records (`[hash 32][len u32 LE][bytes]`
    /// in `packs/*.pack`); returns (chunks, bytes).
    ///
    /// # Panics
    /// On the first chunk whose content does not hash to its name, or a torn pack.
    pub fn verify_chunk_store(&self, index: u32) -> (u64, u64) {
        let root = self.nodes[&index].data_dir.join("chunks");
        let (mut files, mut bytes) = (0, 0);
        for prefix in std::fs::read_dir(&root).expect("chunk store").flatten() {
            if !prefix.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            if prefix.file_name() == "packs" {
                let (chunks, length) = verify_packs(index, &prefix.path());
                files += chunks;
                bytes += length;
                continue;
            }
            for file in std::fs::read_dir(prefix.path()).expect("prefix dir").flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let content = std::fs::read(file.path()).expect("chunk file");
                assert_eq!(
                    blake3::hash(&content).to_hex().as_str(),
                    name,
                    "node {index}: chunk file {} does not hold the chunk it is named after",
                    file.path().display()
                );
                files += 1;
                bytes += content.len() as u64;
            }
        }
        (files, bytes)
    }
}

/// Verifies every record of every complete pack under `dir` (temp files skipped);
/// returns (records, bytes).
fn verify_packs(index: u32, dir: &Path) -> (u64, u64) {
    let (mut records, mut bytes) = (0, 0);
    for pack in std::fs::read_dir(dir).expect("packs dir").flatten() {
        let name = pack.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".pack") || name.starts_with('.') {
            continue;
        }
        let content = std::fs::read(pack.path()).expect("pack file");
        let mut offset = 0;
        // Bounded: each turn consumes a 36-byte header and its record.
        while offset < content.len() {
            assert!(offset + 36 <= content.len(), "node {index}: pack {name} ends in a torn header");
            let hash = hex_of(&content[offset..offset + 32]);
            let len = u32::from_le_bytes(content[offset + 32..offset + 36].try_into().expect("4 bytes")) as usize;
            let start = offset + 36;
            assert!(start + len <= content.len(), "node {index}: pack {name} ends in a torn record");
            assert_eq!(
                blake3::hash(&content[start..start + len]).to_hex().as_str(),
                hash,
                "node {index}: a record of pack {name} does not hold the chunk it is named after"
            );
            records += 1;
            bytes += len as u64;
            offset = start + len;
        }
    }
    (records, bytes)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The value of `name` in Prometheus text, summed over label sets.
pub fn parse_metric(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value: u64 = rest.rsplit(' ').next()?.trim().parse().ok()?;
        found = Some(found.unwrap_or(0) + value);
    }
    found
}

/// Writes `bytes` pseudo-random bytes to `path` from a ChaCha8 stream seeded with
/// `seed` (the same seed always gives the same file), 1 MiB at a time so memory stays
/// flat whatever the size.
pub fn write_random_file(path: &Path, bytes: u64, seed: u64) {
    use rand::{RngCore, SeedableRng};
    use std::io::Write;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create random file"));
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let take = left.min(block.len() as u64) as usize;
        rng.fill_bytes(&mut block[..take]);
        file.write_all(&block[..take]).expect("write random file");
        left -= take as u64;
    }
    file.flush().expect("flush random file");
}

/// BLAKE3 of a file, streamed.
pub fn hash_file(path: &Path) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut file = std::fs::File::open(path).unwrap_or_else(|error| panic!("open {}: {error}", path.display()));
    std::io::copy(&mut file, &mut hasher).expect("read file to hash");
    hasher.finalize().to_hex().to_string()
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|line| line.starts_with(field) && line[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// CPU time (user + system) a process has used so far.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux for every architecture this runs on.
    Some(Duration::from_millis(ticks * 10))
}
