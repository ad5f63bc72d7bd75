//! The durable Raft log, vote and commit index, in redb.
//!
//! One redb write transaction per `append`, committed with fsync before openraft is
//! told the entries are durable. redb calls are synchronous; they run inline on the
//! Raft task (a durable commit takes ~0.4 ms here), which also keeps the simulator
//! deterministic (no `spawn_blocking`).
//!
//! The newest entries are also kept in memory ([`Recent`]): openraft reads every entry
//! back once per follower to replicate it and once more to apply it, and decoding the
//! JSON each time was a tenth of a simulated run's time.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

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

pub(super) const VOTE: &str = "vote";
pub(super) const COMMITTED: &str = "committed";
pub(super) const PURGED: &str = "last_purged";

type StorageResult<T> = Result<T, StorageError<NodeId>>;

pub(super) fn io_error(error: impl std::error::Error + 'static) -> std::io::Error {
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

/// How many of the newest entries [`Recent`] keeps: replication and apply read
/// entries soon after they are appended, and a follower further behind than this is
/// served from redb.
const RECENT_ENTRIES: usize = 1024;

/// The newest log entries, contiguous by index, in memory.
///
/// When it holds any entry, its last entry is the last entry of the log: every append
/// goes through it, a truncation or purge removes entries from it before they leave
/// redb, and a failed truncation empties it. So a read whose range starts inside it is
/// answered from it alone.
#[derive(Debug, Default)]
struct Recent {
    entries: VecDeque<Entry<TypeConfig>>,
}

impl Recent {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|entry| entry.log_id.index)
    }

    /// Entries `start..end`, if `start` is among the entries held.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry<TypeConfig>>> {
        let first = self.first_index()?;
        if start < first {
            return None;
        }
        let from = usize::try_from(start - first).ok()?.min(self.entries.len());
        let to = usize::try_from(end.saturating_sub(first)).unwrap_or(usize::MAX).clamp(from, self.entries.len());
        Some(self.entries.range(from..to).cloned().collect())
    }

    /// Records entries just made durable, which follow the log's last entry or replace
    /// the entries from their first index on.
    fn appended(&mut self, entries: Vec<Entry<TypeConfig>>) {
        let Some(first) = entries.first().map(|entry| entry.log_id.index) else { return };
        self.truncate_from(first);
        if self.entries.back().is_some_and(|last| last.log_id.index + 1 != first) {
            // Not contiguous (it cannot happen with openraft's appends): start over.
            self.entries.clear();
        }
        self.entries.extend(entries);
        let excess = self.entries.len().saturating_sub(RECENT_ENTRIES);
        self.entries.drain(..excess);
    }

    /// Forgets entries from `index` on.
    fn truncate_from(&mut self, index: u64) {
        while self.entries.back().is_some_and(|last| last.log_id.index >= index) {
            self.entries.pop_back();
        }
    }

    /// Forgets entries up to and including `index`.
    fn purge_through(&mut self, index: u64) {
        while self.entries.front().is_some_and(|first| first.log_id.index <= index) {
            self.entries.pop_front();
        }
    }
}

/// The Raft log store. Cheap to clone: clones share the database and the recent
/// entries.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    recent: Arc<Mutex<Recent>>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    /// A log store in `db` (shared with the state machine's snapshots).
    pub fn new(db: Arc<Database>) -> Self {
        Self { db, recent: Arc::default() }
    }

    /// Writes `entries` in one durable transaction, then keeps them as the recent ones.
    fn write_entries(&self, entries: Vec<Entry<TypeConfig>>) -> Result<(), std::io::Error> {
        let write = self.db.begin_write().map_err(io_error)?;
        {
            let mut table = write.open_table(LOG).map_err(io_error)?;
            for entry in &entries {
                let bytes = serde_json::to_vec(entry).map_err(io_error)?;
                table.insert(entry.log_id.index, bytes.as_slice()).map_err(io_error)?;
            }
        }
        write.commit().map_err(io_error)?;
        self.recent().appended(entries);
        Ok(())
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        if let Some(entries) = self.recent().get(start, end) {
            return Ok(entries);
        }
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
        match self.write_entries(entries.into_iter().collect()) {
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
        self.recent().truncate_from(log_id.index);
        let result = (|| -> Result<(), std::io::Error> {
            let write = self.db.begin_write().map_err(io_error)?;
            {
                let mut table = write.open_table(LOG).map_err(io_error)?;
                table.retain_in(log_id.index.., |_, _| false).map_err(io_error)?;
            }
            write.commit().map_err(io_error)
        })();
        if result.is_err() {
            // The entries after the cut may still be in redb: keep nothing that could
            // hide them.
            self.recent().entries.clear();
        }
        result.map_err(|error| StorageIOError::write_logs(&error).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        self.recent().purge_through(log_id.index);
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

    fn blank(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, NodeId(1)), index), payload: EntryPayload::Blank }
    }

    fn memory_db() -> Arc<Database> {
        Arc::new(Database::builder().create_with_backend(InMemoryBackend::new()).expect("db"))
    }

    #[tokio::test]
    async fn reads_from_memory_match_reads_from_redb_through_appends_truncations_and_purges() {
        // A random walk of appends (some replacing a suffix, as after a leader change),
        // truncations and purges, with more entries than the memory keeps: after every
        // step, every range read through the store equals the same read through a
        // fresh store on the same database, which has nothing in memory.
        let db = memory_db();
        let mut store = LogStore::new(db.clone());
        let mut random = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: u64| {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            random % bound.max(1)
        };
        let (mut first, mut last, mut term) = (1u64, 0u64, 1u64);
        for step in 0..400 {
            match next(10) {
                0..=5 => {
                    // Append after the last entry or over a suffix of up to 5 entries.
                    let from = (last + 1).saturating_sub(next(6)).max(first);
                    let count = 1 + next(2 * RECENT_ENTRIES as u64 / 10);
                    term += u64::from(from <= last);
                    let entries = (from..from + count).map(|index| blank(term, index)).collect();
                    store.write_entries(entries).expect("append");
                    last = from + count - 1;
                }
                6..=7 if last >= first => {
                    let at = first + next(last - first + 1);
                    store.truncate(blank(term, at).log_id).await.expect("truncate");
                    last = at - 1;
                }
                _ if last >= first => {
                    let through = first + next((last - first + 1).min(50));
                    store.purge(blank(term, through).log_id).await.expect("purge");
                    first = through + 1;
                }
                _ => {}
            }
            let mut fresh = LogStore::new(db.clone());
            let lo = first.saturating_sub(3);
            for (start, end) in
                [(lo, last + 3), (last.saturating_sub(10), last + 1), (first + next(last + 1), u64::MAX)]
            {
                let cached = store.try_get_log_entries(start..end).await.expect("read");
                let stored = fresh.try_get_log_entries(start..end).await.expect("read");
                assert_eq!(cached, stored, "step {step}, range {start}..{end}");
            }
        }
        let held = store.recent().entries.len();
        assert!(held > 0 && held <= RECENT_ENTRIES, "{held}");
    }

    #[test]
    fn recent_entries_answer_only_ranges_that_start_inside_them() {
        let mut recent = Recent::default();
        assert_eq!(recent.get(1, 5), None);
        recent.appended((1..=5).map(|index| blank(1, index)).collect());
        let indexes = |entries: Option<Vec<Entry<TypeConfig>>>| {
            entries.map(|entries| entries.iter().map(|entry| entry.log_id.index).collect::<Vec<_>>())
        };
        assert_eq!(indexes(recent.get(2, 4)), Some(vec![2, 3]));
        assert_eq!(indexes(recent.get(4, u64::MAX)), Some(vec![4, 5]));
        assert_eq!(indexes(recent.get(9, 12)), Some(vec![]));
        recent.purge_through(2);
        assert_eq!(recent.get(2, 4), None);
        // A replacement from index 4 on drops the old 4 and 5.
        recent.appended(vec![blank(2, 4)]);
        assert_eq!(indexes(recent.get(3, 10)), Some(vec![3, 4]));
        assert_eq!(recent.entries.back().map(|entry| entry.log_id.leader_id.term), Some(2));
        // A gap (never produced by openraft) empties it rather than hold a hole.
        recent.appended(vec![blank(2, 9)]);
        assert_eq!(indexes(recent.get(3, 10)), None);
        assert_eq!(indexes(recent.get(9, 10)), Some(vec![9]));
    }

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
