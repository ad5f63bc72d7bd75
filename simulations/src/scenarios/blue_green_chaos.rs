//! `blue-green-chaos`: blue/green deployments of a group on a route, one after another,
//! under leader kills, crashes, partitions, clogged links and clock skew, with failing
//! or hanging green and blue hooks and stops with rollback; then a liveness phase
//! without faults in which one more blue/green deployment must succeed.
//!
//! 1. The cluster forms; a `BLUE_GREEN` group (every node, rollback on failure) on route
//!    `web` (drain 1 s) and three revisions are created. The termination wait (0–4 s)
//!    and `KEEP_ALIVE` or `TERMINATE` are drawn from the seed, and on 30 % of seeds
//!    green waits for `continue-deployment --deployment-wait-type READY_WAIT`
//!    (`STOP_DEPLOYMENT`, a wait of 5–15 s).
//! 2. Baseline, no fault: revision 1 goes to the odd hosts (`--target-instances`); the
//!    route is empty, so they become blue.
//! 3. Safety phase, [`ROUNDS`] deployments alternating revisions 2 and 3, each onto the
//!    hosts not serving the route (green). Per round: maybe one hook fault on a green
//!    host (install, validate or allow events) or a blue one (block events); the chaos
//!    of `rolling-chaos` with longer pauses until the deployment ends; on some rounds,
//!    once the deployment reaches a phase drawn from the seed (rerouting, blocking, the
//!    termination wait, terminating blue), the network heals, crashed nodes restart,
//!    and the operator stops it with rollback. Under `STOP_DEPLOYMENT`, once green is
//!    `Ready` the operator continues it (80 % of rounds) or lets the wait expire, which
//!    ends the deployment `Stopped`.
//! 4. Liveness phase: faults stop, every deployment must end, and a fault-free
//!    deployment must succeed (continued once ready, under `STOP_DEPLOYMENT`) and leave
//!    the route serving exactly its green fleet.
//!
//! The blue/green invariants (`route_never_empty`, `green_share_monotonic`,
//! `rollback_restores_blue`) and `traffic_only_to_validated_hosts` and
//! `one_deployment_per_route` check every committed entry.

use std::time::Duration;

use fleetmesh_state::model::blue_green::{
    ActionOnTimeout, BlueGreenDeploymentConfiguration, BlueGreenPhase, BlueInstanceAction, DeploymentWaitType,
    TargetLabel,
};
use fleetmesh_state::model::deployment::DeploymentStatus;
use fleetmesh_state::model::ids::{DeploymentId, RevisionId};
use fleetmesh_state::model::resources::{TagFilter, TagFilterType, TargetSelector};
use fleetmesh_state::{Command, Outcome};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::time::Instant;

use super::app::{self, App, ConfigChoice, ROUTE};
use super::chaos::{self, ChaosSettings, ChaosStats};
use super::rolling_chaos::deployment_limit;
use super::{liveness, ScenarioError, ScenarioOutcome};
use crate::cluster::{ClusterError, SimCluster, SimConfig};
use crate::host::faults::HookFault;
use crate::invariants::route_weights::open_weights;
use crate::invariants::{Verdicts, Violation};

/// Blue/green deployments in the safety phase.
const ROUNDS: usize = 3;

/// Virtual time the chaos of one round may run at most.
const ROUND_BUDGET: Duration = Duration::from_secs(120);

/// Drain time of the route, in seconds.
const DRAIN_SECONDS: u32 = 1;

/// Chance that a round's deployment is stopped with rollback.
const STOP_PROBABILITY: f64 = 0.35;

/// Chance that a seed's group waits for `READY_WAIT` before rerouting.
const READY_WAIT_PROBABILITY: f64 = 0.3;

/// Chance that the operator continues a waiting deployment (else the wait expires).
const CONTINUE_PROBABILITY: f64 = 0.8;

/// Phases at which a stop with rollback strikes: after green got traffic, before the end
/// (`Terminating` only comes with `TERMINATE`; under `KEEP_ALIVE` the round runs on).
const STOP_PHASES: [BlueGreenPhase; 5] = [
    BlueGreenPhase::Rerouting,
    BlueGreenPhase::Shifting,
    BlueGreenPhase::Blocking,
    BlueGreenPhase::TerminationWait,
    BlueGreenPhase::Terminating,
];

/// Green events a hook fault can break (`ApplicationStop` is skipped on a host that never
/// installed, and `BeforeInstall` is like `AfterInstall` here).
const GREEN_FAULT_EVENTS: [&str; 4] = ["AfterInstall", "ValidateService", "BeforeAllowTraffic", "AfterAllowTraffic"];

/// Blue events a hook fault can break.
const BLUE_FAULT_EVENTS: [&str; 2] = ["BeforeBlockTraffic", "AfterBlockTraffic"];

/// What the safety phase did, for the figures.
#[derive(Debug, Default)]
struct Tally {
    /// How each round's deployment ended.
    outcomes: Vec<String>,
    /// Stops with rollback issued.
    stops: u64,
    /// Hook faults planted.
    hook_faults: u64,
    /// `READY_WAIT` continues the cluster accepted.
    continues: u64,
    /// The chaos, summed over rounds.
    chaos: ChaosStats,
}

impl Tally {
    fn add(&mut self, stats: ChaosStats) {
        self.chaos.crashes += stats.crashes;
        self.chaos.leader_crashes += stats.leader_crashes;
        self.chaos.network_faults += stats.network_faults;
        self.chaos.skews += stats.skews;
    }
}

/// Runs the scenario.
///
/// # Errors
/// A setup failure (the cluster did not form, the group could not be created, a
/// deployment was refused).
pub async fn run(config: SimConfig) -> Result<ScenarioOutcome, ScenarioError> {
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x626c_7565_2d67_7265);
    let mut verdicts = Verdicts::default();
    let mut cluster = SimCluster::start(config).await?;
    let configuration = pick_configuration(&mut rng);
    let steps = ConfigChoice::pick_blue_green(&mut rng);
    cluster.trace.note(&format!("blue/green configuration {configuration:?}, {steps:?}"));
    let app = App::create_blue_green(&cluster, &mut rng, 3, DRAIN_SECONDS, configuration, steps).await?;
    baseline(&cluster, &app, &mut rng, configuration, &mut verdicts).await?;

    cluster.trace.note("safety phase");
    let safety_started = Instant::now();
    let mut tally = Tally::default();
    for round in 0..ROUNDS {
        let revision = app.revisions[1 + round % 2];
        if !one_round(&mut cluster, &app, &mut rng, (revision, configuration), &mut tally).await? {
            break;
        }
    }
    let safety_secs = safety_started.elapsed().as_secs_f64();
    let liveness_started = Instant::now();
    let last = last_deployment(&mut cluster, &app, &mut rng, configuration, &mut verdicts).await?;
    liveness::final_checks(&cluster, &mut verdicts).await;
    let liveness_secs = liveness_started.elapsed().as_secs_f64();

    let mut outcome = ScenarioOutcome::of_cluster(verdicts, start, &cluster);
    let figures = &mut outcome.figures;
    let action = configuration.terminate_blue_instances_on_deployment_success;
    figures.insert("blue_instances".into(), json!(format!("{:?}", action.action)));
    figures.insert("traffic_steps".into(), json!(format!("{steps:?}")));
    figures.insert("termination_wait_secs".into(), json!(action.termination_wait_time_in_seconds.unwrap_or(0)));
    let ready = configuration.deployment_ready_option;
    figures.insert(
        "ready_wait_secs".into(),
        json!(waits_when_ready(&configuration).then_some(ready.wait_time_in_seconds)),
    );
    figures.insert("ready_continues".into(), json!(tally.continues));
    figures.insert("chaos_deployments".into(), json!(tally.outcomes));
    figures.insert("last_deployment".into(), json!(format!("{last:?}")));
    figures.insert("stops_with_rollback".into(), json!(tally.stops));
    figures.insert("hook_faults".into(), json!(tally.hook_faults));
    figures.insert("crashes".into(), json!(tally.chaos.crashes));
    figures.insert("leader_crashes".into(), json!(tally.chaos.leader_crashes));
    figures.insert("network_faults".into(), json!(tally.chaos.network_faults));
    figures.insert("clock_skews".into(), json!(tally.chaos.skews));
    cluster.with_observer(|observer| {
        let monitor = &observer.monitor;
        figures.insert("observer_entries_replayed".into(), json!(observer.next_index()));
        figures.insert("route_checks".into(), json!(monitor.route_never_empty.checks));
        figures.insert("least_open_weight".into(), json!(monitor.route_never_empty.least_open_weight));
        figures.insert("green_share_checks".into(), json!(monitor.green_share.checks));
        figures.insert("green_share_rises".into(), json!(monitor.green_share.rises));
        figures.insert("rollbacks_checked".into(), json!(monitor.rollback_blue.rollbacks_checked));
        figures.insert("blue_targets_restored".into(), json!(monitor.rollback_blue.blue_restored));
        figures.insert("open_targets_checked".into(), json!(monitor.traffic.open_targets_checked));
    });
    figures.insert("safety_secs".into(), json!((safety_secs * 1000.0).round() / 1000.0));
    figures.insert("liveness_secs".into(), json!((liveness_secs * 1000.0).round() / 1000.0));
    cluster.shutdown().await;
    Ok(outcome)
}

/// The group's blue/green settings for this seed: go on as soon as green is ready, or
/// [`READY_WAIT_PROBABILITY`] of the time wait 5–15 s for `READY_WAIT`; a termination
/// wait of 0–4 s (so stops land in it), and `TERMINATE` 30 % of the time.
fn pick_configuration(rng: &mut ChaCha8Rng) -> BlueGreenDeploymentConfiguration {
    let mut configuration = BlueGreenDeploymentConfiguration::default();
    if rng.gen_bool(READY_WAIT_PROBABILITY) {
        let ready = &mut configuration.deployment_ready_option;
        ready.action_on_timeout = ActionOnTimeout::StopDeployment;
        ready.wait_time_in_seconds = Some(rng.gen_range(5..=15));
    }
    let termination = &mut configuration.terminate_blue_instances_on_deployment_success;
    termination.termination_wait_time_in_seconds = Some(rng.gen_range(0..=4));
    if rng.gen_bool(0.3) {
        termination.action = BlueInstanceAction::Terminate;
    }
    configuration
}

/// Deploys revision 1 to the odd hosts with no fault (continued once ready, under
/// `STOP_DEPLOYMENT`) and records `baseline_succeeds`.
async fn baseline(
    cluster: &SimCluster,
    app: &App,
    rng: &mut ChaCha8Rng,
    configuration: BlueGreenDeploymentConfiguration,
    verdicts: &mut Verdicts,
) -> Result<(), ScenarioError> {
    let odd = TargetSelector {
        tag_filters: vec![TagFilter {
            key: Some("parity".into()),
            value: Some("odd".into()),
            filter_type: TagFilterType::KeyAndValue,
        }],
        tag_set: Vec::new(),
    };
    let id = app.deploy_to(cluster, rng, app.revisions[0], Duration::from_secs(60), Some(odd)).await?;
    if waits_when_ready(&configuration) {
        continue_once_ready(cluster, &id).await?;
    }
    let ended = wait_ended(cluster, &id).await;
    verdicts.record(
        "baseline_succeeds",
        match (ended, app::status(cluster, &id)) {
            (Ok(()), Some(DeploymentStatus::Succeeded)) => Ok(()),
            (_, status) => Err(Violation::new(format!("the fault-free deployment {id} ended {status:?}"))),
        },
    );
    Ok(())
}

/// Waits for deployment `id` to end, within its deadline.
async fn wait_ended(cluster: &SimCluster, id: &DeploymentId) -> Result<(), ClusterError> {
    let limit = deployment_limit(cluster);
    cluster
        .wait_for("a blue/green deployment to end", limit, |cluster| {
            app::status(cluster, id).is_some_and(DeploymentStatus::is_terminal)
        })
        .await
}

/// One deployment of `revision` under chaos (see the module). Returns false when it did
/// not end within its deadline after the faults paused: the next one would be refused,
/// and the liveness phase reports it.
async fn one_round(
    cluster: &mut SimCluster,
    app: &App,
    rng: &mut ChaCha8Rng,
    (revision, configuration): (RevisionId, BlueGreenDeploymentConfiguration),
    tally: &mut Tally,
) -> Result<bool, ScenarioError> {
    let settings = chaos_settings(cluster.all().len());
    cluster.clear_host_faults();
    tally.hook_faults += plant_hook_fault(cluster, rng);
    let id = app.deploy(cluster, rng, revision, Duration::from_secs(60)).await?;
    let ended = |cluster: &SimCluster| app::status(cluster, &id).is_some_and(DeploymentStatus::is_terminal);
    if waits_when_ready(&configuration) {
        let ready = |cluster: &SimCluster| {
            ended(cluster) || phase_of(cluster, &id).is_some_and(|now| now >= BlueGreenPhase::Ready)
        };
        tally.add(chaos::run(cluster, rng, &settings, ROUND_BUDGET, ready).await?);
        if rng.gen_bool(CONTINUE_PROBABILITY) && continue_when_ready(cluster, &id).await? {
            tally.continues += 1;
        }
    }
    if rng.gen_bool(STOP_PROBABILITY) {
        let phase = STOP_PHASES[rng.gen_range(0..STOP_PHASES.len())];
        let reached = |cluster: &SimCluster| ended(cluster) || phase_of(cluster, &id).is_some_and(|now| now >= phase);
        tally.add(chaos::run(cluster, rng, &settings, ROUND_BUDGET, reached).await?);
        recover(cluster).await?;
        if !ended(cluster) {
            stop_with_rollback(cluster, rng, &id).await?;
            tally.stops += 1;
        }
    }
    let done = |cluster: &SimCluster| ended(cluster) && app::all_ended(cluster);
    tally.add(chaos::run(cluster, rng, &settings, ROUND_BUDGET, done).await?);
    recover(cluster).await?;
    let finished = wait_ended(cluster, &id).await.is_ok();
    let status = app::status(cluster, &id);
    tally.outcomes.push(match status {
        Some(DeploymentStatus::Failed) => format!("Failed ({})", error_of(cluster, &id)),
        Some(status) => format!("{status:?}"),
        None => "not found".to_string(),
    });
    Ok(finished)
}

/// The chaos of `rolling-chaos`, with longer pauses between faults (2–8 s instead of
/// 0.5–5 s): a blue/green deployment fails on any blue host its leader counts dead while
/// green installs, and at `rolling-chaos`'s rate 10 of 294 deployments succeeded (7
/// nodes, seeds 1–98), so the termination wait and `TERMINATE` were barely run; at this
/// rate 32 of 300 succeed and 27 are stopped with rollback.
fn chaos_settings(nodes: usize) -> ChaosSettings {
    ChaosSettings { pause: (Duration::from_secs(2), Duration::from_secs(8)), ..ChaosSettings::for_nodes(nodes) }
}

/// The phase of blue/green deployment `id` as the observer replayed it.
fn phase_of(cluster: &SimCluster, id: &DeploymentId) -> Option<BlueGreenPhase> {
    cluster.with_observer(|observer| {
        observer.shadow().deployments.get(id).and_then(|deployment| deployment.blue_green).map(|run| run.phase)
    })
}

/// Heals the network and restarts every crashed node (skews and hook faults stay).
async fn recover(cluster: &mut SimCluster) -> Result<(), ClusterError> {
    cluster.heal();
    for id in cluster.crashed() {
        cluster.restart(id).await?;
    }
    Ok(())
}

/// Without faults: waits until deployment `id` is `Ready` (or further, or over) and
/// continues it. A deployment that never gets ready is left to the caller's verdict,
/// which its status fails.
async fn continue_once_ready(cluster: &SimCluster, id: &DeploymentId) -> Result<(), ScenarioError> {
    let ready = |cluster: &SimCluster| {
        app::status(cluster, id).is_some_and(DeploymentStatus::is_terminal)
            || phase_of(cluster, id).is_some_and(|now| now >= BlueGreenPhase::Ready)
    };
    if cluster.wait_for("green to be ready", deployment_limit(cluster), ready).await.is_ok() {
        continue_when_ready(cluster, id).await?;
    }
    Ok(())
}

/// True when the group waits for `continue-deployment` once green is ready.
fn waits_when_ready(configuration: &BlueGreenDeploymentConfiguration) -> bool {
    configuration.deployment_ready_option.action_on_timeout == ActionOnTimeout::StopDeployment
}

/// The operator runs `continue-deployment --deployment-wait-type READY_WAIT` on `id`
/// (called once it is `Ready` or further, or has ended). Returns whether the cluster
/// accepted it: it refuses when the deployment is past `Ready` or over.
async fn continue_when_ready(cluster: &SimCluster, id: &DeploymentId) -> Result<bool, ScenarioError> {
    let phase = phase_of(cluster, id);
    let command = Command::ContinueDeployment { deployment_id: id.clone(), wait_type: DeploymentWaitType::ReadyWait };
    let outcome = cluster.propose(command, Duration::from_secs(60)).await?;
    cluster.trace.note(&format!("continue {id} (phase {phase:?}): {outcome:?}"));
    Ok(outcome == Outcome::Done)
}

/// The operator stops deployment `id` with `--auto-rollback`.
async fn stop_with_rollback(
    cluster: &SimCluster,
    rng: &mut ChaCha8Rng,
    id: &DeploymentId,
) -> Result<(), ScenarioError> {
    let mut bytes = [0u8; 9];
    rng.fill_bytes(&mut bytes);
    let rollback_id = Some(DeploymentId::from_random(bytes));
    let command = Command::StopDeployment { deployment_id: id.clone(), rollback_id };
    let outcome = cluster.propose(command, Duration::from_secs(60)).await?;
    cluster.trace.note(&format!("stop {id} with rollback (phase {:?}): {outcome:?}", phase_of(cluster, id)));
    Ok(())
}

/// Maybe one hook fault: on a green host (a host not serving the route) in an install,
/// validate or allow event, or on a blue host in a block event; a quarter hang instead
/// of failing. Returns how many were planted.
fn plant_hook_fault(cluster: &SimCluster, rng: &mut ChaCha8Rng) -> u64 {
    let serving: Vec<_> = cluster.with_observer(|observer| {
        let state = observer.shadow();
        state
            .routes
            .get(ROUTE)
            .map(|route| open_weights(state, route).into_iter().filter(|(_, weight)| *weight > 0).map(|(id, _)| id))
            .into_iter()
            .flatten()
            .collect()
    });
    let (green, blue): (Vec<_>, Vec<_>) = cluster.all().into_iter().partition(|id| !serving.contains(id));
    let (hosts, events): (&[_], &[&str]) = match rng.gen_range(0..10) {
        0..=4 => (&green, &GREEN_FAULT_EVENTS),
        5..=6 => (&blue, &BLUE_FAULT_EVENTS),
        _ => return 0,
    };
    if hosts.is_empty() {
        return 0;
    }
    let host = hosts[rng.gen_range(0..hosts.len())];
    let event = events[rng.gen_range(0..events.len())];
    let fault = if rng.gen_bool(0.25) { HookFault::Hang } else { HookFault::Fail };
    cluster.fault_hook(host, event, fault);
    1
}

/// The liveness phase: faults stop, every deployment must end, then a fault-free
/// deployment must succeed and leave the route serving exactly its green fleet
/// (`fault_free_deployment_succeeds`). Returns that deployment's status.
async fn last_deployment(
    cluster: &mut SimCluster,
    app: &App,
    rng: &mut ChaCha8Rng,
    configuration: BlueGreenDeploymentConfiguration,
    verdicts: &mut Verdicts,
) -> Result<Option<DeploymentStatus>, ScenarioError> {
    cluster.trace.note("liveness phase: faults stop");
    cluster.heal_everything().await?;
    let limit = deployment_limit(cluster);
    // Settled, not just ended: a leader that has not heard from a restarted blue host
    // yet would count it dead and fail its target.
    let settled = liveness::wait_settled(cluster, limit).await;
    cluster.with_observer(|observer| {
        let shadow = observer.shadow().clone();
        observer.monitor.deadline.final_check(&shadow);
    });
    if let Err(error) = settled {
        let verdict = Err(Violation::new(format!("the deployments never ended: {error}")));
        verdicts.record("fault_free_deployment_succeeds", verdict);
        return Ok(None);
    }
    let revision = app.revisions[1 + ROUNDS % 2];
    let id = app.deploy(cluster, rng, revision, Duration::from_secs(60)).await?;
    if waits_when_ready(&configuration) {
        continue_once_ready(cluster, &id).await?;
    }
    let ended = wait_ended(cluster, &id).await;
    let status = app::status(cluster, &id);
    let verdict = match (ended, status) {
        (Ok(()), Some(DeploymentStatus::Succeeded)) => serves_green_only(cluster, &id),
        (_, status) => {
            Err(Violation::new(format!("the fault-free deployment {id} ended {status:?}: {}", error_of(cluster, &id))))
        }
    };
    verdicts.record("fault_free_deployment_succeeds", verdict);
    Ok(status)
}

/// Why deployment `id` failed, as its record says.
fn error_of(cluster: &SimCluster, id: &DeploymentId) -> String {
    cluster.with_observer(|observer| {
        let deployment = observer.shadow().deployments.get(id);
        let error = deployment.and_then(|deployment| deployment.error_information.as_ref());
        error.map_or_else(|| "no error recorded".to_string(), |error| format!("{:?}: {}", error.code, error.message))
    })
}

/// Ok when route [`ROUTE`] takes traffic on every green target of `id` and nothing else.
fn serves_green_only(cluster: &SimCluster, id: &DeploymentId) -> Result<(), Violation> {
    cluster.with_observer(|observer| {
        let state = observer.shadow();
        let (Some(deployment), Some(route)) = (state.deployments.get(id), state.routes.get(ROUTE)) else {
            return Err(Violation::new(format!("deployment {id} or route {ROUTE} is missing")));
        };
        let open: Vec<_> = open_weights(state, route).into_iter().filter(|(_, weight)| *weight > 0).collect();
        let green: Vec<_> = deployment
            .targets
            .values()
            .filter(|target| target.target_label == Some(TargetLabel::Green))
            .map(|target| target.target_id)
            .collect();
        let mut open_ids: Vec<_> = open.iter().map(|(host, _)| *host).collect();
        open_ids.sort();
        if open_ids == green {
            Ok(())
        } else {
            Err(Violation::new(format!(
                "after deployment {id} succeeded route {ROUTE} serves {open_ids:?}, its green fleet is {green:?}"
            )))
        }
    })
}
