//! The cluster foundation: formation, failover, voter replacement, and who gets in.

use std::time::Duration;

use fleetmesh_tests::{wait_until, Options, TestCluster};
use serde_json::Value;

fn voters(status: &Value) -> usize {
    status["nodes"].as_array().map_or(0, |nodes| nodes.iter().filter(|node| node["role"] == "voter").count())
}

fn health_of(status: &Value, address: &str) -> Option<String> {
    status["nodes"]
        .as_array()?
        .iter()
        .find(|node| node["address"] == address)
        .map(|node| node["health"].as_str().unwrap_or("").to_string())
}

/// Five nodes form one cluster: every node's `cluster status --json` names the same
/// leader, and exactly three nodes are voters.
#[test]
fn five_nodes_agree_on_one_leader_and_three_voters() {
    let cluster = TestCluster::start(5, Options::default());
    let status =
        wait_until("3 voters", Duration::from_secs(60), || cluster.status(1).filter(|status| voters(status) == 3));
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(5));
    let leader = status["leader"].clone();
    for via in 1..=5 {
        let seen = wait_until("status through every node", Duration::from_secs(30), || cluster.status(via));
        assert_eq!(seen["leader"], leader, "node {via} names another leader");
        assert_eq!(voters(&seen), 3);
        for node in seen["nodes"].as_array().expect("nodes") {
            for field in ["id", "address", "role", "health", "tags"] {
                assert!(node.get(field).is_some(), "node entry lacks {field}: {node}");
            }
        }
    }
    let table = cluster.cli(3, &["cluster", "status"]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("ROLE") && text.contains("voter") && text.contains("agent"), "{text}");
}

/// `kill -9` the leader: a new leader is elected, the survivors' API answers, the dead
/// node shows as dead; restarted with the same data directory it is alive again with
/// the same id.
#[test]
fn leader_kill9_fails_over_and_the_node_comes_back_with_its_id() {
    let mut cluster = TestCluster::start(5, Options::default());
    wait_until("3 voters", Duration::from_secs(60), || cluster.status(1).filter(|status| voters(status) == 3));
    let old_index = wait_until("a leader", Duration::from_secs(30), || cluster.leader_index(1));
    let old_address = cluster.nodes[&old_index].listen.to_string();
    let old_status = cluster.status(old_index).expect("status");
    let old_id = old_status["leader"].clone();
    cluster.kill9(old_index);
    let survivor = if old_index == 1 { 2 } else { 1 };
    let status = wait_until("a new leader that reports the old one dead", Duration::from_secs(60), || {
        let status = cluster.status(survivor)?;
        (status["leader"] != old_id
            && !status["leader"].is_null()
            && health_of(&status, &old_address).as_deref() == Some("dead"))
        .then_some(status)
    });
    assert_ne!(status["leader"], old_id);
    for via in cluster.live_indices() {
        assert!(cluster.status(via).is_some(), "node {via}'s API does not answer");
    }
    cluster.restart(old_index);
    let status = wait_until("the old leader alive again", Duration::from_secs(60), || {
        let status = cluster.status(survivor)?;
        (health_of(&status, &old_address).as_deref() == Some("alive")).then_some(status)
    });
    let entry = status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|node| node["address"] == old_address.as_str())
        .cloned()
        .expect("entry");
    assert_eq!(entry["id"], old_id, "the restarted node must keep its id");
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(5), "no ghost member after the restart");
}

/// A voter dead for longer than the grace period is replaced by an agent: voters are
/// three again, and the dead node is no longer a voter.
#[test]
fn a_voter_dead_past_the_grace_period_is_replaced_by_an_agent() {
    let options = Options { node_flags: vec!["--voter-grace-secs".into(), "3".into()], ..Options::default() };
    let mut cluster = TestCluster::start(5, options);
    let (victim_index, victim_address) = cluster.follower_voter();
    cluster.kill9(victim_index);
    let via = cluster.live_indices()[0];
    let status = wait_until("a replacement voter", Duration::from_secs(60), || {
        let status = cluster.status(via)?;
        let victim_now =
            status["nodes"].as_array()?.iter().find(|node| node["address"] == victim_address.as_str())?.clone();
        (voters(&status) == 3 && victim_now["role"] == "agent").then_some(status)
    });
    let alive_voters = status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|node| node["role"] == "voter" && node["health"] == "alive")
        .count();
    assert_eq!(alive_voters, 3);
}

/// Who gets in: no token or a wrong one gets 401 and a non-zero CLI exit; a join with a
/// wrong secret or another cluster's token exits non-zero with a clear message and
/// leaves the membership unchanged.
#[test]
fn bad_tokens_and_foreign_clusters_are_refused() {
    let mut cluster = TestCluster::start(2, Options::default());
    let api = format!("{}/v1/cluster", cluster.api_url(1));
    let agent = cluster.http();
    let no_token = agent.get(&api).call().expect("request");
    assert_eq!(no_token.status().as_u16(), 401);
    let wrong = agent.get(&api).header("Authorization", "Bearer nope").call().expect("request");
    assert_eq!(wrong.status().as_u16(), 401);
    let healthz = agent.get(&format!("{}/healthz", cluster.api_url(1))).call().expect("request");
    assert_eq!(healthz.status().as_u16(), 200);
    let output = std::process::Command::new(fleetmesh_tests::binary())
        .args(["cluster", "status"])
        .env("FLEETMESH_API", cluster.api_url(1))
        .env("FLEETMESH_CA_BUNDLE", cluster.ca_bundle(1))
        .env("FLEETMESH_TOKEN", "wrong")
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("admin token"));

    // A wrong secret with the right CA pin.
    let (pin, _) = cluster.join_token.rsplit_once('.').expect("token shape");
    let bad_secret = format!("{pin}.{}", "0".repeat(32));
    let seed = cluster.nodes[&1].listen.to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let join = |token: &str| {
        std::process::Command::new(fleetmesh_tests::binary())
            .args(["node", "--listen", &format!("{}:7400", cluster.ip(9)), "--api", &format!("{}:7480", cluster.ip(9))])
            .arg("--data-dir")
            .arg(dir.path().join(format!("x{}", token.len())))
            .args(["--join", &seed, "--token", token])
            .output()
            .expect("run")
    };
    let refused = join(&bad_secret);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("join token is not valid"), "{message}");
    assert_eq!(message.trim().lines().filter(|line| line.contains("error")).count(), 1, "one clear line: {message}");

    // Another cluster's token: the CA pin does not match the seed.
    let other = TestCluster::start(1, Options::default());
    let foreign = join(&other.join_token);
    assert!(!foreign.status.success());
    let message = String::from_utf8_lossy(&foreign.stderr);
    assert!(message.contains("another cluster"), "{message}");

    // A malformed token.
    let malformed = join("garbage");
    assert!(!malformed.status.success());
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("malformed"));

    let status = cluster.status(1).expect("status");
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(2), "membership must be unchanged");
    cluster.kill9(2);
}

/// A node presenting a certificate from another CA is refused during the handshake:
/// its request never reaches the cluster.
#[test]
fn a_certificate_from_another_ca_is_refused() {
    use fleetmesh_transport::pki::{CaAuthority, ClusterCa, NodeKey, TlsIdentity};
    use fleetmesh_transport::quic::QuicTransport;
    use fleetmesh_transport::{BoxFuture, Caller, Handler, Message, NodeId, Peer, Refused, Transport};

    struct Silent;
    impl Handler for Silent {
        fn handle(&self, _: Caller, _: Message) -> BoxFuture<'static, Result<Message, Refused>> {
            Box::pin(async { Err(Refused::new("no")) })
        }
    }

    let cluster = TestCluster::start(1, Options::default());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let foreign = ClusterCa::generate("intruder").expect("ca");
        let key = NodeKey::generate().expect("key");
        let cert = foreign.sign_node(NodeId(1), &key.public_key).expect("cert");
        let identity = TlsIdentity::from_pem(NodeId(1), &foreign.cert_pem, &cert, &key.key_pem).expect("identity");
        let bind = std::net::SocketAddr::new(cluster.ip(77), 0);
        let transport = QuicTransport::bind(bind, &identity, std::sync::Arc::new(Silent)).expect("bind");
        let peer = Peer { id: NodeId(1), addr: cluster.nodes[&1].listen };
        let answer = transport.request(peer, Message::new(&b"{}"[..]), Duration::from_secs(5)).await;
        assert!(answer.is_err(), "a foreign certificate must be refused, got {answer:?}");
        transport.close().await;
    });
}

/// With a majority of voters gone, a write fails fast with 503 and a body that says
/// why, instead of hanging; reads of the cluster view still answer from the survivor.
#[test]
fn writes_without_a_quorum_fail_fast() {
    let mut cluster = TestCluster::start(3, Options::default());
    wait_until("3 voters", Duration::from_secs(60), || cluster.status(1).filter(|status| voters(status) == 3));
    cluster.ok(1, &["deploy", "create-application", "--application-name", "before"]);
    cluster.kill9(2);
    cluster.kill9(3);
    std::thread::sleep(Duration::from_secs(1));
    let api = format!("{}/v1/deploy/CreateApplication", cluster.api_url(1));
    let agent = cluster.http();
    let started = std::time::Instant::now();
    let mut answer = agent
        .post(&api)
        .header("Authorization", &format!("Bearer {}", cluster.admin_token))
        .header("Content-Type", "application/json")
        .send(r#"{"applicationName":"during"}"#)
        .expect("request");
    let elapsed = started.elapsed();
    assert_eq!(answer.status().as_u16(), 503);
    let body = answer.body_mut().read_to_string().expect("body");
    assert!(body.contains("quorum") || body.contains("no leader"), "{body}");
    assert!(elapsed < Duration::from_secs(8), "the write took {elapsed:?}");
    let output = cluster.cli(1, &["deploy", "create-application", "--application-name", "during"]);
    assert!(!output.status.success());
}

/// The Raft log holds the cluster CA's private key: `raft.redb` is readable by its owner
/// only on every node, and a node restarted over a file an older release left at the
/// umask's 0644 tightens it.
#[test]
fn the_raft_database_holding_the_ca_key_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let mut cluster = TestCluster::start(3, Options::default());
    cluster.wait_alive(3, Duration::from_secs(60));
    let mode = |cluster: &TestCluster, index: u32| {
        let path = cluster.nodes[&index].data_dir.join("raft.redb");
        std::fs::metadata(&path).map(|meta| meta.permissions().mode() & 0o777).expect("raft.redb exists")
    };
    for index in 1..=3 {
        assert_eq!(mode(&cluster, index), 0o600, "node {index}");
    }
    let path = cluster.nodes[&2].data_dir.join("raft.redb");
    cluster.kill9(2);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    cluster.restart(2);
    // The restarted process opens its database a moment after it is spawned.
    wait_until("the restarted node makes its old 0644 raft.redb private", Duration::from_secs(30), || {
        (mode(&cluster, 2) == 0o600).then_some(())
    });
    cluster.wait_alive(3, Duration::from_secs(60));
}

/// The CA key is never in the Raft log in clear: the bootstrap entry carries it sealed,
/// every voter holds the seal key (0600, the same one), and after the first node (the
/// leader) is killed, the new leader opens the CA and admits a new node.
#[test]
fn the_ca_key_is_sealed_in_the_log_and_every_voter_can_open_it() {
    use std::os::unix::fs::PermissionsExt;
    let mut cluster = TestCluster::start(3, Options::default());
    wait_until("three voters", Duration::from_secs(60), || {
        let status = cluster.status(1)?;
        let voters = status["nodes"].as_array()?.iter().filter(|node| node["role"] == "voter").count();
        (voters == 3).then_some(())
    });
    let mut keys = Vec::new();
    for index in 1..=3 {
        let dir = &cluster.nodes[&index].data_dir;
        let raft = std::fs::read(dir.join("raft.redb")).expect("raft.redb");
        let clear = raft.windows(b"PRIVATE KEY".len()).filter(|window| *window == b"PRIVATE KEY").count();
        assert_eq!(clear, 0, "node {index}: raft.redb holds a private key in clear");
        let seal_key = dir.join("ca-seal-key");
        let mode = std::fs::metadata(&seal_key).map(|meta| meta.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600), "node {index}: {}", seal_key.display());
        keys.push(std::fs::read_to_string(&seal_key).expect("seal key"));
    }
    assert!(keys.iter().all(|key| *key == keys[0]), "the voters hold different seal keys");
    cluster.kill9(1);
    let leader =
        wait_until("a new leader", Duration::from_secs(60), || cluster.leader_index(2).filter(|leader| *leader != 1));
    let seed = cluster.nodes[&leader].listen;
    let token = cluster.join_token.clone();
    cluster.add_node(4, Some((seed, token)));
    let address = cluster.nodes[&4].listen.to_string();
    wait_until("node 4 admitted by the new leader and alive", Duration::from_secs(90), || {
        let status = cluster.status(leader)?;
        let nodes = status["nodes"].as_array()?;
        nodes.iter().any(|node| node["address"] == address.as_str() && node["health"] == "alive").then_some(())
    });
}

/// Runs `fleetmesh node --join` for a node at index `index` with `token`, which is refused
/// and exits; returns its stderr.
fn refused_join(cluster: &TestCluster, index: u32, token: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(fleetmesh_tests::binary())
        .args(["node", "--listen", &format!("{}:7400", cluster.ip(index))])
        .args(["--api", &format!("{}:7480", cluster.ip(index))])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--join", &cluster.nodes[&1].listen.to_string(), "--token", token])
        .output()
        .expect("run");
    assert!(!output.status.success(), "the join with {token} must fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The CLI's stdout, asserting it succeeded.
fn cli_ok(cluster: &TestCluster, args: &[&str]) -> String {
    let output = cluster.cli(1, args);
    assert!(output.status.success(), "fleetmesh {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The CLI's stderr, asserting it failed.
fn cli_err(cluster: &TestCluster, args: &[&str]) -> String {
    let output = cluster.cli(1, args);
    assert!(!output.status.success(), "fleetmesh {args:?} must fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Join tokens' lifecycle: a new token expires after 24 h by default and `--ttl-secs 0`
/// never; a lifetime over 10 years is refused (API 400 naming the field); a token with
/// `--max-uses 1` admits one node and refuses the next with a clear message;
/// `list-join-tokens` shows ids, expiry and uses but no secret; a deleted token admits
/// nobody, and deleting an unknown id fails clearly.
#[test]
fn join_tokens_expire_count_their_uses_and_can_be_deleted() {
    let mut cluster = TestCluster::start(1, Options::default());
    wait_until("feature level 4", Duration::from_secs(60), || {
        (cluster.status(1)?["feature_level"].as_u64()? >= 4).then_some(())
    });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let default_token = cli_ok(&cluster, &["cluster", "create-join-token", "--description", "default"]);
    let forever = cli_ok(&cluster, &["cluster", "create-join-token", "--ttl-secs", "0", "--description", "asg"]);
    let once = cli_ok(&cluster, &["cluster", "create-join-token", "--max-uses", "1", "--description", "once"]);
    let list = cluster.cli_json(1, &["cluster", "list-join-tokens", "--json"]).expect("list-join-tokens --json");
    let tokens = list["joinTokens"].as_array().expect("joinTokens").clone();
    let by_description = |description: &str| {
        tokens.iter().find(|token| token["description"] == description).cloned().unwrap_or_else(|| panic!("{list:#}"))
    };
    let bootstrap = by_description("bootstrap token");
    assert!(bootstrap["expiresAt"].is_null() && bootstrap["maxUses"].is_null(), "{bootstrap}");
    let default = by_description("default");
    let expires = default["expiresAt"].as_f64().expect("the default token expires");
    assert!((expires - now - 86_400.0).abs() < 120.0, "24 h from now: {default}");
    assert!(default["createdAt"].as_f64().is_some_and(|created| (created - now).abs() < 120.0), "{default}");
    assert!(by_description("asg")["expiresAt"].is_null(), "--ttl-secs 0 never expires");
    let limited = by_description("once");
    assert_eq!((limited["uses"].as_u64(), limited["maxUses"].as_u64()), (Some(0), Some(1)));
    let text = list.to_string();
    for secret in [&default_token, &forever, &once] {
        let (_, secret) = secret.rsplit_once('.').expect("token shape");
        assert!(!text.contains(secret), "the list shows no secret");
    }

    // Out of bounds: the CLI names the field; the API answers 400 with a JSON error.
    let too_long = cli_err(&cluster, &["cluster", "create-join-token", "--ttl-secs", "18446744073709551615"]);
    assert!(too_long.contains("ttlSeconds: 18446744073709551615 is more than the maximum, 315360000"), "{too_long}");
    assert!(cli_err(&cluster, &["cluster", "create-join-token", "--max-uses", "0"]).contains("maxUses: 0"));
    let agent = cluster.http();
    let mut answer = agent
        .post(&format!("{}/v1/join-tokens", cluster.api_url(1)))
        .header("Authorization", &format!("Bearer {}", cluster.admin_token))
        .header("Content-Type", "application/json")
        .send(r#"{"ttlSeconds": 315360001}"#)
        .expect("request");
    assert_eq!(answer.status().as_u16(), 400);
    let body: Value = serde_json::from_str(&answer.body_mut().read_to_string().expect("body")).expect("JSON error");
    assert!(body["error"].as_str().is_some_and(|error| error.starts_with("ttlSeconds: ")), "{body}");

    // One use: the first node joins, the second is refused and the list counts the use.
    cluster.add_node(2, Some((cluster.nodes[&1].listen, once.clone())));
    cluster.wait_alive(2, Duration::from_secs(90));
    let message = refused_join(&cluster, 9, &once);
    assert!(message.contains("was used 1 time(s), its --max-uses"), "{message}");
    let table = cli_ok(&cluster, &["cluster", "list-join-tokens"]);
    let row = table.lines().find(|line| line.contains("once")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("1/1") && table.contains("never"), "{table}");

    // Deleted: nobody joins with it; deleting it again, or a malformed id, fails.
    let asg_id = by_description("asg")["tokenId"].as_str().expect("tokenId").to_string();
    assert_eq!(
        cli_ok(&cluster, &["cluster", "delete-join-token", "--token-id", &asg_id]),
        format!("deleted join token {asg_id}")
    );
    let message = refused_join(&cluster, 10, &forever);
    assert!(message.contains("join token is not valid"), "{message}");
    let again = cli_err(&cluster, &["cluster", "delete-join-token", "--token-id", &asg_id]);
    assert!(again.contains(&format!("no join token has the id \"{asg_id}\"")), "{again}");
    assert!(cli_err(&cluster, &["cluster", "delete-join-token", "--token-id", "nope"])
        .contains("tokenId: not a join token id"));
    let status = cluster.status(1).expect("status");
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(2), "only the one-use join got in");
}
