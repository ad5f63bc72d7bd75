//! Invariants, one file each. A scenario collects their verdicts into a map
//! `name → "ok" | "violated: ..."`, printed with the result.

pub mod acknowledged_writes;
pub mod logs_agree;
pub mod single_leader;

use std::collections::BTreeMap;

/// Verdicts by invariant name.
#[derive(Debug, Default, Clone)]
pub struct Verdicts {
    map: BTreeMap<String, String>,
}

impl Verdicts {
    /// Records a verdict; the first violation of a name wins.
    pub fn record(&mut self, name: &str, result: Result<(), String>) {
        let entry = self.map.entry(name.to_string()).or_insert_with(|| "ok".to_string());
        if let Err(reason) = result {
            if entry == "ok" {
                *entry = format!("violated: {reason}");
            }
        }
    }

    /// True when nothing was violated.
    pub fn all_ok(&self) -> bool {
        self.map.values().all(|verdict| verdict == "ok")
    }

    /// The first violation, if any.
    pub fn first_violation(&self) -> Option<(String, String)> {
        self.map.iter().find(|(_, verdict)| *verdict != "ok").map(|(name, verdict)| (name.clone(), verdict.clone()))
    }

    /// The map.
    pub fn into_map(self) -> BTreeMap<String, String> {
        self.map
    }
}
