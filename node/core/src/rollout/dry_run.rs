//! `create-deployment --dry-run` (issue 14, item 5): the waves and bakes the planner
//! would run for a deployment, found by running the real [`plan`] on a copy of the
//! record with every target succeeding at once and a clock that jumps to each bake's
//! end. Pure: the caller builds the record (as `CreateDeployment` would) and shows the
//! answer; nothing is proposed.
//!
//! ```text
//!  Deployment (copy) ─┐   loop: plan ─▶ apply to the copy ─▶ targets succeed
//!  group, fleet, now ─┼─▶          idle? ─▶ jump to the bake's end ─▶ [Wave][Bake]…[end]
//! ```
//!
//! The copy mirrors `apply` only as far as the planner reads it (statuses, waves,
//! update times, the start); the real commands are not replayed.

use fleetmesh_state::model::deployment::{Deployment, DeploymentStatus, ErrorInformation, TargetStatus};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::resources::DeploymentGroup;
use fleetmesh_state::NodeId;

use super::action::Action;
use super::fleet::FleetView;
use super::plan::{plan, PlannerSettings};
use super::steps::bake_deadline;

mod blue_green;

/// One entry of a dry run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlannedStep {
    /// These targets start together.
    Wave(Vec<NodeId>),
    /// Nothing starts for this long (milliseconds): the bake between two steps, or a
    /// blue/green deployment's interval or termination wait.
    Bake(u64),
    /// A blue/green deployment's traffic moves, or a wait for an operator, in words.
    Traffic(String),
}

/// How a dry run ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlannedEnd {
    /// The planner finishes the deployment: succeeded, or failed with this error.
    Finished {
        /// True when it would succeed.
        succeeded: bool,
        /// Why it would fail (`HEALTH_CONSTRAINTS_INVALID`, `NO_INSTANCES`, …).
        error: Option<ErrorInformation>,
    },
    /// The planner waits with no deadline (hosts not alive in the view).
    Stalled,
}

/// What [`dry_run`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DryRun {
    /// Waves and bakes, in order.
    pub steps: Vec<PlannedStep>,
    /// How it ends.
    pub end: PlannedEnd,
}

/// The waves and bakes [`plan`] runs for `deployment` from `now`, assuming every
/// started target succeeds at once and `fleet` does not change.
///
/// `deployment` is normally a `Created` record that was never committed. The loop is
/// bounded: each round starts a target, ends a bake or ends the run, so `3N + 4`
/// rounds suffice; more means the planner would stall, reported as
/// [`PlannedEnd::Stalled`].
pub fn dry_run(
    deployment: &Deployment,
    group: &DeploymentGroup,
    fleet: &FleetView,
    now: UnixMillis,
    settings: &PlannerSettings,
) -> DryRun {
    let mut copy = deployment.clone();
    let mut now = now;
    let mut steps = Vec::new();
    // Blue/green adds a round per phase and per traffic step (at most 99).
    let rounds_max = 3 * copy.targets.len() + 4 + 110;
    for _ in 0..rounds_max {
        let actions = plan(&copy, group, fleet, now, settings);
        let is_idle = actions.is_empty();
        for action in actions {
            match action {
                Action::Start(wave) => {
                    start(&mut copy, &wave, now);
                    if !wave.is_empty() {
                        steps.push(PlannedStep::Wave(wave));
                    }
                }
                Action::FailTargets(failed) => {
                    for (id, _) in failed {
                        set_status(&mut copy, id, TargetStatus::Failed, now);
                    }
                }
                Action::Finish { succeeded, error } => {
                    return DryRun { steps, end: PlannedEnd::Finished { succeeded, error } }
                }
                Action::BlueGreen(step) => {
                    if !blue_green::advance(&mut copy, step, now, &mut steps) {
                        return DryRun { steps, end: PlannedEnd::Stalled };
                    }
                }
            }
        }
        let in_flight: Vec<NodeId> = copy
            .targets
            .values()
            .filter(|target| target.status == TargetStatus::InProgress)
            .map(|target| target.target_id)
            .collect();
        for id in &in_flight {
            let status = blue_green::finished_status(&copy, *id);
            set_status(&mut copy, *id, status, now);
        }
        if is_idle && in_flight.is_empty() {
            let deadline = match &copy.blue_green {
                Some(run) => super::blue_green::wait_deadline(&copy, run),
                None => bake_deadline(&copy),
            };
            match deadline {
                Some(until) if until > now => {
                    steps.push(PlannedStep::Bake(until.millis_since(now)));
                    now = until;
                }
                _ => break,
            }
        }
    }
    DryRun { steps, end: PlannedEnd::Stalled }
}

/// `StartTargets` as `apply` does it, for the fields the planner reads.
fn start(deployment: &mut Deployment, wave: &[NodeId], now: UnixMillis) {
    if deployment.status == DeploymentStatus::Created {
        deployment.status = DeploymentStatus::InProgress;
        deployment.start_time = Some(now);
    }
    if wave.is_empty() {
        return;
    }
    deployment.waves += 1;
    let number = deployment.waves;
    for id in wave {
        if let Some(target) = deployment.targets.get_mut(id) {
            target.status = TargetStatus::InProgress;
            target.wave = number;
            target.last_updated_at = now;
        }
    }
}

pub(super) fn set_status(deployment: &mut Deployment, id: NodeId, status: TargetStatus, now: UnixMillis) {
    if let Some(target) = deployment.targets.get_mut(&id) {
        target.status = status;
        target.last_updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::resources::{MinimumHealthyHosts, MinimumHealthyHostsType, ONE_AT_A_TIME};

    use super::super::harness::{canary, ids, linear, Config, Harness};
    use super::*;

    fn run(harness: &Harness) -> DryRun {
        dry_run(harness.deployment(), harness.group(), &harness.fleet, harness.now, &harness.settings)
    }

    #[test]
    fn a_canary_dry_run_is_one_host_a_bake_and_the_rest() {
        // 10 hosts, canary 10 % baking 30 s, HOST_COUNT 0: asserts wave 1 = host 1,
        // a 30 s bake, wave 2 = hosts 2–10, success; and that the record is untouched.
        let rule = MinimumHealthyHosts { kind: MinimumHealthyHostsType::HostCount, value: 0 };
        let harness = Harness::new(10, canary(10, 30, Some(rule)));
        let before = harness.deployment().clone();
        let answer = run(&harness);
        let expected = vec![
            PlannedStep::Wave(ids(&[1])),
            PlannedStep::Bake(30_000),
            PlannedStep::Wave(ids(&[2, 3, 4, 5, 6, 7, 8, 9, 10])),
        ];
        assert_eq!(answer.steps, expected);
        assert_eq!(answer.end, PlannedEnd::Finished { succeeded: true, error: None });
        assert_eq!(harness.deployment(), &before);
    }

    #[test]
    fn a_dry_run_matches_the_real_rollout() {
        // 7 hosts, linear 30 % every 5 s under OneAtATime's rule, and OneAtATime alone:
        // asserts the dry run's waves are exactly those the harness plays through the
        // real apply.
        for config in [linear(30, 5, None), Config::Predefined(ONE_AT_A_TIME)] {
            let mut harness = Harness::new(7, config);
            let answer = run(&harness);
            let waves: Vec<Vec<NodeId>> = answer
                .steps
                .iter()
                .filter_map(|step| match step {
                    PlannedStep::Wave(wave) => Some(wave.clone()),
                    PlannedStep::Bake(_) | PlannedStep::Traffic(_) => None,
                })
                .collect();
            let played: Vec<Vec<NodeId>> = harness.run_to_end(&[]).iter().map(|wave| ids(wave)).collect();
            assert_eq!(waves, played);
        }
    }

    #[test]
    fn a_dry_run_with_dead_hosts_says_so() {
        // 3 hosts under OneAtATime with every host missing from the view: asserts the
        // planner's own refusal (all pending targets failed, HEALTH_CONSTRAINTS) is
        // reported, not a stall; with every host suspect, a stall.
        let mut harness = Harness::new(3, Config::Predefined(ONE_AT_A_TIME));
        harness.fleet = FleetView::default();
        let answer = run(&harness);
        assert!(matches!(answer.end, PlannedEnd::Finished { succeeded: false, .. }), "{answer:?}");
        harness.fleet = FleetView::default();
        for host in 1..=3 {
            harness.fleet.hosts.insert(NodeId(host), super::super::fleet::HostView::suspect());
        }
        assert_eq!(run(&harness), DryRun { steps: vec![], end: PlannedEnd::Stalled });
    }
}
