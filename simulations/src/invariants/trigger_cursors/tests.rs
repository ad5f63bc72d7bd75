//! The trigger-cursor monitor on a state made with the real commands and hand-made
//! events and tries: cursors behind delivered events pass; a cursor past an event no
//! delivery reached, a delivery made only after the entry, and a node going back in
//! one term are each reported.

use fleetmesh_state::model::events::{DeploymentEvent, EventBody, EventType};
use fleetmesh_state::model::ids::{DeploymentId, UnixMillis};
use fleetmesh_state::model::resources::{AutoRollbackConfiguration, ComputePlatform, TargetSelector};
use fleetmesh_state::model::triggers::{TriggerConfig, TriggerEventType};
use fleetmesh_state::{ClusterState, Command, DeploymentGroupSpec, FeatureLevel, NodeId, Outcome, Proposal};

use super::{DeliveryTry, TriggerCursors};

const TARGET: &str = "https://sink.invalid/hook";

/// A state with application `app` and group `web` whose trigger `t` sends deployment
/// starts and instance starts, and three events: deployment 1 in progress (1), a
/// lifecycle event (2, no trigger type), target 1 in progress (3).
fn state() -> ClusterState {
    let mut state = ClusterState { feature_level: FeatureLevel::CURRENT, ..ClusterState::default() };
    let spec = DeploymentGroupSpec {
        alarm_configuration: None,
        application_name: "app".into(),
        deployment_group_name: "web".into(),
        deployment_config_name: "CodeDeployDefault.OneAtATime".into(),
        target_selector: TargetSelector::default(),
        auto_rollback_configuration: AutoRollbackConfiguration::default(),
        update_outdated_instances: false,
        deployment_option: Default::default(),
        load_balancer_info: None,
        deployment_type: Default::default(),
        blue_green_deployment_configuration: None,
        service_role_arn: None,
        ecs_services: Vec::new(),
        trigger_configurations: vec![TriggerConfig {
            trigger_name: "t".into(),
            trigger_target_arn: TARGET.into(),
            trigger_events: vec![TriggerEventType::DeploymentStart, TriggerEventType::InstanceStart],
            sealed_secret: None,
        }],
    };
    let commands = vec![
        Command::CreateApplication {
            name: "app".into(),
            application_id: "a1".into(),
            compute_platform: ComputePlatform::Server,
        },
        Command::CreateDeploymentGroup { spec, deployment_group_id: "g1".into() },
    ];
    let applied = state.apply(&Proposal::new(UnixMillis(1), commands));
    assert_eq!(applied.outcomes, vec![Outcome::Done, Outcome::Done]);
    let events = [
        (EventType::DeploymentStatusChanged, None),
        (EventType::LifecycleEventChanged, Some("1")),
        (EventType::TargetStatusChanged, Some("1")),
    ];
    for (kind, target) in events {
        state.events.last_id += 1;
        let what = EventBody {
            kind,
            application_name: "app".into(),
            deployment_group_name: "web".into(),
            deployment_id: DeploymentId("d-1".into()),
            target_id: target.map(str::to_string),
            lifecycle_event_name: None,
            status: Some("InProgress".into()),
            message: None,
        };
        state.events.events.push_back(DeploymentEvent { id: state.events.last_id, time: UnixMillis(1), what });
    }
    state
}

fn move_cursor(state: &mut ClusterState, to: u64) {
    let group = state.deployment_groups.get_mut("app").and_then(|groups| groups.get_mut("web")).expect("group");
    group.triggers[0].delivered_through = to;
}

fn attempt(seq: u64, term: u64, event_id: u64, kind: TriggerEventType, accepted: bool) -> DeliveryTry {
    DeliveryTry { seq, node: NodeId(1), term, trigger: "t".into(), target: TARGET.into(), event_id, kind, accepted }
}

#[test]
fn cursors_behind_delivered_events_pass() {
    // First sight at cursor 0; event 1 delivered, event 3 refused once then accepted,
    // all before the entry (mark 3): asserts the cursor may reach 3 (2 needs nothing).
    let mut state = state();
    let mut monitor = TriggerCursors::default();
    monitor.check(&state, 5, 0);
    monitor.record(&[
        attempt(0, 2, 1, TriggerEventType::DeploymentStart, true),
        attempt(1, 2, 3, TriggerEventType::InstanceStart, false),
        attempt(2, 2, 3, TriggerEventType::InstanceStart, true),
    ]);
    move_cursor(&mut state, 3);
    monitor.check(&state, 6, 3);
    assert_eq!(monitor.verdict(), Ok(()));
    assert_eq!((monitor.deliveries, monitor.refused, monitor.events_checked), (2, 1, 2));
}

#[test]
fn a_cursor_past_an_undelivered_event_is_a_violation() {
    // Event 3 was only refused: asserts moving the cursor to 3 names event 3.
    let mut state = state();
    let mut monitor = TriggerCursors::default();
    monitor.check(&state, 5, 0);
    monitor.record(&[
        attempt(0, 2, 1, TriggerEventType::DeploymentStart, true),
        attempt(1, 2, 3, TriggerEventType::InstanceStart, false),
    ]);
    move_cursor(&mut state, 3);
    monitor.check(&state, 6, 2);
    let violation = monitor.verdict().expect_err("event 3 undelivered").to_string();
    assert!(violation.starts_with("trigger t of group web at entry 6"), "{violation}");
    assert!(violation.contains("past event 3 (InstanceStart of deployment d-1)"), "{violation}");
}

#[test]
fn a_delivery_after_the_entry_does_not_count() {
    // Event 3 is delivered, but only after the entry that moved the cursor was first
    // applied (its place 1 is not below the mark 1): asserts a violation.
    let mut state = state();
    let mut monitor = TriggerCursors::default();
    monitor.check(&state, 5, 0);
    monitor.record(&[
        attempt(0, 2, 1, TriggerEventType::DeploymentStart, true),
        attempt(1, 3, 3, TriggerEventType::InstanceStart, true),
    ]);
    move_cursor(&mut state, 3);
    monitor.check(&state, 6, 1);
    let violation = monitor.verdict().expect_err("delivered too late").to_string();
    assert!(violation.contains("past event 3"), "{violation}");
}

#[test]
fn a_node_going_back_within_a_term_is_a_violation() {
    // Node 1 tries event 3 then 1 in term 4 (after doing the same across terms 2 and
    // 3, which is a redelivery by a new leader): asserts only the first is reported.
    let mut monitor = TriggerCursors::default();
    monitor.record(&[
        attempt(0, 2, 3, TriggerEventType::InstanceStart, true),
        attempt(1, 3, 1, TriggerEventType::DeploymentStart, true),
        attempt(2, 3, 1, TriggerEventType::DeploymentStart, true),
    ]);
    assert_eq!(monitor.verdict(), Ok(()));
    monitor.record(&[
        attempt(3, 4, 3, TriggerEventType::InstanceStart, true),
        attempt(4, 4, 1, TriggerEventType::DeploymentStart, false),
    ]);
    let violation = monitor.verdict().expect_err("back in term 4").to_string();
    assert_eq!(violation, "node 1 in term 4 tried event 1 of trigger t after event 3");
}

#[test]
fn a_cursor_moving_back_is_a_violation() {
    // The cursor reaches 1 (delivered), then reads 0: asserts the move back is named.
    let mut state = state();
    let mut monitor = TriggerCursors::default();
    monitor.check(&state, 5, 0);
    monitor.record(&[attempt(0, 2, 1, TriggerEventType::DeploymentStart, true)]);
    move_cursor(&mut state, 1);
    monitor.check(&state, 6, 1);
    assert_eq!(monitor.verdict(), Ok(()));
    move_cursor(&mut state, 0);
    monitor.check(&state, 7, 1);
    let violation = monitor.verdict().expect_err("moved back").to_string();
    assert!(violation.contains("its cursor moved back from 1 to 0"), "{violation}");
}
