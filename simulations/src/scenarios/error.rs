//! Why a scenario could not run: its cluster failed (see
//! [`ClusterError`]), or a setup step the scenario relies on was refused. These are
//! failures to run, not verdicts: a violated invariant is recorded as a
//! [`Violation`](crate::invariants::Violation) and the scenario goes on.

use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::Outcome;

use super::leader_partition::WriteError;
use crate::cluster::ClusterError;

/// A scenario that could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The cluster could not form, a node could not restart, or a wait timed out.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A command creating the application, its group or a revision was refused.
    #[error("setup command refused: {outcome:?}")]
    SetupRefused {
        /// What the command returned.
        outcome: Outcome,
    },
    /// No node led when revision `version` was to be pushed.
    #[error("no leader to push revision {version}")]
    NoLeaderToPush {
        /// The revision's version.
        version: u64,
    },
    /// A deployment the scenario needs was refused.
    #[error("deployment of revision {revision} refused: {outcome:?}")]
    DeploymentRefused {
        /// The revision deployed.
        revision: RevisionId,
        /// What the command returned.
        outcome: Outcome,
    },
    /// The cluster formed without a leader.
    #[error("no leader after formation")]
    NoLeaderAfterFormation,
    /// A write before the partition, which nothing disturbs, failed.
    #[error("write before the partition failed: {0}")]
    WriteBeforePartition(WriteError),
    /// The task proposing the partitioned leader's write did not finish.
    #[error("stale write task failed: {0}")]
    StaleWriteTask(tokio::task::JoinError),
}
