//! Raw quinn along a chain of `--nodes` processes: the second baseline of the cluster
//! figures, with as many processes as the cluster has nodes.
//!
//! At 5 nodes the swarm runs five processes on this machine's cores, each sending and
//! receiving at once, and pays for their sharing: context switches, and caches that
//! another process has just filled. One raw stream between two endpoints of one
//! process pays none of that. Here each of `--nodes` processes (this binary again, with
//! [`PEER_FLAG`]) binds an endpoint exactly as a node binds its own, and process `i`
//! sends the revision's size to process `i + 1` over one stream: `--nodes − 1` streams
//! at once, the middle processes sending and receiving as swarm nodes do, and as many
//! bytes delivered as the swarm delivers. The CPU time is every process's, from the
//! go (given once every process has bound its endpoint) until each is done.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use fleetmesh_transport::pki::{CaAuthority, ClusterCa, NodeKey, TlsIdentity};
use fleetmesh_transport::{quic, tls, NodeId};

use serde_json::json;

use crate::alone::Alone;
use crate::raw::{stream_in, stream_out, CpuMark, RawRun};
use crate::{Swarm, MIB};

/// The first argument that makes `bench_swarm` one process of the chain:
/// `--raw-chain-peer DIR INDEX NODES BYTES`.
pub(crate) const PEER_FLAG: &str = "--raw-chain-peer";

/// Chain runs per bench; the figures are those of the median run by time.
const CHAIN_RUNS: usize = 3;

/// How long a process of the chain waits for the others to be ready, or for its go.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest a process of the chain spends on its transfers (1 GiB takes seconds).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs the chain [`CHAIN_RUNS`] times and returns the median run by time, with the
/// CPU time of all its processes; the bytes delivered are `(nodes − 1) × bytes`.
pub(crate) fn measure(nodes: u32, bytes: u64) -> anyhow::Result<RawRun> {
    let mut runs = Vec::with_capacity(CHAIN_RUNS);
    for _ in 0..CHAIN_RUNS {
        let run = run_once(nodes, bytes)?;
        let delivered_mib = (bytes * u64::from(nodes - 1)) as f64 / MIB;
        eprintln!(
            "raw quinn chain of {nodes} processes: {delivered_mib:.0} MiB delivered in {:.2} s = {:.0} MiB/s ({:.2} CPU-s, {:.2} in user space)",
            run.elapsed.as_secs_f64(),
            delivered_mib / run.elapsed.as_secs_f64(),
            run.cpu.as_secs_f64(),
            run.user.as_secs_f64()
        );
        runs.push(run);
    }
    runs.sort();
    Ok(runs[CHAIN_RUNS / 2])
}

/// The chain's processes; dropped early (on an error), it kills those still running.
struct Peers(Vec<Child>);

impl Drop for Peers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // Already exited is fine.
            let _ = child.kill();
            // Reaped here so that none is left behind; its status does not matter now.
            let _ = child.wait();
        }
    }
}

fn run_once(nodes: u32, bytes: u64) -> anyhow::Result<RawRun> {
    let dir = tempfile::Builder::new().prefix("bench-chain-").tempdir()?;
    let ca = ClusterCa::generate("bench-chain")?;
    std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem)?;
    for index in 1..=nodes {
        let key = NodeKey::generate()?;
        let cert = ca.sign_node(NodeId(u64::from(index)), &key.public_key)?;
        std::fs::write(dir.path().join(format!("{index}.cert")), cert)?;
        std::fs::write(dir.path().join(format!("{index}.key")), &key.key_pem)?;
    }
    let exe = std::env::current_exe()?;
    let mut peers = Peers(Vec::with_capacity(nodes as usize));
    for index in 1..=nodes {
        let child = Command::new(&exe)
            .arg(PEER_FLAG)
            .arg(dir.path())
            .args([index.to_string(), nodes.to_string(), bytes.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start a chain process")?;
        peers.0.push(child);
    }
    let ready = |index: u32| dir.path().join(format!("{index}.port")).exists();
    wait_until(|| (1..=nodes).all(ready)).context("the chain's processes did not get ready")?;
    std::fs::write(dir.path().join("go"), b"")?;
    let (mut cpu, mut user, mut elapsed) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    // Bounded by the chain's processes, each bounded by TRANSFER_TIMEOUT; on an error
    // `peers` kills those still running.
    for child in &mut peers.0 {
        let mut text = String::new();
        child.stdout.take().context("a chain process's output")?.read_to_string(&mut text)?;
        let status = child.wait()?;
        anyhow::ensure!(status.success(), "a chain process failed: {status}");
        let figures: Vec<f64> = text.split_whitespace().filter_map(|word| word.parse().ok()).collect();
        let [peer_cpu, peer_user, peer_elapsed] = figures[..] else {
            anyhow::bail!("a chain process printed {text:?}, not its CPU, user CPU and wall seconds");
        };
        cpu += Duration::from_secs_f64(peer_cpu);
        user += Duration::from_secs_f64(peer_user);
        elapsed = elapsed.max(Duration::from_secs_f64(peer_elapsed));
    }
    Ok(RawRun { elapsed, cpu, user })
}

/// Polls `done` every 5 ms until it holds, up to [`READY_TIMEOUT`].
fn wait_until(mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    // Bounded by READY_TIMEOUT.
    while !done() {
        anyhow::ensure!(start.elapsed() < READY_TIMEOUT, "timed out after {READY_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// One process of the chain (`args`: DIR INDEX NODES BYTES, after [`PEER_FLAG`]): binds,
/// says its port, waits for the go, then receives from `INDEX − 1` and sends to
/// `INDEX + 1` at once (whichever exist), and prints its CPU, user CPU and wall seconds.
pub(crate) fn peer_main(args: &[String]) -> anyhow::Result<()> {
    let [dir, index, nodes, bytes] = args else {
        anyhow::bail!("{PEER_FLAG} needs DIR INDEX NODES BYTES");
    };
    let dir = PathBuf::from(dir);
    let (index, nodes, bytes): (u32, u32, u64) = (index.parse()?, nodes.parse()?, bytes.parse()?);
    let read = |name: String| std::fs::read_to_string(dir.join(&name)).with_context(|| name);
    let identity = TlsIdentity::from_pem(
        NodeId(u64::from(index)),
        &read("ca.pem".into())?,
        &read(format!("{index}.cert"))?,
        &read(format!("{index}.key"))?,
    )?;
    // As a node's runtime: one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut endpoint = quic::server_endpoint(tls::server_config(&identity)?, "127.0.0.1:0".parse()?)?;
        endpoint.set_default_client_config(tls::client_config(&identity)?);
        write_port(&dir, index, endpoint.local_addr()?.port())?;
        wait_until(|| dir.join("go").exists())?;
        let source = Bytes::from(vec![0x5au8; 1 << 20]);
        let mark = CpuMark::now();
        let receive = async {
            if index == 1 {
                return anyhow::Ok(bytes);
            }
            stream_in(endpoint.clone()).await
        };
        let send = async {
            if index == nodes {
                return anyhow::Ok(bytes);
            }
            let port: u16 = read(format!("{}.port", index + 1))?.trim().parse()?;
            let next = NodeId(u64::from(index + 1));
            let connection = endpoint.connect(([127, 0, 0, 1], port).into(), &next.server_name())?.await?;
            let acked = stream_out(&connection, bytes, &source).await?;
            connection.close(0u32.into(), b"done");
            Ok(acked)
        };
        let (received, acked) = tokio::time::timeout(TRANSFER_TIMEOUT, async { tokio::try_join!(receive, send) })
            .await
            .context("the chain's transfer timed out")??;
        let run = mark.run();
        anyhow::ensure!(received == bytes && acked == bytes, "raw quinn lost bytes in the chain");
        println!("{} {} {}", run.cpu.as_secs_f64(), run.user.as_secs_f64(), run.elapsed.as_secs_f64());
        endpoint.wait_idle().await;
        Ok(())
    })
}

/// Writes `port` to `DIR/INDEX.port` whole (a temporary file renamed into place).
fn write_port(dir: &Path, index: u32, port: u16) -> anyhow::Result<()> {
    let temporary = dir.join(format!("{index}.port.tmp"));
    std::fs::write(&temporary, port.to_string())?;
    std::fs::rename(&temporary, dir.join(format!("{index}.port")))?;
    Ok(())
}

/// Prints and returns the cluster's figures against the chain: its CPU per GiB
/// delivered plus BLAKE3 and the write (the bound as for one pair, with the chain in
/// place of one raw stream), in all and in user space, and the delivered rates.
pub(crate) fn report(chain: RawRun, alone: &Alone, swarm: &Swarm) -> serde_json::Value {
    let delivered_gib = (swarm.delivered as f64 / (1u64 << 30) as f64).max(f64::MIN_POSITIVE);
    let per_gib_delivered = |cpu: Duration| cpu.as_secs_f64() / delivered_gib;
    // BLAKE3 and the write were measured on the revision's size, once.
    let per_gib_once = |cpu: Duration| cpu.as_secs_f64() * (1u64 << 30) as f64 / swarm.size.max(1) as f64;
    let bound = per_gib_delivered(chain.cpu) + per_gib_once(alone.hash_cpu) + per_gib_once(alone.write_cpu);
    let user_bound = per_gib_delivered(chain.user) + per_gib_once(alone.hash_cpu);
    let cluster = per_gib_delivered(swarm.all_cpu);
    let cluster_user = per_gib_delivered(swarm.all_user_cpu);
    let chain_rate = swarm.delivered as f64 / MIB / chain.elapsed.as_secs_f64();
    let cluster_rate = swarm.delivered as f64 / MIB / swarm.last_node.as_secs_f64();
    eprintln!(
        "against the raw quinn chain ({:.2} CPU-s per GiB delivered, {chain_rate:.0} MiB/s): bound {bound:.2}; \
         cluster / bound {:.2}x; user space {:.2}x; delivered rate / the chain's {:.2}x",
        per_gib_delivered(chain.cpu),
        cluster / bound,
        cluster_user / user_bound,
        cluster_rate / chain_rate,
    );
    json!({
        "chainCpuSecsPerGibDelivered": per_gib_delivered(chain.cpu),
        "chainUserCpuSecsPerGibDelivered": per_gib_delivered(chain.user),
        "chainMibPerSecDelivered": chain_rate,
        "chainBoundCpuSecsPerGib": bound,
        "clusterOverChainBound": cluster / bound,
        "clusterUserOverChainUserBound": cluster_user / user_bound,
        "deliveredRateOverChain": cluster_rate / chain_rate,
    })
}
