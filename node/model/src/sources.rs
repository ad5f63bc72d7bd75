//! Revisions the cluster fetches itself (botocore's `S3Location`, `GitHubLocation`) and
//! AWS's `RegisterApplicationRevision`, which names one by its location.
//!
//! The node that answers such a request fetches the bundle once, turns it into a
//! manifest and chunks and registers it with its [`RevisionSource`]; hosts get the
//! chunks from the swarm, never from S3 or Git.

use serde::{Deserialize, Serialize};

pub use fleetmesh_state::model::revision::RevisionSource;

use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::model::revision::RevisionRecord;
use fleetmesh_state::{ClusterState, NodeId};

use crate::{EpochSeconds, ErrorKind, OperationError, RevisionLocation, RevisionLocationType, RevisionRef};

/// `BundleType`: how the object's bytes are a revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BundleType {
    /// A tar archive.
    #[default]
    #[serde(rename = "tar")]
    Tar,
    /// A gzip-compressed tar archive.
    #[serde(rename = "tgz")]
    Tgz,
    /// A zip archive.
    #[serde(rename = "zip")]
    Zip,
    /// An AppSpec document in YAML (Lambda and ECS revisions).
    #[serde(rename = "YAML")]
    Yaml,
    /// An AppSpec document in JSON (Lambda and ECS revisions).
    #[serde(rename = "JSON")]
    Json,
}

impl BundleType {
    /// The bundle type AWS names `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Tar, Self::Tgz, Self::Zip, Self::Yaml, Self::Json].into_iter().find(|bundle| bundle.as_str() == name)
    }

    /// AWS's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tar => "tar",
            Self::Tgz => "tgz",
            Self::Zip => "zip",
            Self::Yaml => "YAML",
            Self::Json => "JSON",
        }
    }

    /// The file extension the bundle reader recognizes it by; `None` for an AppSpec
    /// document, which is a revision by itself.
    pub fn archive_extension(self) -> Option<&'static str> {
        match self {
            Self::Tar => Some("tar"),
            Self::Tgz => Some("tgz"),
            Self::Zip => Some("zip"),
            Self::Yaml | Self::Json => None,
        }
    }
}

/// `S3Location`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Location {
    /// The bucket.
    #[serde(default)]
    pub bucket: String,
    /// The object's key.
    #[serde(default)]
    pub key: String,
    /// How to read it (default `tar`, as the agent assumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_type: Option<BundleType>,
    /// A version id: that version is read, not the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The ETag the object must have (checked by S3 when reading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
}

/// `GitHubLocation`: a commit of a GitHub repository (`owner/name`) or, as a fleetmesh
/// extension of the same member, of any Git URL (`git://`, `ssh://`, a path).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitHubLocation {
    /// `owner/name`, or a Git URL.
    #[serde(default)]
    pub repository: String,
    /// The full commit id.
    #[serde(default)]
    pub commit_id: String,
}

impl GitHubLocation {
    /// True when `source` is this commit of this repository.
    pub fn matches(&self, source: &RevisionSource) -> bool {
        matches!(source, RevisionSource::Git { repository, commit_id }
            if *repository == self.repository && commit_id.eq_ignore_ascii_case(&self.commit_id))
    }
}

/// The commit `location` names, when it is a `GitHub` location.
///
/// # Errors
/// `revisionType: GitHub` without `gitHubLocation`, or without its repository or
/// commit (field named).
pub fn git_commit(location: &RevisionLocation) -> Result<Option<&GitHubLocation>, OperationError> {
    if location.revision_type != RevisionLocationType::GitHub {
        return Ok(None);
    }
    let invalid = |field: &str, reason: &str| {
        let mut error =
            OperationError::new(ErrorKind::BadRequest, format!("revision.gitHubLocation.{field}: {reason}"));
        error.field = Some(format!("revision.gitHubLocation.{field}"));
        error
    };
    match location.git_hub_location.as_deref() {
        None => Err(invalid("repository", "revisionType GitHub needs gitHubLocation {repository, commitId}")),
        Some(git) if git.repository.is_empty() => Err(invalid("repository", "missing")),
        Some(git) if git.commit_id.is_empty() => Err(invalid("commitId", "missing")),
        Some(git) => Ok(Some(git)),
    }
}

impl S3Location {
    /// True for the reserved bucket of pushed revisions.
    pub fn is_pushed(&self) -> bool {
        self.bucket == crate::aws::PUSHED_BUCKET
    }

    /// True when `source` is this object (and, where this location pins them, this
    /// version and ETag).
    pub fn matches(&self, source: &RevisionSource) -> bool {
        let RevisionSource::S3 { bucket, key, e_tag, version, .. } = source else { return false };
        let pinned = |wanted: &Option<String>, have: Option<&str>| {
            wanted.as_deref().is_none_or(|wanted| Some(crate::sources::unquoted(wanted)) == have)
        };
        *bucket == self.bucket
            && *key == self.key
            && pinned(&self.e_tag, Some(e_tag.as_str()))
            && pinned(&self.version, version.as_deref())
    }
}

/// `value` without the double quotes S3 writes around ETags.
pub fn unquoted(value: &str) -> &str {
    value.trim().trim_matches('"')
}

/// The S3 object `location` names, when it is an S3 location outside the reserved bucket.
///
/// # Errors
/// `revisionType: S3` without `s3Location`, or without its bucket or key (field named).
pub fn s3_object(location: &RevisionLocation) -> Result<Option<&S3Location>, OperationError> {
    if location.revision_type != RevisionLocationType::S3 {
        return Ok(None);
    }
    let invalid = |field: &str, reason: &str| {
        let mut error = OperationError::new(ErrorKind::BadRequest, format!("revision.s3Location.{field}: {reason}"));
        error.field = Some(format!("revision.s3Location.{field}"));
        error
    };
    let Some(s3) = &location.s3_location else {
        return Err(invalid("bucket", "revisionType S3 needs s3Location {bucket, key, bundleType}"));
    };
    if s3.bucket.is_empty() {
        return Err(invalid("bucket", "missing"));
    }
    if s3.key.is_empty() {
        return Err(invalid("key", "missing"));
    }
    Ok(Some(s3))
}

/// The newest revision registered from the S3 object `s3` names (of `application_name`
/// when given): how a read names a fetched revision by its location.
pub fn registered_from(state: &ClusterState, application_name: Option<&str>, s3: &S3Location) -> Option<RevisionId> {
    registered(state, application_name, |source| s3.matches(source))
}

/// The newest revision (of `application_name` when given) whose source is `wanted`.
pub fn registered(
    state: &ClusterState,
    application_name: Option<&str>,
    wanted: impl Fn(&RevisionSource) -> bool,
) -> Option<RevisionId> {
    state
        .revisions
        .values()
        .filter(|record| application_name.is_none_or(|name| record.application_name == name))
        .filter(|record| record.source.as_ref().is_some_and(&wanted))
        .max_by_key(|record| record.register_time)
        .map(|record| record.revision_id)
}

impl RevisionRef {
    /// The revision named, an S3 object's or a Git commit's by the revision registered
    /// from it.
    ///
    /// # Errors
    /// As [`RevisionRef::resolve`]; an S3 object or commit no revision was registered
    /// from (not found, naming it).
    pub fn resolve_in(
        &self,
        state: &ClusterState,
        application_name: Option<&str>,
    ) -> Result<RevisionId, OperationError> {
        if let Some(git) = self.revision.as_ref().map(git_commit).transpose()?.flatten() {
            return registered(state, application_name, |source| git.matches(source)).ok_or_else(|| {
                OperationError::new(
                    ErrorKind::NotFound,
                    format!("revision {} at {} does not exist: register it first", git.repository, git.commit_id),
                )
            });
        }
        let Some(s3) = self.revision.as_ref().map(s3_object).transpose()?.flatten() else {
            return self.resolve();
        };
        registered_from(state, application_name, s3).ok_or_else(|| {
            OperationError::new(
                ErrorKind::NotFound,
                format!("revision s3://{}/{} does not exist: register it first", s3.bucket, s3.key),
            )
        })
    }
}

impl RevisionLocation {
    /// Where `record` came from: its S3 object (with its id too) when the cluster
    /// fetched it from S3, else the pushed revision.
    pub fn of(record: &RevisionRecord) -> Self {
        match &record.source {
            Some(RevisionSource::S3 { bucket, key, bundle_type, e_tag, version }) => Self {
                revision_type: RevisionLocationType::S3,
                revision_id: Some(record.revision_id),
                s3_location: Some(Box::new(S3Location {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    bundle_type: crate::BundleType::parse(bundle_type),
                    version: version.clone(),
                    e_tag: Some(e_tag.clone()),
                })),
                ..Self::default()
            },
            Some(RevisionSource::Git { repository, commit_id }) => Self {
                revision_type: RevisionLocationType::GitHub,
                revision_id: Some(record.revision_id),
                git_hub_location: Some(Box::new(GitHubLocation {
                    repository: repository.clone(),
                    commit_id: commit_id.clone(),
                })),
                ..Self::default()
            },
            None => Self::fleetmesh(record.revision_id),
        }
    }

    /// [`Self::of`] the record of `revision_id` in `state`, or the pushed form.
    pub fn in_state(state: &ClusterState, revision_id: RevisionId) -> Self {
        state.revisions.get(&revision_id).map_or_else(|| Self::fleetmesh(revision_id), Self::of)
    }
}

/// `GenericRevisionInfo`, with fleetmesh's facts about a pushed revision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSummary {
    /// BLAKE3 of the manifest.
    pub revision_id: RevisionId,
    /// Application.
    pub application_name: String,
    /// Free text.
    pub description: String,
    /// Bytes of file content.
    pub size_bytes: u64,
    /// Bytes of distinct chunks.
    pub unique_bytes: u64,
    /// Distinct chunks.
    pub chunk_count: u64,
    /// Registered.
    pub register_time: EpochSeconds,
    /// Who pushed it.
    pub registered_by: String,
    /// Nodes that held every chunk when it was registered.
    pub seeds: Vec<NodeId>,
    /// Files in the bundle.
    pub files: usize,
    /// Who registered it (fleetmesh's audit extension: `admin-token:<id>`, ...); absent
    /// when it was made before feature level 7 or by the cluster itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Where it is (`ListApplicationRevisions` answers locations): `fleetmesh`, or `S3`
    /// for a revision fetched from S3.
    #[serde(default)]
    pub revision_type: RevisionLocationType,
    /// For `S3`: the object it was fetched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_location: Option<Box<S3Location>>,
    /// For `GitHub`: the commit it was fetched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_hub_location: Option<Box<GitHubLocation>>,
}

impl From<&RevisionRecord> for RevisionSummary {
    fn from(record: &RevisionRecord) -> Self {
        let location = RevisionLocation::of(record);
        Self {
            revision_id: record.revision_id,
            application_name: record.application_name.clone(),
            description: record.description.clone(),
            size_bytes: record.size_bytes,
            unique_bytes: record.unique_bytes,
            chunk_count: record.chunk_count,
            register_time: record.register_time.into(),
            registered_by: record.registered_by.clone(),
            seeds: record.seeds.clone(),
            files: record.manifest.files().count(),
            created_by: record.created_by.as_ref().map(ToString::to_string),
            revision_type: location.revision_type,
            s3_location: location.s3_location,
            git_hub_location: location.git_hub_location,
        }
    }
}

/// AWS's `RegisterApplicationRevision`: a revision by its location. An S3 object is
/// fetched and registered; a pushed revision or an inline AppSpec is registered as is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterApplicationRevisionInput {
    /// Application.
    pub application_name: String,
    /// Free text, at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the revision is.
    pub revision: RevisionLocation,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(e_tag: &str, version: Option<&str>) -> RevisionSource {
        RevisionSource::S3 {
            bucket: "b".into(),
            key: "k.tar".into(),
            bundle_type: "tar".into(),
            e_tag: e_tag.into(),
            version: version.map(Into::into),
        }
    }

    #[test]
    fn a_location_matches_its_object_and_what_it_pins() {
        let location = S3Location { bucket: "b".into(), key: "k.tar".into(), ..S3Location::default() };
        assert!(location.matches(&source("e1", None)));
        let pinned = S3Location { e_tag: Some("\"e1\"".into()), ..location.clone() };
        assert!(pinned.matches(&source("e1", None)));
        assert!(!pinned.matches(&source("e2", None)));
        let versioned = S3Location { version: Some("v1".into()), ..location.clone() };
        assert!(versioned.matches(&source("e1", Some("v1"))));
        assert!(!versioned.matches(&source("e1", Some("v2"))));
        assert!(!versioned.matches(&source("e1", None)));
        let other = S3Location { key: "other.tar".into(), ..location };
        assert!(!other.matches(&source("e1", None)));
    }

    #[test]
    fn bundle_types_read_as_aws_spells_them() {
        for (name, bundle) in [
            ("tar", BundleType::Tar),
            ("tgz", BundleType::Tgz),
            ("zip", BundleType::Zip),
            ("YAML", BundleType::Yaml),
            ("JSON", BundleType::Json),
        ] {
            let parsed: BundleType = serde_json::from_value(serde_json::Value::from(name)).unwrap();
            assert_eq!(parsed, bundle);
            assert_eq!(parsed.as_str(), name);
        }
        assert!(serde_json::from_value::<BundleType>(serde_json::Value::from("rar")).is_err());
    }

    #[test]
    fn an_s3_location_needs_its_bucket_and_key() {
        let mut location = RevisionLocation { revision_type: RevisionLocationType::S3, ..RevisionLocation::default() };
        assert_eq!(s3_object(&location).unwrap_err().field.as_deref(), Some("revision.s3Location.bucket"));
        location.s3_location = Some(Box::new(S3Location { bucket: "b".into(), ..S3Location::default() }));
        assert_eq!(s3_object(&location).unwrap_err().field.as_deref(), Some("revision.s3Location.key"));
        location.s3_location =
            Some(Box::new(S3Location { bucket: "b".into(), key: "k".into(), ..S3Location::default() }));
        assert!(s3_object(&location).unwrap().is_some());
    }
}
