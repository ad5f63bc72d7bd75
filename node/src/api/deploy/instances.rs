//! On-premises instances and resource tags: registration and tags are commands through
//! Raft (the nodes holding the instances change tags with them); the reads answer from
//! the state. An ARN is resolved against the cluster's region and account first.

use fleetmesh_model::{
    listed_instances, page, resource_tags, tagged_resource, BatchGetOnPremisesInstancesOutput, Empty,
    GetOnPremisesInstanceOutput, InstanceInfo, InstanceTagsInput, ListOnPremisesInstancesOutput,
    ListTagsForResourceOutput, Operation, OperationError, Output, LIST_PAGE_SIZE,
};
use fleetmesh_state::model::members::Actor;
use fleetmesh_state::{ClusterState, Command};

use super::commit;
use crate::api::ApiError;
use crate::runtime::Node;

/// Runs an instance write; `None` when `operation` is not one.
pub(super) async fn write(node: &Node, operation: &Operation, by: Option<&Actor>) -> Option<Result<Output, ApiError>> {
    let (command, output) = match operation {
        Operation::RegisterOnPremisesInstance(input) => (
            Command::RegisterInstance {
                instance_name: input.instance_name.clone(),
                iam_session_arn: input.iam_session_arn.clone(),
                iam_user_arn: input.iam_user_arn.clone(),
            },
            Output::RegisterOnPremisesInstance(Empty {}),
        ),
        Operation::DeregisterOnPremisesInstance(input) => (
            Command::DeregisterInstance { instance_name: input.instance_name.clone() },
            Output::DeregisterOnPremisesInstance(Empty {}),
        ),
        Operation::AddTagsToOnPremisesInstances(input) => {
            (tag_command(input, true), Output::AddTagsToOnPremisesInstances(Empty {}))
        }
        Operation::RemoveTagsFromOnPremisesInstances(input) => {
            (tag_command(input, false), Output::RemoveTagsFromOnPremisesInstances(Empty {}))
        }
        Operation::TagResource(input) => {
            let resource = match node.state().read(|state| tagged_resource(state, &input.resource_arn)) {
                Ok(resource) => resource,
                Err(error) => return Some(Err(error.into())),
            };
            let command = Command::TagResource { resource, add: input.tags.clone(), remove: Vec::new() };
            (command, Output::TagResource(Empty {}))
        }
        Operation::UntagResource(input) => {
            let resource = match node.state().read(|state| tagged_resource(state, &input.resource_arn)) {
                Ok(resource) => resource,
                Err(error) => return Some(Err(error.into())),
            };
            let command = Command::TagResource { resource, add: Vec::new(), remove: input.tag_keys.clone() };
            (command, Output::UntagResource(Empty {}))
        }
        _ => return None,
    };
    Some(commit(node, command, by).await.map(|()| output))
}

fn tag_command(input: &InstanceTagsInput, add: bool) -> Command {
    let tags = input.tags.clone();
    let (add, remove) = if add { (tags, Vec::new()) } else { (Vec::new(), tags) };
    Command::TagInstances { instance_names: input.instance_names.clone(), add, remove }
}

/// Answers an instance read; `None` when `operation` is not one.
pub(super) fn read(operation: &Operation, state: &ClusterState) -> Option<Result<Output, ApiError>> {
    Some(match operation {
        Operation::GetOnPremisesInstance(input) => {
            let name = &input.instance_name;
            state
                .instances
                .get(name)
                .map(|instance| {
                    Output::GetOnPremisesInstance(GetOnPremisesInstanceOutput {
                        instance_info: InstanceInfo::of(instance, state),
                    })
                })
                .ok_or_else(|| ApiError::not_found(format!("on-premises instance {name} is not registered")))
        }
        Operation::BatchGetOnPremisesInstances(input) => {
            let instance_infos = input
                .instance_names
                .iter()
                .filter_map(|name| state.instances.get(name))
                .map(|instance| InstanceInfo::of(instance, state))
                .collect();
            Ok(Output::BatchGetOnPremisesInstances(BatchGetOnPremisesInstancesOutput { instance_infos }))
        }
        Operation::ListOnPremisesInstances(input) => {
            let names = listed_instances(state, input);
            page(names, input.next_token.as_deref(), LIST_PAGE_SIZE, Clone::clone)
                .map(|(instance_names, next_token)| {
                    Output::ListOnPremisesInstances(ListOnPremisesInstancesOutput { instance_names, next_token })
                })
                .map_err(ApiError::from)
        }
        Operation::ListTagsForResource(input) => (|| {
            let resource = tagged_resource(state, &input.resource_arn)?;
            let tags = resource_tags(state, &resource)?;
            let (tags, next_token) = page(tags, input.next_token.as_deref(), LIST_PAGE_SIZE, |tag| tag.key.clone())?;
            Ok::<_, OperationError>(Output::ListTagsForResource(ListTagsForResourceOutput { tags, next_token }))
        })()
        .map_err(ApiError::from),
        _ => return None,
    })
}
