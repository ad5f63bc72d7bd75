//! The deployment event log ([`crate::FeatureLevel::EVENTS`]): every change of a
//! deployment or of one of its targets, numbered 1, 2, 3, … across the cluster.
//!
//! The log is part of the replicated state: [`crate::ClusterState::apply`] appends to it
//! while it applies a command, so every voter numbers the same events the same way, the
//! numbers survive restarts, snapshots and failover, and a number is never reused or
//! skipped. Old events are dropped from the front ([`EVENTS_KEPT_MAX`],
//! [`EVENTS_KEPT_MS`]); a reader asking for numbers that are gone is told so
//! ([`EventLog::since`]) instead of silently missing them.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::ids::{DeploymentId, UnixMillis};

/// The most events kept: about 10 MB of state and snapshot at this size.
pub const EVENTS_KEPT_MAX: usize = 50_000;

/// The longest an event is kept: 90 days.
pub const EVENTS_KEPT_MS: u64 = 90 * 24 * 3600 * 1000;

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// The deployment's status (`status`); the first event of a deployment is `Created`.
    DeploymentStatusChanged,
    /// A wave of targets started (`message` names the wave).
    WaveStarted,
    /// A target's status (`targetId`, `status`).
    TargetStatusChanged,
    /// A lifecycle event's status on a target (`targetId`, `lifecycleEventName`, `status`).
    LifecycleEventChanged,
    /// Traffic moved a step (`message` says where it is).
    TrafficShifted,
    /// The deployment was linked to its rollback, or a rollback to what it rolls back
    /// (`message`).
    RollbackLinked,
}

/// One numbered event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentEvent {
    /// Its number: one more than the event before it, cluster-wide.
    pub id: u64,
    /// When the change was committed (the proposal's time).
    pub time: UnixMillis,
    /// What changed, and where.
    #[serde(flatten)]
    pub what: EventBody,
}

/// What an event says, apart from its number and time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBody {
    /// What changed.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The deployment's application.
    pub application_name: String,
    /// The deployment's group.
    pub deployment_group_name: String,
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// The target, for target and lifecycle events: a node id, `function:alias` or
    /// `cluster:service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// The lifecycle event, for lifecycle events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_event_name: Option<String>,
    /// The new status, for status changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A sentence, where a status says too little.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The kept events and the last number given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLog {
    /// The number of the last event recorded (0: none yet).
    pub last_id: u64,
    /// The kept events, oldest first, numbered without gaps up to `last_id`.
    pub events: VecDeque<DeploymentEvent>,
}

/// Events a reader asked for that are no longer kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("events after {since} were purged: the oldest kept event is {first_kept}")]
pub struct Purged {
    /// What the reader asked for (events after it).
    pub since: u64,
    /// The oldest event number still kept.
    pub first_kept: u64,
}

impl EventLog {
    /// True before the first event (the log is then left out of the state's encoding).
    pub fn is_unused(&self) -> bool {
        self.last_id == 0
    }

    /// The oldest number still kept (`last_id + 1` when every event was dropped).
    pub fn first_kept(&self) -> u64 {
        self.events.front().map_or(self.last_id + 1, |event| event.id)
    }

    /// The events numbered above `since`, oldest first.
    ///
    /// # Errors
    /// [`Purged`] when some of them are no longer kept. Asking beyond `last_id` is
    /// not an error: nothing is there yet.
    pub fn since(&self, since: u64) -> Result<impl Iterator<Item = &DeploymentEvent>, Purged> {
        let first_kept = self.first_kept();
        if since + 1 < first_kept {
            return Err(Purged { since, first_kept });
        }
        let skip = usize::try_from(since + 1 - first_kept).unwrap_or(usize::MAX);
        Ok(self.events.range(skip.min(self.events.len())..))
    }

    /// Numbers `what`, appends it as of `at`, then drops what is past the retention.
    pub(crate) fn push(&mut self, what: EventBody, at: UnixMillis) {
        self.last_id += 1;
        self.events.push_back(DeploymentEvent { id: self.last_id, time: at, what });
        let oldest = at.0.saturating_sub(EVENTS_KEPT_MS);
        while self.events.len() > EVENTS_KEPT_MAX || self.events.front().is_some_and(|event| event.time.0 < oldest) {
            self.events.pop_front();
        }
    }

    /// Checks the numbering in O(1): the kept events span exactly `first_kept ..=
    /// last_id` (only [`EventLog::push`] writes them, one number more each time).
    ///
    /// # Panics
    /// When they do not (a bug in the state machine).
    pub(crate) fn check(&self) {
        if let (Some(first), Some(last)) = (self.events.front(), self.events.back()) {
            assert_eq!(last.id, self.last_id, "the last event is not last_id");
            assert_eq!(last.id - first.id + 1, self.events.len() as u64, "event numbers have a gap");
        }
    }
}
