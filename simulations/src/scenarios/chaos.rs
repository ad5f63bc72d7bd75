//! The safety phase's fault schedule, drawn from the seed as it runs: crashes and
//! restarts of random nodes (the leader among them, some losing their unsynced journal
//! save), symmetric and one-way partitions, clogged links, clock skew, and — chosen
//! once at the start — hook failures or hangs on a few hosts and a peer that serves
//! corrupt chunks.
//!
//! Faults are bounded so a rollout can make progress between them: at most
//! [`ChaosSettings::crashed_max`] nodes are down at once and each comes back within
//! seconds, and a partition heals within seconds too. The liveness phase removes them
//! all.

use std::collections::BTreeMap;
use std::time::Duration;

use fleetmesh_transport::NodeId;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use crate::cluster::{ClusterError, SimCluster};
use crate::host::faults::HookFault;

/// Lifecycle events whose scripts a hook fault can break.
const HOOK_EVENTS: [&str; 5] =
    ["ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"];

/// How hard the chaos hits.
#[derive(Clone, Copy, Debug)]
pub struct ChaosSettings {
    /// Most nodes down at once.
    pub crashed_max: usize,
    /// Probability that a crash also loses the host's newest journal save.
    pub lossy_crash: f64,
    /// Shortest and longest pause between two faults.
    pub pause: (Duration, Duration),
    /// Shortest and longest outage of a crashed node.
    pub down: (Duration, Duration),
    /// Shortest and longest partition or clog.
    pub cut: (Duration, Duration),
    /// Most hosts given a hook fault at the start.
    pub faulty_hosts_max: usize,
}

impl ChaosSettings {
    /// Settings scaled to `nodes`.
    pub fn for_nodes(nodes: usize) -> Self {
        Self {
            crashed_max: ((nodes.saturating_sub(1)) / 2).clamp(1, 3),
            lossy_crash: 0.5,
            pause: (Duration::from_millis(500), Duration::from_secs(5)),
            down: (Duration::from_secs(1), Duration::from_secs(12)),
            cut: (Duration::from_secs(1), Duration::from_secs(8)),
            faulty_hosts_max: 2.min(nodes / 2),
        }
    }
}

/// What the chaos did, for the figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChaosStats {
    /// Crashes (leader crashes included).
    pub crashes: u64,
    /// Crashes of the node leading at that moment.
    pub leader_crashes: u64,
    /// Partitions, one-way cuts and clogs.
    pub network_faults: u64,
    /// Clock skews.
    pub skews: u64,
}

fn duration_in(rng: &mut ChaCha8Rng, (min, max): (Duration, Duration)) -> Duration {
    let span = max.saturating_sub(min).as_millis() as u64;
    min + Duration::from_millis(rng.gen_range(0..=span))
}

/// Hook faults on a few hosts, and maybe a corrupt peer: the host-side faults of a
/// safety phase.
pub fn plant_host_faults(cluster: &SimCluster, rng: &mut ChaCha8Rng, settings: &ChaosSettings) {
    let mut hosts = cluster.all();
    hosts.shuffle(rng);
    let faulty = rng.gen_range(0..=settings.faulty_hosts_max);
    for host in hosts.iter().take(faulty) {
        let event = HOOK_EVENTS[rng.gen_range(0..HOOK_EVENTS.len())];
        let fault = if rng.gen_bool(0.25) { HookFault::Hang } else { HookFault::Fail };
        cluster.fault_hook(*host, event, fault);
    }
    if hosts.len() >= 3 && rng.gen_bool(0.5) {
        cluster.corrupt_peer(hosts[hosts.len() - 1]);
    }
}

/// Runs faults until `done` holds or `budget` of virtual time has passed.
///
/// # Errors
/// A crashed node could not restart.
pub async fn run(
    cluster: &mut SimCluster,
    rng: &mut ChaCha8Rng,
    settings: &ChaosSettings,
    budget: Duration,
    done: impl Fn(&SimCluster) -> bool,
) -> Result<ChaosStats, ClusterError> {
    let mut stats = ChaosStats::default();
    let end = Instant::now() + budget;
    let mut restarts: BTreeMap<NodeId, Instant> = BTreeMap::new();
    let mut heal_at: Option<Instant> = None;
    // Bounded by `budget`: every pass sleeps at least the shortest pause.
    while Instant::now() < end && !done(cluster) && !cluster.is_halted() {
        let pause = duration_in(rng, settings.pause);
        let wake = (Instant::now() + pause).min(end);
        while Instant::now() < wake && !done(cluster) && !cluster.is_halted() {
            cluster.sleep(Duration::from_millis(100).min(wake - Instant::now())).await;
            let now = Instant::now();
            let due: Vec<NodeId> = restarts.iter().filter(|(_, at)| **at <= now).map(|(id, _)| *id).collect();
            for id in due {
                restarts.remove(&id);
                cluster.restart(id).await?;
            }
            if heal_at.is_some_and(|at| at <= now) {
                heal_at = None;
                cluster.heal();
            }
        }
        if Instant::now() >= end || done(cluster) {
            break;
        }
        strike(cluster, rng, settings, &mut stats, &mut restarts, &mut heal_at).await;
    }
    Ok(stats)
}

async fn strike(
    cluster: &mut SimCluster,
    rng: &mut ChaCha8Rng,
    settings: &ChaosSettings,
    stats: &mut ChaosStats,
    restarts: &mut BTreeMap<NodeId, Instant>,
    heal_at: &mut Option<Instant>,
) {
    let running = cluster.running();
    let all = cluster.all();
    match rng.gen_range(0..10) {
        0..=3 if restarts.len() < settings.crashed_max && running.len() > 1 => {
            let leader = cluster.leader();
            let victim = match leader {
                Some(leader) if rng.gen_bool(0.4) => leader,
                _ => running[rng.gen_range(0..running.len())],
            };
            stats.crashes += 1;
            if Some(victim) == leader {
                stats.leader_crashes += 1;
            }
            let lossy = rng.gen_bool(settings.lossy_crash);
            cluster.crash(victim, lossy).await;
            restarts.insert(victim, Instant::now() + duration_in(rng, settings.down));
        }
        4..=5 if all.len() >= 3 => {
            let minority = rng.gen_range(1..=((all.len() - 1) / 2).max(1));
            let mut side = all.clone();
            side.shuffle(rng);
            side.truncate(minority);
            side.sort();
            if rng.gen_bool(0.7) {
                cluster.partition(&side);
            } else {
                cluster.partition_one_way(&side);
            }
            stats.network_faults += 1;
            *heal_at = Some(heal_at.unwrap_or_else(Instant::now).max(Instant::now() + duration_in(rng, settings.cut)));
        }
        6..=7 if all.len() >= 2 => {
            let from = all[rng.gen_range(0..all.len())];
            let to = *all.iter().filter(|id| **id != from).nth(rng.gen_range(0..all.len() - 1)).unwrap_or(&from);
            if rng.gen_bool(0.5) {
                cluster.clog(from, to, Duration::from_millis(rng.gen_range(50..=800)));
            } else {
                cluster.cut_one_way(from, to);
            }
            stats.network_faults += 1;
            *heal_at = Some(heal_at.unwrap_or_else(Instant::now).max(Instant::now() + duration_in(rng, settings.cut)));
        }
        8 => {
            let node = all[rng.gen_range(0..all.len())];
            cluster.skew_clock(node, rng.gen_range(-5_000..=5_000));
            stats.skews += 1;
        }
        _ => {}
    }
}
