//! `rolling-chaos`: a rolling deployment (OneAtATime, HalfAtATime or a custom
//! HOST_COUNT rule, picked by the seed) under random crashes, partitions, clogged links,
//! clock skew, hook failures and hangs, and a corrupt peer; then a liveness phase
//! without faults.
//!
//! 1. The cluster forms; the application, group and three revisions are created.
//! 2. Revision 1 is deployed with no fault (the group needs a last successful revision
//!    for rollbacks to restore).
//! 3. Safety phase: host faults are planted, revision 2 is deployed, and the chaos runs
//!    until that deployment and any rollback of it have ended (or the budget is spent).
//! 4. Liveness phase ([`super::liveness`]).
//!
//! `traffic-chaos` is the same run with a group that deploys with traffic control on a
//! route (drain 1 s): every target also runs the block and allow events, its
//! `BlockTraffic`/`AllowTraffic` go through the leader under the same chaos, and the
//! `traffic_only_to_validated_hosts` invariant checks every committed state.

use std::time::Duration;

use fleetmesh_core::rollout::PlannerSettings;
use fleetmesh_node::runtime::Timing;
use fleetmesh_state::model::deployment::DeploymentStatus;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::app::{self, App, ConfigChoice};
use super::chaos::{self, ChaosSettings};
use super::{liveness, ScenarioError, ScenarioOutcome};
use crate::cluster::{SimCluster, SimConfig};
use crate::invariants::Verdicts;
use crate::planted::PlantedBug;

/// Virtual time the chaos may run at most.
const SAFETY_BUDGET: Duration = Duration::from_secs(240);

/// The deployment timeout the planner uses in the deployment scenarios over `nodes`
/// hosts: long enough for a OneAtATime rollout under chaos (a host takes about 5 s),
/// short enough that a stuck one is caught long before CodeDeploy's 8 hours.
pub fn deployment_timeout(nodes: usize) -> Duration {
    Duration::from_secs(600 + 10 * nodes as u64)
}

/// How long a scenario waits for a deployment to end: its timeout and the grace the
/// deadline invariant allows.
pub fn deployment_limit(cluster: &SimCluster) -> Duration {
    Duration::from_millis(cluster.config.planner.deployment_timeout_ms) + crate::invariants::DEADLINE_GRACE
}

/// Settings of the deployment scenarios on top of `config`: the planner's deadline and
/// the planted bug, and, for large fleets, longer poll holds (see the README).
pub fn deployment_config(mut config: SimConfig, planted_bug: Option<PlantedBug>) -> SimConfig {
    config.planner = PlannerSettings {
        deployment_timeout_ms: deployment_timeout(config.nodes).as_millis() as u64,
        ..PlannerSettings::default()
    };
    config.planted_bug = planted_bug;
    config.timing = timing_for(config.nodes);
    config
}

/// Node timing for `nodes` nodes: production defaults up to 200 nodes; beyond that,
/// agents' long polls are held 5 s (the leader's cap) and liveness thresholds scale with
/// them, so the leader answers fewer polls per second.
pub fn timing_for(nodes: usize) -> Timing {
    if nodes <= 200 {
        return Timing::default();
    }
    Timing {
        poll_hold: Duration::from_secs(5),
        suspect_after: Duration::from_secs(12),
        dead_after: Duration::from_secs(20),
        ..Timing::default()
    }
}

/// Runs the scenario.
///
/// # Errors
/// A setup failure (the cluster did not form, the application could not be created).
pub async fn run(config: SimConfig) -> Result<ScenarioOutcome, ScenarioError> {
    run_in(config, false).await
}

/// Runs `traffic-chaos`: the scenario with traffic control.
///
/// # Errors
/// A setup failure (the cluster did not form, the application could not be created).
pub async fn run_with_traffic(config: SimConfig) -> Result<ScenarioOutcome, ScenarioError> {
    run_in(config, true).await
}

/// Drain time of the route in `traffic-chaos`, in seconds.
const TRAFFIC_DRAIN_SECONDS: u32 = 1;

async fn run_in(config: SimConfig, traffic: bool) -> Result<ScenarioOutcome, ScenarioError> {
    let start = tokio::time::Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x726f_6c6c_696e_6721);
    let mut verdicts = Verdicts::default();
    let nodes = config.nodes;
    let mut cluster = SimCluster::start(config).await?;
    let choice = ConfigChoice::pick(&mut rng, nodes);
    cluster.trace.note(&format!("deployment configuration {choice:?}"));
    let app = if traffic {
        App::create_routed(&cluster, &mut rng, choice, 3, TRAFFIC_DRAIN_SECONDS).await?
    } else {
        App::create(&cluster, &mut rng, choice, 3).await?
    };

    let limit = deployment_limit(&cluster);
    app.run_baseline(&cluster, &mut rng, limit, &mut verdicts).await?;

    cluster.trace.note("safety phase");
    let settings = ChaosSettings::for_nodes(nodes);
    chaos::plant_host_faults(&cluster, &mut rng, &settings);
    let deployment = app.deploy(&cluster, &mut rng, app.revisions[1], Duration::from_secs(60)).await?;
    let safety_started = tokio::time::Instant::now();
    let stats = chaos::run(&mut cluster, &mut rng, &settings, SAFETY_BUDGET, |cluster| {
        app::status(cluster, &deployment).is_some_and(DeploymentStatus::is_terminal) && app::all_ended(cluster)
    })
    .await?;
    let safety_secs = safety_started.elapsed().as_secs_f64();
    let chaos_status = app::status(&cluster, &deployment);

    let report = liveness::run(&mut cluster, &app, &mut rng, &mut verdicts).await?;

    let (traffic_checks, open_checked) = cluster
        .with_observer(|observer| (observer.monitor.traffic.checks, observer.monitor.traffic.open_targets_checked));
    let (deployments, rollbacks, least_margin, installs, restored) = cluster.with_observer(|observer| {
        let shadow = observer.shadow();
        (
            shadow.deployments.len(),
            shadow
                .deployments
                .values()
                .filter(|deployment| {
                    deployment.creator == fleetmesh_state::model::deployment::DeploymentCreator::CodeDeployRollback
                })
                .count(),
            observer.monitor.min_healthy.least_margin,
            observer.monitor.installs.checked,
            observer.monitor.rollbacks.hosts_restored,
        )
    });
    let mut outcome = ScenarioOutcome::of_cluster(verdicts, start, &cluster);
    let figures = &mut outcome.figures;
    figures.insert("deployment_config".into(), json!(choice.name()));
    figures.insert("chaos_deployment".into(), json!(format!("{:?}", chaos_status)));
    figures.insert("deployments".into(), json!(deployments));
    figures.insert("rollbacks".into(), json!(rollbacks));
    figures.insert("crashes".into(), json!(stats.crashes));
    figures.insert("leader_crashes".into(), json!(stats.leader_crashes));
    figures.insert("network_faults".into(), json!(stats.network_faults));
    figures.insert("clock_skews".into(), json!(stats.skews));
    figures.insert("installs_checked".into(), json!(installs));
    figures.insert("observer_entries_replayed".into(), json!(cluster.with_observer(|observer| observer.next_index())));
    figures.insert("hosts_restored_by_rollback".into(), json!(restored));
    figures.insert("min_healthy_least_margin".into(), json!(least_margin));
    figures.insert("exempt_hosts".into(), json!(report.exempt_hosts.len()));
    if traffic {
        figures.insert("traffic_checks".into(), json!(traffic_checks));
        figures.insert("open_targets_checked".into(), json!(open_checked));
    }
    figures.insert("safety_secs".into(), json!((safety_secs * 1000.0).round() / 1000.0));
    figures.insert("liveness_secs".into(), json!((report.phase.as_secs_f64() * 1000.0).round() / 1000.0));
    cluster.shutdown().await;
    Ok(outcome)
}
