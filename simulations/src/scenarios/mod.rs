//! Scenarios: a safety phase with faults, then a liveness phase without, each ending in
//! invariant verdicts and scenario figures.

pub mod leader_partition;

use std::collections::BTreeMap;

use serde_json::Value;

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

/// Names of the scenarios this build runs.
pub const SCENARIOS: &[&str] = &["leader-partition", "swarm", "byzantine-peer"];
