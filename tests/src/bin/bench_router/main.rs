//! `bench_router`: the figures of the "Traffic router (issue 14)" section of
//! `docs/benchmarks.md`, through the router and straight to the target side by side,
//! all in one process on loopback.
//!
//! The router is the real proxy (`fleetmesh_node::router::serve_listener`, what a router
//! node runs after binding its listen port) serving a fixed one-target route; the
//! targets are two tiny servers in this process:
//!
//! - a **sink** that reads and discards a stream and, at its end, answers the byte count
//!   (8 bytes), so the sender knows every byte arrived;
//! - an **echo** of fixed-size requests: it reads `--request-bytes` bytes and writes as
//!   many back, until the client closes.
//!
//! The client, the servers and the router run on three runtimes of their own (one
//! worker thread each; the router `--threads`, default 2), as three processes would.
//! Each measure runs against the target directly and through the router:
//!
//! 1. bulk: one stream of `--size-mib` MiB (default 1024) into the sink; MiB/s;
//! 2. `--requests` (default 10,000) sequential round trips on new connections, and as
//!    many on one kept-alive connection; requests/s and p50/p99 per request, and the
//!    router's added p50/p99 (router percentile minus direct percentile);
//! 3. `--connections` (default 64) concurrent kept-alive connections sharing
//!    `--requests` round trips; requests/s.
//!
//! Beside each routed figure it prints the router threads' CPU time (s per GiB, µs per
//! request; 10 ms resolution, least of the rounds): unlike the rates, that cost barely
//! moves when other programs load the machine.
//!
//! All of it runs `--rounds` times (default 3), direct and routed alternating, and each
//! side keeps its best round (fastest bulk, most requests/s with that run's latencies):
//! on a shared machine a burst of someone else's load then hurts neither side alone.
//!
//! Run: `cargo build --release -p fleetmesh-tests --bin bench_router &&
//! target/release/bench_router [--size-mib N] [--requests N] [--request-bytes N]
//! [--connections N] [--threads N] [--rounds N]`. It prints a table and a one-line summary on stdout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fleetmesh_model::{RouteInfo, RouteTargetInfo};
use fleetmesh_state::model::routes::TrafficState;
use fleetmesh_state::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

mod servers;

use servers::{echo, sink};

const MIB: f64 = 1024.0 * 1024.0;

/// Bytes per write of the bulk sender and per read of the sink.
const BULK_BLOCK_BYTES: usize = 256 * 1024;

/// Most bytes a request may have: each echo connection holds one buffer of this size.
const REQUEST_BYTES_MAX: usize = 1 << 20;

/// Most concurrent connections of the parallel measure (each is a task and four sockets).
const CONNECTIONS_MAX: usize = 4096;

/// The goals issue 14 sets, printed beside the figures.
const GOAL_RATIO_MIN: f64 = 0.8;
const GOAL_ADDED_P50_MS_MAX: f64 = 0.2;

struct Args {
    size_mib: u64,
    requests: usize,
    request_bytes: usize,
    connections: usize,
    threads: usize,
    rounds: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args =
        Args { size_mib: 1024, requests: 10_000, request_bytes: 100, connections: 64, threads: 2, rounds: 3 };
    let mut words = std::env::args().skip(1);
    // Bounded by the argument list.
    while let Some(word) = words.next() {
        let mut value = || words.next().with_context(|| format!("{word} needs a value"));
        match word.as_str() {
            "--size-mib" => args.size_mib = value()?.parse().context("--size-mib")?,
            "--requests" => args.requests = value()?.parse().context("--requests")?,
            "--request-bytes" => args.request_bytes = value()?.parse().context("--request-bytes")?,
            "--connections" => args.connections = value()?.parse().context("--connections")?,
            "--threads" => args.threads = value()?.parse().context("--threads")?,
            "--rounds" => args.rounds = value()?.parse().context("--rounds")?,
            other => anyhow::bail!(
                "unknown argument {other:?} (expected --size-mib N, --requests N, --request-bytes N, \
                 --connections N, --threads N, --rounds N)"
            ),
        }
    }
    anyhow::ensure!(args.size_mib >= 1, "--size-mib must be at least 1");
    anyhow::ensure!(args.requests >= 100, "--requests must be at least 100 (for a p99)");
    anyhow::ensure!(
        (1..=REQUEST_BYTES_MAX).contains(&args.request_bytes),
        "--request-bytes must be 1..={REQUEST_BYTES_MAX}"
    );
    anyhow::ensure!((1..=CONNECTIONS_MAX).contains(&args.connections), "--connections must be 1..={CONNECTIONS_MAX}");
    anyhow::ensure!(args.threads >= 1, "--threads must be at least 1");
    anyhow::ensure!((1..=100).contains(&args.rounds), "--rounds must be 1..=100");
    Ok(args)
}

/// A route with one serving target at `target`, as the leader would hand a router.
fn route_to(name: &str, target: SocketAddr) -> RouteInfo {
    RouteInfo {
        route_name: name.into(),
        listen_port: 0,
        target_port: target.port(),
        routers: vec![NodeId(1)],
        targets: vec![RouteTargetInfo {
            target_id: NodeId(2),
            address: target.to_string(),
            weight: 100,
            state: TrafficState::Serving,
        }],
        router_tags: Default::default(),
        drain_seconds: 30,
        command: None,
        router_errors: Vec::new(),
        created_by: None,
        targets_set_by: None,
        version: 1,
        traffic_split: None,
    }
}

/// A target server and the router in front of it; `_route` keeps the router running.
struct Pair {
    direct: SocketAddr,
    routed: SocketAddr,
    _route: watch::Sender<Arc<RouteInfo>>,
}

/// The three parties of a measure, each on its own runtime and threads, as the
/// client, the target and the router node would be separate processes.
struct Runtimes {
    servers: Runtime,
    router: Runtime,
    client: Runtime,
}

impl Runtimes {
    fn new(router_threads: usize) -> anyhow::Result<Self> {
        let build = |threads: usize, name: &str| {
            tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name(name).enable_all().build()
        };
        Ok(Self {
            servers: build(1, "servers")?,
            router: build(router_threads, "router")?,
            client: build(1, "client")?,
        })
    }
}

/// A loopback listener on a free port, not yet registered with a runtime.
fn listener() -> anyhow::Result<(std::net::TcpListener, SocketAddr)> {
    let listener = std::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    Ok((listener, address))
}

/// Starts the real proxy for a one-target route to `target` on the router's runtime.
fn router_for(runtimes: &Runtimes, name: &str, target: SocketAddr) -> anyhow::Result<Pair> {
    let (front, routed) = listener()?;
    let (sender, receiver) = watch::channel(Arc::new(route_to(name, target)));
    runtimes.router.spawn(async move {
        match TcpListener::from_std(front) {
            Ok(front) => fleetmesh_node::router::serve_listener(front, receiver).await,
            Err(error) => eprintln!("the router cannot use its listener: {error}"),
        }
    });
    Ok(Pair { direct: target, routed, _route: sender })
}

fn sink_pair(runtimes: &Runtimes) -> anyhow::Result<Pair> {
    let (server, direct) = listener()?;
    runtimes.servers.spawn(async move {
        match TcpListener::from_std(server) {
            Ok(server) => sink(server).await,
            Err(error) => eprintln!("the sink cannot use its listener: {error}"),
        }
    });
    router_for(runtimes, "bench-bulk", direct)
}

fn echo_pair(runtimes: &Runtimes, request_bytes: usize) -> anyhow::Result<Pair> {
    let (server, direct) = listener()?;
    runtimes.servers.spawn(async move {
        match TcpListener::from_std(server) {
            Ok(server) => echo(server, request_bytes).await,
            Err(error) => eprintln!("the echo cannot use its listener: {error}"),
        }
    });
    router_for(runtimes, "bench-echo", direct)
}

/// Sends `bytes` into the sink at `address` on one connection; the time from connect to
/// the sink's count arriving.
async fn bulk(address: SocketAddr, bytes: u64) -> anyhow::Result<Duration> {
    let block = vec![0x5au8; BULK_BLOCK_BYTES];
    let start = Instant::now();
    let mut stream = TcpStream::connect(address).await?;
    let mut left = bytes;
    // Bounded by `bytes`.
    while left > 0 {
        let take = left.min(block.len() as u64) as usize;
        stream.write_all(&block[..take]).await?;
        left -= take as u64;
    }
    stream.shutdown().await?;
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).await.context("the sink's byte count")?;
    let elapsed = start.elapsed();
    anyhow::ensure!(u64::from_le_bytes(count) == bytes, "the sink got {} of {bytes} bytes", u64::from_le_bytes(count));
    Ok(elapsed)
}

/// One request of `request` bytes and its answer, checked byte for byte.
async fn round_trip(stream: &mut TcpStream, request: &[u8], answer: &mut [u8]) -> anyhow::Result<()> {
    stream.write_all(request).await?;
    stream.read_exact(answer).await.context("the echo's answer")?;
    anyhow::ensure!(answer == request, "the echo answered other bytes");
    Ok(())
}

/// Latencies of `count` sequential requests: on a new connection each (connect
/// included) or all on one kept-alive connection.
async fn sequential(address: SocketAddr, count: usize, request_bytes: usize, keep_alive: bool) -> anyhow::Result<Run> {
    let request: Vec<u8> = (0..request_bytes).map(|index| index as u8).collect();
    let mut answer = vec![0u8; request_bytes];
    let mut latencies = Vec::with_capacity(count);
    let start = Instant::now();
    let mut kept = if keep_alive { Some(connect(address).await?) } else { None };
    for _ in 0..count {
        let begin = Instant::now();
        match kept.as_mut() {
            Some(stream) => round_trip(stream, &request, &mut answer).await?,
            None => {
                let mut stream = connect(address).await?;
                round_trip(&mut stream, &request, &mut answer).await?;
            }
        }
        latencies.push(begin.elapsed());
    }
    Ok(Run::new(start.elapsed(), latencies))
}

async fn connect(address: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// `count` requests shared by `connections` concurrent kept-alive connections.
async fn parallel(address: SocketAddr, count: usize, request_bytes: usize, connections: usize) -> anyhow::Result<Run> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..connections {
        let share = count / connections + usize::from(index < count % connections);
        tasks.spawn(async move {
            let request = vec![index as u8; request_bytes];
            let mut answer = vec![0u8; request_bytes];
            let mut stream = connect(address).await?;
            let mut latencies = Vec::with_capacity(share);
            for _ in 0..share {
                let begin = Instant::now();
                round_trip(&mut stream, &request, &mut answer).await?;
                latencies.push(begin.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(count);
    // Bounded by the tasks spawned above.
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    Ok(Run::new(start.elapsed(), latencies))
}

/// What one request measure gave: wall time, each request's latency (sorted), and the
/// router threads' CPU time meanwhile (zero for a direct run).
struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
    router_cpu: Duration,
}

impl Run {
    fn new(elapsed: Duration, mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        Self { elapsed, latencies, router_cpu: Duration::ZERO }
    }

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `percent` percentile latency in milliseconds (nearest rank).
    fn percentile_ms(&self, percent: usize) -> f64 {
        let rank = (self.latencies.len() * percent).div_ceil(100).max(1) - 1;
        self.latencies[rank.min(self.latencies.len() - 1)].as_secs_f64() * 1000.0
    }
}

/// One measure's direct and routed runs, as a table row.
struct Row {
    name: &'static str,
    direct: Run,
    routed: Run,
}

fn print_request_row(row: &Row) {
    let (direct, routed) = (&row.direct, &row.routed);
    println!(
        "{:<28} {:>11.0}/s {:>11.0}/s {:>6.2}x   {:>7.1} us/req   p50 {:.3}/{:.3} ms (+{:.3})  p99 {:.3}/{:.3} ms (+{:.3})",
        row.name,
        direct.per_second(),
        routed.per_second(),
        routed.per_second() / direct.per_second(),
        routed.router_cpu.as_secs_f64() * 1e6 / routed.latencies.len() as f64,
        direct.percentile_ms(50),
        routed.percentile_ms(50),
        routed.percentile_ms(50) - direct.percentile_ms(50),
        direct.percentile_ms(99),
        routed.percentile_ms(99),
        routed.percentile_ms(99) - direct.percentile_ms(99),
    );
}

/// CPU time (user + system) of this process's threads named `router` so far, from
/// `/proc/self/task/*/stat` (clock ticks, 10 ms each on Linux).
fn router_cpu() -> Duration {
    let tick = Duration::from_secs(1) / 100;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Duration::ZERO };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        // "tid (comm) state ppid ..."; utime and stime are fields 14 and 15.
        let Some((head, tail)) = stat.rsplit_once(')') else { continue };
        if !head.ends_with("(router") {
            continue;
        }
        let fields: Vec<&str> = tail.split_whitespace().collect();
        ticks += [11, 12].iter().filter_map(|index| fields.get(*index)?.parse::<u64>().ok()).sum::<u64>();
    }
    tick * u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// Runs `future` and returns its output with the router threads' CPU time meanwhile.
async fn router_cpu_of<T>(future: impl std::future::Future<Output = T>) -> (T, Duration) {
    let before = router_cpu();
    let output = future.await;
    (output, router_cpu().saturating_sub(before))
}

/// A routed request run, with the router's CPU time recorded in it.
async fn routed_run(future: impl std::future::Future<Output = anyhow::Result<Run>>) -> anyhow::Result<Run> {
    let (run, cpu) = router_cpu_of(future).await;
    let mut run = run?;
    run.router_cpu = cpu;
    Ok(run)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The one-line summary: the worst ratios and the added p50 against the goals.
fn print_summary(rows: &[Row], bulk_ratio: f64) {
    let worst_request_ratio =
        rows.iter().map(|row| row.routed.per_second() / row.direct.per_second()).fold(f64::INFINITY, f64::min);
    let added_p50_ms = rows
        .iter()
        .take(2)
        .map(|row| row.routed.percentile_ms(50) - row.direct.percentile_ms(50))
        .fold(f64::NEG_INFINITY, f64::max);
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!(
        "summary: bulk {:.2}x direct (goal >= {GOAL_RATIO_MIN}: {}), requests/s worst {:.2}x (goal >= {GOAL_RATIO_MIN}: {}), \
         added p50 worst {:.3} ms (goal <= {GOAL_ADDED_P50_MS_MAX}: {}); load average {}",
        bulk_ratio,
        verdict(bulk_ratio >= GOAL_RATIO_MIN),
        worst_request_ratio,
        verdict(worst_request_ratio >= GOAL_RATIO_MIN),
        added_p50_ms,
        verdict(added_p50_ms <= GOAL_ADDED_P50_MS_MAX),
        load_average(),
    );
}

async fn bench(args: &Args, sinks: &Pair, echoes: &Pair) -> anyhow::Result<()> {
    let bytes = args.size_mib << 20;

    // Warm-up: the first connections of each path (route lookups, page faults).
    bulk(sinks.direct, 1 << 20).await?;
    bulk(sinks.routed, 1 << 20).await?;
    sequential(echoes.direct, 100, args.request_bytes, false).await?;
    sequential(echoes.routed, 100, args.request_bytes, false).await?;

    // Direct and routed alternate within each round and each keeps its best round, so a
    // burst of load from other programs on the machine hurts neither side alone.
    let (mut bulk_direct, mut bulk_routed, mut bulk_cpu) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut rows: Vec<Row> = Vec::new();
    for round in 0..args.rounds {
        bulk_direct = bulk_direct.min(bulk(sinks.direct, bytes).await?);
        let (elapsed, cpu) = router_cpu_of(bulk(sinks.routed, bytes)).await;
        bulk_routed = bulk_routed.min(elapsed?);
        bulk_cpu = bulk_cpu.min(cpu);
        let mut runs = Vec::new();
        for keep_alive in [false, true] {
            let direct = sequential(echoes.direct, args.requests, args.request_bytes, keep_alive).await?;
            let routed = routed_run(sequential(echoes.routed, args.requests, args.request_bytes, keep_alive)).await?;
            runs.push((direct, routed));
        }
        let direct = parallel(echoes.direct, args.requests, args.request_bytes, args.connections).await?;
        let routed = routed_run(parallel(echoes.routed, args.requests, args.request_bytes, args.connections)).await?;
        runs.push((direct, routed));
        let names = ["sequential, new connections", "sequential, kept alive", "parallel, kept alive"];
        if round == 0 {
            rows = names.into_iter().zip(runs).map(|(name, (direct, routed))| Row { name, direct, routed }).collect();
            continue;
        }
        for (row, (direct, routed)) in rows.iter_mut().zip(runs) {
            if direct.per_second() > row.direct.per_second() {
                row.direct = direct;
            }
            let cpu = row.routed.router_cpu.min(routed.router_cpu);
            if routed.per_second() > row.routed.per_second() {
                row.routed = routed;
            }
            row.routed.router_cpu = cpu;
        }
    }
    let rate = |elapsed: Duration| bytes as f64 / MIB / elapsed.as_secs_f64();
    let (direct_rate, routed_rate) = (rate(bulk_direct), rate(bulk_routed));

    println!(
        "router vs direct on loopback, best of {} alternating rounds: bulk {} MiB into a sink; {} requests of {} B \
         to an echo; {} parallel connections; router on {} threads, client and servers on 1 each",
        args.rounds, args.size_mib, args.requests, args.request_bytes, args.connections, args.threads
    );
    println!("{:<28} {:>13} {:>13} {:>7}   {:>14}", "measure", "direct", "router", "ratio", "router CPU");
    println!(
        "{:<28} {:>9.0} MiB/s {:>7.0} MiB/s {:>6.2}x   {:>8.2} s/GiB   {:.2} s / {:.2} s",
        "bulk, one stream",
        direct_rate,
        routed_rate,
        routed_rate / direct_rate,
        bulk_cpu.as_secs_f64() / (bytes as f64 / (MIB * 1024.0)),
        bulk_direct.as_secs_f64(),
        bulk_routed.as_secs_f64()
    );
    for row in &rows {
        print_request_row(row);
    }
    print_summary(&rows, routed_rate / direct_rate);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    eprintln!("load average before: {}", load_average());
    let runtimes = Runtimes::new(args.threads)?;
    let sinks = sink_pair(&runtimes)?;
    let echoes = echo_pair(&runtimes, args.request_bytes)?;
    let result = runtimes.client.block_on(bench(&args, &sinks, &echoes));
    // The servers and the router end with their runtimes, without waiting for idle tasks.
    runtimes.servers.shutdown_background();
    runtimes.router.shutdown_background();
    result
}
