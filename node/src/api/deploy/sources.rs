//! Revisions the cluster fetches itself: an S3 object or a Git commit named by
//! `RegisterApplicationRevision` or `CreateDeployment` is read once, by the node that
//! answers (the leader), into chunks it seeds; hosts get them from the swarm. The same
//! content gives the same revision id whatever its source; an object already
//! registered at the ETag S3 reports, or a commit already registered, is not read again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_aws::{AwsErrorKind, AwsSettings, ObjectInfo, ObjectRef, SdkS3};
use fleetmesh_model::{
    git_commit, registered, registered_from, s3_object, BundleType, Empty, GitHubLocation,
    RegisterApplicationRevisionInput, RevisionRef, RevisionSource, S3Location,
};
use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::model::members::Actor;
use fleetmesh_state::model::revision::RevisionRecord;
use fleetmesh_state::Command;

use super::{commit, lambda, Api, ApiError};
use crate::revision::git::GitError;
use crate::revision::service::ImportError;
use crate::revision::BuiltRevision;

/// `RegisterApplicationRevision`: an S3 object is fetched and registered; an AppSpec
/// given inline is registered; a pushed revision must exist already.
///
/// # Errors
/// The application or pushed revision does not exist, the object cannot be read
/// (AWS's reason, naming bucket and key), or the bundle is bad (the entry named).
pub(super) async fn register(
    api: &Api,
    input: RegisterApplicationRevisionInput,
    by: Option<&Actor>,
) -> Result<Empty, ApiError> {
    let application = input.application_name.as_str();
    let description = input.description.unwrap_or_default();
    let mut reference = RevisionRef { revision_id: None, revision: Some(input.revision) };
    fetch(api, application, &mut reference, &description, by).await?;
    if let Some(content) = reference.inline_content()? {
        let record = lambda::inline_record(&api.node, application, content, by);
        commit(&api.node, Command::RegisterRevision { record: Box::new(record) }, by).await?;
        return Ok(Empty {});
    }
    let revision = reference.resolve()?;
    api.node.state().read(|state| match state.revisions.get(&revision) {
        Some(record) if record.application_name == application => Ok(Empty {}),
        Some(record) => Err(ApiError::invalid(
            "revision",
            format!("revision {revision} belongs to application {}, not {application}", record.application_name),
        )),
        None => Err(ApiError::not_found(format!("revision {revision} does not exist: push it first"))),
    })
}

/// Makes `reference` name a registered revision by id when it names an S3 object
/// outside the pushed bucket: the object is read and registered first, unless a
/// revision of `application` was registered from it at the ETag (and version) S3
/// reports now. Other references are left as they are.
///
/// # Errors
/// As [`register`].
pub(super) async fn fetch(
    api: &Api,
    application: &str,
    reference: &mut RevisionRef,
    description: &str,
    by: Option<&Actor>,
) -> Result<(), ApiError> {
    let Some(location) = &reference.revision else { return Ok(()) };
    let git = git_commit(location)?.cloned();
    let s3 = s3_object(location)?.filter(|s3| !s3.is_pushed()).cloned();
    if git.is_none() && s3.is_none() {
        return Ok(());
    }
    if !api.node.state().read(|state| state.applications.contains_key(application)) {
        return Err(ApiError::not_found(format!("application {application} does not exist")));
    }
    let revision = match (git, s3) {
        (Some(git), _) => fetch_git(api, application, &git, description, by).await?,
        (_, Some(s3)) => fetch_s3(api, application, &s3, description, by).await?,
        (None, None) => return Ok(()),
    };
    *reference = RevisionRef::id(revision);
    Ok(())
}

/// The revision of an S3 object: the one registered at the ETag (and version) S3
/// reports now, else the object read and registered.
async fn fetch_s3(
    api: &Api,
    application: &str,
    s3: &S3Location,
    description: &str,
    by: Option<&Actor>,
) -> Result<RevisionId, ApiError> {
    let client = SdkS3::new(&AwsSettings::default().load().await);
    let object = ObjectRef { bucket: &s3.bucket, key: &s3.key, version: s3.version.as_deref() };
    let head = client.head(object).await.map_err(|error| s3_refusal(s3, &error))?;
    if let Some(wanted) = s3.e_tag.as_deref().map(fleetmesh_model::unquoted) {
        if wanted != head.e_tag {
            return Err(invalid_revision(s3, format!("its ETag is {}, not {wanted}", head.e_tag)));
        }
    }
    let now = S3Location { e_tag: Some(head.e_tag.clone()), version: head.version.clone(), ..s3.clone() };
    match api.node.state().read(|state| registered_from(state, Some(application), &now)) {
        Some(revision) => Ok(revision),
        None => import(api, application, s3, &head, description, by).await,
    }
}

/// Longest a Git clone and checkout may take on the leader before the request fails
/// (503, retryable) and the clone is stopped.
const GIT_FETCH_TIMEOUT: Duration = Duration::from_secs(600);

/// The revision of a Git commit: the one registered from it, else the repository
/// cloned, the commit's tree written out and registered.
async fn fetch_git(
    api: &Api,
    application: &str,
    git: &GitHubLocation,
    description: &str,
    by: Option<&Actor>,
) -> Result<RevisionId, ApiError> {
    if let Some(known) =
        api.node.state().read(|state| registered(state, Some(application), |source| git.matches(source)))
    {
        return Ok(known);
    }
    let service = api
        .revisions
        .clone()
        .ok_or_else(|| ApiError::unavailable("this node stores no chunks (it has no revision store)"))?;
    let scratch = Scratch::new(api)?;
    let max_bytes = api.node.settings().max_revision_bytes;
    let (owned, repository, commit_id) =
        (application.to_string(), git.repository.clone(), git.commit_id.to_ascii_lowercase());
    let dir = scratch.0.clone();
    let interrupt = Arc::new(AtomicBool::new(false));
    let stop = interrupt.clone();
    let task = tokio::task::spawn_blocking(move || -> Result<BuiltRevision, ApiError> {
        let tree = crate::revision::git::checkout(&repository, &commit_id, &dir, &stop)
            .map_err(|error| git_refusal(&error))?;
        service.import_bundle(&owned, &tree, max_bytes).map_err(|error| {
            ApiError::invalid("revision.gitHubLocation", format!("{repository} at {commit_id}: {error}"))
                .with_code("InvalidRevisionException")
        })
    });
    let Ok(joined) = tokio::time::timeout(GIT_FETCH_TIMEOUT, task).await else {
        interrupt.store(true, Ordering::Relaxed);
        return Err(ApiError::unavailable(format!(
            "{} at {}: the clone took longer than {} s and was stopped; retry, or check that the repository \
             answers from the leader",
            git.repository,
            git.commit_id,
            GIT_FETCH_TIMEOUT.as_secs()
        )));
    };
    let built = joined.map_err(|error| ApiError::internal(error.to_string()))??;
    let mut record = bundle_record(api, application, built);
    record.description = description.chars().take(fleetmesh_model::bounds::DESCRIPTION_CHARS_MAX).collect();
    record.registered_by = format!("{} at {} via node {}", git.repository, git.commit_id, api.node.id());
    record.source =
        Some(RevisionSource::Git { repository: git.repository.clone(), commit_id: git.commit_id.to_ascii_lowercase() });
    let revision = record.revision_id;
    commit(&api.node, Command::RegisterRevision { record: Box::new(record) }, by).await?;
    Ok(revision)
}

/// The record of a bundle this node read and seeds.
fn bundle_record(api: &Api, application: &str, built: BuiltRevision) -> RevisionRecord {
    RevisionRecord {
        revision_id: built.manifest.revision_id(),
        application_name: application.to_string(),
        description: String::new(),
        size_bytes: built.total_bytes,
        unique_bytes: built.unique_bytes,
        chunk_count: built.chunk_count,
        register_time: api.node.clock().now(),
        registered_by: String::new(),
        created_by: None,
        seeds: vec![api.node.id()],
        manifest: built.manifest,
        app_spec: None,
        source: None,
    }
}

/// Git's refusal: a bad commit id or a missing commit is `InvalidRevisionException`
/// naming it; a repository that cannot be cloned names it with Git's reason.
fn git_refusal(error: &GitError) -> ApiError {
    let field = match error {
        GitError::CommitId(_) | GitError::NoCommit { .. } => "revision.gitHubLocation.commitId",
        GitError::Clone { .. } | GitError::Tree { .. } => "revision.gitHubLocation.repository",
    };
    ApiError::invalid(field, error).with_code("InvalidRevisionException")
}

/// Downloads the object into a scratch directory of this node, turns it into a
/// revision record (chunks and manifest stored here, or an AppSpec document) and
/// registers it.
async fn import(
    api: &Api,
    application: &str,
    s3: &S3Location,
    head: &ObjectInfo,
    description: &str,
    by: Option<&Actor>,
) -> Result<RevisionId, ApiError> {
    let service = api
        .revisions
        .clone()
        .ok_or_else(|| ApiError::unavailable("this node stores no chunks (it has no revision store)"))?;
    let max_bytes = api.node.settings().max_revision_bytes;
    let bundle_type = s3.bundle_type.unwrap_or_default();
    let scratch = Scratch::new(api)?;
    let file = scratch.0.join(format!("bundle.{}", bundle_type.archive_extension().unwrap_or("appspec")));
    let client = SdkS3::new(&AwsSettings::default().load().await);
    let object = ObjectRef { bucket: &s3.bucket, key: &s3.key, version: head.version.as_deref() };
    let read =
        client.download(object, Some(&head.e_tag), max_bytes, &file).await.map_err(|error| s3_refusal(s3, &error))?;
    let source = RevisionSource::S3 {
        bucket: s3.bucket.clone(),
        key: s3.key.clone(),
        bundle_type: bundle_type.as_str().to_string(),
        e_tag: read.e_tag.clone(),
        version: read.version.clone(),
    };
    let mut record = if bundle_type.archive_extension().is_some() {
        let owned = application.to_string();
        let built = tokio::task::spawn_blocking(move || service.import_bundle(&owned, &file, max_bytes))
            .await
            .map_err(|error| ApiError::internal(error.to_string()))?
            .map_err(|error| bad_bundle(s3, &error))?;
        bundle_record(api, application, built)
    } else {
        let content = appspec_document(s3, bundle_type, &file)?;
        lambda::inline_record(&api.node, application, &content, by)
    };
    record.description = description.chars().take(fleetmesh_model::bounds::DESCRIPTION_CHARS_MAX).collect();
    record.registered_by = format!("s3://{}/{} via node {}", s3.bucket, s3.key, api.node.id());
    record.source = Some(source);
    let revision = record.revision_id;
    commit(&api.node, Command::RegisterRevision { record: Box::new(record) }, by).await?;
    Ok(revision)
}

/// The AppSpec document a `YAML` or `JSON` object holds.
fn appspec_document(s3: &S3Location, bundle_type: BundleType, file: &Path) -> Result<String, ApiError> {
    let bytes = std::fs::read(file).map_err(|error| ApiError::internal(format!("{}: {error}", file.display())))?;
    let content = String::from_utf8(bytes)
        .map_err(|_| invalid_revision(s3, format!("bundleType {} needs a UTF-8 document", bundle_type.as_str())))?;
    if content.trim().is_empty() {
        return Err(invalid_revision(s3, "the AppSpec document is empty".to_string()));
    }
    Ok(content)
}

/// A scratch directory `DIR/imports/<random>`, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(api: &Api) -> Result<Self, ApiError> {
        let base = api.node.settings().data_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = base.join("imports").join(hex::encode(api.node.random_bytes::<8>()));
        std::fs::create_dir_all(&dir)
            .map_err(|error| ApiError::internal(format!("cannot make {}: {error}", dir.display())))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort: a leftover directory holds one bundle and is replaced by name.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 400 `InvalidRevisionException` naming the object.
fn invalid_revision(s3: &S3Location, reason: String) -> ApiError {
    ApiError::invalid("revision.s3Location", format!("s3://{}/{}: {reason}", s3.bucket, s3.key))
        .with_code("InvalidRevisionException")
}

/// S3's refusal, naming the object and S3's code: a missing object is
/// `RevisionDoesNotExistException`, a passing fault 503, the rest `InvalidRevisionException`.
fn s3_refusal(s3: &S3Location, error: &fleetmesh_aws::AwsError) -> ApiError {
    let what = format!("s3://{}/{}: {} {}: {}", s3.bucket, s3.key, error.operation, error.code, error.message);
    match error.code.as_str() {
        "NoSuchKey" | "NotFound" | "NoSuchBucket" | "NoSuchVersion" => {
            ApiError::not_found(format!("revision {what}")).with_code("RevisionDoesNotExistException")
        }
        "PreconditionFailed" => invalid_revision(s3, "the object changed while it was read (ETag)".to_string()),
        _ if error.kind == AwsErrorKind::Retryable => ApiError::unavailable(what),
        _ => ApiError::invalid("revision.s3Location", what).with_code("InvalidRevisionException"),
    }
}

fn bad_bundle(s3: &S3Location, error: &ImportError) -> ApiError {
    invalid_revision(s3, format!("not a bundle fleetmesh can deploy: {error}"))
}
