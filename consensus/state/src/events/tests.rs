//! The event log: what a deployment's story looks like, that every status change is
//! exactly one event, that numbers have no gap across snapshots, and retention.

use proptest::prelude::*;

use crate::command::{Command, Finish, Proposal};
use crate::features::FeatureLevel;
use crate::model::deployment::TargetStatus;
use crate::model::events::{DeploymentEvent, EventBody, EventLog, EventType, Purged, EVENTS_KEPT_MAX, EVENTS_KEPT_MS};
use crate::model::ids::{DeploymentId, UnixMillis};
use crate::tests::{at, deploy, deploy_everywhere, report, setup};
use crate::{ClusterState, NodeId};

fn at_events_level() -> (ClusterState, crate::model::revision::RevisionRecord) {
    let (mut state, first, _) = setup();
    state.feature_level = FeatureLevel::EVENTS;
    (state, first)
}

/// `type target lifecycleEvent status message` per event, blanks left out.
fn lines(events: &[DeploymentEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| {
            let parts = [
                Some(format!("{:?}", event.what.kind)),
                event.what.target_id.clone(),
                event.what.lifecycle_event_name.clone(),
                event.what.status.clone(),
                event.what.message.clone(),
            ];
            parts.into_iter().flatten().collect::<Vec<_>>().join(" ")
        })
        .collect()
}

#[test]
fn a_deployment_tells_its_story_in_numbered_events() {
    let (mut state, first, second) = setup();
    // The first deployment, before the level: what a rollback goes back to.
    deploy_everywhere(&mut state, &first, "d-000000000");
    state.feature_level = FeatureLevel::EVENTS;
    let id = DeploymentId("d-AAAAAAAAA".into());
    state.apply(&at(12, vec![deploy(&second, &id.0)]));
    state.apply(&at(13, vec![Command::StartTargets { deployment_id: id.clone(), targets: vec![NodeId(1)] }]));
    state.apply(&at(14, vec![Command::ReportTargets { reports: vec![report(&id.0, 1, 1, TargetStatus::Failed)] }]));
    let rollback = DeploymentId("d-RRRRRRRRR".into());
    let finish = Finish { deployment_id: id.clone(), succeeded: false, error: None, rollback_id: Some(rollback) };
    state.apply(&at(15, vec![Command::FinishDeployment(finish)]));
    let events: Vec<DeploymentEvent> = state.events.events.iter().cloned().collect();
    let ids: Vec<u64> = events.iter().map(|event| event.id).collect();
    assert_eq!(ids, (1..=events.len() as u64).collect::<Vec<_>>());
    let story = lines(&events);
    let head = [
        "DeploymentStatusChanged Created",
        "DeploymentStatusChanged InProgress",
        "WaveStarted wave 1 started",
        "TargetStatusChanged 1 InProgress",
    ];
    assert_eq!(story[..4], head, "{story:#?}");
    // The report: every lifecycle event of host 1 failed, then the target.
    let failed: Vec<&String> = story.iter().filter(|line| line.starts_with("LifecycleEventChanged 1 ")).collect();
    assert_eq!(failed.len(), crate::model::deployment::IN_PLACE_EVENTS.len(), "{story:#?}");
    assert!(story.contains(&"TargetStatusChanged 1 Failed".to_string()), "{story:#?}");
    // The end: failed, the other hosts skipped, and the rollback linked both ways.
    for line in [
        "DeploymentStatusChanged Failed",
        "RollbackLinked rolled back by d-RRRRRRRRR",
        "TargetStatusChanged 2 Skipped",
        "TargetStatusChanged 3 Skipped",
        "RollbackLinked rolls back d-AAAAAAAAA",
    ] {
        assert!(story.contains(&line.to_string()), "{line} missing from {story:#?}");
    }
    let rollback_events = events.iter().filter(|event| event.what.deployment_id.0 == "d-RRRRRRRRR");
    assert!(rollback_events
        .clone()
        .all(|event| event.what.application_name == "app" && event.what.deployment_group_name == "web"));
    assert_eq!(rollback_events.count(), 2, "the rollback: created and linked; {story:#?}");
    // Times are the proposals'.
    assert_eq!(events.first().map(|event| event.time), Some(UnixMillis(12)));
    assert_eq!(events.last().map(|event| event.time), Some(UnixMillis(15)));
}

#[test]
fn below_the_events_level_nothing_is_recorded_and_the_encoding_is_as_before() {
    let (mut state, first, _) = setup();
    state.feature_level = FeatureLevel::AWS_PROTOCOL;
    state.apply(&at(2, vec![deploy(&first, "d-AAAAAAAAA")]));
    assert!(state.events.is_unused());
    let encoded = serde_json::to_value(&state).expect("json");
    assert!(encoded.get("events").is_none());
}

#[test]
fn reading_since_a_number_gives_what_follows_or_says_what_was_purged() {
    let mut log = EventLog::default();
    let event = || EventBody {
        kind: EventType::WaveStarted,
        application_name: "app".into(),
        deployment_group_name: "web".into(),
        deployment_id: DeploymentId("d-AAAAAAAAA".into()),
        target_id: None,
        lifecycle_event_name: None,
        status: None,
        message: None,
    };
    for _ in 0..EVENTS_KEPT_MAX + 10 {
        log.push(event(), UnixMillis(1));
    }
    log.check();
    assert_eq!((log.first_kept(), log.last_id, log.events.len()), (11, EVENTS_KEPT_MAX as u64 + 10, EVENTS_KEPT_MAX));
    assert_eq!(log.since(10).map(Iterator::count), Ok(EVENTS_KEPT_MAX));
    assert_eq!(
        log.since(log.last_id - 2).map(|events| events.map(|event| event.id).collect::<Vec<_>>()),
        Ok(vec![log.last_id - 1, log.last_id])
    );
    assert_eq!(log.since(log.last_id + 5).map(Iterator::count), Ok(0));
    assert_eq!(log.since(9).err(), Some(Purged { since: 9, first_kept: 11 }));
    // Past the age limit everything older goes, and the next number still follows.
    let last = log.last_id;
    log.push(event(), UnixMillis(EVENTS_KEPT_MS + 2));
    assert_eq!((log.events.len(), log.first_kept(), log.last_id), (1, last + 1, last + 1));
    assert_eq!(log.since(0).err(), Some(Purged { since: 0, first_kept: last + 1 }));
    assert_eq!(log.since(last).map(Iterator::count), Ok(1));
}

/// Status changes between two states, counted over every deployment and target
/// independently of the recorder's scopes: a target that appears pending is not one.
fn status_changes(before: &ClusterState, after: &ClusterState) -> (usize, usize) {
    let mut deployments = 0;
    let mut targets = 0;
    for (id, deployment) in &after.deployments {
        let old = before.deployments.get(id);
        deployments += usize::from(old.map(|old| old.status) != Some(deployment.status));
        deployments +=
            usize::from(old.is_none() && deployment.status != crate::model::deployment::DeploymentStatus::Created);
        for (node, target) in &deployment.targets {
            let was = old.and_then(|old| old.targets.get(node)).map(|target| target.status);
            targets +=
                usize::from(was != Some(target.status) && !(was.is_none() && target.status == TargetStatus::Pending));
        }
    }
    (deployments, targets)
}

fn proposals(steps: &[(u8, u64, u64)], first: &crate::model::revision::RevisionRecord) -> Vec<Proposal> {
    steps
        .iter()
        .enumerate()
        .map(|(index, (kind, node, seq))| {
            let id = DeploymentId(format!("d-{:0>9}", index % 3));
            let command = match kind {
                0 => deploy(first, &id.0),
                1 => Command::StartTargets { deployment_id: id.clone(), targets: vec![NodeId(*node)] },
                2 => Command::ReportTargets { reports: vec![report(&id.0, *node, *seq, TargetStatus::Succeeded)] },
                3 => Command::ReportTargets { reports: vec![report(&id.0, *node, *seq, TargetStatus::Failed)] },
                4 => Command::FinishDeployment(Finish {
                    deployment_id: id.clone(),
                    succeeded: *seq > 2,
                    error: None,
                    rollback_id: Some(DeploymentId(format!("d-R{index:0>8}"))),
                }),
                5 => Command::FailTargets { deployment_id: id.clone(), targets: vec![(NodeId(*node), "lost".into())] },
                _ => Command::StopDeployment { deployment_id: id.clone(), rollback_id: None },
            };
            at(10 + index as u64, vec![command])
        })
        .collect()
}

proptest! {
    /// Every status change of a deployment or target is exactly one event, and a replica
    /// restored from a snapshot at any point numbers the following events as the one that
    /// never stopped: gap-free, no number twice.
    #[test]
    fn every_change_is_one_event_and_numbers_survive_snapshots(
        steps in proptest::collection::vec((0u8..7, 1u64..4, 0u64..5), 1..50),
        snapshot_at in proptest::collection::btree_set(0usize..50, 0..4),
    ) {
        let (start, first) = at_events_level();
        let (mut steady, mut restored) = (start.clone(), start);
        for (index, proposal) in proposals(&steps, &first).iter().enumerate() {
            let before = steady.clone();
            let last = steady.events.last_id;
            steady.apply(proposal);
            let new: Vec<&DeploymentEvent> = steady.events.since(last).expect("kept").collect();
            let count = |kind: EventType| new.iter().filter(|event| event.what.kind == kind).count();
            let (deployments, targets) = status_changes(&before, &steady);
            prop_assert_eq!(count(EventType::DeploymentStatusChanged), deployments);
            prop_assert_eq!(count(EventType::TargetStatusChanged), targets);
            if snapshot_at.contains(&index) {
                restored = serde_json::from_slice(&serde_json::to_vec(&restored).expect("encode")).expect("decode");
            }
            restored.apply(proposal);
        }
        prop_assert_eq!(&steady.events, &restored.events);
        let ids: Vec<u64> = steady.events.events.iter().map(|event| event.id).collect();
        prop_assert_eq!(ids, (1..=steady.events.last_id).collect::<Vec<_>>());
    }
}
