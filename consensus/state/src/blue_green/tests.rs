//! A blue/green deployment through `apply`: the setup's three web hosts, host 1 serving
//! route `web`, hosts 2 and 3 the green fleet; every phase move, `continue-deployment`,
//! the instant rollback, and the refusals (each changes nothing).

use std::collections::BTreeMap;

use crate::command::{ApplyErrorKind, BlueGreenStep, Command, DeploymentWaitType, Outcome, TargetReport};
use crate::model::blue_green::{
    ActionOnTimeout, BlueGreenDeploymentConfiguration, BlueGreenPhase, TargetLabel, GREEN_EVENTS, GREEN_HOLD,
};
use crate::model::deployment::{DeploymentStatus, LifecycleEvent, LifecycleEventStatus, TargetStatus};
use crate::model::ids::DeploymentId;
use crate::model::resources::{DeploymentOption, DeploymentType, LoadBalancerInfo, TargetGroupInfo, TargetSelector};
use crate::model::routes::{RouteSpec, RouteTarget, TrafficState};
use crate::tests::{at, deploy, setup};
use crate::{ClusterState, FeatureLevel, NodeId};

fn apply(state: &mut ClusterState, millis: u64, command: Command) -> Outcome {
    let mut outcomes = state.apply(&at(millis, vec![command])).outcomes;
    outcomes.pop().expect("one outcome per command")
}

fn refused(state: &mut ClusterState, millis: u64, command: Command) -> (ApplyErrorKind, String) {
    let before = state.clone();
    match apply(state, millis, command) {
        Outcome::Rejected(error) => {
            // Applying any entry records its time; nothing else may change.
            let after = ClusterState { last_applied_at: before.last_applied_at, ..state.clone() };
            assert!(after == before, "a refused command changed the state: {}", error.message);
            (error.kind, error.message)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The setup at level 10 with route `web` served by host 1, group `bg` (blue/green on
/// that route, waiting for READY_WAIT), and deployment `d-BLUEGREEN` of the first
/// revision created (not started).
fn blue_green() -> (ClusterState, DeploymentId) {
    blue_green_with(FeatureLevel::BLUE_GREEN, None)
}

/// [`blue_green`] at `level`, its deployment using deployment configuration `config`
/// (created first) when given.
fn blue_green_with(level: FeatureLevel, config: Option<Command>) -> (ClusterState, DeploymentId) {
    let (mut state, first, _) = setup();
    assert_eq!(apply(&mut state, 2, Command::SetFeatureLevel { level }), Outcome::Done);
    let config_name = match config {
        Some(command @ Command::CreateDeploymentConfig { .. }) => {
            let Command::CreateDeploymentConfig { name, .. } = &command else { unreachable!() };
            let name = name.clone();
            assert_eq!(apply(&mut state, 2, command), Outcome::Done);
            Some(name)
        }
        _ => None,
    };
    let route = RouteSpec {
        route_name: "web".into(),
        listen_port: 9000,
        target_port: 8080,
        router_tags: BTreeMap::from([("role".to_string(), "web".to_string())]),
        drain_seconds: 1,
        command: None,
    };
    assert_eq!(apply(&mut state, 3, Command::CreateRoute { spec: route }), Outcome::Done);
    let serving = RouteTarget { target_id: NodeId(1), weight: 100, state: TrafficState::Serving };
    assert_eq!(
        apply(&mut state, 4, Command::SetRouteTargets { route_name: "web".into(), targets: vec![serving] }),
        Outcome::Done
    );
    let Command::CreateDeploymentGroup { mut spec, .. } = group_command() else { unreachable!() };
    spec.deployment_group_name = "bg".into();
    assert_eq!(
        apply(&mut state, 5, Command::CreateDeploymentGroup { spec, deployment_group_id: "g-bg".into() }),
        Outcome::Done
    );
    let Command::CreateDeployment { mut spec, deployment_id } = deploy(&first, "d-BLUEGREEN") else { unreachable!() };
    spec.deployment_group_name = "bg".into();
    let stepped = config_name.is_some();
    spec.deployment_config_name = config_name;
    let outcome = apply(&mut state, 6, Command::CreateDeployment { spec, deployment_id: deployment_id.clone() });
    // The one refusal expected: steps below level 11 (the caller checks it).
    if outcome != Outcome::Done {
        assert!(stepped && level < FeatureLevel::BLUE_GREEN_STEPS, "{outcome:?}");
    }
    (state, deployment_id)
}

fn group_command() -> Command {
    let (state, _, _) = setup();
    let group = state.deployment_group("app", "web").expect("the setup's group").clone();
    let mut configuration = BlueGreenDeploymentConfiguration::default();
    configuration.deployment_ready_option.action_on_timeout = ActionOnTimeout::StopDeployment;
    configuration.deployment_ready_option.wait_time_in_seconds = Some(60);
    Command::CreateDeploymentGroup {
        spec: crate::DeploymentGroupSpec {
            alarm_configuration: None,
            application_name: "app".into(),
            deployment_group_name: "bg".into(),
            deployment_config_name: group.deployment_config_name,
            target_selector: group.target_selector,
            auto_rollback_configuration: group.auto_rollback_configuration,
            update_outdated_instances: true,
            deployment_option: DeploymentOption::WithTrafficControl,
            load_balancer_info: Some(LoadBalancerInfo {
                target_group_info_list: vec![TargetGroupInfo { name: "web".into() }],
                target_group_pair_info_list: Vec::new(),
            }),
            deployment_type: DeploymentType::BlueGreen,
            blue_green_deployment_configuration: Some(configuration),
            service_role_arn: None,
            ecs_services: Vec::new(),
            trigger_configurations: Vec::new(),
        },
        deployment_group_id: "g-bg".into(),
    }
}

/// Host `node`'s report: the events up to and including `done` succeeded.
fn report(id: &DeploymentId, node: u64, seq: u64, status: TargetStatus, events: &[&str], done: &str) -> Command {
    let mut passed = true;
    let lifecycle_events = events
        .iter()
        .map(|name| {
            let status = if passed { LifecycleEventStatus::Succeeded } else { LifecycleEventStatus::Pending };
            passed &= *name != done;
            LifecycleEvent { status, ..LifecycleEvent::pending(name) }
        })
        .collect();
    let report = TargetReport { deployment_id: id.clone(), target_id: NodeId(node), seq, status, lifecycle_events };
    Command::ReportTargets { reports: vec![report] }
}

fn enter(id: &DeploymentId, phase: BlueGreenPhase) -> Command {
    Command::AdvanceBlueGreen { deployment_id: id.clone(), step: BlueGreenStep::Enter(phase) }
}

fn route_states(state: &ClusterState) -> Vec<(u64, TrafficState)> {
    state.routes["web"].targets.iter().map(|target| (target.target_id.0, target.state)).collect()
}

#[test]
fn blue_serves_until_green_is_installed_allowed_and_blue_is_taken_off() {
    let (mut state, id) = blue_green();
    let deployment = &state.deployments[&id];
    let labels: Vec<(u64, Option<TargetLabel>)> =
        deployment.targets.values().map(|target| (target.target_id.0, target.target_label)).collect();
    assert_eq!(labels, [(1, Some(TargetLabel::Blue)), (2, Some(TargetLabel::Green)), (3, Some(TargetLabel::Green))]);
    assert_eq!(deployment.targets[&NodeId(2)].lifecycle_events.len(), GREEN_EVENTS.len());
    assert_eq!(deployment.blue_green.map(|run| run.phase), Some(BlueGreenPhase::Installing));

    let start = Command::StartTargets { deployment_id: id.clone(), targets: vec![NodeId(2), NodeId(3)] };
    assert_eq!(apply(&mut state, 10, start), Outcome::Done);
    let (kind, message) = refused(&mut state, 11, enter(&id, BlueGreenPhase::Ready));
    assert_eq!(kind, ApplyErrorKind::Conflict, "{message}");
    for node in [2, 3] {
        let ready = report(&id, node, 1, TargetStatus::Ready, GREEN_EVENTS, "ValidateService");
        assert_eq!(apply(&mut state, 12, ready), Outcome::Done);
    }
    assert_eq!(apply(&mut state, 13, enter(&id, BlueGreenPhase::Ready)), Outcome::Done);
    assert_eq!(state.deployments[&id].status, DeploymentStatus::Ready);
    let early =
        Command::ContinueDeployment { deployment_id: id.clone(), wait_type: DeploymentWaitType::TerminationWait };
    assert!(refused(&mut state, 14, early).1.contains("not in its termination wait"));
    let go = Command::ContinueDeployment { deployment_id: id.clone(), wait_type: DeploymentWaitType::ReadyWait };
    assert_eq!(apply(&mut state, 15, go), Outcome::Done);
    assert_eq!(apply(&mut state, 16, enter(&id, BlueGreenPhase::Rerouting)), Outcome::Done);
    assert!(refused(&mut state, 17, enter(&id, BlueGreenPhase::Ready)).1.contains("only move forward"));
    assert_eq!(state.deployments[&id].targets[&NodeId(2)].status, TargetStatus::InProgress);
    // A restarted agent's late copy of its pause, with a newer number, is skipped: green
    // is released, and a target put back to Ready would never be assigned again.
    let late = report(&id, 2, 5, TargetStatus::Ready, GREEN_EVENTS, "ValidateService");
    assert_eq!(apply(&mut state, 18, late), Outcome::Done);
    assert_eq!(state.deployments[&id].targets[&NodeId(2)].status, TargetStatus::InProgress);
    assert_eq!(state.deployments[&id].targets[&NodeId(2)].report_seq, 1);

    for node in [2, 3] {
        let allow = Command::SetTargetTraffic { deployment_id: id.clone(), target_id: NodeId(node), allow: true };
        assert_eq!(apply(&mut state, 20, allow), Outcome::Done);
        let done = report(&id, node, 6, TargetStatus::Succeeded, GREEN_EVENTS, "AfterAllowTraffic");
        assert_eq!(apply(&mut state, 21, done), Outcome::Done);
    }
    assert_eq!(apply(&mut state, 22, enter(&id, BlueGreenPhase::Blocking)), Outcome::Done);
    assert_eq!(state.deployments[&id].targets[&NodeId(1)].status, TargetStatus::InProgress);
    let block = Command::SetTargetTraffic { deployment_id: id.clone(), target_id: NodeId(1), allow: false };
    assert_eq!(apply(&mut state, 23, block), Outcome::Done);
    let blue_events = ["BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic"];
    let blocked = report(&id, 1, 1, TargetStatus::Succeeded, &blue_events, "AfterBlockTraffic");
    assert_eq!(apply(&mut state, 24, blocked), Outcome::Done);
    assert_eq!(apply(&mut state, 25, enter(&id, BlueGreenPhase::TerminationWait)), Outcome::Done);
    assert_eq!(state.deployments[&id].status, DeploymentStatus::Baking);
    use TrafficState::{Draining, Serving};
    assert_eq!(route_states(&state), [(1, Draining), (2, Serving), (3, Serving)]);

    // A stop with rollback during the wait: blue serves again in the same entry.
    let rollback = Some(DeploymentId("d-ROLLBACK1".into()));
    assert_eq!(
        apply(&mut state, 30, Command::StopDeployment { deployment_id: id.clone(), rollback_id: rollback }),
        Outcome::Done
    );
    assert_eq!(route_states(&state), [(1, Serving), (2, Draining), (3, Draining)]);
    let deployment = &state.deployments[&id];
    assert_eq!(deployment.status, DeploymentStatus::Stopped);
    let message = deployment.rollback_info.as_ref().map(|info| info.rollback_message.clone()).unwrap_or_default();
    assert!(message.contains("traffic went back to the original fleet"), "{message}");
    assert!(!state.deployments.contains_key(&DeploymentId("d-ROLLBACK1".into())), "no in-place rollback deployment");
    assert_eq!(state.deployment_group("app", "bg").and_then(|group| group.active_deployment_id.clone()), None);
}

#[test]
fn a_ready_wait_that_ends_stops_the_deployment_and_skips_blue() {
    let (mut state, id) = blue_green();
    let start = Command::StartTargets { deployment_id: id.clone(), targets: vec![NodeId(2), NodeId(3)] };
    assert_eq!(apply(&mut state, 10, start), Outcome::Done);
    let expired = Command::AdvanceBlueGreen { deployment_id: id.clone(), step: BlueGreenStep::ReadyWaitExpired };
    assert!(refused(&mut state, 11, expired.clone()).1.contains("not waiting for READY_WAIT"));
    for node in [2, 3] {
        assert_eq!(
            apply(&mut state, 12, report(&id, node, 1, TargetStatus::Ready, GREEN_EVENTS, "ValidateService")),
            Outcome::Done
        );
    }
    assert_eq!(apply(&mut state, 13, enter(&id, BlueGreenPhase::Ready)), Outcome::Done);
    assert_eq!(apply(&mut state, 70_000, expired), Outcome::Done);
    let deployment = &state.deployments[&id];
    assert_eq!(deployment.status, DeploymentStatus::Stopped);
    assert_eq!(deployment.targets[&NodeId(1)].status, TargetStatus::Skipped);
    assert_eq!(route_states(&state), [(1, TrafficState::Serving)], "traffic never moved");
    assert_eq!(GREEN_HOLD, "BeforeAllowTraffic");
}

#[test]
fn bad_blue_green_requests_are_refused_and_change_nothing() {
    let (mut state, first, _) = setup();
    // Below level 10 a blue/green group is an entry older releases cannot read.
    assert_eq!(group_command().feature_level(), FeatureLevel::BLUE_GREEN);
    let (mut state2, id) = blue_green();
    // Overlap: green named by tags that select blue host 1 too.
    let Command::CreateDeployment { mut spec, .. } = deploy(&first, "d-OVERLAP01") else { unreachable!() };
    spec.deployment_group_name = "bg".into();
    let stop = Command::StopDeployment { deployment_id: id, rollback_id: None };
    assert_eq!(apply(&mut state2, 7, stop), Outcome::Done);
    spec.target_instances = Some(state2.deployment_group("app", "bg").expect("bg").target_selector.clone());
    let overlap = Command::CreateDeployment { spec: spec.clone(), deployment_id: DeploymentId("d-OVERLAP01".into()) };
    assert!(refused(&mut state2, 8, overlap).1.contains("overlaps blue"));
    spec.target_instances = Some(TargetSelector::default());
    let nobody = Command::CreateDeployment { spec, deployment_id: DeploymentId("d-NOBODY01".into()) };
    assert!(refused(&mut state2, 9, nobody).1.contains("green fleet is empty"));
    // Blue/green without traffic control, and a configuration on an in-place group.
    assert_eq!(apply(&mut state, 2, Command::SetFeatureLevel { level: FeatureLevel::BLUE_GREEN }), Outcome::Done);
    let Command::CreateDeploymentGroup { mut spec, deployment_group_id } = group_command() else { unreachable!() };
    spec.deployment_option = DeploymentOption::WithoutTrafficControl;
    spec.load_balancer_info = None;
    let without =
        Command::CreateDeploymentGroup { spec: spec.clone(), deployment_group_id: deployment_group_id.clone() };
    assert!(refused(&mut state, 3, without).1.contains("WITH_TRAFFIC_CONTROL"));
    spec.deployment_type = DeploymentType::InPlace;
    let in_place = Command::CreateDeploymentGroup { spec, deployment_group_id };
    assert!(refused(&mut state, 4, in_place).1.contains("only for deploymentType=BLUE_GREEN"));
}

/// A canary configuration `canary25`: 25 % of new connections, then 3 s, then the rest.
fn canary_config() -> Command {
    Command::CreateDeploymentConfig {
        name: "canary25".into(),
        deployment_config_id: "c-25".into(),
        compute_platform: crate::model::resources::ComputePlatform::Server,
        minimum_healthy_hosts: crate::model::resources::MinimumHealthyHosts {
            kind: crate::model::resources::MinimumHealthyHostsType::MostConcurrency,
            value: 1,
        },
        traffic_routing_config: Some(crate::model::traffic_routing::tests::canary(25, None, Some(3))),
    }
}

/// Starts the green hosts 2 and 3, reports them `Ready` and enters the `Ready` phase.
fn green_ready(state: &mut ClusterState, id: &DeploymentId) {
    let start = Command::StartTargets { deployment_id: id.clone(), targets: vec![NodeId(2), NodeId(3)] };
    assert_eq!(apply(state, 10, start), Outcome::Done);
    for node in [2, 3] {
        assert_eq!(
            apply(state, 12, report(id, node, 1, TargetStatus::Ready, GREEN_EVENTS, "ValidateService")),
            Outcome::Done
        );
    }
    assert_eq!(apply(state, 13, enter(id, BlueGreenPhase::Ready)), Outcome::Done);
}

/// The route's effective weights by host.
fn effective(state: &ClusterState) -> Vec<(u64, u32)> {
    let route = &state.routes["web"];
    route.targets.iter().map(|target| target.target_id.0).zip(state.effective_weights(route)).collect()
}

#[test]
fn a_canary_gives_green_its_share_in_committed_steps_and_a_rollback_gives_blue_everything() {
    // Below level 11 a stepped configuration is refused for blue/green, as before.
    let (state, id) = blue_green_with(FeatureLevel::BLUE_GREEN, Some(canary_config()));
    assert!(!state.deployments.contains_key(&id), "refused below level 11");
    let (mut state, id) = blue_green_with(FeatureLevel::BLUE_GREEN_STEPS, Some(canary_config()));
    green_ready(&mut state, &id);
    let version = state.routes["web"].version;
    assert_eq!(apply(&mut state, 14, enter(&id, BlueGreenPhase::Rerouting)), Outcome::Done);
    assert_eq!(state.routes["web"].version, version + 1, "a new split is a route change");
    // Green joins at the canary's share; shifting waits for both green targets.
    let allow = Command::SetTargetTraffic { deployment_id: id.clone(), target_id: NodeId(2), allow: true };
    assert_eq!(apply(&mut state, 15, allow), Outcome::Done);
    assert_eq!(effective(&state), [(1, 75_000), (2, 25_000)]);
    assert!(refused(&mut state, 16, enter(&id, BlueGreenPhase::Shifting)).1.contains("not done"));
    let allow = Command::SetTargetTraffic { deployment_id: id.clone(), target_id: NodeId(3), allow: true };
    assert_eq!(apply(&mut state, 17, allow), Outcome::Done);
    assert_eq!(effective(&state), [(1, 75_000), (2, 12_500), (3, 12_500)]);
    for node in [2, 3] {
        let done = report(&id, node, 2, TargetStatus::Succeeded, GREEN_EVENTS, "AfterAllowTraffic");
        assert_eq!(apply(&mut state, 18, done), Outcome::Done);
    }
    assert_eq!(apply(&mut state, 20, enter(&id, BlueGreenPhase::Shifting)), Outcome::Done);
    // Steps only go up and stay below 100 (blue leaving is the last step).
    let shift = |percent| Command::AdvanceBlueGreen { deployment_id: id.clone(), step: BlueGreenStep::Shift(percent) };
    assert_eq!(shift(50).feature_level(), FeatureLevel::BLUE_GREEN_STEPS);
    assert!(refused(&mut state, 21, shift(25)).1.contains("moves it up"));
    assert!(refused(&mut state, 21, shift(100)).1.contains("not to 100 %"));
    assert_eq!(apply(&mut state, 22, shift(60)), Outcome::Done);
    assert_eq!(effective(&state), [(1, 40_000), (2, 30_000), (3, 30_000)]);
    assert_eq!(state.deployments[&id].blue_green.map(|run| run.phase_since.0), Some(22), "the next bake starts");
    // A stop with rollback: the split goes, blue serves, green drains.
    let rollback = Some(DeploymentId("d-ROLLBACK1".into()));
    assert_eq!(
        apply(&mut state, 30, Command::StopDeployment { deployment_id: id, rollback_id: rollback }),
        Outcome::Done
    );
    use TrafficState::{Draining, Serving};
    assert_eq!(route_states(&state), [(1, Serving), (2, Draining), (3, Draining)]);
    assert_eq!(effective(&state), [(1, 100), (2, 100), (3, 100)], "weights are the targets' own again");
    assert_eq!(state.traffic_split("web"), None);
}

#[test]
fn a_stepped_deployment_stopped_without_rollback_leaves_traffic_where_it_was() {
    let (mut state, id) = blue_green_with(FeatureLevel::BLUE_GREEN_STEPS, Some(canary_config()));
    green_ready(&mut state, &id);
    assert_eq!(apply(&mut state, 14, enter(&id, BlueGreenPhase::Rerouting)), Outcome::Done);
    for node in [2, 3] {
        let allow = Command::SetTargetTraffic { deployment_id: id.clone(), target_id: NodeId(node), allow: true };
        assert_eq!(apply(&mut state, 15, allow), Outcome::Done);
    }
    assert_eq!(apply(&mut state, 16, Command::StopDeployment { deployment_id: id, rollback_id: None }), Outcome::Done);
    // 25 % stays with green, now in the targets' own weights (at most 1000).
    assert_eq!(effective(&state), [(1, 750), (2, 125), (3, 125)]);
    assert_eq!(state.routes["web"].targets[1].weight, 125);
}

#[test]
fn a_rollback_once_blue_is_being_stopped_leaves_the_routes_with_green() {
    // Green 2 and 3 take the route, blue 1 leaves it, the termination wait ends and blue
    // is being stopped (Terminating); a stop with rollback then: asserts the routes are
    // unchanged (green serving, blue draining) and the rollback message says why.
    let (mut state, id) = blue_green();
    let start = Command::StartTargets { deployment_id: id.clone(), targets: vec![NodeId(2), NodeId(3)] };
    assert_eq!(apply(&mut state, 10, start), Outcome::Done);
    for node in [2, 3] {
        let ready = report(&id, node, 1, TargetStatus::Ready, GREEN_EVENTS, "ValidateService");
        assert_eq!(apply(&mut state, 11, ready), Outcome::Done);
    }
    let go = Command::ContinueDeployment { deployment_id: id.clone(), wait_type: DeploymentWaitType::ReadyWait };
    for command in [enter(&id, BlueGreenPhase::Ready), go, enter(&id, BlueGreenPhase::Rerouting)] {
        assert_eq!(apply(&mut state, 12, command), Outcome::Done);
    }
    for node in [2, 3] {
        let allow = Command::SetTargetTraffic { deployment_id: id.clone(), target_id: NodeId(node), allow: true };
        assert_eq!(apply(&mut state, 13, allow), Outcome::Done);
        let done = report(&id, node, 2, TargetStatus::Succeeded, GREEN_EVENTS, "AfterAllowTraffic");
        assert_eq!(apply(&mut state, 14, done), Outcome::Done);
    }
    assert_eq!(apply(&mut state, 15, enter(&id, BlueGreenPhase::Blocking)), Outcome::Done);
    let block = Command::SetTargetTraffic { deployment_id: id.clone(), target_id: NodeId(1), allow: false };
    assert_eq!(apply(&mut state, 16, block), Outcome::Done);
    let blue_events = ["BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic"];
    let blocked = report(&id, 1, 1, TargetStatus::Succeeded, &blue_events, "AfterBlockTraffic");
    assert_eq!(apply(&mut state, 17, blocked), Outcome::Done);
    for phase in [BlueGreenPhase::TerminationWait, BlueGreenPhase::Terminating] {
        assert_eq!(apply(&mut state, 18, enter(&id, phase)), Outcome::Done);
    }
    let rollback = Some(DeploymentId("d-ROLLBACK1".into()));
    let stop = Command::StopDeployment { deployment_id: id.clone(), rollback_id: rollback };
    assert_eq!(apply(&mut state, 20, stop), Outcome::Done);
    use TrafficState::{Draining, Serving};
    assert_eq!(route_states(&state), [(1, Draining), (2, Serving), (3, Serving)]);
    let deployment = &state.deployments[&id];
    assert_eq!(deployment.status, DeploymentStatus::Stopped);
    let message = deployment.rollback_info.as_ref().map(|info| info.rollback_message.clone()).unwrap_or_default();
    assert!(message.contains("traffic stayed on the replacement fleet"), "{message}");
}
