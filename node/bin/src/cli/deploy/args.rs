//! The flags of `fleetmesh deploy` verbs (clap), named as `aws deploy` names them.

use std::path::PathBuf;

use clap::{Args, Subcommand};

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
    /// Rename an application (its groups, revisions and deployments go with it).
    UpdateApplication {
        /// Its name now.
        #[arg(long)]
        application_name: String,
        /// Its new name.
        #[arg(long)]
        new_application_name: String,
    },
    /// Create a deployment group: which hosts (by tags), how (configuration), rollback.
    CreateDeploymentGroup(CreateDeploymentGroupArgs),
    /// Change a deployment group: what you name changes, the rest stays. A renamed group
    /// keeps its id, its hosts' install records and its deployments.
    UpdateDeploymentGroup {
        /// Application.
        #[arg(long)]
        application_name: String,
        /// The group's name now.
        #[arg(long)]
        current_deployment_group_name: String,
        /// A new name.
        #[arg(long)]
        new_deployment_group_name: Option<String>,
        /// The default configuration of its deployments.
        #[arg(long)]
        deployment_config_name: Option<String>,
        /// Replace its target tags: KEY=VALUE, KEY or =VALUE, repeated (OR'ed).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Where the group's events go, as AWS's JSON list:
        /// '[{"triggerName":"chat","triggerTargetArn":"https://hooks.example/x","triggerEvents":["DeploymentFailure"],"secret":"S"}]'.
        /// A webhook gets CodeDeploy's notification JSON, signed in X-Fleetmesh-Signature
        /// (sha256=HMAC of the body) with `secret`, or else the cluster's DIR/webhook-secret.
        /// `[]` removes them; a trigger kept by name keeps its place in the event stream.
        #[arg(long, value_name = "JSON")]
        trigger_configurations: Option<String>,
        /// Alarms that stop its deployments with ALARM_ACTIVE (and roll back with
        /// DEPLOYMENT_STOP_ON_ALARM in the rollback events), polled every 2 s while one runs:
        /// '{"enabled":true,"ignorePollAlarmFailure":false,"alarms":[{"name":"errors","prometheus":
        /// {"url":"http://prometheus:9090","query":"sum(rate(http_errors_total[1m]))","threshold":5,
        /// "comparisonOperator":"GreaterThanThreshold"}}]}'. An alarm given by name alone
        /// ({"name":"HighErrors"}) is a CloudWatch alarm, on in state ALARM.
        #[arg(long, value_name = "JSON")]
        alarm_configuration: Option<String>,
    },
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
        /// Server (default), Lambda or ECS.
        #[arg(long, value_parser = ["Server", "Lambda", "ECS"])]
        compute_platform: Option<String>,
        /// type=HOST_COUNT|FLEET_PERCENT,value=N, Server only (optional with
        /// --traffic-routing-config: one host at a time, OneAtATime's rule, by default).
        #[arg(long, value_name = "type=T,value=N", required_unless_present_any = ["traffic_routing_config", "compute_platform"])]
        minimum_healthy_hosts: Option<String>,
        /// Canary or linear waves, AWS's JSON, e.g.
        /// '{"type":"TimeBasedCanary","timeBasedCanary":{"canaryPercentage":10,"canaryIntervalSeconds":30}}'
        /// (canaryInterval/linearInterval in minutes, or …IntervalSeconds).
        #[arg(long, value_name = "JSON")]
        traffic_routing_config: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a deployment configuration.
    GetDeploymentConfig {
        /// Name.
        #[arg(long)]
        deployment_config_name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
    /// End a blue/green deployment's wait early: READY_WAIT (green is installed; move
    /// the traffic now) or TERMINATION_WAIT (traffic has moved; finish with blue now).
    ContinueDeployment {
        /// Deployment id.
        #[arg(long)]
        deployment_id: String,
        /// Which wait to end.
        #[arg(long, default_value = "READY_WAIT", value_parser = ["READY_WAIT", "TERMINATION_WAIT"])]
        deployment_wait_type: String,
    },
    /// Report a Lambda hook's outcome (what the hook function calls with the
    /// DeploymentId and LifecycleEventHookExecutionId it was invoked with); the
    /// deployment waits for it, and Failed fails the deployment.
    PutLifecycleEventHookExecutionStatus {
        /// Deployment id.
        #[arg(long)]
        deployment_id: String,
        /// The hook's execution id (also in get-deployment-target while it runs).
        #[arg(long)]
        lifecycle_event_hook_execution_id: String,
        /// The hook's outcome.
        #[arg(long, value_parser = ["Succeeded", "Failed"])]
        status: String,
    },
    /// Stop a deployment (optionally rolling back what it changed).
    StopDeployment {
        /// Deployment id.
        #[arg(long)]
        deployment_id: String,
        /// Roll back to the group's last successful revision. Without this flag or
        /// --no-auto-rollback, the deployment's autoRollbackConfiguration decides: it
        /// rolls back when it is enabled with the event DEPLOYMENT_STOP_ON_REQUEST.
        #[arg(long, visible_alias = "auto-rollback-enabled", conflicts_with = "no_auto_rollback")]
        auto_rollback: bool,
        /// Do not roll back, whatever the deployment's autoRollbackConfiguration says.
        #[arg(long, visible_alias = "no-auto-rollback-enabled")]
        no_auto_rollback: bool,
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
    /// Deployment configuration [default: CodeDeployDefault.OneAtATime for Server,
    /// CodeDeployDefault.LambdaAllAtOnce for Lambda].
    #[arg(long)]
    pub(crate) deployment_config_name: Option<String>,
    /// Roll back automatically when a deployment fails.
    #[arg(long)]
    pub(crate) auto_rollback: bool,
    /// AWS's autoRollbackConfiguration as JSON, for events besides failure:
    /// '{"enabled":true,"events":["DEPLOYMENT_FAILURE","DEPLOYMENT_STOP_ON_REQUEST"]}'
    /// (DEPLOYMENT_STOP_ON_REQUEST: a stop without --no-auto-rollback rolls back).
    #[arg(long, value_name = "JSON", conflicts_with = "auto_rollback")]
    pub(crate) auto_rollback_configuration: Option<String>,
    /// Where the group's events go, as AWS's JSON list:
    /// '[{"triggerName":"chat","triggerTargetArn":"https://hooks.example/x","triggerEvents":["DeploymentFailure"],"secret":"S"}]'.
    /// A webhook gets CodeDeploy's notification JSON, signed in X-Fleetmesh-Signature
    /// (sha256=HMAC of the body) with `secret`, or else the cluster's DIR/webhook-secret.
    #[arg(long, value_name = "JSON")]
    pub(crate) trigger_configurations: Option<String>,
    /// Alarms that stop its deployments with ALARM_ACTIVE (and roll back with
    /// DEPLOYMENT_STOP_ON_ALARM in the rollback events), polled every 2 s while one runs:
    /// '{"enabled":true,"ignorePollAlarmFailure":false,"alarms":[{"name":"errors","prometheus":
    /// {"url":"http://prometheus:9090","query":"sum(rate(http_errors_total[1m]))","threshold":5,
    /// "comparisonOperator":"GreaterThanThreshold"}}]}'. An alarm given by name alone
    /// ({"name":"HighErrors"}) is a CloudWatch alarm, on in state ALARM.
    #[arg(long, value_name = "JSON")]
    pub(crate) alarm_configuration: Option<String>,
    /// Do not give hosts that join later the group's last successful revision.
    #[arg(long)]
    pub(crate) no_update_outdated_instances: bool,
    /// AWS's deployment style, as shorthand
    /// `deploymentType=IN_PLACE,deploymentOption=WITH_TRAFFIC_CONTROL` or JSON. With
    /// traffic control every host leaves the routes of --load-balancer-info before
    /// ApplicationStop and rejoins them after ValidateService.
    #[arg(long, value_name = "STYLE")]
    pub(crate) deployment_style: Option<String>,
    /// AWS's load-balancer info as JSON; each target group names a route
    /// (`fleetmesh traffic create-route`): '{"targetGroupInfoList":[{"name":"web"}]}',
    /// or an ELBv2 target group by its ARN (hosts tagged aws:ip= or aws:instance-id=).
    /// An ECS group names its ELBv2 target groups and listeners instead:
    /// '{"targetGroupPairInfoList":[{"targetGroups":[{"name":"blue"},{"name":"green"}],
    /// "prodTrafficRoute":{"listenerArns":["arn:..."]},"testTrafficRoute":{"listenerArns":["arn:..."]}}]}'.
    #[arg(long, value_name = "JSON")]
    pub(crate) load_balancer_info: Option<String>,
    /// AWS's blue/green settings as JSON (with deploymentType=BLUE_GREEN), e.g.
    /// '{"deploymentReadyOption":{"actionOnTimeout":"STOP_DEPLOYMENT","waitTimeInMinutes":60},
    /// "terminateBlueInstancesOnDeploymentSuccess":{"action":"KEEP_ALIVE","terminationWaitTimeInMinutes":5}}'.
    /// fleetmesh also takes waitTimeInSeconds / terminationWaitTimeInSeconds.
    #[arg(long, value_name = "JSON")]
    pub(crate) blue_green_deployment_configuration: Option<String>,
    /// An IAM role (arn:aws:iam::ACCOUNT:role/NAME) the leader assumes through STS for
    /// this group's AWS calls (Lambda); without one they run with the leader's own
    /// credentials.
    #[arg(long, value_name = "ARN")]
    pub(crate) service_role_arn: Option<String>,
    /// An ECS group's service: serviceName=NAME,clusterName=CLUSTER (AWS's shorthand) or
    /// AWS's JSON list '[{"serviceName":"web","clusterName":"prod"}]'.
    #[arg(long, value_name = "SERVICE")]
    pub(crate) ecs_services: Option<String>,
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
    /// Revision id (from `push`), or for Lambda AWS's revision JSON with the AppSpec inline:
    /// '{"revisionType":"AppSpecContent","appSpecContent":{"content":"version: 0.0 ..."}}'
    /// (also "revisionType":"String" with "string":{"content":...}).
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
    /// Blue/green: the green fleet, AWS's targetInstances as JSON:
    /// '{"tagFilters":[{"Key":"fleet","Value":"green","Type":"KEY_AND_VALUE"}]}'. Default:
    /// the group's hosts that do not serve its routes now.
    #[arg(long, value_name = "JSON")]
    pub(crate) target_instances: Option<String>,
    /// Alarms for this deployment instead of its group's, as --alarm-configuration of
    /// create-deployment-group takes them ('{"enabled":false}' turns them off).
    #[arg(long, value_name = "JSON")]
    pub(crate) override_alarm_configuration: Option<String>,
    /// Follow it until it ends; exit non-zero unless it succeeded.
    #[arg(long, conflicts_with = "dry_run")]
    pub(crate) wait: bool,
    /// Print the waves and bakes the planner would run for the group as it is now
    /// (every host alive, every target succeeding); create nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}
