//! The planner of Lambda and ECS deployments (`codedeploy.md` §2.6–2.8): what the leader
//! does next for a deployment that moves a function's alias or an ECS service's
//! listeners, from the replicated run and the time alone.
//!
//! ```text
//!  BeforeAllowTraffic ─▶ AllowTraffic ─────────────────────────▶ AfterAllowTraffic
//!   StartEvent            StartEvent                               StartEvent
//!   InvokeHook ─▶ HookInvoked   BeginWeight i ─▶ SetWeight i ─▶ WeightApplied i   …
//!   (wait for PutLifecycleEventHookExecutionStatus or the timeout)  (wait interval)
//! ```
//!
//! Each AWS call is bracketed by commits: the hook's execution (with its id) and a
//! weight's step are committed before the call, and the call's success after. A new
//! leader that finds a step begun and not confirmed sets that weight again (the shell
//! reads the alias first and skips the call when the weight is already in place); a
//! hook committed and not confirmed invoked is invoked again with the same execution id.
//!
//! ECS adds three action events and a last step (§2.7): `Install` resolves the target
//! groups and the serving task set (committed), then creates the replacement with the
//! deployment's id as its external id (so a new leader finds it instead of creating a
//! second); `AllowTestTraffic` sends the test listener to green; `AllowTraffic` moves
//! the production listener's weights in the steps above; after the events and the
//! group's termination wait the replacement becomes primary and the original goes.

use fleetmesh_state::model::deployment::{Deployment, ErrorCode, ErrorInformation, LifecycleEventStatus};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::shift::{EcsProgress, LambdaSpec, ShiftRun, ShiftStep, SHIFT_EVENT};

/// How long a hook may take to report its status by default (§2.8: one hour).
pub const HOOK_TIMEOUT_MS_DEFAULT: u64 = 3_600_000;

/// What the leader does next for a Lambda deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShiftMove {
    /// Commit this step.
    Commit(ShiftStep),
    /// Invoke the running hook's function, then commit [`ShiftStep::HookInvoked`].
    InvokeHook {
        /// The function.
        function: String,
        /// Its `LifecycleEventHookExecutionId`.
        execution_id: String,
    },
    /// Move the alias to step `index`, then commit [`ShiftStep::WeightApplied`].
    SetWeight {
        /// The step.
        index: u32,
        /// The target version's share, in percent.
        weight: u32,
    },
    /// ECS, in `Install`: read the production listener and the service's task sets,
    /// then commit [`ShiftStep::EcsResolved`].
    ResolveEcs,
    /// ECS, in `Install`: create the replacement task set (or find the one a dead leader
    /// created, by its external id), then commit [`ShiftStep::TaskSetCreated`].
    CreateTaskSet,
    /// ECS, in `AllowTestTraffic`: send the test listener to green, then commit
    /// [`ShiftStep::TestTrafficRouted`].
    RouteTestTraffic,
    /// ECS, after the events and the termination wait: make the replacement primary and
    /// delete the original, then commit [`ShiftStep::Retired`].
    Retire,
    /// End the deployment.
    Finish {
        /// True when every event succeeded or was skipped.
        succeeded: bool,
        /// Why it failed.
        error: Option<ErrorInformation>,
    },
    /// Nothing to do until this time (a hook's deadline, the next step), or until the
    /// state changes (`None`).
    Wait(Option<UnixMillis>),
}

/// The next move of `deployment` at `now`; `hook_timeout_ms` bounds a hook's wait.
pub fn next_move(deployment: &Deployment, now: UnixMillis, hook_timeout_ms: u64) -> ShiftMove {
    let Some(run) = &deployment.shift else { return ShiftMove::Wait(None) };
    if run.failed() {
        return ShiftMove::Finish { succeeded: false, error: run.error.clone() };
    }
    let Some((_, event)) = run.current_event() else {
        return finish_move(run, now);
    };
    let name = event.lifecycle_event_name.as_str();
    if event.status == LifecycleEventStatus::Pending {
        if skips(run, name) {
            return ShiftMove::Commit(ShiftStep::EndEvent { status: LifecycleEventStatus::Skipped, error: None });
        }
        return ShiftMove::Commit(ShiftStep::StartEvent);
    }
    if let Some(hook) = &run.hook {
        if !hook.invoked {
            return ShiftMove::InvokeHook { function: hook.function.clone(), execution_id: hook.execution_id.clone() };
        }
        let deadline = UnixMillis(event.start_time.unwrap_or(now).0.saturating_add(hook_timeout_ms));
        if now >= deadline {
            let error = ErrorInformation {
                code: ErrorCode::HookExecutionFailure,
                message: format!(
                    "the {name} hook {} did not report its status within {} s \
                     (PutLifecycleEventHookExecutionStatus)",
                    hook.function,
                    hook_timeout_ms / 1000
                ),
            };
            return ShiftMove::Commit(ShiftStep::EndEvent { status: LifecycleEventStatus::Failed, error: Some(error) });
        }
        return ShiftMove::Wait(Some(deadline));
    }
    let ecs = run.ecs.as_ref();
    match name {
        SHIFT_EVENT => shift_move(run, now),
        "Install" if ecs.is_none() => ShiftMove::ResolveEcs,
        "Install" if ecs.is_some_and(|ecs| ecs.replacement.is_none()) => ShiftMove::CreateTaskSet,
        "AllowTestTraffic" if ecs.is_some_and(|ecs| !ecs.test_traffic_routed) => ShiftMove::RouteTestTraffic,
        _ => ShiftMove::Commit(ShiftStep::EndEvent { status: LifecycleEventStatus::Succeeded, error: None }),
    }
}

/// True when the pending event `name` has nothing to do: a hook event without a hook,
/// ECS's `Install` in a rollback (the task sets exist), `AllowTestTraffic` without a
/// test listener.
fn skips(run: &ShiftRun, name: &str) -> bool {
    match (name, run.spec.ecs()) {
        (SHIFT_EVENT, _) => false,
        ("Install", Some(ecs)) => ecs.rollback.is_some(),
        ("AllowTestTraffic", Some(ecs)) => ecs.test_listener.is_none(),
        _ => run.spec.hook(name).is_none(),
    }
}

/// Every event succeeded: an ECS run retires the original task set after the
/// termination wait, then the deployment ends.
fn finish_move(run: &ShiftRun, now: UnixMillis) -> ShiftMove {
    if run.retired() {
        return ShiftMove::Finish { succeeded: true, error: None };
    }
    let wait = run.spec.ecs().map_or(0, |ecs| ecs.termination_wait_ms);
    let ended = run.lifecycle_events.iter().filter_map(|event| event.end_time).max().unwrap_or(now);
    let due = UnixMillis(ended.0.saturating_add(wait));
    if now >= due {
        ShiftMove::Retire
    } else {
        ShiftMove::Wait(Some(due))
    }
}

/// The next move inside `AllowTraffic`.
fn shift_move(run: &ShiftRun, now: UnixMillis) -> ShiftMove {
    if let Some(index) = run.committed_step {
        let weight = run.weights.get(index as usize).copied().unwrap_or(100);
        return ShiftMove::SetWeight { index, weight };
    }
    let index = run.applied_steps;
    if index as usize >= run.weights.len() {
        return ShiftMove::Commit(ShiftStep::EndEvent { status: LifecycleEventStatus::Succeeded, error: None });
    }
    let due = match run.last_shift_at {
        Some(last) if index > 0 => UnixMillis(last.0.saturating_add(run.interval_ms)),
        _ => now,
    };
    if now >= due {
        ShiftMove::Commit(ShiftStep::BeginWeight { index })
    } else {
        ShiftMove::Wait(Some(due))
    }
}

/// The alias routing step `weight` means for `spec`: the target version's share in
/// percent, the rest on the current version; 100 is the target version alone.
pub fn routing_of(spec: &LambdaSpec, weight: u32) -> (String, Option<(String, f64)>) {
    let (current, target) = (spec.current_version.to_string(), spec.target_version.to_string());
    if weight >= 100 || current == target {
        (target, None)
    } else {
        (current, Some((target, f64::from(weight) / 100.0)))
    }
}

/// An ECS production listener's forward at step `weight`: green's share in percent,
/// the rest on blue, as (target group ARN, weight) pairs.
pub fn listener_weights(progress: &EcsProgress, weight: u32) -> Vec<(String, i32)> {
    let green = i32::try_from(weight.min(100)).unwrap_or(100);
    vec![(progress.blue_target_group.clone(), 100 - green), (progress.green_target_group.clone(), green)]
}

#[cfg(test)]
mod tests;
