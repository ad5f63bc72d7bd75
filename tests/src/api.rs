//! Reading a test node's HTTP API directly: metrics, raw POSTs, and waiting on the
//! chunk store's size.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::TestCluster;

/// An HTTP agent that returns error statuses as answers instead of errors and trusts
/// the CA in `ca_pem` (a node's DIR/ca.pem) for HTTPS.
pub fn http_agent_trusting(ca_pem: Option<&Path>) -> ureq::Agent {
    http_agent_within(ca_pem, Duration::from_secs(10))
}

/// [`http_agent_trusting`] with its own time limit per request.
pub fn http_agent_within(ca_pem: Option<&Path>, timeout: Duration) -> ureq::Agent {
    // No bundle: no roots at all, so any HTTPS server is refused (ureq has no built-in
    // roots in this build).
    let pem = ca_pem.and_then(|path| std::fs::read(path).ok()).unwrap_or_default();
    let roots: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(certificate)) => Some(certificate),
            _ => None,
        })
        .collect();
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&roots)).build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

impl TestCluster {
    /// An HTTP agent for this cluster's APIs: error statuses are answers, and HTTPS
    /// trusts the cluster CA (the first DIR/ca.pem a node wrote).
    pub fn http(&self) -> ureq::Agent {
        let bundle = self.nodes.keys().map(|index| self.ca_bundle(*index)).find(|path| path.exists());
        http_agent_trusting(bundle.as_deref())
    }

    /// Reads the value of metric `name` from node `index`'s `/metrics` (summed over its
    /// label sets); `None` when the node does not answer or has no such metric.
    pub fn metric(&self, index: u32, name: &str) -> Option<u64> {
        parse_metric(&self.metrics_text(index)?, name)
    }

    /// Node `index`'s whole `/metrics` text, read with the admin token.
    pub fn metrics_text(&self, index: u32) -> Option<String> {
        let url = format!("{}/metrics", self.api_url(index));
        let mut response =
            self.http().get(&url).header("Authorization", &format!("Bearer {}", self.admin_token)).call().ok()?;
        response.body_mut().read_to_string().ok()
    }

    /// POSTs a JSON body to node `via`'s API with the admin token; returns the status
    /// and the parsed body (`Null` if it was not JSON).
    pub fn api_post(&self, via: u32, path: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}{path}", self.api_url(via));
        let response = self
            .http()
            .post(&url)
            .header("Authorization", &format!("Bearer {}", self.admin_token))
            .send_json(body)
            .unwrap_or_else(|error| panic!("POST {url}: {error}"));
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Waits until node `index`'s chunk store holds at least `bytes` (its
    /// `fleetmesh_chunk_store_bytes`), polling every 20 ms; returns the time it took.
    ///
    /// # Panics
    /// After `timeout`.
    pub fn wait_store_bytes(&self, index: u32, bytes: u64, timeout: Duration) -> Duration {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            let held = self.metric(index, "fleetmesh_chunk_store_bytes").unwrap_or(0);
            if held >= bytes {
                return start.elapsed();
            }
            assert!(Instant::now() < deadline, "node {index} holds {held} of {bytes} chunk bytes after {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The value of `name` in Prometheus text, summed over label sets.
pub fn parse_metric(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value: u64 = rest.rsplit(' ').next()?.trim().parse().ok()?;
        found = Some(found.unwrap_or(0) + value);
    }
    found
}
