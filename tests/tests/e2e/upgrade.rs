//! Upgrading fleetmesh itself host by host: a cluster of the previous release's voters
//! and a mix of old and new agents deploys, its voters are replaced by the new release
//! one at a time, the cluster's feature level rises once the last one is, and the mixed
//! fleet deploys again through a new agent.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use fleetmesh_tests::compat::previous_release;
use fleetmesh_tests::{binary, wait_until, write_bundle, Options, TestCluster};
use serde_json::Value;

const APPSPEC: &str = "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/app\n";

/// Runs the previous release's CLI against node `via`'s API.
fn old_cli(cluster: &TestCluster, old: &Path, via: u32, args: &[&str]) -> Output {
    Command::new(old)
        .args(args)
        .env("FLEETMESH_API", format!("http://{}", cluster.nodes[&via].api))
        .env("FLEETMESH_TOKEN", &cluster.admin_token)
        .output()
        .expect("run the previous release's CLI")
}

/// Runs the previous release's CLI and returns its stdout; panics with its stderr if it
/// failed.
fn old_ok(cluster: &TestCluster, old: &Path, via: u32, args: &[&str]) -> String {
    let output = old_cli(cluster, old, via, args);
    assert!(
        output.status.success(),
        "previous release: fleetmesh {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every target of a finished deployment, with its status.
fn target_statuses(info: &Value) -> Vec<(String, String)> {
    info["deploymentInfo"]["targetWaves"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|target| (target["targetId"].as_str().unwrap_or_default().to_string(), target["status"].to_string()))
        .collect()
}

/// The cluster's feature level as `cluster status` through node `via` reports it.
fn feature_level(cluster: &TestCluster, via: u32) -> Option<u64> {
    cluster.status(via).and_then(|status| status["feature_level"].as_u64())
}

/// Voters 1–3 and agent 5 run the previous release, agent 4 the new one. The old CLI
/// deploys through an old node; then each voter is restarted on the new release, one at
/// a time, with a deployment in between (the new CLI through the new agent, whose
/// operations are relayed as HTTP while an old leader may lead); the feature level stays
/// at 2 until the last old voter is gone (the new node refuses a join token with a use
/// limit, which needs level 4) and then rises to this build's level (6 and above), from when
/// operations travel typed and join tokens can be limited; the leader seals the CA key
/// the old release kept in clear, and a node still joins after; the new CLI deploys
/// through the new agent, and every host — the old agent included — installs the revision.
#[test]
fn a_fleet_upgrades_one_host_at_a_time_and_keeps_deploying() {
    let old = previous_release().unwrap_or_else(|error| panic!("{error}"));
    let mut options = Options::default();
    for index in [1, 2, 3, 5] {
        options.programs.insert(index, old.clone());
    }
    // The voters first (autopilot promotes the first members), then the agents.
    let mut cluster = TestCluster::start(3, options);
    wait_until("3 voters", Duration::from_secs(60), || {
        let status = cluster.status(1)?;
        let voters = status["nodes"].as_array()?.iter().filter(|node| node["role"] == "voter").count();
        (voters == 3).then_some(())
    });
    for index in [4, 5] {
        let seed = cluster.nodes[&1].listen;
        let token = cluster.join_token.clone();
        cluster.add_node(index, Some((seed, token)));
    }
    cluster.wait_alive(5, Duration::from_secs(90));
    let bundle = cluster.dir.path().join("bundle");
    write_bundle(&bundle, &[("appspec.yml", APPSPEC, 0o644), ("site/index.html", "v1\n", 0o644)]);

    old_ok(&cluster, &old, 1, &["deploy", "create-application", "--application-name", "app"]);
    old_ok(
        &cluster,
        &old,
        1,
        &[
            "deploy",
            "create-deployment-group",
            "--application-name",
            "app",
            "--deployment-group-name",
            "fleet",
            "--tag",
            "role=web",
            "--deployment-config-name",
            "CodeDeployDefault.AllAtOnce",
        ],
    );
    let pushed = old_ok(
        &cluster,
        &old,
        2,
        &["deploy", "push", "--application-name", "app", "--source", &bundle.to_string_lossy()],
    );
    let revision = pushed.trim().lines().last().expect("a revision id").trim().to_string();
    let deploy = |cluster: &TestCluster, via: u32, cli: &Path| -> Value {
        let output = Command::new(cli)
            .args([
                "deploy",
                "create-deployment",
                "--application-name",
                "app",
                "--deployment-group-name",
                "fleet",
                "--revision",
                &revision,
                "--wait",
                "--json",
            ])
            .env("FLEETMESH_API", cluster.api_url(via))
            .env("FLEETMESH_CA_BUNDLE", cluster.ca_bundle(via))
            .env("FLEETMESH_TOKEN", &cluster.admin_token)
            .output()
            .expect("run create-deployment");
        serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
            panic!("create-deployment --wait printed no JSON: {}", String::from_utf8_lossy(&output.stderr))
        })
    };
    let first = deploy(&cluster, 1, &old);
    assert_eq!(first["deploymentInfo"]["status"], "Succeeded", "old CLI, old leader: {first:#}");
    assert_eq!(target_statuses(&first).len(), 5, "every host is a target: {first:#}");
    // Through an old node: the new agent (4) serves its HTTPS API only once a voter of
    // this release has signed its certificate, and no voter runs this release yet.
    assert_eq!(feature_level(&cluster, 2), Some(2), "the previous release runs at level 2");

    for index in 1..=3 {
        cluster.set_program(index, None);
        cluster.restart(index);
        cluster.wait_alive(5, Duration::from_secs(120));
        if index < 3 {
            let level = wait_until("a leader that answers", Duration::from_secs(60), || {
                cluster.status(4).map(|status| status["feature_level"].as_u64())
            });
            assert_eq!(level, Some(2), "an old voter remains, yet the level is {level:?}");
            let limited = cluster.cli(4, &["cluster", "create-join-token", "--max-uses", "1"]);
            let message = String::from_utf8_lossy(&limited.stderr);
            assert!(!limited.status.success() && message.contains("needs cluster feature level 4"), "{message}");
            let between = deploy(&cluster, 4, &binary());
            assert_eq!(between["deploymentInfo"]["status"], "Succeeded", "after upgrading voter {index}: {between:#}");
        }
    }
    let current = u64::from(fleetmesh_state::FeatureLevel::CURRENT.0);
    wait_until("this build's feature level", Duration::from_secs(60), || {
        (feature_level(&cluster, 4) == Some(current)).then_some(())
    });
    // At level 6 the leader hands every voter a seal key and seals the CA it created in
    // clear; the new leader after that can still open it (node 6 joins below).
    wait_until("the CA sealed, its seal key on every voter", Duration::from_secs(60), || {
        let keys: Vec<String> = (1..=3)
            .map(|index| std::fs::read_to_string(cluster.nodes[&index].data_dir.join("ca-seal-key")).ok())
            .collect::<Option<_>>()?;
        let sealed = (1..=3).any(|index| cluster.log(index).contains("sealed the cluster CA key"));
        (sealed && keys.iter().all(|key| *key == keys[0])).then_some(())
    });
    let status = cluster.status(4).expect("cluster status");
    let node_levels: Vec<(u64, Option<u64>)> = status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|node| (node["id"].as_u64().unwrap_or_default(), node["release"]["featureLevel"].as_u64()))
        .collect();
    let old_agent = cluster.node_id(5);
    assert!(
        node_levels.iter().any(|(id, level)| *id == old_agent && *level == Some(2)),
        "the old agent reports the level it knows: {node_levels:?}"
    );

    let relayed = cluster.metric(4, "fleetmesh_api_operations_relayed_total").unwrap_or(0);
    let last = deploy(&cluster, 4, &binary());
    assert_eq!(
        cluster.metric(4, "fleetmesh_api_operations_relayed_total"),
        Some(relayed),
        "at level 4 the agent forwards operations typed, not as HTTP"
    );
    assert!(cluster.metric(4, "fleetmesh_api_operations_forwarded_total").unwrap_or(0) > 0);
    assert_eq!(last["deploymentInfo"]["status"], "Succeeded", "new CLI through a new agent: {last:#}");
    let limited = cluster.cli(4, &["cluster", "create-join-token", "--max-uses", "1"]);
    assert!(limited.status.success(), "at level 4: {}", String::from_utf8_lossy(&limited.stderr));
    let seed = cluster.nodes[&1].listen;
    let token = cluster.join_token.clone();
    cluster.add_node(6, Some((seed, token)));
    cluster.wait_alive(6, Duration::from_secs(90));
    let statuses = target_statuses(&last);
    assert_eq!(statuses.len(), 5, "{last:#}");
    assert!(statuses.iter().all(|(_, status)| status == "\"Succeeded\""), "every host installed it: {statuses:?}");
    for index in 1..=5 {
        let installed = cluster.nodes[&index].install_root.join("srv/app/index.html");
        assert_eq!(std::fs::read_to_string(&installed).ok().as_deref(), Some("v1\n"), "host {index}");
    }
}
