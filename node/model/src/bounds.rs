//! The bounds of every input (CodeDeploy's limits where it has them, §6.3 of the
//! behaviour notes), checked before an operation goes anywhere ([`Operation::check`]),
//! and user input echoed back in error messages only cut short ([`echo`]).
//!
//! | What | Bound |
//! | --- | --- |
//! | application, deployment group, deployment configuration names | 1–100 characters of `[A-Za-z0-9._+=,@-]` |
//! | descriptions | ≤ 256 characters |
//! | tag filter keys / values | ≤ 128 / ≤ 256 characters |
//! | tag filters of a group / groups of a tag set | ≤ 100 (fleetmesh) / ≤ 3 |
//! | ids named in a request (deployment, target, join token) | ≤ 100 characters |
//! | `BatchGet*` (when served) | 25 items, `BatchGetApplications` 100 |
//! | route names | as resource names |
//! | route ports | 1–65535 |
//! | router tags | 1–10 pairs, keys 1–128, values ≤ 256 characters |
//! | drain seconds | 0–3600 |
//! | route command | an absolute path of ≤ 1024 bytes |
//! | route targets | ≤ 1000, weights 0–1000, each node once |

use fleetmesh_state::model::resources::{
    AutoRollbackConfiguration, MinimumHealthyHosts, MinimumHealthyHostsType, TagFilter, TagFilterType, NAME_LEN_MAX,
};
use fleetmesh_state::model::traffic_routing::TrafficRoutingConfig;

use crate::{Operation, OperationError};

mod instances;
mod routes;
use instances::resource_tags;
use routes::{drain_seconds, port, route_command, route_targets, router_tags};

/// Most characters of a description (CodeDeploy's limit).
pub const DESCRIPTION_CHARS_MAX: usize = 256;

/// Most characters of a tag key (CodeDeploy's limit).
pub const TAG_KEY_CHARS_MAX: usize = 128;

/// Most characters of a tag value (CodeDeploy's limit).
pub const TAG_VALUE_CHARS_MAX: usize = 256;

/// Most tag groups in an `onPremisesTagSet` (CodeDeploy's limit).
pub const TAG_SET_GROUPS_MAX: usize = 3;

/// Most tag filters in one list (fleetmesh's bound; each is stored in the group).
pub const TAG_FILTERS_MAX: usize = 100;

/// Most characters of an id a request names (deployment, target, join token).
pub const ID_CHARS_MAX: usize = 100;

/// Most items of a `BatchGet*` call (CodeDeploy's limit), for the batch operations
/// to come.
pub const BATCH_GET_MAX: usize = 25;

/// Most names of a `BatchGetApplications` call (CodeDeploy's limit).
pub const BATCH_GET_APPLICATIONS_MAX: usize = 100;

/// Most characters of user input an error message repeats.
pub const ECHO_CHARS_MAX: usize = 100;

/// Most characters of a whole error message.
pub const MESSAGE_CHARS_MAX: usize = 1000;

/// `text` cut to [`ECHO_CHARS_MAX`] characters, with `…` when it was longer.
pub fn cut(text: &str) -> String {
    cut_to(text, ECHO_CHARS_MAX)
}

fn cut_to(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// User input as an error message repeats it: quoted and escaped (control characters
/// show as escapes), cut to [`ECHO_CHARS_MAX`] characters.
pub fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_CHARS_MAX) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// A message with every quoted (`` `…` `` or `"…"`) part longer than [`ECHO_CHARS_MAX`]
/// cut short, and the whole cut to [`MESSAGE_CHARS_MAX`]: serde's errors repeat the
/// value or member name they refused, whatever its length.
pub fn shorten_echoes(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MESSAGE_CHARS_MAX));
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=open]);
        let inside = &rest[open + 1..];
        let close = closing(inside, quote);
        out.push_str(&cut(&inside[..close]));
        rest = &inside[close..];
        if let Some(after) = rest.strip_prefix(quote) {
            out.push(quote);
            rest = after;
        }
    }
    out.push_str(rest);
    cut_to(&out, MESSAGE_CHARS_MAX)
}

/// The byte offset of the first unescaped `quote` in `text` (its length when none).
fn closing(text: &str, quote: char) -> usize {
    let mut escaped = false;
    for (index, character) in text.char_indices() {
        match character {
            '\\' if quote == '"' && !escaped => escaped = true,
            found if found == quote && !escaped => return index,
            _ => escaped = false,
        }
    }
    text.len()
}

/// A resource name: 1–100 characters of `[A-Za-z0-9._+=,@-]` (CodeDeploy's rule). The
/// message says which name in words too, as the state's own check does.
fn name(field: &str, value: &str) -> Result<(), OperationError> {
    let what = match field {
        APPLICATION => "application name",
        GROUP => "deployment group name",
        ROUTE => "route name",
        _ => "deployment configuration name",
    };
    if value.is_empty() {
        return Err(OperationError::invalid(field, format!("the {what} must not be empty")));
    }
    let length = value.chars().count();
    if length > NAME_LEN_MAX {
        return Err(OperationError::invalid(
            field,
            format!("the {what} {} is {length} characters long; the most is {NAME_LEN_MAX}", echo(value)),
        ));
    }
    if let Some(character) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || "._+=,@-".contains(*c))) {
        return Err(OperationError::invalid(
            field,
            format!("the {what} {} contains {character:?}; allowed are letters, digits and ._+=,@-", echo(value)),
        ));
    }
    Ok(())
}

/// An optional name: none or empty means "the default".
fn optional_name(field: &str, value: Option<&String>) -> Result<(), OperationError> {
    value.filter(|value| !value.is_empty()).map_or(Ok(()), |value| name(field, value))
}

/// Free text of at most `max` characters.
fn text(field: &str, value: &str, max: usize) -> Result<(), OperationError> {
    let length = value.chars().count();
    if length > max {
        return Err(OperationError::invalid(field, format!("{length} characters; the most is {max}")));
    }
    Ok(())
}

/// An id a request names: 1–100 characters.
fn id(field: &str, value: &str) -> Result<(), OperationError> {
    if value.is_empty() {
        return Err(OperationError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > ID_CHARS_MAX {
        return Err(OperationError::invalid(field, format!("{} is not an id (too long)", echo(value))));
    }
    Ok(())
}

/// A list of tag filters: each complete, keys and values within CodeDeploy's lengths.
fn tag_filters(field: &str, filters: &[TagFilter]) -> Result<(), OperationError> {
    if filters.len() > TAG_FILTERS_MAX {
        return Err(OperationError::invalid(
            field,
            format!("{} filters; the most is {TAG_FILTERS_MAX}", filters.len()),
        ));
    }
    for (index, filter) in filters.iter().enumerate() {
        let needs_key = filter.filter_type != TagFilterType::ValueOnly;
        let needs_value = filter.filter_type != TagFilterType::KeyOnly;
        let key = filter.key.as_deref().unwrap_or_default();
        let value = filter.value.as_deref().unwrap_or_default();
        if needs_key && key.is_empty() {
            return Err(OperationError::invalid(
                &format!("{field}[{index}].Key"),
                "missing (the filter's type needs one)",
            ));
        }
        if needs_value && filter.value.is_none() {
            return Err(OperationError::invalid(
                &format!("{field}[{index}].Value"),
                "missing (the filter's type needs one)",
            ));
        }
        text(&format!("{field}[{index}].Key"), key, TAG_KEY_CHARS_MAX)?;
        text(&format!("{field}[{index}].Value"), value, TAG_VALUE_CHARS_MAX)?;
    }
    Ok(())
}

/// A tag set: at most three groups of filters.
fn tag_set(field: &str, groups: &[Vec<TagFilter>]) -> Result<(), OperationError> {
    if groups.len() > TAG_SET_GROUPS_MAX {
        return Err(OperationError::invalid(
            field,
            format!("{} groups; the most is {TAG_SET_GROUPS_MAX}", groups.len()),
        ));
    }
    for (index, group) in groups.iter().enumerate() {
        tag_filters(&format!("{field}[{index}]"), group)?;
    }
    Ok(())
}

/// Rollback settings: each event named once at most.
fn rollback(field: &str, configuration: Option<&AutoRollbackConfiguration>) -> Result<(), OperationError> {
    let events = configuration.map(|configuration| configuration.events.as_slice()).unwrap_or_default();
    for (index, event) in events.iter().enumerate() {
        if events[..index].contains(event) {
            return Err(OperationError::invalid(
                &format!("{field}.events[{index}]"),
                format!("{event:?} is listed twice"),
            ));
        }
    }
    Ok(())
}

/// A minimum-healthy-hosts rule: a percentage is 0–99.
fn minimum_healthy_hosts(rule: Option<&MinimumHealthyHosts>) -> Result<(), OperationError> {
    match rule {
        Some(rule) if rule.kind == MinimumHealthyHostsType::FleetPercent && rule.value > 99 => {
            Err(OperationError::invalid(
                "minimumHealthyHosts.value",
                format!("{} is not a percentage of 0 to 99", rule.value),
            ))
        }
        _ => Ok(()),
    }
}

/// A routing config's rules (`TrafficRoutingConfig::normalise`), naming the member.
fn traffic_routing(config: Option<&TrafficRoutingConfig>) -> Result<(), OperationError> {
    match config.map(TrafficRoutingConfig::normalise) {
        Some(Err(error)) => Err(OperationError::invalid(error.field(), error)),
        _ => Ok(()),
    }
}

const APPLICATION: &str = "applicationName";
const GROUP: &str = "deploymentGroupName";
const CONFIG: &str = "deploymentConfigName";
const DESCRIPTION: &str = "description";
const DEPLOYMENT: &str = "deploymentId";
const ROUTE: &str = "routeName";
const INSTANCE: &str = "instanceName";

impl Operation {
    /// Checks every bound of the input: names, lengths, counts and numbers. Run before
    /// an operation goes anywhere, and again by the node that answers a forwarded one.
    ///
    /// # Errors
    /// A bad request naming the field and its bound; echoed input is cut short.
    pub fn check(&self) -> Result<(), OperationError> {
        self.check_resources()
            .and_then(|()| self.check_deployments())
            .and_then(|()| self.check_routes())
            .and_then(|()| self.check_instances())
    }

    /// Traffic routes.
    fn check_routes(&self) -> Result<(), OperationError> {
        match self {
            Self::CreateRoute(input) => {
                name(ROUTE, &input.route_name)?;
                port("listenPort", input.listen_port)?;
                port("targetPort", input.target_port)?;
                router_tags(&input.router_tags)?;
                drain_seconds(input.drain_seconds)?;
                route_command(input.command.as_deref())
            }
            Self::GetRoute(input) | Self::DeleteRoute(input) => name(ROUTE, &input.route_name),
            Self::SetRouteTargets(input) => {
                name(ROUTE, &input.route_name)?;
                route_targets(&input.targets)
            }
            _ => Ok(()),
        }
    }

    /// Applications, groups, configurations, revisions and the cluster's own.
    fn check_resources(&self) -> Result<(), OperationError> {
        match self {
            Self::CreateApplication(input) => {
                name(APPLICATION, &input.application_name)?;
                resource_tags(input.tags.as_deref())
            }
            Self::GetApplication(input) | Self::DeleteApplication(input) => name(APPLICATION, &input.application_name),
            Self::ListDeploymentGroups(input) | Self::ListApplicationRevisions(input) => {
                name(APPLICATION, &input.application_name)
            }
            Self::BatchGetApplicationRevisions(input) => {
                name(APPLICATION, &input.application_name)?;
                batch("revisions", input.revisions.len(), BATCH_MAX)
            }
            Self::UpdateApplication(input) => {
                name(APPLICATION, &input.application_name)?;
                name("newApplicationName", &input.new_application_name)
            }
            // The merged group is checked as a CreateDeploymentGroup's input on the leader.
            Self::UpdateDeploymentGroup(input) => {
                name(APPLICATION, &input.application_name)?;
                name("currentDeploymentGroupName", &input.current_deployment_group_name)?;
                optional_name("newDeploymentGroupName", input.new_deployment_group_name.as_ref())?;
                optional_name(CONFIG, input.deployment_config_name.as_ref())
            }
            Self::BatchGetApplications(input) => {
                batch("applicationNames", input.application_names.len(), BATCH_APPLICATIONS_MAX)?;
                input.application_names.iter().try_for_each(|each| name(APPLICATION, each))
            }
            Self::BatchGetDeploymentGroups(input) => {
                name(APPLICATION, &input.application_name)?;
                batch("deploymentGroupNames", input.deployment_group_names.len(), BATCH_APPLICATIONS_MAX)?;
                input.deployment_group_names.iter().try_for_each(|each| name(GROUP, each))
            }
            Self::CreateDeploymentGroup(input) => {
                name(APPLICATION, &input.application_name)?;
                name(GROUP, &input.deployment_group_name)?;
                optional_name(CONFIG, input.deployment_config_name.as_ref())?;
                let filters = input.on_premises_instance_tag_filters.as_deref().unwrap_or_default();
                tag_filters("onPremisesInstanceTagFilters", filters)?;
                let groups = input.on_premises_tag_set.as_ref().map(|set| set.on_premises_tag_set_list.as_slice());
                tag_set("onPremisesTagSet.onPremisesTagSetList", groups.unwrap_or_default())?;
                rollback("autoRollbackConfiguration", input.auto_rollback_configuration.as_ref())?;
                resource_tags(input.tags.as_deref())
            }
            Self::GetDeploymentGroup(input) | Self::DeleteDeploymentGroup(input) => {
                name(APPLICATION, &input.application_name)?;
                name(GROUP, &input.deployment_group_name)
            }
            Self::CreateDeploymentConfig(input) => {
                name(CONFIG, &input.deployment_config_name)?;
                minimum_healthy_hosts(input.minimum_healthy_hosts.as_ref())?;
                traffic_routing(input.traffic_routing_config.as_ref())
            }
            Self::GetDeploymentConfig(input) | Self::DeleteDeploymentConfig(input) => {
                name(CONFIG, &input.deployment_config_name)
            }
            Self::RegisterPushedRevision(input) => {
                name(APPLICATION, &input.application_name)?;
                text(DESCRIPTION, input.description.as_deref().unwrap_or_default(), DESCRIPTION_CHARS_MAX)?;
                text("registeredBy", input.registered_by.as_deref().unwrap_or_default(), ID_CHARS_MAX)
            }
            Self::RegisterApplicationRevision(input) => {
                name(APPLICATION, &input.application_name)?;
                text(DESCRIPTION, input.description.as_deref().unwrap_or_default(), DESCRIPTION_CHARS_MAX)
            }
            Self::GetApplicationRevision(input) => optional_name(APPLICATION, input.application_name.as_ref()),
            Self::Prefetch(input) => optional_name(GROUP, input.deployment_group_name.as_ref()),
            Self::CreateJoinToken(input) => {
                input.check()?;
                text(DESCRIPTION, &input.description, DESCRIPTION_CHARS_MAX)
            }
            Self::DeleteJoinToken(input) => id("tokenId", &input.token_id),
            _ => Ok(()),
        }
    }

    /// Deployments and their targets.
    fn check_deployments(&self) -> Result<(), OperationError> {
        match self {
            Self::CreateDeployment(input) | Self::PlanDeployment(input) => {
                name(APPLICATION, &input.application_name)?;
                name(GROUP, &input.deployment_group_name)?;
                optional_name(CONFIG, input.deployment_config_name.as_ref())?;
                text(DESCRIPTION, input.description.as_deref().unwrap_or_default(), DESCRIPTION_CHARS_MAX)?;
                rollback("autoRollbackConfiguration", input.auto_rollback_configuration.as_ref())
            }
            Self::GetDeployment(input) => id(DEPLOYMENT, &input.deployment_id.0),
            Self::ListDeploymentTargets(input) => id(DEPLOYMENT, &input.deployment_id.0),
            Self::BatchGetDeployments(input) => {
                batch("deploymentIds", input.deployment_ids.len(), BATCH_MAX)?;
                input.deployment_ids.iter().try_for_each(|each| id(DEPLOYMENT, &each.0))
            }
            Self::BatchGetDeploymentTargets(input) => {
                id(DEPLOYMENT, &input.deployment_id.0)?;
                batch("targetIds", input.target_ids.len(), BATCH_MAX)?;
                input.target_ids.iter().try_for_each(|each| text("targetIds", each, 300))
            }
            Self::StopDeployment(input) => id(DEPLOYMENT, &input.deployment_id.0),
            Self::ContinueDeployment(input) => id(DEPLOYMENT, &input.deployment_id.0),
            Self::PutLifecycleEventHookExecutionStatus(input) => {
                id(DEPLOYMENT, &input.deployment_id.0)?;
                id("lifecycleEventHookExecutionId", &input.lifecycle_event_hook_execution_id)
            }
            Self::GetDeploymentTarget(input) => {
                id(DEPLOYMENT, &input.deployment_id.0)?;
                // A Lambda target is `<function>:<alias>`: a function ARN (140) and an alias (128).
                text("targetId", &input.target_id, 300)
            }
            Self::ListDeployments(input) => {
                optional_name(APPLICATION, input.application_name.as_ref())?;
                optional_name(GROUP, input.deployment_group_name.as_ref())
            }
            _ => Ok(()),
        }
    }
}

/// Most items of a `BatchGet*` call (deployments, targets: AWS's 25).
pub const BATCH_MAX: usize = 25;
/// Most applications (and groups) of one `BatchGetApplications` (AWS's 100).
pub const BATCH_APPLICATIONS_MAX: usize = 100;

/// A batch of `count` items under `field`: at least one, at most `max`.
fn batch(field: &str, count: usize, max: usize) -> Result<(), OperationError> {
    if count == 0 {
        return Err(OperationError::invalid(field, "name at least one"));
    }
    if count > max {
        let mut error = OperationError::invalid(field, format!("{count} items; a batch holds at most {max}"));
        error.code = Some("BatchLimitExceededException".into());
        return Err(error);
    }
    Ok(())
}
