//! Recording the event log ([`crate::model::events`]) while commands apply: the
//! deployments a command can change are summed up before and after it, and each
//! difference becomes one numbered event.
//!
//! ```text
//!  command ──scope──▶ digests before ──apply──▶ digests after ──diff──▶ events 1 per change
//! ```
//!
//! A command that cannot change a deployment costs nothing here. A target report costs
//! the digest of the reported targets only, so a fleet of thousands reporting in waves
//! does not digest the whole deployment per report.

use std::collections::{BTreeMap, BTreeSet};

use crate::command::Command;
use crate::features::FeatureLevel;
use crate::model::deployment::{Deployment, DeploymentStatus, LifecycleEvent, TargetStatus};
use crate::model::events::{EventBody, EventType};
use crate::model::ids::{DeploymentId, UnixMillis};
use crate::{ClusterState, NodeId};

/// Which targets of a deployment a command can change.
#[derive(Clone, Debug)]
enum Scope {
    /// Any (and the deployment's own fields).
    All,
    /// These (and the deployment's own fields).
    Targets(BTreeSet<NodeId>),
}

/// A deployment as far as events see it.
#[derive(Clone, Debug, PartialEq)]
struct Digest {
    status: DeploymentStatus,
    waves: u32,
    rollback: Option<String>,
    traffic: Option<String>,
    /// By target id: its status and its lifecycle events' statuses.
    targets: BTreeMap<String, (TargetStatus, Vec<(String, String)>)>,
}

/// The digests taken before a command.
pub(crate) struct Before {
    deployments: Vec<(DeploymentId, Scope, Option<Digest>)>,
    /// How many deployments existed: those after it were created by the command.
    created_from: usize,
}

impl ClusterState {
    /// The digests `command` needs before it applies, or `None` when it changes no
    /// deployment or the cluster does not record events yet.
    pub(crate) fn events_before(&self, command: &Command) -> Option<Before> {
        if self.feature_level < FeatureLevel::EVENTS {
            return None;
        }
        let scopes = scopes(command);
        if scopes.is_empty() {
            return None;
        }
        let deployments = scopes
            .into_iter()
            .map(|(id, scope)| {
                let digest = self.deployments.get(&id).map(|deployment| digest(deployment, &scope));
                (id, scope, digest)
            })
            .collect();
        Some(Before { deployments, created_from: self.deployment_order.len() })
    }

    /// Records one event per difference between `before` and now.
    pub(crate) fn record_events(&mut self, before: Before, at: UnixMillis) {
        let created = self.deployment_order.get(before.created_from..).unwrap_or_default().to_vec();
        let named = before.deployments.into_iter();
        let new = created.into_iter().map(|id| (id, Scope::All, None));
        let mut events = Vec::new();
        let mut seen = BTreeSet::new();
        for (id, scope, old) in named.chain(new) {
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(deployment) = self.deployments.get(&id) else { continue };
            let now = digest(deployment, &scope);
            if old.as_ref() != Some(&now) {
                diff(deployment, old.as_ref(), &now, &mut events);
            }
        }
        for event in events {
            self.events.push(event, at);
        }
    }
}

/// The deployments `command` can change, and which of their targets.
fn scopes(command: &Command) -> Vec<(DeploymentId, Scope)> {
    let some = |ids: &[NodeId]| Scope::Targets(ids.iter().copied().collect());
    match command {
        Command::CreateDeployment { deployment_id, .. } => vec![(deployment_id.clone(), Scope::All)],
        Command::StartTargets { deployment_id, targets } => vec![(deployment_id.clone(), some(targets))],
        Command::FailTargets { deployment_id, targets } => {
            let ids: Vec<NodeId> = targets.iter().map(|(id, _)| *id).collect();
            vec![(deployment_id.clone(), some(&ids))]
        }
        Command::ReportTargets { reports } => {
            let mut by_deployment: BTreeMap<DeploymentId, BTreeSet<NodeId>> = BTreeMap::new();
            for report in reports {
                by_deployment.entry(report.deployment_id.clone()).or_default().insert(report.target_id);
            }
            by_deployment.into_iter().map(|(id, targets)| (id, Scope::Targets(targets))).collect()
        }
        Command::FinishDeployment(finish) => with_rollback(&finish.deployment_id, finish.rollback_id.as_ref()),
        Command::StopDeployment { deployment_id, rollback_id }
        | Command::StopOnAlarm { deployment_id, rollback_id, .. } => with_rollback(deployment_id, rollback_id.as_ref()),
        Command::SetTargetTraffic { deployment_id, target_id, .. } => {
            vec![(deployment_id.clone(), some(&[*target_id]))]
        }
        Command::AdvanceBlueGreen { deployment_id, .. }
        | Command::AdvanceShift { deployment_id, .. }
        | Command::PutLifecycleEventHookExecutionStatus { deployment_id, .. }
        | Command::ContinueDeployment { deployment_id, .. } => vec![(deployment_id.clone(), Scope::All)],
        _ => Vec::new(),
    }
}

fn with_rollback(id: &DeploymentId, rollback: Option<&DeploymentId>) -> Vec<(DeploymentId, Scope)> {
    let mut scopes = vec![(id.clone(), Scope::All)];
    scopes.extend(rollback.map(|rollback| (rollback.clone(), Scope::All)));
    scopes
}

fn digest(deployment: &Deployment, scope: &Scope) -> Digest {
    let of_events = |events: &[LifecycleEvent]| {
        events.iter().map(|event| (event.lifecycle_event_name.clone(), format!("{:?}", event.status))).collect()
    };
    let mut targets = BTreeMap::new();
    let wanted = |id: &NodeId| match scope {
        Scope::All => true,
        Scope::Targets(ids) => ids.contains(id),
    };
    for target in deployment.targets.values().filter(|target| wanted(&target.target_id)) {
        targets.insert(target.target_id.to_string(), (target.status, of_events(&target.lifecycle_events)));
    }
    if let Some(run) = &deployment.shift {
        targets.insert(run.spec.target_id(), (run.status, of_events(&run.lifecycle_events)));
    }
    Digest {
        status: deployment.status,
        waves: deployment.waves,
        rollback: deployment.rollback_info.as_ref().map(|info| {
            match (&info.rollback_deployment_id, &info.rollback_triggering_deployment_id) {
                (Some(rollback), _) => format!("rolled back by {rollback}"),
                (None, Some(triggering)) => format!("rolls back {triggering}"),
                (None, None) => info.rollback_message.clone(),
            }
        }),
        traffic: traffic_step(deployment),
        targets,
    }
}

/// Where a deployment's traffic is, in words; `None` for deployments that move none.
fn traffic_step(deployment: &Deployment) -> Option<String> {
    if let Some(run) = &deployment.blue_green {
        let share = run.green_percent.map(|percent| format!(", {percent}% of new connections to green"));
        return Some(format!("blue/green phase {:?}{}", run.phase, share.unwrap_or_default()));
    }
    let run = deployment.shift.as_ref()?;
    let steps = run.weights.len();
    let applied = usize::try_from(run.applied_steps).unwrap_or(usize::MAX);
    let weight = applied.checked_sub(1).and_then(|index| run.weights.get(index)).copied().unwrap_or(0);
    Some(format!("step {applied} of {steps}: {weight}% to the new version"))
}

/// The events from `old` (none: a new deployment) to `now`, in a fixed order: the
/// deployment's status, waves, traffic, rollback, then each target's lifecycle events
/// and status.
fn diff(deployment: &Deployment, old: Option<&Digest>, now: &Digest, events: &mut Vec<EventBody>) {
    let event = |kind: EventType| EventBody {
        kind,
        application_name: deployment.application_name.clone(),
        deployment_group_name: deployment.deployment_group_name.clone(),
        deployment_id: deployment.deployment_id.clone(),
        target_id: None,
        lifecycle_event_name: None,
        status: None,
        message: None,
    };
    if old.map(|old| old.status) != Some(now.status) {
        // A deployment created already started shows Created first.
        if old.is_none() && now.status != DeploymentStatus::Created {
            events.push(EventBody { status: Some("Created".into()), ..event(EventType::DeploymentStatusChanged) });
        }
        let status = format!("{:?}", now.status);
        events.push(EventBody { status: Some(status), ..event(EventType::DeploymentStatusChanged) });
    }
    for wave in old.map_or(0, |old| old.waves) + 1..=now.waves {
        let message = format!("wave {wave} started");
        events.push(EventBody { message: Some(message), ..event(EventType::WaveStarted) });
    }
    if now.traffic.is_some() && old.map(|old| &old.traffic) != Some(&now.traffic) {
        events.push(EventBody { message: now.traffic.clone(), ..event(EventType::TrafficShifted) });
    }
    if now.rollback.is_some() && old.map(|old| &old.rollback) != Some(&now.rollback) {
        events.push(EventBody { message: now.rollback.clone(), ..event(EventType::RollbackLinked) });
    }
    for (id, (status, lifecycle)) in &now.targets {
        let before = old.and_then(|old| old.targets.get(id));
        let target = |kind| EventBody { target_id: Some(id.clone()), ..event(kind) };
        for (index, (name, state)) in lifecycle.iter().enumerate() {
            let was = before.and_then(|(_, events)| events.get(index));
            // A pending event that was never anything else is no news.
            let news = match was {
                Some((was_name, was_state)) => was_name != name || was_state != state,
                None => state != "Pending",
            };
            if news {
                let (name, state) = (Some(name.clone()), Some(state.clone()));
                events.push(EventBody {
                    lifecycle_event_name: name,
                    status: state,
                    ..target(EventType::LifecycleEventChanged)
                });
            }
        }
        // Likewise a target that appears pending.
        let was = before.map(|(status, _)| *status);
        if was != Some(*status) && !(was.is_none() && *status == TargetStatus::Pending) {
            events.push(EventBody { status: Some(format!("{status:?}")), ..target(EventType::TargetStatusChanged) });
        }
    }
}

#[cfg(test)]
mod tests;
