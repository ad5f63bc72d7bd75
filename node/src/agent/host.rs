//! The production host: hooks run as processes, bundles are unpacked from the chunk
//! store into `DIR/deployment-root/<group id>/<deployment id>/deployment-archive`, files
//! are installed under `--install-root`, and the journal is a directory of append-only files
//! ([`super::journal`]; the on-disk layout of `codedeploy.md` §8.3, under the node's data directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_state::model::deployment::{Diagnostics, LifecycleErrorCode, TargetStatus};
use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_transport::BoxFuture;
use tracing::warn;

use super::backend::{Journal, LifecycleBackend, TargetContext};
use super::journal::FileJournal;
use crate::agent::hooks::{self, EventOutcome, HookEnv};
use crate::agent::install::{self, InstallPlan};
use crate::agent::script_log::ScriptLog;

use crate::revision::service::RevisionService;
use crate::revision::MaterializeError;
use crate::runtime::protocol::{Assignments, MemberAddress, RevisionProgress};
use crate::runtime::Node;

/// Deployment directories kept per deployment group (CodeDeploy's `:max_revisions:`,
/// §8.3), besides the last successful install which is never removed.
pub const DEPLOYMENTS_KEPT_PER_GROUP: usize = 5;

/// How long DownloadBundle waits for the swarm before it fails.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(3600);

/// Why the host backend could not open its directories.
#[derive(Debug, thiserror::Error)]
#[error("cannot prepare {}: {source}", path.display())]
pub struct HostError {
    /// The directory.
    pub path: PathBuf,
    /// What the OS said.
    pub source: std::io::Error,
}

/// The production lifecycle backend.
pub struct HostBackend {
    root: PathBuf,
    install_root: PathBuf,
    journal: FileJournal,
    revisions: Arc<RevisionService>,
}

impl std::fmt::Debug for HostBackend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("HostBackend").field("root", &self.root).finish_non_exhaustive()
    }
}

fn failure(code: LifecycleErrorCode, message: impl Into<String>) -> EventOutcome {
    EventOutcome {
        succeeded: false,
        diagnostics: Diagnostics {
            error_code: code,
            script_name: String::new(),
            message: message.into(),
            log_tail: String::new(),
        },
    }
}

fn success(message: impl Into<String>) -> EventOutcome {
    EventOutcome {
        succeeded: true,
        diagnostics: Diagnostics {
            error_code: LifecycleErrorCode::Success,
            script_name: String::new(),
            message: message.into(),
            log_tail: String::new(),
        },
    }
}

/// Why DownloadBundle could not unpack a revision into the deployment directory.
#[derive(Debug, thiserror::Error)]
enum UnpackError {
    /// Preparing the deployment directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The unpacking task panicked or was cancelled.
    #[error("the unpacking task ended abnormally: {0}")]
    Task(String),
    /// Writing the revision's files failed.
    #[error("{0}")]
    Materialize(#[from] MaterializeError),
}

impl HostBackend {
    /// Opens the host backend of a node whose data directory is `data_dir`, installing
    /// under `install_root` and taking revisions from `revisions`.
    ///
    /// # Errors
    /// Its directories cannot be created.
    pub fn open(data_dir: &Path, install_root: &Path, revisions: Arc<RevisionService>) -> Result<Self, HostError> {
        let root = data_dir.join("deployment-root");
        let journal_dir = data_dir.join("agent").join("journal");
        let journal =
            FileJournal::open(journal_dir.clone()).map_err(|source| HostError { path: journal_dir, source })?;
        let instructions = root.join("deployment-instructions");
        std::fs::create_dir_all(&instructions).map_err(|source| HostError { path: instructions, source })?;
        Ok(Self { root, install_root: install_root.to_path_buf(), journal, revisions })
    }

    /// The revision service (chunk store, manifests, swarm).
    pub fn revisions(&self) -> &Arc<RevisionService> {
        &self.revisions
    }

    fn instructions_dir(&self) -> PathBuf {
        self.root.join("deployment-instructions")
    }

    fn deployment_dir(&self, context: &TargetContext) -> PathBuf {
        self.root.join(&context.assignment.deployment_group_id).join(context.assignment.deployment_id.to_string())
    }

    fn env(&self, node: &Node, context: &TargetContext) -> HookEnv {
        let assignment = &context.assignment;
        HookEnv::default()
            .with("DEPLOYMENT_ID", &assignment.deployment_id.to_string())
            .with("APPLICATION_NAME", &assignment.application_name)
            .with("DEPLOYMENT_GROUP_NAME", &assignment.deployment_group_name)
            .with("DEPLOYMENT_GROUP_ID", &assignment.deployment_group_id)
            .with("FLEETMESH_NODE_ID", &node.id().to_string())
            .with("FLEETMESH_INSTALL_ROOT", &self.install_root.to_string_lossy())
            .with("FLEETMESH_REVISION_ID", &assignment.revision_id.to_string())
    }

    /// Removes deployment directories of a group beyond the newest
    /// [`DEPLOYMENTS_KEPT_PER_GROUP`], never the last successful install's, then drops
    /// chunks no kept revision references.
    fn prune(&self, context: &TargetContext) {
        let group_dir = self.root.join(&context.assignment.deployment_group_id);
        let protected =
            install::last_successful_install(&self.instructions_dir(), &context.assignment.deployment_group_id);
        let Ok(entries) = std::fs::read_dir(&group_dir) else { return };
        let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
            .collect();
        dirs.sort();
        let excess = dirs.len().saturating_sub(DEPLOYMENTS_KEPT_PER_GROUP);
        for (_, dir) in dirs.into_iter().take(excess) {
            if protected.as_deref() == Some(dir.as_path()) {
                continue;
            }
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                warn!(%error, dir = %dir.display(), "cannot remove an old deployment directory");
            }
        }
        let keep: std::collections::BTreeSet<RevisionId> = self
            .journal
            .load_all()
            .into_iter()
            .filter(|record| {
                self.root
                    .join(&record.assignment.deployment_group_id)
                    .join(record.assignment.deployment_id.to_string())
                    .is_dir()
            })
            .map(|record| record.assignment.revision_id)
            .collect();
        self.revisions.collect_garbage(&keep);
    }
}

impl LifecycleBackend for HostBackend {
    fn journal(&self) -> &dyn Journal {
        &self.journal
    }

    fn run_hooks<'a>(
        &'a self,
        node: &'a Arc<Node>,
        context: &'a TargetContext,
        event: &'a str,
    ) -> BoxFuture<'a, EventOutcome> {
        Box::pin(async move {
            let deployment_dir = self.deployment_dir(context);
            // ApplicationStop (and the block-traffic events) run the scripts of the last
            // successful install on this host, not the new revision's (§2.4).
            let previous = matches!(event, "ApplicationStop" | "BeforeBlockTraffic" | "AfterBlockTraffic");
            let archive = if previous {
                let Some(last) =
                    install::last_successful_install(&self.instructions_dir(), &context.assignment.deployment_group_id)
                else {
                    return success("no earlier install of this deployment group on this host: nothing to stop");
                };
                let archive = last.join("deployment-archive");
                if !archive.is_dir() {
                    return success(format!(
                        "the previous install's files are gone ({}): nothing to stop",
                        archive.display()
                    ));
                }
                archive
            } else {
                deployment_dir.join("deployment-archive")
            };
            let appspec = match crate::agent::appspec_file::read_appspec(&archive).map_err(|error| error.to_string()) {
                Ok(appspec) => appspec,
                Err(message) => return failure(LifecycleErrorCode::UnknownError, message),
            };
            let scripts = appspec.scripts(event).to_vec();
            let mut log = match ScriptLog::for_deployment(&deployment_dir) {
                Ok(log) => log,
                Err(error) => {
                    return failure(LifecycleErrorCode::UnknownError, format!("cannot open the script log: {error}"))
                }
            };
            hooks::run_event(event, &scripts, &archive, &self.env(node, context), &mut log).await
        })
    }

    fn download_bundle<'a>(&'a self, node: &'a Arc<Node>, context: &'a TargetContext) -> BoxFuture<'a, EventOutcome> {
        Box::pin(async move {
            let revision = context.assignment.revision_id;
            let deployment_dir = self.deployment_dir(context);
            let archive = deployment_dir.join("deployment-archive");
            // Two attempts: a chunk the store lost after the revision counted complete
            // (a pack deleted behind its back, bit rot) is dropped by the first, and the
            // second fetches it from the swarm again.
            let mut attempts = 0;
            loop {
                attempts += 1;
                let manifest = match self.revisions.wait_complete(node, revision, DOWNLOAD_TIMEOUT).await {
                    Ok(manifest) => manifest,
                    Err(message) => return failure(LifecycleErrorCode::UnknownError, message),
                };
                let revisions = self.revisions.clone();
                let target = archive.clone();
                let unpacked = tokio::task::spawn_blocking(move || -> Result<(), UnpackError> {
                    let parent = target.parent().unwrap_or(&target);
                    let io = |path: &Path| {
                        let path = path.to_path_buf();
                        move |source| UnpackError::Io { path, source }
                    };
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                    if target.exists() {
                        // A leftover of an interrupted earlier attempt of this deployment.
                        std::fs::remove_dir_all(&target).map_err(io(&target))?;
                    }
                    Ok(revisions.materialize(&manifest, &target)?)
                })
                .await
                .unwrap_or_else(|error| Err(UnpackError::Task(error.to_string())));
                match unpacked {
                    Ok(()) => break,
                    Err(UnpackError::Materialize(error)) if error.is_missing_chunk() && attempts < 2 => {
                        warn!(%revision, %error, "a chunk of the revision is gone from the store; fetching it again");
                    }
                    Err(error) => {
                        return failure(
                            LifecycleErrorCode::UnknownError,
                            format!("cannot unpack revision {revision}: {error}"),
                        );
                    }
                }
            }
            if let Err(error) = install::record_most_recent_install(
                &self.instructions_dir(),
                &context.assignment.deployment_group_id,
                &deployment_dir,
            ) {
                return failure(LifecycleErrorCode::UnknownError, error.to_string());
            }
            match crate::agent::appspec_file::read_appspec(&archive).map_err(|error| error.to_string()) {
                Ok(appspec) if !appspec.warnings.is_empty() => {
                    success(format!("revision {revision} unpacked; appspec warnings: {}", appspec.warnings.join("; ")))
                }
                Ok(_) => success(format!("revision {revision} unpacked")),
                Err(message) => failure(LifecycleErrorCode::UnknownError, message),
            }
        })
    }

    fn install<'a>(&'a self, _node: &'a Arc<Node>, context: &'a TargetContext) -> BoxFuture<'a, EventOutcome> {
        Box::pin(async move {
            let deployment_dir = self.deployment_dir(context);
            let archive = deployment_dir.join("deployment-archive");
            let appspec = match crate::agent::appspec_file::read_appspec(&archive).map_err(|error| error.to_string()) {
                Ok(appspec) => appspec,
                Err(message) => return failure(LifecycleErrorCode::UnknownError, message),
            };
            let install_root = self.install_root.clone();
            let instructions = self.instructions_dir();
            let group_id = context.assignment.deployment_group_id.clone();
            let behavior = context.assignment.file_exists_behavior;
            let result = tokio::task::spawn_blocking(move || {
                let plan = InstallPlan {
                    appspec: &appspec,
                    archive_root: &archive,
                    install_root: &install_root,
                    instructions_dir: &instructions,
                    deployment_group_id: &group_id,
                    file_exists_behavior: behavior,
                };
                let report = install::install(&plan)?;
                install::record_last_successful_install(&instructions, &group_id, &deployment_dir)?;
                Ok::<_, install::InstallError>(report)
            })
            .await;
            match result {
                Ok(Ok(report)) => success(format!(
                    "installed {} files and {} directories ({} cleaned up from the previous install)",
                    report.copied.len(),
                    report.created_directories.len(),
                    report.cleaned_up
                )),
                Ok(Err(error)) => failure(LifecycleErrorCode::UnknownError, error.to_string()),
                Err(error) => failure(LifecycleErrorCode::UnknownError, error.to_string()),
            }
        })
    }

    fn finished(&self, context: &TargetContext, _status: TargetStatus) {
        self.prune(context);
    }

    fn on_assignments(
        &self,
        node: &Arc<Node>,
        assignments: &Assignments,
        peers: &BTreeMap<RevisionId, Vec<MemberAddress>>,
    ) {
        self.revisions.on_assignments(node, assignments, peers);
    }

    fn revision_progress(&self) -> Vec<RevisionProgress> {
        self.revisions.progress()
    }
}
