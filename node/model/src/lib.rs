//! fleetmesh's API model: one input and one output type per operation, with the field
//! names, types and enums of CodeDeploy's own service model (botocore's
//! `codedeploy/2014-10-06/service-2.json`), plus fleetmesh's extensions where it has
//! more to say (revision ids, waves, the revision's manifest).
//!
//! One model, three users, so a field is spelled once:
//! - the node's API (`node/src/api`) parses a request body into an [`Operation`], and
//!   answers with its [`Output`]; followers forward the typed operation to the leader
//!   (or, for a read, answer it from their own applied state);
//! - the CLI (`node/bin`) builds the inputs and reads the outputs, and its `--json`
//!   prints the outputs as they are;
//! - the tests read answers into these types.
//!
//! Timestamps leave the API as epoch seconds with a fraction ([`EpochSeconds`]), as AWS
//! does; lifecycle event names are an enum ([`LifecycleEventName`]).
//!
//! CodeDeploy's wire protocol (AWS JSON 1.1, [`aws`]) serves these same types; its
//! signatures (SigV4) are checked by [`sigv4`].
//!
//! Pure: no tokio, no files, no network.

pub mod aws;
mod batch;
mod blue_green;
pub mod bounds;
mod cluster;
mod deployments;
mod error;
mod events;
mod instances;
mod lambda;
mod lifecycle;
mod lists;
mod operations;
mod platform_targets;
mod shapes;
pub mod sigv4;
mod sources;
mod strict;
mod time;
mod traffic;
mod triggers;
mod updates;

pub use batch::*;
pub use blue_green::*;
pub use cluster::*;
pub use deployments::*;
pub use error::{ErrorKind, ModelError, OperationError};
pub use events::*;
pub use instances::*;
pub use lambda::*;
pub use lifecycle::{LifecycleEventName, UnknownLifecycleEvent};
pub use lists::*;
pub use operations::*;
pub use platform_targets::*;
pub use shapes::*;
pub use sources::*;
pub use time::{civil_from_days, EpochSeconds};
pub use traffic::*;
pub use triggers::*;
pub use updates::*;

use fleetmesh_state::FeatureLevel;
use serde::{Deserialize, Serialize};

/// How an operation is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Proposes a command through Raft: only the leader can answer.
    Write,
    /// Reads the replicated state: any voter can answer from what it has applied.
    Read,
    /// Reads what only the leader knows (download progress reported by the agents).
    LeaderRead,
}

/// Declares the operations: their enum of inputs, their enum of outputs, each one's
/// name and access, and parsing an input from its name and JSON body.
macro_rules! operations {
    ($($(#[$meta:meta])* $name:ident($input:ident) -> $output:ident, $access:ident;)*) => {
        /// One API call: the operation and its input.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "operation", content = "input")]
        pub enum Operation {
            $(
                #[doc = concat!("`", stringify!($name), "`.")]
                $(#[$meta])*
                $name($input),
            )*
        }

        /// The answer to an [`Operation`]: the output of the same name.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "operation", content = "output")]
        pub enum Output {
            $(
                #[doc = concat!("`", stringify!($name), "`.")]
                $(#[$meta])*
                $name($output),
            )*
        }

        /// Every operation's name.
        pub const OPERATION_NAMES: &[&str] = &[$(stringify!($name)),*];

        impl Operation {
            /// Parses `body` (JSON; empty means `{}`) as the input of the operation named `name`.
            /// The bounds of the values are [`Operation::check`]'s.
            ///
            /// # Errors
            /// [`ModelError::UnknownOperation`], or [`ModelError::InvalidInput`] naming the
            /// field that is missing, unknown or of the wrong type.
            pub fn parse_named(name: &str, body: &[u8]) -> Result<Self, ModelError> {
                let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
                match name {
                    $(stringify!($name) => parse_input::<$input>(name, body).map(Self::$name),)*
                    _ => Err(ModelError::UnknownOperation(bounds::cut(name))),
                }
            }

            /// The operation's name, as in `CodeDeploy_20141006.<name>` and `/v1/deploy/<name>`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$name(_) => stringify!($name),)*
                }
            }

            /// Who can answer it.
            pub fn access(&self) -> Access {
                match self {
                    $(Self::$name(_) => Access::$access,)*
                }
            }
        }

        impl Output {
            /// The operation's name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$name(_) => stringify!($name),)*
                }
            }

            /// The output alone, as the HTTP API answers it.
            pub fn to_json(&self) -> serde_json::Value {
                let encoded = match self {
                    $(Self::$name(output) => serde_json::to_value(output),)*
                };
                // Every output is plain data (strings, numbers, maps with string keys).
                encoded.unwrap_or_default()
            }
        }

    };
}

operations! {
    CreateApplication(CreateApplicationInput) -> CreateApplicationOutput, Write;
    GetApplication(GetApplicationInput) -> GetApplicationOutput, Read;
    ListApplications(ListApplicationsInput) -> ListApplicationsOutput, Read;
    DeleteApplication(DeleteApplicationInput) -> Empty, Write;
    CreateDeploymentGroup(CreateDeploymentGroupInput) -> CreateDeploymentGroupOutput, Write;
    GetDeploymentGroup(GetDeploymentGroupInput) -> GetDeploymentGroupOutput, Read;
    ListDeploymentGroups(ListDeploymentGroupsInput) -> ListDeploymentGroupsOutput, Read;
    DeleteDeploymentGroup(DeleteDeploymentGroupInput) -> Empty, Write;
    CreateDeploymentConfig(CreateDeploymentConfigInput) -> CreateDeploymentConfigOutput, Write;
    GetDeploymentConfig(GetDeploymentConfigInput) -> GetDeploymentConfigOutput, Read;
    ListDeploymentConfigs(ListDeploymentConfigsInput) -> ListDeploymentConfigsOutput, Read;
    DeleteDeploymentConfig(DeleteDeploymentConfigInput) -> Empty, Write;
    // Between nodes, a push's registration keeps the name older releases know it by.
    #[serde(rename = "RegisterApplicationRevision")]
    RegisterPushedRevision(RegisterPushedRevisionInput) -> RegisterPushedRevisionOutput, Write;
    #[serde(rename = "RegisterRevisionLocation")]
    RegisterApplicationRevision(RegisterApplicationRevisionInput) -> Empty, Write;
    ListApplicationRevisions(ListApplicationRevisionsInput) -> ListApplicationRevisionsOutput, Read;
    GetApplicationRevision(GetApplicationRevisionInput) -> GetApplicationRevisionOutput, Read;
    Prefetch(PrefetchInput) -> PrefetchOutput, Write;
    GetRevisionDistribution(GetRevisionDistributionInput) -> GetRevisionDistributionOutput, LeaderRead;
    CreateDeployment(CreateDeploymentInput) -> CreateDeploymentOutput, Write;
    PlanDeployment(PlanDeploymentInput) -> PlanDeploymentOutput, Read;
    GetDeployment(GetDeploymentInput) -> GetDeploymentOutput, Read;
    ListDeployments(ListDeploymentsInput) -> ListDeploymentsOutput, Read;
    StopDeployment(StopDeploymentInput) -> StopDeploymentOutput, Write;
    ContinueDeployment(ContinueDeploymentInput) -> Empty, Write;
    PutLifecycleEventHookExecutionStatus(PutLifecycleEventHookExecutionStatusInput)
        -> PutLifecycleEventHookExecutionStatusOutput, Write;
    ListDeploymentTargets(ListDeploymentTargetsInput) -> ListDeploymentTargetsOutput, Read;
    GetDeploymentTarget(GetDeploymentTargetInput) -> GetDeploymentTargetOutput, Read;
    GetCluster(GetClusterInput) -> GetClusterOutput, LeaderRead;
    CreateJoinToken(CreateJoinTokenInput) -> CreateJoinTokenOutput, Write;
    ListJoinTokens(ListJoinTokensInput) -> ListJoinTokensOutput, Read;
    DeleteJoinToken(DeleteJoinTokenInput) -> Empty, Write;
    RotateApiToken(RotateApiTokenInput) -> RotateApiTokenOutput, Write;
    RemoveNode(RemoveNodeInput) -> Empty, Write;
    CreateRoute(CreateRouteInput) -> RouteInfo, Write;
    GetRoute(RouteNameInput) -> RouteInfo, LeaderRead;
    ListRoutes(ListRoutesInput) -> ListRoutesOutput, Read;
    DeleteRoute(RouteNameInput) -> Empty, Write;
    SetRouteTargets(SetRouteTargetsInput) -> RouteInfo, Write;
    BatchGetApplications(BatchGetApplicationsInput) -> BatchGetApplicationsOutput, Read;
    BatchGetDeploymentGroups(BatchGetDeploymentGroupsInput) -> BatchGetDeploymentGroupsOutput, Read;
    BatchGetDeployments(BatchGetDeploymentsInput) -> BatchGetDeploymentsOutput, Read;
    BatchGetDeploymentTargets(BatchGetDeploymentTargetsInput) -> BatchGetDeploymentTargetsOutput, Read;
    BatchGetApplicationRevisions(BatchGetApplicationRevisionsInput) -> BatchGetApplicationRevisionsOutput, Read;
    CreateAccessKey(CreateAccessKeyInput) -> CreateAccessKeyOutput, Write;
    ListAccessKeys(ListAccessKeysInput) -> ListAccessKeysOutput, Read;
    DeleteAccessKey(DeleteAccessKeyInput) -> Empty, Write;
    UpdateApplication(UpdateApplicationInput) -> Empty, Write;
    UpdateDeploymentGroup(UpdateDeploymentGroupInput) -> UpdateDeploymentGroupOutput, Write;
    RegisterOnPremisesInstance(RegisterOnPremisesInstanceInput) -> Empty, Write;
    DeregisterOnPremisesInstance(DeregisterOnPremisesInstanceInput) -> Empty, Write;
    GetOnPremisesInstance(GetOnPremisesInstanceInput) -> GetOnPremisesInstanceOutput, Read;
    BatchGetOnPremisesInstances(BatchGetOnPremisesInstancesInput) -> BatchGetOnPremisesInstancesOutput, Read;
    ListOnPremisesInstances(ListOnPremisesInstancesInput) -> ListOnPremisesInstancesOutput, Read;
    AddTagsToOnPremisesInstances(AddTagsToOnPremisesInstancesInput) -> Empty, Write;
    RemoveTagsFromOnPremisesInstances(RemoveTagsFromOnPremisesInstancesInput) -> Empty, Write;
    TagResource(TagResourceInput) -> Empty, Write;
    UntagResource(UntagResourceInput) -> Empty, Write;
    ListTagsForResource(ListTagsForResourceInput) -> ListTagsForResourceOutput, Read;
    ListEvents(ListEventsInput) -> ListEventsOutput, Read;
    SetDeploymentRetention(SetDeploymentRetentionInput) -> SetDeploymentRetentionOutput, Write;
}

/// `arn:aws:codedeploy:<region>:<account>:<resource>` with the region and account of the
/// cluster of `state` (the defaults before it is bootstrapped).
pub fn arn(state: &fleetmesh_state::ClusterState, resource: &str) -> String {
    match &state.cluster {
        Some(cluster) => cluster.arn(resource),
        None => format!(
            "arn:aws:codedeploy:{}:{}:{resource}",
            fleetmesh_state::model::members::DEFAULT_AWS_REGION,
            fleetmesh_state::model::members::DEFAULT_AWS_ACCOUNT_ID
        ),
    }
}

/// True when `body` is a JSON object with a top-level member `name`.
fn has_member(body: &[u8], name: &str) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .is_ok_and(|object| object.contains_key(name))
}

/// `body` as `T`, or the error naming the field that is wrong.
fn parse_input<T: serde::de::DeserializeOwned>(operation: &str, body: &[u8]) -> Result<T, ModelError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let input = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| ModelError::invalid_input(operation, &error))?;
    // Trailing bytes after the object (`{} x`) are an error too, as serde_json::from_slice has it.
    deserializer.end().map_err(|error| ModelError::InvalidInput {
        operation: operation.to_string(),
        field: None,
        reason: error.to_string(),
    })?;
    Ok(input)
}

impl Operation {
    /// Parses `body` (JSON; empty means `{}`) as the input of the operation named `name`,
    /// as [`Self::parse_named`] does, but `RegisterApplicationRevision` with a
    /// `manifest` is the push registration of releases before feature level 15
    /// ([`Self::RegisterPushedRevision`]), as their CLIs and relays still send it.
    ///
    /// # Errors
    /// As [`Self::parse_named`].
    pub fn parse(name: &str, body: &[u8]) -> Result<Self, ModelError> {
        if name == "RegisterApplicationRevision" && has_member(body, "manifest") {
            return Self::parse_named("RegisterPushedRevision", body);
        }
        Self::parse_named(name, body)
    }

    /// The level that alarms (18) and triggers (17) on a group or deployment need;
    /// [`FeatureLevel::BASE`] without them.
    fn watch_level(&self) -> FeatureLevel {
        match self {
            Self::CreateDeploymentGroup(CreateDeploymentGroupInput { alarm_configuration: Some(_), .. })
            | Self::UpdateDeploymentGroup(UpdateDeploymentGroupInput { alarm_configuration: Some(_), .. })
            | Self::CreateDeployment(CreateDeploymentInput { override_alarm_configuration: Some(_), .. }) => {
                FeatureLevel::ALARMS
            }
            Self::CreateDeploymentGroup(CreateDeploymentGroupInput {
                trigger_configurations: Some(triggers), ..
            })
            | Self::UpdateDeploymentGroup(UpdateDeploymentGroupInput {
                trigger_configurations: Some(triggers), ..
            }) if !triggers.is_empty() => FeatureLevel::TRIGGERS,
            _ => FeatureLevel::BASE,
        }
    }

    /// The feature level the cluster must run at for this operation: a node refuses it
    /// below that level, since the leader may run a release that does not know it.
    pub fn feature_level(&self) -> FeatureLevel {
        match self {
            operation if operation.watch_level() > FeatureLevel::BASE => operation.watch_level(),
            Self::ListJoinTokens(_) | Self::DeleteJoinToken(_) => FeatureLevel::JOIN_TOKEN_LIFECYCLE,
            Self::BatchGetApplications(_)
            | Self::BatchGetDeploymentGroups(_)
            | Self::BatchGetDeployments(_)
            | Self::BatchGetDeploymentTargets(_)
            | Self::BatchGetApplicationRevisions(_)
            | Self::CreateAccessKey(_)
            | Self::ListAccessKeys(_)
            | Self::DeleteAccessKey(_)
            | Self::UpdateApplication(_)
            | Self::UpdateDeploymentGroup(_)
            | Self::RegisterApplicationRevision(_) => FeatureLevel::AWS_PROTOCOL,
            tagging if tagging.is_tagging() => FeatureLevel::AWS_PROTOCOL,
            Self::CreateDeployment(input)
                if input
                    .revision
                    .revision
                    .as_ref()
                    .is_some_and(|location| location.s3_location.is_some() || location.git_hub_location.is_some()) =>
            {
                FeatureLevel::AWS_PROTOCOL
            }
            Self::ListApplications(ListAllInput { next_token: Some(_) })
            | Self::ListDeploymentConfigs(ListAllInput { next_token: Some(_) })
            | Self::ListDeploymentGroups(ApplicationListInput { next_token: Some(_), .. })
            | Self::ListApplicationRevisions(ApplicationListInput { next_token: Some(_), .. })
            | Self::ListDeploymentTargets(ListDeploymentTargetsInput { next_token: Some(_), .. }) => {
                FeatureLevel::AWS_PROTOCOL
            }
            Self::ListDeployments(input) if input.next_token.is_some() => FeatureLevel::AWS_PROTOCOL,
            Self::ListEvents(_) => FeatureLevel::EVENTS,
            Self::SetDeploymentRetention(_) => FeatureLevel::RETENTION,
            Self::RotateApiToken(_) | Self::RemoveNode(_) => FeatureLevel::HARDENING,
            Self::CreateRoute(_)
            | Self::GetRoute(_)
            | Self::ListRoutes(_)
            | Self::DeleteRoute(_)
            | Self::SetRouteTargets(_) => FeatureLevel::TRAFFIC_ROUTES,
            Self::CreateJoinToken(input) if input.max_uses.is_some() => FeatureLevel::JOIN_TOKEN_LIFECYCLE,
            Self::CreateDeploymentConfig(input) if input.traffic_routing_config.is_some() => {
                FeatureLevel::TRAFFIC_CONTROL
            }
            Self::ContinueDeployment(_) => FeatureLevel::BLUE_GREEN,
            Self::PutLifecycleEventHookExecutionStatus(_) => FeatureLevel::PLATFORM_DEPLOYMENTS,
            Self::CreateDeploymentGroup(input)
                if input.ecs_services.as_ref().is_some_and(|services| !services.is_empty())
                    || input
                        .load_balancer_info
                        .as_ref()
                        .is_some_and(|info| !info.target_group_pair_info_list.is_empty()) =>
            {
                FeatureLevel::ECS_DEPLOYMENTS
            }
            Self::CreateDeploymentGroup(input) if input.service_role_arn.is_some() => {
                FeatureLevel::PLATFORM_DEPLOYMENTS
            }
            Self::CreateDeployment(input) if input.revision.inline_content().ok().flatten().is_some() => {
                FeatureLevel::PLATFORM_DEPLOYMENTS
            }
            Self::CreateDeployment(input) if input.target_instances.is_some() => FeatureLevel::BLUE_GREEN,
            Self::CreateDeploymentGroup(input)
                if input.blue_green_deployment_configuration.is_some()
                    || input
                        .deployment_style
                        .as_ref()
                        .is_some_and(|style| style.deployment_type == DeploymentType::BlueGreen) =>
            {
                FeatureLevel::BLUE_GREEN
            }
            _ => FeatureLevel::BASE,
        }
    }
}

#[cfg(test)]
mod tests;
