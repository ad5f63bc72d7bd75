//! Property tests of the planner over random fleets, rules, outcomes and host deaths,
//! played against the real replicated state by the [`Harness`].
//!
//! Properties, checked on every case:
//! - (a) after every planning round, the healthy targets not in flight are at least
//!   `min(M, H before the round)`: no round takes more healthy targets out of service
//!   than the minimum-healthy-hosts rule allows (§4.2);
//! - (b) every deployment ends within `2N + 2` rounds, plus two per bake with canary or
//!   linear steps (a bake is at most 90 s, a round 60 s);
//! - (c) it ends Succeeded iff at least `M` and at least one target succeeded — except
//!   that when succeeded hosts die, the targets they held back are skipped and the
//!   deployment fails even with `S ≥ M` (see the module doc of `rollout`).
//!
//! - (e) with canary or linear steps, a round never starts targets beyond the end of
//!   the current step, and a round that begins a new step does so only once every
//!   started target has finished and the bake since the last of them has passed.
//!
//! (f) does the same for (e) with [`IgnoresSteps`], a planner that forgets the steps.
//!
//! (d) proves the checker can fail: with a planted bug ([`OneTooMany`], a planner that
//! adds one more pending target to every wave the real one starts), the same check must
//! find a violation of (a).

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestError, TestRunner};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use fleetmesh_state::model::deployment::{DeploymentStatus, ErrorCode, TargetStatus};
use fleetmesh_state::model::resources::{MinimumHealthyHosts, MinimumHealthyHostsType, ONE_AT_A_TIME};
use fleetmesh_state::NodeId;

use fleetmesh_state::model::deployment::Deployment;
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::resources::DeploymentGroup;

use super::action::Action;
use super::fleet::{FleetView, Liveness};
use super::harness::{canary, linear, Config, Harness};
use super::plan::PlannerSettings;
use super::planner::{CodeDeployPlanner, WavePlanner};
use super::rule::minimum_healthy_count;
use super::steps::step_size;

/// A planted bug: CodeDeploy's planner, except that every wave it starts takes one more
/// pending target on a live host with it.
#[derive(Debug)]
struct OneTooMany;

impl WavePlanner for OneTooMany {
    fn plan(
        &self,
        deployment: &Deployment,
        group: &DeploymentGroup,
        fleet: &FleetView,
        now: UnixMillis,
        settings: &PlannerSettings,
    ) -> Vec<Action> {
        let mut actions = CodeDeployPlanner.plan(deployment, group, fleet, now, settings);
        for action in &mut actions {
            if let Action::Start(wave) = action {
                let extra = deployment.targets.values().find(|target| {
                    target.status == TargetStatus::Pending
                        && !wave.contains(&target.target_id)
                        && fleet.liveness(target.target_id) == Liveness::Alive
                });
                if let (false, Some(extra)) = (wave.is_empty(), extra) {
                    wave.push(extra.target_id);
                }
            }
        }
        actions
    }
}

/// A planted bug: CodeDeploy's planner on a copy of the deployment without its steps.
#[derive(Debug)]
struct IgnoresSteps;

impl WavePlanner for IgnoresSteps {
    fn plan(
        &self,
        deployment: &Deployment,
        group: &DeploymentGroup,
        fleet: &FleetView,
        now: UnixMillis,
        settings: &PlannerSettings,
    ) -> Vec<Action> {
        let mut without_steps = deployment.clone();
        without_steps.traffic_routing = None;
        CodeDeployPlanner.plan(&without_steps, group, fleet, now, settings)
    }
}

/// What a target's agent does once started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Succeed,
    Fail,
    /// The host dies while its lifecycle events run and never reports.
    DieInFlight,
}

/// One random deployment.
#[derive(Clone, Debug)]
struct Case {
    rule: MinimumHealthyHosts,
    /// Per host (index = id − 1): what its agent does.
    outcomes: Vec<Outcome>,
    /// Per host: dead before the deployment starts.
    dead_at_start: Vec<bool>,
    /// Per host: an earlier deployment left it unhealthy.
    unhealthy_record: Vec<bool>,
    /// Canary (true) or linear (false) steps of a percentage, baking seconds.
    steps: Option<(bool, u32, u32)>,
    /// Drives which in-flight targets report in each round, and pending-host deaths.
    seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (1usize..=40).prop_flat_map(|hosts| {
        let count = u32::try_from(hosts).expect("at most 40 hosts");
        let rule = prop_oneof![
            (0..=count + 1).prop_map(|value| MinimumHealthyHosts { kind: MinimumHealthyHostsType::HostCount, value }),
            (0u32..=99).prop_map(|value| MinimumHealthyHosts { kind: MinimumHealthyHostsType::FleetPercent, value }),
            Just(MinimumHealthyHosts { kind: MinimumHealthyHostsType::MostConcurrency, value: 1 }),
        ];
        let outcome = prop_oneof![
            6 => Just(Outcome::Succeed),
            2 => Just(Outcome::Fail),
            1 => Just(Outcome::DieInFlight),
        ];
        (
            rule,
            proptest::collection::vec(outcome, hosts),
            proptest::collection::vec(proptest::bool::weighted(0.1), hosts),
            proptest::collection::vec(proptest::bool::weighted(0.1), hosts),
            proptest::option::weighted(0.3, (any::<bool>(), 1u32..=99, 0u32..=90)),
            any::<u64>(),
        )
            .prop_map(|(rule, outcomes, dead_at_start, unhealthy_record, steps, seed)| Case {
                rule,
                outcomes,
                dead_at_start,
                unhealthy_record,
                steps,
                seed,
            })
    })
}

/// `H`, restated from §4.2 independently of the planner's own code: succeeded targets
/// on live hosts, and untouched targets (pending, or skipped by the finish) on live
/// hosts the group does not record as unhealthy.
fn healthy_not_in_flight(harness: &Harness) -> usize {
    let group = harness.group();
    harness
        .deployment()
        .targets
        .values()
        .filter(|target| {
            let id = target.target_id;
            let is_live = harness.fleet.liveness(id) != Liveness::Dead;
            match target.status {
                TargetStatus::Succeeded => is_live,
                TargetStatus::Pending | TargetStatus::Skipped => {
                    is_live && group.instances.get(&id).is_none_or(|record| record.healthy)
                }
                _ => false,
            }
        })
        .count()
}

/// Plays `case` with `planner` under `settings` and checks (a), (b) and (c).
fn check(case: &Case, settings: PlannerSettings, planner: Box<dyn WavePlanner>) -> Result<(), TestCaseError> {
    let hosts = case.outcomes.len();
    let config = match (case.steps, case.rule.kind) {
        (Some((true, percentage, seconds)), _) => canary(percentage, seconds, Some(case.rule)),
        (Some((false, percentage, seconds)), _) => linear(percentage, seconds, Some(case.rule)),
        (None, MinimumHealthyHostsType::MostConcurrency) => Config::Predefined(ONE_AT_A_TIME),
        (None, _) => Config::Custom(case.rule),
    };
    let mut harness = Harness::new(hosts as u64, config);
    harness.settings = settings;
    harness.planner = planner;
    for host in 1..=hosts {
        if case.unhealthy_record[host - 1] {
            harness.set_record(host as u64, None, false);
        }
        if case.dead_at_start[host - 1] {
            harness.kill(host as u64);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(case.seed);
    let minimum = minimum_healthy_count(case.rule, hosts);
    let step_sizes = case.steps.map(|(is_canary, percentage, seconds)| {
        let size = step_size(percentage, hosts);
        (size, if is_canary { usize::MAX } else { size }, u64::from(seconds) * 1000)
    });
    let bakes = step_sizes.map_or(0, |(first, later, _)| hosts.saturating_sub(first).div_ceil(later));
    let rounds_max = 2 * hosts + 2 + 2 * bakes;
    let mut rounds = 0;
    while !harness.deployment().status.is_terminal() {
        rounds += 1;
        prop_assert!(rounds <= rounds_max, "(b) not finished after {rounds_max} rounds");
        let healthy_before = healthy_not_in_flight(&harness);
        let started_before = started_targets(&harness);
        let actions = harness.step();
        if let Some((first, later, bake_ms)) = step_sizes {
            check_steps(&harness, started_before, (first, later, bake_ms))?;
        }
        let healthy_after = healthy_not_in_flight(&harness);
        prop_assert!(
            healthy_after >= minimum.min(healthy_before),
            "(a) round {rounds} left {healthy_after} healthy (M = {minimum}, H was \
             {healthy_before}) after {actions:?}"
        );
        play_agents(&mut harness, case, &mut rng);
        // One grace per round: a host that died this round is lost by the next.
        harness.advance(settings.host_lost_after_ms);
    }

    let deployment = harness.deployment();
    let succeeded = deployment.overview().Succeeded as usize;
    let is_success = succeeded >= minimum && succeeded >= 1;
    let is_succeeded = deployment.status == DeploymentStatus::Succeeded;
    // The one documented exception to (c): succeeded hosts that died stop counting as
    // healthy, which can leave the remaining targets unable to start (skipped) even
    // though S ≥ M; the deployment then fails, because the group was not updated.
    let lost_successes = deployment
        .targets
        .values()
        .filter(|target| target.status == TargetStatus::Succeeded)
        .filter(|target| harness.fleet.liveness(target.target_id) == Liveness::Dead)
        .count();
    let is_blocked_by_lost_successes = lost_successes > 0 && deployment.overview().Skipped > 0;
    if is_succeeded || !is_blocked_by_lost_successes {
        prop_assert_eq!(is_succeeded, is_success, "(c) {} succeeded, M = {}", succeeded, minimum);
    }
    if deployment.status == DeploymentStatus::Failed {
        let code = deployment.error_information.as_ref().map(|error| error.code);
        let unsatisfiable = case.rule.kind != MinimumHealthyHostsType::MostConcurrency && minimum >= hosts;
        let expected = if unsatisfiable { ErrorCode::HealthConstraintsInvalid } else { ErrorCode::HealthConstraints };
        prop_assert_eq!(code, Some(expected));
        if unsatisfiable {
            prop_assert_eq!(deployment.waves, 0, "an unsatisfiable rule touched a host");
        }
    }
    Ok(())
}

/// Targets started so far (any wave), and when the last of them finished (`None` while
/// one runs).
fn started_targets(harness: &Harness) -> (usize, Option<UnixMillis>) {
    let started: Vec<_> = harness.deployment().targets.values().filter(|target| target.wave > 0).collect();
    let is_running = started.iter().any(|target| target.status == TargetStatus::InProgress);
    let finished_at = started.iter().map(|target| target.last_updated_at).max().unwrap_or(UnixMillis(0));
    (started.len(), (!is_running).then_some(finished_at))
}

/// (e): the round that just ran respected the steps (first, later, bake_ms), restated
/// from issue 14 item 4 independently of `steps.rs`.
fn check_steps(
    harness: &Harness,
    (started_before, finished_at): (usize, Option<UnixMillis>),
    (first, later, bake_ms): (usize, usize, u64),
) -> Result<(), TestCaseError> {
    let (started_after, _) = started_targets(harness);
    // The ends of the steps: first, first + later, …
    let (mut begin, mut end) = (0, first);
    while end <= started_before {
        (begin, end) = (end, end.saturating_add(later));
    }
    prop_assert!(started_after <= end, "(e) {started_after} started, past the step ending at {end}");
    let begins_step = started_after > started_before && begin > 0 && begin == started_before;
    if begins_step {
        let Some(finished_at) = finished_at else {
            return Err(TestCaseError::fail("(e) a step began while the one before still ran"));
        };
        prop_assert!(
            harness.now.0 >= finished_at.0 + bake_ms,
            "(e) a step began at {} before its bake ended at {}",
            harness.now.0,
            finished_at.0 + bake_ms
        );
    }
    Ok(())
}

/// The agents' side of a round: a random non-empty subset of the in-flight targets on
/// live hosts ends as its case says, and now and then a live host dies (pending, in
/// flight or already succeeded).
fn play_agents(harness: &mut Harness, case: &Case, rng: &mut ChaCha8Rng) {
    let mut running: Vec<NodeId> =
        harness.in_flight().into_iter().filter(|id| harness.fleet.liveness(*id) == Liveness::Alive).collect();
    running.shuffle(rng);
    let ending = if running.is_empty() { 0 } else { rng.gen_range(1..=running.len()) };
    for id in running.into_iter().take(ending) {
        match case.outcomes[id.0 as usize - 1] {
            Outcome::Succeed => harness.report(id, true),
            Outcome::Fail => harness.report(id, false),
            Outcome::DieInFlight => harness.kill(id.0),
        }
    }
    if rng.gen_bool(0.1) {
        let alive: Vec<u64> = (1..=case.outcomes.len() as u64)
            .filter(|host| harness.fleet.liveness(NodeId(*host)) == Liveness::Alive)
            .collect();
        if let Some(host) = alive.choose(rng) {
            harness.kill(*host);
        }
    }
}

proptest! {
    #[test]
    fn planner_respects_the_rule_terminates_and_judges_right(case in case_strategy()) {
        // Random fleets of 1–40 hosts under random rules, outcomes and deaths, played
        // against the real apply: asserts (a), (b) and (c) of the module doc.
        check(&case, PlannerSettings::default(), Box::new(CodeDeployPlanner))?;
    }
}

/// Runs the random cases against a planted bug: asserts the runner finds a failing case
/// and that its failure names `property`.
fn planted_bug_is_caught(planner: fn() -> Box<dyn WavePlanner>, property: &str) {
    let settings = PlannerSettings::default();
    let config = RunnerConfig { cases: 256, failure_persistence: None, ..RunnerConfig::default() };
    let mut runner = TestRunner::new_with_rng(
        config,
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let result = runner.run(&case_strategy(), |case| check(&case, settings, planner()));
    match result {
        Err(TestError::Fail(reason, case)) => {
            assert!(reason.message().contains(property), "failed for another reason: {reason} on {case:?}");
        }
        other => panic!("the planted bug went unnoticed: {other:?}"),
    }
}

#[test]
fn the_rule_check_catches_a_planner_that_takes_one_too_many() {
    // (d) The same random cases with the planted bug (OneTooMany): asserts the runner
    // finds a failing case and that the failure is property (a).
    planted_bug_is_caught(|| Box::new(OneTooMany), "(a)");
}

#[test]
fn the_step_check_catches_a_planner_that_ignores_the_steps() {
    // (f) Random cases with the planted bug IgnoresSteps: asserts the runner finds a
    // failing case and that the failure is property (e).
    planted_bug_is_caught(|| Box::new(IgnoresSteps), "(e)");
}
