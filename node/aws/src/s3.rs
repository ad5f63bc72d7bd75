//! Reading a revision's bundle from S3 (`revisionType: S3`): the node that takes the
//! request downloads the object once; hosts never call S3 (the swarm spreads its chunks).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::error::{AwsError, AwsErrorKind};

/// Longest wait for S3's answer to a request (its headers, not a whole object).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for the next bytes of an object being read: a download that stalls this
/// long fails (retryable), however long the whole object takes.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// `call`, or a retryable `Timeout` error of `operation` after `limit`.
async fn within<T>(
    operation: &'static str,
    limit: Duration,
    call: impl Future<Output = Result<T, AwsError>>,
) -> Result<T, AwsError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(AwsError {
            operation,
            code: "Timeout".into(),
            message: format!("no answer from S3 within {} s", limit.as_secs()),
            kind: AwsErrorKind::Retryable,
        })
    })
}

/// An object as S3 describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The ETag, without the quotes S3 puts around it.
    pub e_tag: String,
    /// The version id, when the bucket is versioned.
    pub version: Option<String>,
    /// Its size in bytes.
    pub size: u64,
}

/// Which object: `bucket`, `key` and, for a versioned bucket, `version`.
#[derive(Clone, Copy, Debug)]
pub struct ObjectRef<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// The key.
    pub key: &'a str,
    /// A version id, or the newest.
    pub version: Option<&'a str>,
}

/// S3 through the AWS SDK. An endpoint of its own (moto, MinIO) is addressed path-style.
#[derive(Clone, Debug)]
pub struct SdkS3 {
    client: aws_sdk_s3::Client,
}

impl SdkS3 {
    /// A client for `config`'s account and region. With an endpoint URL of its own
    /// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`: an S3-compatible server), buckets are
    /// addressed path-style, since their names would not resolve as host names.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let path_style = config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build();
        Self { client: aws_sdk_s3::Client::from_conf(s3) }
    }

    /// `HeadObject`: the object's ETag, version and size, without its content.
    ///
    /// # Errors
    /// AWS's answer (`NotFound`, `Forbidden`, …) or the connection's failure.
    pub async fn head(&self, object: ObjectRef<'_>) -> Result<ObjectInfo, AwsError> {
        let request = self
            .client
            .head_object()
            .bucket(object.bucket)
            .key(object.key)
            .set_version_id(object.version.map(str::to_string))
            .send();
        let output = within("HeadObject", REQUEST_TIMEOUT, async {
            request.await.map_err(|error| AwsError::from_sdk("HeadObject", error))
        })
        .await?;
        Ok(ObjectInfo {
            e_tag: unquote(output.e_tag()),
            version: output.version_id().map(str::to_string),
            size: output.content_length().and_then(|length| u64::try_from(length).ok()).unwrap_or_default(),
        })
    }

    /// `GetObject` into the file `dest` (created or truncated), refusing an object of
    /// more than `max_bytes` before reading it, and one whose ETag is not `e_tag`
    /// when given (S3 checks it: `If-Match`).
    ///
    /// # Errors
    /// AWS's answer (`NoSuchKey`, `PreconditionFailed`, …), a too large object, the
    /// file's write failure (code `LocalWrite`), or no answer or no bytes for a minute
    /// (`Timeout`, retryable: [`REQUEST_TIMEOUT`], [`STALL_TIMEOUT`]).
    pub async fn download(
        &self,
        object: ObjectRef<'_>,
        e_tag: Option<&str>,
        max_bytes: u64,
        dest: &Path,
    ) -> Result<ObjectInfo, AwsError> {
        let request = self
            .client
            .get_object()
            .bucket(object.bucket)
            .key(object.key)
            .set_version_id(object.version.map(str::to_string))
            .set_if_match(e_tag.map(|tag| format!("\"{}\"", unquote(Some(tag)))))
            .send();
        let output = within("GetObject", REQUEST_TIMEOUT, async {
            request.await.map_err(|error| AwsError::from_sdk("GetObject", error))
        })
        .await?;
        let info = ObjectInfo {
            e_tag: unquote(output.e_tag()),
            version: output.version_id().map(str::to_string),
            size: output.content_length().and_then(|length| u64::try_from(length).ok()).unwrap_or_default(),
        };
        if info.size > max_bytes {
            return Err(local(
                "TooLarge",
                format!("the object has {} bytes, above the limit of {max_bytes}", info.size),
            ));
        }
        let write = |error: std::io::Error| local("LocalWrite", format!("{}: {error}", dest.display()));
        let mut file = tokio::fs::File::create(dest).await.map_err(write)?;
        let mut body = output.body;
        let mut written: u64 = 0;
        loop {
            let read = within("GetObject", STALL_TIMEOUT, async {
                body.try_next()
                    .await
                    .map_err(|error| AwsError { kind: AwsErrorKind::Retryable, ..local("Read", error.to_string()) })
            });
            let Some(bytes) = read.await? else { break };
            written += bytes.len() as u64;
            if written > max_bytes {
                return Err(local("TooLarge", format!("the object has more than {max_bytes} bytes")));
            }
            file.write_all(&bytes).await.map_err(write)?;
        }
        file.flush().await.map_err(write)?;
        Ok(ObjectInfo { size: written, ..info })
    }
}

fn local(code: &str, message: String) -> AwsError {
    AwsError { operation: "GetObject", code: code.to_string(), message, kind: AwsErrorKind::Permanent }
}

/// An ETag without the double quotes S3 writes around it.
pub fn unquote(e_tag: Option<&str>) -> String {
    e_tag.unwrap_or_default().trim().trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_lose_their_quotes() {
        assert_eq!(unquote(Some("\"abc\"")), "abc");
        assert_eq!(unquote(Some("abc")), "abc");
        assert_eq!(unquote(None), "");
    }

    #[tokio::test]
    async fn a_call_without_an_answer_fails_as_a_retryable_timeout() {
        let limit = Duration::from_millis(20);
        let silent = within("GetObject", limit, std::future::pending::<Result<(), AwsError>>()).await;
        let error = silent.expect_err("times out");
        assert_eq!((error.code.as_str(), error.kind), ("Timeout", AwsErrorKind::Retryable));
        let answered = within("GetObject", limit, async { Ok::<_, AwsError>(7) }).await;
        assert_eq!(answered.ok(), Some(7));
    }
}
