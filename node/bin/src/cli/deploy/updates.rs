//! `deploy update-application` and `deploy update-deployment-group`.

use fleetmesh_model::{
    Empty, TriggerConfig, UpdateApplicationInput, UpdateDeploymentGroupInput, UpdateDeploymentGroupOutput,
};

use super::{tag_filter, DeployCommand};
use crate::cli::client::ApiClient;
use fleetmesh_state::model::alarms::AlarmConfiguration;

/// Runs an update verb (`command` is one of the two).
pub(super) fn run(client: &ApiClient, command: DeployCommand) -> anyhow::Result<()> {
    use DeployCommand as C;
    match command {
        C::UpdateApplication { application_name, new_application_name } => {
            let input = UpdateApplicationInput { application_name, new_application_name: new_application_name.clone() };
            client.call::<_, Empty>("UpdateApplication", &input)?;
            println!("renamed application {} to {new_application_name}", input.application_name);
        }
        C::UpdateDeploymentGroup {
            application_name,
            current_deployment_group_name,
            new_deployment_group_name,
            deployment_config_name,
            tags,
            trigger_configurations,
            alarm_configuration,
        } => {
            let input = UpdateDeploymentGroupInput {
                application_name,
                current_deployment_group_name: current_deployment_group_name.clone(),
                new_deployment_group_name: new_deployment_group_name.clone(),
                deployment_config_name,
                on_premises_instance_tag_filters: (!tags.is_empty())
                    .then(|| tags.iter().map(|tag| tag_filter(tag)).collect()),
                trigger_configurations: triggers_flag(trigger_configurations.as_deref())?,
                alarm_configuration: alarms_flag("--alarm-configuration", alarm_configuration.as_deref())?,
                ..UpdateDeploymentGroupInput::default()
            };
            client.call::<_, UpdateDeploymentGroupOutput>("UpdateDeploymentGroup", &input)?;
            let name = new_deployment_group_name.unwrap_or(current_deployment_group_name);
            println!("updated deployment group {name}");
        }
        _ => {}
    }
    Ok(())
}

/// `--trigger-configurations JSON`: AWS's list of `TriggerConfig`.
pub(super) fn triggers_flag(text: Option<&str>) -> anyhow::Result<Option<Vec<TriggerConfig>>> {
    let example = r#"'[{"triggerName":"chat","triggerTargetArn":"https://hooks.example/x","triggerEvents":["DeploymentFailure"]}]'"#;
    super::blue_green::json_flag("--trigger-configurations", text, example)
}

/// `--alarm-configuration JSON` (or `--override-alarm-configuration`): AWS's
/// `AlarmConfiguration`, with fleetmesh's Prometheus alarms.
pub(super) fn alarms_flag(flag: &str, text: Option<&str>) -> anyhow::Result<Option<AlarmConfiguration>> {
    let example = r#"'{"enabled":true,"alarms":[{"name":"errors","prometheus":{"url":"http://prometheus:9090",
        "query":"sum(rate(http_errors_total[1m]))","threshold":5,"comparisonOperator":"GreaterThanThreshold"}}]}'"#;
    super::blue_green::json_flag(flag, text, example)
}
