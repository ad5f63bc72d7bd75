//! `node --force-new-cluster [--from-snapshot FILE]`: the way back from a lost quorum
//! (and the restore of a saved state). Before Raft opens, one surviving voter's store is
//! rewritten so that it is the only voter of its cluster, keeping its own state or the
//! saved one ([`fleetmesh_consensus::raft::force_new_cluster`]). It then elects itself,
//! and autopilot promotes live agents back to the voter count.
//!
//! The rewrite runs once: it leaves `DIR/force-new-cluster.done`, and a later start
//! with the flag still given (a unit file not cleaned up) only warns.

use std::path::{Path, PathBuf};

use fleetmesh_consensus::raft::{force_new_cluster, SavedState};
use tracing::{info, warn};

use super::{DaemonError, NodeConfig};
use crate::runtime::identity::NodeIdentity;

/// Marks a data directory whose store was rewritten.
const DONE_FILE: &str = "force-new-cluster.done";

/// `--force-new-cluster` and where the state comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// This voter's own state.
    OwnState,
    /// A state saved with `cluster snapshot save`.
    Saved(PathBuf),
}

/// Runs the recovery `config` asks for on `db`, once.
///
/// # Errors
/// The saved state cannot be read, or the store refuses the rewrite (not a voter's, of
/// another cluster, this node not a member).
pub(super) fn run(config: &NodeConfig, identity: &NodeIdentity, db: &redb::Database) -> Result<(), DaemonError> {
    let Some(recovery) = &config.recovery else { return Ok(()) };
    let done = config.data_dir.join(DONE_FILE);
    if done.exists() {
        warn!(
            marker = %done.display(),
            "--force-new-cluster given, but this data directory was already recovered: starting normally \
             (remove the flag; delete the marker to recover again)"
        );
        return Ok(());
    }
    let saved = match recovery {
        Recovery::OwnState => None,
        Recovery::Saved(path) => Some(read_saved(path)?),
    };
    let recovered = force_new_cluster(db, identity.node_id, &config.listen.to_string(), &identity.cluster_id, saved)
        .map_err(DaemonError::Recover)?;
    let last = recovered.last.map_or(0, |id| id.index);
    std::fs::write(&done, format!("{last}\n"))
        .map_err(|source| DaemonError::ReadFile { path: done.clone(), source })?;
    warn!(
        node = %identity.node_id,
        last_entry = last,
        replayed = recovered.replayed,
        former_voters = ?recovered.former_voters,
        "forced a new cluster: this node is now its only voter; wipe the former voters' data directories \
         before they start again (they rejoin as new nodes)"
    );
    info!("remove --force-new-cluster from this node's command line");
    Ok(())
}

fn read_saved(path: &Path) -> Result<SavedState, DaemonError> {
    let bytes = std::fs::read(path).map_err(|source| DaemonError::ReadFile { path: path.to_path_buf(), source })?;
    serde_json::from_slice(&bytes)
        .map_err(|error| DaemonError::SavedState { path: path.to_path_buf(), reason: error.to_string() })
}
