//! Scenarios: a safety phase with faults, then a liveness phase without, each ending in
//! invariant verdicts and scenario figures.

pub mod app;
pub mod blue_green_chaos;
pub mod chaos;
mod error;
pub mod leader_kill_mid_wave;
pub mod leader_partition;
pub mod liveness;
pub mod rolling_chaos;
pub mod swarm_rollout;
pub mod traffic_shift_chaos;

use std::collections::BTreeMap;

use serde_json::{json, Value};

pub use self::error::ScenarioError;
use crate::invariants::Verdicts;

/// What a scenario run produced (before the common fields are added).
#[derive(Debug, Default)]
pub struct ScenarioOutcome {
    /// Invariant verdicts.
    pub verdicts: Verdicts,
    /// Scenario-specific figures.
    pub figures: BTreeMap<String, Value>,
    /// Virtual seconds simulated.
    pub virtual_secs: f64,
    /// Trace digest.
    pub trace_hash: String,
    /// Messages delivered.
    pub events: u64,
    /// The last trace lines (printed on failure).
    pub recent: Vec<String>,
}

impl ScenarioOutcome {
    /// The outcome of a run on `cluster` that started at `start`: the verdicts, and the
    /// virtual time, trace digest and events read from the cluster now, with what the
    /// event and trigger monitors checked as figures.
    pub fn of_cluster(verdicts: Verdicts, start: tokio::time::Instant, cluster: &crate::cluster::SimCluster) -> Self {
        let figures = cluster.with_observer(|observer| {
            let (events, triggers) = (&observer.monitor.events, &observer.monitor.trigger_cursors);
            BTreeMap::from([
                ("deployment_events_checked".to_string(), json!(events.events_checked)),
                ("event_logs_compared".to_string(), json!(events.voters_compared)),
                ("trigger_deliveries".to_string(), json!(triggers.deliveries)),
                ("trigger_tries_refused".to_string(), json!(triggers.refused)),
                ("trigger_events_checked".to_string(), json!(triggers.events_checked)),
                ("trigger_events_purged_unchecked".to_string(), json!(triggers.purged_unchecked)),
            ])
        });
        Self {
            verdicts,
            figures,
            virtual_secs: start.elapsed().as_secs_f64(),
            trace_hash: cluster.trace.hash(),
            events: cluster.trace.events(),
            recent: cluster.recent_events(),
        }
    }
}

/// Names of the scenarios this build runs.
pub const SCENARIOS: &[&str] = &[
    "leader-partition",
    "rolling-chaos",
    "traffic-chaos",
    "blue-green-chaos",
    "leader-kill-mid-wave",
    "traffic-shift-chaos",
    "swarm",
    "swarm-nodes",
    "byzantine-peer",
];
