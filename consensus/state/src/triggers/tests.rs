//! Triggers: the checks, the backlog of a deployment in CodeDeploy's order, and a cursor
//! that only moves forward and never past the last event.

use crate::command::{Command, Outcome};
use crate::features::FeatureLevel;
use crate::model::triggers::{TriggerConfig, TriggerCursor, TriggerEventType};
use crate::tests::{at, deploy_everywhere, setup};
use crate::{ClusterState, TriggerScan};

fn trigger(name: &str, target: &str, events: &[TriggerEventType], secret: Option<&str>) -> TriggerConfig {
    TriggerConfig {
        trigger_name: name.into(),
        trigger_target_arn: target.into(),
        trigger_events: events.to_vec(),
        sealed_secret: secret.map(str::to_string),
    }
}

fn update(state: &mut ClusterState, triggers: Vec<TriggerConfig>) -> Outcome {
    let mut spec = state.deployment_group_spec_for_test("app", "web");
    spec.trigger_configurations = triggers;
    let command = Command::UpdateDeploymentGroup { current_deployment_group_name: "web".into(), spec };
    state.apply(&at(20, vec![command])).outcomes.remove(0)
}

fn rejected(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Rejected(error) => error.message.clone(),
        other => format!("accepted: {other:?}"),
    }
}

fn advance(state: &mut ClusterState, name: &str, to: u64) -> Outcome {
    let command = Command::AdvanceTriggerCursor(TriggerCursor {
        application_name: "app".into(),
        deployment_group_id: "g".into(),
        trigger_name: name.into(),
        delivered_through: to,
    });
    state.apply(&at(30, vec![command])).outcomes.remove(0)
}

#[test]
fn bad_triggers_are_refused_and_change_nothing() {
    let (mut state, _, _) = setup();
    let before = state.clone();
    let hook = |name: &str| trigger(name, "http://127.0.0.1:1/hook", &[TriggerEventType::DeploymentStart], None);
    let cases = [
        ((0..11).map(|index| hook(&format!("t{index}"))).collect::<Vec<_>>(), "at most 10 triggers"),
        (vec![hook("same"), hook("same")], "two triggers are named"),
        (vec![hook("")], "1 to 128 printable characters"),
        (vec![trigger("x", "ftp://host/x", &[TriggerEventType::DeploymentStart], None)], "neither an http(s)"),
        (vec![trigger("x", "arn:aws:sqs:us-east-1:1:q", &[TriggerEventType::DeploymentStart], None)], "SNS topic"),
        (vec![trigger("x", "https://example.com/", &[], None)], "names no triggerEvents"),
    ];
    for (triggers, expected) in cases {
        let message = rejected(&update(&mut state, triggers));
        assert!(message.contains(expected), "{expected:?} not in {message:?}");
        assert_eq!(state.deployment_groups, before.deployment_groups);
    }
}

#[test]
fn a_trigger_sends_its_groups_events_in_codedeploy_order_from_its_creation_on() {
    let (mut state, first, second) = setup();
    state.feature_level = FeatureLevel::TRIGGERS;
    deploy_everywhere(&mut state, &first, "d-AAAAAAAAA");
    let before_trigger = state.events.last_id;
    assert!(before_trigger > 0);
    let every = [
        TriggerEventType::DeploymentStart,
        TriggerEventType::DeploymentSuccess,
        TriggerEventType::InstanceStart,
        TriggerEventType::InstanceSuccess,
    ];
    let instances_only = [TriggerEventType::InstanceSuccess];
    let outcome = update(
        &mut state,
        vec![
            trigger("all", "http://127.0.0.1:9/a", &every, Some("sealed-1")),
            trigger("hosts", "arn:aws:sns:us-east-1:000000000000:t", &instances_only, None),
        ],
    );
    assert_eq!(outcome, Outcome::Done);
    let group = state.deployment_group("app", "web").expect("group");
    assert!(group.triggers.iter().all(|trigger| trigger.delivered_through == before_trigger), "no past events");
    deploy_everywhere(&mut state, &second, "d-BBBBBBBBB");
    let group = state.deployment_group("app", "web").expect("group").clone();
    let backlog = |state: &ClusterState, index: usize| -> Vec<(u64, TriggerEventType)> {
        let trigger = &group.triggers[index];
        let trigger = state
            .deployment_group("app", "web")
            .and_then(|group| group.triggers.iter().find(|t| t.config.trigger_name == trigger.config.trigger_name))
            .expect("trigger")
            .clone();
        let backlog = state.trigger_backlog(&group, &trigger, 0).expect("kept");
        backlog.map(|(event, kind)| (event.id, kind)).collect()
    };
    let all = backlog(&state, 0);
    let kinds: Vec<TriggerEventType> = all.iter().map(|(_, kind)| *kind).collect();
    use TriggerEventType::{DeploymentStart, DeploymentSuccess, InstanceStart, InstanceSuccess};
    let expected = [
        DeploymentStart,
        InstanceStart,
        InstanceStart,
        InstanceStart,
        InstanceSuccess,
        InstanceSuccess,
        InstanceSuccess,
        DeploymentSuccess,
    ];
    assert_eq!(kinds, expected);
    assert_eq!(backlog(&state, 1).len(), 3, "the SNS trigger names only InstanceSuccess");

    // The cursor moves forward only, and not past the last event.
    let (third, last) = (all[2].0, state.events.last_id);
    assert_eq!(advance(&mut state, "all", third), Outcome::Done);
    assert_eq!(backlog(&state, 0), all[3..].to_vec());
    assert_eq!(advance(&mut state, "all", third - 1), Outcome::Done, "a stale advance is a no-op");
    assert_eq!(backlog(&state, 0), all[3..].to_vec());
    assert!(rejected(&advance(&mut state, "all", last + 1)).contains("cannot pass the last event"));
    assert!(rejected(&advance(&mut state, "nope", last)).contains("does not exist"));
    assert_eq!(advance(&mut state, "all", last), Outcome::Done);
    assert!(backlog(&state, 0).is_empty());

    // An update keeps a trigger's cursor and, left out, its secret; "" clears it.
    let keep = trigger("all", "http://127.0.0.1:9/a", &every, None);
    assert_eq!(update(&mut state, vec![keep]), Outcome::Done);
    let kept = &state.deployment_group("app", "web").expect("group").triggers[0];
    assert_eq!((kept.delivered_through, kept.config.sealed_secret.as_deref()), (last, Some("sealed-1")));
    assert_eq!(update(&mut state, vec![trigger("all", "http://127.0.0.1:9/a", &every, Some(""))]), Outcome::Done);
    assert_eq!(state.deployment_group("app", "web").expect("group").triggers[0].config.sealed_secret, None);
    state.check_invariants();
}

#[test]
fn the_leaders_scan_looks_at_each_event_once_and_misses_none() {
    let (mut state, first, second) = setup();
    state.feature_level = FeatureLevel::TRIGGERS;
    let rare = |events: &[TriggerEventType]| trigger("rare", "http://127.0.0.1:9/r", events, None);
    let hosts = trigger("hosts", "http://127.0.0.1:9/h", &[TriggerEventType::InstanceSuccess], None);
    let triggers = vec![rare(&[TriggerEventType::DeploymentFailure]), hosts.clone()];
    assert_eq!(update(&mut state, triggers), Outcome::Done);
    let key = |name: &str| ("app".to_string(), "g".to_string(), name.to_string());
    let mut scan = TriggerScan::default();
    assert!(state.triggers_with_backlog(&mut scan).is_empty());

    deploy_everywhere(&mut state, &first, "d-AAAAAAAAA");
    assert_eq!(state.triggers_with_backlog(&mut scan), vec![key("hosts")], "no failure happened");
    let last = state.events.last_id;
    assert_eq!(scan.marks[&key("rare")].0, last, "the rare trigger's events were looked at once");
    assert!(scan.marks[&key("hosts")].0 < last, "a trigger with something to send keeps its mark");

    // The same trigger naming other types looks again from its cursor.
    let triggers = vec![rare(&[TriggerEventType::InstanceSuccess]), hosts];
    assert_eq!(update(&mut state, triggers), Outcome::Done);
    assert_eq!(state.triggers_with_backlog(&mut scan), vec![key("rare"), key("hosts")]);

    // Events after a mark are found: the next deployment's are.
    let last = state.events.last_id;
    assert_eq!(advance(&mut state, "rare", last), Outcome::Done);
    assert_eq!(advance(&mut state, "hosts", last), Outcome::Done);
    assert!(state.triggers_with_backlog(&mut scan).is_empty());
    deploy_everywhere(&mut state, &second, "d-BBBBBBBBB");
    assert_eq!(state.triggers_with_backlog(&mut scan), vec![key("rare"), key("hosts")]);
}
