//! The CLI's HTTP client for the node API.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Why an API call failed, as one line for the operator.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// No token given.
    #[error("no admin token: pass --token or set FLEETMESH_TOKEN (the first node wrote it to DIR/admin-token)")]
    NoToken,
    /// The API could not be reached.
    #[error(
        "cannot reach the fleetmesh API at {base}: {reason} (is a node running there? set --api or FLEETMESH_API)"
    )]
    Unreachable {
        /// API base URL.
        base: String,
        /// What failed.
        reason: String,
    },
    /// 401.
    #[error("the API refused the admin token: {0}")]
    Unauthorized(String),
    /// Any other non-2xx answer.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's error message.
        message: String,
    },
    /// The answer was not JSON.
    #[error("the API sent an invalid answer: {0}")]
    Decode(String),
    /// An HTTPS API and no CA to check it with.
    #[error(
        "the API at {0} is HTTPS: pass --ca-bundle FILE or set FLEETMESH_CA_BUNDLE to DIR/ca.pem of any node \
         (or use http:// for a node started with --api-plaintext)"
    )]
    NoCaBundle(String),
    /// The CA bundle could not be read.
    #[error("cannot use the CA bundle {path}: {reason}")]
    CaBundle {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// An output file could not be written.
    #[error("cannot write {path}: {reason}")]
    WriteFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Where a node's package install keeps its data directory; its `ca.pem` is trusted when
/// no `--ca-bundle` is given.
const DEFAULT_CA_BUNDLE: &str = "/var/lib/fleetmesh/ca.pem";

/// The TLS settings for `base`: the certificates of `ca_bundle` (or of
/// [`DEFAULT_CA_BUNDLE`]) as the only roots.
fn tls_config(base: &str, ca_bundle: Option<&std::path::Path>) -> Result<ureq::tls::TlsConfig, ClientError> {
    let path = match ca_bundle {
        Some(path) => path.to_path_buf(),
        None if std::path::Path::new(DEFAULT_CA_BUNDLE).exists() => DEFAULT_CA_BUNDLE.into(),
        None => return Err(ClientError::NoCaBundle(base.to_string())),
    };
    let bundle_error = |reason: String| ClientError::CaBundle { path: path.display().to_string(), reason };
    let pem = std::fs::read(&path).map_err(|error| bundle_error(error.to_string()))?;
    let certificates = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(certificate)) => Some(Ok(certificate)),
            Ok(_) => None,
            Err(error) => Some(Err(error)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bundle_error(error.to_string()))?;
    if certificates.is_empty() {
        return Err(bundle_error("no PEM certificate in it".to_string()));
    }
    Ok(ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&certificates)).build())
}

/// A client of one node's API.
#[derive(Clone)]
pub(crate) struct ApiClient {
    base: String,
    token: String,
    agent: ureq::Agent,
    /// Reads are leader-checked (`--consistent`).
    consistent: bool,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ApiClient").field("base", &self.base).finish_non_exhaustive()
    }
}

/// Default API address when neither `--api` nor `FLEETMESH_API` is set.
pub(crate) const DEFAULT_API: &str = "https://127.0.0.1:7480";

impl ApiClient {
    /// A client for `base` (e.g. `https://127.0.0.1:7480`; `https://` when no scheme
    /// is given) with the admin token, trusting the CA in `ca_bundle` for HTTPS.
    ///
    /// # Errors
    /// No token; an HTTPS API without a usable CA bundle.
    pub(crate) fn new(
        base: Option<&str>,
        token: Option<&str>,
        ca_bundle: Option<&std::path::Path>,
    ) -> Result<Self, ClientError> {
        let token = token.map(str::trim).filter(|token| !token.is_empty()).ok_or(ClientError::NoToken)?;
        let mut base = base.unwrap_or(DEFAULT_API).trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            base = format!("https://{base}");
        }
        let mut config = ureq::Agent::config_builder();
        if base.starts_with("https://") {
            config = config.tls_config(tls_config(&base, ca_bundle)?);
        }
        let agent = config
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        Ok(Self { base, token: token.to_string(), agent, consistent: false })
    }

    /// GET a JSON document.
    ///
    /// # Errors
    /// As [`ClientError`].
    pub(crate) fn get(&self, path: &str) -> Result<Value, ClientError> {
        let response = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call();
        self.finish(response)
    }

    /// Opens a stream (`GET path`, `text/event-stream`) and returns its lines as they
    /// come: no overall time limit (the server sends a comment line every 15 s).
    ///
    /// # Errors
    /// As [`ClientError`], for an answer that is not 2xx.
    pub(crate) fn stream(&self, path: &str) -> Result<impl std::io::BufRead, ClientError> {
        let response = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Accept", "text/event-stream")
            .config()
            .timeout_global(None)
            .build()
            .call();
        let response = response
            .map_err(|error| ClientError::Unreachable { base: self.base.clone(), reason: error.to_string() })?;
        if !response.status().is_success() {
            return Err(self.finish(Ok(response)).err().unwrap_or(ClientError::Decode("an empty error".into())));
        }
        Ok(std::io::BufReader::new(response.into_body().into_with_config().limit(u64::MAX).reader()))
    }

    /// Makes reads (`/v1/deploy/Get*`, `List*`) leader-checked (`?consistent=true`).
    pub(crate) fn consistent(mut self, consistent: bool) -> Self {
        self.consistent = consistent;
        self
    }

    /// Calls operation `operation` (`POST /v1/deploy/<operation>`) with `input`, the
    /// model's `<Operation>Input`, and reads the answer as `O`, its `<Operation>Output`.
    /// Reads (`Get*`, `List*`) are leader-checked when the client is [`consistent`](Self::consistent).
    ///
    /// # Errors
    /// As [`ClientError`]; an answer that is not an `O` is [`ClientError::Decode`].
    pub(crate) fn call<I: Serialize, O: DeserializeOwned>(&self, operation: &str, input: &I) -> Result<O, ClientError> {
        // The model's inputs are plain data (strings, numbers, maps with string keys).
        let body = serde_json::to_string(input).map_err(|error| ClientError::Decode(error.to_string()))?;
        let is_read = operation.starts_with("Get") || operation.starts_with("List");
        let query = if self.consistent && is_read { "?consistent=true" } else { "" };
        let response = self
            .agent
            .post(&format!("{}/v1/deploy/{operation}{query}", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body);
        decode(operation, self.finish(response)?)
    }

    /// Calls the `List*` operation `operation` page after page (following `nextToken`)
    /// and reads the pages' `list` members joined, in order, as `O`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub(crate) fn call_all<I: Serialize, O: DeserializeOwned>(
        &self,
        operation: &str,
        input: &I,
        list: &str,
    ) -> Result<O, ClientError> {
        let decode_error = |error: serde_json::Error| ClientError::Decode(error.to_string());
        let mut request = serde_json::to_value(input).map_err(decode_error)?;
        let mut joined: Option<serde_json::Value> = None;
        loop {
            let mut page: serde_json::Value = self.call(operation, &request)?;
            let next = page.get("nextToken").and_then(serde_json::Value::as_str).map(str::to_string);
            match &mut joined {
                None => joined = Some(page),
                Some(all) => {
                    let items = page.get_mut(list).map(serde_json::Value::take);
                    if let (Some(serde_json::Value::Array(all)), Some(serde_json::Value::Array(items))) =
                        (all.get_mut(list), items)
                    {
                        all.extend(items);
                    }
                }
            }
            match (next, request.as_object_mut()) {
                (Some(token), Some(fields)) => {
                    fields.insert("nextToken".into(), serde_json::Value::from(token));
                }
                _ => break,
            }
        }
        let mut joined = joined.unwrap_or_default();
        if let Some(fields) = joined.as_object_mut() {
            fields.remove("nextToken");
        }
        serde_json::from_value(joined).map_err(decode_error)
    }

    /// GET a JSON document and read it as `O`.
    ///
    /// # Errors
    /// As [`ClientError`]; an answer that is not an `O` is [`ClientError::Decode`].
    pub(crate) fn get_as<O: DeserializeOwned>(&self, path: &str) -> Result<O, ClientError> {
        decode(path, self.get(path)?)
    }

    /// POST a JSON body to an endpoint that is not an operation (uploads, join tokens).
    ///
    /// # Errors
    /// As [`ClientError`].
    pub(crate) fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let response = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body.to_string());
        self.finish(response)
    }

    /// POST `input` to an endpoint that is not under `/v1/deploy` (join tokens) and read
    /// the answer as `O`.
    ///
    /// # Errors
    /// As [`ClientError`]; an answer that is not an `O` is [`ClientError::Decode`].
    pub(crate) fn post_as<I: Serialize, O: DeserializeOwned>(&self, path: &str, input: &I) -> Result<O, ClientError> {
        let body = serde_json::to_value(input).map_err(|error| ClientError::Decode(error.to_string()))?;
        decode(path, self.post(path, &body)?)
    }

    /// POST raw bytes.
    ///
    /// # Errors
    /// As [`ClientError`].
    pub(crate) fn post_bytes(&self, path: &str, body: &[u8]) -> Result<Value, ClientError> {
        let response = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/octet-stream")
            .send(body);
        self.finish(response)
    }

    fn finish(&self, response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, ClientError> {
        let mut response = response
            .map_err(|error| ClientError::Unreachable { base: self.base.clone(), reason: error.to_string() })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(|error| ClientError::Decode(error.to_string()))?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| ClientError::Decode(format!("HTTP {status}: {}", text.trim())))?
        };
        let message = || value.get("error").and_then(Value::as_str).unwrap_or("request failed").to_string();
        match status {
            200..=299 => Ok(value),
            401 => Err(ClientError::Unauthorized(message())),
            _ => Err(ClientError::Api { status, message: message() }),
        }
    }
}

/// Reads an answer as the type the caller expects; `what` names the call in the error.
///
/// # Errors
/// [`ClientError::Decode`] naming the field serde found missing or of the wrong type.
pub(crate) fn decode<O: DeserializeOwned>(what: &str, answer: Value) -> Result<O, ClientError> {
    serde_json::from_value(answer).map_err(|error| ClientError::Decode(format!("{what}: {error}")))
}
