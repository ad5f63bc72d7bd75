//! `aws`: `GetDeployment` and `ListDeployments` through CodeDeploy's protocol (AWS JSON
//! 1.1, SigV4 over HTTPS) side by side with fleetmesh's REST path (bearer token over the
//! same HTTPS), on one node, sequential and with concurrent clients.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleetmesh_model::sigv4::{self, RequestParts};
use fleetmesh_tests::{http_agent_trusting, wait_until, Options, TestCluster};
use serde_json::{json, Value};

use super::{millis, summary};

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// How a request authenticates and which path it takes.
#[derive(Clone, Copy)]
enum Path {
    /// `POST /v1/deploy/<Operation>` with the bearer token.
    Rest,
    /// `POST /` with `X-Amz-Target` and a SigV4 signature.
    Signed,
}

struct Client {
    agent: ureq::Agent,
    base: String,
    host: String,
    token: String,
    key: (String, String),
}

/// `YYYYMMDDTHHMMSSZ` of now.
fn amz_date() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    sigv4::amz_date(i64::try_from(secs).unwrap_or(i64::MAX))
}

impl Client {
    /// The `Authorization` header SigV4 gives this request.
    fn authorization(&self, target: &str, body: &[u8], date: &str) -> String {
        let scope = format!("{}/us-east-1/codedeploy/aws4_request", &date[..8]);
        let header = |signature: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
                 Signature={signature}",
                self.key.0
            )
        };
        let unsigned = header(&"0".repeat(64));
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: vec![
                ("authorization", unsigned.as_bytes()),
                ("content-type", CONTENT_TYPE.as_bytes()),
                ("host", self.host.as_bytes()),
                ("x-amz-date", date.as_bytes()),
                ("x-amz-target", target.as_bytes()),
            ],
            body,
        };
        let signed = sigv4::signed(&parts).expect("a well-formed request");
        header(&sigv4::signature(&self.key.1, [&date[..8], "us-east-1", "codedeploy"], &sigv4::string_to_sign(&signed)))
    }

    /// One call; panics on an error answer (the bench measures successes only).
    fn call(&self, path: Path, operation: &str, body: &Value) -> Value {
        let body = body.to_string();
        let response = match path {
            Path::Rest => self
                .agent
                .post(&format!("{}/v1/deploy/{operation}", self.base))
                .header("Authorization", &format!("Bearer {}", self.token))
                .header("Content-Type", "application/json")
                .send(&body),
            Path::Signed => {
                let target = format!("CodeDeploy_20141006.{operation}");
                let date = amz_date();
                self.agent
                    .post(&format!("{}/", self.base))
                    .header("Authorization", &self.authorization(&target, body.as_bytes(), &date))
                    .header("Content-Type", CONTENT_TYPE)
                    .header("X-Amz-Date", &date)
                    .header("X-Amz-Target", &target)
                    .send(&body)
            }
        };
        let mut response = response.unwrap_or_else(|error| panic!("{operation}: {error}"));
        response.body_mut().read_json().unwrap_or_else(|error| panic!("{operation}: {error}"))
    }
}

/// `requests` calls from each of `clients` threads: latencies and requests per second.
fn measure(client: &Client, path: Path, operation: &str, body: &Value, requests: usize, clients: usize) -> Value {
    let started = Instant::now();
    let latencies: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(move || {
                    (0..requests)
                        .map(|_| {
                            let one = Instant::now();
                            client.call(path, operation, body);
                            millis(one.elapsed())
                        })
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().expect("client thread")).collect()
    });
    let per_sec = latencies.len() as f64 / started.elapsed().as_secs_f64();
    json!({ "clients": clients, "requests_per_sec": per_sec.round(), "latency": summary(&latencies) })
}

pub(crate) fn aws(requests: usize) -> Value {
    let cluster = TestCluster::start(1, Options::default());
    let key = wait_until("the AWS protocol's feature level", Duration::from_secs(60), || {
        cluster.cli_json(1, &["cluster", "create-access-key", "--json"])
    });
    let key = (
        key["accessKeyId"].as_str().unwrap_or_default().into(),
        key["secretAccessKey"].as_str().unwrap_or_default().into(),
    );
    let base = cluster.api_url(1);
    let host = base.trim_start_matches("https://").to_string();
    let agent = http_agent_trusting(Some(&cluster.ca_bundle(1)));
    let client = Client { agent, base, host, token: cluster.admin_token.clone(), key };
    client.call(Path::Rest, "CreateApplication", &json!({"applicationName": "bench"}));
    client.call(
        Path::Rest,
        "CreateDeploymentGroup",
        &json!({"applicationName": "bench", "deploymentGroupName": "nobody",
                "onPremisesInstanceTagFilters": [{"Key": "role", "Value": "nobody", "Type": "KEY_AND_VALUE"}]}),
    );
    let bundle = cluster.dir.path().join("bundle");
    fleetmesh_tests::write_bundle(&bundle, &[("appspec.yml", "version: 0.0\nos: linux\n", 0o644)]);
    let revision = cluster.push(1, "bench", &bundle);
    let mut last = String::new();
    for _ in 0..50 {
        let created = client.call(
            Path::Rest,
            "CreateDeployment",
            &json!({"applicationName": "bench", "deploymentGroupName": "nobody", "revisionId": revision}),
        );
        last = created["deploymentId"].as_str().unwrap_or_default().to_string();
    }
    let get = json!({ "deploymentId": last });
    let list = json!({ "applicationName": "bench" });
    for path in [Path::Rest, Path::Signed] {
        measure(&client, path, "GetDeployment", &get, 100, 1);
    }
    let mut figures = serde_json::Map::new();
    for (operation, body) in [("GetDeployment", &get), ("ListDeployments", &list)] {
        for (name, path) in [("rest_bearer_https", Path::Rest), ("aws_sigv4_https", Path::Signed)] {
            for clients in [1, 4] {
                let measured = measure(&client, path, operation, body, requests, clients);
                figures.insert(format!("{operation}.{name}.{clients}_clients"), measured);
            }
        }
    }
    json!({
        "what": "one node, HTTPS under the cluster CA, keep-alive; GetDeployment of one deployment, ListDeployments of 50; REST with the bearer token vs the AWS protocol signed with SigV4 (signing included in the client's time)",
        "requests_per_client": requests,
        "figures": figures,
    })
}
