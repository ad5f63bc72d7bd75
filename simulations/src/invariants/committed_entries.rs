//! Safety: committed entries are never lost or changed.
//!
//! The observer gets every entry any node applies (hence committed), and the monitor
//! fingerprints it (log id and payload). Every other node that applies the same index
//! must have applied the same fingerprint. At the end, every voter's log must hold the
//! same entry at every index it still keeps, every voter must have applied everything
//! the monitor saw committed, and no index may be missing from the replay.

use std::collections::BTreeMap;
use std::fmt::Display;

use fleetmesh_consensus::raft::TypeConfig;
use fleetmesh_transport::NodeId;
use openraft::Entry;

use super::{Violation, VoterLog};

/// A committed entry's identity: BLAKE3 of its log id and payload.
pub type Fingerprint = [u8; 32];

/// Fingerprints an entry.
pub fn fingerprint(entry: &Entry<TypeConfig>) -> Fingerprint {
    let mut hasher = blake3::Hasher::new();
    hasher.update(entry.log_id.to_string().as_bytes());
    hasher.update(&serde_json::to_vec(&entry.payload).unwrap_or_default());
    *hasher.finalize().as_bytes()
}

/// The committed-entries monitor.
#[derive(Debug, Default)]
pub struct CommittedEntries {
    fingerprints: BTreeMap<u64, (Fingerprint, NodeId)>,
    violation: Option<Violation>,
}

impl CommittedEntries {
    /// Records that `source` holds committed entry `index` with `print`.
    pub fn record(&mut self, index: u64, print: Fingerprint, source: NodeId) {
        match self.fingerprints.get(&index) {
            Some((seen, first)) if *seen != print && self.violation.is_none() => {
                self.violation = Some(Violation::new(format!(
                    "committed entry {index} changed: node {first} had {}, node {source} now has {}",
                    hex::encode(&seen[..8]),
                    hex::encode(&print[..8])
                )));
            }
            Some(_) => {}
            None => {
                self.fingerprints.insert(index, (print, source));
            }
        }
    }

    /// Records a problem found by the observer itself (it could not read an entry).
    pub fn fail(&mut self, problem: Violation) {
        self.violation.get_or_insert(problem);
    }

    /// Committed entries seen.
    pub fn count(&self) -> usize {
        self.fingerprints.len()
    }

    /// The end-of-run check against every voter's log and applied index.
    pub fn final_check<E: Display>(&mut self, voters: &[VoterLog<E>]) {
        let highest = self.fingerprints.keys().next_back().copied().unwrap_or_default();
        for voter in voters {
            let id = voter.id;
            if let Some(applied) = voter.applied_index.filter(|applied| *applied < highest) {
                self.violation.get_or_insert_with(|| {
                    Violation::new(format!("voter {id} applied up to {applied}, but entry {highest} was committed"))
                });
            }
            let entries = match &voter.entries {
                Ok(entries) => entries,
                Err(error) => {
                    self.violation
                        .get_or_insert_with(|| Violation::new(format!("cannot read voter {id}'s log: {error}")));
                    continue;
                }
            };
            for entry in entries {
                self.record(entry.log_id.index, fingerprint(entry), id);
            }
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }
}
