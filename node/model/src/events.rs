//! `ListEvents` (fleetmesh's own, not on CodeDeploy's wire): the deployment event log
//! after a number, filtered, a page at a time. `GET /v1/events` streams the same events
//! as Server-Sent Events and `fleetmesh events` prints them; both read through this.

use fleetmesh_state::model::events::{DeploymentEvent, Purged};
pub use fleetmesh_state::model::events::{EventBody, EventType};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::ClusterState;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, OperationError};
use crate::time::EpochSeconds;

/// Events in a page when the caller names no `maxItems`.
pub const EVENTS_PAGE_DEFAULT: u32 = 1000;

/// The most events in a page.
pub const EVENTS_PAGE_MAX: u32 = 10_000;

/// `ListEvents`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListEventsInput {
    /// Events numbered above this (0: from the first kept).
    #[serde(default)]
    pub since: u64,
    /// Only this application's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    /// Only this group's events (of any application unless one is named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_group_name: Option<String>,
    /// Only this deployment's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<DeploymentId>,
    /// At most this many events (default [`EVENTS_PAGE_DEFAULT`], at most
    /// [`EVENTS_PAGE_MAX`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u32>,
}

/// One event as the API shows it: the log's event with its time in epoch seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventInfo {
    /// The cluster-wide number.
    pub id: u64,
    /// When the change was committed.
    pub time: EpochSeconds,
    /// What changed, and where.
    #[serde(flatten)]
    pub what: EventBody,
}

impl From<&DeploymentEvent> for EventInfo {
    fn from(event: &DeploymentEvent) -> Self {
        Self { id: event.id, time: event.time.into(), what: event.what.clone() }
    }
}

/// `ListEvents`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListEventsOutput {
    /// The matching events, oldest first.
    pub events: Vec<EventInfo>,
    /// What to pass as `since` to read on: every event up to it was looked at (the last
    /// event given when the page filled up, else the log's last number).
    pub next_since: u64,
    /// The number of the newest event in the log.
    pub last_event_id: u64,
}

impl ListEventsInput {
    fn matches(&self, event: &DeploymentEvent) -> bool {
        let what = &event.what;
        self.application_name.as_ref().is_none_or(|name| *name == what.application_name)
            && self.deployment_group_name.as_ref().is_none_or(|name| *name == what.deployment_group_name)
            && self.deployment_id.as_ref().is_none_or(|id| *id == what.deployment_id)
    }
}

/// Answers `input` from `state`.
///
/// # Errors
/// 410 Gone when events after `since` were purged (the message names the oldest kept
/// number); 400 for a `maxItems` out of range.
pub fn list_events(state: &ClusterState, input: &ListEventsInput) -> Result<ListEventsOutput, OperationError> {
    let page = input.max_items.unwrap_or(EVENTS_PAGE_DEFAULT);
    if !(1..=EVENTS_PAGE_MAX).contains(&page) {
        return Err(OperationError::invalid("maxItems", format!("must be from 1 to {EVENTS_PAGE_MAX}, not {page}")));
    }
    let log = &state.events;
    let events = log.since(input.since).map_err(|purged: Purged| {
        OperationError::new(ErrorKind::Gone, format!("{purged}; read from `since` {} to go on", purged.first_kept - 1))
    })?;
    let mut output =
        ListEventsOutput { last_event_id: log.last_id, next_since: log.last_id.max(input.since), ..Default::default() };
    for event in events.filter(|event| input.matches(event)) {
        output.events.push(event.into());
        if output.events.len() == page as usize {
            output.next_since = event.id;
            break;
        }
    }
    Ok(output)
}
