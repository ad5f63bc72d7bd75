//! The blue/green half of a dry run: each phase move and traffic step the planner
//! decides is applied to the copy as `apply` would ([`Deployment::advance_blue_green`])
//! and written down as the waves it starts and the traffic it moves. Waits for an
//! operator are written down and assumed to end at once (`READY_WAIT` continued).

use fleetmesh_state::model::blue_green::{ActionOnTimeout, BlueGreenPhase, BlueInstanceAction, TargetLabel};
use fleetmesh_state::model::deployment::{Deployment, TargetStatus};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::{BlueGreenStep, NodeId};

use super::PlannedStep;

/// Applies `step` to `copy` at `now` and records it in `steps`; false when the copy
/// refuses it (the dry run then stalls, as the real deployment would).
pub(super) fn advance(
    copy: &mut Deployment,
    step: BlueGreenStep,
    now: UnixMillis,
    steps: &mut Vec<PlannedStep>,
) -> bool {
    if copy.advance_blue_green(step, now).is_err() {
        return false;
    }
    let share = copy
        .blue_green
        .and_then(|run| run.green_percent)
        .map(|percent| format!(" with {percent} % of new connections"))
        .unwrap_or_default();
    let fleet = |label| started(copy, label);
    match step {
        BlueGreenStep::Enter(BlueGreenPhase::Ready) => {
            let Some(run) = copy.blue_green.as_mut() else { return false };
            let option = run.configuration.deployment_ready_option;
            if option.action_on_timeout == ActionOnTimeout::StopDeployment {
                let wait = run.configuration.ready_wait_ms().unwrap_or(0) / 1000;
                steps.push(PlannedStep::Traffic(format!(
                    "green is Ready; waits for continue-deployment --deployment-wait-type READY_WAIT, at most \
                     {wait} s, then the deployment stops (assumed continued here)"
                )));
                run.ready_continued = true;
            }
        }
        BlueGreenStep::Enter(BlueGreenPhase::Rerouting) => {
            let green = fleet(TargetLabel::Green);
            steps.push(PlannedStep::Wave(green));
            steps.push(PlannedStep::Traffic(format!("green joins the routes{share}")));
        }
        BlueGreenStep::Shift(percent) => {
            steps.push(PlannedStep::Traffic(format!("green gets {percent} % of new connections")));
        }
        BlueGreenStep::Enter(BlueGreenPhase::Blocking) => {
            let blue = fleet(TargetLabel::Blue);
            if !blue.is_empty() {
                steps.push(PlannedStep::Wave(blue));
            }
            steps.push(PlannedStep::Traffic("blue leaves the routes; green takes every new connection".into()));
        }
        BlueGreenStep::Enter(BlueGreenPhase::Terminating) => {
            steps.push(PlannedStep::Wave(fleet(TargetLabel::Blue)));
            steps.push(PlannedStep::Traffic("blue runs ApplicationStop (TERMINATE)".into()));
        }
        BlueGreenStep::Enter(_) | BlueGreenStep::ReadyWaitExpired => {}
    }
    true
}

/// The targets of `label` that the last move started.
fn started(copy: &Deployment, label: TargetLabel) -> Vec<NodeId> {
    copy.targets
        .values()
        .filter(|target| target.target_label == Some(label) && target.status == TargetStatus::InProgress)
        .map(|target| target.target_id)
        .collect()
}

/// How target `id`, started on the copy, ends its run when everything succeeds: green
/// stops `Ready` before the allow events while installing, blue stops `Ready` before
/// `ApplicationStop` under `TERMINATE`; everything else succeeds.
pub(super) fn finished_status(copy: &Deployment, id: NodeId) -> TargetStatus {
    let Some(run) = &copy.blue_green else { return TargetStatus::Succeeded };
    let label = copy.targets.get(&id).and_then(|target| target.target_label);
    let terminate =
        run.configuration.terminate_blue_instances_on_deployment_success.action == BlueInstanceAction::Terminate;
    match (run.phase, label) {
        (BlueGreenPhase::Installing, Some(TargetLabel::Green)) => TargetStatus::Ready,
        (BlueGreenPhase::Blocking, Some(TargetLabel::Blue)) if terminate => TargetStatus::Ready,
        _ => TargetStatus::Succeeded,
    }
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::resources::ONE_AT_A_TIME;
    use fleetmesh_state::model::traffic_routing::TrafficRouting;

    use super::super::{dry_run, PlannedEnd};
    use super::*;
    use crate::rollout::blue_green::tests::{deployment, waiting};
    use crate::rollout::harness::{ids, Config, Harness};
    use crate::rollout::{FleetView, PlannerSettings};

    #[test]
    fn a_linear_blue_green_dry_run_shows_both_fleets_every_step_and_every_wait() {
        // Blue host 1, green hosts 2-3, a 60 s ready wait, linear 40 % every 5 s, a 30 s
        // termination wait: asserts the green install, the ready wait, green joining at
        // 40 %, 80 % after 5 s, blue leaving after 5 s more, the termination wait, success.
        let mut created = deployment(BlueGreenPhase::Installing, TargetStatus::Pending, waiting());
        created.traffic_routing = Some(TrafficRouting::TimeBasedLinear { percentage: 40, interval_seconds: 5 });
        let mut group = Harness::new(3, Config::Predefined(ONE_AT_A_TIME)).group().clone();
        group.deployment_group_name = created.deployment_group_name.clone();
        let fleet = FleetView::all_alive([1, 2, 3].map(NodeId));
        let answer = dry_run(&created, &group, &fleet, UnixMillis(1000), &PlannerSettings::default());
        let traffic = |words: &str| PlannedStep::Traffic(words.to_string());
        let expected = vec![
            PlannedStep::Wave(ids(&[2, 3])),
            traffic(
                "green is Ready; waits for continue-deployment --deployment-wait-type READY_WAIT, at most 60 s, \
                 then the deployment stops (assumed continued here)",
            ),
            PlannedStep::Wave(ids(&[2, 3])),
            traffic("green joins the routes with 40 % of new connections"),
            PlannedStep::Bake(5000),
            traffic("green gets 80 % of new connections"),
            PlannedStep::Bake(5000),
            PlannedStep::Wave(ids(&[1])),
            traffic("blue leaves the routes; green takes every new connection"),
            PlannedStep::Bake(30_000),
        ];
        assert_eq!(answer.steps, expected);
        assert_eq!(answer.end, PlannedEnd::Finished { succeeded: true, error: None });
    }
}
