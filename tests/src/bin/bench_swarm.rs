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
//!    beside the baseline.
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
//!
//! Run: `cargo build --release -p fleetmesh -p fleetmesh-tests --bin bench_swarm &&
//! target/release/bench_swarm [--size-mib N] [--nodes N] [--dir DIR]`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use fleetmesh_model::GetRevisionDistributionOutput;
use fleetmesh_tests::{proc_status_kib, process_cpu, process_cpu_split, write_random_file, Options, TestCluster};
use fleetmesh_transport::pki::{CaAuthority, ClusterCa, NodeKey, TlsIdentity};
use fleetmesh_transport::{quic, tls, NodeId};
use serde_json::json;

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

fn identity(ca: &ClusterCa, id: u64) -> anyhow::Result<TlsIdentity> {
    let key = NodeKey::generate()?;
    let cert = ca.sign_node(NodeId(id), &key.public_key)?;
    Ok(TlsIdentity::from_pem(NodeId(id), &ca.cert_pem, &cert, &key.key_pem)?)
}

/// Streams `bytes` over one QUIC stream between two endpoints of this process on
/// loopback; returns the wall time from the stream's first byte sent to its last byte
/// read, and the process CPU time it took, in all and in user space.
///
/// The sender sends `source` over and over, 1 MiB per write.
fn raw_quinn(bytes: u64, source: Bytes) -> anyhow::Result<RawRun> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let ca = ClusterCa::generate("bench")?;
        // Both endpoints exactly as a node binds its own (socket buffers included).
        let (first, second) = (identity(&ca, 1)?, identity(&ca, 2)?);
        let server = quic::server_endpoint(tls::server_config(&first)?, "127.0.0.1:0".parse()?)?;
        let address = server.local_addr()?;
        let mut client = quic::server_endpoint(tls::server_config(&second)?, "127.0.0.1:0".parse()?)?;
        client.set_default_client_config(tls::client_config(&second)?);
        let receiver = tokio::spawn(async move {
            let connection = server.accept().await.context("no connection")?.await?;
            let (mut send, mut recv) = connection.accept_bi().await?;
            let mut received = 0u64;
            // Bounded by the stream, which the sender finishes.
            while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
                received += chunk.bytes.len() as u64;
            }
            send.write_all(&received.to_le_bytes()).await?;
            send.finish()?;
            // The count is written; the sender closing the connection first is fine.
            let _ = send.stopped().await;
            anyhow::Ok(received)
        });
        let connection = client.connect(address, &NodeId(1).server_name())?.await?;
        let (user_before, system_before) = process_cpu_split(std::process::id()).unwrap_or_default();
        let start = Instant::now();
        let (mut send, mut recv) = connection.open_bi().await?;
        let mut left = bytes;
        let mut at = 0;
        // Bounded: each turn sends at least one byte of `left` (`source` is not empty).
        while left > 0 {
            if at == source.len() {
                at = 0;
            }
            let take = (left.min(1 << 20) as usize).min(source.len() - at);
            send.write_chunk(source.slice(at..at + take)).await?;
            at += take;
            left -= take as u64;
        }
        send.finish()?;
        let mut ack = [0u8; 8];
        recv.read_exact(&mut ack).await?;
        let elapsed = start.elapsed();
        let (user_after, system_after) = process_cpu_split(std::process::id()).unwrap_or_default();
        let user = user_after.saturating_sub(user_before);
        let cpu = user + system_after.saturating_sub(system_before);
        let received = receiver.await??;
        anyhow::ensure!(received == bytes && u64::from_le_bytes(ack) == bytes, "raw quinn lost bytes");
        connection.close(0u32.into(), b"done");
        client.wait_idle().await;
        Ok(RawRun { elapsed, cpu, user })
    })
}

/// One raw quinn transfer: wall time, CPU time, and the user-space part of it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RawRun {
    elapsed: Duration,
    cpu: Duration,
    user: Duration,
}

/// Raw quinn runs per bench; the figures are those of the median run by time. One run
/// swung between 2.5 and 4.4 CPU-s per GiB from bench to bench on this 2-core VM.
const RAW_QUINN_RUNS: usize = 3;

/// Bytes per BLAKE3 call in [`hash_alone`]: about the average chunk (the receiver hashes
/// chunk by chunk).
const HASH_SLICE_BYTES: usize = 64 << 10;

/// CPU time of this process (its other threads are idle) while `work` runs, and its wall time.
fn cpu_of(work: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<(Duration, Duration)> {
    let before = process_cpu(std::process::id()).unwrap_or_default();
    let start = Instant::now();
    work()?;
    let elapsed = start.elapsed();
    Ok((process_cpu(std::process::id()).unwrap_or_default().saturating_sub(before), elapsed))
}

/// The first MiBs of `blob` (up to 64), reused as the data of [`hash_alone`] and
/// [`write_alone`] so that reading the file is not in their figures.
fn sample(blob: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::new();
    std::fs::File::open(blob)?.take(64 << 20).read_to_end(&mut data)?;
    anyhow::ensure!(!data.is_empty(), "the bench file is empty");
    Ok(data)
}

/// BLAKE3 of `bytes` bytes on this thread, [`HASH_SLICE_BYTES`] at a time: (CPU, wall).
fn hash_alone(data: &[u8], bytes: u64) -> anyhow::Result<(Duration, Duration)> {
    cpu_of(|| {
        let mut left = bytes;
        let mut digest = [0u8; 32];
        // Bounded: each turn hashes at least one byte of `left`.
        while left > 0 {
            for slice in data.chunks(HASH_SLICE_BYTES) {
                let take = slice.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let hash = blake3::hash(&slice[..take]);
                digest.iter_mut().zip(hash.as_bytes()).for_each(|(byte, other)| *byte ^= other);
                left -= take as u64;
                if left == 0 {
                    break;
                }
            }
        }
        std::hint::black_box(digest);
        Ok(())
    })
}

/// Writes `bytes` bytes to a new file in `dir`, 1 MiB per `write`, no fsync (as the
/// store writes packs), then deletes it: (CPU, wall) of the writes.
fn write_alone(dir: &Path, data: &[u8], bytes: u64) -> anyhow::Result<(Duration, Duration)> {
    let path = dir.join("write-alone.bin");
    let figures = cpu_of(|| write_file(&path, data, bytes))?;
    std::fs::remove_file(&path)?;
    Ok(figures)
}

/// Writes and deletes `bytes` bytes in `dir`, unmeasured, right before a measured phase
/// that fills the page cache.
///
/// This VM hands memory that stayed free for a few seconds back to its host (the
/// `virtio_balloon` driver's free page reporting), and the guest's first touch of such a
/// page afterwards costs a fault in the host: `dd` of 1 GiB into a file took 5.1 s of
/// system CPU after 5 s idle and 0.2 s right after deleting another such file. The
/// bytes written here are freed back just before the phase, which then writes into
/// page frames the host still backs, as on a host in steady use. Without it the same
/// phase measured 0.2 to 9 CPU-s per GiB from run to run.
///
/// One pass is not always enough: `dd` of 4 GiB (what four receivers store) took 13.8,
/// then 3.1, then 1.1 s of system CPU in three passes in a row. Passes repeat until one
/// costs at most [`WARM_CPU_SECS_PER_GIB`], up to [`WARM_PASSES_MAX`].
fn warm_page_frames(dir: &Path, data: &[u8], bytes: u64) -> anyhow::Result<()> {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    let mut costs = Vec::with_capacity(WARM_PASSES_MAX);
    // Bounded: at most WARM_PASSES_MAX passes.
    for _ in 0..WARM_PASSES_MAX {
        let (cpu, _) = write_alone(dir, data, bytes)?;
        let per_gib = cpu.as_secs_f64() / gib.max(f64::MIN_POSITIVE);
        costs.push(format!("{per_gib:.2}"));
        if per_gib <= WARM_CPU_SECS_PER_GIB {
            break;
        }
    }
    eprintln!("warming {:.0} MiB of page frames: {} CPU-s/GiB per pass", bytes as f64 / MIB, costs.join(", "));
    Ok(())
}

/// A warming pass this cheap means the host backs the frames again (a warm write costs
/// 0.2-0.3 CPU-s per GiB here).
const WARM_CPU_SECS_PER_GIB: f64 = 0.5;

/// Most warming passes before a phase, however much each costs.
const WARM_PASSES_MAX: usize = 4;

/// Writes `bytes` bytes of `data` (repeated) to the new file `path`, 1 MiB per `write`.
fn write_file(path: &Path, data: &[u8], bytes: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create_new(path)?;
    let mut left = bytes;
    // Bounded: each turn writes at least one byte of `left`.
    while left > 0 {
        for block in data.chunks(1 << 20) {
            let take = block.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            file.write_all(&block[..take])?;
            left -= take as u64;
            if left == 0 {
                break;
            }
        }
    }
    Ok(())
}

/// Step 4's figures: the receiver's unavoidable work, each alone.
struct Alone {
    hash_cpu: Duration,
    hash_wall: Duration,
    write_cpu: Duration,
    write_wall: Duration,
}

impl Alone {
    fn measure(data: &[u8], dir: &Path, bytes: u64) -> anyhow::Result<Self> {
        let (hash_cpu, hash_wall) = hash_alone(data, bytes)?;
        warm_page_frames(dir, data, bytes)?;
        let (write_cpu, write_wall) = write_alone(dir, data, bytes)?;
        let alone = Self { hash_cpu, hash_wall, write_cpu, write_wall };
        let mib = bytes as f64 / MIB;
        eprintln!(
            "alone: BLAKE3 one thread {:.2} CPU-s ({:.0} MiB/s), write {:.2} CPU-s ({:.0} MiB/s)",
            hash_cpu.as_secs_f64(),
            mib / hash_wall.as_secs_f64(),
            write_cpu.as_secs_f64(),
            mib / write_wall.as_secs_f64()
        );
        Ok(alone)
    }

    fn json(&self, mib: f64) -> serde_json::Value {
        json!({
            "blake3CpuSecs": self.hash_cpu.as_secs_f64(),
            "blake3MibPerSec": mib / self.hash_wall.as_secs_f64(),
            "writeCpuSecs": self.write_cpu.as_secs_f64(),
            "writeMibPerSec": mib / self.write_wall.as_secs_f64(),
        })
    }

    /// Prints and returns CPU-s per GiB: the swarm's two ends against the "bound", raw
    /// quinn's two ends plus the hashing and writing a receiver must do anyway.
    fn report(
        &self,
        raw: RawRun,
        (cold_raw, cold_label): (RawRun, &str),
        swarm: &Swarm,
        mib: f64,
    ) -> serde_json::Value {
        let raw_cpu = raw.cpu;
        let per_gib = |cpu: Duration| cpu.as_secs_f64() * 1024.0 / mib;
        let bound = raw_cpu + self.hash_cpu + self.write_cpu;
        let swarm_cpu = swarm.seed_cpu + swarm.receiver_cpu;
        let ratio = swarm_cpu.as_secs_f64() / bound.as_secs_f64();
        eprintln!(
            "CPU-s/GiB: swarm {:.2} (seed {:.2} + receiver {:.2}); bound {:.2} (raw quinn {:.2} + BLAKE3 {:.2} + write {:.2}); swarm / bound {ratio:.2}x",
            per_gib(swarm_cpu),
            per_gib(swarm.seed_cpu),
            per_gib(swarm.receiver_cpu),
            per_gib(bound),
            per_gib(raw_cpu),
            per_gib(self.hash_cpu),
            per_gib(self.write_cpu),
        );
        // Every receiver's GiB costs one transfer, one hash and one write: the bound per
        // GiB delivered is the same as for one pair, whoever serves it.
        let delivered_gib = swarm.delivered as f64 / (1u64 << 30) as f64;
        let cluster_per_gib = swarm.all_cpu.as_secs_f64() / delivered_gib.max(f64::MIN_POSITIVE);
        let cluster_ratio = cluster_per_gib / per_gib(bound);
        // The same in user space only: this VM's host makes the kernel's first touch of a
        // page frame slow now and then (see `warm_page_frames`), which lands in system
        // time. BLAKE3 is all user time; writing to the page cache is almost all system.
        let cluster_user_per_gib = swarm.all_user_cpu.as_secs_f64() / delivered_gib.max(f64::MIN_POSITIVE);
        let user_bound = per_gib(raw.user + self.hash_cpu);
        eprintln!(
            "cluster CPU-s per GiB delivered: {cluster_per_gib:.2}; bound {:.2}; cluster / bound {cluster_ratio:.2}x; \
             user space alone: {cluster_user_per_gib:.2}, bound {user_bound:.2} (raw quinn {:.2} + BLAKE3 {:.2}), {:.2}x",
            per_gib(bound),
            per_gib(raw.user),
            per_gib(self.hash_cpu),
            cluster_user_per_gib / user_bound,
        );
        let cold_bound = per_gib(cold_raw.cpu + self.hash_cpu + self.write_cpu);
        eprintln!(
            "with raw quinn sending {cold_label} ({:.2} CPU-s/GiB, {:.0} MiB/s): bound {cold_bound:.2}; cluster / bound {:.2}x; swarm / that raw quinn's rate {:.2}x",
            per_gib(cold_raw.cpu),
            mib / cold_raw.elapsed.as_secs_f64(),
            cluster_per_gib / cold_bound,
            swarm.swarm_rate / (mib / cold_raw.elapsed.as_secs_f64()),
        );
        json!({
            "coldSourceRawQuinnCpuSecsPerGib": per_gib(cold_raw.cpu),
            "coldSourceRawQuinnMibPerSec": mib / cold_raw.elapsed.as_secs_f64(),
            "coldSourceBoundCpuSecsPerGib": cold_bound,
            "clusterOverColdSourceBound": cluster_per_gib / cold_bound,
            "clusterCpuSecsPerGibDelivered": cluster_per_gib,
            "clusterOverBound": cluster_ratio,
            "clusterUserCpuSecsPerGibDelivered": cluster_user_per_gib,
            "userBoundCpuSecsPerGib": user_bound,
            "clusterUserOverUserBound": cluster_user_per_gib / user_bound,
            "servedOverDelivered": swarm.served as f64 / swarm.delivered.max(1) as f64,
            "swarmCpuSecsPerGib": per_gib(swarm_cpu),
            "seedCpuSecsPerGib": per_gib(swarm.seed_cpu),
            "receiverCpuSecsPerGib": per_gib(swarm.receiver_cpu),
            "boundCpuSecsPerGib": per_gib(bound),
            "rawQuinnCpuSecsPerGib": per_gib(raw_cpu),
            "blake3CpuSecsPerGib": per_gib(self.hash_cpu),
            "writeCpuSecsPerGib": per_gib(self.write_cpu),
            "swarmOverBound": ratio,
        })
    }
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
    let args = parse_args()?;
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
    // The baseline sends one 1 MiB block again and again, which stays in the CPU's
    // caches; a node sends bytes it has just read, as the cold-source runs do (the 64 MiB
    // sample, larger than any cache here). Alternated run by run.
    let hot = Bytes::from(vec![0x5au8; 1 << 20]);
    let cold = Bytes::from(data.clone());
    let cold_label = format!("{:.0} MiB of distinct bytes", cold.len() as f64 / MIB);
    let mut raw_runs = Vec::with_capacity(RAW_QUINN_RUNS);
    let mut cold_runs = Vec::with_capacity(RAW_QUINN_RUNS);
    for _ in 0..RAW_QUINN_RUNS {
        for (source, runs, label) in
            [(&hot, &mut raw_runs, "one 1 MiB block"), (&cold, &mut cold_runs, cold_label.as_str())]
        {
            let run = raw_quinn(bytes, source.clone())?;
            eprintln!(
                "raw quinn, {label}: {:.0} MiB/s over one stream ({:.2} CPU-s, {:.2} in user space)",
                mib / run.elapsed.as_secs_f64(),
                run.cpu.as_secs_f64(),
                run.user.as_secs_f64()
            );
            runs.push(run);
        }
    }
    raw_runs.sort();
    cold_runs.sort();
    let raw = raw_runs[RAW_QUINN_RUNS / 2];
    let cold_raw = cold_runs[RAW_QUINN_RUNS / 2];
    let raw_rate = mib / raw.elapsed.as_secs_f64();

    let swarm = measure_swarm(&args, &bundle, raw_rate, scratch.path(), &data)?;
    eprintln!("load average after: {}", load_average());
    let cpu = alone.report(raw, (cold_raw, &cold_label), &swarm, mib);
    let figures = json!({
        "fileBytes": bytes,
        "pipeline": pipeline,
        "pipelinedOverChunker": pipeline.chunk_hash_pipelined_mib_per_sec / pipeline.chunk_mib_per_sec,
        "b3sumOneThreadMibPerSec": b3sum_mib_per_sec,
        "rawQuinnMibPerSec": raw_rate,
        "rawQuinnCpuSecs": raw.cpu.as_secs_f64(),
        "rawQuinnRuns": raw_runs
            .iter()
            .map(|run| {
                json!({
                    "mibPerSec": mib / run.elapsed.as_secs_f64(),
                    "cpuSecs": run.cpu.as_secs_f64(),
                    "userCpuSecs": run.user.as_secs_f64(),
                })
            })
            .collect::<Vec<_>>(),
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
    let cluster_cpu_before = cluster_cpu(&cluster, &nodes);
    let served_before = cluster_served(&cluster, &nodes);
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
    let (user_after, system_after) = cluster_cpu(&cluster, &nodes);
    let all_user_cpu = user_after.saturating_sub(cluster_cpu_before.0);
    let all_cpu = all_user_cpu + system_after.saturating_sub(cluster_cpu_before.1);
    let served = cluster_served(&cluster, &nodes).saturating_sub(served_before);
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
