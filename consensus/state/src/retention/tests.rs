//! Retention: finished deployments beyond the count or the age are dropped, oldest
//! first, on the next deployment's creation; running deployments and a group's last
//! success (what a rollback reinstalls) stay; bad settings change nothing.

use crate::command::{Command, Outcome};
use crate::features::FeatureLevel;
use crate::model::ids::DeploymentId;
use crate::model::retention::{DeploymentRetention, DAY_MS};
use crate::tests::{at, deploy_everywhere, setup};
use crate::ClusterState;

fn retain(state: &mut ClusterState, max_deployments: u32, max_age_days: u32) -> Outcome {
    let retention = DeploymentRetention { max_deployments, max_age_days };
    let at_ms = state.last_applied_at.0;
    state.apply(&at(at_ms, vec![Command::SetDeploymentRetention(retention)])).outcomes.remove(0)
}

fn id(index: usize) -> String {
    format!("d-{index:09}")
}

fn kept(state: &ClusterState) -> Vec<String> {
    state.deployment_order.iter().map(|id| id.0.clone()).collect()
}

#[test]
fn beyond_the_count_the_oldest_finished_deployments_go() {
    let (mut state, first, second) = setup();
    state.feature_level = FeatureLevel::RETENTION;
    assert_eq!(retain(&mut state, 10, 90), Outcome::Done);
    for index in 0..15 {
        deploy_everywhere(&mut state, if index % 2 == 0 { &first } else { &second }, &id(index));
    }
    assert_eq!(kept(&state), (5..15).map(id).collect::<Vec<_>>());
    assert_eq!(state.deployments.len(), 10, "the map and the order agree");
    state.check_invariants();
}

#[test]
fn past_the_age_finished_deployments_go_but_the_last_success_stays() {
    let (mut state, first, second) = setup();
    state.feature_level = FeatureLevel::RETENTION;
    assert_eq!(retain(&mut state, 10, 1), Outcome::Done);
    deploy_everywhere(&mut state, &first, &id(0));
    deploy_everywhere(&mut state, &second, &id(1));
    // Two days later: the first is past the age; the second is the group's last success.
    let later = state.last_applied_at.0 + 2 * DAY_MS;
    state.apply(&at(later, vec![]));
    deploy_everywhere(&mut state, &first, &id(2));
    assert_eq!(kept(&state), [id(1), id(2)]);
    let group = state.deployment_group("app", "web").expect("group");
    assert_eq!(group.last_successful_deployment_id, Some(DeploymentId(id(2))));
    state.check_invariants();
}

#[test]
fn bad_retention_is_refused_and_below_the_level_nothing_goes() {
    let (mut state, first, _) = setup();
    state.feature_level = FeatureLevel::RETENTION;
    let before = state.deployment_retention;
    for (count, days, expected) in [(9, 90, "maxDeployments 9"), (10, 0, "maxAgeDays 0"), (10, 3651, "maxAgeDays")] {
        match retain(&mut state, count, days) {
            Outcome::Rejected(error) => assert!(error.message.contains(expected), "{}", error.message),
            other => panic!("accepted {count}/{days}: {other:?}"),
        }
        assert_eq!(state.deployment_retention, before);
    }

    let (mut old, _, _) = setup();
    old.feature_level = FeatureLevel::ALARMS;
    old.deployment_retention = DeploymentRetention { max_deployments: 10, max_age_days: 1 };
    for index in 0..12 {
        deploy_everywhere(&mut old, &first, &id(index));
    }
    assert_eq!(old.deployments.len(), 12, "a cluster below level 19 compacts nothing");
}
