//! Scenarios for routes: the three web hosts of `tests::setup`, route commands in, the
//! exact outcomes and state asserted; bad input changes nothing.

use std::collections::BTreeMap;

use crate::command::{ApplyErrorKind, Command, DeploymentGroupSpec, Outcome, TargetReport};
use crate::model::deployment::{LifecycleEvent, LifecycleEventStatus, TargetStatus, IN_PLACE_TRAFFIC_EVENTS};
use crate::model::ids::DeploymentId;
use crate::model::members::MemberSpec;
use crate::model::resources::{DeploymentOption, LoadBalancerInfo, TargetGroupInfo};
use crate::model::routes::{RouteSpec, RouteTarget, TrafficState, DRAIN_SECONDS_DEFAULT, ROUTE_WEIGHT_DEFAULT};
use crate::tests::{at, setup};
use crate::{ClusterState, FeatureLevel, NodeId, Proposal};

fn route(name: &str, listen_port: u16) -> RouteSpec {
    RouteSpec {
        route_name: name.into(),
        listen_port,
        target_port: 8080,
        router_tags: BTreeMap::from([("role".to_string(), "web".to_string())]),
        drain_seconds: DRAIN_SECONDS_DEFAULT,
        command: None,
    }
}

fn target(id: u64, weight: u32) -> RouteTarget {
    RouteTarget { target_id: NodeId(id), weight, state: TrafficState::Serving }
}

/// Applies one command at `millis`; its outcome.
fn apply(state: &mut ClusterState, millis: u64, command: Command) -> Outcome {
    let mut outcomes = state.apply(&at(millis, vec![command])).outcomes;
    outcomes.pop().expect("one outcome per command")
}

/// The kind of a refusal, and its message (which must name what is wrong).
fn refused(outcome: Outcome) -> (ApplyErrorKind, String) {
    match outcome {
        Outcome::Rejected(error) => (error.kind, error.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_route_is_created_given_targets_and_deleted() {
    let (mut state, _, _) = setup();
    assert_eq!(apply(&mut state, 10, Command::CreateRoute { spec: route("web", 9000) }), Outcome::Done);
    let targets = vec![target(1, 90), target(2, 10), RouteTarget { state: TrafficState::Draining, ..target(3, 0) }];
    let set = Command::SetRouteTargets { route_name: "web".into(), targets: targets.clone() };
    assert_eq!(apply(&mut state, 20, set), Outcome::Done);
    let stored = &state.routes["web"];
    assert_eq!((stored.targets.clone(), stored.create_time.0, stored.update_time.0), (targets, 10, 20));
    assert_eq!(stored.version, 2, "created, then targets set");
    assert!(stored.is_router(&state.members[&NodeId(1)].tags));
    assert!(stored.targets[0].is_open() && !stored.targets[2].is_open());
    assert_eq!(apply(&mut state, 30, Command::DeleteRoute { route_name: "web".into() }), Outcome::Done);
    assert!(state.routes.is_empty());
    let (kind, message) = refused(apply(&mut state, 40, Command::DeleteRoute { route_name: "web".into() }));
    assert_eq!(kind, ApplyErrorKind::NotFound, "{message}");
}

#[test]
fn bad_routes_are_refused_with_a_reason_and_change_nothing() {
    let (mut state, _, _) = setup();
    assert_eq!(apply(&mut state, 10, Command::CreateRoute { spec: route("web", 9000) }), Outcome::Done);
    let before = state.clone();
    let cases: Vec<(RouteSpec, ApplyErrorKind, &str)> = vec![
        (route("other", 9000), ApplyErrorKind::Conflict, "listen port 9000 is already used by route web"),
        (route("web", 9001), ApplyErrorKind::AlreadyExists, "route web already exists"),
        (route("bad name", 9001), ApplyErrorKind::Invalid, "route name"),
        (route("zero", 0), ApplyErrorKind::Invalid, "listen port must be 1 to 65535"),
        (RouteSpec { target_port: 0, ..route("zero", 9001) }, ApplyErrorKind::Invalid, "target port"),
        (RouteSpec { router_tags: BTreeMap::new(), ..route("t", 9001) }, ApplyErrorKind::Invalid, "router tag"),
        (
            RouteSpec { router_tags: BTreeMap::from([(String::new(), "x".into())]), ..route("t", 9001) },
            ApplyErrorKind::Invalid,
            "router tag key",
        ),
        (RouteSpec { drain_seconds: 3601, ..route("t", 9001) }, ApplyErrorKind::Invalid, "drain time 3601"),
        (RouteSpec { command: Some("nginx.sh".into()), ..route("t", 9001) }, ApplyErrorKind::Invalid, "absolute"),
    ];
    for (index, (spec, kind, needle)) in cases.into_iter().enumerate() {
        let (got, message) = refused(apply(&mut state, 20 + index as u64, Command::CreateRoute { spec }));
        assert_eq!(got, kind, "{message}");
        assert!(message.contains(needle), "{message:?} should say {needle:?}");
    }
    let set = |targets| Command::SetRouteTargets { route_name: "web".into(), targets };
    let bad_targets: Vec<(Vec<RouteTarget>, &str)> = vec![
        (vec![target(9, 10)], "target 9 is not a member"),
        (vec![target(1, 10), target(1, 20)], "target 1 is listed twice"),
        (vec![target(1, 1001)], "weight 1001"),
    ];
    for (targets, needle) in bad_targets {
        let (kind, message) = refused(apply(&mut state, 50, set(targets)));
        assert_eq!(kind, ApplyErrorKind::Invalid, "{message}");
        assert!(message.contains(needle), "{message:?} should say {needle:?}");
    }
    let missing = Command::SetRouteTargets { route_name: "nope".into(), targets: vec![] };
    assert_eq!(refused(apply(&mut state, 60, missing)).0, ApplyErrorKind::NotFound);
    // Only the clock of the last proposal moved.
    assert_eq!(ClusterState { last_applied_at: before.last_applied_at, ..state }, before);
}

#[test]
fn route_commands_need_level_8_and_an_advertised_address_too() {
    let create = Command::CreateRoute { spec: route("web", 9000) };
    assert_eq!(create.feature_level(), FeatureLevel::TRAFFIC_ROUTES);
    assert_eq!(Proposal::new(crate::model::ids::UnixMillis(1), vec![create]).level, FeatureLevel::TRAFFIC_ROUTES);
    let mut spec = MemberSpec {
        listen: "0.0.0.0:7400".parse().expect("address"),
        api: "127.0.0.1:7480".parse().expect("address"),
        tags: BTreeMap::new(),
        advertise: None,
        instance_name: None,
    };
    assert_eq!(Command::AddMember { spec: spec.clone() }.feature_level(), FeatureLevel::BASE);
    spec.advertise = Some("10.0.0.5".parse().expect("address"));
    assert_eq!(Command::AddMember { spec: spec.clone() }.feature_level(), FeatureLevel::TRAFFIC_ROUTES);
    assert_eq!(spec.clone().for_level(FeatureLevel::AUDIT).advertise, None, "older voters would drop it");
    // An older release's spec (no field) decodes, and one without an address encodes as before.
    let old = r#"{"listen":"10.0.0.5:7400","api":"127.0.0.1:7480","tags":{}}"#;
    let decoded: MemberSpec = serde_json::from_str(old).expect("an older spec decodes");
    assert_eq!(serde_json::to_string(&decoded).expect("encodes"), old);
}

#[test]
fn a_members_address_is_its_advertised_one_else_its_listen_ip() {
    let (mut state, _, _) = setup();
    assert_eq!(state.members[&NodeId(2)].address().to_string(), "127.0.0.1");
    let spec = MemberSpec {
        listen: "0.0.0.0:7500".parse().expect("address"),
        api: "127.0.0.1:8500".parse().expect("address"),
        tags: BTreeMap::new(),
        advertise: Some("10.1.2.3".parse().expect("address")),
        instance_name: None,
    };
    assert_eq!(apply(&mut state, 10, Command::AddMember { spec }), Outcome::MemberAdded(NodeId(4)));
    assert_eq!(state.members[&NodeId(4)].address().to_string(), "10.1.2.3");
}

/// The group of `tests::setup` again, as `web-lb`, with traffic control on `routes`.
fn traffic_group(routes: &[&str], option: DeploymentOption) -> Command {
    let (state, _, _) = setup();
    let group = state.deployment_group("app", "web").expect("the setup's group");
    let info = LoadBalancerInfo {
        target_group_info_list: routes.iter().map(|name| TargetGroupInfo { name: (*name).into() }).collect(),
        target_group_pair_info_list: Vec::new(),
    };
    Command::CreateDeploymentGroup {
        spec: DeploymentGroupSpec {
            alarm_configuration: None,
            application_name: "app".into(),
            deployment_group_name: "web-lb".into(),
            deployment_config_name: group.deployment_config_name.clone(),
            target_selector: group.target_selector.clone(),
            auto_rollback_configuration: group.auto_rollback_configuration.clone(),
            update_outdated_instances: true,
            deployment_option: option,
            load_balancer_info: Some(info),
            deployment_type: Default::default(),
            blue_green_deployment_configuration: None,
            service_role_arn: None,
            ecs_services: Vec::new(),
            trigger_configurations: Vec::new(),
        },
        deployment_group_id: "g-lb".into(),
    }
}

/// Replaces the setup's group by a traffic-controlled one on route `web` (port 9000)
/// and starts deployment `d-TRAFFIC01` of the first revision on host 1.
fn traffic_deployment() -> (ClusterState, DeploymentId) {
    let (mut state, first, _) = setup();
    assert_eq!(apply(&mut state, 10, Command::CreateRoute { spec: route("web", 9000) }), Outcome::Done);
    assert_eq!(apply(&mut state, 11, traffic_group(&["web"], DeploymentOption::WithTrafficControl)), Outcome::Done);
    let Command::CreateDeployment { mut spec, deployment_id } = crate::tests::deploy(&first, "d-TRAFFIC01") else {
        unreachable!("deploy makes a CreateDeployment")
    };
    spec.deployment_group_name = "web-lb".into();
    assert_eq!(
        apply(&mut state, 12, Command::CreateDeployment { spec, deployment_id: deployment_id.clone() }),
        Outcome::Done
    );
    let start = Command::StartTargets { deployment_id: deployment_id.clone(), targets: vec![NodeId(1)] };
    assert_eq!(apply(&mut state, 13, start), Outcome::Done);
    (state, deployment_id)
}

/// Host 1's report for `deployment` with every event up to and including `done`
/// succeeded and the rest pending.
fn report_through(deployment: &DeploymentId, seq: u64, done: &str) -> Command {
    let mut passed = true;
    let lifecycle_events = IN_PLACE_TRAFFIC_EVENTS
        .iter()
        .map(|name| {
            let status = if passed { LifecycleEventStatus::Succeeded } else { LifecycleEventStatus::Pending };
            passed &= *name != done;
            LifecycleEvent { status, ..LifecycleEvent::pending(name) }
        })
        .collect();
    let report = TargetReport {
        deployment_id: deployment.clone(),
        target_id: NodeId(1),
        seq,
        status: TargetStatus::InProgress,
        lifecycle_events,
    };
    Command::ReportTargets { reports: vec![report] }
}

#[test]
fn a_traffic_controlled_deployment_blocks_and_allows_each_target_on_its_routes() {
    let (mut state, id) = traffic_deployment();
    let deployment = &state.deployments[&id];
    assert_eq!(deployment.traffic_routes, vec!["web".to_string()]);
    let names: Vec<&str> = deployment.targets[&NodeId(1)]
        .lifecycle_events
        .iter()
        .map(|event| event.lifecycle_event_name.as_str())
        .collect();
    assert_eq!(names, IN_PLACE_TRAFFIC_EVENTS, "the block events come first, the allow events last");
    let traffic = |allow| Command::SetTargetTraffic { deployment_id: id.clone(), target_id: NodeId(1), allow };
    assert_eq!(traffic(true).feature_level(), FeatureLevel::TRAFFIC_CONTROL);

    // Blocking a host the route does not serve changes no target (only the version:
    // command routers run again); allowing before ValidateService passed is refused.
    let before = state.routes.clone();
    assert_eq!(apply(&mut state, 20, traffic(false)), Outcome::Done);
    assert_eq!(state.routes["web"].targets, before["web"].targets);
    assert_eq!(state.routes["web"].version, before["web"].version + 1);
    let before = state.routes.clone();
    let (kind, message) = refused(apply(&mut state, 21, traffic(true)));
    assert_eq!(kind, ApplyErrorKind::Conflict);
    assert!(message.contains("has not passed ValidateService"), "{message}");
    assert_eq!(state.routes, before);

    // After ValidateService: allowed, at the default weight.
    apply(&mut state, 22, report_through(&id, 1, "ValidateService"));
    assert_eq!(apply(&mut state, 23, traffic(true)), Outcome::Done);
    let serving = RouteTarget { target_id: NodeId(1), weight: ROUTE_WEIGHT_DEFAULT, state: TrafficState::Serving };
    assert_eq!(state.routes["web"].targets, vec![serving.clone()]);
    assert_eq!(state.routes["web"].update_time.0, 23);
    // Blocked: draining, weight kept for the next allow.
    assert_eq!(apply(&mut state, 24, traffic(false)), Outcome::Done);
    assert_eq!(state.routes["web"].targets, vec![RouteTarget { state: TrafficState::Draining, ..serving.clone() }]);
    assert_eq!(apply(&mut state, 25, traffic(true)), Outcome::Done);
    assert_eq!(state.routes["web"].targets, vec![serving]);
    // The version counts the traffic events (allowed, blocked, allowed), and a retried
    // allow (a leader change) too, though it changes no target.
    assert_eq!(state.routes["web"].version, before["web"].version + 3);
    let targets = state.routes["web"].targets.clone();
    assert_eq!(apply(&mut state, 25, traffic(true)), Outcome::Done);
    assert_eq!((&state.routes["web"].targets, state.routes["web"].version), (&targets, before["web"].version + 4));

    // The route cannot go while its group names it.
    let (kind, message) = refused(apply(&mut state, 26, Command::DeleteRoute { route_name: "web".into() }));
    assert_eq!(kind, ApplyErrorKind::Conflict);
    assert!(message.contains("deployment group web-lb"), "{message}");
    // A host that is not a target is refused.
    let stranger = Command::SetTargetTraffic { deployment_id: id.clone(), target_id: NodeId(2), allow: false };
    let (kind, _) = refused(apply(&mut state, 27, stranger));
    assert_eq!(kind, ApplyErrorKind::Conflict, "host 2 is a pending target, not in progress");
}

#[test]
fn bad_traffic_control_settings_are_refused_with_a_reason_and_change_nothing() {
    let (mut state, _, _) = setup();
    assert_eq!(apply(&mut state, 10, Command::CreateRoute { spec: route("web", 9000) }), Outcome::Done);
    let before = state.clone();
    let with = DeploymentOption::WithTrafficControl;
    let no_info = {
        let Command::CreateDeploymentGroup { mut spec, deployment_group_id } = traffic_group(&[], with) else {
            unreachable!()
        };
        spec.load_balancer_info = None;
        Command::CreateDeploymentGroup { spec, deployment_group_id }
    };
    let eleven: Vec<String> = (0..11).map(|index| format!("r{index}")).collect();
    let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
    let cases = vec![
        (traffic_group(&["nope"], with), ApplyErrorKind::NotFound, "names route \"nope\", which does not exist"),
        (traffic_group(&[], with), ApplyErrorKind::Invalid, "targetGroupInfoList is empty"),
        (no_info, ApplyErrorKind::Invalid, "needs loadBalancerInfo"),
        (traffic_group(&["web", "web"], with), ApplyErrorKind::Invalid, "names route \"web\" twice"),
        (traffic_group(&eleven, with), ApplyErrorKind::Invalid, "at most 10"),
    ];
    for (command, expected, words) in cases {
        assert_eq!(command.feature_level(), FeatureLevel::TRAFFIC_CONTROL);
        let (kind, message) = refused(apply(&mut state, 20, command));
        assert_eq!(kind, expected, "{message}");
        assert!(message.contains(words), "{message:?} should say {words:?}");
        assert_eq!((&state.deployment_groups, &state.routes), (&before.deployment_groups, &before.routes));
    }
    // Without traffic control a group may still name routes (kept for later), and
    // its deployments move no traffic.
    let without = traffic_group(&["web"], DeploymentOption::WithoutTrafficControl);
    assert_eq!(apply(&mut state, 30, without), Outcome::Done);
    assert!(state.deployment_group("app", "web-lb").expect("created").traffic_routes().is_empty());
}

#[test]
fn one_deployment_at_a_time_moves_a_route() {
    // Two groups name route web; while a deployment of one runs, the other's is refused
    // and nothing is created.
    let (mut state, id) = traffic_deployment();
    let second_group = {
        let Command::CreateDeploymentGroup { mut spec, .. } =
            traffic_group(&["web"], DeploymentOption::WithTrafficControl)
        else {
            unreachable!()
        };
        spec.deployment_group_name = "web-2".into();
        Command::CreateDeploymentGroup { spec, deployment_group_id: "g-2".into() }
    };
    assert_eq!(apply(&mut state, 30, second_group), Outcome::Done);
    let (_, first, _) = setup();
    let Command::CreateDeployment { mut spec, .. } = crate::tests::deploy(&first, "d-TRAFFIC02") else {
        unreachable!()
    };
    spec.deployment_group_name = "web-2".into();
    let second = DeploymentId("d-TRAFFIC02".into());
    let (kind, message) =
        refused(apply(&mut state, 31, Command::CreateDeployment { spec, deployment_id: second.clone() }));
    assert_eq!(kind, ApplyErrorKind::Conflict);
    assert!(message.contains(&format!("route web is being changed by deployment {id}")), "{message}");
    assert!(!state.deployments.contains_key(&second));
}

const TARGET_GROUP_ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";

/// A target group named by its ARN is an ELBv2 one (level 14): no route needed, copied
/// into the deployment, whose targets get the traffic events, and traffic events apply
/// with no route to change. Below level 14, and on a blue/green group, it is refused.
#[test]
fn an_elbv2_target_group_by_arn_controls_traffic_from_level_14() {
    use crate::model::ecs_group::is_target_group_arn;
    use crate::model::resources::DeploymentType;
    assert!(is_target_group_arn(TARGET_GROUP_ARN));
    assert!(!is_target_group_arn("web") && !is_target_group_arn("arn:aws:iam::1:role/x"));
    let (mut state, first, _) = setup();
    let group = traffic_group(&[TARGET_GROUP_ARN], DeploymentOption::WithTrafficControl);
    state.feature_level = FeatureLevel::PLATFORM_DEPLOYMENTS;
    let (_, message) = refused(apply(&mut state, 10, group.clone()));
    assert!(message.contains("need feature level 14"), "{message}");
    state.feature_level = FeatureLevel::ECS_DEPLOYMENTS;
    let Command::CreateDeploymentGroup { spec, deployment_group_id } = group.clone() else { unreachable!() };
    let blue_green = DeploymentGroupSpec { deployment_type: DeploymentType::BlueGreen, ..spec };
    let command = Command::CreateDeploymentGroup { spec: blue_green, deployment_group_id };
    let (_, message) = refused(apply(&mut state, 11, command));
    assert!(message.contains("ELBv2 target groups are for IN_PLACE groups"), "{message}");
    assert_eq!(apply(&mut state, 12, group), Outcome::Done);
    let Command::CreateDeployment { mut spec, deployment_id } = crate::tests::deploy(&first, "d-ELBV2TG01") else {
        unreachable!("deploy makes a CreateDeployment")
    };
    spec.deployment_group_name = "web-lb".into();
    assert_eq!(
        apply(&mut state, 13, Command::CreateDeployment { spec, deployment_id: deployment_id.clone() }),
        Outcome::Done
    );
    let deployment = &state.deployments[&deployment_id];
    assert_eq!(
        (deployment.traffic_routes.len(), deployment.elbv2_target_groups.clone()),
        (0, vec![TARGET_GROUP_ARN.to_string()])
    );
    let events: Vec<&str> = deployment.targets[&NodeId(1)]
        .lifecycle_events
        .iter()
        .map(|event| event.lifecycle_event_name.as_str())
        .collect();
    assert_eq!(events, IN_PLACE_TRAFFIC_EVENTS);
    let start = Command::StartTargets { deployment_id: deployment_id.clone(), targets: vec![NodeId(1)] };
    assert_eq!(apply(&mut state, 14, start), Outcome::Done);
    let block = Command::SetTargetTraffic { deployment_id, target_id: NodeId(1), allow: false };
    assert_eq!(apply(&mut state, 15, block), Outcome::Done);
}
