//! fleetmesh's AWS edge (issue 15): the calls a leader makes to shift a Lambda alias's
//! traffic and to invoke hook functions, behind [`LambdaTraffic`] (and ELBv2's behind
//! [`Elbv2Traffic`]), so the rollout code
//! that decides the steps stays pure and the simulator can stand in a simulated AWS.
//!
//! Only this crate links the AWS SDK for Rust. Its HTTPS client is rustls on **ring**
//! (the SDK's default would add aws-lc, a C build; `STACK.md`). Credentials and endpoints
//! come the AWS way ([`AwsSettings::load`]): the standard chain (environment, profile,
//! web identity, instance metadata) and `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_LAMBDA`.
//!
//! ```text
//! rollout planner (pure) ──step──▶ leader shell ──▶ LambdaTraffic ──▶ SdkLambda ──HTTPS──▶ AWS / moto
//!                                                        └──────────▶ (simulator's AWS)
//! ```
//!
//! [`Elbv2Traffic`] takes a host off an ELBv2 target group and back, and sets a
//! listener's weighted forward (ECS traffic).
//!
//! [`EcsTraffic`] creates, promotes and deletes an ECS service's task sets.
//!
//! Not built yet: STS role assumption, retries with backoff above the
//! SDK's own (see `docs/lambda-ecs.md`).

mod ecs;
mod elbv2;
mod error;
mod lambda;

pub use ecs::{EcsTraffic, SdkEcs, TaskSetInfo, TaskSetSpec, VpcNetwork};
pub use elbv2::{Elbv2Traffic, SdkElbv2, Target, TargetGroup};
pub use error::{AwsError, AwsErrorKind};
pub use lambda::{AliasRouting, LambdaTraffic, SdkLambda};

/// Where and how the leader reaches AWS.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// Region; when `None`, the standard chain's (`AWS_REGION`, the profile), else
    /// `us-east-1`.
    pub region: Option<String>,
    /// An endpoint for every service (an AWS-compatible server); when `None`,
    /// `AWS_ENDPOINT_URL` and its per-service twins, else AWS's own.
    pub endpoint_url: Option<String>,
}

/// Region used when neither the settings nor the environment name one.
pub const DEFAULT_REGION: &str = "us-east-1";

impl AwsSettings {
    /// Loads the SDK configuration: the HTTPS client on ring, the region and endpoint of
    /// `self` over the standard chain's.
    pub async fn load(&self) -> aws_config::SdkConfig {
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        let http_client =
            aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client);
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        if config.region().is_some() {
            return config;
        }
        config.into_builder().region(aws_config::Region::new(DEFAULT_REGION)).build()
    }
}
