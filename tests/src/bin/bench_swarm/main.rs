//! `bench_swarm`: the figures of the "Revisions and the swarm" section of
//! `docs/benchmarks.md`, all measured in one run on one file.
//!
//! 1. Writes a seeded random file of `--size-mib` MiB (default 1024) into a bundle.
//! 2. Push pipeline: FastCDC alone, chunk + BLAKE3 on one thread, and the two-thread
//!    pipeline a push runs, on that file; then `b3sum --num-threads 1` on it.
//! 3. Raw quinn: the same number of bytes over one stream between two endpoints in this
//!    process on loopback, bound and configured exactly as a node binds its endpoint
//!    (TLS, transport parameters, socket buffers); the bytes come from memory and are
//!    dropped on arrival. Three runs; the median by time is the baseline. The sender
//!    repeats one 1 MiB block, which stays in the CPU's caches; three more runs,
//!    alternated with those, send the 64 MiB sample of the file instead (distinct
//!    bytes, as a node sends what it has just read), and their median is reported
//!    beside the baseline. Then raw quinn along a chain of `--nodes` processes, each
//!    bound as a node, process `i` sending the file's size to `i + 1` (see
//!    [`chain`]): what the cluster's process count costs the transport alone.
//! 4. The work a receiver cannot avoid besides the transport, each alone on the same
//!    number of bytes: BLAKE3 on one thread in chunk-sized slices (as the receiver
//!    verifies), and writing the bytes to a file in 1 MiB writes (no fsync, as the
//!    store writes), right after writing and deleting as many (see
//!    [`warm_page_frames`]). With raw quinn's CPU time they make the "bound" the
//!    swarm's CPU time (seed + receiver) is compared with, per GiB. (It runs before
//!    step 3.)
//! 5. The swarm: a `--nodes`-node cluster (default 2) of real `fleetmesh` processes;
//!    the file is pushed to node 1 and every other node prefetches it. It times node
//!    2's fetch, prints the ratio to the raw quinn rate, and node 2's peak RSS while
//!    receiving (VmHWM) minus its idle RSS before the fetch. Right before the fetch it
//!    writes and deletes as many bytes as the receivers will store, as in step 4.
//!    For the whole cluster, until the last node holds the revision: the CPU time of
//!    every node per GiB delivered (the revision times the receivers), against the same
//!    bound, and the bytes the nodes served over the bytes delivered (1 when no piece
//!    crosses the wire twice). With `--nodes 2` the cluster is the seed and the receiver.
//!    The same against the chain's bound (the chain's CPU per GiB delivered plus
//!    BLAKE3 and the write).
//!
//! It also records whether the host hands free memory back to a hypervisor while it
//! runs ([`alone::host_memory`]), which changes every figure that writes.
//!
//! Run: `cargo build --release -p fleetmesh -p fleetmesh-tests --bin bench_swarm &&
//! target/release/bench_swarm [--size-mib N] [--nodes N] [--dir DIR]`.

mod alone;
mod chain;
mod raw;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use fleetmesh_model::GetRevisionDistributionOutput;
use fleetmesh_tests::{proc_status_kib, process_cpu, process_cpu_split, write_random_file, Options, TestCluster};
use serde_json::json;

use crate::alone::{host_memory, sample, warm_page_frames, Alone};

const MIB: f64 = 1024.0 * 1024.0;

struct Args {
    size_mib: u64,
    nodes: u32,
    dir: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args { size_mib: 1024, nodes: 2, dir: None };
    let mut words = std::env::args().skip(1);
    // Bounded by the argument list.
    while let Some(word) = words.next() {
        let mut value = || words.next().with_context(|| format!("{word} needs a value"));
        match word.as_str() {
            "--size-mib" => args.size_mib = value()?.parse().context("--size-mib")?,
            "--nodes" => args.nodes = value()?.parse().context("--nodes")?,
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            other => anyhow::bail!("unknown argument {other:?} (expected --size-mib N, --nodes N, --dir DIR)"),
        }
    }
    anyhow::ensure!(args.nodes >= 2, "--nodes must be at least 2 (a seed and a receiver)");
    Ok(args)
}

/// User and system CPU time of the nodes `indices` so far, each summed (a node not
/// running counts nothing).
fn cluster_cpu(cluster: &TestCluster, indices: &[u32]) -> (Duration, Duration) {
    indices
        .iter()
        .filter_map(|index| cluster.pid(*index))
        .filter_map(process_cpu_split)
        .fold((Duration::ZERO, Duration::ZERO), |(user, system), (u, s)| (user + u, system + s))
}

/// CPU time (all, user space) and bytes served of the nodes `indices` since `before`,
/// a [`cluster_cpu`] and a [`cluster_served`] taken then.
fn cluster_since(
    cluster: &TestCluster,
    indices: &[u32],
    ((user_before, system_before), served_before): ((Duration, Duration), u64),
) -> (Duration, Duration, u64) {
    let (user, system) = cluster_cpu(cluster, indices);
    let user = user.saturating_sub(user_before);
    let served = cluster_served(cluster, indices).saturating_sub(served_before);
    (user + system.saturating_sub(system_before), user, served)
}

/// Bytes the nodes `indices` served to peers so far, by their own counters.
fn cluster_served(cluster: &TestCluster, indices: &[u32]) -> u64 {
    indices.iter().filter_map(|index| cluster.metric(*index, "fleetmesh_swarm_bytes_served_total")).sum()
}

/// Wall time of `b3sum --num-threads 1 file`, if b3sum is installed.
fn b3sum(path: &Path) -> Option<Duration> {
    let start = Instant::now();
    let output = Command::new("b3sum").arg("--num-threads").arg("1").arg(path).output().ok()?;
    output.status.success().then(|| start.elapsed())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> anyhow::Result<()> {
    let words: Vec<String> = std::env::args().skip(1).collect();
    if words.first().map(String::as_str) == Some(chain::PEER_FLAG) {
        return chain::peer_main(&words[1..]);
    }
    let args = parse_args()?;
    let host = host_memory();
    let scratch = match &args.dir {
        Some(dir) => tempfile::Builder::new().prefix("bench-swarm-").tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix("bench-swarm-").tempdir()?,
    };
    let bytes = args.size_mib << 20;
    let bundle = scratch.path().join("bundle");
    std::fs::create_dir_all(&bundle)?;
    std::fs::write(bundle.join("appspec.yml"), "version: 0.0\nos: linux\n")?;
    let blob = bundle.join("blob.bin");
    write_random_file(&blob, bytes, 1);
    let mib = bytes as f64 / MIB;
    eprintln!("load average before: {}", load_average());

    let pipeline = fleetmesh_node::revision::bench_pipeline(&blob)?;
    let b3sum_mib_per_sec = b3sum(&blob).map(|elapsed| mib / elapsed.as_secs_f64());
    eprintln!(
        "pipeline: chunker {:.0} MiB/s, chunk+hash sequential {:.0}, pipelined {:.0} ({:.2}x the chunker); b3sum --num-threads 1: {}",
        pipeline.chunk_mib_per_sec,
        pipeline.chunk_hash_sequential_mib_per_sec,
        pipeline.chunk_hash_pipelined_mib_per_sec,
        pipeline.chunk_hash_pipelined_mib_per_sec / pipeline.chunk_mib_per_sec,
        b3sum_mib_per_sec.map_or("not installed".to_string(), |rate| format!("{rate:.0} MiB/s")),
    );

    let data = sample(&blob)?;
    let alone = Alone::measure(&data, scratch.path(), bytes)?;
    let baselines = raw::measure(bytes, &data)?;
    let raw_rate = mib / baselines.raw.elapsed.as_secs_f64();
    let chain = chain::measure(args.nodes, bytes)?;

    let swarm = measure_swarm(&args, &bundle, raw_rate, scratch.path(), &data)?;
    eprintln!("load average after: {}", load_average());
    let cpu = alone.report(baselines.raw, (baselines.cold, &baselines.cold_label), &swarm, mib);
    let against_chain = chain::report(chain, &alone, &swarm);
    let figures = json!({
        "fileBytes": bytes,
        "pipeline": pipeline,
        "pipelinedOverChunker": pipeline.chunk_hash_pipelined_mib_per_sec / pipeline.chunk_mib_per_sec,
        "b3sumOneThreadMibPerSec": b3sum_mib_per_sec,
        "rawQuinnMibPerSec": raw_rate,
        "rawQuinnCpuSecs": baselines.raw.cpu.as_secs_f64(),
        "rawQuinnRuns": baselines.runs.iter().map(|run| run.json(mib)).collect::<Vec<_>>(),
        "alone": alone.json(mib),
        "cpu": cpu,
        "pushSecs": swarm.push_elapsed.as_secs_f64(),
        "revisionBytes": swarm.size,
        "nodes": args.nodes,
        "swarmFetchSecs": swarm.fetch_wall.as_secs_f64(),
        "swarmMibPerSec": swarm.swarm_rate,
        "swarmOverRawQuinn": swarm.swarm_rate / raw_rate,
        "lastNodeSecs": swarm.last_node.as_secs_f64(),
        "deliveredBytes": swarm.delivered,
        "deliveredMibPerSec": swarm.delivered as f64 / MIB / swarm.last_node.as_secs_f64(),
        "servedBytes": swarm.served,
        "seedCpuSecs": swarm.seed_cpu.as_secs_f64(),
        "receiverCpuSecs": swarm.receiver_cpu.as_secs_f64(),
        "receiverIdleRssKib": swarm.idle_rss_kib,
        "receiverPeakRssKib": swarm.peak_rss_kib,
        "receiverPeakAboveIdleMib": swarm.peak_rss_kib.saturating_sub(swarm.idle_rss_kib) as f64 / 1024.0,
        "loadAverage": load_average(),
        "hostMemory": host,
        "againstChain": against_chain,
    });
    println!("{}", serde_json::to_string_pretty(&figures)?);
    // The nodes run until the figures are out (as the load average above saw them).
    drop(swarm.cluster);
    Ok(())
}

/// What the swarm part measured; `cluster` keeps the nodes running until the report
/// is printed.
struct Swarm {
    cluster: TestCluster,
    /// CPU time of every node from the fetch's start to the last node holding the revision.
    all_cpu: Duration,
    /// The user-space part of `all_cpu`.
    all_user_cpu: Duration,
    /// Bytes every node served to peers over the same span (the nodes' own counter).
    served: u64,
    /// The revision's bytes times the receivers: what the swarm had to move.
    delivered: u64,
    push_elapsed: Duration,
    size: u64,
    fetch_wall: Duration,
    swarm_rate: f64,
    last_node: Duration,
    seed_cpu: Duration,
    receiver_cpu: Duration,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
}

/// Step 5: pushes the bundle to node 1 of a fresh cluster, has every node prefetch it,
/// and times node 2's fetch (with CPU and memory of the seed and the receiver); right
/// before it, [`warm_page_frames`] writes in `scratch` with `data`.
fn measure_swarm(args: &Args, bundle: &Path, raw_rate: f64, scratch: &Path, data: &[u8]) -> anyhow::Result<Swarm> {
    let cluster = TestCluster::start(args.nodes, Options::default());
    cluster.ok(1, &["deploy", "create-application", "--application-name", "bench"]);
    let push_start = Instant::now();
    let revision = cluster.push(1, "bench", bundle);
    let push_elapsed = push_start.elapsed();
    let size = cluster
        .cli_json(1, &["deploy", "get-revision-distribution", "--revision", &revision, "--json"])
        .and_then(|answer| serde_json::from_value::<GetRevisionDistributionOutput>(answer).ok())
        .map(|answer| answer.size)
        .context("revision size")?;
    let receiver = cluster.pid(2).context("node 2 runs")?;
    let seed = cluster.pid(1).context("node 1 runs")?;
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss_kib = proc_status_kib(receiver, "VmRSS").unwrap_or(0);
    // Every receiver stores the revision.
    warm_page_frames(scratch, data, size.saturating_mul(u64::from(args.nodes - 1)))?;
    let (seed_cpu_before, receiver_cpu_before) =
        (process_cpu(seed).unwrap_or_default(), process_cpu(receiver).unwrap_or_default());
    let nodes: Vec<u32> = (1..=args.nodes).collect();
    let before = (cluster_cpu(&cluster, &nodes), cluster_served(&cluster, &nodes));
    eprintln!("load average before the fetch: {}", load_average());
    let fetch_start = Instant::now();
    cluster.prefetch_all(1, &revision);
    cluster.wait_store_bytes(2, size, Duration::from_secs(600));
    let fetch_wall = fetch_start.elapsed();
    let seed_cpu = process_cpu(seed).unwrap_or_default().saturating_sub(seed_cpu_before);
    let receiver_cpu = process_cpu(receiver).unwrap_or_default().saturating_sub(receiver_cpu_before);
    let peak_rss_kib = proc_status_kib(receiver, "VmHWM").unwrap_or(0);
    let mut last_node = fetch_wall;
    for index in 3..=args.nodes {
        cluster.wait_store_bytes(index, size, Duration::from_secs(600));
        last_node = fetch_start.elapsed();
    }
    let (all_cpu, all_user_cpu, served) = cluster_since(&cluster, &nodes, before);
    let delivered = size.saturating_mul(u64::from(args.nodes - 1));
    let swarm_rate = size as f64 / MIB / fetch_wall.as_secs_f64();
    eprintln!(
        "swarm: node 2 fetched {:.0} MiB in {:.2} s = {swarm_rate:.0} MiB/s ({:.2}x raw quinn); CPU-s seed {:.2}, receiver {:.2}",
        size as f64 / MIB,
        fetch_wall.as_secs_f64(),
        swarm_rate / raw_rate,
        seed_cpu.as_secs_f64(),
        receiver_cpu.as_secs_f64()
    );
    eprintln!(
        "receiver RSS: idle {} KiB, peak {} KiB, peak above idle {:.1} MiB",
        idle_rss_kib,
        peak_rss_kib,
        peak_rss_kib.saturating_sub(idle_rss_kib) as f64 / 1024.0
    );
    eprintln!(
        "cluster: {:.0} MiB delivered ({} receivers) in {:.2} s = {:.0} MiB/s; CPU-s of every node {:.2}; bytes served / delivered {:.3}",
        delivered as f64 / MIB,
        args.nodes - 1,
        last_node.as_secs_f64(),
        delivered as f64 / MIB / last_node.as_secs_f64(),
        all_cpu.as_secs_f64(),
        served as f64 / delivered.max(1) as f64,
    );
    Ok(Swarm {
        cluster,
        all_cpu,
        all_user_cpu,
        served,
        delivered,
        push_elapsed,
        size,
        fetch_wall,
        swarm_rate,
        last_node,
        seed_cpu,
        receiver_cpu,
        idle_rss_kib,
        peak_rss_kib,
    })
}
