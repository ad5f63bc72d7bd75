//! Publishing to an SNS topic: the target of a deployment-group trigger named by a topic
//! ARN (`arn:aws:sns:REGION:ACCOUNT:TOPIC`), as CodeDeploy publishes its notifications.
//!
//! The client is made for the topic's region (taken from its ARN, as SNS requires: a
//! topic is published to in its own region), with the credentials and endpoint of the
//! [`AwsSettings`] it is built from (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_SNS` for an
//! SNS-compatible server).

use std::time::Duration;

use aws_sdk_sns::types::MessageAttributeValue;

use crate::error::{AwsError, AwsErrorKind};
use crate::AwsSettings;

/// Longest wait for SNS's answer to one `Publish`, connection included: a call that
/// takes longer fails as a retryable `Timeout`, and the caller's backoff tries again.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Most characters of a subject. SNS's `Publish` reference asks for "less than 100
/// characters"; CodeDeploy's own subjects stay within that.
pub const SUBJECT_CHARS_MAX: usize = 99;

/// The region of `topic_arn` (`arn:PARTITION:sns:REGION:ACCOUNT:TOPIC`), or `None` when
/// it is not an SNS topic ARN.
pub fn topic_region(topic_arn: &str) -> Option<&str> {
    let mut parts = topic_arn.splitn(6, ':');
    let (arn, partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, account, topic) = (parts.next()?, parts.next()?, parts.next()?);
    let is_topic = arn == "arn" && service == "sns" && !partition.is_empty() && !account.is_empty();
    (is_topic && !region.is_empty() && !topic.is_empty() && !topic.contains(':')).then_some(region)
}

/// `subject` as SNS takes it: control characters (line breaks among them) turned into
/// spaces, cut to [`SUBJECT_CHARS_MAX`] characters.
pub fn clamp_subject(subject: &str) -> String {
    subject
        .chars()
        .map(|character| if character.is_control() { ' ' } else { character })
        .take(SUBJECT_CHARS_MAX)
        .collect()
}

/// SNS through the AWS SDK, for the topics of one region.
#[derive(Clone, Debug)]
pub struct SdkSns {
    client: aws_sdk_sns::Client,
}

impl SdkSns {
    /// A client for the region of `topic_arn` with the credentials of `settings` (its
    /// role assumed through STS when set); the region of `settings` is ignored.
    ///
    /// # Errors
    /// `topic_arn` is not an SNS topic ARN (code `InvalidParameter`, permanent).
    pub async fn for_topic(settings: &AwsSettings, topic_arn: &str) -> Result<Self, AwsError> {
        let Some(region) = topic_region(topic_arn) else {
            return Err(AwsError {
                operation: "Publish",
                code: "InvalidParameter".to_string(),
                message: format!("{topic_arn:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)"),
                kind: AwsErrorKind::Permanent,
            });
        };
        let settings = AwsSettings { region: Some(region.to_string()), ..settings.clone() };
        Ok(Self::new(&settings.load().await))
    }

    /// A client for `config`'s region and credentials ([`AwsSettings::load`]).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self { client: aws_sdk_sns::Client::new(config) }
    }

    /// `Publish`: sends `message` with `subject` ([`clamp_subject`] applied) to
    /// `topic_arn`; returns the message id SNS gave it.
    ///
    /// # Errors
    /// AWS's answer (`NotFound` for a missing topic, `AuthorizationError`, …; throttling
    /// and 5xx answers retryable), the connection's failure, or no answer within
    /// [`PUBLISH_TIMEOUT`] (`Timeout`, retryable).
    pub async fn publish(&self, topic_arn: &str, subject: &str, message: &str) -> Result<String, AwsError> {
        self.publish_with_attributes(topic_arn, subject, message, &[]).await
    }

    /// [`SdkSns::publish`] with message attributes `(name, value)` of type `String`
    /// (SNS takes at most 10; subscribers see them beside the message and filter on them).
    ///
    /// # Errors
    /// As [`SdkSns::publish`].
    pub async fn publish_with_attributes(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
        attributes: &[(&str, &str)],
    ) -> Result<String, AwsError> {
        let mut request = self.client.publish().topic_arn(topic_arn).subject(clamp_subject(subject)).message(message);
        for (name, value) in attributes {
            let value =
                MessageAttributeValue::builder().data_type("String").string_value(*value).build().map_err(|error| {
                    AwsError {
                        operation: "Publish",
                        code: "InvalidParameter".to_string(),
                        message: format!("message attribute {name}: {error}"),
                        kind: AwsErrorKind::Permanent,
                    }
                })?;
            request = request.message_attributes(*name, value);
        }
        let sent = tokio::time::timeout(PUBLISH_TIMEOUT, request.send()).await.map_err(|_| AwsError {
            operation: "Publish",
            code: "Timeout".to_string(),
            message: format!("no answer from SNS within {} s", PUBLISH_TIMEOUT.as_secs()),
            kind: AwsErrorKind::Retryable,
        })?;
        let output = sent.map_err(|error| AwsError::from_sdk("Publish", error))?;
        Ok(output.message_id.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_the_topic_arn() {
        assert_eq!(topic_region("arn:aws:sns:eu-west-2:123456789012:deploys"), Some("eu-west-2"));
        assert_eq!(topic_region("arn:aws-cn:sns:cn-north-1:123456789012:t"), Some("cn-north-1"));
        assert_eq!(topic_region("arn:aws:sqs:us-east-1:123456789012:q"), None);
        assert_eq!(topic_region("arn:aws:sns::123456789012:t"), None);
        assert_eq!(topic_region("arn:aws:sns:us-east-1:123456789012:t:sub"), None);
        assert_eq!(topic_region("https://hooks.example/x"), None);
    }

    #[test]
    fn subjects_lose_control_characters_and_stop_at_the_limit() {
        assert_eq!(clamp_subject("a\nb\tc"), "a b c");
        let long = "x".repeat(150);
        assert_eq!(clamp_subject(&long).chars().count(), SUBJECT_CHARS_MAX);
        assert_eq!(clamp_subject("é".repeat(120).as_str()).chars().count(), SUBJECT_CHARS_MAX);
    }

    #[tokio::test]
    async fn a_non_topic_arn_is_a_permanent_error() {
        let error = SdkSns::for_topic(&AwsSettings::default(), "arn:aws:sqs:us-east-1:1:q").await.expect_err("not SNS");
        assert_eq!((error.code.as_str(), error.kind), ("InvalidParameter", AwsErrorKind::Permanent));
    }
}
