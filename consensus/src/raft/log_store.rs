//! The durable Raft log, vote and commit index, in redb.
//!
//! One redb write transaction per `append`, committed with fsync before openraft is
//! told the entries are durable. redb calls are synchronous; they run inline on the
//! Raft task (a durable commit takes ~0.4 ms here), which also keeps the simulator
//! deterministic (no `spawn_blocking`).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use fleetmesh_transport::NodeId;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::TypeConfig;

/// Log entries by index, JSON.
pub(super) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Small records: vote, committed, last purged; snapshot meta and data.
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "last_purged";

type StorageResult<T> = Result<T, StorageError<NodeId>>;

fn io_error(error: impl std::error::Error + 'static) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

pub(super) fn read_meta<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>, std::io::Error> {
    let read = db.begin_read().map_err(io_error)?;
    let table = match read.open_table(META) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(error) => return Err(io_error(error)),
    };
    let Some(value) = table.get(key).map_err(io_error)? else { return Ok(None) };
    serde_json::from_slice(value.value()).map(Some).map_err(io_error)
}

pub(super) fn write_meta<T: Serialize>(db: &Database, key: &str, value: &T) -> Result<(), std::io::Error> {
    let bytes = serde_json::to_vec(value).map_err(io_error)?;
    let write = db.begin_write().map_err(io_error)?;
    {
        let mut table = write.open_table(META).map_err(io_error)?;
        table.insert(key, bytes.as_slice()).map_err(io_error)?;
    }
    write.commit().map_err(io_error)
}

/// Like [`write_meta`], but not flushed on its own: redb persists it with the next
/// durable commit (the next append). For the committed log id only: openraft treats it
/// as a hint (a restarted node that finds an older value re-learns the commit index from
/// the leader, or re-commits as leader), and flushing it separately cost one extra fsync
/// per commit on every voter.
fn write_meta_lazy<T: Serialize>(db: &Database, key: &str, value: &T) -> Result<(), std::io::Error> {
    let bytes = serde_json::to_vec(value).map_err(io_error)?;
    let mut write = db.begin_write().map_err(io_error)?;
    write.set_durability(redb::Durability::None).map_err(io_error)?;
    {
        let mut table = write.open_table(META).map_err(io_error)?;
        table.insert(key, bytes.as_slice()).map_err(io_error)?;
    }
    write.commit().map_err(io_error)
}

pub(super) fn read_raw(db: &Database, key: &str) -> Result<Option<Vec<u8>>, std::io::Error> {
    let read = db.begin_read().map_err(io_error)?;
    let table = match read.open_table(META) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(error) => return Err(io_error(error)),
    };
    Ok(table.get(key).map_err(io_error)?.map(|value| value.value().to_vec()))
}

/// Writes a snapshot's meta (JSON) and data (raw bytes) in one durable transaction.
pub(super) fn write_snapshot<T: Serialize>(
    db: &Database,
    meta_key: &str,
    meta: &T,
    data_key: &str,
    data: &[u8],
) -> Result<(), std::io::Error> {
    let meta_bytes = serde_json::to_vec(meta).map_err(io_error)?;
    let write = db.begin_write().map_err(io_error)?;
    {
        let mut table = write.open_table(META).map_err(io_error)?;
        table.insert(meta_key, meta_bytes.as_slice()).map_err(io_error)?;
        table.insert(data_key, data).map_err(io_error)?;
    }
    write.commit().map_err(io_error)
}

/// The Raft log store. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    /// A log store in `db` (shared with the state machine's snapshots).
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    /// Erases this node's Raft state in `db` — log, vote, commit index and snapshot — in
    /// one durable transaction, so a Raft opened on `db` afterwards starts uninitialized,
    /// as on a node that never joined. Only for a node the cluster no longer counts as a
    /// voter (see `fleetmesh_node::runtime::stale_voter`); the caller must have shut down
    /// the Raft instance that used `db` first.
    ///
    /// # Errors
    /// The database cannot be written.
    pub fn reset(db: &Database) -> Result<(), std::io::Error> {
        let write = db.begin_write().map_err(io_error)?;
        write.delete_table(LOG).map_err(io_error)?;
        write.delete_table(META).map_err(io_error)?;
        write.commit().map_err(io_error)
    }

    fn last_entry(&self) -> Result<Option<LogId<NodeId>>, std::io::Error> {
        let read = self.db.begin_read().map_err(io_error)?;
        let table = match read.open_table(LOG) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(io_error(error)),
        };
        let Some((_, value)) = table.last().map_err(io_error)? else { return Ok(None) };
        let entry: Entry<TypeConfig> = serde_json::from_slice(value.value()).map_err(io_error)?;
        Ok(Some(entry.log_id))
    }
}

fn bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(value) => *value,
        Bound::Excluded(value) => value.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(value) => value.saturating_add(1),
        Bound::Excluded(value) => *value,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let (start, end) = bounds(&range);
        let read = self.db.begin_read().map_err(|error| StorageIOError::read_logs(&io_error(error)))?;
        let table = match read.open_table(LOG) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(error) => return Err(StorageIOError::read_logs(&io_error(error)).into()),
        };
        let mut entries = Vec::new();
        for item in table.range(start..end).map_err(|error| StorageIOError::read_logs(&io_error(error)))? {
            let (_, value) = item.map_err(|error| StorageIOError::read_logs(&io_error(error)))?;
            let entry = serde_json::from_slice(value.value()).map_err(|error| StorageIOError::read_logs(&error))?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<NodeId>> =
            read_meta(&self.db, PURGED).map_err(|error| StorageIOError::read_logs(&error))?;
        let last = self.last_entry().map_err(|error| StorageIOError::read_logs(&error))?;
        Ok(LogState { last_purged_log_id, last_log_id: last.or(last_purged_log_id) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        write_meta(&self.db, VOTE, vote).map_err(|error| StorageIOError::write_vote(&error).into())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        read_meta(&self.db, VOTE).map_err(|error| StorageIOError::read_vote(&error).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        write_meta_lazy(&self.db, COMMITTED, &committed).map_err(|error| StorageIOError::write(&error).into())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        let committed: Option<Option<LogId<NodeId>>> =
            read_meta(&self.db, COMMITTED).map_err(|error| StorageIOError::read(&error))?;
        Ok(committed.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let result = (|| -> Result<(), std::io::Error> {
            let write = self.db.begin_write().map_err(io_error)?;
            {
                let mut table = write.open_table(LOG).map_err(io_error)?;
                for entry in entries {
                    let bytes = serde_json::to_vec(&entry).map_err(io_error)?;
                    table.insert(entry.log_id.index, bytes.as_slice()).map_err(io_error)?;
                }
            }
            write.commit().map_err(io_error)
        })();
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                let storage_error = StorageIOError::write_logs(&error).into();
                callback.log_io_completed(Err(error));
                Err(storage_error)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let result = (|| -> Result<(), std::io::Error> {
            let write = self.db.begin_write().map_err(io_error)?;
            {
                let mut table = write.open_table(LOG).map_err(io_error)?;
                table.retain_in(log_id.index.., |_, _| false).map_err(io_error)?;
            }
            write.commit().map_err(io_error)
        })();
        result.map_err(|error| StorageIOError::write_logs(&error).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let result = (|| -> Result<(), std::io::Error> {
            let bytes = serde_json::to_vec(&Some(log_id)).map_err(io_error)?;
            let write = self.db.begin_write().map_err(io_error)?;
            {
                let mut meta = write.open_table(META).map_err(io_error)?;
                meta.insert(PURGED, bytes.as_slice()).map_err(io_error)?;
                let mut table = write.open_table(LOG).map_err(io_error)?;
                table.retain_in(..=log_id.index, |_, _| false).map_err(io_error)?;
            }
            write.commit().map_err(io_error)
        })();
        result.map_err(|error| StorageIOError::write_logs(&error).into())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};
    use redb::backends::InMemoryBackend;

    use super::*;

    #[tokio::test]
    async fn reset_leaves_a_store_that_opens_uninitialized() {
        // A store with a vote, a commit index, a purge mark, a snapshot record and two
        // log entries: after reset, every one of them is gone.
        let db = Arc::new(Database::builder().create_with_backend(InMemoryBackend::new()).expect("db"));
        let mut store = LogStore::new(db.clone());
        store.save_vote(&Vote::new(7, NodeId(2))).await.expect("vote");
        let log_id = |index| LogId::new(CommittedLeaderId::new(7, NodeId(2)), index);
        store.save_committed(Some(log_id(2))).await.expect("committed");
        write_meta(&db, PURGED, &Some(log_id(0))).expect("purged");
        write_snapshot(&db, "snapshot_meta", &"meta", "snapshot_data", b"data").expect("snapshot");
        let write = db.begin_write().expect("write");
        {
            let mut table = write.open_table(LOG).expect("table");
            for index in 1..=2 {
                let entry = Entry::<TypeConfig> { log_id: log_id(index), payload: EntryPayload::Blank };
                table.insert(index, serde_json::to_vec(&entry).expect("json").as_slice()).expect("insert");
            }
        }
        write.commit().expect("commit");
        assert_eq!(store.get_log_state().await.expect("state").last_log_id, Some(log_id(2)));

        LogStore::reset(&db).expect("reset");
        let mut store = LogStore::new(db.clone());
        let state = store.get_log_state().await.expect("state");
        assert_eq!((state.last_purged_log_id, state.last_log_id), (None, None));
        assert_eq!(store.read_vote().await.expect("vote"), None);
        assert_eq!(store.read_committed().await.expect("committed"), None);
        assert_eq!(read_raw(&db, "snapshot_data").expect("snapshot"), None);
        assert!(store.try_get_log_entries(0..10).await.expect("entries").is_empty());
    }
}
