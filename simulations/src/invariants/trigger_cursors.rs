//! Safety: a trigger's delivery cursor never moves past an event the trigger was to
//! send and did not, and a leader sends each trigger's events in order.
//!
//! The simulator's leaders run their real trigger duty with a recording stand-in sink
//! (`crate::trigger_sink`) that refuses some tries (drawn from the seed), so retries
//! and redeliveries happen; every try reaches this monitor as a [`DeliveryTry`]: the
//! node, its term, the trigger (name and target), the event's number and type, whether
//! it was accepted, and its place among all tries. The apply taps note, for each entry,
//! how many tries had been made when a node first applied it (the entry's mark), so a
//! check at an entry counts only deliveries made before the entry was committed.
//!
//! At every committed state (after each entry), for each trigger of each group whose
//! cursor moved: every event numbered above where the trigger was checked up to (at
//! first sight, the cursor it was created with: it sends what happens after it) and at
//! most its cursor, that the trigger is for, must have an accepted delivery of that
//! number and type to that trigger, made before the entry. "The trigger is for it":
//! the event is of one of the group's deployments (by group id; by names once the
//! deployment is gone) and its CodeDeploy type, mapped here from the event (deployment
//! status `InProgress`, `Succeeded`, `Failed`, `Stopped`, `Ready`; target status
//! `InProgress`, `Succeeded`, `Failed`, `Ready`; a rollback link "rolled back by"), is
//! one the trigger names. A cursor never moves back. Events the log no longer kept when
//! the cursor passed them (retention) cannot be checked; they are counted.
//!
//! Continuously: one node's tries of one trigger within one term never go back to a
//! lower event number (a repeat is a retry, or a redelivery after a failed commit).

use std::collections::BTreeMap;

use fleetmesh_state::model::events::{EventBody, EventType};
use fleetmesh_state::model::resources::DeploymentGroup;
use fleetmesh_state::model::triggers::{GroupTrigger, TriggerEventType};
use fleetmesh_state::{ClusterState, NodeId};

use super::Violation;

/// One try of a delivery, as the simulator's sink saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryTry {
    /// Its place among every try of the run (0, 1, 2, …).
    pub seq: u64,
    /// The node whose trigger duty made it.
    pub node: NodeId,
    /// That node's Raft term when it made it.
    pub term: u64,
    /// The trigger's name.
    pub trigger: String,
    /// The trigger's target (URL or topic ARN).
    pub target: String,
    /// The event's number.
    pub event_id: u64,
    /// The CodeDeploy event type it was sent as.
    pub kind: TriggerEventType,
    /// True when the sink accepted it.
    pub accepted: bool,
}

/// A trigger as deliveries name it: its name and target.
type Sent = (String, String);

/// A trigger in the state: its group's application and id, and its name.
type Key = (String, String, String);

/// The trigger-cursor monitor.
#[derive(Debug, Default)]
pub struct TriggerCursors {
    /// Per trigger, per event number: the first accepted try's place and type.
    delivered: BTreeMap<Sent, BTreeMap<u64, (u64, TriggerEventType)>>,
    /// Per trigger, node and term: the highest event number tried.
    highest_try: BTreeMap<(Sent, NodeId, u64), u64>,
    /// Per trigger: the cursor checked up to.
    checked: BTreeMap<Key, u64>,
    /// Tries accepted.
    pub deliveries: u64,
    /// Tries refused (retried by the leader).
    pub refused: u64,
    /// Events checked to have been delivered before a cursor passed them.
    pub events_checked: u64,
    /// Events a cursor passed after retention had dropped them (not checkable).
    pub purged_unchecked: u64,
    violation: Option<Violation>,
}

/// The CodeDeploy event type of `event`, if it is one triggers send.
fn trigger_type(event: &EventBody) -> Option<TriggerEventType> {
    let status = event.status.as_deref();
    let kind = match (event.kind, status) {
        (EventType::DeploymentStatusChanged, Some("InProgress")) => TriggerEventType::DeploymentStart,
        (EventType::DeploymentStatusChanged, Some("Succeeded")) => TriggerEventType::DeploymentSuccess,
        (EventType::DeploymentStatusChanged, Some("Failed")) => TriggerEventType::DeploymentFailure,
        (EventType::DeploymentStatusChanged, Some("Stopped")) => TriggerEventType::DeploymentStop,
        (EventType::DeploymentStatusChanged, Some("Ready")) => TriggerEventType::DeploymentReady,
        (EventType::TargetStatusChanged, Some("InProgress")) => TriggerEventType::InstanceStart,
        (EventType::TargetStatusChanged, Some("Succeeded")) => TriggerEventType::InstanceSuccess,
        (EventType::TargetStatusChanged, Some("Failed")) => TriggerEventType::InstanceFailure,
        (EventType::TargetStatusChanged, Some("Ready")) => TriggerEventType::InstanceReady,
        (EventType::RollbackLinked, _)
            if event.message.as_deref().is_some_and(|text| text.starts_with("rolled back by")) =>
        {
            TriggerEventType::DeploymentRollback
        }
        _ => return None,
    };
    Some(kind)
}

/// True when `event` is about one of `group`'s deployments.
fn of_group(state: &ClusterState, group: &DeploymentGroup, event: &EventBody) -> bool {
    match state.deployments.get(&event.deployment_id) {
        Some(deployment) => {
            deployment.application_name == group.application_name
                && deployment.deployment_group_id == group.deployment_group_id
        }
        None => {
            event.application_name == group.application_name
                && event.deployment_group_name == group.deployment_group_name
        }
    }
}

impl TriggerCursors {
    /// Records `tries` (in their order) and checks each node's order per trigger and term.
    pub fn record(&mut self, tries: &[DeliveryTry]) {
        for attempt in tries {
            let sent = (attempt.trigger.clone(), attempt.target.clone());
            if attempt.accepted {
                self.deliveries += 1;
                let first = self.delivered.entry(sent.clone()).or_default();
                first.entry(attempt.event_id).or_insert((attempt.seq, attempt.kind));
            } else {
                self.refused += 1;
            }
            let highest = self.highest_try.entry((sent, attempt.node, attempt.term)).or_insert(attempt.event_id);
            if attempt.event_id < *highest && self.violation.is_none() {
                self.violation = Some(Violation::new(format!(
                    "node {} in term {} tried event {} of trigger {} after event {}",
                    attempt.node, attempt.term, attempt.event_id, attempt.trigger, highest
                )));
            }
            *highest = (*highest).max(attempt.event_id);
        }
    }

    /// Checks the triggers of `state`, the state after entry `index`, which was first
    /// applied when `mark` tries had been made.
    pub fn check(&mut self, state: &ClusterState, index: u64, mark: u64) {
        if self.violation.is_some() {
            return;
        }
        for group in state.deployment_groups.values().flat_map(|groups| groups.values()) {
            for trigger in &group.triggers {
                let name = &trigger.config.trigger_name;
                let key = (group.application_name.clone(), group.deployment_group_id.clone(), name.clone());
                let cursor = trigger.delivered_through;
                let from = *self.checked.entry(key.clone()).or_insert(cursor);
                if cursor == from {
                    continue;
                }
                let problem = match cursor < from {
                    true => Err(Violation::new(format!("its cursor moved back from {from} to {cursor}"))),
                    false => self.check_span(state, group, trigger, (from, cursor), mark),
                };
                if let Err(problem) = problem {
                    self.violation = Some(Violation::new(format!(
                        "trigger {name} of group {} at entry {index}: {}",
                        group.deployment_group_name,
                        problem.reason()
                    )));
                    return;
                }
                self.checked.insert(key, cursor);
            }
        }
    }

    /// Checks the events numbered in `from + 1 ..= cursor` for `trigger` of `group`.
    fn check_span(
        &mut self,
        state: &ClusterState,
        group: &DeploymentGroup,
        trigger: &GroupTrigger,
        (from, cursor): (u64, u64),
        mark: u64,
    ) -> Result<(), Violation> {
        let first_kept = state.events.first_kept();
        if from + 1 < first_kept {
            self.purged_unchecked += cursor.min(first_kept - 1) - from;
        }
        let Ok(events) = state.events.since(from.max(first_kept.saturating_sub(1))) else { return Ok(()) };
        let sent = (trigger.config.trigger_name.clone(), trigger.config.trigger_target_arn.clone());
        let delivered = self.delivered.get(&sent);
        for event in events.take_while(|event| event.id <= cursor) {
            let Some(kind) = trigger_type(&event.what) else { continue };
            if !trigger.config.trigger_events.contains(&kind) || !of_group(state, group, &event.what) {
                continue;
            }
            self.events_checked += 1;
            match delivered.and_then(|delivered| delivered.get(&event.id)) {
                Some((seq, as_kind)) if *seq < mark && *as_kind == kind => {}
                Some((seq, as_kind)) if *seq < mark => {
                    return Err(Violation::new(format!("event {} ({kind:?}) was delivered as {as_kind:?}", event.id)));
                }
                _ => {
                    return Err(Violation::new(format!(
                        "its cursor moved to {cursor}, past event {} ({kind:?} of deployment {}), which no delivery \
                         had reached",
                        event.id, event.what.deployment_id
                    )));
                }
            }
        }
        Ok(())
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;
