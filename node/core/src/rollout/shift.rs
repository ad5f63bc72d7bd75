//! The planner of Lambda deployments (`codedeploy.md` §2.6, §2.8): what the leader does
//! next for a deployment that moves a function's alias, from the replicated run and
//! the time alone.
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

use fleetmesh_state::model::deployment::{Deployment, ErrorCode, ErrorInformation, LifecycleEventStatus};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::shift::{ShiftRun, ShiftSpec, ShiftStep, SHIFT_EVENT};

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
        return ShiftMove::Finish { succeeded: true, error: None };
    };
    let name = event.lifecycle_event_name.as_str();
    if event.status == LifecycleEventStatus::Pending {
        if name != SHIFT_EVENT && run.spec.hook(name).is_none() {
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
    if name != SHIFT_EVENT {
        return ShiftMove::Commit(ShiftStep::EndEvent { status: LifecycleEventStatus::Succeeded, error: None });
    }
    shift_move(run, now)
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
pub fn routing_of(spec: &ShiftSpec, weight: u32) -> (String, Option<(String, f64)>) {
    let (current, target) = (spec.current_version.to_string(), spec.target_version.to_string());
    if weight >= 100 || current == target {
        (target, None)
    } else {
        (current, Some((target, f64::from(weight) / 100.0)))
    }
}

#[cfg(test)]
mod tests;
