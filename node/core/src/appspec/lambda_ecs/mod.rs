//! The AppSpec of a Lambda or ECS revision (`codedeploy.md` §3): one resource whose
//! traffic the leader shifts, and the Lambda functions that run as hooks. Pure: text in,
//! a [`LambdaAppSpec`] / [`EcsAppSpec`] or a [`PlatformAppSpecError`] out, checked in full
//! before a deployment starts.
//!
//! YAML or JSON (JSON is read as YAML). AWS's documents spell the keys in PascalCase and
//! some examples in lowercase; keys are matched without regard to case. `Resources` and
//! `Hooks` are lists of single-key maps. Keys this reading does not know are reported as
//! warnings, not refused, so an AppSpec that CodeDeploy takes is taken here.
//!
//! ```text
//! text ──serde_norway──▶ Value ──Reader──▶ LambdaAppSpec | EcsAppSpec (+ warnings)
//!                                  │ first broken rule
//!                                  ▼
//!      PlatformAppSpecError { code: INVALID_LAMBDA_CONFIGURATION, path: "Resources[0].myFn.Properties.Alias", … }
//! ```

mod reader;
#[cfg(test)]
mod tests;

use std::fmt;

use serde_norway::Value;

use reader::Reader;

/// Largest AppSpec accepted (AWS's `AppSpecContent.content` limit is far lower; the cap
/// only bounds the parser's work).
pub const PLATFORM_APPSPEC_BYTES_MAX: usize = 64 * 1024;

/// Hook events of a Lambda deployment (§2.6), in run order.
pub const LAMBDA_HOOK_EVENTS: [&str; 2] = ["BeforeAllowTraffic", "AfterAllowTraffic"];

/// Hook events of an ECS deployment (§2.7), in run order.
pub const ECS_HOOK_EVENTS: [&str; 5] =
    ["BeforeInstall", "AfterInstall", "AfterAllowTestTraffic", "BeforeAllowTraffic", "AfterAllowTraffic"];

/// A Lambda AppSpec: move `alias` of `function_name` from `current_version` to
/// `target_version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LambdaAppSpec {
    /// The resource's logical name (the key in `Resources`).
    pub logical_name: String,
    /// `Properties.Name`: the function's name or ARN.
    pub function_name: String,
    /// `Properties.Alias`.
    pub alias: String,
    /// `Properties.CurrentVersion`: the version the alias points to now.
    pub current_version: u64,
    /// `Properties.TargetVersion`: the version traffic moves to.
    pub target_version: u64,
    /// Hook functions per event, in [`LAMBDA_HOOK_EVENTS`] order.
    pub hooks: Vec<Hook>,
    /// Keys not read, and the like (`Resources[0].fn.Properties.Description: unknown key, ignored`).
    pub warnings: Vec<String>,
}

/// An ECS AppSpec: the replacement task set of the group's service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcsAppSpec {
    /// The resource's logical name (AWS's examples use `TargetService`).
    pub logical_name: String,
    /// `Properties.TaskDefinition`: the task definition ARN the replacement runs.
    pub task_definition: String,
    /// `Properties.LoadBalancerInfo.ContainerName`.
    pub container_name: String,
    /// `Properties.LoadBalancerInfo.ContainerPort`.
    pub container_port: u16,
    /// `Properties.PlatformVersion` (Fargate; AWS's default is `LATEST`).
    pub platform_version: Option<String>,
    /// `Properties.NetworkConfiguration.AwsvpcConfiguration`.
    pub network: Option<AwsVpcConfiguration>,
    /// `Properties.CapacityProviderStrategy`.
    pub capacity_provider_strategy: Vec<CapacityProviderItem>,
    /// Hook functions per event, in [`ECS_HOOK_EVENTS`] order.
    pub hooks: Vec<Hook>,
    /// Keys not read, and the like.
    pub warnings: Vec<String>,
}

/// `AwsvpcConfiguration` of an ECS AppSpec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsVpcConfiguration {
    /// Subnet ids, at least one.
    pub subnets: Vec<String>,
    /// Security group ids.
    pub security_groups: Vec<String>,
    /// `AssignPublicIp`: `ENABLED` is true; absent means AWS's default (`DISABLED`).
    pub assign_public_ip: Option<bool>,
}

/// One `CapacityProviderStrategy` item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapacityProviderItem {
    /// `CapacityProvider`.
    pub capacity_provider: String,
    /// `Base`, 0 when absent.
    pub base: u32,
    /// `Weight`, 0 when absent.
    pub weight: u32,
}

/// One hook: the Lambda function invoked for `event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// The lifecycle event.
    pub event: &'static str,
    /// The function's name or ARN.
    pub function_name: String,
}

/// Which platform an AppSpec was read for: decides the error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// `AWS::Lambda::Function`.
    Lambda,
    /// `AWS::ECS::Service`.
    Ecs,
}

impl Platform {
    /// CodeDeploy's deployment error code for an AppSpec of this platform that does not
    /// hold (§6.2).
    pub fn error_code(self) -> &'static str {
        match self {
            Self::Lambda => "INVALID_LAMBDA_CONFIGURATION",
            Self::Ecs => "INVALID_ECS_SERVICE",
        }
    }

    fn resource_type(self) -> &'static str {
        match self {
            Self::Lambda => "AWS::Lambda::Function",
            Self::Ecs => "AWS::ECS::Service",
        }
    }

    fn hook_events(self) -> &'static [&'static str] {
        match self {
            Self::Lambda => &LAMBDA_HOOK_EVENTS,
            Self::Ecs => &ECS_HOOK_EVENTS,
        }
    }
}

/// Why an AppSpec is refused: the platform's error code, where, and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PlatformAppSpecError {
    /// The platform it was read for.
    pub platform: Platform,
    /// The member at fault (`Resources[0].myFn.Properties.Alias`), empty for the whole
    /// document.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl PlatformAppSpecError {
    /// CodeDeploy's error code for it.
    pub fn code(&self) -> &'static str {
        self.platform.error_code()
    }
}

impl fmt::Display for PlatformAppSpecError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(formatter, "{}: AppSpec: {}", self.code(), self.message)
        } else {
            write!(formatter, "{}: AppSpec {}: {}", self.code(), self.path, self.message)
        }
    }
}

/// Parses and checks a Lambda AppSpec.
///
/// # Errors
/// The first rule broken: syntax, `version` other than 0.0, not exactly one resource, a
/// resource that is not `AWS::Lambda::Function`, a missing or malformed `Name`, `Alias`,
/// `CurrentVersion` or `TargetVersion` (positive integers), hooks that are not a list of
/// single-key maps naming [`LAMBDA_HOOK_EVENTS`] once each.
pub fn parse_lambda(text: &str) -> Result<LambdaAppSpec, PlatformAppSpecError> {
    let mut reader = Reader::new(Platform::Lambda);
    let root = reader.document(text)?;
    let (logical_name, properties) = reader.resource(&root)?;
    let at = |member: &str| format!("Resources[0].{logical_name}.Properties.{member}");
    let function_name = reader.function_name(&at("Name"), reader.required(&properties, &at("Name"))?)?;
    let alias = reader.alias(&at("Alias"), reader.required(&properties, &at("Alias"))?)?;
    let current_version =
        reader.version(&at("CurrentVersion"), reader.required(&properties, &at("CurrentVersion"))?)?;
    let target_version = reader.version(&at("TargetVersion"), reader.required(&properties, &at("TargetVersion"))?)?;
    reader.unknown_keys(
        &properties,
        &format!("Resources[0].{logical_name}.Properties"),
        &["Name", "Alias", "CurrentVersion", "TargetVersion"],
    );
    let hooks = reader.hooks(&root)?;
    Ok(LambdaAppSpec {
        logical_name,
        function_name,
        alias,
        current_version,
        target_version,
        hooks,
        warnings: reader.warnings,
    })
}

/// Parses and checks an ECS AppSpec.
///
/// # Errors
/// The first rule broken: syntax, `version` other than 0.0, not exactly one resource, a
/// resource that is not `AWS::ECS::Service`, a missing `TaskDefinition`, a
/// `LoadBalancerInfo` without `ContainerName` or a `ContainerPort` number in 1–65535, a
/// `NetworkConfiguration` without `AwsvpcConfiguration.Subnets`, an `AssignPublicIp`
/// other than `ENABLED`/`DISABLED`, malformed `CapacityProviderStrategy` items, hooks
/// outside [`ECS_HOOK_EVENTS`] or repeated.
pub fn parse_ecs(text: &str) -> Result<EcsAppSpec, PlatformAppSpecError> {
    let mut reader = Reader::new(Platform::Ecs);
    let root = reader.document(text)?;
    let (logical_name, properties) = reader.resource(&root)?;
    let base = format!("Resources[0].{logical_name}.Properties");
    let task_definition = reader
        .text(&format!("{base}.TaskDefinition"), reader.required(&properties, &format!("{base}.TaskDefinition"))?)?;
    let balancer_path = format!("{base}.LoadBalancerInfo");
    let balancer = reader.required(&properties, &balancer_path)?;
    let balancer = reader.mapping(&balancer_path, balancer)?;
    let container_name = reader.text(
        &format!("{balancer_path}.ContainerName"),
        reader.required(&balancer, &format!("{balancer_path}.ContainerName"))?,
    )?;
    let port_path = format!("{balancer_path}.ContainerPort");
    let container_port = reader.port(&port_path, reader.required(&balancer, &port_path)?)?;
    reader.unknown_keys(&balancer, &balancer_path, &["ContainerName", "ContainerPort"]);
    let platform_version = reader
        .optional(&properties, "PlatformVersion")
        .map(|value| reader.text(&format!("{base}.PlatformVersion"), value))
        .transpose()?;
    let network = reader.network(&properties, &base)?;
    let capacity_provider_strategy = reader.capacity_providers(&properties, &base)?;
    reader.unknown_keys(
        &properties,
        &base,
        &["TaskDefinition", "LoadBalancerInfo", "PlatformVersion", "NetworkConfiguration", "CapacityProviderStrategy"],
    );
    let hooks = reader.hooks(&root)?;
    Ok(EcsAppSpec {
        logical_name,
        task_definition,
        container_name,
        container_port,
        platform_version,
        network,
        capacity_provider_strategy,
        hooks,
        warnings: reader.warnings,
    })
}

/// Looks `key` up in `mapping` without regard to case.
fn lookup<'a>(mapping: &'a serde_norway::Mapping, key: &str) -> Option<&'a Value> {
    mapping
        .iter()
        .find(|(name, _)| name.as_str().is_some_and(|name| name.eq_ignore_ascii_case(key)))
        .map(|(_, value)| value)
}
