//! ECS task sets of a service under the `CODE_DEPLOY` deployment controller: the
//! replacement (green) task set an ECS deployment creates, makes primary, and the
//! original one it deletes (`codedeploy.md` §2.7).

use std::future::Future;

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, LaunchType, LoadBalancer, NetworkConfiguration,
};

use crate::error::{AwsError, AwsErrorKind};

/// What a replacement task set runs: the AppSpec's `TargetService` properties and the
/// group's target group for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSetSpec {
    /// Task definition ARN.
    pub task_definition: String,
    /// The container the target group sends to.
    pub container_name: String,
    /// Its port.
    pub container_port: u16,
    /// The target group (the pair's one not serving production now).
    pub target_group_arn: String,
    /// Fargate platform version; `None` is AWS's `LATEST`.
    pub platform_version: Option<String>,
    /// `awsvpc` networking; `None` leaves it to the service's.
    pub network: Option<VpcNetwork>,
    /// Capacity providers `(name, base, weight)`; empty runs on Fargate.
    pub capacity_providers: Vec<(String, u32, u32)>,
    /// `externalId`: how the deployment that creates it finds it again (its id).
    pub external_id: Option<String>,
}

/// `awsvpcConfiguration`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcNetwork {
    /// Subnet ids, at least one.
    pub subnets: Vec<String>,
    /// Security group ids.
    pub security_groups: Vec<String>,
    /// `ENABLED` when true, `DISABLED` when false, the default when `None`.
    pub assign_public_ip: Option<bool>,
}

/// A task set as ECS reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSetInfo {
    /// `ecs-svc/…`.
    pub id: String,
    /// Its ARN.
    pub arn: String,
    /// `PRIMARY`, `ACTIVE` or `DRAINING`.
    pub status: String,
    /// What it runs.
    pub task_definition: String,
    /// `externalId`, empty when none was given.
    pub external_id: String,
}

/// The ECS calls of an ECS deployment. Implemented by [`SdkEcs`] over the AWS SDK; the
/// simulator implements it over a simulated AWS.
pub trait EcsTraffic: Send + Sync {
    /// `CreateTaskSet` at AWS's default scale (100 % of the desired count): the
    /// replacement task set.
    fn create_task_set(
        &self,
        cluster: &str,
        service: &str,
        spec: &TaskSetSpec,
    ) -> impl Future<Output = Result<TaskSetInfo, AwsError>> + Send;

    /// `UpdateServicePrimaryTaskSet`: the replacement becomes the service's primary.
    /// `task_set` is its ARN (AWS takes the id too; moto only matches the ARN).
    fn set_primary_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// `DeleteTaskSet`: removes a task set (the original after success, the replacement
    /// in a rollback), by ARN.
    fn delete_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// `DescribeServices`: the service's task sets (what a new leader reads to resume).
    fn task_sets(
        &self,
        cluster: &str,
        service: &str,
    ) -> impl Future<Output = Result<Vec<TaskSetInfo>, AwsError>> + Send;
}

/// [`EcsTraffic`] over the AWS SDK for Rust.
#[derive(Clone, Debug)]
pub struct SdkEcs {
    client: aws_sdk_ecs::Client,
}

impl SdkEcs {
    /// A client for `config` ([`crate::AwsSettings::load`]).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self { client: aws_sdk_ecs::Client::new(config) }
    }
}

fn info(task_set: aws_sdk_ecs::types::TaskSet) -> TaskSetInfo {
    TaskSetInfo {
        id: task_set.id.unwrap_or_default(),
        arn: task_set.task_set_arn.unwrap_or_default(),
        status: task_set.status.unwrap_or_default(),
        task_definition: task_set.task_definition.unwrap_or_default(),
        external_id: task_set.external_id.unwrap_or_default(),
    }
}

/// A `CreateTaskSet` parameter the SDK's builder refused (a required member missing).
fn invalid(error: impl std::fmt::Display) -> AwsError {
    AwsError {
        operation: "CreateTaskSet",
        code: "InvalidParameterException".to_string(),
        message: error.to_string(),
        kind: AwsErrorKind::Permanent,
    }
}

fn network(network: &VpcNetwork) -> Result<NetworkConfiguration, AwsError> {
    let public = network.assign_public_ip.map(|on| if on { AssignPublicIp::Enabled } else { AssignPublicIp::Disabled });
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(network.subnets.clone()))
        .set_security_groups(Some(network.security_groups.clone()))
        .set_assign_public_ip(public)
        .build()
        .map_err(invalid)?;
    Ok(NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
}

impl EcsTraffic for SdkEcs {
    async fn create_task_set(&self, cluster: &str, service: &str, spec: &TaskSetSpec) -> Result<TaskSetInfo, AwsError> {
        let balancer = LoadBalancer::builder()
            .target_group_arn(&spec.target_group_arn)
            .container_name(&spec.container_name)
            .container_port(i32::from(spec.container_port))
            .build();
        let mut request = (self.client.create_task_set().cluster(cluster).service(service))
            .task_definition(&spec.task_definition)
            // No `scale`: AWS's default is 100 % of the service's desired count, what a
            // replacement needs (moto also fails to place tasks when it is given).
            .load_balancers(balancer)
            .set_platform_version(spec.platform_version.clone())
            .set_external_id(spec.external_id.clone())
            .set_network_configuration(spec.network.as_ref().map(network).transpose()?);
        if spec.capacity_providers.is_empty() {
            request = request.launch_type(LaunchType::Fargate);
        }
        for (name, base, weight) in &spec.capacity_providers {
            let item = CapacityProviderStrategyItem::builder()
                .capacity_provider(name)
                .base(i32::try_from(*base).unwrap_or(i32::MAX))
                .weight(i32::try_from(*weight).unwrap_or(i32::MAX))
                .build()
                .map_err(invalid)?;
            request = request.capacity_provider_strategy(item);
        }
        let output = request.send().await.map_err(|error| AwsError::from_sdk("CreateTaskSet", error))?;
        output.task_set.map(info).ok_or_else(|| AwsError {
            operation: "CreateTaskSet",
            code: "NoTaskSet".to_string(),
            message: "the answer named no task set".to_string(),
            kind: AwsErrorKind::Retryable,
        })
    }

    async fn set_primary_task_set(&self, cluster: &str, service: &str, task_set: &str) -> Result<(), AwsError> {
        let request = self.client.update_service_primary_task_set().cluster(cluster).service(service);
        (request.primary_task_set(task_set).send().await)
            .map_err(|error| AwsError::from_sdk("UpdateServicePrimaryTaskSet", error))?;
        Ok(())
    }

    async fn delete_task_set(&self, cluster: &str, service: &str, task_set: &str) -> Result<(), AwsError> {
        let request = self.client.delete_task_set().cluster(cluster).service(service).task_set(task_set);
        request.force(true).send().await.map_err(|error| AwsError::from_sdk("DeleteTaskSet", error))?;
        Ok(())
    }

    async fn task_sets(&self, cluster: &str, service: &str) -> Result<Vec<TaskSetInfo>, AwsError> {
        let output = (self.client.describe_services().cluster(cluster).services(service).send().await)
            .map_err(|error| AwsError::from_sdk("DescribeServices", error))?;
        let found = output.services.unwrap_or_default().into_iter().next().ok_or_else(|| AwsError {
            operation: "DescribeServices",
            code: "ServiceNotFoundException".to_string(),
            message: format!("service {service} is not in cluster {cluster}"),
            kind: AwsErrorKind::Permanent,
        })?;
        Ok(found.task_sets.unwrap_or_default().into_iter().map(info).collect())
    }
}
