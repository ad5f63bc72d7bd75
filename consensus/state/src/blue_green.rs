//! `apply` for blue/green deployments (`codedeploy.md` §2.3, §5.3): choosing the two
//! fleets at creation, the phase moves the rollout engine commits, `continue-deployment`,
//! and giving traffic back to blue. The model and the phase diagram are in
//! [`crate::model::blue_green`].

use std::collections::{BTreeMap, BTreeSet};

use crate::command::{ApplyError, BlueGreenStep, DeploymentSpec, DeploymentWaitType, Outcome};
use crate::model::blue_green::{
    green_steps, BlueGreenPhase, BlueGreenRun, BlueInstanceAction, TargetLabel, BLUE_EVENTS, BLUE_TERMINATE_EVENT,
    GREEN_EVENTS,
};
use crate::model::deployment::{
    Deployment, DeploymentStatus, ErrorCode, ErrorInformation, RollbackInfo, Target, TargetStatus,
};
use crate::model::ids::{DeploymentId, UnixMillis};
use crate::model::resources::{DeploymentGroup, DeploymentType};
use crate::model::routes::{TrafficState, ROUTE_WEIGHT_DEFAULT};
use crate::{ClusterState, NodeId};

/// Most hosts named in an error message before "and N more".
const HOSTS_NAMED_MAX: usize = 10;

impl ClusterState {
    /// True when a deployment of `spec` in `group` is blue/green: the group is, and the
    /// deployment picks its own targets (a rollback or a late joiner's update names its
    /// hosts and runs in place).
    pub(crate) fn is_blue_green(group: &DeploymentGroup, spec: &DeploymentSpec) -> bool {
        group.deployment_style == DeploymentType::BlueGreen && spec.targets.is_none()
    }

    /// The targets and the progress record of a new blue/green deployment of `spec`:
    /// blue is every member serving on the group's routes, green the hosts
    /// `targetInstances` selects or else the group's hosts that are not blue.
    pub(crate) fn blue_green_targets(
        &self,
        group: &DeploymentGroup,
        spec: &DeploymentSpec,
        at: UnixMillis,
    ) -> Result<(BTreeMap<NodeId, Target>, BlueGreenRun), ApplyError> {
        let configuration = group.blue_green_deployment_configuration.unwrap_or_default();
        let blue: BTreeSet<NodeId> = group
            .traffic_routes()
            .iter()
            .filter_map(|name| self.routes.get(name))
            .flat_map(|route| route.targets.iter())
            .filter(|target| target.state == TrafficState::Serving && self.members.contains_key(&target.target_id))
            .map(|target| target.target_id)
            .collect();
        let green: BTreeSet<NodeId> = match &spec.target_instances {
            Some(selector) => self
                .members
                .values()
                .filter(|member| self.is_deployable(member) && selector.matches(&member.tags))
                .map(|member| member.id)
                .collect(),
            None => self.group_targets(group).into_iter().filter(|id| !blue.contains(id)).collect(),
        };
        if green.is_empty() {
            return Err(ApplyError::invalid(format!(
                "the green fleet is empty: {}; tag hosts for it and deploy again",
                match &spec.target_instances {
                    Some(_) => "--target-instances matched no host".to_string(),
                    None => format!(
                        "every host of deployment group {} serves its routes already ({} hosts); give \
                         --target-instances or add standby hosts",
                        group.deployment_group_name,
                        blue.len()
                    ),
                }
            )));
        }
        let overlap: Vec<NodeId> = green.intersection(&blue).copied().collect();
        if !overlap.is_empty() {
            return Err(ApplyError::invalid(format!(
                "the green fleet overlaps blue: host(s) {} serve the group's routes now; a blue/green \
                 deployment installs on hosts that do not",
                named(&overlap)
            )));
        }
        let mut blue_events: Vec<&str> = BLUE_EVENTS.to_vec();
        if configuration.terminate_blue_instances_on_deployment_success.action == BlueInstanceAction::Terminate {
            blue_events.push(BLUE_TERMINATE_EVENT);
        }
        let labelled = |id: NodeId, events: &[&str], label| Target {
            target_label: Some(label),
            ..Target::pending_with(id, at, events)
        };
        let targets = green
            .iter()
            .map(|id| (*id, labelled(*id, GREEN_EVENTS, TargetLabel::Green)))
            .chain(blue.iter().map(|id| (*id, labelled(*id, &blue_events, TargetLabel::Blue))))
            .collect();
        let run = BlueGreenRun {
            configuration,
            phase: BlueGreenPhase::Installing,
            phase_since: at,
            ready_continued: false,
            termination_continued: false,
            green_percent: None,
        };
        Ok((targets, run))
    }

    pub(crate) fn advance_blue_green(
        &mut self,
        deployment_id: &DeploymentId,
        step: BlueGreenStep,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        let deployment = blue_green_mut(self, deployment_id)?;
        let split_before = deployment.blue_green.and_then(|run| run.green_percent);
        match step {
            BlueGreenStep::Enter(_) | BlueGreenStep::Shift(_) => deployment.advance_blue_green(step, at)?,
            BlueGreenStep::ReadyWaitExpired => {
                let run = deployment.blue_green.as_ref().expect("checked by blue_green_mut");
                if run.phase != BlueGreenPhase::Ready {
                    return Err(ApplyError::conflict(format!(
                        "deployment {deployment_id} is not waiting for READY_WAIT"
                    )));
                }
                crate::deployments::skip_pending(deployment, at);
                deployment.status = DeploymentStatus::Stopped;
                deployment.error_information = Some(ErrorInformation {
                    code: ErrorCode::Timeout,
                    message: "the green fleet was ready but nobody continued the deployment \
                              (continue-deployment --deployment-wait-type READY_WAIT) within its wait time"
                        .into(),
                });
                deployment.complete_time = Some(at);
                let (application, group) =
                    (deployment.application_name.clone(), deployment.deployment_group_name.clone());
                if let Some(group) = self.deployment_group_mut(&application, &group) {
                    group.active_deployment_id = None;
                }
            }
        }
        self.touch_routes_if_split_moved(deployment_id, split_before, at);
        Ok(Outcome::Done)
    }

    /// Counts a change of green's share as a change of the deployment's routes: their
    /// effective weights moved, so `--command` routers run their program again.
    fn touch_routes_if_split_moved(&mut self, id: &DeploymentId, before: Option<u32>, at: UnixMillis) {
        let Some(deployment) = self.deployments.get(id) else { return };
        if deployment.blue_green.and_then(|run| run.green_percent) == before {
            return;
        }
        for name in deployment.traffic_routes.clone() {
            if let Some(route) = self.routes.get_mut(&name) {
                route.version += 1;
                route.update_time = at;
            }
        }
    }

    pub(crate) fn continue_deployment(
        &mut self,
        deployment_id: &DeploymentId,
        wait_type: DeploymentWaitType,
    ) -> Result<Outcome, ApplyError> {
        let deployment = blue_green_mut(self, deployment_id)?;
        let run = deployment.blue_green.as_mut().expect("checked by blue_green_mut");
        match (wait_type, run.phase) {
            (DeploymentWaitType::ReadyWait, BlueGreenPhase::Ready) => run.ready_continued = true,
            (DeploymentWaitType::TerminationWait, BlueGreenPhase::TerminationWait) => run.termination_continued = true,
            (wait, phase) => {
                return Err(ApplyError::conflict(format!(
                    "deployment {deployment_id} is not in its {} (it is {}); nothing to continue",
                    match wait {
                        DeploymentWaitType::ReadyWait => "ready wait",
                        DeploymentWaitType::TerminationWait => "termination wait",
                    },
                    phase_words(phase)
                )))
            }
        }
        Ok(Outcome::Done)
    }

    /// Gives the routes of blue/green deployment `deployment_id` back to blue, once
    /// green may have had traffic: blue serves again (at its kept weight), green drains.
    /// Once blue is being stopped (`Terminating`) the routes stay with green. Returns
    /// what was done, for the deployment's rollback message; `None` when green never got
    /// traffic.
    pub(crate) fn roll_back_traffic(&mut self, deployment_id: &DeploymentId, at: UnixMillis) -> Option<String> {
        let deployment = self.deployments.get_mut(deployment_id)?;
        let run = deployment.blue_green.as_mut()?;
        run.green_percent = None;
        let phase = run.phase;
        let deployment = self.deployments.get(deployment_id)?;
        if phase < BlueGreenPhase::Rerouting {
            return None;
        }
        if phase >= BlueGreenPhase::Terminating {
            // Blue's ApplicationStop has begun (`TERMINATE`): its application may be
            // down, so giving it the routes back would send traffic to stopped hosts
            // (found by the simulator: blue-green-chaos with a stop in this phase, seed 6
            // at 7 nodes). Green keeps them.
            return Some(format!(
                "traffic stayed on the replacement fleet: the original fleet was already being stopped \
                 (TERMINATE), so route(s) {} were not given back",
                deployment.traffic_routes.join(", ")
            ));
        }
        let label = |id: &NodeId| deployment.targets.get(id).and_then(|target| target.target_label);
        let mut restored = 0;
        for name in &deployment.traffic_routes {
            let Some(route) = self.routes.get_mut(name) else { continue };
            for entry in &mut route.targets {
                match label(&entry.target_id) {
                    Some(TargetLabel::Blue) => {
                        entry.state = TrafficState::Serving;
                        if entry.weight == 0 {
                            entry.weight = ROUTE_WEIGHT_DEFAULT;
                        }
                        restored += 1;
                    }
                    Some(TargetLabel::Green) => entry.state = TrafficState::Draining,
                    None => {}
                }
            }
            route.update_time = at;
            route.version += 1;
        }
        Some(format!(
            "traffic went back to the original fleet: {restored} blue target(s) serve route(s) {} again, \
             green drains",
            deployment.traffic_routes.join(", ")
        ))
    }
}

impl Deployment {
    /// A phase move or a traffic step of this blue/green deployment, as `apply` makes
    /// it (also run on copies by `create-deployment --dry-run`); the routes' versions
    /// are the caller's. `ReadyWaitExpired` ends the deployment and is `apply`'s alone.
    ///
    /// # Errors
    /// A move the record does not allow now: backwards, before the fleet it waits for is
    /// done, a step that does not move green's share up.
    pub fn advance_blue_green(&mut self, step: BlueGreenStep, at: UnixMillis) -> Result<(), ApplyError> {
        match step {
            BlueGreenStep::Enter(phase) => enter(self, phase, at),
            BlueGreenStep::Shift(percent) => shift(self, percent, at),
            BlueGreenStep::ReadyWaitExpired => {
                Err(ApplyError::invalid("the end of a ready wait is applied to the cluster state, not a copy"))
            }
        }
    }
}

/// True when a target labelled `label` may pause (report `Ready`) while its blue/green
/// deployment is in `phase`: green until traffic moves to it (before `Rerouting`), blue
/// until the termination wait ends (before `Terminating`). The leader's assignments hold
/// targets at the same points (`ready_before` in `node/src/leader/assignments.rs`).
pub(crate) fn pauses_in(phase: Option<BlueGreenPhase>, label: Option<TargetLabel>) -> bool {
    match (phase, label) {
        (Some(phase), Some(TargetLabel::Green)) => phase < BlueGreenPhase::Rerouting,
        (Some(phase), Some(TargetLabel::Blue)) => phase < BlueGreenPhase::Terminating,
        _ => false,
    }
}

/// The active blue/green deployment `id`.
fn blue_green_mut<'a>(state: &'a mut ClusterState, id: &DeploymentId) -> Result<&'a mut Deployment, ApplyError> {
    let deployment = state
        .deployments
        .get_mut(id)
        .ok_or_else(|| ApplyError::not_found(format!("deployment {id} does not exist")))?;
    if deployment.blue_green.is_none() {
        return Err(ApplyError::invalid(format!("deployment {id} is not a blue/green deployment")));
    }
    if deployment.status.is_terminal() {
        return Err(ApplyError::conflict(format!("deployment {id} already finished ({:?})", deployment.status)));
    }
    Ok(deployment)
}

/// Moves `deployment` into `phase` at `at`, after checking that the fleet it leaves is
/// done: the targets of the new phase start (`Ready` → `InProgress`, or `Pending` →
/// `InProgress` for blue), and the status shows the wait.
fn enter(deployment: &mut Deployment, phase: BlueGreenPhase, at: UnixMillis) -> Result<(), ApplyError> {
    let id = deployment.deployment_id.clone();
    let run = deployment.blue_green.as_mut().expect("a blue/green deployment");
    if phase <= run.phase {
        return Err(ApplyError::conflict(format!(
            "deployment {id} is {} already; blue/green phases only move forward",
            phase_words(run.phase)
        )));
    }
    let fleet_is = |label, wanted: &[TargetStatus]| {
        deployment
            .targets
            .values()
            .filter(|target| target.target_label == Some(label))
            .all(|target| wanted.contains(&target.status))
    };
    let ready = match phase {
        BlueGreenPhase::Installing => false,
        BlueGreenPhase::Ready | BlueGreenPhase::Rerouting => fleet_is(TargetLabel::Green, &[TargetStatus::Ready]),
        BlueGreenPhase::Shifting if green_steps(deployment.traffic_routing).is_none() => false,
        BlueGreenPhase::Shifting | BlueGreenPhase::Blocking => fleet_is(TargetLabel::Green, &[TargetStatus::Succeeded]),
        BlueGreenPhase::TerminationWait | BlueGreenPhase::Terminating => {
            fleet_is(TargetLabel::Blue, &[TargetStatus::Ready, TargetStatus::Succeeded, TargetStatus::Failed])
        }
    };
    if !ready {
        return Err(ApplyError::conflict(format!(
            "deployment {id} cannot become {}: the fleet before it is not done",
            phase_words(phase)
        )));
    }
    run.phase = phase;
    run.phase_since = at;
    if let Some(steps) = green_steps(deployment.traffic_routing) {
        run.green_percent = match phase {
            BlueGreenPhase::Rerouting => Some(steps.first),
            // Blue takes no new connection while it runs its block events.
            BlueGreenPhase::Blocking => Some(100),
            BlueGreenPhase::TerminationWait | BlueGreenPhase::Terminating => None,
            _ => run.green_percent,
        };
    }
    let (starts, from) = match phase {
        BlueGreenPhase::Rerouting => (Some(TargetLabel::Green), TargetStatus::Ready),
        BlueGreenPhase::Blocking => (Some(TargetLabel::Blue), TargetStatus::Pending),
        BlueGreenPhase::Terminating => (Some(TargetLabel::Blue), TargetStatus::Ready),
        _ => (None, TargetStatus::Pending),
    };
    if let Some(label) = starts {
        deployment.waves += 1;
        for target in deployment.targets.values_mut() {
            if target.target_label == Some(label) && target.status == from {
                target.status = TargetStatus::InProgress;
                target.wave = deployment.waves;
                target.last_updated_at = at;
            }
        }
    }
    deployment.status = match phase {
        BlueGreenPhase::Ready => DeploymentStatus::Ready,
        BlueGreenPhase::TerminationWait => DeploymentStatus::Baking,
        _ => DeploymentStatus::InProgress,
    };
    Ok(())
}

/// One canary or linear step of `deployment`: green's share of new connections rises
/// to `percent`, and the next interval starts at `at`.
fn shift(deployment: &mut Deployment, percent: u32, at: UnixMillis) -> Result<(), ApplyError> {
    let id = deployment.deployment_id.clone();
    let run = deployment.blue_green.as_mut().expect("a blue/green deployment");
    if run.phase != BlueGreenPhase::Shifting {
        return Err(ApplyError::conflict(format!(
            "deployment {id} is {}; traffic steps happen while shifting",
            phase_words(run.phase)
        )));
    }
    let current = run.green_percent.unwrap_or(0);
    if percent <= current || percent >= 100 {
        return Err(ApplyError::conflict(format!(
            "deployment {id} sends {current} % of new connections to green; a step moves it up, to less than \
             100 % (blue leaving the routes is the last step), not to {percent} %"
        )));
    }
    run.green_percent = Some(percent);
    run.phase_since = at;
    Ok(())
}

/// A phase in an operator's words.
pub(crate) fn phase_words(phase: BlueGreenPhase) -> &'static str {
    match phase {
        BlueGreenPhase::Installing => "installing the green fleet",
        BlueGreenPhase::Ready => "ready (green installed, waiting to reroute)",
        BlueGreenPhase::Rerouting => "rerouting traffic to green",
        BlueGreenPhase::Shifting => "shifting traffic to green step by step",
        BlueGreenPhase::Blocking => "taking blue off the routes",
        BlueGreenPhase::TerminationWait => "in the termination wait",
        BlueGreenPhase::Terminating => "stopping the original fleet",
    }
}

/// Up to [`HOSTS_NAMED_MAX`] hosts, then how many more.
fn named(hosts: &[NodeId]) -> String {
    let mut text: Vec<String> = hosts.iter().take(HOSTS_NAMED_MAX).map(ToString::to_string).collect();
    if hosts.len() > HOSTS_NAMED_MAX {
        text.push(format!("and {} more", hosts.len() - HOSTS_NAMED_MAX));
    }
    text.join(", ")
}

impl ClusterState {
    /// The group-side end of blue/green deployment `id`, after `finish_deployment` or
    /// `stop_deployment` set its status: the group is free again, records the revision
    /// on success, the deployment says whether traffic went back to blue, and a split
    /// left without a rollback stays as it is (see [`ClusterState::freeze_split`]).
    pub(crate) fn end_blue_green(
        &mut self,
        id: &DeploymentId,
        succeeded: bool,
        rolled_back: Option<String>,
        at: UnixMillis,
    ) -> Outcome {
        self.freeze_split(id, at);
        let Some(deployment) = self.deployments.get_mut(id) else { return Outcome::Done };
        if let Some(message) = rolled_back {
            deployment.rollback_info = Some(RollbackInfo { rollback_message: message, ..Default::default() });
        }
        let (application, group_name, revision) =
            (deployment.application_name.clone(), deployment.deployment_group_name.clone(), deployment.revision_id);
        if let Some(group) = self.deployment_group_mut(&application, &group_name) {
            group.active_deployment_id = None;
            if succeeded {
                group.target_revision = Some(revision);
                group.last_successful_deployment_id = Some(id.clone());
            }
        }
        Outcome::Done
    }
}

/// A group's blue/green settings: `BLUE_GREEN` needs traffic control (its routes are
/// what moves), the configuration only goes with `BLUE_GREEN`, and its waits are in
/// bounds.
pub(crate) fn validate_blue_green(spec: &crate::DeploymentGroupSpec) -> Result<(), ApplyError> {
    use crate::model::resources::DeploymentOption;
    let blue_green = spec.deployment_type == DeploymentType::BlueGreen;
    if blue_green && spec.deployment_option != DeploymentOption::WithTrafficControl {
        return Err(ApplyError::invalid(
            "a BLUE_GREEN deployment group moves traffic between fleets: give \
             --deployment-style deploymentType=BLUE_GREEN,deploymentOption=WITH_TRAFFIC_CONTROL and \
             --load-balancer-info naming its route(s)",
        ));
    }
    match &spec.blue_green_deployment_configuration {
        Some(_) if !blue_green => Err(ApplyError::invalid(
            "--blue-green-deployment-configuration is only for deploymentType=BLUE_GREEN groups",
        )),
        Some(configuration) => configuration.validate().map_err(|error| ApplyError::invalid(error.to_string())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
