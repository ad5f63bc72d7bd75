//! Safety: committed entries are never lost or changed — after healing, the logs of all
//! voters agree entry for entry on every index they share, up to the commit point.

use std::collections::BTreeMap;
use std::fmt::Display;

use fleetmesh_transport::NodeId;

use super::{Violation, VoterLog};

/// Compares the voters' logs.
///
/// # Errors
/// A log that could not be read, or the first index where two voters hold different
/// entries.
pub fn check<E: Display>(voters: &[VoterLog<E>]) -> Result<(), Violation> {
    let mut by_index: BTreeMap<u64, (NodeId, String)> = BTreeMap::new();
    for voter in voters {
        let id = voter.id;
        let entries =
            voter.entries.as_ref().map_err(|error| Violation::new(format!("cannot read node {id}'s log: {error}")))?;
        for entry in entries {
            let fingerprint = format!(
                "{}:{}",
                entry.log_id,
                blake3::hash(&serde_json::to_vec(&entry.payload).unwrap_or_default()).to_hex()
            );
            match by_index.get(&entry.log_id.index) {
                Some((other, seen)) if *seen != fingerprint => {
                    return Err(Violation::new(format!(
                        "index {}: node {other} has {seen}, node {id} has {fingerprint}",
                        entry.log_id.index
                    )))
                }
                Some(_) => {}
                None => {
                    by_index.insert(entry.log_id.index, (id, fingerprint));
                }
            }
        }
    }
    Ok(())
}
