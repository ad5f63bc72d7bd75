//! The `List*` operations, paged as AWS pages them: a list longer than
//! [`LIST_PAGE_SIZE`] answers its first page and a `nextToken`; the same call with that
//! token answers the next page. A token names the last item of its page (hex, opaque to
//! clients), so pages stay right while new items are added; a token whose item is gone
//! is refused (`InvalidNextTokenException`) and the client lists again.

use fleetmesh_state::model::ids::DeploymentId;
use serde::{Deserialize, Serialize};

use crate::error::OperationError;
use crate::shapes::{DeploymentStatus, TimeRange};
use crate::sources::RevisionSummary;

/// Items per page of every `List*` answer (AWS's page size for CodeDeploy's lists).
pub const LIST_PAGE_SIZE: usize = 100;

/// `ListApplications` and `ListDeploymentConfigs`: everything, a page at a time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListAllInput {
    /// Where the previous page ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `ListApplications`.
pub type ListApplicationsInput = ListAllInput;
/// `ListDeploymentConfigs`.
pub type ListDeploymentConfigsInput = ListAllInput;

/// `ListDeploymentGroups` and `ListApplicationRevisions`: one application's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationListInput {
    /// The application.
    pub application_name: String,
    /// Where the previous page ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `ListDeploymentGroups`.
pub type ListDeploymentGroupsInput = ApplicationListInput;
/// `ListApplicationRevisions`.
pub type ListApplicationRevisionsInput = ApplicationListInput;

/// `ListApplications`' answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListApplicationsOutput {
    /// Names, sorted.
    pub applications: Vec<String>,
    /// More follow: pass it back for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `ListDeploymentGroups`' answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListDeploymentGroupsOutput {
    /// Application.
    pub application_name: String,
    /// Group names, sorted.
    pub deployment_groups: Vec<String>,
    /// More follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `ListDeploymentConfigs`' answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListDeploymentConfigsOutput {
    /// The predefined configurations, then the custom ones.
    pub deployment_configs_list: Vec<String>,
    /// More follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `ListApplicationRevisions`' answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListApplicationRevisionsOutput {
    /// Newest first.
    pub revisions: Vec<RevisionSummary>,
    /// More follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `ListDeployments`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct ListDeploymentsInput {
    /// Only this application's.
    #[serde(default)]
    pub application_name: Option<String>,
    /// Only this group's (with `applicationName`).
    #[serde(default)]
    pub deployment_group_name: Option<String>,
    /// Only these statuses.
    #[serde(default)]
    pub include_only_statuses: Vec<DeploymentStatus>,
    /// Only those created in this range.
    #[serde(default)]
    pub create_time_range: Option<TimeRange>,
    /// Where the previous page ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `ListDeployments`' answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListDeploymentsOutput {
    /// Newest first.
    pub deployments: Vec<DeploymentId>,
    /// More follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `ListDeploymentTargets`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListDeploymentTargetsInput {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Where the previous page ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `ListDeploymentTargets`' answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListDeploymentTargetsOutput {
    /// Node ids (and a Lambda or ECS deployment's one target).
    pub target_ids: Vec<String>,
    /// More follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// The page of `items` after `token` (from the start without one), at most `size`
/// long, and the token of the next page when more follow; `key` names an item in tokens.
///
/// # Errors
/// `nextToken` is not a token of this list, or its item is gone.
pub fn page<T>(
    items: Vec<T>,
    token: Option<&str>,
    size: usize,
    key: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>), OperationError> {
    let start = match token {
        None => 0,
        Some(token) => {
            let after = hex::decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| OperationError::invalid("nextToken", "not a token this list gave"))?;
            let index = items.iter().position(|item| key(item) == after).ok_or_else(|| {
                OperationError::invalid("nextToken", "the item this token continues from is gone; list again")
            })?;
            index + 1
        }
    };
    let size = size.max(1);
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    let next = (rest.len() > size).then(|| hex::encode(key(&rest[size - 1])));
    rest.truncate(size);
    Ok((rest, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_and_end_without_a_token() {
        let items: Vec<u32> = (0..7).collect();
        let key = |item: &u32| item.to_string();
        let (first, token) = page(items.clone(), None, 3, key).expect("first");
        assert_eq!(first, [0, 1, 2]);
        let (second, token) = page(items.clone(), token.as_deref(), 3, key).expect("second");
        assert_eq!(second, [3, 4, 5]);
        let (last, token) = page(items.clone(), token.as_deref(), 3, key).expect("last");
        assert_eq!((last, token), (vec![6], None));
        let (all, none) = page(items.clone(), None, 7, key).expect("one page");
        assert_eq!((all.len(), none), (7, None));
    }

    #[test]
    fn a_foreign_or_stale_token_is_refused_by_field() {
        let key = |item: &u32| item.to_string();
        for token in ["zz", "3939", ""] {
            let refused = page(vec![1u32, 2], Some(token), 1, key);
            assert_eq!(refused.map_err(|error| error.field), Err(Some("nextToken".to_string())), "{token}");
        }
    }
}
