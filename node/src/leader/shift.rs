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

use fleetmesh_aws::{
    AliasRouting, AwsError, AwsErrorKind, AwsSettings, EcsTraffic, Elbv2Traffic, LambdaTraffic, SdkEcs, SdkElbv2,
    SdkLambda, Target, TargetGroup, TaskSetInfo, TaskSetSpec,
};
use fleetmesh_core::rollout::shift::ShiftMove;
use fleetmesh_state::model::deployment::{ErrorCode, ErrorInformation, LifecycleEventStatus};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::model::shift::{EcsProgress, LambdaSpec, ShiftSpec, ShiftStep};
use fleetmesh_state::Command;
use fleetmesh_transport::BoxFuture;

use crate::leader::clients::ClientCache;
use tracing::{info, warn};

use super::ecs::{EcsCall, EcsEdge};
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

/// Where the leader's AWS calls go: Lambda's, and ECS's with ELBv2's.
#[derive(Clone)]
pub struct AwsEdges {
    /// Lambda deployments' calls (and every deployment's hook invocations).
    pub lambda: Arc<dyn LambdaEdge>,
    /// ECS deployments' task set and listener calls.
    pub ecs: Arc<dyn EcsEdge>,
}

impl AwsEdges {
    /// Both over the AWS SDK.
    pub fn sdk() -> Self {
        let edge = Arc::new(SdkEdge::default());
        Self { lambda: edge.clone(), ecs: edge }
    }
}

/// [`LambdaEdge`] and [`EcsEdge`] over the AWS SDK: one configuration per role, loaded
/// on first use (the standard credential chain and endpoint variables, then STS for a
/// role).
#[derive(Default)]
pub struct SdkEdge {
    clients: ClientCache<Role, SdkClients>,
}

/// The clients of one role.
#[derive(Clone)]
struct SdkClients {
    lambda: SdkLambda,
    ecs: SdkEcs,
    elbv2: SdkElbv2,
}

impl SdkEdge {
    async fn clients(&self, role: Role) -> SdkClients {
        let make = |role: Role| async move {
            let config = AwsSettings { role_arn: role, ..AwsSettings::default() }.load().await;
            SdkClients { lambda: SdkLambda::new(&config), ecs: SdkEcs::new(&config), elbv2: SdkElbv2::new(&config) }
        };
        self.clients.get_or_make(role, make).await
    }

    async fn client(&self, role: Role) -> SdkLambda {
        self.clients(role).await.lambda
    }

    async fn ecs(&self, role: Role) -> SdkEcs {
        self.clients(role).await.ecs
    }

    async fn elbv2(&self, role: Role) -> SdkElbv2 {
        self.clients(role).await.elbv2
    }
}

impl EcsEdge for SdkEdge {
    fn target_group(&self, role: Role, name: String) -> BoxFuture<'_, Result<TargetGroup, AwsError>> {
        Box::pin(async move { self.elbv2(role).await.target_group(&name).await })
    }

    fn set_registered(
        &self,
        role: Role,
        group_arn: String,
        target: Target,
        register: bool,
    ) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            let elbv2 = self.elbv2(role).await;
            if register {
                elbv2.register(&group_arn, &target).await
            } else {
                elbv2.deregister(&group_arn, &target).await
            }
        })
    }

    fn target_state(
        &self,
        role: Role,
        group_arn: String,
        target: Target,
    ) -> BoxFuture<'_, Result<Option<String>, AwsError>> {
        Box::pin(async move { self.elbv2(role).await.target_state(&group_arn, &target).await })
    }

    fn listener_weights(&self, role: Role, listener: String) -> BoxFuture<'_, Result<Vec<(String, i32)>, AwsError>> {
        Box::pin(async move { self.elbv2(role).await.listener_weights(&listener).await })
    }

    fn set_listener_weights(
        &self,
        role: Role,
        listener: String,
        weights: Vec<(String, i32)>,
    ) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move { self.elbv2(role).await.set_listener_weights(&listener, &weights).await })
    }

    fn task_sets(
        &self,
        role: Role,
        cluster: String,
        service: String,
    ) -> BoxFuture<'_, Result<Vec<TaskSetInfo>, AwsError>> {
        Box::pin(async move { self.ecs(role).await.task_sets(&cluster, &service).await })
    }

    fn create_task_set(
        &self,
        role: Role,
        cluster: String,
        service: String,
        spec: TaskSetSpec,
    ) -> BoxFuture<'_, Result<TaskSetInfo, AwsError>> {
        Box::pin(async move { self.ecs(role).await.create_task_set(&cluster, &service, &spec).await })
    }

    fn set_primary(
        &self,
        role: Role,
        cluster: String,
        service: String,
        arn: String,
    ) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move { self.ecs(role).await.set_primary_task_set(&cluster, &service, &arn).await })
    }

    fn delete_task_set(
        &self,
        role: Role,
        cluster: String,
        service: String,
        arn: String,
    ) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move { self.ecs(role).await.delete_task_set(&cluster, &service, &arn).await })
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
    /// An ECS deployment's progress when the move was planned.
    pub(super) ecs: Option<EcsProgress>,
    pub(super) call: ShiftMove,
    /// The target version's share the alias must show before a step is set (the
    /// previous step's), or `None` when any is fine (a rollback's one step).
    pub(super) before: Option<u32>,
}

/// Makes `call` and commits its outcome. Errors that end nothing (the proposal not
/// committed: the next leader plans the call again) are logged.
pub(super) async fn run(node: Arc<Node>, edges: AwsEdges, call: AwsMove) {
    let deployment_id = call.deployment_id.clone();
    let term = node.term();
    let leads = || node.is_leader() && node.term() == term;
    let result = match (&call.spec, call.ecs.as_ref()) {
        (_, _) if matches!(call.call, ShiftMove::InvokeHook { .. }) => invoke(edges.lambda.as_ref(), &call).await,
        (ShiftSpec::Lambda(spec), _) => lambda_move(edges.lambda.as_ref(), spec, &call, &leads).await,
        (ShiftSpec::Ecs(spec), progress) => {
            let ecs = EcsCall {
                edge: edges.ecs.as_ref(),
                role: &call.role,
                deployment_id: &deployment_id,
                spec,
                leads: &leads,
            };
            ecs_move(&ecs, progress, &call).await
        }
    };
    let Some(result) = result else { return };
    if matches!(&result, Err(error) if error.code == "NotLeader") {
        info!(deployment = %deployment_id, "deposed before an AWS write; the next leader resumes");
        return;
    }
    let step = result.unwrap_or_else(|error| {
        warn!(deployment = %deployment_id, %error, "an AWS call of a deployment failed");
        ShiftStep::EndEvent { status: LifecycleEventStatus::Failed, error: Some(deployment_error(&error)) }
    });
    if let Err(error) = node.propose(vec![Command::AdvanceShift { deployment_id, step }]).await {
        warn!(%error, "the outcome of an AWS call was not committed; the call is planned again");
    }
}

/// Invokes the running hook's function.
async fn invoke(edge: &dyn LambdaEdge, call: &AwsMove) -> Option<Result<ShiftStep, AwsError>> {
    let ShiftMove::InvokeHook { function, execution_id } = &call.call else { return None };
    let payload = serde_json::json!({
        "DeploymentId": call.deployment_id.0,
        "LifecycleEventHookExecutionId": execution_id,
    });
    info!(deployment = %call.deployment_id, %function, "invoking a lifecycle hook");
    let result = with_retries(|| edge.invoke(call.role.clone(), function.clone(), payload.clone())).await;
    Some(result.map(|()| ShiftStep::HookInvoked))
}

/// A Lambda deployment's step: the alias moved.
async fn lambda_move(
    edge: &dyn LambdaEdge,
    spec: &LambdaSpec,
    call: &AwsMove,
    leads: &(dyn Fn() -> bool + Sync),
) -> Option<Result<ShiftStep, AwsError>> {
    let ShiftMove::SetWeight { index, weight } = call.call else { return None };
    let step = Step { weight, before: call.before };
    Some(set_weight(edge, (spec, &call.role), step, leads).await.map(|()| ShiftStep::WeightApplied { index }))
}

/// An ECS deployment's move.
async fn ecs_move(
    ecs: &EcsCall<'_>,
    progress: Option<&EcsProgress>,
    call: &AwsMove,
) -> Option<Result<ShiftStep, AwsError>> {
    Some(match (&call.call, progress) {
        (ShiftMove::ResolveEcs, _) => ecs.resolve().await,
        (ShiftMove::CreateTaskSet, Some(progress)) => ecs.create_task_set(progress).await,
        (ShiftMove::RouteTestTraffic, Some(progress)) => ecs.route_test_traffic(progress).await,
        (ShiftMove::SetWeight { index, weight }, Some(progress)) => {
            let index = *index;
            ecs.set_step(progress, *weight, call.before).await.map(|()| ShiftStep::WeightApplied { index })
        }
        (ShiftMove::Retire, Some(progress)) => ecs.retire(progress).await,
        _ => return None,
    })
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
    (spec, role): (&LambdaSpec, &Role),
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
pub(super) async fn with_retries<'a, T, F>(mut call: F) -> Result<T, AwsError>
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

/// The ECS calls, whose errors are `ECS_UPDATE_ERROR` or `INVALID_ECS_SERVICE`.
const ECS_OPERATIONS: [&str; 4] = ["CreateTaskSet", "UpdateServicePrimaryTaskSet", "DeleteTaskSet", "DescribeServices"];

/// The ELBv2 calls, whose errors are `ELASTIC_LOAD_BALANCING_INVALID`.
const ELB_OPERATIONS: [&str; 6] = [
    "DescribeTargetGroups",
    "DescribeListeners",
    "ModifyListener",
    "RegisterTargets",
    "DeregisterTargets",
    "DescribeTargetHealth",
];

/// CodeDeploy's error code and AWS's message for a failed call.
pub fn deployment_error(error: &AwsError) -> ErrorInformation {
    let ecs = ECS_OPERATIONS.contains(&error.operation);
    let code = match (error.kind, error.code.as_str()) {
        (AwsErrorKind::Retryable, _) => ErrorCode::Throttled,
        (_, code) if code.contains("AccessDenied") || code.contains("Unauthorized") => ErrorCode::IamRolePermissions,
        (_, "UnrecognizedClientException" | "InvalidClientTokenId" | "ExpiredTokenException") => {
            ErrorCode::IamRolePermissions
        }
        (_, "ServiceNotFoundException" | "ClusterNotFoundException" | "ServiceNotActiveException") if ecs => {
            ErrorCode::InvalidEcsService
        }
        _ if ecs => ErrorCode::EcsUpdateError,
        _ if ELB_OPERATIONS.contains(&error.operation) => ErrorCode::ElasticLoadBalancingInvalid,
        (_, "ResourceNotFoundException") => ErrorCode::InvalidLambdaFunction,
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
