//! `fleetmesh deploy ...`: verbs and flags as `aws deploy`, against the node API
//! (`POST /v1/deploy/<Operation>` with CodeDeploy-shaped JSON).
//!
//! `args.rs` holds the verbs' flags; this file runs them, one function per resource kind.

mod args;
mod blue_green;
mod lambda;
mod updates;

use std::process::ExitCode;

use fleetmesh_model::{
    ApplicationInput, AutoRollbackConfiguration, ComputePlatform, CreateApplicationInput, CreateApplicationOutput,
    CreateDeploymentConfigInput, CreateDeploymentConfigOutput, CreateDeploymentGroupInput, CreateDeploymentGroupOutput,
    CreateDeploymentInput, CreateDeploymentOutput, DeploymentConfigInfo, DeploymentConfigInput, DeploymentGroupInput,
    DeploymentInput, DeploymentStyle, Empty, FileExistsBehavior, GetApplicationOutput, GetDeploymentConfigOutput,
    GetDeploymentGroupOutput, GetDeploymentOutput, GetDeploymentTargetInput, GetDeploymentTargetOutput,
    GetRevisionDistributionOutput, ListAllInput, ListApplicationRevisionsOutput, ListApplicationsOutput,
    ListDeploymentConfigsOutput, ListDeploymentGroupsOutput, ListDeploymentTargetsOutput, ListDeploymentsInput,
    ListDeploymentsOutput, LoadBalancerInfo, MinimumHealthyHosts, MinimumHealthyHostsType, OnPremisesTagSet,
    OutdatedInstancesStrategy, PlanDeploymentOutput, StopDeploymentInput, StopDeploymentOutput, TagFilter,
    TagFilterType, TrafficRoutingConfig, TrafficRoutingType,
};
use fleetmesh_state::model::ids::{DeploymentId, RevisionId};
use serde::Serialize;

pub(crate) use self::args::{CreateDeploymentArgs, CreateDeploymentGroupArgs, DeployCommand, PrefetchArgs, PushArgs};
use super::client::ApiClient;
use blue_green::json_flag;

/// Prints an answer as `--json` shows it: the operation's output, pretty.
pub(crate) fn print_json<T: Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Prints `answer` as JSON when `json`, else the human line `human` gives.
fn print_answer<T: Serialize>(json: bool, answer: &T, human: impl FnOnce(&T)) {
    if json {
        print_json(answer)
    } else {
        human(answer)
    }
}

/// A `--revision` flag as a revision id, refused with the message the API gives.
///
/// # Errors
/// Not 64 hex digits.
pub(crate) fn parse_revision(text: &str) -> anyhow::Result<RevisionId> {
    text.parse().map_err(|_| anyhow::anyhow!("revision id {text:?} is not 64 hex digits"))
}

/// The input naming one application.
fn application(application_name: &str) -> ApplicationInput {
    ApplicationInput { application_name: application_name.to_string() }
}

/// The input naming one deployment group.
fn group(application_name: String, deployment_group_name: String) -> DeploymentGroupInput {
    DeploymentGroupInput { application_name, deployment_group_name }
}

/// The input naming one deployment.
pub(crate) fn deployment(deployment_id: &str) -> DeploymentInput {
    DeploymentInput { deployment_id: DeploymentId(deployment_id.to_string()) }
}

/// Runs one `fleetmesh deploy` verb: applications and groups here, the rest below.
///
/// # Errors
/// Bad flags or a failed API call.
pub(crate) fn run(client: &ApiClient, command: DeployCommand) -> anyhow::Result<ExitCode> {
    use DeployCommand as C;
    match command {
        C::CreateApplication { application_name, compute_platform, json } => {
            let input = CreateApplicationInput {
                application_name: application_name.clone(),
                compute_platform: ComputePlatform::parse(&compute_platform),
                tags: None,
            };
            let answer: CreateApplicationOutput = client.call("CreateApplication", &input)?;
            print_answer(json, &answer, |_| println!("created application {application_name}"));
        }
        C::GetApplication { application_name } => {
            print_json(&client.call::<_, GetApplicationOutput>("GetApplication", &application(&application_name))?);
        }
        C::ListApplications { json } => {
            let answer: ListApplicationsOutput =
                client.call_all("ListApplications", &ListAllInput::default(), "applications")?;
            print_answer(json, &answer, |answer| print_names(&answer.applications));
        }
        C::DeleteApplication { application_name } => {
            client.call::<_, Empty>("DeleteApplication", &application(&application_name))?;
            println!("deleted application {application_name}");
        }
        C::CreateDeploymentGroup(args) => create_deployment_group(client, args)?,
        C::GetDeploymentGroup { application_name, deployment_group_name } => {
            let input = group(application_name, deployment_group_name);
            print_json(&client.call::<_, GetDeploymentGroupOutput>("GetDeploymentGroup", &input)?);
        }
        C::ListDeploymentGroups { application_name, json } => {
            let answer: ListDeploymentGroupsOutput =
                client.call_all("ListDeploymentGroups", &application(&application_name), "deploymentGroups")?;
            print_answer(json, &answer, |answer| print_names(&answer.deployment_groups));
        }
        command @ (C::UpdateApplication { .. } | C::UpdateDeploymentGroup { .. }) => updates::run(client, command)?,
        C::DeleteDeploymentGroup { application_name, deployment_group_name } => {
            client
                .call::<_, Empty>("DeleteDeploymentGroup", &group(application_name, deployment_group_name.clone()))?;
            println!("deleted deployment group {deployment_group_name}");
        }
        other => return configs_and_revisions(client, other),
    }
    Ok(ExitCode::SUCCESS)
}

/// Deployment configurations and revisions.
fn configs_and_revisions(client: &ApiClient, command: DeployCommand) -> anyhow::Result<ExitCode> {
    use DeployCommand as C;
    match command {
        C::CreateDeploymentConfig {
            deployment_config_name,
            compute_platform,
            minimum_healthy_hosts,
            traffic_routing_config,
            json,
        } => {
            let input = CreateDeploymentConfigInput {
                deployment_config_name: deployment_config_name.clone(),
                minimum_healthy_hosts: minimum_healthy_hosts.as_deref().map(parse_minimum_healthy_hosts).transpose()?,
                compute_platform: compute_platform.as_deref().and_then(ComputePlatform::parse),
                traffic_routing_config: traffic_routing_config.as_deref().map(parse_traffic_routing).transpose()?,
            };
            let answer: CreateDeploymentConfigOutput = client.call("CreateDeploymentConfig", &input)?;
            print_answer(json, &answer, |_| println!("created deployment configuration {deployment_config_name}"));
        }
        C::GetDeploymentConfig { deployment_config_name, json } => {
            let input = DeploymentConfigInput { deployment_config_name };
            let answer: GetDeploymentConfigOutput = client.call("GetDeploymentConfig", &input)?;
            print_answer(json, &answer, |answer| print_deployment_config(&answer.deployment_config_info));
        }
        C::ListDeploymentConfigs { json } => {
            let answer: ListDeploymentConfigsOutput =
                client.call_all("ListDeploymentConfigs", &ListAllInput::default(), "deploymentConfigsList")?;
            print_answer(json, &answer, |answer| print_names(&answer.deployment_configs_list));
        }
        C::DeleteDeploymentConfig { deployment_config_name } => {
            let input = DeploymentConfigInput { deployment_config_name: deployment_config_name.clone() };
            client.call::<_, Empty>("DeleteDeploymentConfig", &input)?;
            println!("deleted deployment configuration {deployment_config_name}");
        }
        C::Push(args) => crate::cli::push::run(client, &args)?,
        C::ListApplicationRevisions { application_name, json } => {
            let answer: ListApplicationRevisionsOutput =
                client.call_all("ListApplicationRevisions", &application(&application_name), "revisions")?;
            print_answer(json, &answer, crate::cli::watch::print_revisions);
        }
        C::Prefetch(args) => return crate::cli::push::prefetch(client, &args),
        C::GetRevisionDistribution { revision, json } => {
            let answer: GetRevisionDistributionOutput =
                client.get_as(&format!("/v1/revisions/{revision}/distribution"))?;
            print_answer(json, &answer, crate::cli::watch::print_distribution);
        }
        other => return deployments(client, other),
    }
    Ok(ExitCode::SUCCESS)
}

/// Deployments and their targets.
fn deployments(client: &ApiClient, command: DeployCommand) -> anyhow::Result<ExitCode> {
    use DeployCommand as C;
    match command {
        C::CreateDeployment(args) => return create_deployment(client, args),
        C::GetDeployment { deployment_id, wait, json } => {
            if wait {
                return crate::cli::watch::wait_for_deployment(client, &deployment_id, json);
            }
            let answer: GetDeploymentOutput = client.call("GetDeployment", &deployment(&deployment_id))?;
            print_answer(json, &answer, crate::cli::watch::print_deployment);
        }
        C::ListDeployments { application_name, deployment_group_name, json } => {
            let input = ListDeploymentsInput { application_name, deployment_group_name, ..Default::default() };
            let answer: ListDeploymentsOutput = client.call_all("ListDeployments", &input, "deployments")?;
            if json {
                print_json(&answer)
            } else {
                crate::cli::watch::print_deployments(client, &answer.deployments)?
            }
        }
        C::ListDeploymentTargets { deployment_id, json } => {
            let answer: ListDeploymentTargetsOutput =
                client.call_all("ListDeploymentTargets", &deployment(&deployment_id), "targetIds")?;
            if json {
                print_json(&answer)
            } else {
                crate::cli::watch::print_targets(client, &deployment_id)?
            }
        }
        C::GetDeploymentTarget { deployment_id, target_id, json } => {
            let input = GetDeploymentTargetInput { deployment_id: DeploymentId(deployment_id), target_id };
            let answer: GetDeploymentTargetOutput = client.call("GetDeploymentTarget", &input)?;
            print_answer(json, &answer, crate::cli::watch::print_target);
        }
        C::ContinueDeployment { deployment_id, deployment_wait_type } => {
            blue_green::continue_deployment(client, deployment_id, &deployment_wait_type)?;
        }
        C::PutLifecycleEventHookExecutionStatus { deployment_id, lifecycle_event_hook_execution_id, status } => {
            lambda::put_hook_status(client, deployment_id, lifecycle_event_hook_execution_id, &status)?;
        }
        C::StopDeployment { deployment_id, auto_rollback, no_auto_rollback, json } => {
            let input = StopDeploymentInput {
                deployment_id: DeploymentId(deployment_id),
                auto_rollback_enabled: (auto_rollback || no_auto_rollback).then_some(auto_rollback),
            };
            let answer: StopDeploymentOutput = client.call("StopDeployment", &input)?;
            print_answer(json, &answer, |answer| println!("{}", answer.status_message));
        }
        other => anyhow::bail!("internal error: {other:?} is not a deployment verb"),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_names(names: &[String]) {
    for name in names {
        println!("{name}");
    }
}

/// Parses `type=HOST_COUNT,value=2`.
///
/// # Errors
/// A clear message for anything else.
pub(crate) fn parse_minimum_healthy_hosts(text: &str) -> anyhow::Result<MinimumHealthyHosts> {
    let mut kind = None;
    let mut value = None;
    for part in text.split(',') {
        match part.split_once('=') {
            Some(("type", found)) => kind = Some(found.to_string()),
            Some(("value", found)) => {
                value =
                    Some(found.parse::<u32>().map_err(|_| {
                        anyhow::anyhow!("--minimum-healthy-hosts value {found:?} is not a whole number")
                    })?)
            }
            _ => anyhow::bail!("--minimum-healthy-hosts must look like type=HOST_COUNT,value=2 (got {text:?})"),
        }
    }
    match (kind.as_deref(), value) {
        (Some("HOST_COUNT"), Some(value)) => {
            Ok(MinimumHealthyHosts { kind: MinimumHealthyHostsType::HostCount, value })
        }
        (Some("FLEET_PERCENT"), Some(value)) => {
            Ok(MinimumHealthyHosts { kind: MinimumHealthyHostsType::FleetPercent, value })
        }
        (Some(kind), Some(_)) => {
            anyhow::bail!("--minimum-healthy-hosts type must be HOST_COUNT or FLEET_PERCENT, got {kind:?}")
        }
        _ => anyhow::bail!("--minimum-healthy-hosts needs both type= and value= (e.g. type=FLEET_PERCENT,value=50)"),
    }
}

/// Parses `--traffic-routing-config`: AWS's JSON shape (the node checks its rules).
///
/// # Errors
/// Not JSON of that shape, naming what is wrong.
pub(crate) fn parse_traffic_routing(text: &str) -> anyhow::Result<TrafficRoutingConfig> {
    let example = r#"'{"type":"TimeBasedCanary","timeBasedCanary":{"canaryPercentage":10,"canaryInterval":5}}'"#;
    let given: serde_json::Value = serde_json::from_str(text)
        .map_err(|error| anyhow::anyhow!("--traffic-routing-config is not JSON ({error}); e.g. {example}"))?;
    let config: TrafficRoutingConfig = serde_json::from_value(given.clone()).map_err(|error| {
        anyhow::anyhow!("--traffic-routing-config is not a trafficRoutingConfig ({error}); e.g. {example}")
    })?;
    // The typed reading drops members it does not know; the node would refuse them, so
    // refuse them here rather than send a config other than the one written.
    let kept = serde_json::to_value(config)?;
    if let Some(member) = unknown_member(&given, &kept, "") {
        anyhow::bail!("--traffic-routing-config has an unknown member {member}; e.g. {example}");
    }
    Ok(config)
}

/// The path of the first member of `given` that `kept` does not have.
fn unknown_member(given: &serde_json::Value, kept: &serde_json::Value, path: &str) -> Option<String> {
    let (serde_json::Value::Object(given), serde_json::Value::Object(kept)) = (given, kept) else { return None };
    given.iter().find_map(|(key, value)| {
        let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        match kept.get(key) {
            None => Some(here),
            Some(kept) => unknown_member(value, kept, &here),
        }
    })
}

/// `get-deployment-config` without `--json`.
fn print_deployment_config(info: &DeploymentConfigInfo) {
    println!("name              {}", info.deployment_config_name);
    println!("id                {}", info.deployment_config_id);
    let platform = serde_json::to_value(info.compute_platform).unwrap_or_default();
    println!("compute platform  {}", platform.as_str().unwrap_or("?"));
    if let Some(rule) = &info.minimum_healthy_hosts {
        let kind = serde_json::to_value(rule.kind).unwrap_or_default();
        println!("minimum healthy   {} {}", kind.as_str().unwrap_or("?"), rule.value);
    }
    if let Some(routing) = &info.traffic_routing_config {
        println!("traffic routing   {}", describe_traffic_routing(routing));
    }
}

/// One line for a routing config: `TimeBasedCanary 10 %, then the rest after 30 s`.
fn describe_traffic_routing(routing: &TrafficRoutingConfig) -> String {
    let interval = |minutes: Option<u32>, seconds: Option<u32>| match (minutes, seconds) {
        (Some(minutes), _) => format!("{minutes} min"),
        (None, Some(seconds)) => format!("{seconds} s"),
        (None, None) => "?".to_string(),
    };
    match (routing.kind, routing.time_based_canary, routing.time_based_linear) {
        (TrafficRoutingType::TimeBasedCanary, Some(canary), _) => format!(
            "TimeBasedCanary {} %, then the rest after {}",
            canary.canary_percentage,
            interval(canary.canary_interval, canary.canary_interval_seconds)
        ),
        (TrafficRoutingType::TimeBasedLinear, _, Some(linear)) => format!(
            "TimeBasedLinear {} % every {}",
            linear.linear_percentage,
            interval(linear.linear_interval, linear.linear_interval_seconds)
        ),
        (kind, _, _) => format!("{kind:?}"),
    }
}

/// A `--tag` argument as a CodeDeploy tag filter.
fn tag_filter(text: &str) -> TagFilter {
    match text.split_once('=') {
        Some(("", value)) => {
            TagFilter { key: None, value: Some(value.to_string()), filter_type: TagFilterType::ValueOnly }
        }
        Some((key, value)) => TagFilter {
            key: Some(key.to_string()),
            value: Some(value.to_string()),
            filter_type: TagFilterType::KeyAndValue,
        },
        None => TagFilter { key: Some(text.to_string()), value: None, filter_type: TagFilterType::KeyOnly },
    }
}

/// `--deployment-style`: JSON, or AWS's shorthand `deploymentType=…,deploymentOption=…`.
fn parse_deployment_style(text: &str) -> anyhow::Result<DeploymentStyle> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|error| anyhow::anyhow!("--deployment-style: {error}"));
    }
    let mut members = serde_json::Map::new();
    for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            anyhow::bail!("--deployment-style: {pair:?} is not KEY=VALUE (deploymentType=IN_PLACE,deploymentOption=WITH_TRAFFIC_CONTROL)");
        };
        members.insert(key.trim().to_string(), serde_json::Value::String(value.trim().to_string()));
    }
    serde_json::from_value(serde_json::Value::Object(members)).map_err(|error| {
        anyhow::anyhow!(
            "--deployment-style: {error}; deploymentType is IN_PLACE or BLUE_GREEN, deploymentOption \
             WITH_TRAFFIC_CONTROL or WITHOUT_TRAFFIC_CONTROL"
        )
    })
}

/// Rollback on failure when `enabled`, no rollback otherwise.
fn rollback(enabled: bool) -> AutoRollbackConfiguration {
    if enabled {
        AutoRollbackConfiguration::on_failure()
    } else {
        AutoRollbackConfiguration { enabled: false, events: Vec::new() }
    }
}

fn create_deployment_group(client: &ApiClient, args: CreateDeploymentGroupArgs) -> anyhow::Result<()> {
    let tag_set: Vec<Vec<TagFilter>> = args
        .tag_sets
        .iter()
        .map(|group| group.split(',').filter(|tag| !tag.is_empty()).map(tag_filter).collect())
        .collect();
    let input = CreateDeploymentGroupInput {
        application_name: args.application_name,
        deployment_group_name: args.deployment_group_name.clone(),
        deployment_config_name: args.deployment_config_name,
        on_premises_instance_tag_filters: Some(args.tags.iter().map(|tag| tag_filter(tag)).collect()),
        on_premises_tag_set: Some(OnPremisesTagSet { on_premises_tag_set_list: tag_set }),
        auto_rollback_configuration: match json_flag(
            "--auto-rollback-configuration",
            args.auto_rollback_configuration.as_deref(),
            r#"'{"enabled":true,"events":["DEPLOYMENT_FAILURE","DEPLOYMENT_STOP_ON_REQUEST"]}'"#,
        )? {
            Some(configuration) => Some(configuration),
            None => Some(rollback(args.auto_rollback)),
        },
        outdated_instances_strategy: Some(if args.no_update_outdated_instances {
            OutdatedInstancesStrategy::Ignore
        } else {
            OutdatedInstancesStrategy::Update
        }),
        deployment_style: args.deployment_style.as_deref().map(parse_deployment_style).transpose()?,
        load_balancer_info: json_flag::<LoadBalancerInfo>(
            "--load-balancer-info",
            args.load_balancer_info.as_deref(),
            r#"'{"targetGroupInfoList":[{"name":"ROUTE"}]}'"#,
        )?,
        blue_green_deployment_configuration: json_flag(
            "--blue-green-deployment-configuration",
            args.blue_green_deployment_configuration.as_deref(),
            r#"'{"deploymentReadyOption":{"actionOnTimeout":"CONTINUE_DEPLOYMENT"}}'"#,
        )?,
        service_role_arn: args.service_role_arn,
        ecs_services: args.ecs_services.as_deref().map(lambda::parse_ecs_services).transpose()?,
        tags: None,
        trigger_configurations: updates::triggers_flag(args.trigger_configurations.as_deref())?,
        alarm_configuration: updates::alarms_flag("--alarm-configuration", args.alarm_configuration.as_deref())?,
    };
    let answer: CreateDeploymentGroupOutput = client.call("CreateDeploymentGroup", &input)?;
    print_answer(args.json, &answer, |answer| {
        println!("created deployment group {} ({})", args.deployment_group_name, answer.deployment_group_id)
    });
    Ok(())
}

fn create_deployment(client: &ApiClient, args: CreateDeploymentArgs) -> anyhow::Result<ExitCode> {
    let rollback = if args.auto_rollback || args.no_auto_rollback { Some(rollback(args.auto_rollback)) } else { None };
    let input = CreateDeploymentInput {
        application_name: args.application_name,
        deployment_group_name: args.deployment_group_name,
        revision: lambda::revision_flag(&args.revision)?,
        deployment_config_name: args.deployment_config_name,
        description: Some(args.description),
        ignore_application_stop_failures: args.ignore_application_stop_failures,
        file_exists_behavior: FileExistsBehavior::parse(&args.file_exists_behavior),
        auto_rollback_configuration: rollback,
        target_instances: json_flag(
            "--target-instances",
            args.target_instances.as_deref(),
            r#"'{"tagFilters":[{"Key":"fleet","Value":"green","Type":"KEY_AND_VALUE"}]}'"#,
        )?,
        override_alarm_configuration: updates::alarms_flag(
            "--override-alarm-configuration",
            args.override_alarm_configuration.as_deref(),
        )?,
    };
    if args.dry_run {
        let answer: PlanDeploymentOutput = client.call("PlanDeployment", &input)?;
        print_answer(args.json, &answer, print_plan);
        return Ok(if answer.outcome == "Succeeded" { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let answer: CreateDeploymentOutput = client.call("CreateDeployment", &input)?;
    let deployment_id = answer.deployment_id.to_string();
    if args.wait {
        if !args.json {
            println!("created deployment {deployment_id}");
        }
        return crate::cli::watch::wait_for_deployment(client, &deployment_id, args.json);
    }
    print_answer(args.json, &answer, |_| println!("{deployment_id}"));
    Ok(ExitCode::SUCCESS)
}

/// `create-deployment --dry-run` without `--json`: one line per wave and bake.
fn print_plan(plan: &PlanDeploymentOutput) {
    println!("deployment configuration {}", plan.deployment_config_name);
    for step in &plan.steps {
        match (step.wave, &step.target_ids, step.bake_seconds, &step.traffic) {
            (Some(wave), Some(targets), _, _) => {
                let noun = if targets.len() == 1 { "host" } else { "hosts" };
                println!("wave {wave}: {} {noun} ({})", targets.len(), targets.join(", "));
            }
            (_, _, Some(seconds), _) => println!("bake {seconds} s"),
            (_, _, _, Some(words)) => println!("traffic: {words}"),
            _ => {}
        }
    }
    match &plan.error_information {
        Some(error) => println!("would end {}: {}", plan.outcome, error.message),
        None => println!("would end {}", plan.outcome),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_healthy_hosts_flag() {
        assert_eq!(
            parse_minimum_healthy_hosts("type=HOST_COUNT,value=2").expect("ok"),
            MinimumHealthyHosts { kind: MinimumHealthyHostsType::HostCount, value: 2 }
        );
        assert!(parse_minimum_healthy_hosts("type=BOGUS,value=2").is_err());
        assert!(parse_minimum_healthy_hosts("type=HOST_COUNT").is_err());
        assert!(parse_minimum_healthy_hosts("value=x,type=HOST_COUNT").is_err());
    }

    #[test]
    fn traffic_routing_flag_takes_aws_json() {
        // A canary in seconds and a linear config in minutes: asserts both parse to the
        // AWS shape and read back in one line; a shorthand string is refused saying how.
        let canary = parse_traffic_routing(
            r#"{"type":"TimeBasedCanary","timeBasedCanary":{"canaryPercentage":10,"canaryIntervalSeconds":30}}"#,
        )
        .expect("ok");
        assert_eq!(describe_traffic_routing(&canary), "TimeBasedCanary 10 %, then the rest after 30 s");
        let linear = parse_traffic_routing(
            r#"{"type":"TimeBasedLinear","timeBasedLinear":{"linearPercentage":20,"linearInterval":2}}"#,
        )
        .expect("ok");
        assert_eq!(describe_traffic_routing(&linear), "TimeBasedLinear 20 % every 2 min");
        let error = parse_traffic_routing("type=TimeBasedCanary").expect_err("not JSON").to_string();
        assert!(error.contains("--traffic-routing-config") && error.contains("canaryPercentage"), "{error}");
        let error = parse_traffic_routing(
            r#"{"type":"TimeBasedCanary","timeBasedCanary":{"canaryPercentage":10,"canaryInterval":1,"bake":1}}"#,
        )
        .expect_err("unknown member")
        .to_string();
        assert!(error.contains("unknown member timeBasedCanary.bake"), "{error}");
    }

    #[test]
    fn tag_flags_map_to_filter_types() {
        assert_eq!(tag_filter("role=web").filter_type, TagFilterType::KeyAndValue);
        assert_eq!(tag_filter("canary").filter_type, TagFilterType::KeyOnly);
        assert_eq!(tag_filter("=prod").filter_type, TagFilterType::ValueOnly);
        assert_eq!(tag_filter("=prod").value.as_deref(), Some("prod"));
        assert_eq!(tag_filter("role=web").key.as_deref(), Some("role"));
    }
}
