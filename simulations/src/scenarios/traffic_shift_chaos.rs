//! `traffic-shift-chaos`: Lambda deployments (issue 15) moving one alias on a simulated
//! AWS Lambda ([`crate::aws`], with latency, throttling and 5xx answers), while leaders
//! are killed and partitioned away mid-shift.
//!
//! Rounds, each a deployment of the next function version with a configuration drawn
//! by the seed (canary, linear or all at once, intervals in seconds) and hooks drawn
//! too (none, `BeforeAllowTraffic`, `AfterAllowTraffic`; each answers `Succeeded`,
//! `Failed`, or never, then the hook timeout fails it). The group rolls back on
//! failure. In most rounds the leader is crashed or partitioned at a random moment.
//!
//! Invariants, per round, from what the simulated Lambda recorded:
//! - `shift_weights_monotonic`: the target version's share only grows, and the alias
//!   goes back to the current version only as the round's last change (a rollback);
//! - `shift_steps_applied_once`: no `UpdateAlias` ever set what was already there, and
//!   every change is a step of the round's plan;
//! - `shift_final_state_matches_outcome`: Succeeded ends on the target version alone;
//!   failed or stopped ends on the current version alone (rolled back, or never moved).
//!
//! Figure `max_shift_lateness_ms`: how long after its scheduled time (the previous
//! step's change plus the interval) a step's change landed, at most, over the run
//! (failovers and AWS retries included); `max_shift_lateness_quiet_ms` over the rounds
//! without a leader fault.

use std::collections::BTreeSet;
use std::time::Duration;

use fleetmesh_state::model::deployment::{DeploymentCreator, LifecycleEventStatus};
use fleetmesh_state::model::ids::{DeploymentId, UnixMillis};
use fleetmesh_state::model::resources::{AutoRollbackConfiguration, ComputePlatform, FileExistsBehavior};
use fleetmesh_state::model::revision::{Manifest, RevisionRecord, MANIFEST_FORMAT};
use fleetmesh_state::model::shift::{LambdaSpec, ShiftSpec};
use fleetmesh_state::model::traffic_routing::{
    TimeBasedCanary, TimeBasedLinear, TrafficRoutingConfig, TrafficRoutingType,
};
use fleetmesh_state::{Command, DeploymentGroupSpec, DeploymentSpec, FeatureLevel, Outcome};
use fleetmesh_transport::NodeId;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::time::Instant;

use super::{ScenarioError, ScenarioOutcome};
use crate::cluster::{SimCluster, SimConfig};
use crate::invariants::{Verdicts, Violation};
use check::check_round;

mod check;

const APPLICATION: &str = "fn";
const GROUP: &str = "live";
/// Deployments per run.
const ROUNDS: u64 = 6;
/// How long a hook may take to answer (the planner's setting for this scenario).
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a round may take before the run gives up on it.
const ROUND_LIMIT: Duration = Duration::from_secs(300);
/// How often the scenario answers hooks and checks the round.
const TICK: Duration = Duration::from_millis(100);

/// The cluster configuration: the hook timeout, and faults on the simulated Lambda.
pub fn config(mut config: SimConfig) -> SimConfig {
    config.planner.hook_timeout_ms = HOOK_TIMEOUT.as_millis() as u64;
    config.lambda_fault_rate = 0.08;
    config
}

/// What a hook does when invoked.
#[derive(Clone, Copy, Debug, PartialEq)]
enum HookPlan {
    /// Reports after this long.
    Answers(Duration, LifecycleEventStatus),
    /// Never reports: the hook timeout fails it.
    Silent,
}

/// Runs the scenario.
///
/// # Errors
/// A setup failure.
pub async fn run(config: SimConfig) -> Result<ScenarioOutcome, ScenarioError> {
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x7368_6966_7463_6861);
    let mut verdicts = Verdicts::default();
    let mut cluster = SimCluster::start(config).await?;
    setup(&cluster, &mut rng).await?;
    let mut figures = Figures::default();
    for round in 1..=ROUNDS {
        let current = alias_version(&cluster);
        play_round(&mut cluster, &mut rng, round, current, &mut verdicts, &mut figures).await?;
        cluster.heal_everything().await?;
    }
    cluster.check_event_logs().await;
    cluster.with_observer(|observer| observer.monitor.record(&mut verdicts));
    let (redundant, faults, invoked) = {
        let world = cluster.lambda.world();
        (world.redundant_sets, world.faults, world.invoked)
    };
    verdicts.record(
        "shift_steps_applied_once",
        match redundant {
            0 => Ok(()),
            count => Err(Violation::new(format!("{count} UpdateAlias call(s) set what was already there"))),
        },
    );
    let mut outcome = ScenarioOutcome::of_cluster(verdicts, start, &cluster);
    let out = &mut outcome.figures;
    out.insert("rounds".into(), json!(ROUNDS));
    out.insert("succeeded".into(), json!(figures.succeeded));
    out.insert("rolled_back".into(), json!(figures.rolled_back));
    out.insert("failed_unmoved".into(), json!(figures.unmoved));
    out.insert("leader_kills".into(), json!(figures.kills));
    out.insert("leader_partitions".into(), json!(figures.partitions));
    out.insert("faults_mid_update_alias".into(), json!(figures.mid_call));
    out.insert("alias_changes".into(), json!(cluster.lambda.world().changes.len()));
    out.insert("aws_faults".into(), json!(faults));
    out.insert("hook_invocations".into(), json!(invoked));
    out.insert("max_shift_lateness_ms".into(), json!(figures.max_lateness_ms));
    out.insert("max_shift_lateness_quiet_ms".into(), json!(figures.max_lateness_quiet_ms));
    cluster.shutdown().await;
    Ok(outcome)
}

/// Counts over the run.
#[derive(Debug, Default)]
struct Figures {
    succeeded: u64,
    rolled_back: u64,
    unmoved: u64,
    kills: u64,
    partitions: u64,
    max_lateness_ms: u64,
    /// The same over rounds without a leader fault.
    max_lateness_quiet_ms: u64,
    /// The last round's.
    round_lateness_ms: u64,
    mid_call: u64,
}

/// The Lambda application and its group (rollback on failure, a trigger), once the
/// cluster runs at the level that has triggers (Lambda deployments came before).
async fn setup(cluster: &SimCluster, rng: &mut ChaCha8Rng) -> Result<(), ScenarioError> {
    let level = cluster
        .wait_for("feature level 17", Duration::from_secs(60), |cluster| {
            cluster.with_observer(|observer| observer.shadow().feature_level >= FeatureLevel::TRIGGERS)
        })
        .await;
    level?;
    let commands = [
        Command::CreateApplication {
            name: APPLICATION.into(),
            application_id: hex_id(rng),
            compute_platform: ComputePlatform::Lambda,
        },
        Command::CreateDeploymentGroup {
            spec: DeploymentGroupSpec {
                alarm_configuration: None,
                application_name: APPLICATION.into(),
                deployment_group_name: GROUP.into(),
                deployment_config_name: "CodeDeployDefault.LambdaAllAtOnce".into(),
                target_selector: Default::default(),
                auto_rollback_configuration: AutoRollbackConfiguration::on_failure(),
                update_outdated_instances: false,
                deployment_option: Default::default(),
                load_balancer_info: None,
                deployment_type: Default::default(),
                blue_green_deployment_configuration: None,
                service_role_arn: None,
                ecs_services: Vec::new(),
                // Deployment events only: the trigger duty skips instance events of a
                // Lambda target (it has no host to describe), which the cursor check
                // would count as undelivered.
                trigger_configurations: vec![super::app::sim_trigger(&super::app::ALL_TRIGGER_EVENTS[..6])],
            },
            deployment_group_id: hex_id(rng),
        },
    ];
    for command in commands {
        propose(cluster, command).await?;
    }
    Ok(())
}

async fn propose(cluster: &SimCluster, command: Command) -> Result<(), ScenarioError> {
    match cluster.propose(command, Duration::from_secs(60)).await? {
        outcome @ Outcome::Rejected(_) => Err(ScenarioError::SetupRefused { outcome }),
        _ => Ok(()),
    }
}

fn hex_id(rng: &mut ChaCha8Rng) -> String {
    let mut bytes = [0u8; 8];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The version the simulated alias routes to alone (its primary version otherwise).
fn alias_version(cluster: &SimCluster) -> u64 {
    cluster.lambda.world().alias.version.parse().unwrap_or(1)
}

/// A routing config drawn by the seed.
fn draw_routing(rng: &mut ChaCha8Rng) -> TrafficRoutingConfig {
    let mut routing = TrafficRoutingConfig::ALL_AT_ONCE;
    match rng.gen_range(0..3) {
        0 => {
            routing.kind = TrafficRoutingType::TimeBasedCanary;
            routing.time_based_canary = Some(TimeBasedCanary {
                canary_percentage: [10, 25, 50][rng.gen_range(0..3)],
                canary_interval: None,
                canary_interval_seconds: Some(rng.gen_range(2..=10)),
            });
        }
        1 => {
            routing.kind = TrafficRoutingType::TimeBasedLinear;
            routing.time_based_linear = Some(TimeBasedLinear {
                linear_percentage: [20, 25, 34, 50][rng.gen_range(0..4)],
                linear_interval: None,
                linear_interval_seconds: Some(rng.gen_range(1..=5)),
            });
        }
        _ => {}
    }
    routing
}

fn draw_hook(rng: &mut ChaCha8Rng) -> HookPlan {
    match rng.gen_range(0..10) {
        0 => HookPlan::Silent,
        1 => HookPlan::Answers(Duration::from_millis(rng.gen_range(100..=3_000)), LifecycleEventStatus::Failed),
        _ => HookPlan::Answers(Duration::from_millis(rng.gen_range(100..=3_000)), LifecycleEventStatus::Succeeded),
    }
}

/// One round: a deployment from `current` to `current + 1`, faults, hook answers, and
/// the round's checks.
async fn play_round(
    cluster: &mut SimCluster,
    rng: &mut ChaCha8Rng,
    round: u64,
    current: u64,
    verdicts: &mut Verdicts,
    figures: &mut Figures,
) -> Result<(), ScenarioError> {
    let routing = draw_routing(rng);
    let config_name = format!("shift-{round}");
    propose(
        cluster,
        Command::CreateDeploymentConfig {
            name: config_name.clone(),
            deployment_config_id: hex_id(rng),
            compute_platform: ComputePlatform::Lambda,
            minimum_healthy_hosts: fleetmesh_state::model::platform_configs::NO_MINIMUM,
            traffic_routing_config: Some(routing),
        },
    )
    .await?;
    let mut hooks = Vec::new();
    let mut plans = Vec::new();
    for event in ["BeforeAllowTraffic", "AfterAllowTraffic"] {
        if rng.gen_bool(0.5) {
            hooks.push((event.to_string(), format!("{event}-hook")));
            plans.push(draw_hook(rng));
        }
    }
    let spec = LambdaSpec {
        function_name: "app".into(),
        alias: "live".into(),
        current_version: current,
        target_version: current + 1,
        hooks,
    };
    let id = create_deployment(cluster, rng, &spec, &config_name).await?;
    let changes_before = cluster.lambda.world().changes.len();
    let round_start = Instant::now();
    cluster.trace.note(&format!("round {round}: {id} moves {current} -> {} with {config_name}", current + 1));
    let fault_at = rng.gen_bool(0.8).then(|| round_start + Duration::from_millis(rng.gen_range(200..=8_000)));
    let faults_before = figures.kills + figures.partitions;
    drive(cluster, rng, &id, &plans, fault_at, figures).await?;
    let quiet = figures.kills + figures.partitions == faults_before;
    let ended = check_round(cluster, &id, &spec, routing, changes_before, verdicts, figures);
    if quiet {
        figures.max_lateness_quiet_ms = figures.max_lateness_quiet_ms.max(figures.round_lateness_ms);
    }
    if !ended {
        verdicts.record("shift_final_state_matches_outcome", Err(Violation::new(format!("round {round} did not end"))));
    }
    Ok(())
}

async fn create_deployment(
    cluster: &SimCluster,
    rng: &mut ChaCha8Rng,
    spec: &LambdaSpec,
    config_name: &str,
) -> Result<DeploymentId, ScenarioError> {
    let content = format!(
        "version: 0.0\nResources:\n  - app:\n      Type: AWS::Lambda::Function\n      Properties:\n        Name: app\n        \
         Alias: live\n        CurrentVersion: {}\n        TargetVersion: {}\n",
        spec.current_version, spec.target_version
    );
    let record = RevisionRecord {
        revision_id: RevisionRecord::content_id(&content),
        application_name: APPLICATION.into(),
        description: "sim".into(),
        size_bytes: content.len() as u64,
        unique_bytes: 0,
        chunk_count: 0,
        register_time: UnixMillis(0),
        registered_by: "sim".into(),
        created_by: None,
        seeds: Vec::new(),
        manifest: Manifest { format: MANIFEST_FORMAT, chunking: fleetmesh_node::revision::chunking(), entries: vec![] },
        app_spec: Some(content),
        source: None,
    };
    let revision_id = record.revision_id;
    propose(cluster, Command::RegisterRevision { record: Box::new(record) }).await?;
    let id = DeploymentId::from_random({
        let mut bytes = [0u8; 9];
        rng.fill_bytes(&mut bytes);
        bytes
    });
    let command = Command::CreateDeployment {
        spec: DeploymentSpec {
            alarm_configuration: None,
            application_name: APPLICATION.into(),
            deployment_group_name: GROUP.into(),
            revision_id,
            deployment_config_name: Some(config_name.to_string()),
            description: "sim".into(),
            ignore_application_stop_failures: false,
            file_exists_behavior: FileExistsBehavior::Overwrite,
            auto_rollback_configuration: None,
            creator: DeploymentCreator::User,
            targets: None,
            target_instances: None,
            shift: Some(ShiftSpec::Lambda(spec.clone())),
        },
        deployment_id: id.clone(),
    };
    propose(cluster, command).await?;
    Ok(id)
}

/// Until the deployment and its rollback end: answers hooks as planned (each execution
/// once, whatever the number of invocations), and strikes the fault at `fault_at`.
async fn drive(
    cluster: &mut SimCluster,
    rng: &mut ChaCha8Rng,
    id: &DeploymentId,
    plans: &[HookPlan],
    fault_at: Option<Instant>,
    figures: &mut Figures,
) -> Result<(), ScenarioError> {
    let deadline = Instant::now() + ROUND_LIMIT;
    let (mut answered, mut pending, mut hooks_seen) = (BTreeSet::new(), Vec::new(), 0usize);
    let (mut fault_at, mut armed) = (fault_at, false);
    cluster.lambda.world().stall_next_set = false;
    let mut heal_at: Option<(Instant, Option<NodeId>)> = None;
    while Instant::now() < deadline && !round_over(cluster, id) {
        cluster.sleep(TICK).await;
        let now = Instant::now();
        let invocations: Vec<_> = cluster.lambda.world().invocations.drain(..).collect();
        for (deployment, execution) in invocations {
            if answered.insert(execution.clone()) {
                // Hooks run in event order; the n-th distinct execution follows the n-th plan.
                let plan = plans.get(hooks_seen).copied().unwrap_or(HookPlan::Silent);
                hooks_seen += 1;
                if let HookPlan::Answers(delay, status) = plan {
                    pending.push((now + delay, DeploymentId(deployment), execution, status));
                }
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(at, ..)| *at <= now);
        pending = later;
        for (_, deployment_id, execution_id, status) in due {
            let command = Command::PutLifecycleEventHookExecutionStatus { deployment_id, execution_id, status };
            // A refused status (the hook timed out first) is part of the game.
            let _ = cluster.propose(command, Duration::from_secs(30)).await;
        }
        if fault_at.is_some_and(|at| now >= at) {
            // Half the faults strike while an UpdateAlias has changed the alias and
            // not answered: the case a new leader must read back, not apply again.
            let stalled = cluster.lambda.world().stalled;
            if armed && !stalled {
                continue;
            }
            if !armed && rng.gen_bool(0.5) {
                cluster.lambda.world().stall_next_set = true;
                armed = true;
                continue;
            }
            figures.mid_call += u64::from(stalled);
            fault_at = None;
            heal_at = strike(cluster, rng, figures).await;
        }
        if let Some((_, crashed)) = heal_at.filter(|(at, _)| now >= *at) {
            heal_at = None;
            match crashed {
                Some(node) => cluster.restart(node).await?,
                None => cluster.heal(),
            }
        }
    }
    Ok(())
}

/// Crashes or partitions the leader; returns when to undo it.
async fn strike(
    cluster: &mut SimCluster,
    rng: &mut ChaCha8Rng,
    figures: &mut Figures,
) -> Option<(Instant, Option<NodeId>)> {
    let leader = cluster.leader()?;
    let undo = Instant::now() + Duration::from_millis(rng.gen_range(2_000..=8_000));
    if rng.gen_bool(0.5) {
        figures.kills += 1;
        cluster.crash(leader, rng.gen_bool(0.5)).await;
        Some((undo, Some(leader)))
    } else {
        figures.partitions += 1;
        cluster.partition(&[leader]);
        Some((undo, None))
    }
}

/// True when the deployment ended, and so did its rollback if it has one.
fn round_over(cluster: &SimCluster, id: &DeploymentId) -> bool {
    cluster.with_observer(|observer| {
        let state = observer.shadow();
        let Some(deployment) = state.deployments.get(id) else { return false };
        let rollback = deployment.rollback_info.as_ref().and_then(|info| info.rollback_deployment_id.as_ref());
        deployment.status.is_terminal()
            && rollback.is_none_or(|rollback| state.deployments.get(rollback).is_some_and(|r| r.status.is_terminal()))
    })
}
