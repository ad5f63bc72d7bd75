//! Time in the planner: the deployment timeout (`codedeploy.md` §6.3) and the grace a
//! dead host gets before its in-flight target is failed.
//!
//! CodeDeploy learns of a lost host only through agent timeouts of up to an hour
//! (§6.3); a fleetmesh leader sees liveness directly, so it gives a dead host a short
//! grace (to ride out a restart) and then fails its target. The planner never reads a
//! clock: `now` comes in, and [`next_deadline`] tells the leader when calling
//! [`plan`](super::plan) again could change the answer with no other input.

use fleetmesh_state::model::deployment::{Deployment, ErrorCode, ErrorInformation, Target, TargetStatus};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::NodeId;

use super::action::Action;
use super::fleet::{FleetView, Liveness};
use super::plan::PlannerSettings;
use super::steps::{bake_deadline, steps};

/// Default grace before an in-flight target on a dead host is failed.
pub const HOST_LOST_AFTER_MS_DEFAULT: u64 = 60_000;

/// Longest an in-place deployment may run (§6.3: 8 h), after which it fails with
/// `TIMEOUT`.
pub const IN_PLACE_DEPLOYMENT_TIMEOUT_MS: u64 = 8 * 60 * 60 * 1000;

/// The earliest time at which [`plan`](super::plan) may answer differently with no
/// other change: the deployment's timeout, the end of a dead host's grace, or the end
/// of the bake between two canary or linear steps. `None` for a finished deployment,
/// or before it started (only a plan can start it).
///
/// The leader's shell sleeps until the earlier of this deadline and the next event.
pub fn next_deadline(deployment: &Deployment, fleet: &FleetView, settings: &PlannerSettings) -> Option<UnixMillis> {
    if deployment.status.is_terminal() {
        return None;
    }
    let timeout_ms = timeout_ms(deployment, settings);
    let timeout = deployment.start_time.map(|start| UnixMillis(start.0.saturating_add(timeout_ms)));
    let host_lost = deployment
        .targets
        .values()
        .filter(|target| target.status == TargetStatus::InProgress)
        .filter_map(|target| dead_spell_start(target, fleet))
        .map(|since| UnixMillis(since.0.saturating_add(settings.host_lost_after_ms)))
        .min();
    if let Some(run) = &deployment.blue_green {
        // No overall timeout: each wait has its own bound, and hosts their event limits.
        return host_lost.into_iter().chain(super::blue_green::wait_deadline(deployment, run)).min();
    }
    timeout.into_iter().chain(host_lost).chain(bake_deadline(deployment)).min()
}

/// How long `deployment` may run: [`PlannerSettings::deployment_timeout_ms`] plus every
/// bake its canary or linear steps wait through, so that a long linear configuration
/// (10 % every hour) is not cut short by the 8 h limit meant for the hosts' work.
pub(super) fn timeout_ms(deployment: &Deployment, settings: &PlannerSettings) -> u64 {
    let baking_ms =
        steps(deployment).map_or(0, |steps| steps.bakes(deployment.targets.len()).saturating_mul(steps.bake_ms));
    settings.deployment_timeout_ms.saturating_add(baking_ms)
}

/// Fails every in-flight target and the deployment once it ran past its timeout
/// (§6.3); `None` while time remains or before it started.
pub(super) fn time_out(deployment: &Deployment, now: UnixMillis, settings: &PlannerSettings) -> Option<Vec<Action>> {
    let elapsed_ms = now.millis_since(deployment.start_time?);
    let limit_ms = timeout_ms(deployment, settings);
    if elapsed_ms < limit_ms {
        return None;
    }
    let in_flight: Vec<(NodeId, String)> = deployment
        .targets
        .values()
        .filter(|target| target.status == TargetStatus::InProgress)
        .map(|target| {
            let reason = format!(
                "the deployment timed out after {elapsed_ms} ms (limit {limit_ms} ms) \
                 while this target ran"
            );
            (target.target_id, reason)
        })
        .collect();
    let message = format!(
        "the deployment ran for {elapsed_ms} ms, past its limit of {limit_ms} ms; \
         {} in-flight targets were failed",
        in_flight.len()
    );
    let mut actions = Vec::new();
    if !in_flight.is_empty() {
        actions.push(Action::FailTargets(in_flight));
    }
    actions
        .push(Action::Finish { succeeded: false, error: Some(ErrorInformation { code: ErrorCode::Timeout, message }) });
    Some(actions)
}

/// The reason to fail an in-flight target whose host has been dead for at least
/// [`PlannerSettings::host_lost_after_ms`]; `None` while the host is alive, suspect,
/// or within its grace.
pub(super) fn lost_in_flight(
    target: &Target,
    fleet: &FleetView,
    now: UnixMillis,
    settings: &PlannerSettings,
) -> Option<String> {
    let dead_ms = now.millis_since(dead_spell_start(target, fleet)?);
    if dead_ms < settings.host_lost_after_ms {
        return None;
    }
    Some(format!(
        "host lost: node {} has been unreachable for {dead_ms} ms (limit {} ms) while its \
         lifecycle events ran",
        target.target_id, settings.host_lost_after_ms
    ))
}

/// When the current dead spell of a target's host began, for grace purposes: the
/// later of the view's `dead_since` and the target's last replicated update (the host
/// was alive when it last reported). `None` when the host is not dead.
fn dead_spell_start(target: &Target, fleet: &FleetView) -> Option<UnixMillis> {
    if fleet.liveness(target.target_id) != Liveness::Dead {
        return None;
    }
    let since = fleet.dead_since(target.target_id).unwrap_or(target.last_updated_at);
    Some(since.max(target.last_updated_at))
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::deployment::DeploymentStatus;
    use fleetmesh_state::model::resources::{ALL_AT_ONCE, ONE_AT_A_TIME};

    use super::super::harness::{failed_hosts, finish_code, Config, Harness};
    use super::*;

    #[test]
    fn a_lost_in_flight_host_is_failed_after_the_grace() {
        // AllAtOnce over 3 hosts, all started; host 2 dies. Asserts nothing happens one
        // millisecond before the grace ends, host 2 alone is failed ("host lost") when
        // it ends (the others still run, so no finish), and the deployment then
        // succeeds on the other two.
        let mut harness = Harness::new(3, Config::Predefined(ALL_AT_ONCE));
        harness.step();
        harness.kill(2);
        harness.advance(HOST_LOST_AFTER_MS_DEFAULT - 1);
        assert_eq!(harness.plan(), vec![]);
        harness.advance(1);
        let actions = harness.step();
        assert_eq!(failed_hosts(&actions), vec![2]);
        let Some(Action::FailTargets(failed)) = actions.first() else { panic!("{actions:?}") };
        assert!(failed[0].1.contains("host lost") && failed[0].1.contains("60000 ms"), "{}", failed[0].1);
        assert_eq!(actions.len(), 1, "{actions:?}");
        harness.report(NodeId(1), true);
        harness.report(NodeId(3), true);
        assert_eq!(harness.step(), vec![Action::Finish { succeeded: true, error: None }]);
    }

    #[test]
    fn a_host_missing_from_the_view_is_timed_from_its_last_report() {
        // OneAtATime over 2 hosts; host 1 starts, then vanishes from the view (dead
        // with no known start). Asserts the grace runs from the target's last
        // replicated update, and that on expiry the round fails host 1 and finishes.
        let mut harness = Harness::new(2, Config::Predefined(ONE_AT_A_TIME));
        harness.step();
        let started_at = harness.deployment().targets[&NodeId(1)].last_updated_at;
        harness.fleet.hosts.remove(&NodeId(1));
        harness.now = UnixMillis(started_at.0 + HOST_LOST_AFTER_MS_DEFAULT - 1);
        assert_eq!(harness.plan(), vec![]);
        harness.advance(1);
        let actions = harness.step();
        assert_eq!(failed_hosts(&actions), vec![1]);
        assert_eq!(finish_code(&actions), Some(Some(ErrorCode::HealthConstraints)));
    }

    #[test]
    fn a_deployment_past_its_timeout_fails_its_in_flight_targets() {
        // OneAtATime over 3 hosts, host 1 in flight. Asserts nothing happens just
        // before the 8 h limit; at the limit the round fails host 1 then finishes with
        // TIMEOUT, and applying it leaves host 1 Failed and hosts 2–3 Skipped.
        let mut harness = Harness::new(3, Config::Predefined(ONE_AT_A_TIME));
        harness.step();
        harness.advance(IN_PLACE_DEPLOYMENT_TIMEOUT_MS - 1);
        assert_eq!(harness.plan(), vec![]);
        harness.advance(1);
        let actions = harness.step();
        assert_eq!(failed_hosts(&actions), vec![1]);
        assert_eq!(finish_code(&actions), Some(Some(ErrorCode::Timeout)));
        let deployment = harness.deployment();
        assert_eq!(deployment.status, DeploymentStatus::Failed);
        let message = &deployment.error_information.as_ref().expect("error").message;
        assert!(message.contains("28800000 ms"), "{message}");
        assert_eq!(harness.status(1), TargetStatus::Failed);
        assert_eq!(harness.status(2), TargetStatus::Skipped);
        assert_eq!(harness.status(3), TargetStatus::Skipped);
    }

    #[test]
    fn the_next_deadline_is_the_timeout_or_a_grace_end() {
        // AllAtOnce over 2 hosts, started at t0; then host 2 dies at t1. Asserts the
        // deadline is t0 + 8 h, then t1 + grace, and that planning at that deadline
        // acts.
        let mut harness = Harness::new(2, Config::Predefined(ALL_AT_ONCE));
        let created = harness.deployment().clone();
        assert_eq!(next_deadline(&created, &harness.fleet, &harness.settings), None);
        harness.step();
        let started = harness.now;
        let deadline = next_deadline(harness.deployment(), &harness.fleet, &harness.settings);
        assert_eq!(deadline, Some(UnixMillis(started.0 + IN_PLACE_DEPLOYMENT_TIMEOUT_MS)));
        harness.advance(5_000);
        harness.kill(2);
        let deadline = next_deadline(harness.deployment(), &harness.fleet, &harness.settings)
            .expect("a dead in-flight host sets a deadline");
        assert_eq!(deadline, UnixMillis(harness.now.0 + HOST_LOST_AFTER_MS_DEFAULT));
        harness.now = deadline;
        assert_eq!(failed_hosts(&harness.plan()), vec![2]);
    }
}

#[cfg(test)]
mod step_tests {
    use super::super::harness::{linear, Harness};
    use super::*;

    #[test]
    fn bakes_extend_the_timeout() {
        // 10 hosts, linear 25 % (steps of 3: 3, 3, 3, 1) every 2 hours, so 3 bakes:
        // asserts the deadline once started is start + 8 h + 6 h, not start + 8 h, and
        // that the timeout's message states the longer limit.
        let mut harness = Harness::new(10, linear(25, 7_200, None));
        harness.step();
        let started = harness.deployment().start_time.expect("started");
        let limit_ms = IN_PLACE_DEPLOYMENT_TIMEOUT_MS + 3 * 7_200_000;
        assert_eq!(timeout_ms(harness.deployment(), &harness.settings), limit_ms);
        assert_eq!(
            next_deadline(harness.deployment(), &harness.fleet, &harness.settings),
            Some(UnixMillis(started.0 + limit_ms))
        );
        harness.now = UnixMillis(started.0 + limit_ms);
        let actions = harness.plan();
        let Some(Action::Finish { error: Some(error), .. }) = actions.last() else { panic!("{actions:?}") };
        assert!(error.message.contains(&format!("limit of {limit_ms} ms")), "{}", error.message);
    }
}
