//! The HTTP API, called directly (no CLI process per call, so the figures are the node's).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub(crate) struct Api {
    agent: ureq::Agent,
    token: String,
}

impl Api {
    pub(crate) fn new(token: &str, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_millis(500)))
            .timeout_global(Some(timeout))
            .build()
            .into();
        Self { agent, token: token.to_string() }
    }

    /// `POST /v1/deploy/<operation>` with the model's input; the model's output, or the
    /// error text.
    pub(crate) fn call<I: Serialize, O: DeserializeOwned>(
        &self,
        base: &str,
        operation: &str,
        input: &I,
    ) -> Result<O, String> {
        let body = serde_json::to_value(input).map_err(|error| error.to_string())?;
        let answer = self.operation(base, operation, &body)?;
        serde_json::from_value(answer).map_err(|error| format!("{operation}: {error}"))
    }

    /// `POST /v1/deploy/<operation>`; the JSON answer, or the error text.
    fn operation(&self, base: &str, operation: &str, body: &Value) -> Result<Value, String> {
        let response = self
            .agent
            .post(&format!("{base}/v1/deploy/{operation}"))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body.to_string());
        Self::finish(response)
    }

    pub(crate) fn get(&self, base: &str, path: &str) -> Result<Value, String> {
        let response =
            self.agent.get(&format!("{base}{path}")).header("Authorization", &format!("Bearer {}", self.token)).call();
        Self::finish(response)
    }

    fn finish(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, String> {
        let mut response = response.map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(|error| error.to_string())?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(format!("HTTP {status}: {}", value["error"].as_str().unwrap_or(&text)))
        }
    }

    /// The leader a node's `/healthz` names (its own Raft view), if any.
    pub(crate) fn healthz_leader(&self, base: &str) -> Option<u64> {
        self.get(base, "/healthz").ok()?["leader"].as_u64()
    }
}
