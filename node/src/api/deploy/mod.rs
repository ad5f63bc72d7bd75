//! CodeDeploy-shaped operations, typed by the API model (`fleetmesh_model`): the writes
//! (`writes.rs`) each propose one command through Raft on the leader; the reads
//! (`reads.rs`) answer from the applied state of the node that runs them. Which node
//! runs an operation is decided in `route.rs`.

mod batch;
mod dry_run;
mod instances;
mod lambda;
mod reads;
mod sources;
mod trigger_secrets;
mod updates;
mod writes;

use fleetmesh_model::{
    Empty, GetRevisionDistributionInput, GetRevisionDistributionOutput, NodeHolding, Operation, Output,
};
use fleetmesh_state::model::members::Actor;
use fleetmesh_state::{Command, Outcome};

use super::{Api, ApiError};
use crate::runtime::Node;

/// Runs `operation` on this node: a write proposes its command (this node must lead),
/// a read answers from this node's applied state.
///
/// # Errors
/// The operation's error answer.
pub(super) async fn handle(api: &Api, operation: Operation, by: Option<&Actor>) -> Result<Output, ApiError> {
    let node = &api.node;
    Ok(match operation {
        Operation::CreateApplication(input) => {
            Output::CreateApplication(writes::create_application(node, input, by).await?)
        }
        Operation::DeleteApplication(input) => {
            commit(node, Command::DeleteApplication { name: input.application_name }, by).await?;
            Output::DeleteApplication(Empty {})
        }
        Operation::CreateDeploymentGroup(input) => {
            Output::CreateDeploymentGroup(writes::create_deployment_group(node, input, by).await?)
        }
        Operation::UpdateApplication(input) => {
            Output::UpdateApplication(updates::update_application(node, input, by).await?)
        }
        Operation::UpdateDeploymentGroup(input) => {
            Output::UpdateDeploymentGroup(updates::update_deployment_group(node, input, by).await?)
        }
        Operation::DeleteDeploymentGroup(input) => {
            let command = Command::DeleteDeploymentGroup {
                application_name: input.application_name,
                deployment_group_name: input.deployment_group_name,
            };
            commit(node, command, by).await?;
            Output::DeleteDeploymentGroup(Empty {})
        }
        Operation::CreateDeploymentConfig(input) => {
            Output::CreateDeploymentConfig(writes::create_deployment_config(node, input, by).await?)
        }
        Operation::DeleteDeploymentConfig(input) => {
            commit(node, Command::DeleteDeploymentConfig { name: input.deployment_config_name }, by).await?;
            Output::DeleteDeploymentConfig(Empty {})
        }
        Operation::RegisterPushedRevision(input) => {
            Output::RegisterPushedRevision(writes::register_revision(node, input, by).await?)
        }
        Operation::RegisterApplicationRevision(input) => {
            Output::RegisterApplicationRevision(sources::register(api, input, by).await?)
        }
        Operation::Prefetch(input) => Output::Prefetch(writes::prefetch(node, input, by).await?),
        Operation::CreateDeployment(mut input) => {
            let description = input.description.clone().unwrap_or_default();
            sources::fetch(api, &input.application_name, &mut input.revision, &description, by).await?;
            Output::CreateDeployment(writes::create_deployment(node, input, by).await?)
        }
        Operation::PlanDeployment(input) => Output::PlanDeployment(dry_run::plan_deployment(node, input)?),
        Operation::StopDeployment(input) => Output::StopDeployment(writes::stop_deployment(node, input, by).await?),
        Operation::ContinueDeployment(input) => {
            Output::ContinueDeployment(writes::continue_deployment(node, input, by).await?)
        }
        Operation::PutLifecycleEventHookExecutionStatus(input) => {
            Output::PutLifecycleEventHookExecutionStatus(lambda::put_hook_status(node, input, by).await?)
        }
        Operation::GetRevisionDistribution(input) => Output::GetRevisionDistribution(distribution(api, &input).await?),
        Operation::RegisterOnPremisesInstance(_)
        | Operation::DeregisterOnPremisesInstance(_)
        | Operation::AddTagsToOnPremisesInstances(_)
        | Operation::RemoveTagsFromOnPremisesInstances(_)
        | Operation::TagResource(_)
        | Operation::UntagResource(_) => match instances::write(node, &operation, by).await {
            Some(answer) => answer?,
            None => return Err(ApiError::internal(format!("{} is not an instance write", operation.name()))),
        },
        read => node.state().read(|state| reads::answer(&read, state))?,
    })
}

/// `value`, unless it is empty: then "missing `name`".
fn required<'a>(name: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(name, "missing"));
    }
    Ok(value)
}

fn random_id(node: &Node) -> String {
    let bytes: [u8; 16] = node.random_bytes();
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Proposes `command` for `by` and turns a rejection into the operation's error.
async fn commit(node: &Node, command: Command, by: Option<&Actor>) -> Result<(), ApiError> {
    match node.propose_one_by(command, by).await? {
        Outcome::Rejected(error) => Err(error.into()),
        _ => Ok(()),
    }
}

/// How far a revision has spread: the holders the state records, and the download
/// progress agents report in their polls (which only the leader hears).
async fn distribution(
    api: &Api,
    input: &GetRevisionDistributionInput,
) -> Result<GetRevisionDistributionOutput, ApiError> {
    let revision = input.revision_id;
    let (size, holders, members) = api.node.state().read(|state| {
        let record = state.revisions.get(&revision);
        (
            record.map(|record| record.unique_bytes),
            state.revision_holders.get(&revision).cloned().unwrap_or_default(),
            state.members.keys().copied().collect::<Vec<_>>(),
        )
    });
    let size = size.ok_or_else(|| ApiError::not_found(format!("revision {revision} does not exist")))?;
    let progress = api.leader.revision_progress(revision).await;
    let nodes = members
        .into_iter()
        .filter_map(|id| {
            let reported = progress.get(&id);
            let complete = holders.contains(&id) || reported.is_some_and(|progress| progress.complete);
            let bytes_held = if complete { size } else { reported.map_or(0, |progress| progress.bytes_held) };
            (reported.is_some() || complete).then_some(NodeHolding { id, bytes_held, complete })
        })
        .collect();
    Ok(GetRevisionDistributionOutput { revision_id: revision, size, nodes })
}
