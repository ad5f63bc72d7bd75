//! Outcomes read from the event log: each once, with the platform and the time taken.

use super::Finished;
use crate::features::FeatureLevel;
use crate::model::ids::DeploymentId;
use crate::tests::{deploy_everywhere, setup};

#[test]
fn each_outcome_is_read_once_with_its_duration() {
    let (mut state, first, second) = setup();
    state.feature_level = FeatureLevel::CURRENT;
    deploy_everywhere(&mut state, &first, "d-AAAAAAAAA");
    let (outcomes, through) = state.finished_after(0);
    assert_eq!(through, state.events.last_id);
    let deployment = state.deployments.get(&DeploymentId("d-AAAAAAAAA".into())).expect("kept");
    let start = deployment.start_time.unwrap_or(deployment.create_time).0;
    let took = (deployment.complete_time.expect("finished").0 - start) as f64 / 1000.0;
    let deployments: Vec<_> =
        outcomes.iter().filter(|outcome| matches!(outcome, Finished::Deployment { .. })).collect();
    assert_eq!(deployments, [&Finished::Deployment { platform: "Server", status: "Succeeded", seconds: Some(took) }]);
    let lifecycle = outcomes.iter().filter(|outcome| matches!(outcome, Finished::LifecycleEvent { .. })).count();
    let recorded: usize = deployment
        .targets
        .values()
        .map(|target| {
            target
                .lifecycle_events
                .iter()
                .filter(|event| matches!(format!("{:?}", event.status).as_str(), "Succeeded" | "Failed" | "Skipped"))
                .count()
        })
        .sum();
    assert!(recorded > 0);
    assert_eq!(lifecycle, recorded, "one per lifecycle event that ended on a target");

    assert!(state.finished_after(through).0.is_empty(), "nothing new");
    deploy_everywhere(&mut state, &second, "d-BBBBBBBBB");
    let (outcomes, _) = state.finished_after(through);
    let statuses: Vec<_> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Finished::Deployment { status, .. } => Some(*status),
            Finished::LifecycleEvent { .. } => None,
        })
        .collect();
    assert_eq!(statuses, ["Succeeded"], "only the second deployment's");
}
