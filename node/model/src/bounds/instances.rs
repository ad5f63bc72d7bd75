//! Bounds of the on-premises instance and tag operations.

use super::{batch, echo, tag_filters, INSTANCE};
use crate::{Operation, OperationError};

/// An instance name, as CodeDeploy's resource names.
fn instance(field: &str, value: &str) -> Result<(), OperationError> {
    fleetmesh_state::model::resources::validate_name("instance name", value)
        .map_err(|error| OperationError::invalid(field, error.to_string()))
}

impl Operation {
    /// On-premises instances.
    pub(super) fn check_instances(&self) -> Result<(), OperationError> {
        match self {
            Self::RegisterOnPremisesInstance(input) => {
                instance(INSTANCE, &input.instance_name)?;
                if input.iam_session_arn.is_some() && input.iam_user_arn.is_some() {
                    let mut error = OperationError::invalid("iamUserArn", "give iamSessionArn or iamUserArn, not both");
                    error.code = Some("MultipleIamArnsProvidedException".into());
                    return Err(error);
                }
                for (field, arn) in [("iamSessionArn", &input.iam_session_arn), ("iamUserArn", &input.iam_user_arn)] {
                    if let Some(arn) = arn {
                        if !fleetmesh_state::model::instances::is_iam_arn(arn) {
                            return Err(OperationError::invalid(
                                field,
                                format!("{} is not an ARN (arn:partition:iam::account:…)", echo(arn)),
                            ));
                        }
                    }
                }
                Ok(())
            }
            Self::DeregisterOnPremisesInstance(input) | Self::GetOnPremisesInstance(input) => {
                instance(INSTANCE, &input.instance_name)
            }
            Self::BatchGetOnPremisesInstances(input) => {
                batch("instanceNames", input.instance_names.len(), crate::BATCH_GET_INSTANCES_MAX)?;
                input.instance_names.iter().try_for_each(|each| instance("instanceNames", each))
            }
            Self::ListOnPremisesInstances(input) => {
                tag_filters("tagFilters", input.tag_filters.as_deref().unwrap_or_default())
            }
            _ => self.check_tags(),
        }
    }

    /// Tags: of instances, of applications and groups.
    fn check_tags(&self) -> Result<(), OperationError> {
        use fleetmesh_state::model::instances::{check_tag, TAGGED_INSTANCES_MAX, TAGS_PER_CALL_MAX};
        match self {
            Self::AddTagsToOnPremisesInstances(input) | Self::RemoveTagsFromOnPremisesInstances(input) => {
                if input.instance_names.is_empty() {
                    return Err(OperationError::invalid("instanceNames", "missing: name at least one instance"));
                }
                if input.instance_names.len() > TAGGED_INSTANCES_MAX {
                    let mut error = OperationError::invalid(
                        "instanceNames",
                        format!(
                            "{} instances; one call tags at most {TAGGED_INSTANCES_MAX}",
                            input.instance_names.len()
                        ),
                    );
                    error.code = Some("InstanceLimitExceededException".into());
                    return Err(error);
                }
                input.instance_names.iter().try_for_each(|each| instance("instanceNames", each))?;
                if input.tags.is_empty() {
                    return Err(OperationError::invalid("tags", "missing: give at least one tag"));
                }
                if input.tags.len() > TAGS_PER_CALL_MAX {
                    let mut error = OperationError::invalid(
                        "tags",
                        format!("{} tags; one call adds or removes at most {TAGS_PER_CALL_MAX}", input.tags.len()),
                    );
                    error.code = Some("TagLimitExceededException".into());
                    return Err(error);
                }
                input
                    .tags
                    .iter()
                    .try_for_each(|tag| check_tag(tag).map_err(|reason| OperationError::invalid("tags", reason)))
            }
            Self::TagResource(input) => {
                arn_length(&input.resource_arn)?;
                if input.tags.is_empty() {
                    return Err(OperationError::invalid("Tags", "missing: give at least one tag"));
                }
                input
                    .tags
                    .iter()
                    .try_for_each(|tag| check_tag(tag).map_err(|reason| OperationError::invalid("Tags", reason)))
            }
            Self::UntagResource(input) => {
                arn_length(&input.resource_arn)?;
                if input.tag_keys.is_empty() {
                    return Err(OperationError::invalid("TagKeys", "missing: give at least one key"));
                }
                input.tag_keys.iter().try_for_each(|key| {
                    let tag = fleetmesh_state::model::instances::Tag { key: key.clone(), value: String::new() };
                    check_tag(&tag).map_err(|reason| OperationError::invalid("TagKeys", reason))
                })
            }
            Self::ListTagsForResource(input) => arn_length(&input.resource_arn),
            _ => Ok(()),
        }
    }
}

/// Tags given with a new application or group: at most 50, each as `check_tag` has it.
pub(super) fn resource_tags(tags: Option<&[fleetmesh_state::model::instances::Tag]>) -> Result<(), OperationError> {
    use fleetmesh_state::model::instances::{check_tag, RESOURCE_TAGS_MAX};
    let tags = tags.unwrap_or_default();
    if tags.len() > RESOURCE_TAGS_MAX {
        return Err(OperationError::invalid(
            "tags",
            format!("{} tags; a resource carries at most {RESOURCE_TAGS_MAX}", tags.len()),
        ));
    }
    tags.iter().try_for_each(|tag| check_tag(tag).map_err(|reason| OperationError::invalid("tags", reason)))
}

/// A resource ARN: at most 1011 characters (AWS's bound), no control characters.
fn arn_length(arn: &str) -> Result<(), OperationError> {
    if arn.chars().count() > 1011 || arn.chars().any(char::is_control) {
        return Err(OperationError::invalid(
            "ResourceArn",
            "not an ARN (at most 1011 characters, no control characters)",
        ));
    }
    Ok(())
}
