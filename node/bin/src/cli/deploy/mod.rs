//! `fleetmesh deploy ...`: verbs and flags as `aws deploy`, against the node API
//! (`POST /v1/deploy/<Operation>` with CodeDeploy-shaped JSON).
//!
//! `args.rs` holds the verbs' flags; this file runs them, one function per resource kind.

mod args;

use std::process::ExitCode;

use serde_json::{json, Value};

pub(crate) use self::args::{CreateDeploymentArgs, CreateDeploymentGroupArgs, DeployCommand, PrefetchArgs, PushArgs};
use super::client::ApiClient;

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

fn op(client: &ApiClient, operation: &str, body: Value) -> anyhow::Result<Value> {
    Ok(client.post(&format!("/v1/deploy/{operation}"), &body)?)
}

/// Runs a `deploy` verb.
///
/// # Errors
/// Bad flags or a failed API call.
/// Runs one `fleetmesh deploy` verb: applications and groups here, the rest below.
pub(crate) fn run(client: &ApiClient, command: DeployCommand) -> anyhow::Result<ExitCode> {
    use DeployCommand as C;
    match command {
        C::CreateApplication { application_name, compute_platform, json } => {
            let answer = op(
                client,
                "CreateApplication",
                json!({"applicationName": application_name, "computePlatform": compute_platform}),
            )?;
            if json {
                print_json(&answer)
            } else {
                println!("created application {application_name}")
            }
        }
        C::GetApplication { application_name } => {
            print_json(&op(client, "GetApplication", json!({"applicationName": application_name}))?);
        }
        C::ListApplications { json } => {
            let answer = op(client, "ListApplications", json!({}))?;
            if json {
                print_json(&answer)
            } else {
                print_names(&answer["applications"])
            }
        }
        C::DeleteApplication { application_name } => {
            op(client, "DeleteApplication", json!({"applicationName": application_name}))?;
            println!("deleted application {application_name}");
        }
        C::CreateDeploymentGroup(args) => create_deployment_group(client, args)?,
        C::GetDeploymentGroup { application_name, deployment_group_name } => print_json(&op(
            client,
            "GetDeploymentGroup",
            json!({"applicationName": application_name, "deploymentGroupName": deployment_group_name}),
        )?),
        C::ListDeploymentGroups { application_name, json } => {
            let answer = op(client, "ListDeploymentGroups", json!({"applicationName": application_name}))?;
            if json {
                print_json(&answer)
            } else {
                print_names(&answer["deploymentGroups"])
            }
        }
        C::DeleteDeploymentGroup { application_name, deployment_group_name } => {
            op(
                client,
                "DeleteDeploymentGroup",
                json!({"applicationName": application_name, "deploymentGroupName": deployment_group_name}),
            )?;
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
        C::CreateDeploymentConfig { deployment_config_name, minimum_healthy_hosts, json } => {
            let (kind, value) = parse_minimum_healthy_hosts(&minimum_healthy_hosts)?;
            let answer = op(
                client,
                "CreateDeploymentConfig",
                json!({"deploymentConfigName": deployment_config_name, "minimumHealthyHosts": {"type": kind, "value": value}}),
            )?;
            if json {
                print_json(&answer)
            } else {
                println!("created deployment configuration {deployment_config_name}")
            }
        }
        C::GetDeploymentConfig { deployment_config_name } => {
            print_json(&op(client, "GetDeploymentConfig", json!({"deploymentConfigName": deployment_config_name}))?);
        }
        C::ListDeploymentConfigs { json } => {
            let answer = op(client, "ListDeploymentConfigs", json!({}))?;
            if json {
                print_json(&answer)
            } else {
                print_names(&answer["deploymentConfigsList"])
            }
        }
        C::DeleteDeploymentConfig { deployment_config_name } => {
            op(client, "DeleteDeploymentConfig", json!({"deploymentConfigName": deployment_config_name}))?;
            println!("deleted deployment configuration {deployment_config_name}");
        }
        C::Push(args) => crate::cli::push::run(client, &args)?,
        C::ListApplicationRevisions { application_name, json } => {
            let answer = op(client, "ListApplicationRevisions", json!({"applicationName": application_name}))?;
            if json {
                print_json(&answer)
            } else {
                crate::cli::watch::print_revisions(&answer)
            }
        }
        C::Prefetch(args) => return crate::cli::push::prefetch(client, &args),
        C::GetRevisionDistribution { revision, json } => {
            let answer = client.get(&format!("/v1/revisions/{revision}/distribution"))?;
            if json {
                print_json(&answer)
            } else {
                crate::cli::watch::print_distribution(&answer)
            }
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
            let answer = op(client, "GetDeployment", json!({"deploymentId": deployment_id}))?;
            if json {
                print_json(&answer)
            } else {
                crate::cli::watch::print_deployment(&answer)
            }
        }
        C::ListDeployments { application_name, deployment_group_name, json } => {
            let answer = op(
                client,
                "ListDeployments",
                json!({"applicationName": application_name, "deploymentGroupName": deployment_group_name}),
            )?;
            if json {
                print_json(&answer)
            } else {
                crate::cli::watch::print_deployments(client, &answer["deployments"])?
            }
        }
        C::ListDeploymentTargets { deployment_id, json } => {
            let answer = op(client, "ListDeploymentTargets", json!({"deploymentId": deployment_id}))?;
            if json {
                print_json(&answer)
            } else {
                crate::cli::watch::print_targets(client, &deployment_id)?
            }
        }
        C::GetDeploymentTarget { deployment_id, target_id, json } => {
            let answer =
                op(client, "GetDeploymentTarget", json!({"deploymentId": deployment_id, "targetId": target_id}))?;
            if json {
                print_json(&answer)
            } else {
                crate::cli::watch::print_target(&answer)
            }
        }
        C::StopDeployment { deployment_id, auto_rollback, json } => {
            let answer = op(
                client,
                "StopDeployment",
                json!({"deploymentId": deployment_id, "autoRollbackEnabled": auto_rollback}),
            )?;
            if json {
                print_json(&answer)
            } else {
                println!("{}", answer["statusMessage"].as_str().unwrap_or("stopped"));
            }
        }
        other => anyhow::bail!("internal error: {other:?} is not a deployment verb"),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_names(list: &Value) {
    for item in list.as_array().into_iter().flatten() {
        println!("{}", item.as_str().map(ToString::to_string).unwrap_or_else(|| item.to_string()));
    }
}

/// Parses `type=HOST_COUNT,value=2`.
///
/// # Errors
/// A clear message for anything else.
pub(crate) fn parse_minimum_healthy_hosts(text: &str) -> anyhow::Result<(String, u64)> {
    let mut kind = None;
    let mut value = None;
    for part in text.split(',') {
        match part.split_once('=') {
            Some(("type", found)) => kind = Some(found.to_string()),
            Some(("value", found)) => {
                value =
                    Some(found.parse::<u64>().map_err(|_| {
                        anyhow::anyhow!("--minimum-healthy-hosts value {found:?} is not a whole number")
                    })?)
            }
            _ => anyhow::bail!("--minimum-healthy-hosts must look like type=HOST_COUNT,value=2 (got {text:?})"),
        }
    }
    match (kind, value) {
        (Some(kind), Some(value)) if kind == "HOST_COUNT" || kind == "FLEET_PERCENT" => Ok((kind, value)),
        (Some(kind), Some(_)) => {
            anyhow::bail!("--minimum-healthy-hosts type must be HOST_COUNT or FLEET_PERCENT, got {kind:?}")
        }
        _ => anyhow::bail!("--minimum-healthy-hosts needs both type= and value= (e.g. type=FLEET_PERCENT,value=50)"),
    }
}

/// A `--tag` argument as a CodeDeploy tag filter.
fn tag_filter(text: &str) -> Value {
    match text.split_once('=') {
        Some(("", value)) => json!({"Value": value, "Type": "VALUE_ONLY"}),
        Some((key, value)) => json!({"Key": key, "Value": value, "Type": "KEY_AND_VALUE"}),
        None => json!({"Key": text, "Type": "KEY_ONLY"}),
    }
}

fn create_deployment_group(client: &ApiClient, args: CreateDeploymentGroupArgs) -> anyhow::Result<()> {
    let filters: Vec<Value> = args.tags.iter().map(|tag| tag_filter(tag)).collect();
    let tag_set: Vec<Vec<Value>> = args
        .tag_sets
        .iter()
        .map(|group| group.split(',').filter(|tag| !tag.is_empty()).map(tag_filter).collect())
        .collect();
    let events = if args.auto_rollback { json!(["DEPLOYMENT_FAILURE"]) } else { json!([]) };
    let answer = op(
        client,
        "CreateDeploymentGroup",
        json!({
            "applicationName": args.application_name,
            "deploymentGroupName": args.deployment_group_name,
            "deploymentConfigName": args.deployment_config_name,
            "onPremisesInstanceTagFilters": filters,
            "onPremisesTagSet": {"onPremisesTagSetList": tag_set},
            "autoRollbackConfiguration": {"enabled": args.auto_rollback, "events": events},
            "outdatedInstancesStrategy": if args.no_update_outdated_instances { "IGNORE" } else { "UPDATE" },
        }),
    )?;
    if args.json {
        print_json(&answer);
    } else {
        println!(
            "created deployment group {} ({})",
            args.deployment_group_name,
            answer["deploymentGroupId"].as_str().unwrap_or("-")
        );
    }
    Ok(())
}

fn create_deployment(client: &ApiClient, args: CreateDeploymentArgs) -> anyhow::Result<ExitCode> {
    let rollback = if args.auto_rollback {
        json!({"enabled": true, "events": ["DEPLOYMENT_FAILURE"]})
    } else if args.no_auto_rollback {
        json!({"enabled": false, "events": []})
    } else {
        Value::Null
    };
    let answer = op(
        client,
        "CreateDeployment",
        json!({
            "applicationName": args.application_name,
            "deploymentGroupName": args.deployment_group_name,
            "revision": {"revisionType": "fleetmesh", "revisionId": args.revision},
            "deploymentConfigName": args.deployment_config_name,
            "description": args.description,
            "ignoreApplicationStopFailures": args.ignore_application_stop_failures,
            "fileExistsBehavior": args.file_exists_behavior,
            "autoRollbackConfiguration": rollback,
        }),
    )?;
    let deployment_id = answer["deploymentId"].as_str().unwrap_or_default().to_string();
    if args.wait {
        if !args.json {
            println!("created deployment {deployment_id}");
        }
        return crate::cli::watch::wait_for_deployment(client, &deployment_id, args.json);
    }
    if args.json {
        print_json(&answer)
    } else {
        println!("{deployment_id}")
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_healthy_hosts_flag() {
        assert_eq!(parse_minimum_healthy_hosts("type=HOST_COUNT,value=2").expect("ok"), ("HOST_COUNT".into(), 2));
        assert!(parse_minimum_healthy_hosts("type=BOGUS,value=2").is_err());
        assert!(parse_minimum_healthy_hosts("type=HOST_COUNT").is_err());
        assert!(parse_minimum_healthy_hosts("value=x,type=HOST_COUNT").is_err());
    }

    #[test]
    fn tag_flags_map_to_filter_types() {
        assert_eq!(tag_filter("role=web")["Type"], "KEY_AND_VALUE");
        assert_eq!(tag_filter("canary")["Type"], "KEY_ONLY");
        assert_eq!(tag_filter("=prod")["Type"], "VALUE_ONLY");
    }
}
