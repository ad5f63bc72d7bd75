//! Deployment configurations per compute platform, as the state machine applies them
//! below and from [`FeatureLevel::COMPUTE_PLATFORMS`].

use crate::command::{ApplyErrorKind, Command, Outcome};
use crate::features::FeatureLevel;
use crate::model::platform_configs::NO_MINIMUM;
use crate::model::resources::{ComputePlatform, MinimumHealthyHosts, MinimumHealthyHostsType};
use crate::model::traffic_routing::TrafficRoutingConfig;
use crate::tests::{at, deploy, setup};
use crate::ClusterState;

fn apply(state: &mut ClusterState, millis: u64, command: Command) -> Outcome {
    state.apply(&at(millis, vec![command])).outcomes.remove(0)
}

fn config(name: &str, compute_platform: ComputePlatform, minimum: MinimumHealthyHosts) -> Command {
    Command::CreateDeploymentConfig {
        name: name.into(),
        deployment_config_id: format!("id-{name}"),
        compute_platform,
        minimum_healthy_hosts: minimum,
        traffic_routing_config: (compute_platform != ComputePlatform::Server)
            .then_some(TrafficRoutingConfig::ALL_AT_ONCE),
    }
}

fn rejected(outcome: &Outcome, kind: ApplyErrorKind, expected: &str) {
    let Outcome::Rejected(error) = outcome else { panic!("{outcome:?} was accepted") };
    assert_eq!(error.kind, kind, "{error:?}");
    assert!(error.message.contains(expected), "{} lacks {expected:?}", error.message);
}

const HALF: MinimumHealthyHosts = MinimumHealthyHosts { kind: MinimumHealthyHostsType::FleetPercent, value: 50 };

#[test]
fn lambda_and_ecs_configs_are_checked_only_from_their_level() {
    // Below level 12 a Lambda config with a minimum-healthy rule applies as it always
    // did (entries already committed keep their meaning); from 12 it is refused and
    // changes nothing, and a proper one is accepted.
    let (mut state, _, _) = setup();
    assert_eq!(apply(&mut state, 2, config("old", ComputePlatform::Lambda, HALF)), Outcome::Done);
    assert!(state.deployment_config("CodeDeployDefault.LambdaAllAtOnce").is_none());

    assert_eq!(
        apply(&mut state, 3, Command::SetFeatureLevel { level: FeatureLevel::COMPUTE_PLATFORMS }),
        Outcome::Done
    );
    let before = state.deployment_configs.clone();
    rejected(
        &apply(&mut state, 4, config("new", ComputePlatform::Lambda, HALF)),
        ApplyErrorKind::Invalid,
        "only to the Server",
    );
    assert_eq!(state.deployment_configs, before);
    assert_eq!(apply(&mut state, 5, config("new", ComputePlatform::Ecs, NO_MINIMUM)), Outcome::Done);
    let predefined = state.deployment_config("CodeDeployDefault.ECSCanary10Percent15Minutes");
    assert_eq!(predefined.map(|config| config.compute_platform), Some(ComputePlatform::Ecs));
    rejected(
        &apply(&mut state, 6, config("CodeDeployDefault.LambdaAllAtOnce", ComputePlatform::Lambda, NO_MINIMUM)),
        ApplyErrorKind::Invalid,
        "reserved",
    );
}

#[test]
fn a_group_or_deployment_needs_a_config_of_its_platform() {
    // The Server application "app" with a Lambda config, as the group's default and as
    // a deployment's override: refused from level 12 with both platforms named.
    let (mut state, first, _) = setup();
    assert_eq!(
        apply(&mut state, 2, Command::SetFeatureLevel { level: FeatureLevel::COMPUTE_PLATFORMS }),
        Outcome::Done
    );
    let Command::CreateDeployment { mut spec, deployment_id } = deploy(&first, "d-PLATFORM1") else { unreachable!() };
    spec.deployment_config_name = Some("CodeDeployDefault.LambdaCanary10Percent5Minutes".into());
    let outcome = apply(&mut state, 3, Command::CreateDeployment { spec, deployment_id: deployment_id.clone() });
    rejected(
        &outcome,
        ApplyErrorKind::Invalid,
        "is for the Lambda compute platform; application app deploys to Server",
    );
    assert!(!state.deployments.contains_key(&deployment_id));

    let Some(existing) = state.deployment_group("app", "web").cloned() else { unreachable!() };
    let spec = crate::DeploymentGroupSpec {
        alarm_configuration: None,
        application_name: "app".into(),
        deployment_group_name: "api".into(),
        deployment_config_name: "CodeDeployDefault.ECSAllAtOnce".into(),
        target_selector: existing.target_selector,
        auto_rollback_configuration: existing.auto_rollback_configuration,
        update_outdated_instances: true,
        deployment_option: Default::default(),
        load_balancer_info: None,
        deployment_type: Default::default(),
        blue_green_deployment_configuration: None,
        service_role_arn: None,
        ecs_services: Vec::new(),
        trigger_configurations: Vec::new(),
    };
    let outcome = apply(&mut state, 4, Command::CreateDeploymentGroup { spec, deployment_group_id: "g2".into() });
    rejected(&outcome, ApplyErrorKind::Invalid, "is for the ECS compute platform");
    assert!(state.deployment_group("app", "api").is_none());
}

#[test]
fn a_service_role_must_be_an_iam_role_arn_and_needs_level_13() {
    let (mut state, _, _) = setup();
    let Some(existing) = state.deployment_group("app", "web").cloned() else { unreachable!() };
    let spec = |role: &str| crate::DeploymentGroupSpec {
        alarm_configuration: None,
        application_name: "app".into(),
        deployment_group_name: "roled".into(),
        deployment_config_name: existing.deployment_config_name.clone(),
        target_selector: existing.target_selector.clone(),
        auto_rollback_configuration: Default::default(),
        update_outdated_instances: true,
        deployment_option: Default::default(),
        load_balancer_info: None,
        deployment_type: Default::default(),
        blue_green_deployment_configuration: None,
        service_role_arn: Some(role.into()),
        ecs_services: Vec::new(),
        trigger_configurations: Vec::new(),
    };
    for bad in
        ["deployer", "arn:aws:iam::123456789012:user/deployer", "arn:aws:iam::123456789012:role/", "arn:aws:s3:::b"]
    {
        let outcome =
            apply(&mut state, 5, Command::CreateDeploymentGroup { spec: spec(bad), deployment_group_id: "g".into() });
        rejected(&outcome, ApplyErrorKind::Invalid, "is not an IAM role ARN");
    }
    let good = spec("arn:aws:iam::123456789012:role/ops/deployer");
    let command = Command::CreateDeploymentGroup { spec: good, deployment_group_id: "g".into() };
    assert_eq!(command.feature_level(), FeatureLevel::PLATFORM_DEPLOYMENTS);
    assert_eq!(apply(&mut state, 6, command), Outcome::Done);
    let group = state.deployment_group("app", "roled").map(|group| group.service_role_arn.clone());
    assert_eq!(group, Some(Some("arn:aws:iam::123456789012:role/ops/deployer".into())));
}
