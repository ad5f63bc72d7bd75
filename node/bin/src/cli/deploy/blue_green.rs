//! The blue/green pieces of the deploy verbs: `continue-deployment`, and the JSON flags
//! that carry AWS's structures (`--blue-green-deployment-configuration`,
//! `--target-instances`, `--load-balancer-info`).

use fleetmesh_model::{ContinueDeploymentInput, Empty};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::DeploymentWaitType;
use serde::de::DeserializeOwned;

use crate::cli::client::ApiClient;

/// Parses the JSON value of `flag` (absent: `None`); the error names the flag and shows
/// `example`.
pub(super) fn json_flag<T: DeserializeOwned>(
    flag: &str,
    text: Option<&str>,
    example: &str,
) -> anyhow::Result<Option<T>> {
    text.map(|text| {
        serde_json::from_str::<T>(text)
            .map_err(|error| anyhow::anyhow!("{flag}: {error}; expected JSON like {example}"))
    })
    .transpose()
}

/// `continue-deployment`: ends the ready or termination wait of a blue/green deployment.
pub(super) fn continue_deployment(client: &ApiClient, deployment_id: String, wait_type: &str) -> anyhow::Result<()> {
    let deployment_wait_type = match wait_type {
        "TERMINATION_WAIT" => DeploymentWaitType::TerminationWait,
        _ => DeploymentWaitType::ReadyWait,
    };
    let input = ContinueDeploymentInput {
        deployment_id: DeploymentId(deployment_id.clone()),
        deployment_wait_type: Some(deployment_wait_type),
    };
    // The answer is empty; success is all it says.
    let _: Empty = client.call("ContinueDeployment", &input)?;
    let what = match deployment_wait_type {
        DeploymentWaitType::ReadyWait => "traffic moves to the green fleet now",
        DeploymentWaitType::TerminationWait => "the original fleet's wait is over",
    };
    println!("continued {deployment_id}: {what}");
    Ok(())
}
