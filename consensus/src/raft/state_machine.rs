//! The Raft state machine: [`ClusterState`] in memory, snapshots in redb.
//!
//! The state lives in memory behind a [`StateHandle`] that the rest of the node reads
//! (and subscribes to for changes). Durability comes from the log plus snapshots: on
//! restart the last snapshot is loaded and openraft re-applies the committed entries
//! after it (the log store persists the commit index for that).

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use fleetmesh_transport::NodeId;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use redb::Database;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::log_store::{read_meta, read_raw, write_snapshot};
use super::TypeConfig;
use fleetmesh_state::{ClusterState, PollTouches, ProposalResponse, Touches};

pub(super) const SNAPSHOT_META: &str = "snapshot_meta";
pub(super) const SNAPSHOT_DATA: &str = "snapshot_data";

type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// What a snapshot holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct StateMachineData {
    pub(super) last_applied: Option<LogId<NodeId>>,
    pub(super) last_membership: StoredMembership<NodeId, BasicNode>,
    pub(super) state: ClusterState,
    /// Local to this process, never replicated or snapshotted.
    #[serde(skip)]
    versions: Versions,
    /// Pollers concerned by what was applied since [`StateHandle::take_poll_touches`]
    /// last took them. Local like `versions`.
    #[serde(skip)]
    poll_touches: PollTouches,
}

/// Counters that move whenever a part of the applied state may have changed, so that
/// readers can cache what they derive from it and recompute only after a change
/// instead of after every applied entry. Local to this process: two nodes with the
/// same state may have different versions, so they must never go on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Versions {
    /// The member list.
    pub members: u64,
    /// What poll answers are made of (see [`Touches::poll_inputs`]), including the
    /// voter set.
    pub poll_inputs: u64,
}

impl Versions {
    fn bump(&mut self, touches: Touches) {
        self.members += u64::from(touches.members);
        self.poll_inputs += u64::from(touches.poll_inputs);
    }
}

/// Sees every entry the state machine applies, just before it is applied, in log
/// order. For observers outside the node (the simulator's invariant checks, which
/// must see every committed entry even when the log is purged right after); a
/// production node installs none.
pub type ApplyTap = Box<dyn Fn(&Entry<TypeConfig>) + Send + Sync>;

/// Shared, read-mostly access to the applied cluster state.
pub struct StateHandle {
    data: RwLock<StateMachineData>,
    changed: watch::Sender<u64>,
    tap: std::sync::OnceLock<ApplyTap>,
}

impl std::fmt::Debug for StateHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("StateHandle").finish_non_exhaustive()
    }
}

impl StateHandle {
    fn new(data: StateMachineData) -> Arc<Self> {
        let index = data.last_applied.map_or(0, |log_id| log_id.index);
        Arc::new(Self { data: RwLock::new(data), changed: watch::channel(index).0, tap: std::sync::OnceLock::new() })
    }

    /// Installs the observer that sees every entry applied from now on (see
    /// [`ApplyTap`]); it stays across [`StateMachineStore::reopen`].
    ///
    /// # Errors
    /// A tap is already installed (the one given is handed back).
    pub fn set_apply_tap(&self, tap: ApplyTap) -> Result<(), ApplyTap> {
        self.tap.set(tap)
    }

    fn read_data<T>(&self, read: impl FnOnce(&StateMachineData) -> T) -> T {
        read(&self.data.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Runs `read` on the applied state.
    pub fn read<T>(&self, read: impl FnOnce(&ClusterState) -> T) -> T {
        self.read_data(|data| read(&data.state))
    }

    /// The applied state as `cluster snapshot save` writes it.
    pub fn save(&self, saved_at_millis: u64) -> super::SavedState {
        self.read_data(|data| super::SavedState {
            format: super::SAVED_STATE_FORMAT,
            saved_at_millis,
            last_applied: data.last_applied,
            state: data.state.clone(),
        })
    }

    /// A copy of the applied state.
    pub fn snapshot(&self) -> ClusterState {
        self.read(Clone::clone)
    }

    /// Index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.read_data(|data| data.last_applied.map_or(0, |log_id| log_id.index))
    }

    /// The last applied membership: who the voters are.
    pub fn membership(&self) -> StoredMembership<NodeId, BasicNode> {
        self.read_data(|data| data.last_membership.clone())
    }

    /// Voter ids in the last applied membership.
    pub fn voters(&self) -> Vec<NodeId> {
        self.read_data(|data| data.last_membership.membership().voter_ids().collect())
    }

    /// The change counters of the applied state.
    pub fn versions(&self) -> Versions {
        self.read_data(|data| data.versions)
    }

    /// The pollers whose answers what was applied since the last call may have
    /// changed (see [`PollTouches`]), and starts gathering afresh. Meant for one
    /// reader per node: a second would take what the first needed.
    pub fn take_poll_touches(&self) -> PollTouches {
        let mut data = self.data.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut data.poll_touches)
    }

    /// A receiver that sees the applied index after every apply.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn replace(&self, mut data: StateMachineData) {
        let index = data.last_applied.map_or(0, |log_id| log_id.index);
        let mut current = self.data.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        data.versions = current.versions;
        data.versions.bump(Touches::ALL);
        data.poll_touches.add_all();
        *current = data;
        drop(current);
        self.changed.send_replace(index);
    }
}

/// The Raft state machine store.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<Database>,
    handle: Arc<StateHandle>,
    snapshots_built: u64,
}

impl std::fmt::Debug for StateMachineStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("StateMachineStore").finish_non_exhaustive()
    }
}

fn read_error(error: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&error).into()
}

impl StateMachineStore {
    /// Opens the state machine, starting from the last snapshot in `db` if any.
    ///
    /// # Errors
    /// The stored snapshot cannot be read.
    pub fn open(db: Arc<Database>) -> StorageResult<Self> {
        let data = Self::load(&db)?;
        Ok(Self { db, handle: StateHandle::new(data), snapshots_built: 0 })
    }

    /// Opens the state machine again over an existing `handle` (whose readers and
    /// subscribers stay valid): the handle's state is replaced by the last snapshot in
    /// `db`, or by the empty state after [`super::LogStore::reset`].
    ///
    /// # Errors
    /// The stored snapshot cannot be read.
    pub fn reopen(db: Arc<Database>, handle: Arc<StateHandle>) -> StorageResult<Self> {
        handle.replace(Self::load(&db)?);
        Ok(Self { db, handle, snapshots_built: 0 })
    }

    /// Opens the state machine again over `handle` as it is, for a new Raft instance on
    /// the same, untouched store (a restart with other timing): what is applied stays
    /// applied, readers see no step back to the last snapshot, and Raft continues from
    /// the handle's last applied entry.
    pub fn resume(db: Arc<Database>, handle: Arc<StateHandle>) -> Self {
        Self { db, handle, snapshots_built: 0 }
    }

    pub(super) fn load(db: &Database) -> StorageResult<StateMachineData> {
        match read_raw(db, SNAPSHOT_DATA).map_err(read_error)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(read_error),
            None => Ok(StateMachineData::default()),
        }
    }

    /// The shared read handle.
    pub fn handle(&self) -> Arc<StateHandle> {
        self.handle.clone()
    }

    fn persist_snapshot(&self, meta: &SnapshotMeta<NodeId, BasicNode>, bytes: &[u8]) -> StorageResult<()> {
        let write = |error: std::io::Error| -> StorageError<NodeId> {
            StorageIOError::write_snapshot(Some(meta.signature()), &error).into()
        };
        write_snapshot(&self.db, SNAPSHOT_META, meta, SNAPSHOT_DATA, bytes).map_err(write)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let (bytes, last_applied, last_membership) =
            self.handle.read_data(|data| (serde_json::to_vec(data), data.last_applied, data.last_membership.clone()));
        let bytes = bytes.map_err(|error| StorageIOError::read_state_machine(&error))?;
        self.snapshots_built += 1;
        let snapshot_id = format!("{}-{}", last_applied.map_or(0, |log_id| log_id.index), self.snapshots_built);
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership, snapshot_id };
        self.persist_snapshot(&meta, &bytes)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        Ok(self.handle.read_data(|data| (data.last_applied, data.last_membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<ProposalResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut responses = Vec::new();
        let last_index = {
            let mut data = self.handle.data.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let tap = self.handle.tap.get();
            for entry in entries {
                if let Some(tap) = tap {
                    tap(&entry);
                }
                data.last_applied = Some(entry.log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => ProposalResponse::default(),
                    EntryPayload::Normal(proposal) => {
                        data.versions.bump(proposal.touches());
                        for command in &proposal.commands {
                            data.poll_touches.add_command(command);
                        }
                        data.state.apply(&proposal)
                    }
                    EntryPayload::Membership(membership) => {
                        data.versions.bump(Touches { members: false, poll_inputs: true });
                        data.poll_touches.add_all();
                        data.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                        ProposalResponse::default()
                    }
                };
                responses.push(response);
            }
            data.last_applied.map_or(0, |log_id| log_id.index)
        };
        self.handle.changed.send_replace(last_index);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let bytes = snapshot.into_inner();
        let data: StateMachineData = serde_json::from_slice(&bytes)
            .map_err(|error| StorageIOError::read_snapshot(Some(meta.signature()), &error))?;
        self.persist_snapshot(meta, &bytes)?;
        self.handle.replace(data);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let meta: Option<SnapshotMeta<NodeId, BasicNode>> = read_meta(&self.db, SNAPSHOT_META).map_err(read_error)?;
        let Some(meta) = meta else { return Ok(None) };
        let bytes = read_raw(&self.db, SNAPSHOT_DATA).map_err(read_error)?.unwrap_or_default();
        Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;
    use redb::backends::InMemoryBackend;

    use super::*;

    #[test]
    fn reopen_after_a_reset_empties_the_shared_handle() {
        // A snapshot applied up to index 9 is loaded; after the log store is reset, reopening
        // over the same handle empties it, and its subscribers see the change.
        let db = Arc::new(Database::builder().create_with_backend(InMemoryBackend::new()).expect("db"));
        let data = StateMachineData {
            last_applied: Some(LogId::new(CommittedLeaderId::new(3, NodeId(1)), 9)),
            ..StateMachineData::default()
        };
        write_snapshot(&db, SNAPSHOT_META, &"meta", SNAPSHOT_DATA, &serde_json::to_vec(&data).expect("json"))
            .expect("snapshot");
        let store = StateMachineStore::open(db.clone()).expect("open");
        let handle = store.handle();
        assert_eq!(handle.applied_index(), 9);
        let changes = handle.subscribe();
        super::super::LogStore::reset(&db).expect("reset");
        let reopened = StateMachineStore::reopen(db, handle.clone()).expect("reopen");
        assert!(Arc::ptr_eq(&reopened.handle(), &handle), "the handle must be shared, not replaced");
        assert_eq!(handle.applied_index(), 0);
        assert!(changes.has_changed().expect("sender alive"));
    }
}
