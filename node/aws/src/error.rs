//! What an AWS call's failure means to the deployment that made it.

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};

/// How the caller should treat a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// Throttling, a 5xx answer, a timeout or a connection that failed: try again with
    /// backoff (CodeDeploy ends the deployment `THROTTLED` only when retries run out).
    Retryable,
    /// Anything else AWS answered (no such function, access denied, bad parameter):
    /// retrying will not help; the deployment ends with AWS's code and message.
    Permanent,
}

/// A failed AWS call: which operation, AWS's error code and message, and whether to retry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {code}: {message}")]
pub struct AwsError {
    /// The operation (`UpdateAlias`, …).
    pub operation: &'static str,
    /// AWS's error code (`ResourceNotFoundException`, …), or what failed locally
    /// (`DispatchFailure`, `Timeout`).
    pub code: String,
    /// AWS's message, or the local failure's.
    pub message: String,
    /// Retry or give up.
    pub kind: AwsErrorKind,
}

/// Codes AWS uses for throttling across services.
pub(crate) const THROTTLING_CODES: [&str; 6] = [
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "EC2ThrottledException",
];

impl AwsError {
    /// Classifies an SDK error of `operation`.
    pub fn from_sdk<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let local = |code: &str, message: String| Self {
            operation,
            code: code.to_string(),
            message,
            kind: AwsErrorKind::Retryable,
        };
        match &error {
            SdkError::TimeoutError(_) => local("Timeout", "the call timed out".to_string()),
            SdkError::DispatchFailure(failure) => local("DispatchFailure", format!("{failure:?}")),
            SdkError::ResponseError(response) => local("ResponseError", format!("{response:?}")),
            _ => {
                let code = error.code().unwrap_or("Unknown").to_string();
                let message = error.message().unwrap_or("no message").to_string();
                let server_fault = error.raw_response().is_some_and(|raw| raw.status().is_server_error());
                let kind = if server_fault || THROTTLING_CODES.contains(&code.as_str()) {
                    AwsErrorKind::Retryable
                } else {
                    AwsErrorKind::Permanent
                };
                Self { operation, code, message, kind }
            }
        }
    }
}
