//! Safety: every write the leader acknowledged is in the state of every voter after
//! healing; a write refused for lack of quorum is in none.

use fleetmesh_state::ClusterState;
use fleetmesh_transport::NodeId;

use super::Violation;

/// Checks applications created by acknowledged writes (present) and refused writes
/// (absent) in the applied state of one voter; the caller checks every voter.
///
/// # Errors
/// A missing acknowledged write or a present refused write, naming the node.
pub fn check(
    voter: NodeId,
    state: &ClusterState,
    acknowledged: &[String],
    refused: &[String],
) -> Result<(), Violation> {
    if let Some(missing) = acknowledged.iter().find(|name| !state.applications.contains_key(*name)) {
        return Err(Violation::new(format!("node {voter} lost acknowledged write {missing}")));
    }
    match refused.iter().find(|name| state.applications.contains_key(*name)) {
        Some(present) => {
            Err(Violation::new(format!("node {voter} applied {present}, which was refused for lack of quorum")))
        }
        None => Ok(()),
    }
}
