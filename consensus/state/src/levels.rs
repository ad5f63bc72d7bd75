//! Which feature level each command needs (see [`crate::features`]).

use crate::command::Command;
use crate::features::FeatureLevel;
use crate::model::alarms::AlarmConfiguration;
use crate::model::members::{JoinTokenRecord, MemberSpec};
use crate::model::resources::{ComputePlatform, DeploymentType};
use crate::model::triggers::is_sns_topic_arn;

impl Command {
    /// The feature level that introduced this command: a leader proposes it only when
    /// the cluster runs at that level or above.
    pub fn feature_level(&self) -> FeatureLevel {
        match self {
            Self::SetDeploymentRetention(_) => FeatureLevel::RETENTION,
            command if command.uses_aws_watch() => FeatureLevel::RETENTION,
            command if command.uses_alarms() => FeatureLevel::ALARMS,
            Self::AdvanceTriggerCursor(_) => FeatureLevel::TRIGGERS,
            Self::CreateDeploymentGroup { spec, .. } | Self::UpdateDeploymentGroup { spec, .. }
                if !spec.trigger_configurations.is_empty() =>
            {
                FeatureLevel::TRIGGERS
            }
            Self::SetFeatureLevel { .. } => FeatureLevel::VERSIONED_ENTRIES,
            Self::Bootstrap { first: spec, .. }
            | Self::AddMember { spec }
            | Self::AdmitMember { spec, .. }
            | Self::UpdateMember { spec, .. }
                if spec.instance_name.is_some() =>
            {
                FeatureLevel::AWS_PROTOCOL
            }
            Self::Bootstrap { first: spec, .. }
            | Self::AddMember { spec }
            | Self::AdmitMember { spec, .. }
            | Self::UpdateMember { spec, .. }
                if spec.advertise.is_some() =>
            {
                FeatureLevel::TRAFFIC_ROUTES
            }
            Self::AdmitMember { .. } | Self::DeleteJoinToken { .. } => FeatureLevel::JOIN_TOKEN_LIFECYCLE,
            Self::SetApiToken { .. } => FeatureLevel::HARDENING,
            Self::CreateAccessKey { .. }
            | Self::DeleteAccessKey { .. }
            | Self::RegisterInstance { .. }
            | Self::DeregisterInstance { .. }
            | Self::TagInstances { .. }
            | Self::TagResource { .. }
            | Self::UpdateApplication { .. }
            | Self::UpdateDeploymentGroup { .. } => FeatureLevel::AWS_PROTOCOL,
            Self::SealCa { .. } => FeatureLevel::SEALED_CA,
            Self::CreateRoute { .. } | Self::DeleteRoute { .. } | Self::SetRouteTargets { .. } => {
                FeatureLevel::TRAFFIC_ROUTES
            }
            Self::SetTargetTraffic { .. } => FeatureLevel::TRAFFIC_CONTROL,
            Self::AdvanceShift { step, .. } if step.is_ecs() => FeatureLevel::ECS_DEPLOYMENTS,
            Self::CreateDeployment { spec, .. } if spec.shift.as_ref().is_some_and(|shift| shift.ecs().is_some()) => {
                FeatureLevel::ECS_DEPLOYMENTS
            }
            Self::CreateDeploymentGroup { spec, .. }
                if spec.is_ecs()
                    || spec.load_balancer_info.as_ref().is_some_and(|info| !info.elbv2_target_groups().is_empty()) =>
            {
                FeatureLevel::ECS_DEPLOYMENTS
            }
            Self::AdvanceShift { .. } | Self::PutLifecycleEventHookExecutionStatus { .. } => {
                FeatureLevel::PLATFORM_DEPLOYMENTS
            }
            Self::CreateDeployment { spec, .. } if spec.shift.is_some() => FeatureLevel::PLATFORM_DEPLOYMENTS,
            Self::CreateDeploymentGroup { spec, .. } if spec.service_role_arn.is_some() => {
                FeatureLevel::PLATFORM_DEPLOYMENTS
            }
            Self::RegisterRevision { record } if record.source.is_some() => FeatureLevel::AWS_PROTOCOL,
            Self::RegisterRevision { record } if record.app_spec.is_some() => FeatureLevel::PLATFORM_DEPLOYMENTS,
            Self::AdvanceBlueGreen { step, .. } if step.is_stepped() => FeatureLevel::BLUE_GREEN_STEPS,
            Self::AdvanceBlueGreen { .. } | Self::ContinueDeployment { .. } => FeatureLevel::BLUE_GREEN,
            Self::CreateDeploymentGroup { spec, .. } if spec.deployment_type == DeploymentType::BlueGreen => {
                FeatureLevel::BLUE_GREEN
            }
            Self::CreateDeployment { spec, .. } if spec.target_instances.is_some() => FeatureLevel::BLUE_GREEN,
            Self::CreateDeploymentGroup { spec, .. } if spec.uses_traffic_control() => FeatureLevel::TRAFFIC_CONTROL,
            Self::Bootstrap { info, .. } if info.ca.is_sealed() => FeatureLevel::SEALED_CA,
            Self::CreateDeploymentConfig { compute_platform, .. } if *compute_platform != ComputePlatform::Server => {
                FeatureLevel::COMPUTE_PLATFORMS
            }
            Self::CreateDeploymentConfig { traffic_routing_config: Some(_), .. } => FeatureLevel::TRAFFIC_CONTROL,
            Self::AddJoinToken { record } if record.max_uses.is_some() => FeatureLevel::JOIN_TOKEN_LIFECYCLE,
            _ => FeatureLevel::BASE,
        }
    }

    /// True for the commands that name SNS trigger targets or CloudWatch alarms, which a
    /// leader of a release below [`FeatureLevel::RETENTION`] would not deliver or poll.
    fn uses_aws_watch(&self) -> bool {
        let cloudwatch = |configuration: Option<&AlarmConfiguration>| {
            configuration
                .is_some_and(|configuration| configuration.alarms.iter().any(|alarm| alarm.prometheus.is_none()))
        };
        match self {
            Self::CreateDeploymentGroup { spec, .. } | Self::UpdateDeploymentGroup { spec, .. } => {
                spec.trigger_configurations.iter().any(|trigger| is_sns_topic_arn(&trigger.trigger_target_arn))
                    || cloudwatch(spec.alarm_configuration.as_ref())
            }
            Self::CreateDeployment { spec, .. } => cloudwatch(spec.alarm_configuration.as_ref()),
            _ => false,
        }
    }

    /// True for the commands that need [`FeatureLevel::ALARMS`].
    fn uses_alarms(&self) -> bool {
        match self {
            Self::StopOnAlarm { .. } => true,
            Self::CreateDeploymentGroup { spec, .. } | Self::UpdateDeploymentGroup { spec, .. } => {
                spec.alarm_configuration.is_some()
            }
            Self::CreateDeployment { spec, .. } => spec.alarm_configuration.is_some(),
            _ => false,
        }
    }

    /// The command that adds a node admitted with `token` while the cluster runs at
    /// `level`: [`Command::AdmitMember`], which counts the join against the token, from
    /// [`FeatureLevel::JOIN_TOKEN_LIFECYCLE`] on; below it [`Command::AddMember`], which
    /// every release knows (joins are not counted then, and no token has a use limit).
    /// The advertised address is recorded from [`FeatureLevel::TRAFFIC_ROUTES`] on.
    pub fn admit(spec: MemberSpec, token: &JoinTokenRecord, level: FeatureLevel) -> Self {
        let spec = spec.for_level(level);
        if level >= FeatureLevel::JOIN_TOKEN_LIFECYCLE {
            Self::AdmitMember { spec, token_id: token.id() }
        } else {
            Self::AddMember { spec }
        }
    }
}
