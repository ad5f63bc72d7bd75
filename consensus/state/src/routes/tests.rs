//! Scenarios for routes: the three web hosts of `tests::setup`, route commands in, the
//! exact outcomes and state asserted; bad input changes nothing.

use std::collections::BTreeMap;

use crate::command::{ApplyErrorKind, Command, Outcome};
use crate::model::members::MemberSpec;
use crate::model::routes::{RouteSpec, RouteTarget, TrafficState, DRAIN_SECONDS_DEFAULT};
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
    };
    assert_eq!(apply(&mut state, 10, Command::AddMember { spec }), Outcome::MemberAdded(NodeId(4)));
    assert_eq!(state.members[&NodeId(4)].address().to_string(), "10.1.2.3");
}
