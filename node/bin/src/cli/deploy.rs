//! `fleetmesh deploy ...`: verbs and flags as `aws deploy`, against the node API
//! (`POST /v1/deploy/<Operation>` with CodeDeploy-shaped JSON).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::ApiClient;

/// `fleetmesh deploy` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum DeployCommand {
    /// Create an application.
    CreateApplication {
        /// Name (1–100 of [A-Za-z0-9._+=,@-]).
        #[arg(long)]
        application_name: String,
        /// Server (hosts); Lambda and ECS are recorded but not deployable yet.
        #[arg(long, default_value = "Server", value_parser = ["Server", "Lambda", "ECS"])]
        compute_platform: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show an application.
    GetApplication {
        /// Name.
        #[arg(long)]
        application_name: String,
    },
    /// List applications.
    ListApplications {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an application with its deployment groups and revisions.
    DeleteApplication {
        /// Name.
        #[arg(long)]
        application_name: String,
    },
    /// Create a deployment group: which hosts (by tags), how (configuration), rollback.
    CreateDeploymentGroup(CreateDeploymentGroupArgs),
    /// Show a deployment group.
    GetDeploymentGroup {
        /// Application.
        #[arg(long)]
        application_name: String,
        /// Group.
        #[arg(long)]
        deployment_group_name: String,
    },
    /// List an application's deployment groups.
    ListDeploymentGroups {
        /// Application.
        #[arg(long)]
        application_name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a deployment group (nothing is uninstalled from its hosts).
    DeleteDeploymentGroup {
        /// Application.
        #[arg(long)]
        application_name: String,
        /// Group.
        #[arg(long)]
        deployment_group_name: String,
    },
    /// Create a custom deployment configuration.
    CreateDeploymentConfig {
        /// Name (not starting with CodeDeployDefault.).
        #[arg(long)]
        deployment_config_name: String,
        /// type=HOST_COUNT|FLEET_PERCENT,value=N
        #[arg(long, value_name = "type=T,value=N")]
        minimum_healthy_hosts: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a deployment configuration.
    GetDeploymentConfig {
        /// Name.
        #[arg(long)]
        deployment_config_name: String,
    },
    /// List deployment configurations (predefined and custom).
    ListDeploymentConfigs {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a custom deployment configuration.
    DeleteDeploymentConfig {
        /// Name.
        #[arg(long)]
        deployment_config_name: String,
    },
    /// Chunk a bundle (directory, .tar, .tar.gz/.tgz, .zip) and register it as a revision.
    Push(PushArgs),
    /// List an application's revisions.
    ListApplicationRevisions {
        /// Application.
        #[arg(long)]
        application_name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Spread a revision to hosts before deploying it.
    Prefetch(PrefetchArgs),
    /// Show how much of a revision each node holds.
    GetRevisionDistribution {
        /// Revision id.
        #[arg(long)]
        revision: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deploy a revision to a deployment group.
    CreateDeployment(CreateDeploymentArgs),
    /// Show a deployment.
    GetDeployment {
        /// Deployment id.
        #[arg(long)]
        deployment_id: String,
        /// Follow it until it ends; exit non-zero unless it succeeded.
        #[arg(long)]
        wait: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List deployments, newest first.
    ListDeployments {
        /// Only this application's.
        #[arg(long)]
        application_name: Option<String>,
        /// Only this group's.
        #[arg(long)]
        deployment_group_name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a deployment's targets and their status.
    ListDeploymentTargets {
        /// Deployment id.
        #[arg(long)]
        deployment_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one target's lifecycle events with diagnostics.
    GetDeploymentTarget {
        /// Deployment id.
        #[arg(long)]
        deployment_id: String,
        /// Target (node id).
        #[arg(long)]
        target_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a deployment (optionally rolling back what it changed).
    StopDeployment {
        /// Deployment id.
        #[arg(long)]
        deployment_id: String,
        /// Roll back to the group's last successful revision.
        #[arg(long)]
        auto_rollback: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `create-deployment-group` flags.
#[derive(Debug, Args)]
pub(crate) struct CreateDeploymentGroupArgs {
    /// Application.
    #[arg(long)]
    pub(crate) application_name: String,
    /// Group name.
    #[arg(long)]
    pub(crate) deployment_group_name: String,
    /// Target hosts with this tag: KEY=VALUE, KEY (key only) or =VALUE (value only). Filters are OR'ed.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub(crate) tags: Vec<String>,
    /// A tag group "K=V,K2=V2" (OR inside the group); hosts must match every group (AND). Up to 3.
    #[arg(long = "tag-set", value_name = "K=V,...", conflicts_with = "tags")]
    pub(crate) tag_sets: Vec<String>,
    /// Deployment configuration.
    #[arg(long, default_value = "CodeDeployDefault.OneAtATime")]
    pub(crate) deployment_config_name: String,
    /// Roll back automatically when a deployment fails.
    #[arg(long)]
    pub(crate) auto_rollback: bool,
    /// Do not give hosts that join later the group's last successful revision.
    #[arg(long)]
    pub(crate) no_update_outdated_instances: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `push` flags.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// Application.
    #[arg(long)]
    pub(crate) application_name: String,
    /// Bundle: a directory, .tar, .tar.gz/.tgz or .zip with appspec.yml at its root.
    #[arg(long)]
    pub(crate) source: PathBuf,
    /// Description.
    #[arg(long, default_value = "")]
    pub(crate) description: String,
    /// Print the revision record as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `prefetch` flags.
#[derive(Debug, Args)]
pub(crate) struct PrefetchArgs {
    /// Revision id.
    #[arg(long)]
    pub(crate) revision: String,
    /// Spread to this group's hosts.
    #[arg(long, required_unless_present = "all_nodes")]
    pub(crate) deployment_group_name: Option<String>,
    /// Spread to every node.
    #[arg(long, conflicts_with = "deployment_group_name")]
    pub(crate) all_nodes: bool,
    /// Wait until every target holds it (progress bar on a terminal).
    #[arg(long)]
    pub(crate) wait: bool,
}

/// `create-deployment` flags.
#[derive(Debug, Args)]
pub(crate) struct CreateDeploymentArgs {
    /// Application.
    #[arg(long)]
    pub(crate) application_name: String,
    /// Group.
    #[arg(long)]
    pub(crate) deployment_group_name: String,
    /// Revision id (from `push`).
    #[arg(long)]
    pub(crate) revision: String,
    /// Overrides the group's configuration.
    #[arg(long)]
    pub(crate) deployment_config_name: Option<String>,
    /// Description.
    #[arg(long, default_value = "")]
    pub(crate) description: String,
    /// Continue when ApplicationStop (of the previous revision) fails.
    #[arg(long)]
    pub(crate) ignore_application_stop_failures: bool,
    /// DISALLOW, OVERWRITE or RETAIN (the appspec's setting wins).
    #[arg(long, default_value = "DISALLOW", value_parser = ["DISALLOW", "OVERWRITE", "RETAIN"])]
    pub(crate) file_exists_behavior: String,
    /// Roll back automatically if it fails (overrides the group).
    #[arg(long, conflicts_with = "no_auto_rollback")]
    pub(crate) auto_rollback: bool,
    /// Never roll back automatically (overrides the group).
    #[arg(long)]
    pub(crate) no_auto_rollback: bool,
    /// Follow it until it ends; exit non-zero unless it succeeded.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

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
                print_names(&answer["deployments"])
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
