//! Safety: committed entries are never lost or changed — after healing, the logs of all
//! voters agree entry for entry on every index they share, up to the commit point.

use std::collections::BTreeMap;

use fleetmesh_transport::NodeId;

use crate::cluster::SimCluster;

/// Compares the voters' logs.
///
/// # Errors
/// The first index where two voters hold different entries.
pub async fn check(cluster: &SimCluster, voters: &[NodeId]) -> Result<(), String> {
    let mut by_index: BTreeMap<u64, (NodeId, String)> = BTreeMap::new();
    for voter in voters {
        let entries = cluster.log(*voter).await.map_err(|error| format!("cannot read node {voter}'s log: {error}"))?;
        for entry in entries {
            let fingerprint = format!(
                "{}:{}",
                entry.log_id,
                blake3::hash(&serde_json::to_vec(&entry.payload).unwrap_or_default()).to_hex()
            );
            match by_index.get(&entry.log_id.index) {
                Some((other, seen)) if *seen != fingerprint => {
                    return Err(format!(
                        "index {}: node {other} has {seen}, node {voter} has {fingerprint}",
                        entry.log_id.index
                    ))
                }
                Some(_) => {}
                None => {
                    by_index.insert(entry.log_id.index, (*voter, fingerprint));
                }
            }
        }
    }
    Ok(())
}
