//! The simulated host agent's journal: [`MemoryJournal`] kept across restarts, with a
//! model of writes that were not yet synced, and fencing of writes from a crashed
//! incarnation.
//!
//! The model of "crash losing unsynced writes": a save returns at once, but the newest
//! save of a host sits in a write cache until the next save pushes it to the durable
//! journal (the [`MemoryJournal`]). A clean crash flushes it (the real journal fsyncs
//! every save before returning, so a crash loses nothing that was saved); a lossy crash
//! drops it, as a disk whose cache lies about fsync, or a crash in the middle of the
//! save, would. At most one record goes back by one version. The agent then re-runs the
//! event whose start was lost, and its report numbers step back by one, which the
//! leader ignores as stale until they pass the last committed one.
//!
//! A crashed node's lifecycle tasks are not part of its task set (the agent spawns
//! them) and may still be running; their saves are refused once the node has crashed,
//! so they cannot write into the journal of the node's next incarnation.

use std::sync::{Arc, Mutex, MutexGuard};

use fleetmesh_node::agent::{Journal, JournalError, JournalRecord, MemoryJournal};
use fleetmesh_state::model::ids::DeploymentId;

#[derive(Debug, Default)]
struct Store {
    durable: MemoryJournal,
    unsynced: Option<JournalRecord>,
    incarnation: u64,
}

/// A host's journal across its incarnations.
#[derive(Clone, Debug, Default)]
pub struct SimJournal {
    store: Arc<Mutex<Store>>,
}

impl SimJournal {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The journal as the node's next incarnation sees it.
    pub fn open(&self) -> JournalHandle {
        let incarnation = self.lock().incarnation;
        JournalHandle { journal: self.clone(), incarnation }
    }

    /// The node crashed: fences the writers of this incarnation, and either syncs the
    /// newest save or, with `lose_unsynced`, drops it. Returns the deployment whose
    /// record went back a version, if one did.
    pub fn crash(&self, lose_unsynced: bool) -> Option<DeploymentId> {
        let mut store = self.lock();
        store.incarnation += 1;
        let record = store.unsynced.take()?;
        if lose_unsynced {
            return Some(record.assignment.deployment_id);
        }
        // A memory journal's save cannot fail.
        let _ = store.durable.save(&record);
        None
    }
}

/// One incarnation's view of the journal.
#[derive(Debug)]
pub struct JournalHandle {
    journal: SimJournal,
    incarnation: u64,
}

impl Journal for JournalHandle {
    fn load_all(&self) -> Vec<JournalRecord> {
        let store = self.journal.lock();
        let mut records = store.durable.load_all();
        if let Some(unsynced) = &store.unsynced {
            let id = &unsynced.assignment.deployment_id;
            match records.binary_search_by(|record| record.assignment.deployment_id.cmp(id)) {
                Ok(index) => records[index] = unsynced.clone(),
                Err(index) => records.insert(index, unsynced.clone()),
            }
        }
        records
    }

    fn load(&self, deployment: &DeploymentId) -> Option<JournalRecord> {
        let store = self.journal.lock();
        match &store.unsynced {
            Some(unsynced) if &unsynced.assignment.deployment_id == deployment => Some(unsynced.clone()),
            _ => store.durable.load(deployment),
        }
    }

    fn save(&self, record: &JournalRecord) -> Result<(), JournalError> {
        let mut store = self.journal.lock();
        if store.incarnation != self.incarnation {
            let fenced = std::io::Error::other("the host crashed; this agent's journal is no longer writable");
            return Err(fenced.into());
        }
        if let Some(previous) = store.unsynced.take() {
            store.durable.save(&previous)?;
        }
        store.unsynced = Some(record.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use fleetmesh_node::runtime::protocol::DeploymentAssignment;
    use fleetmesh_state::model::deployment::TargetStatus;
    use fleetmesh_state::model::ids::Hash32;
    use fleetmesh_state::model::resources::FileExistsBehavior;

    use super::*;

    fn record(id: &str, next_seq: u64) -> JournalRecord {
        JournalRecord {
            assignment: DeploymentAssignment {
                deployment_id: DeploymentId(id.into()),
                application_name: "app".into(),
                deployment_group_name: "web".into(),
                deployment_group_id: "g".into(),
                revision_id: Hash32([0; 32]),
                ignore_application_stop_failures: false,
                file_exists_behavior: FileExistsBehavior::Disallow,
                traffic_routes: Vec::new(),
                events: Vec::new(),
                ready_before: None,
                source: None,
            },
            events: Vec::new(),
            status: TargetStatus::InProgress,
            running: None,
            next_seq,
        }
    }

    #[test]
    fn clean_crash_keeps_every_save_and_lossy_crash_drops_only_the_newest() {
        // Saves d-1 v1, d-1 v2, d-2 v1, then a clean crash; then d-2 v2 and a lossy crash:
        // asserts the clean crash kept everything, the lossy one rolled d-2 back to v1 and
        // kept d-1, and a stale incarnation can no longer write.
        let journal = SimJournal::default();
        let first = journal.open();
        first.save(&record("d-1", 1)).expect("saved");
        first.save(&record("d-1", 2)).expect("saved");
        first.save(&record("d-2", 1)).expect("saved");
        assert_eq!(journal.crash(false), None);
        assert!(first.save(&record("d-1", 9)).is_err(), "a crashed incarnation cannot write");
        let second = journal.open();
        assert_eq!(second.load(&DeploymentId("d-2".into())).map(|r| r.next_seq), Some(1));
        second.save(&record("d-2", 2)).expect("saved");
        assert_eq!(second.load_all().iter().map(|r| r.next_seq).collect::<Vec<_>>(), vec![2, 2]);
        assert_eq!(journal.crash(true), Some(DeploymentId("d-2".into())));
        let third = journal.open();
        assert_eq!(third.load_all().iter().map(|r| r.next_seq).collect::<Vec<_>>(), vec![2, 1]);
    }
}
