//! Step 3: raw quinn between two endpoints of this process, the baseline.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use fleetmesh_tests::process_cpu_split;
use fleetmesh_transport::pki::{CaAuthority, ClusterCa, NodeKey, TlsIdentity};
use fleetmesh_transport::{quic, tls, NodeId};

use crate::MIB;

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
pub(crate) fn raw_quinn(bytes: u64, source: Bytes) -> anyhow::Result<RawRun> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let ca = ClusterCa::generate("bench")?;
        // Both endpoints exactly as a node binds its own (socket buffers included).
        let (first, second) = (identity(&ca, 1)?, identity(&ca, 2)?);
        let server = quic::server_endpoint(tls::server_config(&first)?, "127.0.0.1:0".parse()?)?;
        let address = server.local_addr()?;
        let mut client = quic::server_endpoint(tls::server_config(&second)?, "127.0.0.1:0".parse()?)?;
        client.set_default_client_config(tls::client_config(&second)?);
        let receiver = tokio::spawn(stream_in(server));
        let connection = client.connect(address, &NodeId(1).server_name())?.await?;
        let mark = CpuMark::now();
        let acked = stream_out(&connection, bytes, &source).await?;
        let run = mark.run();
        let received = receiver.await??;
        anyhow::ensure!(received == bytes && acked == bytes, "raw quinn lost bytes");
        connection.close(0u32.into(), b"done");
        client.wait_idle().await;
        Ok(run)
    })
}

/// This process's CPU time (user, system) and the time, at the start of a measured span.
pub(crate) struct CpuMark {
    user: Duration,
    system: Duration,
    start: Instant,
}

impl CpuMark {
    pub(crate) fn now() -> Self {
        let (user, system) = process_cpu_split(std::process::id()).unwrap_or_default();
        Self { user, system, start: Instant::now() }
    }

    /// The span from the mark until now: wall time, CPU time, and its user-space part.
    pub(crate) fn run(&self) -> RawRun {
        let elapsed = self.start.elapsed();
        let (user, system) = process_cpu_split(std::process::id()).unwrap_or_default();
        let user = user.saturating_sub(self.user);
        RawRun { elapsed, cpu: user + system.saturating_sub(self.system), user }
    }
}

/// Accepts one connection on `server` and one stream on it, reads the stream to its end
/// (dropping the bytes) and answers with the count: the receiving end of a raw transfer.
pub(crate) async fn stream_in(server: quinn::Endpoint) -> anyhow::Result<u64> {
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
    Ok(received)
}

/// Sends `bytes` bytes of `source` (over and over, 1 MiB per write) on a new stream of
/// `connection` and returns the count the receiver answers with: the sending end.
pub(crate) async fn stream_out(connection: &quinn::Connection, bytes: u64, source: &Bytes) -> anyhow::Result<u64> {
    anyhow::ensure!(!source.is_empty(), "nothing to send");
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
    Ok(u64::from_le_bytes(ack))
}

/// One raw quinn transfer: wall time, CPU time, and the user-space part of it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RawRun {
    pub(crate) elapsed: Duration,
    pub(crate) cpu: Duration,
    pub(crate) user: Duration,
}

impl RawRun {
    /// The run's rate over `mib` MiB and its CPU times, for the bench's JSON.
    pub(crate) fn json(&self, mib: f64) -> serde_json::Value {
        serde_json::json!({
            "mibPerSec": mib / self.elapsed.as_secs_f64(),
            "cpuSecs": self.cpu.as_secs_f64(),
            "userCpuSecs": self.user.as_secs_f64(),
        })
    }
}

/// Raw quinn runs per bench; the figures are those of the median run by time. One run
/// swung between 2.5 and 4.4 CPU-s per GiB from bench to bench on this 2-core VM.
const RAW_QUINN_RUNS: usize = 3;

/// The raw quinn figures of one bench: the baseline (one cached 1 MiB block sent over
/// and over) and the same with distinct bytes, each the median of its runs by time.
pub(crate) struct Baselines {
    pub(crate) raw: RawRun,
    pub(crate) runs: Vec<RawRun>,
    pub(crate) cold: RawRun,
    pub(crate) cold_label: String,
}

/// Runs raw quinn [`RAW_QUINN_RUNS`] times with each source, alternated run by run.
///
/// The baseline sends one 1 MiB block again and again, which stays in the CPU's
/// caches; a node sends bytes it has just read, as the cold-source runs do (`data`,
/// the file's 64 MiB sample, larger than any cache here).
pub(crate) fn measure(bytes: u64, data: &[u8]) -> anyhow::Result<Baselines> {
    let mib = bytes as f64 / MIB;
    let hot = Bytes::from(vec![0x5au8; 1 << 20]);
    let cold = Bytes::from(data.to_vec());
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
    Ok(Baselines { raw: raw_runs[RAW_QUINN_RUNS / 2], cold: cold_runs[RAW_QUINN_RUNS / 2], runs: raw_runs, cold_label })
}
