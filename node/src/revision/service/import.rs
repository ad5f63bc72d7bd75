//! A bundle this node read from elsewhere (an S3 object, a Git commit) becomes a
//! revision it seeds, as a push does: chunks into the store, the manifest saved, the
//! revision served to the swarm and kept as this application's push.

use std::path::Path;
use std::sync::Arc;

use fleetmesh_core::swarm::PieceMap;

use super::error::UploadError;
use super::RevisionService;
use crate::revision::build::{build_manifest, bundle_size, BuiltRevision};
use crate::revision::bundle::BundleError;

/// Why a fetched bundle could not become a revision.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bundle breaks a bundle rule (the entry is named).
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Too large, or its chunks or manifest could not be stored.
    #[error(transparent)]
    Store(#[from] UploadError),
}

impl RevisionService {
    /// Reads the bundle at `source` (a directory, `.tar`, `.tgz` or `.zip`), stores its
    /// chunks and manifest, and serves it as `application`'s newest push. Blocking:
    /// it reads and hashes the whole bundle.
    ///
    /// # Errors
    /// A bad bundle (checked before any chunk is stored), more than `max_bytes` of
    /// files, or a store that cannot write.
    pub fn import_bundle(
        &self,
        application: &str,
        source: &Path,
        max_bytes: u64,
    ) -> Result<BuiltRevision, ImportError> {
        let declared = bundle_size(source)?;
        if declared > max_bytes {
            return Err(UploadError::TooLarge { declared_bytes: declared, limit_bytes: max_bytes }.into());
        }
        let store = self.store();
        let built = build_manifest(source, &mut |chunk, bytes| store.put(chunk.hash(), bytes).map(|_| ()))?;
        self.write_manifest(&built.manifest).map_err(UploadError::from)?;
        let unique = built.manifest.unique_chunks();
        let map = Arc::new(PieceMap::new(&unique));
        let wake = self.book(|book| book.handle_pushed(Arc::new(built.manifest.clone()), map));
        self.wake(wake);
        self.record_push(application, built.manifest.revision_id());
        Ok(built)
    }
}
