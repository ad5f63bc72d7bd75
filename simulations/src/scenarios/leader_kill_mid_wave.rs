//! `leader-kill-mid-wave`: the leader is killed while a wave of a rolling deployment is
//! in flight; a new leader must resume the rollout from the replicated record alone and
//! finish it, without ever taking more targets out of service than the rule allows.
//!
//! 1. The cluster forms; the application (OneAtATime or HalfAtATime, by seed) and two
//!    revisions are created; revision 1 is deployed with no fault.
//! 2. Revision 2 is deployed. Once its wave number 1 or 2 (by seed) has a target in
//!    flight on a host other than the leader, the leader is crashed (losing its unsynced
//!    journal save or not, by seed) and restarted a few seconds later.
//! 3. The deployment must end, committed in a term after the killed leader's.
//! 4. Liveness phase ([`super::liveness`]).

use std::time::Duration;

use fleetmesh_state::model::deployment::{DeploymentStatus, TargetStatus};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_transport::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::app::{self, App, ConfigChoice};
use super::rolling_chaos::deployment_limit;
use super::{liveness, ScenarioError, ScenarioOutcome};
use crate::cluster::{SimCluster, SimConfig};
use crate::invariants::{Verdicts, Violation};

/// Runs the scenario.
///
/// # Errors
/// A setup failure.
pub async fn run(config: SimConfig) -> Result<ScenarioOutcome, ScenarioError> {
    let start = tokio::time::Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x6b69_6c6c_2d6d_6964);
    let mut verdicts = Verdicts::default();
    let mut cluster = SimCluster::start(config).await?;
    let choice = if rng.gen_bool(0.5) { ConfigChoice::OneAtATime } else { ConfigChoice::HalfAtATime };
    let app = App::create(&cluster, &mut rng, choice, 2).await?;
    let limit = deployment_limit(&cluster);

    app.run_baseline(&cluster, &mut rng, limit, &mut verdicts).await?;

    cluster.trace.note("safety phase");
    let deployment = app.deploy(&cluster, &mut rng, app.revisions[1], Duration::from_secs(60)).await?;
    let wave = if choice == ConfigChoice::OneAtATime && cluster.all().len() >= 3 { rng.gen_range(1..=2) } else { 1 };
    let kill = kill_mid_wave(&mut cluster, &mut rng, &deployment, wave, limit, &mut verdicts).await?;
    let resumed_term = check_resumed(&cluster, &deployment, kill.term, limit, &mut verdicts).await;
    let status = app::status(&cluster, &deployment);

    let report = liveness::run(&mut cluster, &app, &mut rng, &mut verdicts).await?;
    let least_margin = cluster.with_observer(|observer| observer.monitor.min_healthy.least_margin);
    let mut outcome = ScenarioOutcome::of_cluster(verdicts, start, &cluster);
    let figures = &mut outcome.figures;
    figures.insert("deployment_config".into(), json!(choice.name()));
    figures.insert("killed_leader".into(), json!(kill.leader));
    figures.insert("killed_in_wave".into(), json!(wave));
    figures.insert("killed_term".into(), json!(kill.term));
    figures.insert("resumed_term".into(), json!(resumed_term));
    figures.insert("failover_ms".into(), json!(kill.failover_ms));
    figures.insert("deployment_status".into(), json!(format!("{status:?}")));
    figures.insert("min_healthy_least_margin".into(), json!(least_margin));
    figures.insert("exempt_hosts".into(), json!(report.exempt_hosts.len()));
    cluster.shutdown().await;
    Ok(outcome)
}

/// The leader the scenario killed, if it got to.
#[derive(Debug, Default)]
struct Kill {
    /// The killed leader.
    leader: Option<NodeId>,
    /// Its term (0 when none was killed).
    term: u64,
    /// Virtual time from the crash to the next leader's election.
    failover_ms: Option<u64>,
}

/// Waits until wave `wave` of `deployment` has a target in flight on a host other than
/// the leader, then crashes the leader, waits for a new one (the `new_leader_elected`
/// verdict) and restarts the old one a few seconds later.
///
/// # Errors
/// The killed leader could not restart.
async fn kill_mid_wave(
    cluster: &mut SimCluster,
    rng: &mut ChaCha8Rng,
    deployment: &DeploymentId,
    wave: u32,
    limit: Duration,
    verdicts: &mut Verdicts,
) -> Result<Kill, ScenarioError> {
    let mid_wave = cluster
        .wait_for("a wave in flight", limit, |cluster| {
            let leader = cluster.leader();
            cluster.with_observer(|observer| {
                observer.shadow().deployments.get(deployment).is_some_and(|record| {
                    record.waves >= wave
                        && record
                            .targets
                            .values()
                            .any(|target| target.status == TargetStatus::InProgress && Some(target.target_id) != leader)
                })
            })
        })
        .await;
    let mut kill = Kill::default();
    match (mid_wave, cluster.leader()) {
        (Ok(()), Some(leader)) => {
            kill.term = cluster.node(leader).raft().metrics().borrow().current_term;
            let lossy = rng.gen_bool(0.5);
            cluster.crash(leader, lossy).await;
            kill.leader = Some(leader);
            let crashed_at = tokio::time::Instant::now();
            let elected =
                cluster.wait_for("a new leader", Duration::from_secs(30), |cluster| cluster.leader().is_some()).await;
            kill.failover_ms = elected.is_ok().then(|| crashed_at.elapsed().as_millis() as u64);
            verdicts.record("new_leader_elected", elected.map_err(|error| Violation::new(error.to_string())));
            cluster.sleep(Duration::from_millis(rng.gen_range(2_000..=10_000))).await;
            cluster.restart(leader).await?;
        }
        (Ok(()), None) => verdicts.record("new_leader_elected", Err(Violation::new("no leader to kill mid-wave"))),
        (Err(error), _) => verdicts.record(
            "new_leader_elected",
            Err(Violation::new(format!("the deployment never reached wave {wave}: {error}"))),
        ),
    }
    Ok(kill)
}

/// Waits for `deployment` to end and checks it ended in a term after the killed
/// leader's (the `rollout_resumed_by_new_leader` verdict). Returns that term.
async fn check_resumed(
    cluster: &SimCluster,
    deployment: &DeploymentId,
    killed_term: u64,
    limit: Duration,
    verdicts: &mut Verdicts,
) -> Option<u64> {
    let ended = cluster
        .wait_for("the deployment to end", limit, |cluster| {
            app::status(cluster, deployment).is_some_and(DeploymentStatus::is_terminal)
        })
        .await;
    let resumed_term = cluster.with_observer(|observer| observer.last_term.get(deployment).copied());
    verdicts.record(
        "rollout_resumed_by_new_leader",
        match (ended, resumed_term) {
            (Ok(()), Some(term)) if term > killed_term => Ok(()),
            (Ok(()), term) => Err(Violation::new(format!(
                "the deployment ended in term {term:?}, not after the killed leader's {killed_term}"
            ))),
            (Err(error), _) => Err(Violation::new(error.to_string())),
        },
    );
    resumed_term
}
