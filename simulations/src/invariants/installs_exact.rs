//! Safety: every target that installs a revision installs exactly the bytes its
//! deployment's manifest names.
//!
//! Each simulated Install records the revision the host was told to install, the
//! BLAKE3 of the manifest it installed from, and a digest of every file computed from
//! the chunks as the host received them. The monitor checks each install against the
//! replicated state: the deployment exists, targets that host, is of that group and
//! revision; the registered manifest hashes to that revision and to the host's
//! manifest hash; and every file's digest equals the one its manifest chunk list gives.
//! An install the observer cannot place yet (its deployment is not replayed yet) waits
//! for the next round; at the end, none may be left.

use fleetmesh_state::model::revision::Manifest;
use fleetmesh_state::ClusterState;

use super::Violation;
use crate::host::catalog::file_digest;
use crate::host::disk::{InstallRecord, InstalledRevision};

/// The installs monitor.
#[derive(Debug, Default)]
pub struct InstallsExact {
    waiting: Vec<InstallRecord>,
    /// Installs checked.
    pub checked: u64,
    violation: Option<Violation>,
}

/// The files a manifest names, as (path, size, digest) in manifest order.
pub fn expected_files(manifest: &Manifest) -> Vec<(&str, u64, blake3::Hash)> {
    manifest
        .files()
        .map(|(path, size, chunks)| (path, size, file_digest(chunks.iter().map(|chunk| &chunk.0))))
        .collect()
}

/// True when `installed` holds exactly the files of `manifest`.
pub fn matches_manifest(installed: &InstalledRevision, manifest: &Manifest) -> bool {
    let got: Vec<(&str, u64, blake3::Hash)> =
        installed.files.iter().map(|file| (file.path.as_str(), file.size, file.digest)).collect();
    installed.manifest_id == manifest.revision_id() && got == expected_files(manifest)
}

fn check_one(state: &ClusterState, record: &InstallRecord) -> Option<Result<(), Violation>> {
    let installed = &record.installed;
    let host = record.node;
    let deployment = state.deployments.get(&installed.deployment_id)?;
    let id = &deployment.deployment_id;
    let problem = if !deployment.targets.contains_key(&host) {
        Some(format!("host {host} installed for deployment {id}, which does not target it"))
    } else if deployment.deployment_group_id != record.deployment_group_id {
        Some(format!("host {host} installed deployment {id} into group {}", record.deployment_group_id))
    } else if installed.revision_id != deployment.revision_id {
        Some(format!(
            "host {host} installed revision {} for deployment {id} of revision {}",
            installed.revision_id, deployment.revision_id
        ))
    } else {
        match state.revisions.get(&deployment.revision_id) {
            None => Some(format!("deployment {id} names revision {}, which is not registered", deployment.revision_id)),
            Some(registered) if registered.manifest.revision_id() != deployment.revision_id => {
                Some(format!("the registered manifest of revision {} hashes to something else", deployment.revision_id))
            }
            Some(_) if installed.manifest_id != deployment.revision_id => Some(format!(
                "host {host} installed from a manifest hashing to {} for revision {}",
                installed.manifest_id, deployment.revision_id
            )),
            Some(registered) => {
                let expected = expected_files(&registered.manifest);
                let got: Vec<(&str, u64, blake3::Hash)> =
                    installed.files.iter().map(|file| (file.path.as_str(), file.size, file.digest)).collect();
                (expected != got).then(|| {
                    let wrong = expected
                        .iter()
                        .zip(&got)
                        .find(|(want, have)| want != have)
                        .map_or_else(|| "the file list".to_string(), |(want, _)| want.0.to_string());
                    format!("host {host} installed revision {} with wrong bytes in {wrong}", deployment.revision_id)
                })
            }
        }
    };
    Some(problem.map(Violation::new).map_or(Ok(()), Err))
}

impl InstallsExact {
    /// Checks new installs (and those waiting) against `state`.
    pub fn check(&mut self, state: &ClusterState, new: Vec<InstallRecord>) {
        self.waiting.extend(new);
        let mut still_waiting = Vec::new();
        for record in std::mem::take(&mut self.waiting) {
            match check_one(state, &record) {
                None => still_waiting.push(record),
                Some(result) => {
                    self.checked += 1;
                    if let Err(problem) = result {
                        self.violation.get_or_insert(problem);
                    }
                }
            }
        }
        self.waiting = still_waiting;
    }

    /// The final check: no install is left that the replicated state never explained.
    pub fn final_check(&mut self) {
        if let Some(record) = self.waiting.first() {
            self.violation.get_or_insert_with(|| {
                Violation::new(format!(
                    "host {} installed for deployment {}, which the cluster never committed",
                    record.node, record.installed.deployment_id
                ))
            });
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }
}
