//! Commands: the only way the replicated cluster state changes. Each carries what `apply`
//! needs to be deterministic: ids and timestamps are chosen by the leader, not `apply`.

use serde::{Deserialize, Serialize};

pub use crate::apply_error::{ApplyError, ApplyErrorKind};
use crate::features::FeatureLevel;
pub use crate::model::blue_green::{BlueGreenStep, DeploymentWaitType};
use crate::model::deployment::{DeploymentCreator, LifecycleEventStatus};
use crate::model::ids::{DeploymentId, RevisionId, UnixMillis};
use crate::model::members::{AccessKeyRecord, Actor, ApiTokenKind, ClusterInfo, JoinTokenRecord, MemberSpec};
use crate::model::resources::{
    AutoRollbackConfiguration, ComputePlatform, FileExistsBehavior, MinimumHealthyHosts, TargetSelector,
};
use crate::model::revision::RevisionRecord;
use crate::model::routes::{RouteSpec, RouteTarget};
use crate::model::traffic_routing::TrafficRoutingConfig;
use crate::NodeId;

mod reports;
pub use reports::{Finish, TargetReport};

pub use crate::group_spec::DeploymentGroupSpec;

/// What a client asks for when it creates a deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// Application.
    pub application_name: String,
    /// Group.
    pub deployment_group_name: String,
    /// Revision to install.
    pub revision_id: RevisionId,
    /// Overrides the group's configuration.
    pub deployment_config_name: Option<String>,
    /// Free text.
    pub description: String,
    /// Continue past ApplicationStop failures (§2.5).
    pub ignore_application_stop_failures: bool,
    /// Existing-file behaviour for Install.
    pub file_exists_behavior: FileExistsBehavior,
    /// Overrides the group's rollback settings.
    pub auto_rollback_configuration: Option<AutoRollbackConfiguration>,
    /// Who asks.
    pub creator: DeploymentCreator,
    /// Explicit targets (rollback, late joiners); `None` selects by the group's tags.
    pub targets: Option<Vec<NodeId>>,
    /// Blue/green: the green fleet (AWS's `targetInstances` tag filters); `None` takes
    /// the group's hosts that do not serve its routes ([`FeatureLevel::BLUE_GREEN`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_instances: Option<TargetSelector>,
    /// What a Lambda deployment's AppSpec moves ([`FeatureLevel::PLATFORM_DEPLOYMENTS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<crate::model::shift::ShiftSpec>,
    /// `overrideAlarmConfiguration` ([`FeatureLevel::ALARMS`]); none: the group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_configuration: Option<crate::model::alarms::AlarmConfiguration>,
}

/// A change to the cluster state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// The first entry of a new cluster: CA, tokens, and member 1.
    Bootstrap {
        /// Cluster facts.
        info: ClusterInfo,
        /// The first node.
        first: MemberSpec,
    },
    /// A node joined; `apply` assigns the next id.
    AddMember {
        /// Where it is and its tags.
        spec: MemberSpec,
    },
    /// A member restarted with other addresses or tags.
    UpdateMember {
        /// Member.
        id: NodeId,
        /// New facts.
        spec: MemberSpec,
    },
    /// A member leaves for good; its id is never reused.
    RemoveMember {
        /// Member.
        id: NodeId,
    },
    /// Accept another join token ([`FeatureLevel::JOIN_TOKEN_LIFECYCLE`] with `max_uses`).
    AddJoinToken {
        /// Its record.
        record: JoinTokenRecord,
    },
    /// A node joined with the join token `token_id`: `apply` refuses it when the token
    /// is gone, expired or used up, else counts the use and adds the member as
    /// [`Command::AddMember`] does ([`FeatureLevel::JOIN_TOKEN_LIFECYCLE`]).
    AdmitMember {
        /// Where it is and its tags.
        spec: MemberSpec,
        /// The token it presented ([`JoinTokenRecord::id`]).
        token_id: String,
    },
    /// Stop accepting a join token ([`FeatureLevel::JOIN_TOKEN_LIFECYCLE`]).
    DeleteJoinToken {
        /// The token ([`JoinTokenRecord::id`]).
        token_id: String,
    },
    /// Replace the hash of one of the API's tokens ([`FeatureLevel::HARDENING`]): a
    /// rotated admin token, or a new read-only or metrics token.
    SetApiToken {
        /// Which token.
        kind: ApiTokenKind,
        /// BLAKE3 of the new token, hex.
        hash: String,
    },
    /// Add an access key of the AWS protocol ([`FeatureLevel::AWS_PROTOCOL`]): its secret
    /// sealed like the CA key. Refused when the id exists.
    CreateAccessKey {
        /// The key, its secret sealed.
        record: AccessKeyRecord,
    },
    /// Revoke an access key ([`FeatureLevel::AWS_PROTOCOL`]).
    DeleteAccessKey {
        /// Its id (`AKIA…`).
        access_key_id: String,
    },
    /// Replace the CA's clear private key by its sealed form ([`FeatureLevel::SEALED_CA`]):
    /// the leader proposes it once every voter holds the seal key. Refused when sealed.
    SealCa {
        /// The sealed key (`fleetmesh_transport::seal`).
        sealed_key: String,
    },
    /// `create-application`.
    CreateApplication {
        /// Name.
        name: String,
        /// Random id.
        application_id: String,
        /// Platform.
        compute_platform: ComputePlatform,
    },
    /// `delete-application` (and its groups and revisions).
    DeleteApplication {
        /// Name.
        name: String,
    },
    /// `create-deployment-group`.
    CreateDeploymentGroup {
        /// What was asked.
        spec: DeploymentGroupSpec,
        /// Random id.
        deployment_group_id: String,
    },
    /// `UpdateApplication`: rename ([`FeatureLevel::AWS_PROTOCOL`]).
    UpdateApplication {
        /// Its name now.
        application_name: String,
        /// Its new name.
        new_application_name: String,
    },
    /// `UpdateDeploymentGroup` ([`FeatureLevel::AWS_PROTOCOL`]): the group's whole spec,
    /// the API having merged what the request changes into what the group was.
    UpdateDeploymentGroup {
        /// Its name now (the spec's name is the new one).
        current_deployment_group_name: String,
        /// What it becomes.
        spec: DeploymentGroupSpec,
    },
    /// A trigger delivered every event up to `delivered_through`
    /// ([`FeatureLevel::TRIGGERS`]); the leader commits it after a delivery.
    AdvanceTriggerCursor(crate::model::triggers::TriggerCursor),
    /// `delete-deployment-group`.
    DeleteDeploymentGroup {
        /// Application.
        application_name: String,
        /// Group.
        deployment_group_name: String,
    },
    /// `create-deployment-config`.
    CreateDeploymentConfig {
        /// Name.
        name: String,
        /// Random id.
        deployment_config_id: String,
        /// Platform.
        compute_platform: ComputePlatform,
        /// The rule.
        minimum_healthy_hosts: MinimumHealthyHosts,
        /// Canary or linear steps ([`FeatureLevel::TRAFFIC_CONTROL`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        traffic_routing_config: Option<TrafficRoutingConfig>,
    },
    /// `delete-deployment-config`.
    DeleteDeploymentConfig {
        /// Name.
        name: String,
    },
    /// `push`: a revision's manifest, whose chunks are held by its seeds.
    RegisterRevision {
        /// The record.
        record: Box<RevisionRecord>,
    },
    /// A node now holds every chunk of a revision (it can seed it).
    RecordRevisionHolder {
        /// Revision.
        revision_id: RevisionId,
        /// Node.
        node: NodeId,
    },
    /// `prefetch`: these nodes should fetch this revision ahead of a deployment.
    RequestPrefetch {
        /// Revision.
        revision_id: RevisionId,
        /// Nodes.
        targets: Vec<NodeId>,
    },
    /// `create-deployment`.
    CreateDeployment {
        /// What was asked.
        spec: DeploymentSpec,
        /// Chosen by the leader.
        deployment_id: DeploymentId,
    },
    /// The rollout engine starts a deployment and its first wave.
    StartTargets {
        /// Deployment.
        deployment_id: DeploymentId,
        /// Targets to start now (one wave).
        targets: Vec<NodeId>,
    },
    /// Agents' progress, batched by the leader.
    ReportTargets {
        /// Reports.
        reports: Vec<TargetReport>,
    },
    /// The rollout engine gives up on targets whose hosts are lost.
    FailTargets {
        /// Deployment.
        deployment_id: DeploymentId,
        /// Host and reason.
        targets: Vec<(NodeId, String)>,
    },
    /// The rollout engine ends a deployment.
    FinishDeployment(Finish),
    /// `stop-deployment`.
    StopDeployment {
        /// Deployment.
        deployment_id: DeploymentId,
        /// Id for the rollback deployment when `--auto-rollback` was given.
        rollback_id: Option<DeploymentId>,
    },
    /// The leader stops a deployment whose alarm fired, or whose alarms could not be
    /// read ([`FeatureLevel::ALARMS`]): as a stop, with `ALARM_ACTIVE` and `message`.
    StopOnAlarm {
        /// Deployment.
        deployment_id: DeploymentId,
        /// Id for the rollback deployment when `DEPLOYMENT_STOP_ON_ALARM` is set.
        rollback_id: Option<DeploymentId>,
        /// Which alarm, and what it said.
        message: String,
    },
    /// `set-deployment-retention` ([`FeatureLevel::RETENTION`]): how many finished
    /// deployments the state keeps, and for how long; applied at once.
    SetDeploymentRetention(crate::model::retention::DeploymentRetention),
    /// The leader raises the cluster's feature level: every voter runs a release that
    /// knows it (see [`crate::features`]). Refused unless it raises.
    SetFeatureLevel {
        /// The new level.
        level: FeatureLevel,
    },
    /// `create-route` ([`FeatureLevel::TRAFFIC_ROUTES`]): a route without targets.
    CreateRoute {
        /// What was asked.
        spec: RouteSpec,
    },
    /// `delete-route` ([`FeatureLevel::TRAFFIC_ROUTES`]).
    DeleteRoute {
        /// Route.
        route_name: String,
    },
    /// Replace a route's targets: `set-route-targets` ([`FeatureLevel::TRAFFIC_ROUTES`]).
    SetRouteTargets {
        /// Route.
        route_name: String,
        /// The new targets, all of them.
        targets: Vec<RouteTarget>,
    },
    /// A target of an in-place deployment with traffic control leaves its deployment's
    /// routes (`BlockTraffic`: draining, weight kept) or rejoins them (`AllowTraffic`:
    /// serving, at its old weight or [`crate::model::routes::ROUTE_WEIGHT_DEFAULT`]);
    /// [`FeatureLevel::TRAFFIC_CONTROL`]. Allowing is refused unless the target's
    /// `ValidateService` succeeded.
    SetTargetTraffic {
        /// Deployment.
        deployment_id: DeploymentId,
        /// The target host.
        target_id: NodeId,
        /// True to allow, false to block.
        allow: bool,
    },
    /// The rollout engine moves a blue/green deployment on ([`FeatureLevel::BLUE_GREEN`]).
    AdvanceBlueGreen {
        /// Deployment.
        deployment_id: DeploymentId,
        /// The step.
        step: BlueGreenStep,
    },
    /// The rollout engine moves a Lambda deployment on ([`FeatureLevel::PLATFORM_DEPLOYMENTS`]).
    AdvanceShift {
        /// Deployment.
        deployment_id: DeploymentId,
        /// The step.
        step: crate::model::shift::ShiftStep,
    },
    /// A hook function's outcome ([`FeatureLevel::PLATFORM_DEPLOYMENTS`]).
    PutLifecycleEventHookExecutionStatus {
        /// Deployment.
        deployment_id: DeploymentId,
        /// `lifecycleEventHookExecutionId`.
        execution_id: String,
        /// `Succeeded` or `Failed`.
        status: LifecycleEventStatus,
    },
    /// `continue-deployment` ([`FeatureLevel::BLUE_GREEN`]): ends a blue/green wait early.
    ContinueDeployment {
        /// Deployment.
        deployment_id: DeploymentId,
        /// Which wait.
        wait_type: DeploymentWaitType,
    },
    /// `RegisterOnPremisesInstance` ([`FeatureLevel::AWS_PROTOCOL`]): a name a node
    /// started with `--instance-name` takes. Refused while the name is registered.
    RegisterInstance {
        /// The name.
        instance_name: String,
        /// An IAM session ARN, kept and shown.
        iam_session_arn: Option<String>,
        /// An IAM user ARN, kept and shown.
        iam_user_arn: Option<String>,
    },
    /// `DeregisterOnPremisesInstance` ([`FeatureLevel::AWS_PROTOCOL`]): no deployment
    /// selects its node any more.
    DeregisterInstance {
        /// The name.
        instance_name: String,
    },
    /// `AddTagsToOnPremisesInstances` and `RemoveTagsFromOnPremisesInstances`
    /// ([`FeatureLevel::AWS_PROTOCOL`]): every instance named gets `add` and loses the
    /// tags of `remove` (a tag removed by key and value, or by key when its value is
    /// empty); the nodes holding them change tags with them. All or nothing.
    TagInstances {
        /// The instances, each registered.
        instance_names: Vec<String>,
        /// Tags to add (replacing a tag of the same key).
        add: Vec<crate::model::instances::Tag>,
        /// Tags to remove.
        remove: Vec<crate::model::instances::Tag>,
    },
    /// `TagResource` and `UntagResource` ([`FeatureLevel::AWS_PROTOCOL`]): an
    /// application's or group's tags get `add` (replacing tags of the same keys) and lose
    /// the keys of `remove`.
    TagResource {
        /// The application or group.
        resource: crate::model::instances::TaggedResource,
        /// Tags to add.
        add: Vec<crate::model::instances::Tag>,
        /// Keys to remove.
        remove: Vec<String>,
    },
}

/// Commands with the leader's timestamp and the feature level they need: one Raft entry.
///
/// The encoding is versioned by `level`, the highest [`Command::feature_level`] among the
/// commands, written before them: a release that does not know that level refuses the
/// entry with an error that says so ("upgrade this node") instead of failing on an
/// unknown command. Entries of the first release carry no level and read as
/// [`FeatureLevel::BASE`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Proposal {
    /// When the leader proposed it.
    pub at: UnixMillis,
    /// The highest feature level among the commands ([`Proposal::new`] computes it).
    pub level: FeatureLevel,
    /// The commands, applied in order; each succeeds or fails on its own.
    pub commands: Vec<Command>,
    /// The API caller the commands were proposed for ([`FeatureLevel::AUDIT`]); `None`
    /// for the leader's own work (rollouts, membership, rollbacks). What the commands
    /// create or change records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<Actor>,
}

impl Proposal {
    /// A proposal of `commands` at `at`, with the level they need.
    pub fn new(at: UnixMillis, commands: Vec<Command>) -> Self {
        let level = commands.iter().map(Command::feature_level).max().unwrap_or_default();
        Self { at, level, commands, by: None }
    }

    /// The same proposal, made for `by` (raises its level to [`FeatureLevel::AUDIT`]).
    #[must_use]
    pub fn made_by(mut self, by: Actor) -> Self {
        self.level = self.level.max(FeatureLevel::AUDIT);
        self.by = Some(by);
        self
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("Proposal", &["at", "level", "commands", "by"], ProposalVisitor)
    }
}

/// Reads a [`Proposal`], refusing it before its commands when its level is unknown here.
struct ProposalVisitor;

impl<'de> serde::de::Visitor<'de> for ProposalVisitor {
    type Value = Proposal;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a proposal: {at, level, commands, by}")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Proposal, A::Error> {
        use serde::de::Error;
        let (mut at, mut level, mut commands, mut by) = (None, FeatureLevel::BASE, None, None);
        // Bounded by the input: one pass over the map's keys.
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "at" => at = Some(map.next_value()?),
                "level" => level = map.next_value()?,
                "commands" if !level.is_known() => {
                    return Err(A::Error::custom(format!(
                        "this entry needs feature level {level}, and this release of fleetmesh knows up to {}: \
                         upgrade this node",
                        FeatureLevel::CURRENT
                    )))
                }
                "commands" => commands = Some(map.next_value()?),
                "by" => by = map.next_value()?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let at = at.ok_or_else(|| A::Error::missing_field("at"))?;
        let commands = commands.ok_or_else(|| A::Error::missing_field("commands"))?;
        Ok(Proposal { at, level, commands, by })
    }
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "proposal of {} command(s) at {}", self.commands.len(), self.at.0)
    }
}

/// What one command produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done; nothing to return.
    Done,
    /// A member was added with this id.
    MemberAdded(NodeId),
    /// The command changed nothing.
    Rejected(ApplyError),
}

/// The response to a proposal: one outcome per command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalResponse {
    /// In command order. Empty for Raft's own entries (blank, membership).
    pub outcomes: Vec<Outcome>,
}
