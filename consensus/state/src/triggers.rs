//! Triggers in the state: the checks a group's `triggerConfigurations` pass, a new or
//! updated trigger's cursor, the cursor's advance ([`crate::Command::AdvanceTriggerCursor`])
//! and the backlog a trigger has to deliver.

use std::collections::{BTreeMap, BTreeSet};

use crate::command::{ApplyError, Outcome};
use crate::model::events::{DeploymentEvent, Purged};
use crate::model::resources::DeploymentGroup;
use crate::model::triggers::{
    is_sns_topic_arn, is_webhook_url, GroupTrigger, TriggerConfig, TriggerCursor, TriggerEventType,
    SEALED_TRIGGER_SECRET_CHARS_MAX, TRIGGERS_MAX, TRIGGER_NAME_CHARS_MAX, TRIGGER_TARGET_CHARS_MAX,
};
use crate::ClusterState;

/// A trigger: its group's application and id, and its name.
pub type TriggerKey = (String, String, String);

/// How far [`ClusterState::triggers_with_backlog`] has looked at each trigger's events
/// without finding one to send, with the event types it looked for.
#[derive(Debug, Default)]
pub struct TriggerScan {
    marks: BTreeMap<TriggerKey, (u64, Vec<TriggerEventType>)>,
}

/// The checks a group's triggers pass, created or updated.
pub(crate) fn check_triggers(triggers: &[TriggerConfig]) -> Result<(), ApplyError> {
    if triggers.len() > TRIGGERS_MAX {
        return Err(ApplyError::invalid(format!(
            "a deployment group has at most {TRIGGERS_MAX} triggers; {} were given",
            triggers.len()
        )));
    }
    let mut names = BTreeSet::new();
    for trigger in triggers {
        let name = trigger.trigger_name.as_str();
        let shown: String = name.chars().take(TRIGGER_NAME_CHARS_MAX).collect();
        if name.is_empty() || name.chars().count() > TRIGGER_NAME_CHARS_MAX || name.chars().any(char::is_control) {
            return Err(ApplyError::invalid(format!(
                "trigger name {shown:?} must be 1 to {TRIGGER_NAME_CHARS_MAX} printable characters"
            )));
        }
        if !names.insert(name) {
            return Err(ApplyError::invalid(format!("two triggers are named {shown:?}")));
        }
        let target = trigger.trigger_target_arn.as_str();
        if target.len() > TRIGGER_TARGET_CHARS_MAX || !(is_webhook_url(target) || is_sns_topic_arn(target)) {
            let target: String = target.chars().take(200).collect();
            return Err(ApplyError::invalid(format!(
                "trigger {shown}: triggerTargetArn {target:?} is neither an http(s):// URL (a webhook) nor an SNS \
                 topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)"
            )));
        }
        if trigger.trigger_events.is_empty() {
            return Err(ApplyError::invalid(format!("trigger {shown} names no triggerEvents")));
        }
        if trigger.sealed_secret.as_ref().is_some_and(|sealed| sealed.len() > SEALED_TRIGGER_SECRET_CHARS_MAX) {
            return Err(ApplyError::invalid(format!("trigger {shown}: the secret is too long")));
        }
    }
    Ok(())
}

impl ClusterState {
    /// A group's triggers as `configs` has them, given the ones it had (`old`): a trigger
    /// kept by name keeps its cursor and, when the spec leaves the secret out, its secret;
    /// a new one starts at the last event numbered so far (it sends what happens from now
    /// on, not the past).
    pub(crate) fn new_triggers(&self, old: &[GroupTrigger], configs: &[TriggerConfig]) -> Vec<GroupTrigger> {
        configs
            .iter()
            .map(|config| {
                let before = old.iter().find(|trigger| trigger.config.trigger_name == config.trigger_name);
                let sealed_secret = match (&config.sealed_secret, before) {
                    (Some(secret), _) if secret.is_empty() => None,
                    (Some(secret), _) => Some(secret.clone()),
                    (None, Some(before)) => before.config.sealed_secret.clone(),
                    (None, None) => None,
                };
                let mut events = config.trigger_events.clone();
                events.sort_unstable();
                events.dedup();
                GroupTrigger {
                    config: TriggerConfig { sealed_secret, trigger_events: events, ..config.clone() },
                    delivered_through: before.map_or(self.events.last_id, |before| before.delivered_through),
                }
            })
            .collect()
    }

    /// `AdvanceTriggerCursor`: the trigger `trigger_name` of the group with id `group_id`
    /// delivered every event up to `delivered_through`. A cursor never moves back (a
    /// stale advance is a no-op) nor past the last event.
    pub(crate) fn advance_trigger_cursor(&mut self, cursor: &TriggerCursor) -> Result<Outcome, ApplyError> {
        let TriggerCursor { application_name, deployment_group_id: group_id, trigger_name, delivered_through } = cursor;
        let delivered_through = *delivered_through;
        let last = self.events.last_id;
        if delivered_through > last {
            return Err(ApplyError::invalid(format!(
                "a trigger cursor cannot pass the last event ({delivered_through} > {last})"
            )));
        }
        let trigger = self
            .deployment_groups
            .get_mut(application_name.as_str())
            .and_then(|groups| groups.values_mut().find(|group| group.deployment_group_id == *group_id))
            .and_then(|group| group.triggers.iter_mut().find(|trigger| trigger.config.trigger_name == *trigger_name))
            .ok_or_else(|| {
                ApplyError::not_found(format!(
                    "trigger {trigger_name} of deployment group {group_id} (application {application_name}) does not \
                     exist"
                ))
            })?;
        trigger.delivered_through = trigger.delivered_through.max(delivered_through);
        Ok(Outcome::Done)
    }

    /// The events `trigger` of `group` still has to send, in order, each with its
    /// CodeDeploy event type: those after its cursor, of the group's deployments, of a
    /// type it names.
    ///
    /// `scanned_through` lets a caller that already looked at events up to a number skip
    /// them (the leader's delivery task, which asks after every change): the walk starts
    /// after the larger of it and the cursor.
    ///
    /// # Errors
    /// Retention dropped events the cursor has not passed.
    pub fn trigger_backlog<'a>(
        &'a self,
        group: &'a DeploymentGroup,
        trigger: &'a GroupTrigger,
        scanned_through: u64,
    ) -> Result<impl Iterator<Item = (&'a DeploymentEvent, TriggerEventType)> + 'a, Purged> {
        let events = self.events.since(trigger.delivered_through.max(scanned_through))?;
        Ok(events.filter_map(move |event| {
            let kind = TriggerEventType::of(&event.what)?;
            let ours = match self.deployments.get(&event.what.deployment_id) {
                Some(deployment) => {
                    deployment.application_name == group.application_name
                        && deployment.deployment_group_id == group.deployment_group_id
                }
                None => {
                    event.what.application_name == group.application_name
                        && event.what.deployment_group_name == group.deployment_group_name
                }
            };
            (ours && trigger.config.trigger_events.contains(&kind)).then_some((event, kind))
        }))
    }

    /// The triggers that have events to send now, each named by its group's application
    /// and id and its own name. The leader asks after every applied change, so `scan`
    /// remembers how far each trigger's events were looked at without finding one to
    /// send: a trigger that names rare events keeps an old cursor, and walking from it
    /// every time would cost up to the whole event log per commit. Event numbers never
    /// change meaning, so a mark stays good across leaders; it is dropped when the
    /// trigger's event types change.
    pub fn triggers_with_backlog(&self, scan: &mut TriggerScan) -> Vec<TriggerKey> {
        let mut keys = Vec::new();
        let mut marks = BTreeMap::new();
        for group in self.deployment_groups.values().flat_map(|groups| groups.values()) {
            for trigger in &group.triggers {
                let key = (
                    group.application_name.clone(),
                    group.deployment_group_id.clone(),
                    trigger.config.trigger_name.clone(),
                );
                let events = &trigger.config.trigger_events;
                let from =
                    scan.marks.remove(&key).filter(|(_, named)| named == events).map_or(0, |(through, _)| through);
                let pending = match self.trigger_backlog(group, trigger, from) {
                    Ok(mut backlog) => backlog.next().is_some(),
                    Err(_) => true,
                };
                if pending {
                    marks.insert(key.clone(), (from, events.clone()));
                    keys.push(key);
                } else {
                    marks.insert(key, (self.events.last_id, events.clone()));
                }
            }
        }
        scan.marks = marks;
        keys
    }

    /// Every trigger cursor is at most the last event (`check_invariants`).
    pub(crate) fn check_trigger_cursors(&self) {
        for group in self.deployment_groups.values().flat_map(|groups| groups.values()) {
            for trigger in &group.triggers {
                assert!(
                    trigger.delivered_through <= self.events.last_id,
                    "trigger {} of group {} is past the last event",
                    trigger.config.trigger_name,
                    group.deployment_group_name
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
