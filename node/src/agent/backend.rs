//! What the lifecycle sequencer needs from the host: running events and a durable
//! journal. Production implements it with processes, files and the chunk store
//! ([`super::host::HostBackend`]); the simulator with simulated outcomes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use fleetmesh_state::model::deployment::{LifecycleEvent, TargetStatus};
use fleetmesh_state::model::ids::{DeploymentId, RevisionId};
use fleetmesh_transport::{BoxFuture, NodeId};
use serde::{Deserialize, Serialize};

use crate::agent::hooks::{EventOutcome, Interrupt};
use crate::runtime::protocol::{Assignments, DeploymentAssignment, MemberAddress, RevisionProgress};
use crate::runtime::Node;

/// One target run on this host.
#[derive(Clone, Debug)]
pub struct TargetContext {
    /// What the leader asked for.
    pub assignment: DeploymentAssignment,
    /// This host.
    pub node_id: NodeId,
    /// Ends the running event at once: the deployment was stopped, or the node's
    /// shutdown grace is over. Backends that cannot be interrupted may ignore it.
    pub interrupt: Interrupt,
}

/// What the journal remembers of one deployment on this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// The assignment.
    pub assignment: DeploymentAssignment,
    /// Lifecycle events as last recorded.
    pub events: Vec<LifecycleEvent>,
    /// Target status as last recorded.
    pub status: TargetStatus,
    /// The event that was running when this record was written, if any.
    pub running: Option<String>,
    /// Next report sequence number (reports must increase across restarts).
    pub next_seq: u64,
}

/// Why a journal record could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Writing or syncing the journal failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The record does not encode as JSON.
    #[error("the journal record does not encode: {0}")]
    Encode(#[from] serde_json::Error),
    /// Rewriting an oversized journal file with its last record failed.
    #[error(transparent)]
    Rewrite(#[from] crate::runtime::identity::IdentityError),
}

/// A durable per-deployment journal.
pub trait Journal: Send + Sync + 'static {
    /// Every record.
    fn load_all(&self) -> Vec<JournalRecord>;
    /// One record.
    fn load(&self, deployment: &DeploymentId) -> Option<JournalRecord>;
    /// Stores a record durably before returning.
    ///
    /// # Errors
    /// The record could not be made durable.
    fn save(&self, record: &JournalRecord) -> Result<(), JournalError>;
}

/// A journal in memory, shared across simulated restarts of one node.
#[derive(Debug, Default, Clone)]
pub struct MemoryJournal {
    records: Arc<Mutex<BTreeMap<DeploymentId, JournalRecord>>>,
}

impl Journal for MemoryJournal {
    fn load_all(&self) -> Vec<JournalRecord> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect()
    }

    fn load(&self, deployment: &DeploymentId) -> Option<JournalRecord> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(deployment).cloned()
    }

    fn save(&self, record: &JournalRecord) -> Result<(), JournalError> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(record.assignment.deployment_id.clone(), record.clone());
        Ok(())
    }
}

/// The host side of lifecycle events.
pub trait LifecycleBackend: Send + Sync + 'static {
    /// The journal.
    fn journal(&self) -> &dyn Journal;

    /// Runs the scripts of a scriptable `event` (ApplicationStop uses the last
    /// successful install's scripts, §2.4; the others the current revision's).
    fn run_hooks<'a>(
        &'a self,
        node: &'a Arc<Node>,
        context: &'a TargetContext,
        event: &'a str,
    ) -> BoxFuture<'a, EventOutcome>;

    /// DownloadBundle: waits until the revision is held and verified locally, and
    /// unpacks it for this deployment.
    fn download_bundle<'a>(&'a self, node: &'a Arc<Node>, context: &'a TargetContext) -> BoxFuture<'a, EventOutcome>;

    /// Install: cleanup of the previous install, copy, permissions (§1.3, §7.3).
    fn install<'a>(&'a self, node: &'a Arc<Node>, context: &'a TargetContext) -> BoxFuture<'a, EventOutcome>;

    /// Removes the files the group's last install put on this host (its cleanup list,
    /// `codedeploy.md` §7.3), as a blue/green `TERMINATE` does after blue's
    /// `ApplicationStop`: how many entries were removed. Backends without files do
    /// nothing.
    ///
    /// # Errors
    /// A listed path that cannot be removed, or a cleanup list that cannot be read.
    fn remove_installed_files(&self, _context: &TargetContext) -> Result<usize, super::install::InstallError> {
        Ok(0)
    }

    /// A run ended (any outcome): a chance to prune old revisions.
    fn finished(&self, _context: &TargetContext, _status: TargetStatus) {}

    /// New assignments: start fetching the revisions to prefetch from these peers.
    fn on_assignments(
        &self,
        node: &Arc<Node>,
        assignments: &Assignments,
        peers: &BTreeMap<RevisionId, Vec<MemberAddress>>,
    );

    /// Download progress of revisions being fetched or held.
    fn revision_progress(&self) -> Vec<RevisionProgress>;
}
