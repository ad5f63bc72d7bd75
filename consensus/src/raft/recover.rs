//! Disaster recovery, offline: a saved state (`cluster snapshot save`) and the rewrite
//! that makes one surviving voter a new single-voter cluster (`node --force-new-cluster`).
//!
//! The rewrite keeps the replicated state: the voter's last snapshot with every entry of
//! its log replayed on top (or a saved state instead), and replaces the Raft membership
//! by this node alone. The log is emptied, its last entry recorded as purged, and the
//! vote moved to the next term, so the node elects itself when it starts and autopilot
//! promotes live agents from there.
//!
//! ```text
//!   snapshot ─┬─ replay log ─▶ state ──▶ snapshot at the last log id, membership {me}
//!   saved ────┘                          log: empty, purged through that id; vote: term + 1
//! ```

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_state::ClusterState;
use fleetmesh_transport::NodeId;
use openraft::{BasicNode, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership, Vote};
use redb::{Database, ReadableDatabase};
use serde::{Deserialize, Serialize};

use super::log_store::{io_error, COMMITTED, LOG, META, PURGED, VOTE};
use super::state_machine::{StateMachineData, StateMachineStore, SNAPSHOT_DATA, SNAPSHOT_META};
use super::TypeConfig;

/// The version of [`SavedState`]'s encoding.
pub const SAVED_STATE_FORMAT: u32 = 1;

/// The replicated state as `cluster snapshot save` writes it (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedState {
    /// [`SAVED_STATE_FORMAT`].
    pub format: u32,
    /// When it was saved, Unix milliseconds.
    pub saved_at_millis: u64,
    /// The last entry the state includes.
    pub last_applied: Option<LogId<NodeId>>,
    /// The state.
    pub state: ClusterState,
}

/// Why a recovery was refused.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The store could not be read or written.
    #[error("the Raft store: {0}")]
    Io(#[from] std::io::Error),
    /// An entry of the log could not be read back.
    #[error("log entry {index} cannot be read: {reason}")]
    Entry {
        /// Its index.
        index: u64,
        /// The decoder's message.
        reason: String,
    },
    /// The store holds no cluster (never bootstrapped, or it is an agent's).
    #[error("this data directory holds no cluster state: it is not a voter's (agents keep none)")]
    NoState,
    /// The saved state is of another encoding.
    #[error("the saved state has format {0}; this release reads format {SAVED_STATE_FORMAT}")]
    Format(u32),
    /// The saved state is of another cluster.
    #[error("the saved state is of cluster {saved}, this node belongs to cluster {mine}")]
    OtherCluster {
        /// The saved state's cluster id.
        saved: String,
        /// This node's.
        mine: String,
    },
    /// This node is not a member of the state.
    #[error("node {0} is not a member in that state")]
    NotMember(NodeId),
}

/// What a recovery did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The last entry the recovered state includes.
    pub last: Option<LogId<NodeId>>,
    /// Entries of the log replayed on top of the snapshot (0 from a saved state).
    pub replayed: u64,
    /// The voters before, this node excluded.
    pub former_voters: Vec<NodeId>,
}

/// Rewrites `db` so that node `me` (at `addr`) is the only voter of its cluster, with the
/// state of its own store, or `saved` instead. `cluster_id` is this node's, checked
/// against the state. The Raft instance on `db` must not be running.
///
/// # Errors
/// As [`RecoverError`]; on error `db` is unchanged.
pub fn force_new_cluster(
    db: &Database,
    me: NodeId,
    addr: &str,
    cluster_id: &str,
    saved: Option<SavedState>,
) -> Result<Recovered, RecoverError> {
    let mut data = StateMachineStore::load(db).map_err(|error| std::io::Error::other(error.to_string()))?;
    let mut replayed = 0;
    match saved {
        Some(saved) if saved.format != SAVED_STATE_FORMAT => return Err(RecoverError::Format(saved.format)),
        Some(saved) => {
            data.state = saved.state;
            data.last_applied = saved.last_applied;
        }
        None => replayed = replay(db, &mut data)?,
    }
    let mine = cluster_id.to_string();
    match data.state.cluster.as_ref().map(|info| info.ca.cluster_id.clone()) {
        None => return Err(RecoverError::NoState),
        Some(saved) if saved != mine => return Err(RecoverError::OtherCluster { saved, mine }),
        Some(_) => {}
    }
    if !data.state.members.contains_key(&me) {
        return Err(RecoverError::NotMember(me));
    }
    let former_voters = data.last_membership.membership().voter_ids().filter(|id| *id != me).collect();
    let vote: Option<Vote<NodeId>> = super::log_store::read_meta(db, VOTE)?;
    let term = vote.map_or(0, |vote| vote.leader_id().term).max(data.last_applied.map_or(0, |id| id.leader_id.term));
    let membership = Membership::new(vec![BTreeSet::from([me])], BTreeMap::from([(me, BasicNode::new(addr))]));
    data.last_membership = StoredMembership::new(data.last_applied, membership);
    write(db, &data, Vote::new(term + 1, me))?;
    Ok(Recovered { last: data.last_applied, replayed, former_voters })
}

/// Applies every entry of the log after the snapshot to `data`; returns how many.
fn replay(db: &Database, data: &mut StateMachineData) -> Result<u64, RecoverError> {
    let after = data.last_applied.map_or(0, |id| id.index + 1);
    let read = db.begin_read().map_err(io_error)?;
    let table = match read.open_table(LOG) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(error) => return Err(io_error(error).into()),
    };
    let mut replayed = 0;
    for row in table.range(after..).map_err(io_error)? {
        let (index, value) = row.map_err(io_error)?;
        let entry: Entry<TypeConfig> = serde_json::from_slice(value.value())
            .map_err(|error| RecoverError::Entry { index: index.value(), reason: error.to_string() })?;
        match entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Normal(proposal) => {
                // Each command succeeds or is refused on its own, as when it was applied.
                let _refusals = data.state.apply(&proposal);
            }
            EntryPayload::Membership(membership) => {
                data.last_membership = StoredMembership::new(Some(entry.log_id), membership);
            }
        }
        data.last_applied = Some(entry.log_id);
        replayed += 1;
    }
    Ok(replayed)
}

/// Writes the recovered store in one durable transaction.
fn write(db: &Database, data: &StateMachineData, vote: Vote<NodeId>) -> Result<(), RecoverError> {
    let meta = SnapshotMeta {
        last_log_id: data.last_applied,
        last_membership: data.last_membership.clone(),
        snapshot_id: format!("recovered-{}", data.last_applied.map_or(0, |id| id.index)),
    };
    let (snapshot, meta, vote, last) = (json(data)?, json(&meta)?, json(&vote)?, json(&data.last_applied)?);
    let write = db.begin_write().map_err(io_error)?;
    write.delete_table(LOG).map_err(io_error)?;
    {
        let mut table = write.open_table(META).map_err(io_error)?;
        table.insert(SNAPSHOT_DATA, snapshot.as_slice()).map_err(io_error)?;
        table.insert(SNAPSHOT_META, meta.as_slice()).map_err(io_error)?;
        table.insert(VOTE, vote.as_slice()).map_err(io_error)?;
        table.insert(PURGED, last.as_slice()).map_err(io_error)?;
        table.insert(COMMITTED, last.as_slice()).map_err(io_error)?;
    }
    write.commit().map_err(io_error)?;
    Ok(())
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, std::io::Error> {
    serde_json::to_vec(value).map_err(io_error)
}
