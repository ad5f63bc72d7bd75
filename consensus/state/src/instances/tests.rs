use std::collections::BTreeMap;

use crate::model::ids::UnixMillis;
use crate::model::instances::Tag;
use crate::model::members::MemberSpec;
use crate::tests::{at, setup};
use crate::{ClusterState, Command, FeatureLevel, NodeId, Outcome};

fn apply(state: &mut ClusterState, millis: u64, command: Command) -> Outcome {
    state.apply(&at(millis, vec![command])).outcomes.remove(0)
}

fn refused(outcome: &Outcome, words: &str) -> bool {
    matches!(outcome, Outcome::Rejected(error) if error.message.contains(words))
}

fn register(name: &str) -> Command {
    Command::RegisterInstance { instance_name: name.into(), iam_session_arn: None, iam_user_arn: None }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag { key: key.into(), value: value.into() }
}

fn tags(names: &[&str], add: Vec<Tag>, remove: Vec<Tag>) -> Command {
    Command::TagInstances { instance_names: names.iter().map(ToString::to_string).collect(), add, remove }
}

fn joiner(port: u16, instance: &str) -> MemberSpec {
    MemberSpec {
        listen: format!("127.0.0.1:{port}").parse().expect("address"),
        api: format!("127.0.0.1:{}", port + 1000).parse().expect("address"),
        tags: BTreeMap::from([("role".to_string(), "web".to_string())]),
        advertise: None,
        instance_name: Some(instance.into()),
    }
}

fn web_targets(state: &ClusterState) -> Vec<NodeId> {
    state.group_targets(state.deployment_group("app", "web").expect("group"))
}

#[test]
fn instances_register_once_deregister_and_register_again() {
    let (mut state, _, _) = setup();
    assert_eq!(apply(&mut state, 10, register("box-1")), Outcome::Done);
    assert!(refused(&apply(&mut state, 11, register("box-1")), "registered already"));
    assert!(refused(&apply(&mut state, 11, register("bad name")), "instance name"));
    let both = Command::RegisterInstance {
        instance_name: "box-2".into(),
        iam_session_arn: Some("arn:aws:sts::1:assumed-role/r/s".into()),
        iam_user_arn: Some("arn:aws:iam::1:user/u".into()),
    };
    assert!(refused(&apply(&mut state, 12, both), "not both"));
    let not_arn = Command::RegisterInstance {
        instance_name: "box-2".into(),
        iam_session_arn: None,
        iam_user_arn: Some("u".into()),
    };
    assert!(refused(&apply(&mut state, 12, not_arn), "not an ARN"));
    let user = |name: &str| Command::RegisterInstance {
        instance_name: name.into(),
        iam_session_arn: None,
        iam_user_arn: Some("arn:aws:iam::1:user/u".into()),
    };
    assert_eq!(apply(&mut state, 13, user("box-2")), Outcome::Done);
    assert!(refused(&apply(&mut state, 13, user("box-3")), "box-2"), "one IAM user, one instance");
    assert!(!state.instances.contains_key("box-3"));

    let deregister = |name: &str| Command::DeregisterInstance { instance_name: name.into() };
    assert_eq!(apply(&mut state, 20, deregister("box-1")), Outcome::Done);
    assert!(refused(&apply(&mut state, 21, deregister("box-1")), "not registered"));
    assert!(refused(&apply(&mut state, 21, deregister("nobody")), "not registered"));
    assert_eq!(state.instances["box-1"].deregister_time, Some(UnixMillis(20)));
    assert_eq!(apply(&mut state, 30, register("box-1")), Outcome::Done);
    assert_eq!(state.instances["box-1"].register_time, UnixMillis(30));
    assert!(state.instances["box-1"].is_registered());
}

#[test]
fn a_node_takes_its_instance_and_the_instances_tags_are_its_tags() {
    let (mut state, _, _) = setup();
    assert_eq!(apply(&mut state, 10, register("box-4")), Outcome::Done);
    assert_eq!(
        apply(&mut state, 11, tags(&["box-4"], vec![tag("env", "prod"), tag("role", "db")], vec![])),
        Outcome::Done
    );
    // The joiner's --tag role=web meets the instance's role=db: the instance's wins.
    let added = apply(&mut state, 12, Command::AddMember { spec: joiner(7404, "box-4") });
    assert_eq!(added, Outcome::MemberAdded(NodeId(4)));
    let member = &state.members[&NodeId(4)];
    assert_eq!(member.instance_name.as_deref(), Some("box-4"));
    assert_eq!(member.tags, BTreeMap::from([("env".into(), "prod".into()), ("role".into(), "db".into())]));
    assert_eq!(state.instance_tags("box-4"), Some(&member.tags));
    assert!(!web_targets(&state).contains(&NodeId(4)));

    // Another node naming the same instance is refused, and nothing changes.
    let before = state.clone();
    assert!(refused(&apply(&mut state, 13, Command::AddMember { spec: joiner(7405, "box-4") }), "held by node 4"));
    let mut after = state.clone();
    after.last_applied_at = before.last_applied_at;
    assert_eq!(after, before);

    // Retagging the instance retags the node, so groups re-select it.
    let retag = tags(&["box-4"], vec![tag("role", "web")], vec![]);
    assert_eq!(apply(&mut state, 14, retag), Outcome::Done);
    assert!(web_targets(&state).contains(&NodeId(4)));
    assert_eq!(apply(&mut state, 15, tags(&["box-4"], vec![], vec![tag("role", "")])), Outcome::Done);
    assert!(!web_targets(&state).contains(&NodeId(4)));
    assert_eq!(state.members[&NodeId(4)].tags, BTreeMap::from([("env".into(), "prod".into())]));
    // A removal by key and another value leaves the tag.
    assert_eq!(apply(&mut state, 16, tags(&["box-4"], vec![], vec![tag("env", "test")])), Outcome::Done);
    assert_eq!(state.members[&NodeId(4)].tags.len(), 1);

    // Removing the node hands the instance back with the node's tags.
    assert_eq!(apply(&mut state, 17, Command::RemoveMember { id: NodeId(4) }), Outcome::Done);
    let instance = &state.instances["box-4"];
    assert_eq!((instance.node, instance.tags.len()), (None, 1));
    // Then another node may take it.
    assert_eq!(
        apply(&mut state, 18, Command::AddMember { spec: joiner(7405, "box-4") }),
        Outcome::MemberAdded(NodeId(5))
    );
}

#[test]
fn a_deregistered_instances_node_is_no_target() {
    let (mut state, _, _) = setup();
    let update = |port| Command::UpdateMember { id: NodeId(3), spec: joiner(port, "box-3") };
    // A node that names an instance not registered registers it.
    assert_eq!(apply(&mut state, 10, update(7403)), Outcome::Done);
    assert!(state.instances["box-3"].is_registered());
    assert_eq!(state.instances["box-3"].node, Some(NodeId(3)));
    assert_eq!(web_targets(&state), vec![NodeId(1), NodeId(2), NodeId(3)]);
    assert_eq!(apply(&mut state, 11, Command::DeregisterInstance { instance_name: "box-3".into() }), Outcome::Done);
    assert_eq!(web_targets(&state), vec![NodeId(1), NodeId(2)]);
    // Its tags cannot change while deregistered, and nothing changes when one of several is.
    assert_eq!(apply(&mut state, 12, register("box-9")), Outcome::Done);
    let both = tags(&["box-9", "box-3"], vec![tag("env", "prod")], vec![]);
    assert!(refused(&apply(&mut state, 13, both), "box-3 is not registered"));
    assert!(state.instance_tags("box-9").is_some_and(BTreeMap::is_empty));
}

#[test]
fn tag_calls_are_bounded_and_checked() {
    let (mut state, _, _) = setup();
    assert_eq!(apply(&mut state, 10, register("box-1")), Outcome::Done);
    assert!(refused(&apply(&mut state, 11, tags(&[], vec![tag("a", "b")], vec![])), "instanceNames"));
    assert!(refused(&apply(&mut state, 11, tags(&["box-1"], vec![], vec![])), "at least one tag"));
    assert!(refused(&apply(&mut state, 11, tags(&["box-1"], vec![tag("", "b")], vec![])), "Key"));
    let long = "k".repeat(129);
    assert!(refused(&apply(&mut state, 11, tags(&["box-1"], vec![tag(&long, "b")], vec![])), "128"));
    let eleven = (0..11).map(|index| tag(&format!("k{index}"), "v")).collect();
    assert!(refused(&apply(&mut state, 11, tags(&["box-1"], eleven, vec![])), "at most 10"));
    let many = vec!["box-1"; 11];
    assert!(refused(&apply(&mut state, 11, tags(&many, vec![tag("a", "b")], vec![])), "at most 10"));
    for round in 0..5 {
        let ten = (0..10).map(|index| tag(&format!("k{round}-{index}"), "v")).collect();
        assert_eq!(apply(&mut state, 12, tags(&["box-1"], ten, vec![])), Outcome::Done);
    }
    assert!(refused(&apply(&mut state, 13, tags(&["box-1"], vec![tag("one", "more")], vec![])), "at most 50"));
}

#[test]
fn instance_commands_need_the_aws_protocol_level() {
    let commands = [
        register("box"),
        Command::DeregisterInstance { instance_name: "box".into() },
        tags(&["box"], vec![tag("a", "b")], vec![]),
        Command::AddMember { spec: joiner(7404, "box") },
    ];
    for command in commands {
        assert_eq!(command.feature_level(), FeatureLevel::AWS_PROTOCOL, "{command:?}");
    }
    assert_eq!(joiner(7404, "box").for_level(FeatureLevel::SEALED_CA).instance_name, None);
    // A state without instances encodes as before.
    let (state, _, _) = setup();
    let encoded = serde_json::to_value(&state).expect("encodes");
    assert!(encoded.get("instances").is_none());
    assert!(!encoded.to_string().contains("instance_name"));
}

#[test]
fn applications_and_groups_carry_tags_across_renames() {
    use crate::model::instances::TaggedResource;
    let (mut state, _, _) = setup();
    let app = TaggedResource::Application { application_name: "app".into() };
    let group = TaggedResource::DeploymentGroup { application_name: "app".into(), deployment_group_name: "web".into() };
    let tag_resource = |resource: &TaggedResource, add: Vec<Tag>, remove: &[&str]| Command::TagResource {
        resource: resource.clone(),
        add,
        remove: remove.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(
        apply(&mut state, 10, tag_resource(&app, vec![tag("team", "shop"), tag("env", "prod")], &[])),
        Outcome::Done
    );
    assert_eq!(apply(&mut state, 11, tag_resource(&group, vec![tag("tier", "1")], &[])), Outcome::Done);
    assert_eq!(apply(&mut state, 12, tag_resource(&app, vec![], &["env", "absent"])), Outcome::Done);
    assert_eq!(state.applications["app"].tags, BTreeMap::from([("team".into(), "shop".into())]));
    let renamed = Command::UpdateApplication { application_name: "app".into(), new_application_name: "shop".into() };
    assert_eq!(apply(&mut state, 13, renamed), Outcome::Done);
    assert_eq!(state.applications["shop"].tags.len(), 1);
    assert_eq!(state.deployment_group("shop", "web").map(|group| group.tags.len()), Some(1));
    assert!(refused(
        &apply(&mut state, 14, tag_resource(&app, vec![tag("a", "b")], &[])),
        "application app does not exist"
    ));
    let missing =
        TaggedResource::DeploymentGroup { application_name: "shop".into(), deployment_group_name: "db".into() };
    assert!(refused(&apply(&mut state, 14, tag_resource(&missing, vec![tag("a", "b")], &[])), "deployment group db"));
    let renamed_app = TaggedResource::Application { application_name: "shop".into() };
    assert!(refused(&apply(&mut state, 14, tag_resource(&renamed_app, vec![], &[])), "at least one tag"));
    let fifty_one = (0..50).map(|index| tag(&format!("k{index}"), "v")).collect();
    assert!(refused(&apply(&mut state, 15, tag_resource(&renamed_app, fifty_one, &[])), "at most 50"));
    assert_eq!(state.applications["shop"].tags.len(), 1, "a refused call changes nothing");
}
