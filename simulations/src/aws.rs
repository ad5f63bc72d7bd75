//! A simulated AWS Lambda: one alias the leaders move through the production edge trait
//! ([`LambdaEdge`]), with latency, throttling and 5xx answers drawn from the seed.
//!
//! An `UpdateAlias` takes effect halfway through its latency: a leader crashed in the
//! second half leaves a change in place that it never confirmed, which is the case a
//! new leader must read back rather than apply again. A 5xx answer comes before or
//! after the change (AWS does not say which). Every change is recorded with its virtual
//! time, and so is every call that set the alias to what it already was.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fleetmesh_aws::{AliasRouting, AwsError, AwsErrorKind, Target, TargetGroup, TaskSetInfo, TaskSetSpec};
use fleetmesh_node::leader::ecs::EcsEdge;
use fleetmesh_node::leader::shift::{LambdaEdge, Role};
use fleetmesh_transport::BoxFuture;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

/// What the simulated Lambda holds and saw.
#[derive(Debug)]
pub struct LambdaWorld {
    rng: ChaCha8Rng,
    /// Probability of a throttled or 5xx answer per call.
    fault_rate: f64,
    /// Where the alias routes.
    pub alias: AliasRouting,
    /// Every change of the alias: (virtual time, routing after).
    pub changes: Vec<(Instant, AliasRouting)>,
    /// `UpdateAlias` calls that set what was already there.
    pub redundant_sets: u64,
    /// Calls answered with throttling or a 5xx.
    pub faults: u64,
    /// Hook invocations not yet taken by the scenario: (deployment id, execution id).
    pub invocations: VecDeque<(String, String)>,
    /// Every invocation, in order (a hook may be invoked again after a failover).
    pub invoked: u64,
    /// The next `UpdateAlias` that changes the alias answers [`STALL`] late.
    pub stall_next_set: bool,
    /// An `UpdateAlias` has changed the alias and not answered yet (stalled).
    pub stalled: bool,
}

/// How late a stalled `UpdateAlias` answers: long enough for the scenario to strike a
/// fault between the change and its answer.
pub const STALL: Duration = Duration::from_secs(3);

/// The simulated Lambda, shared by every node of a cluster.
#[derive(Clone, Debug)]
pub struct SimLambda {
    world: Arc<Mutex<LambdaWorld>>,
}

impl SimLambda {
    /// An alias on version `version`, faults at `fault_rate`, draws from `seed`.
    pub fn new(seed: u64, fault_rate: f64, version: u64) -> Self {
        let world = LambdaWorld {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6c61_6d62_6461),
            fault_rate,
            alias: AliasRouting::all_to(version.to_string()),
            changes: Vec::new(),
            redundant_sets: 0,
            faults: 0,
            invocations: VecDeque::new(),
            invoked: 0,
            stall_next_set: false,
            stalled: false,
        };
        Self { world: Arc::new(Mutex::new(world)) }
    }

    /// The world, locked (a poisoned lock still holds a consistent record: every update
    /// is one assignment).
    pub fn world(&self) -> MutexGuard<'_, LambdaWorld> {
        self.world.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The call's latency and fault: `None`, or a fault before or after the effect.
    fn draw(&self, operation: &'static str) -> (Duration, Option<(AwsError, bool)>) {
        let mut world = self.world();
        let latency = Duration::from_millis(world.rng.gen_range(5..=80));
        let fault_rate = world.fault_rate;
        if !world.rng.gen_bool(fault_rate) {
            return (latency, None);
        }
        world.faults += 1;
        let (code, message) = if world.rng.gen_bool(0.5) {
            ("TooManyRequestsException", "Rate exceeded")
        } else {
            ("ServiceException", "internal failure")
        };
        let error = AwsError { operation, code: code.into(), message: message.into(), kind: AwsErrorKind::Retryable };
        let after_effect = code == "ServiceException" && world.rng.gen_bool(0.5);
        (latency, Some((error, after_effect)))
    }

    /// Runs a call: half the latency, the effect (unless it fails before), the other half.
    async fn call<T>(
        &self,
        operation: &'static str,
        effect: impl FnOnce(&mut LambdaWorld) -> T,
    ) -> Result<T, AwsError> {
        let (latency, fault) = self.draw(operation);
        tokio::time::sleep(latency / 2).await;
        let result = match fault {
            Some((error, false)) => return Err(error),
            _ => effect(&mut self.world()),
        };
        tokio::time::sleep(latency / 2).await;
        match fault {
            Some((error, true)) => Err(error),
            _ => Ok(result),
        }
    }
}

impl LambdaEdge for SimLambda {
    fn alias(&self, _role: Role, _function: String, _alias: String) -> BoxFuture<'_, Result<AliasRouting, AwsError>> {
        Box::pin(self.call("GetAlias", |world| world.alias.clone()))
    }

    fn set_alias(
        &self,
        _role: Role,
        _function: String,
        _alias: String,
        routing: AliasRouting,
    ) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            let stalled = self
                .call("UpdateAlias", move |world| {
                    if world.alias == routing {
                        world.redundant_sets += 1;
                        return false;
                    }
                    world.alias = routing.clone();
                    world.changes.push((Instant::now(), routing));
                    let stall = std::mem::take(&mut world.stall_next_set);
                    world.stalled |= stall;
                    stall
                })
                .await?;
            if stalled {
                tokio::time::sleep(STALL).await;
                self.world().stalled = false;
            }
            Ok(())
        })
    }

    fn invoke(
        &self,
        _role: Role,
        _function: String,
        payload: serde_json::Value,
    ) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(self.call("Invoke", move |world| {
            let field = |name: &str| payload[name].as_str().unwrap_or_default().to_string();
            world.invocations.push_back((field("DeploymentId"), field("LifecycleEventHookExecutionId")));
            world.invoked += 1;
        }))
    }
}

/// The ECS and ELBv2 edge of the simulator: not simulated. No scenario deploys to ECS
/// yet (the ECS planner is tested against the real state machine and the SDK edge
/// against moto); a call here fails the deployment with this reason.
pub struct Unsimulated;

impl Unsimulated {
    fn refuse<T: Send + 'static>(operation: &'static str) -> BoxFuture<'static, Result<T, AwsError>> {
        Box::pin(async move {
            Err(AwsError {
                operation,
                code: "NotSimulated".into(),
                message: "the simulator has no ECS or ELBv2".into(),
                kind: AwsErrorKind::Permanent,
            })
        })
    }
}

impl EcsEdge for Unsimulated {
    fn target_group(&self, _: Role, _: String) -> BoxFuture<'_, Result<TargetGroup, AwsError>> {
        Self::refuse("DescribeTargetGroups")
    }

    fn set_registered(&self, _: Role, _: String, _: Target, _: bool) -> BoxFuture<'_, Result<(), AwsError>> {
        Self::refuse("RegisterTargets")
    }

    fn target_state(&self, _: Role, _: String, _: Target) -> BoxFuture<'_, Result<Option<String>, AwsError>> {
        Self::refuse("DescribeTargetHealth")
    }

    fn listener_weights(&self, _: Role, _: String) -> BoxFuture<'_, Result<Vec<(String, i32)>, AwsError>> {
        Self::refuse("DescribeListeners")
    }

    fn set_listener_weights(&self, _: Role, _: String, _: Vec<(String, i32)>) -> BoxFuture<'_, Result<(), AwsError>> {
        Self::refuse("ModifyListener")
    }

    fn task_sets(&self, _: Role, _: String, _: String) -> BoxFuture<'_, Result<Vec<TaskSetInfo>, AwsError>> {
        Self::refuse("DescribeServices")
    }

    fn create_task_set(
        &self,
        _: Role,
        _: String,
        _: String,
        _: TaskSetSpec,
    ) -> BoxFuture<'_, Result<TaskSetInfo, AwsError>> {
        Self::refuse("CreateTaskSet")
    }

    fn set_primary(&self, _: Role, _: String, _: String, _: String) -> BoxFuture<'_, Result<(), AwsError>> {
        Self::refuse("UpdateServicePrimaryTaskSet")
    }

    fn delete_task_set(&self, _: Role, _: String, _: String, _: String) -> BoxFuture<'_, Result<(), AwsError>> {
        Self::refuse("DeleteTaskSet")
    }
}
