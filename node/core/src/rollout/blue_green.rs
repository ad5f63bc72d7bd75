//! The blue/green planner (`codedeploy.md` §2.3, §5.3): from the committed
//! [`BlueGreenRun`] and the targets' statuses to the next move. Like [`super::plan`] it
//! keeps nothing private: every wait is measured from the committed `phase_since`, so a
//! new leader resumes a half-done deployment from the record alone.
//!
//! Rules, per phase (after failing targets whose hosts are lost):
//! - `Created`: start every green target at once (green serves nothing yet, so the
//!   minimum-healthy rule has nothing to protect);
//! - `Installing`: a failed green target fails the deployment once none runs (traffic
//!   never moved); all green `Ready` → `Ready`, and on at once unless the group waits;
//! - `Ready`: `READY_WAIT` continued (or no wait asked) → `Rerouting`; the wait over →
//!   the deployment is `Stopped`;
//! - `Rerouting`: all green succeeded (allowed) → `Shifting` with canary or linear steps,
//!   else `Blocking` (blue starts); a failure fails the deployment, and the commit gives
//!   traffic back to blue when rollback is on;
//! - `Shifting`: each interval after the last committed step (`phase_since`), green's
//!   share moves up one step (`Shift`); the step that would reach 100 % is `Blocking`;
//! - `Blocking`: every blue target done → `TerminationWait`; a blue target that could not
//!   leave the routes fails the deployment;
//! - `TerminationWait`: continued or over → `Terminating` (`TERMINATE`) or success;
//! - `Terminating`: blue done → success.

use fleetmesh_state::model::blue_green::{
    green_steps, ActionOnTimeout, BlueGreenPhase, BlueGreenRun, BlueInstanceAction, GreenSteps, TargetLabel,
};
use fleetmesh_state::model::deployment::{Deployment, DeploymentStatus, ErrorCode, ErrorInformation, TargetStatus};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::{BlueGreenStep, NodeId};

use super::action::Action;
use super::deadlines::lost_in_flight;
use super::fleet::{FleetView, Liveness};
use super::PlannerSettings;

/// The actions for blue/green `deployment` now (see the module's rules).
pub(super) fn plan_blue_green(
    deployment: &Deployment,
    run: &BlueGreenRun,
    fleet: &FleetView,
    now: UnixMillis,
    settings: &PlannerSettings,
) -> Vec<Action> {
    if deployment.status.is_terminal() {
        return Vec::new();
    }
    let mut actions = Vec::new();
    let lost = lost_targets(deployment, fleet, now, settings);
    let status_of = |id: NodeId, status: TargetStatus| {
        if lost.iter().any(|(lost, _)| *lost == id) {
            TargetStatus::Failed
        } else {
            status
        }
    };
    let fleet_of = |label| Fleet::of(deployment, label, &status_of);
    let (green, blue) = (fleet_of(TargetLabel::Green), fleet_of(TargetLabel::Blue));
    if !lost.is_empty() {
        actions.push(Action::FailTargets(lost.clone()));
    }
    if deployment.status == DeploymentStatus::Created {
        actions.push(Action::Start(green.pending.clone()));
        return actions;
    }
    actions.extend(next_move(run, green_steps(deployment.traffic_routing), &green, &blue, now));
    actions
}

/// The phase move for `run` now, given its canary or linear `steps` and both fleets as
/// this round leaves them.
fn next_move(
    run: &BlueGreenRun,
    steps: Option<GreenSteps>,
    green: &Fleet,
    blue: &Fleet,
    now: UnixMillis,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let configuration = &run.configuration;
    let elapsed = now.millis_since(run.phase_since);
    match run.phase {
        BlueGreenPhase::Installing if green.failed > 0 && green.running == 0 => {
            actions.push(fail("green", green, "traffic did not move"));
        }
        BlueGreenPhase::Installing if green.all(&[TargetStatus::Ready]) => {
            actions.push(enter(BlueGreenPhase::Ready));
            if configuration.deployment_ready_option.action_on_timeout == ActionOnTimeout::ContinueDeployment {
                actions.push(enter(BlueGreenPhase::Rerouting));
            }
        }
        BlueGreenPhase::Ready => {
            let continue_now = run.ready_continued
                || configuration.deployment_ready_option.action_on_timeout == ActionOnTimeout::ContinueDeployment;
            if continue_now {
                actions.push(enter(BlueGreenPhase::Rerouting));
            } else if elapsed >= configuration.ready_wait_ms().unwrap_or(0) {
                actions.push(Action::BlueGreen(BlueGreenStep::ReadyWaitExpired));
            }
        }
        BlueGreenPhase::Rerouting if green.failed > 0 && green.running == 0 => {
            actions.push(fail("green", green, "its traffic events failed"));
        }
        BlueGreenPhase::Rerouting if green.all(&[TargetStatus::Succeeded]) => match steps {
            Some(_) => actions.push(enter(BlueGreenPhase::Shifting)),
            None => actions.extend(block(blue)),
        },
        BlueGreenPhase::Shifting => {
            if let Some(steps) = steps.filter(|steps| elapsed >= steps.interval_ms) {
                match steps.after(run.green_percent.unwrap_or(steps.first)) {
                    next if next >= 100 => actions.extend(block(blue)),
                    next => actions.push(Action::BlueGreen(BlueGreenStep::Shift(next))),
                }
            }
        }
        BlueGreenPhase::Blocking if blue.running == 0 && blue.failed > 0 => {
            actions.push(fail("blue", blue, "could not be taken off the routes"));
        }
        BlueGreenPhase::Blocking if blue.all(&[TargetStatus::Ready, TargetStatus::Succeeded]) => {
            actions.push(enter(BlueGreenPhase::TerminationWait));
        }
        BlueGreenPhase::TerminationWait
            if run.termination_continued || elapsed >= configuration.termination_wait_ms().unwrap_or(0) =>
        {
            let terminate =
                configuration.terminate_blue_instances_on_deployment_success.action == BlueInstanceAction::Terminate;
            if terminate && blue.total > 0 {
                actions.push(enter(BlueGreenPhase::Terminating));
            } else {
                actions.push(Action::Finish { succeeded: true, error: None });
            }
        }
        BlueGreenPhase::Terminating if blue.running == 0 => {
            actions.push(Action::Finish { succeeded: true, error: None });
        }
        _ => {}
    }
    actions
}

/// Blue leaves the routes (the last step of a shift), or with no blue fleet (a first
/// deployment onto an empty route) the termination wait begins at once.
fn block(blue: &Fleet) -> Vec<Action> {
    let mut actions = vec![enter(BlueGreenPhase::Blocking)];
    if blue.total == 0 {
        actions.push(enter(BlueGreenPhase::TerminationWait));
    }
    actions
}

/// When planning `deployment` again could decide something with no other input: the
/// end of its ready wait, of a canary or linear interval, or of its termination wait;
/// `None` for other phases.
pub(super) fn wait_deadline(deployment: &Deployment, run: &BlueGreenRun) -> Option<UnixMillis> {
    let configuration = &run.configuration;
    let wait_ms = match run.phase {
        BlueGreenPhase::Shifting => green_steps(deployment.traffic_routing)?.interval_ms,
        BlueGreenPhase::Ready
            if configuration.deployment_ready_option.action_on_timeout == ActionOnTimeout::StopDeployment =>
        {
            configuration.ready_wait_ms().ok()?
        }
        BlueGreenPhase::TerminationWait => configuration.termination_wait_ms().ok()?,
        _ => return None,
    };
    Some(UnixMillis(run.phase_since.0.saturating_add(wait_ms)))
}

fn enter(phase: BlueGreenPhase) -> Action {
    Action::BlueGreen(BlueGreenStep::Enter(phase))
}

/// The deployment fails because `which` fleet had failures.
fn fail(which: &str, fleet: &Fleet, consequence: &str) -> Action {
    let message = format!(
        "{} of {} {which} target(s) failed ({}); {consequence}",
        fleet.failed,
        fleet.total,
        fleet.failed_ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    );
    Action::Finish { succeeded: false, error: Some(ErrorInformation { code: ErrorCode::HealthConstraints, message }) }
}

/// In-flight targets whose hosts are lost, and pending ones whose hosts are dead.
fn lost_targets(
    deployment: &Deployment,
    fleet: &FleetView,
    now: UnixMillis,
    settings: &PlannerSettings,
) -> Vec<(NodeId, String)> {
    deployment
        .targets
        .values()
        .filter_map(|target| {
            let reason = match target.status {
                TargetStatus::InProgress => lost_in_flight(target, fleet, now, settings)?,
                TargetStatus::Pending if fleet.liveness(target.target_id) == Liveness::Dead => {
                    format!("host unreachable: node {} is dead, so this target was not started", target.target_id)
                }
                _ => return None,
            };
            Some((target.target_id, reason))
        })
        .collect()
}

/// One fleet's targets, counted as they will be once this round's failures apply.
struct Fleet {
    total: usize,
    running: usize,
    failed: usize,
    failed_ids: Vec<NodeId>,
    pending: Vec<NodeId>,
    statuses: Vec<TargetStatus>,
}

impl Fleet {
    fn of(
        deployment: &Deployment,
        label: TargetLabel,
        status_of: &dyn Fn(NodeId, TargetStatus) -> TargetStatus,
    ) -> Self {
        let mut fleet =
            Self { total: 0, running: 0, failed: 0, failed_ids: Vec::new(), pending: Vec::new(), statuses: Vec::new() };
        for target in deployment.targets.values().filter(|target| target.target_label == Some(label)) {
            let status = status_of(target.target_id, target.status);
            fleet.total += 1;
            match status {
                TargetStatus::InProgress => fleet.running += 1,
                TargetStatus::Failed => {
                    fleet.failed += 1;
                    fleet.failed_ids.push(target.target_id);
                }
                TargetStatus::Pending => fleet.pending.push(target.target_id),
                _ => {}
            }
            fleet.statuses.push(status);
        }
        fleet
    }

    /// True when every target has one of `wanted` (also for an empty fleet).
    fn all(&self, wanted: &[TargetStatus]) -> bool {
        self.statuses.iter().all(|status| wanted.contains(status))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use fleetmesh_state::model::blue_green::{BlueGreenDeploymentConfiguration, BLUE_EVENTS, GREEN_EVENTS};
    use fleetmesh_state::model::deployment::{DeploymentCreator, Target};
    use fleetmesh_state::model::ids::{DeploymentId, Hash32};
    use fleetmesh_state::model::resources::MinimumHealthyHostsType;
    use fleetmesh_state::model::resources::{AutoRollbackConfiguration, FileExistsBehavior, MinimumHealthyHosts};

    use super::super::fleet::HostView;
    use super::*;

    const GREEN: [u64; 2] = [2, 3];

    /// A blue/green deployment in `phase` since t = 1000: host 1 blue (pending), hosts
    /// 2 and 3 green with status `green`.
    pub(in crate::rollout) fn deployment(
        phase: BlueGreenPhase,
        green: TargetStatus,
        configuration: BlueGreenDeploymentConfiguration,
    ) -> Deployment {
        let mut targets = BTreeMap::new();
        let labelled = |id: u64, events: &[&str], label| Target {
            target_label: Some(label),
            ..Target::pending_with(NodeId(id), UnixMillis(1000), events)
        };
        targets.insert(NodeId(1), labelled(1, BLUE_EVENTS, TargetLabel::Blue));
        for id in GREEN {
            targets.insert(NodeId(id), Target { status: green, ..labelled(id, GREEN_EVENTS, TargetLabel::Green) });
        }
        let run = BlueGreenRun {
            configuration,
            phase,
            phase_since: UnixMillis(1000),
            ready_continued: false,
            termination_continued: false,
            green_percent: None,
        };
        Deployment {
            alarm_configuration: None,
            deployment_id: DeploymentId("d-PLANNERBG".into()),
            application_name: "app".into(),
            deployment_group_name: "bg".into(),
            deployment_group_id: "g".into(),
            revision_id: Hash32([0; 32]),
            deployment_config_name: "CodeDeployDefault.OneAtATime".into(),
            minimum_healthy_hosts: MinimumHealthyHosts { kind: MinimumHealthyHostsType::MostConcurrency, value: 1 },
            traffic_routing: None,
            creator: DeploymentCreator::User,
            status: if green == TargetStatus::Pending {
                DeploymentStatus::Created
            } else {
                DeploymentStatus::InProgress
            },
            error_information: None,
            description: String::new(),
            ignore_application_stop_failures: false,
            file_exists_behavior: FileExistsBehavior::Disallow,
            auto_rollback_configuration: AutoRollbackConfiguration::on_failure(),
            rollback_info: None,
            create_time: UnixMillis(1000),
            created_by: None,
            stopped_by: None,
            start_time: Some(UnixMillis(1000)),
            complete_time: None,
            waves: 1,
            traffic_routes: vec!["web".into()],
            elbv2_target_groups: Vec::new(),
            blue_green: Some(run),
            shift: None,
            targets,
        }
    }

    fn plan(deployment: &Deployment, now: u64) -> Vec<Action> {
        let run = deployment.blue_green.expect("a blue/green deployment");
        let fleet = FleetView::all_alive([1, 2, 3].map(NodeId));
        plan_blue_green(deployment, &run, &fleet, UnixMillis(now), &PlannerSettings::default())
    }

    pub(in crate::rollout) fn waiting() -> BlueGreenDeploymentConfiguration {
        let mut configuration = BlueGreenDeploymentConfiguration::default();
        configuration.deployment_ready_option.action_on_timeout = ActionOnTimeout::StopDeployment;
        configuration.deployment_ready_option.wait_time_in_seconds = Some(60);
        configuration.terminate_blue_instances_on_deployment_success.termination_wait_time_in_seconds = Some(30);
        configuration
    }

    #[test]
    fn green_starts_all_at_once_and_goes_on_when_ready() {
        let created = deployment(BlueGreenPhase::Installing, TargetStatus::Pending, waiting());
        assert_eq!(plan(&created, 1000), vec![Action::Start(GREEN.map(NodeId).to_vec())]);
        let ready =
            deployment(BlueGreenPhase::Installing, TargetStatus::Ready, BlueGreenDeploymentConfiguration::default());
        assert_eq!(plan(&ready, 1000), vec![enter(BlueGreenPhase::Ready), enter(BlueGreenPhase::Rerouting)]);
        assert_eq!(
            plan(&deployment(BlueGreenPhase::Installing, TargetStatus::Ready, waiting()), 1000),
            vec![enter(BlueGreenPhase::Ready)]
        );
    }

    #[test]
    fn the_ready_wait_is_measured_from_the_committed_phase_start() {
        let mut ready = deployment(BlueGreenPhase::Ready, TargetStatus::Ready, waiting());
        assert_eq!(plan(&ready, 60_999), vec![], "one millisecond before the wait ends");
        assert_eq!(plan(&ready, 61_000), vec![Action::BlueGreen(BlueGreenStep::ReadyWaitExpired)]);
        assert_eq!(wait_deadline(&ready, &ready.blue_green.expect("run")), Some(UnixMillis(61_000)));
        if let Some(run) = ready.blue_green.as_mut() {
            run.ready_continued = true;
        }
        assert_eq!(plan(&ready, 2000), vec![enter(BlueGreenPhase::Rerouting)]);
    }

    #[test]
    fn a_failed_green_target_fails_the_deployment_once_none_runs() {
        let mut installing = deployment(BlueGreenPhase::Installing, TargetStatus::InProgress, waiting());
        if let Some(target) = installing.targets.get_mut(&NodeId(2)) {
            target.status = TargetStatus::Failed;
        }
        assert_eq!(plan(&installing, 2000), vec![], "host 3 still runs");
        if let Some(target) = installing.targets.get_mut(&NodeId(3)) {
            target.status = TargetStatus::Ready;
        }
        let actions = plan(&installing, 2000);
        let [Action::Finish { succeeded: false, error: Some(error) }] = actions.as_slice() else {
            panic!("expected a failed finish, got {actions:?}");
        };
        assert_eq!(error.code, ErrorCode::HealthConstraints);
        assert!(error.message.contains("1 of 2 green target(s) failed (2); traffic did not move"), "{}", error.message);
    }

    #[test]
    fn after_the_reroute_blue_leaves_and_the_termination_wait_ends_the_deployment() {
        let rerouted = deployment(BlueGreenPhase::Rerouting, TargetStatus::Succeeded, waiting());
        assert_eq!(plan(&rerouted, 2000), vec![enter(BlueGreenPhase::Blocking)]);
        let mut waiting_blue = deployment(BlueGreenPhase::TerminationWait, TargetStatus::Succeeded, waiting());
        assert_eq!(plan(&waiting_blue, 30_999), vec![]);
        assert_eq!(plan(&waiting_blue, 31_000), vec![Action::Finish { succeeded: true, error: None }]);
        if let Some(run) = waiting_blue.blue_green.as_mut() {
            run.termination_continued = true;
            run.configuration.terminate_blue_instances_on_deployment_success.action = BlueInstanceAction::Terminate;
        }
        assert_eq!(plan(&waiting_blue, 2000), vec![enter(BlueGreenPhase::Terminating)]);
    }

    #[test]
    fn a_green_host_lost_while_installing_is_failed_after_the_grace() {
        let installing = deployment(BlueGreenPhase::Installing, TargetStatus::InProgress, waiting());
        let run = installing.blue_green.expect("run");
        let mut fleet = FleetView::all_alive([1, 3].map(NodeId));
        fleet.hosts.insert(NodeId(2), HostView::dead_since(UnixMillis(1000)));
        let settings = PlannerSettings::default();
        let later = UnixMillis(1000 + settings.host_lost_after_ms);
        let actions = plan_blue_green(&installing, &run, &fleet, later, &settings);
        assert!(matches!(actions.as_slice(), [Action::FailTargets(lost)] if lost[0].0 == NodeId(2)), "{actions:?}");
    }

    #[test]
    fn linear_steps_wait_an_interval_each_and_the_last_one_takes_blue_off() {
        use fleetmesh_state::model::traffic_routing::TrafficRouting;
        let mut rerouted = deployment(BlueGreenPhase::Rerouting, TargetStatus::Succeeded, waiting());
        rerouted.traffic_routing = Some(TrafficRouting::TimeBasedLinear { percentage: 40, interval_seconds: 5 });
        assert_eq!(plan(&rerouted, 2000), vec![enter(BlueGreenPhase::Shifting)]);
        let mut shifting = rerouted.clone();
        if let Some(run) = shifting.blue_green.as_mut() {
            run.phase = BlueGreenPhase::Shifting;
            run.green_percent = Some(40);
        }
        assert_eq!(plan(&shifting, 5999), vec![], "one millisecond before the interval ends");
        assert_eq!(wait_deadline(&shifting, &shifting.blue_green.expect("run")), Some(UnixMillis(6000)));
        assert_eq!(plan(&shifting, 6000), vec![Action::BlueGreen(BlueGreenStep::Shift(80))]);
        if let Some(run) = shifting.blue_green.as_mut() {
            run.green_percent = Some(80);
        }
        assert_eq!(plan(&shifting, 6000), vec![enter(BlueGreenPhase::Blocking)], "80 + 40 ≥ 100: blue leaves");
    }
}
