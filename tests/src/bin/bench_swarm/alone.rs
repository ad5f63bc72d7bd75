//! Step 4: the work a receiver cannot avoid besides the transport, each alone, and
//! the page-frame warming the measured phases need on this VM.

use std::path::Path;
use std::time::{Duration, Instant};

use fleetmesh_tests::process_cpu;
use serde_json::json;

use crate::raw::RawRun;
use crate::{Swarm, MIB};

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
pub(crate) fn sample(blob: &Path) -> anyhow::Result<Vec<u8>> {
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
pub(crate) fn warm_page_frames(dir: &Path, data: &[u8], bytes: u64) -> anyhow::Result<()> {
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
pub(crate) struct Alone {
    pub(crate) hash_cpu: Duration,
    hash_wall: Duration,
    pub(crate) write_cpu: Duration,
    write_wall: Duration,
}

impl Alone {
    pub(crate) fn measure(data: &[u8], dir: &Path, bytes: u64) -> anyhow::Result<Self> {
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

    pub(crate) fn json(&self, mib: f64) -> serde_json::Value {
        json!({
            "blake3CpuSecs": self.hash_cpu.as_secs_f64(),
            "blake3MibPerSec": mib / self.hash_wall.as_secs_f64(),
            "writeCpuSecs": self.write_cpu.as_secs_f64(),
            "writeMibPerSec": mib / self.write_wall.as_secs_f64(),
        })
    }

    /// Prints and returns CPU-s per GiB: the swarm's two ends against the "bound", raw
    /// quinn's two ends plus the hashing and writing a receiver must do anyway.
    pub(crate) fn report(
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

/// Largest page order the kernel's buddy allocator has (`MAX_PAGE_ORDER` on x86-64 and
/// arm64 with 4 KiB pages): free page reporting set above it reports nothing.
const MAX_PAGE_ORDER: u32 = 10;

/// Whether this host hands free memory back to its hypervisor while the bench runs, as
/// the run found it: free page reporting (`/sys/module/page_reporting`, on unless its
/// order is above [`MAX_PAGE_ORDER`]) and DAMON workers (kdamonds) that are on (on this
/// VM, one with a `pageout` scheme). Either makes a write into the page cache cost 0.2 to
/// 7 CPU-s per GiB from one run to the next (`docs/benchmarks.md`, "first touch of page
/// frames"), so the write-heavy figures are only comparable between runs made alike.
pub(crate) fn host_memory() -> serde_json::Value {
    let read = |path: &str| std::fs::read_to_string(path).ok().map(|text| text.trim().to_string());
    let reporting_order =
        read("/sys/module/page_reporting/parameters/page_reporting_order").and_then(|text| text.parse::<u32>().ok());
    let damon_on = std::fs::read_dir("/sys/kernel/mm/damon/admin/kdamonds")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| std::fs::read_to_string(entry.path().join("state")).ok())
                .filter(|state| state.trim() == "on")
                .count()
        })
        .unwrap_or(0);
    let reporting = reporting_order.is_some_and(|order| order <= MAX_PAGE_ORDER);
    let returns_free_memory = reporting || damon_on > 0;
    if returns_free_memory {
        eprintln!(
            "note: this host returns free memory to its hypervisor (free page reporting {}, DAMON workers on: {damon_on}); \
             page-cache writes cost more and vary more than on a host that keeps it",
            if reporting { "on" } else { "off" },
        );
    }
    json!({
        "pageReportingOrder": reporting_order,
        "damonKdamondsOn": damon_on,
        "returnsFreeMemory": returns_free_memory,
    })
}
