//! The events-per-transition monitor on hand-made states: a faithful log passes; a
//! transition without its event, an event without a transition, a gap in the numbers
//! and a voter whose log differs are each reported.

use fleetmesh_state::model::deployment::{Deployment, DeploymentStatus, TargetStatus};
use fleetmesh_state::model::events::{DeploymentEvent, EventBody, EventType};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::{ClusterState, Command, FeatureLevel, NodeId};

use super::super::min_healthy::tests::deployment;
use super::{EventsPerTransition, VoterEvents};

/// Any command: the monitor only names it.
fn command() -> Command {
    Command::RemoveMember { id: NodeId(9) }
}

/// A state recording events, with `deployment` created (still `Created`, 2 pending
/// targets) and its `Created` event numbered 1.
fn created() -> (ClusterState, Deployment) {
    let mut state = ClusterState { feature_level: FeatureLevel::EVENTS, ..ClusterState::default() };
    let mut made = deployment(2);
    made.status = DeploymentStatus::Created;
    state.deployments.insert(made.deployment_id.clone(), made.clone());
    state.deployment_order.push(made.deployment_id.clone());
    append(&mut state, &made, EventType::DeploymentStatusChanged, None, Some("Created"));
    (state, made)
}

/// Appends an event the way the state numbers them (one more than the last).
fn append(state: &mut ClusterState, of: &Deployment, kind: EventType, target: Option<u64>, status: Option<&str>) {
    state.events.last_id += 1;
    let what = EventBody {
        kind,
        application_name: of.application_name.clone(),
        deployment_group_name: of.deployment_group_name.clone(),
        deployment_id: of.deployment_id.clone(),
        target_id: target.map(|id| id.to_string()),
        lifecycle_event_name: None,
        status: status.map(str::to_string),
        message: None,
    };
    state.events.events.push_back(DeploymentEvent { id: state.events.last_id, time: UnixMillis(0), what });
}

/// Starts wave 1 on target 1, with its three events.
fn start_wave(state: &mut ClusterState, made: &Deployment) {
    let deployment = state.deployments.get_mut(&made.deployment_id).expect("created");
    deployment.status = DeploymentStatus::InProgress;
    deployment.waves = 1;
    deployment.targets.get_mut(&NodeId(1)).expect("target 1").status = TargetStatus::InProgress;
    append(state, made, EventType::DeploymentStatusChanged, None, Some("InProgress"));
    append(state, made, EventType::WaveStarted, None, None);
    append(state, made, EventType::TargetStatusChanged, Some(1), Some("InProgress"));
}

#[test]
fn one_event_per_transition_numbered_on_passes() {
    // Creation (one event), then a wave start that moves the deployment, starts a wave
    // and a target (three events, numbered 2–4): asserts no violation and 4 events
    // matched.
    let (mut state, made) = created();
    let mut monitor = EventsPerTransition::default();
    monitor.check(&state, true, 10, &command());
    start_wave(&mut state, &made);
    monitor.check(&state, true, 11, &command());
    assert_eq!(monitor.verdict(), Ok(()));
    assert_eq!((monitor.commands_checked, monitor.events_checked), (2, 4));
}

#[test]
fn a_transition_without_its_event_is_a_violation() {
    // Target 2 starts with no event: asserts the violation names the entry, the
    // command and the target's missing status change.
    let (mut state, made) = created();
    let mut monitor = EventsPerTransition::default();
    monitor.check(&state, true, 10, &command());
    start_wave(&mut state, &made);
    let deployment = state.deployments.get_mut(&made.deployment_id).expect("created");
    deployment.targets.get_mut(&NodeId(2)).expect("target 2").status = TargetStatus::InProgress;
    monitor.check(&state, true, 11, &command());
    let violation = monitor.verdict().expect_err("target 2 has no event").to_string();
    assert!(violation.starts_with("entry 11 (RemoveMember)"), "{violation}");
    assert!(violation.contains("without an event: TargetStatusChanged d-TEST00001 [2 InProgress]"), "{violation}");
}

#[test]
fn an_event_without_a_transition_is_a_violation() {
    // The same status appended twice for one change: asserts the extra one is named.
    let (mut state, made) = created();
    let mut monitor = EventsPerTransition::default();
    monitor.check(&state, true, 10, &command());
    start_wave(&mut state, &made);
    append(&mut state, &made, EventType::TargetStatusChanged, Some(1), Some("InProgress"));
    monitor.check(&state, true, 11, &command());
    let violation = monitor.verdict().expect_err("one event too many").to_string();
    assert!(violation.contains("3 transition(s), 4 event(s)"), "{violation}");
    assert!(violation.contains("without a transition: TargetStatusChanged d-TEST00001 [1 InProgress]"), "{violation}");
}

#[test]
fn a_gap_in_the_numbers_is_a_violation() {
    // The wave's first event is numbered 3 instead of 2: asserts the gap is reported.
    let (mut state, made) = created();
    let mut monitor = EventsPerTransition::default();
    monitor.check(&state, true, 10, &command());
    state.events.last_id += 1;
    start_wave(&mut state, &made);
    monitor.check(&state, true, 11, &command());
    let violation = monitor.verdict().expect_err("number 2 skipped").to_string();
    assert!(violation.contains("numbered 3, not 2"), "{violation}");
}

#[test]
fn events_before_the_feature_level_are_a_violation() {
    // An event appended by a command applied below EVENTS: asserts it is unexpected.
    let (state, _) = created();
    let mut monitor = EventsPerTransition::default();
    monitor.check(&state, false, 10, &command());
    let violation = monitor.verdict().expect_err("no events below the level").to_string();
    assert!(violation.contains("0 transition(s), 1 event(s)"), "{violation}");
}

#[test]
fn a_voter_with_another_log_or_a_silent_change_is_a_violation() {
    // At the end, a voter at the same index whose log lost its last event is named; a
    // voter at another index is not compared. Separately, a target of an ended
    // deployment changed with no event is caught by the final sweep.
    let (mut state, made) = created();
    let mut monitor = EventsPerTransition::default();
    monitor.check(&state, true, 10, &command());
    start_wave(&mut state, &made);
    monitor.check(&state, true, 11, &command());
    let mut behind = state.events.clone();
    behind.events.pop_back();
    behind.last_id -= 1;
    let voters = [
        VoterEvents { node: NodeId(2), applied_index: 10, events: behind.clone() },
        VoterEvents { node: NodeId(3), applied_index: 11, events: behind },
    ];
    monitor.final_check(&state, 11, &voters[..1]);
    assert_eq!((monitor.verdict(), monitor.voters_compared), (Ok(()), 0));
    monitor.final_check(&state, 11, &voters);
    let violation = monitor.verdict().expect_err("voter 3 differs").to_string();
    assert!(violation.starts_with("voter 3 at index 11 holds events up to 3"), "{violation}");

    let mut monitor = EventsPerTransition::default();
    let (mut state, made) = created();
    let deployment = state.deployments.get_mut(&made.deployment_id).expect("created");
    deployment.status = DeploymentStatus::Stopped;
    append(&mut state, &made, EventType::DeploymentStatusChanged, None, Some("Stopped"));
    monitor.check(&state, true, 10, &command());
    assert_eq!(monitor.verdict(), Ok(()));
    let deployment = state.deployments.get_mut(&made.deployment_id).expect("created");
    deployment.targets.get_mut(&NodeId(1)).expect("target 1").status = TargetStatus::Skipped;
    monitor.check(&state, true, 11, &command());
    assert_eq!(monitor.verdict(), Ok(()), "an ended deployment's targets wait for the final sweep");
    monitor.final_check(&state, 11, &[]);
    let violation = monitor.verdict().expect_err("a silent change").to_string();
    assert!(violation.contains("TargetStatusChanged d-TEST00001 [1 Skipped]"), "{violation}");
}
