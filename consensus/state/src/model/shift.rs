//! A Lambda deployment's progress (feature level 13): one target, the function's alias,
//! moved from one version to another in committed steps.
//!
//! Every step is committed before the leader calls AWS and confirmed after, so a new
//! leader knows which call may be in flight: the step committed and not confirmed. It
//! reads the alias back before calling again, and a weight is applied once.

use serde::{Deserialize, Serialize};

use crate::model::deployment::{
    Diagnostics, ErrorCode, ErrorInformation, LifecycleErrorCode, LifecycleEvent, LifecycleEventStatus, TargetStatus,
};
use crate::model::ids::{DeploymentId, UnixMillis};
use crate::model::traffic_routing::TrafficRouting;

mod ecs;

pub use ecs::{EcsProgress, EcsSpec, EcsTaskSet, ECS_EVENTS};

/// The Lambda events in run order (§2.6).
pub const LAMBDA_EVENTS: [&str; 3] = ["BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic"];

/// The event that moves traffic; the others run hooks.
pub const SHIFT_EVENT: &str = "AllowTraffic";

/// What a Lambda deployment moves, read from its AppSpec by the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LambdaSpec {
    /// The function's name or ARN.
    pub function_name: String,
    /// The alias that moves.
    pub alias: String,
    /// The version the alias points to now.
    pub current_version: u64,
    /// The version it moves to.
    pub target_version: u64,
    /// Hook functions: (event, function), in run order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<(String, String)>,
}

impl LambdaSpec {
    /// The spec that moves the alias back: target and current swapped, no hooks.
    pub fn reversed(&self) -> Self {
        Self {
            function_name: self.function_name.clone(),
            alias: self.alias.clone(),
            current_version: self.target_version,
            target_version: self.current_version,
            hooks: Vec::new(),
        }
    }
}

/// What a Lambda or ECS deployment moves. Stored untagged: a Lambda spec reads as it
/// did at level 13, and an ECS spec (level 14) has none of its required fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ShiftSpec {
    /// A function's alias, moved between two versions.
    Lambda(LambdaSpec),
    /// An ECS service's traffic, moved from its task set to a replacement.
    Ecs(Box<EcsSpec>),
}

impl ShiftSpec {
    /// The target's id, AWS's form: `<function>:<alias>` or `<cluster>:<service>`.
    pub fn target_id(&self) -> String {
        match self {
            Self::Lambda(spec) => format!("{}:{}", spec.function_name, spec.alias),
            Self::Ecs(spec) => format!("{}:{}", spec.cluster, spec.service),
        }
    }

    /// The hook function of `event`, if the AppSpec names one.
    pub fn hook(&self, event: &str) -> Option<&str> {
        let hooks = match self {
            Self::Lambda(spec) => &spec.hooks,
            Self::Ecs(spec) => &spec.hooks,
        };
        hooks.iter().find(|(name, _)| name == event).map(|(_, function)| function.as_str())
    }

    /// The events of a run, in order.
    pub fn events(&self) -> &'static [&'static str] {
        match self {
            Self::Lambda(_) => &LAMBDA_EVENTS,
            Self::Ecs(_) => &ECS_EVENTS,
        }
    }

    /// The Lambda spec, if this is one.
    pub fn lambda(&self) -> Option<&LambdaSpec> {
        match self {
            Self::Lambda(spec) => Some(spec),
            Self::Ecs(_) => None,
        }
    }

    /// The ECS spec, if this is one.
    pub fn ecs(&self) -> Option<&EcsSpec> {
        match self {
            Self::Ecs(spec) => Some(spec),
            Self::Lambda(_) => None,
        }
    }
}

/// A hook function's run: invoked with its execution id, ended by
/// `PutLifecycleEventHookExecutionStatus` or its timeout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookExecution {
    /// The event it runs for.
    pub event: String,
    /// `lifecycleEventHookExecutionId`.
    pub execution_id: String,
    /// The function.
    pub function: String,
    /// The invocation was accepted by Lambda (after it was committed: a leader that
    /// dies between the two invokes again, with the same id).
    pub invoked: bool,
}

/// A Lambda deployment's run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShiftRun {
    /// What moves.
    pub spec: ShiftSpec,
    /// The target version's share after each step, in percent; the last is 100.
    pub weights: Vec<u32>,
    /// The wait between steps, in milliseconds.
    pub interval_ms: u64,
    /// The target's status.
    pub status: TargetStatus,
    /// The events of [`ShiftSpec::events`].
    pub lifecycle_events: Vec<LifecycleEvent>,
    /// The step being applied: committed, not yet confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_step: Option<u32>,
    /// Steps confirmed applied (the next step's index).
    pub applied_steps: u32,
    /// When the last step was confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_shift_at: Option<UnixMillis>,
    /// The hook running now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<HookExecution>,
    /// The IAM role its AWS calls run as (the group's `serviceRoleArn` at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Why an event failed: what the deployment fails with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInformation>,
    /// An ECS deployment's task sets and target groups, once found (level 14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsProgress>,
    /// Last change.
    pub last_updated_at: UnixMillis,
}

/// Why a step or a hook's status does not apply (a late or repeated proposal).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StepRefused(pub String);

/// A step of a Lambda deployment, proposed by the leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShiftStep {
    /// The next pending event starts; a hook event with a hook gets its execution.
    StartEvent,
    /// The running hook's invocation was accepted.
    HookInvoked,
    /// The weight of step `index` is about to be set.
    BeginWeight {
        /// Index into [`ShiftRun::weights`].
        index: u32,
    },
    /// The weight of step `index` is in place.
    WeightApplied {
        /// Index into [`ShiftRun::weights`].
        index: u32,
    },
    /// The running event ends.
    EndEvent {
        /// Succeeded, Failed or Skipped.
        status: LifecycleEventStatus,
        /// Why it failed: the deployment's error and the event's diagnostics.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorInformation>,
    },
    /// ECS, in `Install`: the target groups and the serving task set were read; the
    /// replacement is about to be created (level 14).
    EcsResolved(EcsProgress),
    /// ECS, in `Install`: the replacement task set exists.
    TaskSetCreated {
        /// Its ARN.
        arn: String,
    },
    /// ECS, in `AllowTestTraffic`: the test listener sends to green.
    TestTrafficRouted,
    /// ECS, after the events: the replacement is primary, the original deleted.
    Retired,
}

impl ShiftStep {
    /// True for the steps only ECS deployments take (level 14).
    pub fn is_ecs(&self) -> bool {
        matches!(self, Self::EcsResolved(_) | Self::TaskSetCreated { .. } | Self::TestTrafficRouted | Self::Retired)
    }
}

impl ShiftRun {
    /// A new run of `spec` with `routing`'s steps, all events pending.
    pub fn new(spec: ShiftSpec, routing: Option<TrafficRouting>, at: UnixMillis) -> Self {
        let (weights, interval_ms) = shift_weights(routing);
        let ecs = spec.ecs().and_then(|ecs| ecs.rollback.clone());
        Self {
            lifecycle_events: spec.events().iter().map(|name| LifecycleEvent::pending(name)).collect(),
            spec,
            weights,
            interval_ms,
            status: TargetStatus::Pending,
            committed_step: None,
            applied_steps: 0,
            last_shift_at: None,
            hook: None,
            role_arn: None,
            error: None,
            ecs,
            last_updated_at: at,
        }
    }

    /// The first event that has not ended, with its index.
    pub fn current_event(&self) -> Option<(usize, &LifecycleEvent)> {
        self.lifecycle_events.iter().enumerate().find(|(_, event)| !is_done(event.status))
    }

    /// The target version's share now (the last confirmed step's weight).
    pub fn applied_weight(&self) -> u32 {
        self.applied_steps.checked_sub(1).and_then(|index| self.weights.get(index as usize)).copied().unwrap_or(0)
    }

    /// True when any event failed.
    pub fn failed(&self) -> bool {
        self.lifecycle_events.iter().any(|event| event.status == LifecycleEventStatus::Failed)
    }

    /// Applies `step` at `at`; `deployment_id` names the hook executions.
    ///
    /// # Errors
    /// A step that does not follow from the run's state (a late or repeated proposal).
    pub fn advance(
        &mut self,
        step: &ShiftStep,
        deployment_id: &DeploymentId,
        at: UnixMillis,
    ) -> Result<(), StepRefused> {
        if *step == ShiftStep::Retired {
            self.retire()?;
            self.last_updated_at = at;
            return Ok(());
        }
        let (index, event) = self.current_event().ok_or_else(|| StepRefused("every event has ended".into()))?;
        let (name, status) = (event.lifecycle_event_name.clone(), event.status);
        match step {
            ShiftStep::StartEvent => {
                if status != LifecycleEventStatus::Pending {
                    return Err(StepRefused(format!("{name} already started")));
                }
                self.status = TargetStatus::InProgress;
                let event = &mut self.lifecycle_events[index];
                event.status = LifecycleEventStatus::InProgress;
                event.start_time = Some(at);
                self.hook = self.spec.hook(&name).map(|function| HookExecution {
                    event: name.clone(),
                    execution_id: execution_id(deployment_id, &name),
                    function: function.to_string(),
                    invoked: false,
                });
            }
            ShiftStep::HookInvoked => match &mut self.hook {
                Some(hook) if hook.event == name && !hook.invoked => hook.invoked = true,
                _ => return Err(StepRefused(format!("no hook of {name} waits for its invocation"))),
            },
            ShiftStep::BeginWeight { index: step } => {
                if name != SHIFT_EVENT || status != LifecycleEventStatus::InProgress {
                    return Err(StepRefused(format!(
                        "traffic moves in {SHIFT_EVENT}, and the deployment is at {name}"
                    )));
                }
                if *step != self.applied_steps || self.committed_step.is_some() || *step as usize >= self.weights.len()
                {
                    return Err(StepRefused(format!(
                        "step {step} does not follow {} applied step(s)",
                        self.applied_steps
                    )));
                }
                self.committed_step = Some(*step);
            }
            ShiftStep::WeightApplied { index: step } => {
                if self.committed_step != Some(*step) {
                    return Err(StepRefused(format!("step {step} was not begun")));
                }
                self.committed_step = None;
                self.applied_steps = step + 1;
                self.last_shift_at = Some(at);
            }
            ShiftStep::EcsResolved(_)
            | ShiftStep::TaskSetCreated { .. }
            | ShiftStep::TestTrafficRouted
            | ShiftStep::Retired => {
                if status != LifecycleEventStatus::InProgress {
                    return Err(StepRefused(format!("{name} is not running")));
                }
                self.advance_ecs(step, &name)?;
            }
            ShiftStep::EndEvent { status: end, error } => {
                if status != LifecycleEventStatus::InProgress && *end != LifecycleEventStatus::Skipped {
                    return Err(StepRefused(format!("{name} is not running")));
                }
                self.end_event(index, *end, error.clone(), at);
            }
        }
        self.last_updated_at = at;
        Ok(())
    }

    /// An ECS step inside the running event `name`.
    fn advance_ecs(&mut self, step: &ShiftStep, name: &str) -> Result<(), StepRefused> {
        let refused = || StepRefused(format!("{step:?} does not follow in {name}"));
        match (step, name, &mut self.ecs) {
            (ShiftStep::EcsResolved(found), "Install", ecs @ None) => *ecs = Some(found.clone()),
            (ShiftStep::TaskSetCreated { arn }, "Install", Some(ecs)) if ecs.replacement.is_none() => {
                ecs.replacement = Some(arn.clone());
            }
            (ShiftStep::TestTrafficRouted, "AllowTestTraffic", Some(ecs)) if !ecs.test_traffic_routed => {
                ecs.test_traffic_routed = true;
            }
            _ => return Err(refused()),
        }
        Ok(())
    }

    /// [`ShiftStep::Retired`]: every event succeeded, the original is gone.
    fn retire(&mut self) -> Result<(), StepRefused> {
        if self.current_event().is_some() || self.failed() {
            return Err(StepRefused("the original task set goes once every event succeeded".into()));
        }
        match &mut self.ecs {
            Some(ecs) if !ecs.retired => {
                ecs.retired = true;
                Ok(())
            }
            _ => Err(StepRefused("no original task set waits to be retired".into())),
        }
    }

    /// True when the run has nothing left to do in AWS after its events: a Lambda run,
    /// or an ECS run whose original task set was retired.
    pub fn retired(&self) -> bool {
        self.spec.ecs().is_none() || self.ecs.as_ref().is_some_and(|ecs| ecs.retired)
    }

    /// `PutLifecycleEventHookExecutionStatus`: ends the running hook's event.
    ///
    /// # Errors
    /// No hook runs with that id, or the status is not `Succeeded` or `Failed`.
    pub fn hook_status(
        &mut self,
        execution_id: &str,
        status: LifecycleEventStatus,
        at: UnixMillis,
    ) -> Result<(), StepRefused> {
        if !matches!(status, LifecycleEventStatus::Succeeded | LifecycleEventStatus::Failed) {
            return Err(StepRefused(format!("a hook's status is Succeeded or Failed, not {status:?}")));
        }
        let Some(hook) = self.hook.as_ref().filter(|hook| hook.execution_id == execution_id) else {
            return Err(StepRefused(format!("no lifecycle event hook execution {execution_id} is running")));
        };
        let event = hook.event.clone();
        let index = self
            .lifecycle_events
            .iter()
            .position(|candidate| candidate.lifecycle_event_name == event)
            .ok_or_else(|| StepRefused(format!("event {event} is not part of this deployment")))?;
        let error = (status == LifecycleEventStatus::Failed).then(|| ErrorInformation {
            code: ErrorCode::HookExecutionFailure,
            message: format!("the {event} hook {} reported Failed", hook.function),
        });
        self.end_event(index, status, error, at);
        self.last_updated_at = at;
        Ok(())
    }

    fn end_event(
        &mut self,
        index: usize,
        status: LifecycleEventStatus,
        error: Option<ErrorInformation>,
        at: UnixMillis,
    ) {
        let script_name = self.hook.take().map(|hook| hook.function).unwrap_or_default();
        let event = &mut self.lifecycle_events[index];
        event.status = status;
        event.end_time = Some(at);
        if status == LifecycleEventStatus::Failed {
            event.diagnostics = Some(Diagnostics {
                error_code: LifecycleErrorCode::ScriptFailed,
                script_name,
                message: error.as_ref().map_or_else(|| "failed".to_string(), |error| error.message.clone()),
                log_tail: String::new(),
            });
            self.error = Some(error.unwrap_or(ErrorInformation {
                code: ErrorCode::InternalError,
                message: format!("{} failed", event.lifecycle_event_name),
            }));
            for later in &mut self.lifecycle_events[index + 1..] {
                later.status = LifecycleEventStatus::Skipped;
            }
            self.status = TargetStatus::Failed;
        } else if self.current_event().is_none() {
            self.status = TargetStatus::Succeeded;
        }
    }

    /// Ends the run of a stopped deployment: the running event's outcome is unknown,
    /// the rest are skipped.
    pub fn stop(&mut self, at: UnixMillis) {
        for event in &mut self.lifecycle_events {
            match event.status {
                LifecycleEventStatus::InProgress => {
                    event.status = LifecycleEventStatus::Unknown;
                    event.end_time = Some(at);
                }
                LifecycleEventStatus::Pending => event.status = LifecycleEventStatus::Skipped,
                _ => {}
            }
        }
        self.hook = None;
        self.committed_step = None;
        if !self.status.is_terminal() {
            self.status = TargetStatus::Failed;
        }
        self.last_updated_at = at;
    }
}

fn is_done(status: LifecycleEventStatus) -> bool {
    !matches!(status, LifecycleEventStatus::Pending | LifecycleEventStatus::InProgress)
}

/// The hook execution id of `event` in `deployment_id`: derived, so every voter and
/// every leader agrees on it; opaque, like AWS's.
fn execution_id(deployment_id: &DeploymentId, event: &str) -> String {
    let digest = blake3::hash(format!("fleetmesh hook execution\0{deployment_id}\0{event}").as_bytes());
    digest.to_hex()[..32].to_string()
}

/// The target version's share after each step of `routing`, and the wait between
/// steps: canary `p` then 100; linear `p, 2p, …, 100`; all at once 100.
pub fn shift_weights(routing: Option<TrafficRouting>) -> (Vec<u32>, u64) {
    let Some(steps) = crate::model::blue_green::green_steps(routing) else { return (vec![100], 0) };
    let mut weights = vec![steps.first.min(100)];
    while let Some(&last) = weights.last().filter(|last| **last < 100) {
        weights.push(steps.after(last).min(100));
    }
    (weights, steps.interval_ms)
}

#[cfg(test)]
mod tests;
