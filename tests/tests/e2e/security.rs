//! Trust: the API is HTTPS under the cluster CA on every node (agents included), its
//! certificate renews itself, plain HTTP is refused off loopback, and the API's tokens
//! (admin, read-only, metrics) each do what they may and nothing more.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use fleetmesh_state::model::ids::Hash32;
use fleetmesh_tests::{binary, http_agent_trusting, wait_until, Options, TestCluster};
use serde_json::Value;

fn get(agent: &ureq::Agent, url: &str, token: &str) -> Result<u16, String> {
    agent
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .map(|response| response.status().as_u16())
        .map_err(|error| error.to_string())
}

fn cert_not_after(cluster: &TestCluster, index: u32) -> Option<i64> {
    let text = std::fs::read_to_string(cluster.nodes[&index].data_dir.join("api-cert.json")).ok()?;
    serde_json::from_str::<Value>(&text).ok()?["validity"]["notAfter"].as_i64()
}

/// Every node serves HTTPS with a certificate for its address that chains to DIR/ca.pem
/// (node 2 is an agent: a voter signed its certificate); a client without the CA, or
/// speaking plain HTTP, gets nothing; a 12-second certificate is renewed while the API
/// keeps answering; the CLI without a CA bundle says what to pass.
#[test]
fn the_api_is_https_under_the_cluster_ca_on_every_node_and_renews_its_certificate() {
    let options = Options {
        node_flags: vec!["--voters".into(), "1".into(), "--cert-lifetime-secs".into(), "12".into()],
        ..Options::default()
    };
    let cluster = TestCluster::start(2, options);
    let trusted = cluster.http();
    for index in [1, 2] {
        assert!(cluster.api_url(index).starts_with("https://"), "node {index} wrote DIR/ca.pem");
        let mode = |file: &str| {
            std::fs::metadata(cluster.nodes[&index].data_dir.join(file)).map(|meta| meta.permissions().mode() & 0o777)
        };
        assert_eq!(mode("api-key.pem").ok(), Some(0o600), "node {index}'s API key is private");
        assert_eq!(mode("ca.pem").ok(), Some(0o644), "node {index}'s ca.pem is public");
        let url = format!("{}/healthz", cluster.api_url(index));
        wait_until(&format!("HTTPS on node {index}"), Duration::from_secs(60), || {
            (get(&trusted, &url, &cluster.admin_token) == Ok(200)).then_some(())
        });
        assert!(get(&http_agent_trusting(None), &url, "x").is_err(), "a client without the cluster CA is refused");
        let plain = url.replacen("https://", "http://", 1);
        assert!(get(&trusted, &plain, "x").map_or(true, |status| status >= 400), "plain HTTP gets no answer");
    }

    // Renewal: the 12 s certificate is replaced two thirds in, and HTTPS keeps working.
    let first = cert_not_after(&cluster, 2).expect("node 2's certificate record");
    let renewed = wait_until("a renewed certificate", Duration::from_secs(30), || {
        cert_not_after(&cluster, 2).filter(|at| *at > first)
    });
    assert!(renewed > first);
    let status_url = format!("{}/v1/cluster", cluster.api_url(2));
    assert_eq!(get(&trusted, &status_url, &cluster.admin_token), Ok(200), "the renewed certificate is served");

    // The CLI needs the CA for https:// and says so.
    let output = Command::new(binary())
        .args(["cluster", "status"])
        .env("FLEETMESH_API", cluster.api_url(1))
        .env("FLEETMESH_TOKEN", &cluster.admin_token)
        .env_remove("FLEETMESH_CA_BUNDLE")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("--ca-bundle"), "{stderr}");
    cluster.ok(1, &["cluster", "status"]);
}

/// `--api-plaintext` is refused on an address other hosts can reach, before the node
/// creates anything; a bad `--api-san` is refused the same way.
#[test]
fn plaintext_off_loopback_and_bad_api_names_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let data_dir = dir.path().join("node");
        let output = Command::new(binary())
            .args(["node", "--data-dir", &data_dir.to_string_lossy(), "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .expect("run");
        (output.status.success(), String::from_utf8_lossy(&output.stderr).to_string(), data_dir.exists())
    };
    let (ok, stderr, created) = run(&["--api", "0.0.0.0:7999", "--api-plaintext"]);
    assert!(!ok && stderr.contains("--api-plaintext is only allowed on a loopback address"), "{stderr}");
    assert!(!created, "nothing was created");
    let (ok, stderr, created) = run(&["--api", "127.0.0.1:0", "--api-san", "not a name"]);
    assert!(!ok && stderr.contains("is not an IP address or a DNS name"), "{stderr}");
    assert!(!created, "nothing was created");
}

/// The metrics token reads /metrics only; a read-only token reads (also through an
/// agent, which forwards) and cannot write; rotating the admin token locks the old one
/// out and removes the first node's DIR/admin-token.
#[test]
fn each_api_token_does_what_it_may_and_a_rotated_admin_token_stops_working() {
    let options = Options { node_flags: vec!["--voters".into(), "1".into()], ..Options::default() };
    let mut cluster = TestCluster::start(2, options);
    let agent = cluster.http();
    let first_dir = cluster.nodes[&1].data_dir.clone();
    let metrics_token = std::fs::read_to_string(first_dir.join("metrics-token")).expect("DIR/metrics-token");
    let metrics_token = metrics_token.trim();
    let mode = std::fs::metadata(first_dir.join("metrics-token")).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let base = cluster.api_url(1);
    assert_eq!(get(&agent, &format!("{base}/metrics"), metrics_token), Ok(200));
    assert_eq!(get(&agent, &format!("{base}/v1/cluster"), metrics_token), Ok(403), "metrics token: nothing else");

    // The leader raises the new cluster to this release's feature level soon after it forms.
    let read_only = wait_until("feature level 5 (rotate-token)", Duration::from_secs(30), || {
        let output = cluster.cli(1, &["cluster", "rotate-token", "--kind", "read-only"]);
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    });
    assert!(read_only.starts_with("fmr1."), "{read_only}");
    cluster.ok(1, &["deploy", "create-application", "--application-name", "seen"]);
    // Audit: what a write creates names its caller by the start of its token's hash,
    // and the leader logs every write with its caller.
    let created_by = |cluster: &TestCluster, name: &str| {
        let answer = cluster.cli_json(1, &["deploy", "get-application", "--application-name", name]);
        answer.and_then(|answer| answer["application"]["createdBy"].as_str().map(str::to_string))
    };
    let actor = |token: &str| format!("admin-token:{}", &Hash32::of(token.as_bytes()).to_hex()[..8]);
    let first_admin = actor(&cluster.admin_token);
    assert_eq!(created_by(&cluster, "seen").as_deref(), Some(first_admin.as_str()));
    let audit = format!("audit: write accepted operation=\"CreateApplication\" by={first_admin}");
    assert!(cluster.log(1).contains(&audit), "no `{audit}` in the leader's log");
    let as_reader = |via: u32, args: &[&str]| {
        Command::new(binary())
            .args(args)
            .env("FLEETMESH_API", cluster.api_url(via))
            .env("FLEETMESH_CA_BUNDLE", cluster.ca_bundle(via))
            .env("FLEETMESH_TOKEN", &read_only)
            .output()
            .expect("run")
    };
    for via in [1, 2] {
        let listed = wait_until(&format!("a read-only read through node {via}"), Duration::from_secs(20), || {
            let output = as_reader(via, &["deploy", "list-applications"]);
            output.status.success().then(|| String::from_utf8_lossy(&output.stdout).to_string())
        });
        assert!(listed.contains("seen"), "{listed}");
        let write = as_reader(via, &["deploy", "create-application", "--application-name", "nope"]);
        let stderr = String::from_utf8_lossy(&write.stderr);
        assert!(!write.status.success() && stderr.contains("read-only token may only read"), "via {via}: {stderr}");
    }

    let old = cluster.admin_token.clone();
    let new = cluster.ok(1, &["cluster", "rotate-admin-token"]).trim().to_string();
    assert!(new.starts_with("fma1.") && new != old);
    cluster.admin_token = new;
    for via in [1, 2] {
        let url = format!("{}/v1/cluster", cluster.api_url(via));
        // An agent learns the new hash with its next poll.
        wait_until(&format!("node {via} to take the new admin token only"), Duration::from_secs(20), || {
            (get(&agent, &url, &old) == Ok(401) && get(&agent, &url, &cluster.admin_token) == Ok(200)).then_some(())
        });
    }
    wait_until("the stale DIR/admin-token removed", Duration::from_secs(20), || {
        (!first_dir.join("admin-token").exists()).then_some(())
    });
    cluster.ok(1, &["deploy", "create-application", "--application-name", "after-rotation"]);
    let second_admin = actor(&cluster.admin_token);
    assert_ne!(second_admin, first_admin);
    assert_eq!(created_by(&cluster, "after-rotation"), Some(second_admin));
    assert_eq!(created_by(&cluster, "seen"), Some(first_admin), "a record keeps who made it");
}

/// A client cannot make up where a revision's chunks are: `seeds` and `registeredBy` are
/// refused by name, and a manifest whose chunks the node it reached does not hold is
/// refused with how many are missing; nothing is registered.
#[test]
fn a_registered_manifest_must_be_held_and_its_seeds_are_not_the_clients_to_set() {
    let cluster = TestCluster::start(1, Options::default());
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/manifest/seed-sample-app.json");
    let manifest: Value = serde_json::from_slice(&std::fs::read(&corpus).expect("a manifest")).expect("JSON");
    let register = |extra: Value| {
        let mut body = serde_json::json!({ "applicationName": "app", "manifest": manifest });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        cluster.api_post(1, "/v1/deploy/RegisterApplicationRevision", &body)
    };
    let (status, body) = register(serde_json::json!({ "seeds": [1] }));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().is_some_and(|error| error.starts_with("seeds: ")), "{body}");
    let (status, body) = register(serde_json::json!({ "registeredBy": "someone else" }));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().is_some_and(|error| error.starts_with("registeredBy: ")), "{body}");
    let (status, body) = register(serde_json::json!({}));
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("manifest: ") && error.contains("chunks are not held by node"), "{body}");
    let listed = cluster
        .cli_json(1, &["deploy", "list-application-revisions", "--application-name", "app", "--json"])
        .expect("list-application-revisions --json");
    assert_eq!(listed["revisions"].as_array().map(Vec::len), Some(0), "nothing registered: {listed}");
}
