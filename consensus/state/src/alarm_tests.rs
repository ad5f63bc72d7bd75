//! Alarm gates in the state: a group's alarms are copied into its deployments (not into
//! rollbacks), and an alarm stop ends the deployment as a stop with `ALARM_ACTIVE`,
//! rolling it back when asked.

use crate::command::{Command, Outcome};
use crate::model::alarms::{Alarm, AlarmConfiguration, ComparisonOperator, PrometheusAlarm, Threshold};
use crate::model::deployment::{DeploymentStatus, ErrorCode};
use crate::model::ids::DeploymentId;
use crate::tests::{at, deploy, deploy_everywhere, setup};
use crate::{FeatureLevel, NodeId};

fn alarms(threshold: f64) -> AlarmConfiguration {
    let prometheus = PrometheusAlarm {
        url: "http://127.0.0.1:9090".into(),
        query: "errors".into(),
        threshold: Threshold(threshold),
        comparison_operator: ComparisonOperator::GreaterThanThreshold,
    };
    AlarmConfiguration {
        enabled: true,
        ignore_poll_alarm_failure: false,
        alarms: vec![Alarm { name: "errors".into(), prometheus: Some(prometheus) }],
    }
}

#[test]
fn an_alarm_stop_ends_the_deployment_with_alarm_active_and_its_rollback_is_not_gated() {
    let (mut state, first, second) = setup();
    deploy_everywhere(&mut state, &first, "d-AAAAAAAAA");
    let mut spec = state.deployment_group_spec_for_test("app", "web");
    spec.alarm_configuration = Some(alarms(f64::INFINITY));
    let update = |spec| Command::UpdateDeploymentGroup { current_deployment_group_name: "web".into(), spec };
    let refused = state.apply(&at(5, vec![update(spec.clone())])).outcomes.remove(0);
    assert!(matches!(&refused, Outcome::Rejected(error) if error.message.contains("finite")), "{refused:?}");
    assert_eq!(
        Command::UpdateDeploymentGroup { current_deployment_group_name: "web".into(), spec: spec.clone() }
            .feature_level(),
        FeatureLevel::ALARMS
    );
    spec.alarm_configuration = Some(alarms(5.0));
    assert_eq!(state.apply(&at(6, vec![update(spec)])).outcomes.remove(0), Outcome::Done);

    let id = DeploymentId("d-BBBBBBBBB".into());
    state.apply(&at(7, vec![deploy(&second, &id.0)]));
    state.apply(&at(8, vec![Command::StartTargets { deployment_id: id.clone(), targets: vec![NodeId(1)] }]));
    assert_eq!(state.deployments[&id].alarm_configuration, Some(alarms(5.0)), "copied from the group");
    let rollback = DeploymentId("d-RRRRRRRRR".into());
    let stop = Command::StopOnAlarm {
        deployment_id: id.clone(),
        rollback_id: Some(rollback.clone()),
        message: "alarm errors is on: value 12 GreaterThanThreshold 5".into(),
    };
    assert_eq!(stop.feature_level(), FeatureLevel::ALARMS);
    assert_eq!(state.apply(&at(9, vec![stop.clone()])).outcomes.remove(0), Outcome::Done);
    let stopped = &state.deployments[&id];
    assert_eq!(stopped.status, DeploymentStatus::Stopped);
    let error = stopped.error_information.as_ref().expect("an error");
    assert_eq!(
        (error.code, error.message.as_str()),
        (ErrorCode::AlarmActive, "alarm errors is on: value 12 GreaterThanThreshold 5")
    );
    let rollback = &state.deployments[&rollback];
    assert_eq!(rollback.alarm_configuration, None, "a rollback is not stopped by the alarm that caused it");
    assert!(matches!(state.apply(&at(10, vec![stop])).outcomes.remove(0), Outcome::Rejected(_)), "stopped once");
    state.check_invariants();
}
