//! CloudWatch alarms' states (`DescribeAlarms`), read by the leader's alarm gates
//! (issue 17). Not through `aws-sdk-cloudwatch`: its releases speak only Smithy RPC v2
//! CBOR, which moto 5.2.5 cannot answer (getmoto/moto#9195), and it cost a 6-minute
//! build. CloudWatch also speaks AWS JSON 1.0 (target prefix
//! `GraniteServiceVersion20100801`), so this is a small client of one operation:
//!
//! ```text
//! describe_alarms(names) ─▶ credentials of the SdkConfig (cached until 5 min before expiry)
//!   ─▶ JSON body, Signature V4 (aws-sigv4, service `monitoring`)
//!   ─▶ POST <endpoint>/ with ureq on tokio's blocking pool (rustls on ring, native roots)
//!   ─▶ MetricAlarms + CompositeAlarms ─▶ one AlarmState per alarm CloudWatch knows
//! ```
//!
//! ureq rather than the SDK's own HTTP client, which is built to be driven by the SDK's
//! orchestrator (runtime components, connector settings) and awkward to call alone; ureq
//! is already built for the node, and one poll every 2 s fits the blocking pool. Its
//! roots are the system's ([`crate::outbound_agent`]).
//!
//! The endpoint: [`AwsSettings::endpoint_url`], else `AWS_ENDPOINT_URL_CLOUDWATCH`, else
//! `AWS_ENDPOINT_URL`, else `https://monitoring.<region>.amazonaws.com` ([`endpoint_url`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde::{Deserialize, Serialize};

use crate::error::THROTTLING_CODES;
use crate::{AwsError, AwsErrorKind, AwsSettings, DEFAULT_REGION};

/// The operation, in errors.
const OPERATION: &str = "DescribeAlarms";

/// `X-Amz-Target` of `DescribeAlarms` (botocore's `targetPrefix` for CloudWatch).
const TARGET: &str = "GraniteServiceVersion20100801.DescribeAlarms";

/// The name CloudWatch's requests are signed for.
const SIGNING_NAME: &str = "monitoring";

/// AWS JSON 1.0's content type.
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// Most names one `DescribeAlarms` takes (`AlarmNames`, CloudWatch's limit), also its
/// largest `MaxRecords`: the answer to one call fits one page.
pub const NAMES_PER_CALL_MAX: usize = 100;

/// Pages followed per call (`NextToken`); one is enough when the names fit one page, the
/// bound keeps a server that keeps answering with a token from holding the poll.
const PAGES_MAX: usize = 10;

/// How long one call may take, connection included: a poll round every 2 s should not
/// wait much longer on a server that does not answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer read: 100 alarms with metric math are well under 1 MiB.
const ANSWER_BYTES_MAX: u64 = 4 << 20;

/// Attempts of a call that fails with throttling, a 5xx or no connection (the SDK's
/// standard retry policy makes 3).
const ATTEMPTS: u32 = 3;

/// The pause after the first failed attempt, doubled after each.
const BACKOFF: Duration = Duration::from_millis(200);

/// Credentials are fetched again this long before they expire (instance metadata offers
/// new ones five minutes ahead).
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Sources of an error named in its message (a chain is rarely deeper than three).
const SOURCES_MAX: usize = 8;

/// The state of an alarm (`StateValue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlarmStateValue {
    /// `OK`.
    Ok,
    /// `ALARM`: the alarm is on.
    Alarm,
    /// `INSUFFICIENT_DATA`.
    InsufficientData,
    /// Something this client does not know, as CloudWatch wrote it.
    Unknown(String),
}

impl AlarmStateValue {
    /// The state that `text` names.
    pub fn from_wire(text: &str) -> Self {
        match text {
            "OK" => Self::Ok,
            "ALARM" => Self::Alarm,
            "INSUFFICIENT_DATA" => Self::InsufficientData,
            other => Self::Unknown(other.to_string()),
        }
    }
}

impl std::fmt::Display for AlarmStateValue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
            Self::Unknown(text) => text,
        })
    }
}

/// One alarm as CloudWatch reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmState {
    /// `AlarmName`.
    pub name: String,
    /// `StateValue`.
    pub state: AlarmStateValue,
    /// `StateReason` (empty when CloudWatch gave none).
    pub reason: String,
    /// A composite alarm (its state combines other alarms').
    pub is_composite: bool,
}

/// `DescribeAlarms`'s input, as AWS JSON 1.0 writes it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeAlarmsInput<'a> {
    alarm_names: &'a [String],
    /// Without it CloudWatch answers metric alarms only.
    alarm_types: [&'static str; 2],
    max_records: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<&'a str>,
}

/// `DescribeAlarms`'s output, the fields read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeAlarmsOutput {
    #[serde(default)]
    metric_alarms: Vec<AlarmRecord>,
    #[serde(default)]
    composite_alarms: Vec<AlarmRecord>,
    #[serde(default)]
    next_token: Option<String>,
}

/// One alarm of the output.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AlarmRecord {
    alarm_name: String,
    state_value: String,
    #[serde(default)]
    state_reason: Option<String>,
}

impl AlarmRecord {
    fn into_state(self, is_composite: bool) -> AlarmState {
        AlarmState {
            name: self.alarm_name,
            state: AlarmStateValue::from_wire(&self.state_value),
            reason: self.state_reason.unwrap_or_default(),
            is_composite,
        }
    }
}

/// Where CloudWatch's calls go: `explicit` (the settings'), else `AWS_ENDPOINT_URL_CLOUDWATCH`,
/// else `AWS_ENDPOINT_URL` (each read through `env`; empty values skipped), else AWS's
/// regional endpoint (`.amazonaws.com.cn` in the China regions). No trailing `/`.
pub fn endpoint_url(explicit: Option<&str>, env: impl Fn(&str) -> Option<String>, region: &str) -> String {
    let configured = explicit
        .map(str::to_string)
        .or_else(|| env("AWS_ENDPOINT_URL_CLOUDWATCH"))
        .into_iter()
        .chain(env("AWS_ENDPOINT_URL"))
        .find(|url| !url.trim().is_empty());
    match configured {
        Some(url) => url.trim().trim_end_matches('/').to_string(),
        None if region.starts_with("cn-") => format!("https://monitoring.{region}.amazonaws.com.cn"),
        None => format!("https://monitoring.{region}.amazonaws.com"),
    }
}

/// A signed request, ready to send.
#[derive(Debug)]
struct SignedRequest {
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// `body` as a `DescribeAlarms` POST to `endpoint`, signed for `region` with
/// `credentials` at `now`.
fn signed_request(
    endpoint: &str,
    region: &str,
    credentials: Credentials,
    body: Vec<u8>,
    now: SystemTime,
) -> Result<SignedRequest, AwsError> {
    let url = format!("{endpoint}/");
    let mut headers = vec![
        ("content-type".to_string(), CONTENT_TYPE.to_string()),
        ("x-amz-target".to_string(), TARGET.to_string()),
        // CloudWatch is query-compatible: this asks for the query error code in
        // `x-amzn-query-error`.
        ("x-amzn-query-mode".to_string(), "true".to_string()),
    ];
    let failed = |error: &dyn std::fmt::Display| local("SigningError", format!("signing the request: {error}"), false);
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|error| failed(&error))?
        .into();
    let unsigned = headers.iter().map(|(name, value)| (name.as_str(), value.as_str()));
    let signable =
        SignableRequest::new("POST", &url, unsigned, SignableBody::Bytes(&body)).map_err(|error| failed(&error))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|error| failed(&error))?.into_parts();
    headers.extend(instructions.headers().map(|(name, value)| (name.to_string(), value.to_string())));
    Ok(SignedRequest { url, headers, body })
}

/// A failure on this side of the wire.
fn local(code: &str, message: String, is_retryable: bool) -> AwsError {
    let kind = if is_retryable { AwsErrorKind::Retryable } else { AwsErrorKind::Permanent };
    AwsError { operation: OPERATION, code: code.to_string(), message, kind }
}

/// `error` and its sources, `: `-joined (a credentials error's own text is often only
/// "failed to load credentials"); at most [`SOURCES_MAX`] deep.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    for _ in 0..SOURCES_MAX {
        let Some(inner) = source else { break };
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

/// What an answer says: the output, or AWS's error (`x-amzn-query-error`'s code when
/// present, else the body's `__type` without its namespace and suffix).
fn read_answer(status: u16, query_error: Option<&str>, body: &[u8]) -> Result<DescribeAlarmsOutput, AwsError> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body).map_err(|error| {
            local("SerializationError", format!("the answer is not DescribeAlarms' JSON: {error}"), false)
        });
    }
    let error: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).unwrap_or_default();
    let text = |key: &str| error.get(key).and_then(serde_json::Value::as_str);
    let shape = text("__type").map(|kind| {
        let kind = kind.rsplit('#').next().unwrap_or(kind);
        kind.split(':').next().unwrap_or(kind).to_string()
    });
    let query_code = query_error.and_then(|header| header.split(';').next()).filter(|code| !code.is_empty());
    let code = query_code.map(str::to_string).or(shape).unwrap_or_else(|| format!("Http{status}"));
    let message = text("message").or_else(|| text("Message")).unwrap_or("no message").to_string();
    let retryable = status >= 500 || THROTTLING_CODES.contains(&code.as_str());
    let kind = if retryable { AwsErrorKind::Retryable } else { AwsErrorKind::Permanent };
    Err(AwsError { operation: OPERATION, code, message, kind })
}

/// Sends `request` and reads the answer (blocking).
fn send(agent: &ureq::Agent, request: &SignedRequest) -> Result<DescribeAlarmsOutput, AwsError> {
    let mut builder = agent.post(&request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = builder.send(&request.body[..]).map_err(|error| match error {
        ureq::Error::Timeout(_) => local("Timeout", format!("no answer from {} in time", request.url), true),
        other => local("DispatchFailure", format!("{}: {other}", request.url), true),
    })?;
    let status = response.status().as_u16();
    let query_error = response.headers().get("x-amzn-query-error").and_then(|value| value.to_str().ok());
    let query_error = query_error.map(str::to_string);
    let body = response.into_body().with_config().limit(ANSWER_BYTES_MAX).read_to_vec();
    let body = body.map_err(|error| local("ResponseError", format!("reading the answer: {error}"), true))?;
    read_answer(status, query_error.as_deref(), &body)
}

/// A CloudWatch client for alarm states; cheap to clone (clones share the HTTPS client
/// and the cached credentials).
#[derive(Clone)]
pub struct CloudWatchAlarms {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: String,
    region: String,
    provider: Option<SharedCredentialsProvider>,
    credentials: tokio::sync::Mutex<Option<Credentials>>,
    agent: ureq::Agent,
}

impl CloudWatchAlarms {
    /// A client with the region and credentials of `config` (loaded from `settings`, whose
    /// endpoint comes first; then the environment's, see [`endpoint_url`]).
    pub fn new(config: &aws_config::SdkConfig, settings: &AwsSettings) -> Self {
        let region = config.region().map_or(DEFAULT_REGION, |region| region.as_ref()).to_string();
        let endpoint = endpoint_url(settings.endpoint_url.as_deref(), |name| std::env::var(name).ok(), &region);
        let provider = config.credentials_provider();
        let credentials = tokio::sync::Mutex::new(None);
        Self {
            inner: Arc::new(Inner {
                endpoint,
                region,
                provider,
                credentials,
                agent: crate::outbound_agent(CALL_TIMEOUT, 0),
            }),
        }
    }

    /// The region the calls go to.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// The endpoint the calls go to (no trailing `/`).
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// `DescribeAlarms` of `names`, metric and composite alarms, in calls of at most
    /// [`NAMES_PER_CALL_MAX`] names: the states of the alarms CloudWatch knows (a name it
    /// does not know is simply absent).
    ///
    /// # Errors
    /// No credentials, or the call's failure once its retries ran out: AWS's code and
    /// message (`AccessDenied`, …), or what failed locally (`DispatchFailure`, `Timeout`).
    pub async fn describe_alarms(&self, names: &[String]) -> Result<Vec<AlarmState>, AwsError> {
        let mut found = Vec::new();
        for batch in names.chunks(NAMES_PER_CALL_MAX) {
            let mut next_token = None;
            for _page in 0..PAGES_MAX {
                let input = DescribeAlarmsInput {
                    alarm_names: batch,
                    alarm_types: ["CompositeAlarm", "MetricAlarm"],
                    max_records: NAMES_PER_CALL_MAX,
                    next_token: next_token.as_deref(),
                };
                let body = serde_json::to_vec(&input)
                    .map_err(|error| local("SerializationError", error.to_string(), false))?;
                let output = self.call_with_retries(body).await?;
                found.extend(output.metric_alarms.into_iter().map(|record| record.into_state(false)));
                found.extend(output.composite_alarms.into_iter().map(|record| record.into_state(true)));
                next_token = output.next_token.filter(|token| !token.is_empty());
                if next_token.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }

    async fn call_with_retries(&self, body: Vec<u8>) -> Result<DescribeAlarmsOutput, AwsError> {
        let mut pause = BACKOFF;
        let mut attempt = 1;
        loop {
            match self.call(body.clone()).await {
                Err(error) if error.kind == AwsErrorKind::Retryable && attempt < ATTEMPTS => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }

    async fn call(&self, body: Vec<u8>) -> Result<DescribeAlarmsOutput, AwsError> {
        let credentials = self.credentials().await?;
        let request = signed_request(&self.inner.endpoint, &self.inner.region, credentials, body, SystemTime::now())?;
        let agent = self.inner.agent.clone();
        let sent = tokio::task::spawn_blocking(move || send(&agent, &request)).await;
        sent.map_err(|error| local("DispatchFailure", format!("the call's task failed: {error}"), true))?
    }

    /// The cached credentials, fetched again when missing or about to expire.
    async fn credentials(&self) -> Result<Credentials, AwsError> {
        let mut cached = self.inner.credentials.lock().await;
        let fresh = |credentials: &Credentials| {
            credentials.expiry().is_none_or(|expiry| SystemTime::now() + REFRESH_BEFORE_EXPIRY < expiry)
        };
        if let Some(credentials) = cached.as_ref().filter(|credentials| fresh(credentials)) {
            return Ok(credentials.clone());
        }
        let provider = self.inner.provider.as_ref().ok_or_else(|| {
            local(
                "NoCredentials",
                "no AWS credentials: the chain found none (environment, profile, role)".into(),
                false,
            )
        })?;
        let credentials = provider.provide_credentials().await.map_err(|error| {
            local("CredentialsError", format!("loading AWS credentials: {}", with_sources(&error)), true)
        })?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests;
