//! What finished, read from the event log: the deployments and lifecycle events that
//! reached a final status, with their platform and how long they took. Every node reads
//! the same log, so each node's `/metrics` counts the same outcomes, and a node that
//! restarts counts them again from the log rather than losing them.

use crate::model::deployment::{Deployment, LifecycleEvent};
use crate::model::events::EventType;
use crate::model::shift::ShiftSpec;
use crate::ClusterState;

/// Something that reached a final status.
#[derive(Clone, Debug, PartialEq)]
pub enum Finished<'a> {
    /// A deployment ended: `Succeeded`, `Failed` or `Stopped`.
    Deployment {
        /// `Server`, `Lambda` or `ECS`.
        platform: &'static str,
        /// The final status.
        status: &'a str,
        /// From its start (its creation if it never started) to its end; none when the
        /// deployment is no longer kept.
        seconds: Option<f64>,
    },
    /// A lifecycle event ended on a target: `Succeeded`, `Failed` or `Skipped`.
    LifecycleEvent {
        /// `Server`, `Lambda` or `ECS`.
        platform: &'static str,
        /// `BeforeInstall`, `AfterAllowTraffic`, …
        lifecycle_event_name: &'a str,
        /// The final status.
        status: &'a str,
        /// From its start to its end; none when either is not recorded.
        seconds: Option<f64>,
    },
}

/// A deployment's compute platform, as CodeDeploy names it.
pub fn platform_of(deployment: &Deployment) -> &'static str {
    match deployment.shift.as_ref().map(|run| &run.spec) {
        None => "Server",
        Some(ShiftSpec::Lambda(_)) => "Lambda",
        Some(ShiftSpec::Ecs(_)) => "ECS",
    }
}

impl ClusterState {
    /// What finished in the events numbered after `after`, oldest first, and the number
    /// read through. Events purged by retention are passed over.
    pub fn finished_after(&self, after: u64) -> (Vec<Finished<'_>>, u64) {
        let after = after.max(self.events.first_kept().saturating_sub(1));
        let Ok(events) = self.events.since(after) else { return (Vec::new(), self.events.last_id) };
        let mut finished = Vec::new();
        for event in events {
            let what = &event.what;
            let Some(status) = what.status.as_deref() else { continue };
            let deployment = self.deployments.get(&what.deployment_id);
            let platform = deployment.map_or("Server", platform_of);
            match what.kind {
                EventType::DeploymentStatusChanged if matches!(status, "Succeeded" | "Failed" | "Stopped") => {
                    let seconds = deployment.and_then(|deployment| {
                        let start = deployment.start_time.unwrap_or(deployment.create_time);
                        let end = deployment.complete_time?;
                        Some(end.0.saturating_sub(start.0) as f64 / 1000.0)
                    });
                    finished.push(Finished::Deployment { platform, status, seconds });
                }
                EventType::LifecycleEventChanged if matches!(status, "Succeeded" | "Failed" | "Skipped") => {
                    let Some(name) = what.lifecycle_event_name.as_deref() else { continue };
                    let seconds = deployment
                        .and_then(|deployment| lifecycle_event(deployment, what.target_id.as_deref()?, name))
                        .and_then(|event| Some(event.end_time?.0.saturating_sub(event.start_time?.0) as f64 / 1000.0));
                    finished.push(Finished::LifecycleEvent { platform, lifecycle_event_name: name, status, seconds });
                }
                _ => {}
            }
        }
        (finished, self.events.last_id)
    }
}

/// The lifecycle event `name` of target `target_id` (a node id, or a Lambda/ECS target).
fn lifecycle_event<'a>(deployment: &'a Deployment, target_id: &str, name: &str) -> Option<&'a LifecycleEvent> {
    let events = match deployment.targets.values().find(|target| target.target_id.to_string() == target_id) {
        Some(target) => &target.lifecycle_events,
        None => &deployment.shift.as_ref().filter(|run| run.spec.target_id() == target_id)?.lifecycle_events,
    };
    events.iter().find(|event| event.lifecycle_event_name == name)
}

#[cfg(test)]
mod tests;
