//! A Lambda alias's traffic: read it, set it, and invoke hook functions.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{AliasRoutingConfiguration, InvocationType};

use crate::error::AwsError;

/// Where an alias sends invocations: `version` gets what `additional` does not.
#[derive(Clone, Debug, PartialEq)]
pub struct AliasRouting {
    /// `FunctionVersion`: the alias's primary version.
    pub version: String,
    /// `RoutingConfig.AdditionalVersionWeights`: one other version and its share
    /// (0.0–1.0), as CodeDeploy shifts; `None` when the alias routes to one version.
    pub additional: Option<(String, f64)>,
}

impl AliasRouting {
    /// Everything to `version`.
    pub fn all_to(version: impl Into<String>) -> Self {
        Self { version: version.into(), additional: None }
    }

    /// `percent` % of invocations to `target`, the rest to `current`; 0 and 100 are the
    /// plain aliases (AWS refuses a weight of 1.0, and a weight of 0.0 is no routing).
    pub fn shifted(current: &str, target: &str, percent: u32) -> Self {
        match percent {
            0 => Self::all_to(current),
            100.. => Self::all_to(target),
            _ => Self {
                version: current.to_string(),
                additional: Some((target.to_string(), f64::from(percent) / 100.0)),
            },
        }
    }
}

/// The Lambda calls of a traffic shift. Implemented by [`SdkLambda`] over the AWS SDK;
/// the simulator implements it over a simulated AWS.
pub trait LambdaTraffic: Send + Sync {
    /// `GetAlias`: where `alias` of `function` routes now (what a new leader reads to
    /// resume a shift).
    fn alias_routing(&self, function: &str, alias: &str)
        -> impl Future<Output = Result<AliasRouting, AwsError>> + Send;

    /// `UpdateAlias`: routes `alias` of `function` as `routing` says.
    fn set_alias_routing(
        &self,
        function: &str,
        alias: &str,
        routing: &AliasRouting,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// `Invoke` with `InvocationType=Event`: starts hook `function` with `payload` (CodeDeploy's
    /// `{"DeploymentId", "LifecycleEventHookExecutionId"}`); the hook answers later through
    /// `PutLifecycleEventHookExecutionStatus`.
    fn invoke_hook(
        &self,
        function: &str,
        payload: &serde_json::Value,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// [`LambdaTraffic`] over the AWS SDK for Rust.
#[derive(Clone, Debug)]
pub struct SdkLambda {
    client: aws_sdk_lambda::Client,
}

impl SdkLambda {
    /// A client for `config` ([`crate::AwsSettings::load`]).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self { client: aws_sdk_lambda::Client::new(config) }
    }
}

impl LambdaTraffic for SdkLambda {
    async fn alias_routing(&self, function: &str, alias: &str) -> Result<AliasRouting, AwsError> {
        let output = (self.client.get_alias().function_name(function).name(alias).send().await)
            .map_err(|error| AwsError::from_sdk("GetAlias", error))?;
        let version = output.function_version.unwrap_or_default();
        let weights = output.routing_config.and_then(|routing| routing.additional_version_weights).unwrap_or_default();
        // CodeDeploy shifts to one version at a time; of several (set by hand), the largest.
        let additional = weights.into_iter().max_by(|a, b| a.1.total_cmp(&b.1));
        Ok(AliasRouting { version, additional })
    }

    async fn set_alias_routing(&self, function: &str, alias: &str, routing: &AliasRouting) -> Result<(), AwsError> {
        // An empty map clears the routing config (the end of a shift, or a rollback).
        let weights: HashMap<String, f64> = routing.additional.iter().cloned().collect();
        let config = AliasRoutingConfiguration::builder().set_additional_version_weights(Some(weights)).build();
        let request = self.client.update_alias().function_name(function).name(alias);
        (request.function_version(&routing.version).routing_config(config).send().await)
            .map_err(|error| AwsError::from_sdk("UpdateAlias", error))?;
        Ok(())
    }

    async fn invoke_hook(&self, function: &str, payload: &serde_json::Value) -> Result<(), AwsError> {
        let body = Blob::new(payload.to_string().into_bytes());
        let request = self.client.invoke().function_name(function).invocation_type(InvocationType::Event);
        let output = (request.payload(body).send().await).map_err(|error| AwsError::from_sdk("Invoke", error))?;
        match output.function_error {
            None => Ok(()),
            Some(function_error) => Err(AwsError {
                operation: "Invoke",
                code: "FunctionError".to_string(),
                message: format!("hook function {function} failed to start: {function_error}"),
                kind: crate::AwsErrorKind::Permanent,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_routing_is_a_weight_between_the_ends() {
        assert_eq!(AliasRouting::shifted("1", "2", 0), AliasRouting::all_to("1"));
        assert_eq!(AliasRouting::shifted("1", "2", 100), AliasRouting::all_to("2"));
        let ten = AliasRouting::shifted("1", "2", 10);
        assert_eq!(ten.version, "1");
        assert_eq!(ten.additional, Some(("2".to_string(), 0.1)));
    }
}
