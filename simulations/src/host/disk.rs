//! A simulated host's disk: the chunks it verified, the bundles it unpacked, and which
//! revision it runs for each deployment group. It survives crashes whole: Install
//! replaces a group's current revision in one step (as the real install records the
//! last successful install only after copying), so no half-installed revision is ever
//! current.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_state::model::ids::{ChunkHash, DeploymentId, RevisionId};
use fleetmesh_transport::NodeId;

/// One installed file: what the host wrote, summarized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledFile {
    /// Path in the bundle.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// [`super::catalog::file_digest`] of the chunks as received.
    pub digest: blake3::Hash,
}

/// What a host runs for one deployment group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledRevision {
    /// The deployment that installed it.
    pub deployment_id: DeploymentId,
    /// The revision the host was told to install.
    pub revision_id: RevisionId,
    /// BLAKE3 of the manifest the host installed from, recomputed by the host.
    pub manifest_id: RevisionId,
    /// Every file it wrote.
    pub files: Vec<InstalledFile>,
}

/// One Install, as the installs-exact-bytes invariant reads it.
#[derive(Clone, Debug)]
pub struct InstallRecord {
    /// The host.
    pub node: NodeId,
    /// The deployment group.
    pub deployment_group_id: String,
    /// What it installed.
    pub installed: InstalledRevision,
}

/// The disk of one simulated host.
#[derive(Debug, Default)]
pub struct SimDisk {
    /// Chunks held, each with the digest of the bytes actually received.
    pub chunks: BTreeMap<ChunkHash, ChunkHash>,
    /// Revisions held complete.
    pub complete: BTreeSet<RevisionId>,
    /// Bundles unpacked by DownloadBundle, by deployment.
    pub archives: BTreeMap<DeploymentId, RevisionId>,
    /// What runs now, by deployment group id.
    pub current: BTreeMap<String, InstalledRevision>,
    /// Every install, oldest first: (group id, deployment, revision).
    pub history: Vec<(String, DeploymentId, RevisionId)>,
}

impl SimDisk {
    /// The last install of `group` by one of `deployments`, if any.
    pub fn last_install_among(&self, group: &str, deployments: &[&DeploymentId]) -> Option<(DeploymentId, RevisionId)> {
        self.history
            .iter()
            .rev()
            .find(|(installed_group, deployment, _)| installed_group == group && deployments.contains(&deployment))
            .map(|(_, deployment, revision)| (deployment.clone(), *revision))
    }
}
