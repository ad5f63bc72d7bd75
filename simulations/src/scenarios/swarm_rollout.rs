//! `swarm-nodes` and `byzantine-peer`: the swarm as the nodes run it. Every host of an
//! N-node cluster deploys one revision at once (a `HOST_COUNT` minimum of 0, hooks that
//! take no time), so every DownloadBundle starts within a poll of the others and runs
//! the node's own swarm download ([`crate::host::swarm`]): the leader's peer lists in
//! poll answers, the fetch loop and its session, the swarm core's piece picker, the
//! node's upload slots, over the simulated network.
//!
//! 1. The cluster forms; the application and one revision of `--size-mib` are created,
//!    pushed to the leader.
//! 2. `byzantine-peer` only: a tenth of the hosts other than the leader (at least one)
//!    lie, a third each corrupt (advertise everything, flip a byte of every chunk),
//!    withholding (advertise everything, serve nothing) and slow (a hundredth of the
//!    bandwidth); with one liar, the seed picks its kind.
//! 3. The revision is deployed; it must succeed (`deployment_succeeds`), every host
//!    without it must have fetched it (`every_host_fetched`), and every install must
//!    hold exactly the pushed bytes (`installs_exact_bytes`).
//!
//! Figures: `ratio` is the time from the first download's start to the last one's end
//! over the bandwidth bound (with equal links, S / U), the figure the modelled `swarm`
//! scenario reports; `modelled_ratio` is that scenario's figure for the same N, size and
//! bandwidth, run alongside.

use std::collections::BTreeMap;
use std::time::Duration;

use fleetmesh_state::model::deployment::DeploymentStatus;
use fleetmesh_state::model::ids::RevisionId;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::app::{self, App, ConfigChoice};
use super::{ScenarioError, ScenarioOutcome};
use crate::cluster::{SimCluster, SimConfig};
use crate::host::catalog::BIN_CHUNK_BYTES;
use crate::host::DownloadRecord;
use crate::invariants::{Verdicts, Violation};

/// What one run does.
#[derive(Clone, Copy, Debug)]
pub struct SwarmRollout {
    /// Bytes of the revision's `app/bin` (rounded up to 256 KiB chunks).
    pub size_bytes: u64,
    /// Whether a tenth of the hosts lie (`byzantine-peer`).
    pub liars: bool,
}

/// The cluster configuration: `config` with hooks that take no time and a download
/// timeout of 20 times the bound (at least 120 s).
pub fn config(mut config: SimConfig, run: SwarmRollout) -> SimConfig {
    config.host.hook_min = Duration::ZERO;
    config.host.hook_max = Duration::ZERO;
    let bound = run.size_bytes as f64 / config.host.downlink_bytes_per_sec.max(1) as f64;
    config.host.download_timeout = Duration::from_secs_f64((bound * 20.0).max(120.0));
    config.planner.deployment_timeout_ms =
        config.planner.deployment_timeout_ms.max((config.host.download_timeout.as_millis() as u64).saturating_mul(2));
    config
}

/// Runs the scenario.
///
/// # Errors
/// A setup failure (the cluster did not form, the application could not be created).
pub async fn run(config: SimConfig, run: SwarmRollout) -> Result<ScenarioOutcome, ScenarioError> {
    let start = tokio::time::Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x7377_6172_6d2d_6e6f);
    let mut verdicts = Verdicts::default();
    let rate = config.host.downlink_bytes_per_sec;
    let cluster = SimCluster::start(config).await?;
    let bin_chunks = run.size_bytes.div_ceil(u64::from(BIN_CHUNK_BYTES)).max(1);
    let app = App::create_sized(&cluster, &mut rng, ConfigChoice::HostCount(0), 1, bin_chunks).await?;
    let revision = app.revisions[0];
    // The revision was pushed to the leader (`App` pushes to the leader of the moment).
    let origin = cluster.leader();
    let liars = if run.liars { plant_liars(&cluster, cluster.config.seed) } else { Vec::new() };

    let limit = super::rolling_chaos::deployment_limit(&cluster);
    let deployment = app.deploy(&cluster, &mut rng, revision, Duration::from_secs(60)).await?;
    let ended = cluster
        .wait_for("the deployment to end", limit, |cluster| {
            app::status(cluster, &deployment).is_some_and(DeploymentStatus::is_terminal)
        })
        .await;
    let status = app::status(&cluster, &deployment);
    verdicts.record(
        "deployment_succeeds",
        match (ended, status) {
            (Ok(()), Some(DeploymentStatus::Succeeded)) => Ok(()),
            (_, status) => Err(Violation::new(format!("the deployment to every host ended {status:?}"))),
        },
    );

    let downloads = check_downloads(&cluster, revision, &mut verdicts);
    let mut outcome = ScenarioOutcome::of_cluster(verdicts, start, &cluster);
    outcome.figures.extend(figures(&cluster, revision, rate, origin, &downloads));
    outcome.figures.insert("deployment_status".into(), json!(format!("{status:?}")));
    outcome.figures.insert("lying_peers".into(), json!(liars.len()));
    cluster.shutdown().await;
    Ok(outcome)
}

/// Makes a tenth of the hosts other than the leader (at least one) lie, in turn
/// corrupt, withholding and slow, starting at the kind `seed` picks (so that a sweep
/// with one liar per run meets every kind). Returns them.
fn plant_liars(cluster: &SimCluster, seed: u64) -> Vec<fleetmesh_transport::NodeId> {
    let leader = cluster.leader();
    let hosts: Vec<_> = cluster.running().into_iter().filter(|id| Some(*id) != leader).collect();
    let count = (hosts.len() / 10).max(1).min(hosts.len());
    // The last hosts: the first ones are the voters, which the scenario leaves honest.
    let liars: Vec<_> = hosts.iter().rev().take(count).copied().collect();
    for (index, liar) in liars.iter().enumerate() {
        match (index as u64 + seed) % 3 {
            0 => cluster.corrupt_peer(*liar),
            1 => cluster.withholding_peer(*liar),
            _ => cluster.slow_peer(*liar),
        }
    }
    liars
}

/// The downloads of `revision` that completed; records `every_host_fetched`.
fn check_downloads(cluster: &SimCluster, revision: RevisionId, verdicts: &mut Verdicts) -> Vec<DownloadRecord> {
    let downloads: Vec<_> =
        cluster.world.downloads().into_iter().filter(|record| record.revision == revision).collect();
    let lacking = cluster.all().len() - 1;
    verdicts.record(
        "every_host_fetched",
        if downloads.len() == lacking {
            Ok(())
        } else {
            Err(Violation::new(format!("{} of the {lacking} hosts without the revision fetched it", downloads.len())))
        },
    );
    downloads
}

/// The run's swarm figures, with the modelled swarm's for the same N, size and `rate`.
fn figures(
    cluster: &SimCluster,
    revision: RevisionId,
    rate: u64,
    origin: Option<fleetmesh_transport::NodeId>,
    downloads: &[DownloadRecord],
) -> BTreeMap<String, serde_json::Value> {
    let unique = cluster.world.unique_bytes(&revision).unwrap_or(0);
    let bound_secs = unique as f64 / rate.max(1) as f64;
    let mut secs: Vec<f64> = downloads.iter().map(|record| (record.ended - record.started).as_secs_f64()).collect();
    secs.sort_by(f64::total_cmp);
    let first = downloads.iter().map(|record| record.started).min();
    let last = downloads.iter().map(|record| record.ended).max();
    let span = first.zip(last).map_or(0.0, |(first, last)| (last - first).as_secs_f64());
    let modelled = crate::swarm::run(&crate::swarm::SwarmParams {
        nodes: cluster.all().len(),
        seed: cluster.config.seed,
        revision_bytes: unique,
        coarse_piece_bytes: None,
        uplink_bps: rate * 8,
        downlink_bps: rate * 8,
        // The mean of the simulated network's latency (0.2 to 2 ms).
        latency_ms: 1.1,
        loss: 0.0,
        corrupt_peers: 0,
        tuning: crate::swarm::SwarmTuning::default(),
    });
    let round3 = |value: f64| (value * 1000.0).round() / 1000.0;
    let percentile = |p: f64| secs.get(((secs.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    let copies = cluster.world.bytes_sent() as f64 / (unique.max(1) * downloads.len().max(1) as u64) as f64;
    let mut figures = BTreeMap::from([
        ("revision_bytes".to_string(), json!(unique)),
        ("downloads".to_string(), json!(downloads.len())),
        ("lower_bound_secs".to_string(), json!(round3(bound_secs))),
        ("first_to_last_secs".to_string(), json!(round3(span))),
        ("ratio".to_string(), json!(round3(if bound_secs > 0.0 { span / bound_secs } else { 0.0 }))),
        ("p50_download_secs".to_string(), json!(round3(percentile(0.5)))),
        ("p99_download_secs".to_string(), json!(round3(percentile(0.99)))),
        ("max_download_secs".to_string(), json!(round3(percentile(1.0)))),
        ("bytes_sent_per_download".to_string(), json!(round3(copies))),
        ("modelled_ratio".to_string(), json!(round3(modelled.ratio))),
        ("modelled_last_node_secs".to_string(), json!(round3(modelled.last_node_secs))),
        ("downlink_busy_share".to_string(), json!(round3(downlink_busy_share(cluster, downloads)))),
    ]);
    if let Some(origin) = origin {
        // How the origin seed, whose uplink is the bound, spent it: the copies of the
        // revision it sent (1.0 when it hands out every piece once), the share of the
        // span it was sending, and when its last first copy was through.
        let (bytes, busy) = cluster.world.uplink_sent(origin);
        let out = first.zip(cluster.world.first_copies_out()).map_or(0.0, |(first, out)| (out - first).as_secs_f64());
        figures.extend([
            ("origin_first_copies_out_secs".to_string(), json!(round3(out))),
            ("origin_copies_sent".to_string(), json!(round3(bytes as f64 / unique.max(1) as f64))),
            ("origin_busy_share".to_string(), json!(round3(if span > 0.0 { busy.as_secs_f64() / span } else { 0.0 }))),
        ]);
    }
    figures
}

/// The mean share of its download a host's downlink was receiving (receivers fetch one
/// revision each, so a host's downlink time is its download's).
fn downlink_busy_share(cluster: &SimCluster, downloads: &[DownloadRecord]) -> f64 {
    let shares: f64 = downloads
        .iter()
        .map(|record| {
            let took = (record.ended - record.started).as_secs_f64();
            if took > 0.0 {
                cluster.world.downlink_busy(record.node).as_secs_f64() / took
            } else {
                0.0
            }
        })
        .sum();
    shares / downloads.len().max(1) as f64
}
