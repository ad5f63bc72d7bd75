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
use fleetmesh_state::model::revision::Manifest;
use fleetmesh_transport::BoxFuture;
use tracing::warn;

use super::backend::{Journal, LifecycleBackend, TargetContext};
use super::journal::FileJournal;
use crate::agent::appspec_file::{read_appspec, AppSpecFileError};
use crate::agent::hooks::{self, EventControl, EventOutcome, HookEnv, HookGroups};
use crate::agent::install::{self, InstallError, InstallPlan};
use crate::agent::script_log::{deployments_log, ScriptLog};

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
    /// The process groups of running hook scripts.
    hook_groups: HookGroups,
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
    Task(tokio::task::JoinError),
    /// Writing the revision's files failed.
    #[error("{0}")]
    Materialize(#[from] MaterializeError),
}

/// Why a lifecycle event failed on this host outside its scripts; the message becomes
/// the event's diagnostics (`UnknownError`).
#[derive(Debug, thiserror::Error)]
enum EventError {
    /// The revision's appspec cannot be read.
    #[error(transparent)]
    AppSpec(#[from] AppSpecFileError),
    /// The deployment's script log cannot be opened.
    #[error("cannot open the script log: {0}")]
    ScriptLog(std::io::Error),
    /// The revision did not become complete and verified locally.
    #[error("{0}")]
    Revision(String),
    /// The revision could not be unpacked.
    #[error("cannot unpack revision {revision}: {source}")]
    Unpack {
        /// The revision.
        revision: RevisionId,
        /// Why.
        source: UnpackError,
    },
    /// Install, or recording an install, failed.
    #[error(transparent)]
    Install(#[from] install::InstallError),
    /// The install task panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

/// Where an event's scripts come from (§2.4).
enum ScriptSource {
    /// This unpacked revision.
    Archive(PathBuf),
    /// The group was never installed on this host: nothing to stop.
    NoEarlierInstall,
    /// The previous install's unpacked revision is gone.
    PreviousFilesGone(PathBuf),
}

/// The outcome of an event that ends with `result`: its message on success, the error's
/// on failure.
fn outcome(result: Result<String, EventError>) -> EventOutcome {
    match result {
        Ok(message) => success(message),
        Err(error) => failure(LifecycleErrorCode::UnknownError, error.to_string()),
    }
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
        let groups_dir = data_dir.join("agent").join("hook-groups");
        let hook_groups = HookGroups::in_dir(&groups_dir).map_err(|source| HostError { path: groups_dir, source })?;
        for line in hook_groups.end_leftovers() {
            warn!("{line}");
        }
        Ok(Self { root, install_root: install_root.to_path_buf(), journal, revisions, hook_groups })
    }

    /// The revision service (chunk store, manifests, swarm).
    pub fn revisions(&self) -> &Arc<RevisionService> {
        &self.revisions
    }

    /// The group's cleanup list: what its last install created on this host.
    fn cleanup_list(&self, context: &TargetContext) -> PathBuf {
        self.instructions_dir().join(format!("{}-cleanup", context.assignment.deployment_group_id))
    }

    fn instructions_dir(&self) -> PathBuf {
        self.root.join("deployment-instructions")
    }

    fn deployment_dir(&self, context: &TargetContext) -> PathBuf {
        self.root.join(&context.assignment.deployment_group_id).join(context.assignment.deployment_id.to_string())
    }

    fn env(&self, node: &Node, context: &TargetContext) -> HookEnv {
        let assignment = &context.assignment;
        let bundle = assignment.source.iter().flat_map(|source| source.hook_env());
        bundle
            .fold(HookEnv::default(), |env, (name, value)| env.with(name, &value))
            .with("DEPLOYMENT_ID", &assignment.deployment_id.to_string())
            .with("APPLICATION_NAME", &assignment.application_name)
            .with("DEPLOYMENT_GROUP_NAME", &assignment.deployment_group_name)
            .with("DEPLOYMENT_GROUP_ID", &assignment.deployment_group_id)
            .with("FLEETMESH_NODE_ID", &node.id().to_string())
            .with("FLEETMESH_INSTALL_ROOT", &self.install_root.to_string_lossy())
            // Where routers and other hosts reach this one: an app a hook starts binds here.
            .with("FLEETMESH_NODE_ADDRESS", &node.settings().advertise.to_string())
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

    /// Which unpacked revision's scripts `event` runs: ApplicationStop (and the
    /// block-traffic events) run the last successful install's on this host, not the new
    /// revision's (§2.4).
    fn script_source(&self, context: &TargetContext, event: &str) -> ScriptSource {
        if !matches!(event, "ApplicationStop" | "BeforeBlockTraffic" | "AfterBlockTraffic") {
            return ScriptSource::Archive(self.deployment_dir(context).join("deployment-archive"));
        }
        let group_id = &context.assignment.deployment_group_id;
        let Some(last) = install::last_successful_install(&self.instructions_dir(), group_id) else {
            return ScriptSource::NoEarlierInstall;
        };
        let archive = last.join("deployment-archive");
        if archive.is_dir() {
            ScriptSource::Archive(archive)
        } else {
            ScriptSource::PreviousFilesGone(archive)
        }
    }

    /// Runs `event`'s scripts from `archive`, logging to this deployment's script log.
    async fn run_scripts(
        &self,
        node: &Node,
        context: &TargetContext,
        event: &str,
        archive: &Path,
    ) -> Result<EventOutcome, EventError> {
        let appspec = read_appspec(archive)?;
        let scripts = appspec.scripts(event).to_vec();
        let mut log = ScriptLog::for_deployment(&self.deployment_dir(context))
            .map_err(EventError::ScriptLog)?
            .also_to(&deployments_log(&self.root), &context.assignment.deployment_id.to_string());
        let control = EventControl { interrupt: context.interrupt.clone(), groups: self.hook_groups.clone() };
        Ok(hooks::run_event(event, &scripts, archive, &self.env(node, context), &mut log, &control).await)
    }

    /// DownloadBundle: unpacks the revision into this deployment's directory, records
    /// it as the group's most recent install, and reads its appspec; the message names
    /// the revision and the appspec's warnings.
    async fn download(&self, node: &Arc<Node>, context: &TargetContext) -> Result<String, EventError> {
        let revision = context.assignment.revision_id;
        let deployment_dir = self.deployment_dir(context);
        let archive = deployment_dir.join("deployment-archive");
        self.unpack(node, revision, &archive).await?;
        let group_id = &context.assignment.deployment_group_id;
        install::record_most_recent_install(&self.instructions_dir(), group_id, &deployment_dir)?;
        let appspec = read_appspec(&archive)?;
        Ok(if appspec.warnings.is_empty() {
            format!("revision {revision} unpacked")
        } else {
            format!("revision {revision} unpacked; appspec warnings: {}", appspec.warnings.join("; "))
        })
    }

    /// Waits until `revision` is held and verified, then writes its files to `archive`.
    /// Two attempts: a chunk the store lost after the revision counted complete (a pack
    /// deleted behind its back, bit rot) is dropped by the first, and the second fetches
    /// it from the swarm again.
    async fn unpack(&self, node: &Arc<Node>, revision: RevisionId, archive: &Path) -> Result<(), EventError> {
        let mut attempts = 0;
        // Bounded: two attempts.
        loop {
            attempts += 1;
            let manifest = self
                .revisions
                .wait_complete(node, revision, DOWNLOAD_TIMEOUT)
                .await
                .map_err(|error| EventError::Revision(error.to_string()))?;
            let revisions = self.revisions.clone();
            let target = archive.to_path_buf();
            let unpacked = tokio::task::spawn_blocking(move || unpack_into(&revisions, &manifest, &target))
                .await
                .unwrap_or_else(|error| Err(UnpackError::Task(error)));
            match unpacked {
                Ok(()) => return Ok(()),
                Err(UnpackError::Materialize(error)) if error.is_missing_chunk() && attempts < 2 => {
                    warn!(%revision, %error, "a chunk of the revision is gone from the store; fetching it again");
                }
                Err(source) => return Err(EventError::Unpack { revision, source }),
            }
        }
    }

    /// Install: cleanup of the previous install, copy, permissions (§1.3, §7.3), then
    /// records this deployment as the group's last successful install; the message
    /// counts what was done.
    async fn install_revision(&self, context: &TargetContext) -> Result<String, EventError> {
        let deployment_dir = self.deployment_dir(context);
        let archive = deployment_dir.join("deployment-archive");
        let appspec = read_appspec(&archive)?;
        let install_root = self.install_root.clone();
        let instructions = self.instructions_dir();
        let group_id = context.assignment.deployment_group_id.clone();
        let behavior = context.assignment.file_exists_behavior;
        let report = tokio::task::spawn_blocking(move || {
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
        .await??;
        Ok(format!(
            "installed {} files and {} directories ({} cleaned up from the previous install)",
            report.copied.len(),
            report.created_directories.len(),
            report.cleaned_up
        ))
    }
}

/// Writes `manifest`'s files to `target` (a blocking task), replacing a leftover of an
/// interrupted earlier attempt.
fn unpack_into(revisions: &RevisionService, manifest: &Manifest, target: &Path) -> Result<(), UnpackError> {
    let parent = target.parent().unwrap_or(target);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UnpackError::Io { path, source }
    };
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    if target.exists() {
        // A leftover of an interrupted earlier attempt of this deployment.
        std::fs::remove_dir_all(target).map_err(io(target))?;
    }
    Ok(revisions.materialize(manifest, target)?)
}

impl LifecycleBackend for HostBackend {
    fn journal(&self) -> &dyn Journal {
        &self.journal
    }

    fn remove_installed_files(&self, context: &TargetContext) -> Result<usize, InstallError> {
        install::remove_installed(&self.cleanup_list(context))
    }

    fn run_hooks<'a>(
        &'a self,
        node: &'a Arc<Node>,
        context: &'a TargetContext,
        event: &'a str,
    ) -> BoxFuture<'a, EventOutcome> {
        Box::pin(async move {
            let archive = match self.script_source(context, event) {
                ScriptSource::Archive(archive) => archive,
                ScriptSource::NoEarlierInstall => {
                    return success("no earlier install of this deployment group on this host: nothing to stop")
                }
                ScriptSource::PreviousFilesGone(archive) => {
                    return success(format!(
                        "the previous install's files are gone ({}): nothing to stop",
                        archive.display()
                    ))
                }
            };
            match self.run_scripts(node, context, event, &archive).await {
                Ok(outcome) => outcome,
                Err(error) => failure(LifecycleErrorCode::UnknownError, error.to_string()),
            }
        })
    }

    fn download_bundle<'a>(&'a self, node: &'a Arc<Node>, context: &'a TargetContext) -> BoxFuture<'a, EventOutcome> {
        Box::pin(async move {
            tokio::select! {
                biased;
                result = self.download(node, context) => outcome(result),
                reason = context.interrupt.wait() => {
                    failure(LifecycleErrorCode::UnknownError, format!("DownloadBundle was interrupted: {reason}"))
                }
            }
        })
    }

    fn install<'a>(&'a self, _node: &'a Arc<Node>, context: &'a TargetContext) -> BoxFuture<'a, EventOutcome> {
        Box::pin(async move { outcome(self.install_revision(context).await) })
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
