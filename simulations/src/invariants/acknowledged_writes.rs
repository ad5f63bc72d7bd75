//! Safety: every write the leader acknowledged is in the state of every voter after
//! healing; a write refused for lack of quorum is in none.

use fleetmesh_transport::NodeId;

use crate::cluster::SimCluster;

/// Checks applications created by acknowledged writes (present) and refused writes
/// (absent) on every voter.
///
/// # Errors
/// A missing acknowledged write or a present refused write, naming the node.
pub fn check(
    cluster: &SimCluster,
    voters: &[NodeId],
    acknowledged: &[String],
    refused: &[String],
) -> Result<(), String> {
    for voter in voters {
        let node = cluster.node(*voter);
        let problem = node.state().read(|state| {
            if let Some(missing) = acknowledged.iter().find(|name| !state.applications.contains_key(*name)) {
                return Some(format!("node {voter} lost acknowledged write {missing}"));
            }
            refused
                .iter()
                .find(|name| state.applications.contains_key(*name))
                .map(|present| format!("node {voter} applied {present}, which was refused for lack of quorum"))
        });
        if let Some(problem) = problem {
            return Err(problem);
        }
    }
    Ok(())
}
