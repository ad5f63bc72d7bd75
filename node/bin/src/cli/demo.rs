//! `fleetmesh demo`: a local cluster on loopback, as child processes of this one, then a
//! rolling deployment of the bundled sample application with live progress.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fleetmesh_model::{GetClusterOutput, NodeHealth, NodeRole};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::client::ApiClient;
use super::DemoArgs;

/// Most nodes the demo starts (each is a process with its own ports).
const DEMO_NODES_MAX: u32 = 50;

/// A node process of the demo.
struct DemoNode {
    id: u32,
    api: SocketAddr,
    child: Child,
}

/// The demo cluster; dropping it stops every node.
pub(crate) struct DemoCluster {
    pub(crate) dir: PathBuf,
    nodes: Vec<DemoNode>,
    pub(crate) client: ApiClient,
}

fn free_addr() -> anyhow::Result<(SocketAddr, SocketAddr)> {
    // Ask the OS for free ports; the tiny race with other processes is acceptable for a demo.
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    let tcp = TcpListener::bind("127.0.0.1:0")?;
    Ok((udp.local_addr()?, tcp.local_addr()?))
}

fn spawn_node(
    dir: &Path,
    id: u32,
    listen: SocketAddr,
    api: SocketAddr,
    join: Option<(SocketAddr, &str)>,
) -> anyhow::Result<Child> {
    let data = dir.join(format!("n{id}"));
    let root = data.join("root");
    std::fs::create_dir_all(&root)?;
    let log = File::create(dir.join(format!("n{id}.log")))?;
    let mut command = Command::new(std::env::current_exe().context("cannot find the fleetmesh executable")?);
    command
        .arg("node")
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--api")
        .arg(api.to_string())
        .arg("--install-root")
        .arg(&root)
        .args(["--tag", "role=web", "--tag", &format!("demo-node={id}")])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Own process group: Ctrl-C reaches the demo, which stops the nodes in order.
        .process_group(0);
    if let Some((seed, token)) = join {
        command.arg("--join").arg(seed.to_string()).arg("--token").arg(token);
    }
    command.spawn().with_context(|| format!("cannot start node {id}"))
}

fn wait_for_file(path: &Path, timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return Ok(text.trim().to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{} did not appear within {timeout:?}", path.display())
}

impl DemoCluster {
    /// Starts `count` nodes under `dir` and waits until they form one cluster.
    pub(crate) fn start(dir: PathBuf, count: u32) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let (listen, api) = free_addr()?;
        let first = spawn_node(&dir, 1, listen, api, None)?;
        let mut nodes = vec![DemoNode { id: 1, api, child: first }];
        let join_token = wait_for_file(&dir.join("n1/join-token"), Duration::from_secs(30))?;
        let admin_token = wait_for_file(&dir.join("n1/admin-token"), Duration::from_secs(5))?;
        let ca_bundle = dir.join("n1/ca.pem");
        wait_for_file(&ca_bundle, Duration::from_secs(5))?;
        let client = ApiClient::new(Some(&format!("https://{api}")), Some(&admin_token), Some(&ca_bundle))?;
        let mut cluster = Self { dir, nodes: Vec::new(), client };
        cluster.nodes.append(&mut nodes);
        // One join at a time, so that the cluster gives node `id` the id `id`, matching its
        // `demo-node` tag and its log's name.
        for id in 2..=count {
            let (node_listen, node_api) = free_addr()?;
            let child = spawn_node(&cluster.dir, id, node_listen, node_api, Some((listen, &join_token)))?;
            cluster.nodes.push(DemoNode { id, api: node_api, child });
            cluster.wait_members(id as usize, Duration::from_secs(30))?;
        }
        cluster.wait_formed(count as usize, Duration::from_secs(90))?;
        Ok(cluster)
    }

    /// Waits until the cluster lists `count` members.
    fn wait_members(&mut self, count: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.check_running()?;
            let members = self.client.get_as::<GetClusterOutput>("/v1/cluster").ok().map(|view| view.nodes.len());
            if members.is_some_and(|members| members >= count) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("node {count} did not join within {timeout:?}; see {}", self.dir.join(format!("n{count}.log")).display())
    }

    /// Fails when a node process has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            if let Ok(Some(status)) = node.child.try_wait() {
                bail!(
                    "node {} exited ({status}); see {}",
                    node.id,
                    self.dir.join(format!("n{}.log", node.id)).display()
                );
            }
        }
        Ok(())
    }

    fn wait_formed(&mut self, count: usize, timeout: Duration) -> anyhow::Result<()> {
        let voters_wanted = count.min(3);
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            self.check_running()?;
            if let Ok(view) = self.client.get_as::<GetClusterOutput>("/v1/cluster") {
                let alive = view.nodes.iter().filter(|node| node.health == NodeHealth::Alive).count();
                let voters = view.nodes.iter().filter(|node| node.role == NodeRole::Voter).count();
                let line = format!(
                    "waiting for the cluster to form: {alive}/{count} nodes alive, {voters}/{voters_wanted} voters"
                );
                if line != last {
                    eprintln!("{line}");
                    last = line;
                }
                if alive == count && voters == voters_wanted && view.leader.is_some() {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("the cluster did not form within {timeout:?}; node logs are in {}", self.dir.display())
    }

    /// The cluster view.
    pub(crate) fn status(&self) -> anyhow::Result<GetClusterOutput> {
        Ok(self.client.get_as("/v1/cluster")?)
    }

    /// API address of node `id`.
    pub(crate) fn api_of(&self, id: u32) -> Option<SocketAddr> {
        self.nodes.iter().find(|node| node.id == id).map(|node| node.api)
    }

    /// Stops every node: SIGTERM, then SIGKILL after 5 s.
    pub(crate) fn stop(&mut self) {
        for node in &self.nodes {
            // A node that already exited cannot be signalled; the wait below covers it.
            let _ = kill(Pid::from_raw(node.child.id() as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for node in &mut self.nodes {
            while Instant::now() < deadline {
                if matches!(node.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Best effort at teardown: a child that already exited refuses the kill.
            let _ = node.child.kill();
            // Only reaps the child; there is nothing to do if it was reaped already.
            let _ = node.child.wait();
        }
        self.nodes.clear();
    }
}

impl Drop for DemoCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(super) fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > DEMO_NODES_MAX {
        bail!("--nodes must be 1 to {DEMO_NODES_MAX}, got {}", args.nodes);
    }
    let dir = match args.dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("fleetmesh-demo-{}", std::process::id())),
    };
    println!("starting {} nodes on 127.0.0.1 (data, logs and install roots in {})", args.nodes, dir.display());
    let mut cluster = DemoCluster::start(dir.clone(), args.nodes)?;
    println!("\n{}", super::cluster::render_status(&cluster.status()?));
    let outcome = super::demo_deploy::run(&cluster).and_then(|inner| inner);
    let api = cluster.api_of(1).map(|api| api.to_string()).unwrap_or_default();
    if args.once {
        cluster.stop();
        println!(
            "\nstopped the {} nodes (--once); their data and logs are in {} (remove it with `rm -rf {}`)",
            args.nodes,
            dir.display(),
            dir.display()
        );
        return outcome;
    }
    println!(
        "\nThe cluster keeps running. In another terminal:\n  export FLEETMESH_API=https://{api} FLEETMESH_CA_BUNDLE={}/n1/ca.pem FLEETMESH_TOKEN=$(cat {}/n1/admin-token)\n  fleetmesh cluster status\n  fleetmesh deploy list-deployments\nNode logs: {}/n*.log",
        dir.display(),
        dir.display(),
        dir.display()
    );
    println!("Press Ctrl-C to stop the cluster.");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match terminate.as_mut() { Some(signal) => { signal.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    });
    println!("\nstopping {} nodes", args.nodes);
    cluster.stop();
    println!("their data and logs are in {} (remove it with `rm -rf {}`)", dir.display(), dir.display());
    outcome
}
