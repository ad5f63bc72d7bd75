//! The production agent journal: one append-only file per deployment under
//! `DIR/agent/journal/<deployment id>.log`, one JSON record per line.
//!
//! The sequencer saves a record before and after every lifecycle event (about 15 saves
//! per target), and each save must be durable before the event starts. Rewriting a file
//! and renaming it into place costs a file creation, a rename and a directory fsync per
//! save (5–10 ms each on this project's ext4 test machines, more under load), which
//! made the journal the largest cost of a no-op wave. Appending a line and
//! `fdatasync`ing costs about 0.3 ms. A crash mid-append leaves a torn last line that does
//! not parse; loading takes the last line that does, which is the last save that
//! completed. Each line starts with a newline, so a record appended after a torn line
//! never shares its line.
//!
//! Files written by earlier versions (`<deployment id>.json`, one whole record) are still
//! read; the next save for that deployment goes to the `.log` file, which wins.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use fleetmesh_state::model::ids::DeploymentId;

use super::backend::{Journal, JournalError, JournalRecord};
use crate::runtime::identity::write_private_file;

/// A journal file longer than this is rewritten with its last record only. A target
/// appends about 15 records of about 1 KiB; re-reports after leader changes and restarts
/// add one each. The cap keeps a deployment that is re-reported forever from growing
/// its file without bound.
pub(super) const JOURNAL_FILE_BYTES_MAX: u64 = 256 << 10;

const LOG_EXTENSION: &str = "log";
const LEGACY_EXTENSION: &str = "json";

/// Journal records as append-only files, one per deployment.
#[derive(Debug)]
pub(super) struct FileJournal {
    dir: PathBuf,
}

impl FileJournal {
    /// The journal in `dir`, created if missing.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub(super) fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, deployment: &DeploymentId, extension: &str) -> PathBuf {
        self.dir.join(format!("{deployment}.{extension}"))
    }

    /// Appends `line` to `path`, creating the file (and making its name durable) if new.
    fn append(&self, path: &Path, line: &[u8]) -> std::io::Result<u64> {
        let (mut file, created) = match OpenOptions::new().append(true).create_new(true).mode(0o600).open(path) {
            Ok(file) => (file, true),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                (OpenOptions::new().append(true).open(path)?, false)
            }
            Err(error) => return Err(error),
        };
        file.write_all(line)?;
        // Data and the new length; the name needs the directory flushed, once.
        file.sync_data()?;
        if created {
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(file.metadata()?.len())
    }
}

/// The last complete record in a journal file's bytes (a torn last line is skipped).
fn last_record(bytes: &[u8]) -> Option<JournalRecord> {
    bytes
        .split(|byte| *byte == b'\n')
        .rev()
        .filter(|line| !line.is_empty())
        .find_map(|line| serde_json::from_slice(line).ok())
}

fn read_record(path: &Path) -> Option<JournalRecord> {
    last_record(&std::fs::read(path).ok()?)
}

impl Journal for FileJournal {
    fn load_all(&self) -> Vec<JournalRecord> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut deployments: Vec<DeploymentId> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension().is_some_and(|extension| extension == LOG_EXTENSION || extension == LEGACY_EXTENSION)
            })
            .filter_map(|path| Some(DeploymentId(path.file_stem()?.to_str()?.to_string())))
            .collect();
        deployments.sort();
        deployments.dedup();
        deployments.iter().filter_map(|deployment| self.load(deployment)).collect()
    }

    fn load(&self, deployment: &DeploymentId) -> Option<JournalRecord> {
        let record = read_record(&self.path(deployment, LOG_EXTENSION))
            .or_else(|| read_record(&self.path(deployment, LEGACY_EXTENSION)))?;
        // Paired check: a record is saved under its own deployment's name.
        (record.assignment.deployment_id == *deployment).then_some(record)
    }

    fn save(&self, record: &JournalRecord) -> Result<(), JournalError> {
        let mut line = vec![b'\n'];
        serde_json::to_writer(&mut line, record)?;
        line.push(b'\n');
        let path = self.path(&record.assignment.deployment_id, LOG_EXTENSION);
        let length = self.append(&path, &line)?;
        if length > JOURNAL_FILE_BYTES_MAX {
            // Atomic rewrite (temporary file, fsync, rename, directory fsync).
            write_private_file(&path, &line)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::deployment::{LifecycleEvent, TargetStatus};
    use fleetmesh_state::model::ids::Hash32;

    use super::*;
    use crate::runtime::protocol::DeploymentAssignment;

    fn record(deployment: &str, seq: u64) -> JournalRecord {
        JournalRecord {
            assignment: DeploymentAssignment {
                deployment_id: DeploymentId(deployment.to_string()),
                application_name: "app".into(),
                deployment_group_name: "web".into(),
                deployment_group_id: "g-1".into(),
                revision_id: Hash32([7; 32]),
                ignore_application_stop_failures: false,
                file_exists_behavior: Default::default(),
                traffic_routes: Vec::new(),
                events: Vec::new(),
                ready_before: None,
                source: None,
            },
            events: vec![LifecycleEvent::pending("ApplicationStop")],
            status: TargetStatus::InProgress,
            running: None,
            next_seq: seq,
        }
    }

    #[test]
    fn the_last_save_wins_and_a_torn_tail_is_ignored() {
        // Three saves, then half a fourth line as a crash mid-append leaves it: load
        // returns the third; a save after the tear is read back whole.
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = FileJournal::open(dir.path().join("journal")).expect("open");
        for seq in 1..=3 {
            journal.save(&record("d-A", seq)).expect("save");
        }
        let path = journal.path(&DeploymentId("d-A".into()), LOG_EXTENSION);
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(b"\n{\"assignment\":{\"deploy").expect("tear");
        assert_eq!(journal.load(&DeploymentId("d-A".into())).map(|record| record.next_seq), Some(3));
        journal.save(&record("d-A", 4)).expect("save after the tear");
        assert_eq!(journal.load(&DeploymentId("d-A".into())).map(|record| record.next_seq), Some(4));
        assert_eq!(journal.load_all(), vec![record("d-A", 4)]);
    }

    #[test]
    fn legacy_whole_record_files_are_read_and_the_log_overrides_them() {
        // A `.json` record from an earlier version is loaded; once a `.log` exists for the
        // same deployment, the log's record is the one returned, once.
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = FileJournal::open(dir.path().to_path_buf()).expect("open");
        let legacy = serde_json::to_vec(&record("d-B", 5)).expect("json");
        std::fs::write(dir.path().join("d-B.json"), legacy).expect("write");
        assert_eq!(journal.load_all(), vec![record("d-B", 5)]);
        journal.save(&record("d-B", 6)).expect("save");
        assert_eq!(journal.load_all(), vec![record("d-B", 6)]);
    }

    #[test]
    fn a_file_past_the_cap_is_rewritten_with_its_last_record() {
        // Enough saves to pass the cap: the file shrinks back to one record, still the last.
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = FileJournal::open(dir.path().to_path_buf()).expect("open");
        let one = serde_json::to_vec(&record("d-C", 0)).expect("json").len() as u64 + 2;
        let saves = JOURNAL_FILE_BYTES_MAX / one + 2;
        for seq in 0..saves {
            journal.save(&record("d-C", seq)).expect("save");
        }
        let length = std::fs::metadata(dir.path().join("d-C.log")).expect("metadata").len();
        assert!(length < JOURNAL_FILE_BYTES_MAX, "the journal file was not compacted: {length} bytes");
        assert_eq!(journal.load(&DeploymentId("d-C".into())).map(|record| record.next_seq), Some(saves - 1));
    }
}
