//! Lambda deployments' AWS calls, made by the leader (`fleetmesh_core::rollout::shift`
//! decides them): invoke a hook, move an alias. Each call runs in a task of its own,
//! one at a time, and commits its outcome: `HookInvoked` / `WeightApplied` on success,
//! the event's failure with CodeDeploy's error code when AWS refuses or its retries run
//! out.
//!
//! Before moving an alias the leader reads it (`GetAlias`): a step that a dead leader
//! began and whose call landed is confirmed without calling again, so every weight is
//! applied once.
//!
//! The calls go through [`LambdaEdge`]: the AWS SDK in production (credentials and
//! endpoints the AWS way: the standard chain, `AWS_ENDPOINT_URL`), something else in
//! tests and the simulator.

use std::sync::Arc;
use std::time::Duration;

use fleetmesh_aws::{AliasRouting, AwsError, AwsErrorKind, AwsSettings, LambdaTraffic, SdkLambda};
use fleetmesh_core::rollout::shift::ShiftMove;
use fleetmesh_state::model::deployment::{ErrorCode, ErrorInformation, LifecycleEventStatus};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::model::shift::{ShiftSpec, ShiftStep};
use fleetmesh_state::Command;
use fleetmesh_transport::BoxFuture;
use std::collections::BTreeMap;

use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::runtime::Node;

/// Attempts of a call that AWS answers with throttling or a 5xx (each already retried
/// by the SDK's standard retry policy) before the deployment ends `THROTTLED`.
const ATTEMPTS: u32 = 4;

/// The pause between attempts, doubled each time.
const BACKOFF: Duration = Duration::from_millis(500);

/// Whom a call runs as: the group's `serviceRoleArn`, assumed through STS, or (`None`)
/// the leader's own credentials.
pub type Role = Option<String>;

/// The Lambda calls of a deployment, as objects the leader can hold.
pub trait LambdaEdge: Send + Sync {
    /// `GetAlias`.
    fn alias(&self, role: Role, function: String, alias: String) -> BoxFuture<'_, Result<AliasRouting, AwsError>>;
    /// `UpdateAlias`.
    fn set_alias(
        &self,
        role: Role,
        function: String,
        alias: String,
        routing: AliasRouting,
    ) -> BoxFuture<'_, Result<(), AwsError>>;
    /// `Invoke` (asynchronous).
    fn invoke(&self, role: Role, function: String, payload: serde_json::Value) -> BoxFuture<'_, Result<(), AwsError>>;
}

/// [`LambdaEdge`] over the AWS SDK: one client per role, configured on first use (the
/// standard credential chain and endpoint variables, then STS for a role).
#[derive(Default)]
pub struct SdkEdge {
    clients: Mutex<BTreeMap<Role, SdkLambda>>,
}

impl SdkEdge {
    async fn client(&self, role: Role) -> SdkLambda {
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(&role) {
            return client.clone();
        }
        let settings = AwsSettings { role_arn: role.clone(), ..AwsSettings::default() };
        let client = SdkLambda::new(&settings.load().await);
        clients.insert(role, client.clone());
        client
    }
}

impl LambdaEdge for SdkEdge {
    fn alias(&self, role: Role, function: String, alias: String) -> BoxFuture<'_, Result<AliasRouting, AwsError>> {
        Box::pin(async move { self.client(role).await.alias_routing(&function, &alias).await })
    }

    fn set_alias(
        &self,
        role: Role,
        function: String,
        alias: String,
        routing: AliasRouting,
    ) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move { self.client(role).await.set_alias_routing(&function, &alias, &routing).await })
    }

    fn invoke(&self, role: Role, function: String, payload: serde_json::Value) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move { self.client(role).await.invoke_hook(&function, &payload).await })
    }
}

/// One AWS move of one deployment, as the planner decided it.
pub(super) struct AwsMove {
    pub(super) deployment_id: DeploymentId,
    pub(super) spec: ShiftSpec,
    pub(super) role: Role,
    pub(super) call: ShiftMove,
    /// The target version's share the alias must show before a step is set (the
    /// previous step's), or `None` when any is fine (a rollback's one step).
    pub(super) before: Option<u32>,
}

/// Makes `call` and commits its outcome. Errors that end nothing (the proposal not
/// committed: the next leader plans the call again) are logged.
pub(super) async fn run(node: Arc<Node>, edge: Arc<dyn LambdaEdge>, call: AwsMove) {
    let AwsMove { deployment_id, spec, role, call, before } = call;
    let result = match &call {
        ShiftMove::InvokeHook { function, execution_id } => {
            let payload = serde_json::json!({
                "DeploymentId": deployment_id.0,
                "LifecycleEventHookExecutionId": execution_id,
            });
            info!(deployment = %deployment_id, %function, "invoking a lifecycle hook");
            with_retries(|| edge.invoke(role.clone(), function.clone(), payload.clone()))
                .await
                .map(|()| ShiftStep::HookInvoked)
        }
        ShiftMove::SetWeight { index, weight } => {
            let term = node.term();
            let leads = || node.is_leader() && node.term() == term;
            let step = Step { weight: *weight, before };
            set_weight(edge.as_ref(), (&spec, &role), step, &leads)
                .await
                .map(|()| ShiftStep::WeightApplied { index: *index })
        }
        _ => return,
    };
    if matches!(&result, Err(error) if error.code == "NotLeader") {
        info!(deployment = %deployment_id, "deposed before moving the alias; the next leader resumes");
        return;
    }
    let step = result.unwrap_or_else(|error| {
        warn!(deployment = %deployment_id, %error, "an AWS call of a Lambda deployment failed");
        ShiftStep::EndEvent { status: LifecycleEventStatus::Failed, error: Some(deployment_error(&error)) }
    });
    if let Err(error) = node.propose(vec![Command::AdvanceShift { deployment_id, step }]).await {
        warn!(%error, "the outcome of an AWS call was not committed; the call is planned again");
    }
}

/// A step to set: its weight, and the weight the alias must show before it.
#[derive(Clone, Copy, Debug)]
struct Step {
    weight: u32,
    before: Option<u32>,
}

/// Moves `spec`'s alias to `step`'s weight, unless it is there already. The alias is
/// read before each attempt: an `UpdateAlias` answered with a 5xx may have landed, and
/// setting it again would apply the step twice. It is set only from the previous
/// step's weight: any other routing means someone else moved it (a newer leader, after
/// this one was deposed without knowing yet, or an operator), and the step is not
/// written over it.
///
/// A leader deposed meanwhile also stops before writing (`leads` turns false). What
/// remains is one read-and-write's latency, in which a deposed leader that read before
/// the new leader wrote may still write; AWS's `RevisionId` precondition on
/// `UpdateAlias` would close it (not used yet).
async fn set_weight(
    edge: &dyn LambdaEdge,
    (spec, role): (&ShiftSpec, &Role),
    step: Step,
    leads: &(dyn Fn() -> bool + Sync),
) -> Result<(), AwsError> {
    let (current, target) = (spec.current_version.to_string(), spec.target_version.to_string());
    let wanted = AliasRouting::shifted(&current, &target, step.weight);
    let (function, alias) = (spec.function_name.clone(), spec.alias.clone());
    let mut backoff = Backoff::default();
    loop {
        let now = with_retries(|| edge.alias(role.clone(), function.clone(), alias.clone())).await?;
        if same_routing(&now, &wanted) {
            info!(function = %function, alias = %alias, weight = step.weight, "the alias routes as this step says");
            return Ok(());
        }
        if let Some(before) = step.before.map(|before| AliasRouting::shifted(&current, &target, before)) {
            if !same_routing(&now, &before) {
                return Err(AwsError {
                    operation: "UpdateAlias",
                    code: "AliasMoved".into(),
                    message: format!(
                        "alias {alias} of {function} routes {now:?}, neither this step's {wanted:?} nor the previous \
                         step's {before:?}: it was moved outside this deployment"
                    ),
                    kind: AwsErrorKind::Permanent,
                });
            }
        }
        if !leads() {
            return Err(AwsError {
                operation: "UpdateAlias",
                code: "NotLeader".into(),
                message: "this node no longer leads; the next leader resumes the step".into(),
                kind: AwsErrorKind::Retryable,
            });
        }
        info!(function = %function, alias = %alias, weight = step.weight, "moving the alias");
        match edge.set_alias(role.clone(), function.clone(), alias.clone(), wanted.clone()).await {
            Err(error) if backoff.allows(&error) => {
                backoff.wait(&error, "retrying UpdateAlias after reading the alias again").await;
            }
            result => return result,
        }
    }
}

/// Equal routings, weights compared to a millionth (AWS answers them as floats).
fn same_routing(a: &AliasRouting, b: &AliasRouting) -> bool {
    a.version == b.version
        && match (&a.additional, &b.additional) {
            (None, None) => true,
            (Some((va, wa)), Some((vb, wb))) => va == vb && (wa - wb).abs() < 1e-6,
            _ => false,
        }
}

/// Runs `call` until it succeeds, fails for good, or [`ATTEMPTS`] retryable failures.
async fn with_retries<'a, T, F>(mut call: F) -> Result<T, AwsError>
where
    F: FnMut() -> BoxFuture<'a, Result<T, AwsError>>,
{
    let mut backoff = Backoff::default();
    loop {
        match call().await {
            Err(error) if backoff.allows(&error) => backoff.wait(&error, "retrying an AWS call").await,
            result => return result,
        }
    }
}

/// The retries of one call: up to [`ATTEMPTS`] attempts, pauses doubling from [`BACKOFF`].
struct Backoff {
    pause: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { pause: BACKOFF, attempt: 1 }
    }
}

impl Backoff {
    /// True when `error` may be retried: throttling or 5xx, attempts left.
    fn allows(&self, error: &AwsError) -> bool {
        error.kind == AwsErrorKind::Retryable && self.attempt < ATTEMPTS
    }

    /// Logs `what` and pauses before the next attempt.
    async fn wait(&mut self, error: &AwsError, what: &str) {
        warn!(%error, attempt = self.attempt, "{what}");
        tokio::time::sleep(self.pause).await;
        self.pause *= 2;
        self.attempt += 1;
    }
}

/// CodeDeploy's error code and AWS's message for a failed call.
pub fn deployment_error(error: &AwsError) -> ErrorInformation {
    let code = match (error.kind, error.code.as_str()) {
        (AwsErrorKind::Retryable, _) => ErrorCode::Throttled,
        (_, "ResourceNotFoundException") => ErrorCode::InvalidLambdaFunction,
        (_, code) if code.contains("AccessDenied") || code.contains("Unauthorized") => ErrorCode::IamRolePermissions,
        (_, "UnrecognizedClientException" | "InvalidClientTokenId" | "ExpiredTokenException") => {
            ErrorCode::IamRolePermissions
        }
        _ => ErrorCode::InvalidLambdaConfiguration,
    };
    ErrorInformation { code, message: error.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(kind: AwsErrorKind, code: &str) -> AwsError {
        AwsError { operation: "UpdateAlias", code: code.into(), message: "m".into(), kind }
    }

    #[test]
    fn aws_errors_map_to_codedeploy_codes() {
        let code = |kind, name| deployment_error(&error(kind, name)).code;
        assert_eq!(code(AwsErrorKind::Retryable, "ThrottlingException"), ErrorCode::Throttled);
        assert_eq!(code(AwsErrorKind::Permanent, "ResourceNotFoundException"), ErrorCode::InvalidLambdaFunction);
        assert_eq!(code(AwsErrorKind::Permanent, "AccessDeniedException"), ErrorCode::IamRolePermissions);
        assert_eq!(
            code(AwsErrorKind::Permanent, "InvalidParameterValueException"),
            ErrorCode::InvalidLambdaConfiguration
        );
        let message = deployment_error(&error(AwsErrorKind::Permanent, "ResourceNotFoundException")).message;
        assert_eq!(message, "UpdateAlias: ResourceNotFoundException: m");
    }

    #[test]
    fn routings_compare_weights_as_floats() {
        let a = AliasRouting::shifted("1", "2", 10);
        assert!(same_routing(
            &a,
            &AliasRouting { version: "1".into(), additional: Some(("2".into(), 0.100_000_000_1)) }
        ));
        assert!(!same_routing(&a, &AliasRouting::shifted("1", "2", 20)));
        assert!(!same_routing(&a, &AliasRouting::all_to("2")));
        assert!(same_routing(&AliasRouting::shifted("1", "2", 100), &AliasRouting::all_to("2")));
    }
}
