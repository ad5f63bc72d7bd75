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
//! [`SdkS3`] reads the bundle of an S3 revision, once, on the node that takes the request.
//!
//! [`EcsTraffic`] creates, promotes and deletes an ECS service's task sets.
//!
//! [`SdkSns`] publishes a deployment-group trigger's notifications to its SNS topic, in
//! the topic's region.
//!
//! [`CloudWatchAlarms`] reads alarm states (`DescribeAlarms`) for alarm gates, over AWS
//! JSON 1.0 signed with Signature V4 by hand (the SDK's CloudWatch client speaks only CBOR).
//!
//! A group's `serviceRoleArn` is assumed through STS ([`AwsSettings::role_arn`]).
//!
//! Retries above the SDK's own (with backoff, reading before each write again) are the
//! leader's (`fleetmesh_node::leader::shift`, `…::ecs`).

mod cloudwatch;
mod ecs;
mod elbv2;
mod error;
mod lambda;
mod outbound;
mod s3;
mod sns;

pub use cloudwatch::{endpoint_url, AlarmState, AlarmStateValue, CloudWatchAlarms, NAMES_PER_CALL_MAX};
pub use ecs::{EcsTraffic, SdkEcs, TaskSetInfo, TaskSetSpec, VpcNetwork};
pub use elbv2::{Elbv2Traffic, SdkElbv2, Target, TargetGroup};
pub use error::{AwsError, AwsErrorKind};
pub use lambda::{AliasRouting, LambdaTraffic, SdkLambda};
pub use outbound::outbound_agent;
pub use s3::{unquote, ObjectInfo, ObjectRef, SdkS3};
pub use sns::{clamp_subject, topic_region, SdkSns, PUBLISH_TIMEOUT, SUBJECT_CHARS_MAX};

/// Where and how the leader reaches AWS.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// Region; when `None`, the standard chain's (`AWS_REGION`, the profile), else
    /// `us-east-1`.
    pub region: Option<String>,
    /// An endpoint for every service (an AWS-compatible server); when `None`,
    /// `AWS_ENDPOINT_URL` and its per-service twins, else AWS's own.
    pub endpoint_url: Option<String>,
    /// A role to assume through STS with the chain's credentials (a deployment group's
    /// `serviceRoleArn`); the calls then run as that role, session `fleetmesh`.
    pub role_arn: Option<String>,
}

/// Region used when neither the settings nor the environment name one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The STS session name of an assumed role.
pub const SESSION_NAME: &str = "fleetmesh";

impl AwsSettings {
    /// Loads the SDK configuration: the HTTPS client on ring, the region and endpoint of
    /// `self` over the standard chain's, and the role of `self` assumed when set.
    pub async fn load(&self) -> aws_config::SdkConfig {
        let base = self.loader().load().await;
        let region = base.region().cloned().unwrap_or_else(|| aws_config::Region::new(DEFAULT_REGION));
        let Some(role_arn) = &self.role_arn else {
            return base.into_builder().region(region).build();
        };
        let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name(SESSION_NAME)
            .region(region.clone())
            .configure(&base)
            .build()
            .await;
        self.loader().region(region).credentials_provider(provider).load().await
    }

    fn loader(&self) -> aws_config::ConfigLoader {
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
        loader
    }
}

/// `GetCallerIdentity`: the ARN the calls of `config` run as (a user, or
/// `…:assumed-role/<role>/fleetmesh`), the check that AWS access works before a
/// deployment needs it.
///
/// # Errors
/// The call's [`AwsError`] (no credentials, an expired session, no network).
pub async fn caller_identity(config: &aws_config::SdkConfig) -> Result<String, AwsError> {
    let client = aws_sdk_sts::Client::new(config);
    let output =
        client.get_caller_identity().send().await.map_err(|error| AwsError::from_sdk("GetCallerIdentity", error))?;
    Ok(output.arn.unwrap_or_default())
}
