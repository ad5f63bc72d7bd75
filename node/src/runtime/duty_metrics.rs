//! Counters of the leader's watch duties (trigger deliveries, alarm polls), kept on the
//! node so `/metrics` shows them whichever task did the work.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Two labels.
pub type Labels2 = [(&'static str, String); 2];

/// What the leader's duties did on this node.
#[derive(Debug, Default)]
pub struct DutyMetrics {
    /// Trigger delivery attempts, by target kind (`webhook`, `sns`) and result
    /// (`delivered`, `failed`: retried, `undeliverable`: given up).
    pub trigger_deliveries: Family<Labels2, Counter>,
    /// Alarm polls, by alarm kind (`prometheus`, `cloudwatch`) and result (`ok`,
    /// `firing`, `failed`).
    pub alarm_polls: Family<Labels2, Counter>,
}

impl DutyMetrics {
    /// Counts one delivery attempt to a `kind` target that ended in `result`.
    pub fn trigger_delivery(&self, kind: &str, result: &str) {
        self.trigger_deliveries.get_or_create(&[("target", kind.to_string()), ("result", result.to_string())]).inc();
    }

    /// Counts one poll of a `kind` alarm that read `result`.
    pub fn alarm_poll(&self, kind: &str, result: &str) {
        self.alarm_polls.get_or_create(&[("kind", kind.to_string()), ("result", result.to_string())]).inc();
    }
}
