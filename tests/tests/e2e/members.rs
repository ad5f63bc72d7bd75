//! Member lifecycle: `cluster remove-node` removes dead and live members for good (a
//! removed node is refused at the QUIC handshake and stops), and node certificates
//! expire and renew themselves while the cluster keeps working, and a member restarted
//! with other tags is recorded with them.

use std::time::Duration;

use fleetmesh_tests::{wait_until, Options, TestCluster};
use serde_json::Value;

/// The ids and roles `cluster status` lists, through node `via`.
fn members(cluster: &TestCluster, via: u32) -> Option<Vec<(u64, String)>> {
    let status = cluster.status(via)?;
    status["nodes"]
        .as_array()?
        .iter()
        .map(|node| Some((node["id"].as_u64()?, node["role"].as_str()?.to_string())))
        .collect()
}

/// True once process `pid` has exited (a zombie until the harness reaps it).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |stat| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
}

/// `cluster remove-node ID` (`flag`: `--node-id ID`, the same).
fn remove_as(cluster: &TestCluster, via: u32, id: u64, flag: bool) -> (bool, String) {
    let id = id.to_string();
    let args: &[&str] =
        if flag { &["cluster", "remove-node", "--node-id", &id] } else { &["cluster", "remove-node", &id] };
    let output = cluster.cli(via, args);
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

fn remove(cluster: &TestCluster, via: u32, id: u64) -> (bool, String) {
    remove_as(cluster, via, id, false)
}

/// Five nodes (three voters, two agents). A killed agent and a live agent are removed,
/// then a live voter (it leaves the voters first): `cluster status` no longer lists
/// them, the live removed nodes log that they were removed and exit, and a restart on
/// their data directory refuses to run. Unknown ids, a second removal and the leader
/// itself are refused with a clear message. The cluster keeps taking writes.
#[test]
fn removed_members_are_gone_refused_and_stop() {
    let mut cluster = TestCluster::start(5, Options::default());
    let (voter_index, _) = cluster.follower_voter();
    let listed = members(&cluster, 1).expect("status");
    let agents: Vec<u64> = listed.iter().filter(|(_, role)| role == "agent").map(|(id, _)| *id).collect();
    assert_eq!(agents.len(), 2, "{listed:?}");
    let index_of = |cluster: &TestCluster, id: u64| {
        cluster.live_indices().into_iter().find(|index| cluster.node_id(*index) == id).expect("index of id")
    };
    let (dead_agent, live_agent) = (agents[0], agents[1]);
    let dead_index = index_of(&cluster, dead_agent);
    let live_index = index_of(&cluster, live_agent);
    let voter = cluster.node_id(voter_index);
    let via = cluster.leader_index(1).expect("leader");
    let leader = cluster.node_id(via);
    let via = [1, 2, 3, 4, 5]
        .into_iter()
        .find(|index| ![dead_index, live_index, voter_index, via].contains(index))
        .unwrap_or(via);

    cluster.kill9(dead_index);
    let (ok, out) = remove(&cluster, via, dead_agent);
    assert!(ok, "removing a dead agent: {out}");
    let (ok, out) = remove_as(&cluster, via, dead_agent, true);
    assert!(!ok && out.contains("already removed"), "a second removal (--node-id): {out}");
    let (ok, out) = remove(&cluster, via, 99);
    assert!(!ok && out.contains("not a member"), "an unknown id: {out}");
    let (ok, out) = remove(&cluster, via, leader);
    assert!(!ok && out.contains("is the leader"), "the leader: {out}");

    let live_pid = cluster.pid(live_index).expect("live agent runs");
    let (ok, out) = remove(&cluster, via, live_agent);
    assert!(ok, "removing a live agent: {out}");
    let voter_pid = cluster.pid(voter_index).expect("voter runs");
    let (ok, out) = remove(&cluster, via, voter);
    assert!(ok, "removing a live voter: {out}");

    wait_until("the removed nodes gone from the status", Duration::from_secs(30), || {
        let listed = members(&cluster, via)?;
        let ids: Vec<u64> = listed.iter().map(|(id, _)| *id).collect();
        let voters = listed.iter().filter(|(_, role)| role == "voter").count();
        (ids.len() == 2
            && !ids.contains(&dead_agent)
            && !ids.contains(&live_agent)
            && !ids.contains(&voter)
            && voters == 2)
            .then_some(())
    });
    for (index, pid) in [(live_index, live_pid), (voter_index, voter_pid)] {
        wait_until(&format!("removed node {index} to stop"), Duration::from_secs(60), || exited(pid).then_some(()));
        let log = cluster.log(index);
        assert!(log.contains("was removed from the cluster"), "node {index} does not say it was removed");
        assert!(cluster.nodes[&index].data_dir.join("removed").exists(), "node {index} left no marker");
    }

    // Started again on its data directory, a removed node refuses at once.
    cluster.restart(live_index);
    let pid = cluster.pid(live_index).expect("restarted");
    wait_until("the restarted removed node to refuse", Duration::from_secs(30), || exited(pid).then_some(()));
    assert!(cluster.log(live_index).matches("was removed from the cluster").count() >= 2);

    // The two remaining nodes still take writes.
    let token = cluster.ok(via, &["cluster", "create-join-token", "--description", "after removals"]);
    assert!(token.starts_with("fmj1."), "{token}");
}

fn cert_record(cluster: &TestCluster, index: u32) -> Option<(i64, String)> {
    let text = std::fs::read_to_string(cluster.nodes[&index].data_dir.join("node.json")).ok()?;
    let identity: Value = serde_json::from_str(&text).ok()?;
    Some((identity["cert_validity"]["notAfter"].as_i64()?, identity["cert_pem"].as_str()?.to_string()))
}

/// Three nodes with 10-second certificates: every node's certificate in node.json is
/// replaced (a later notAfter, another PEM) again and again; after 2.5 lifetimes an agent
/// restarted from its node.json (so every handshake is new, on both sides) rejoins the
/// cluster, and a write through it succeeds.
#[test]
fn node_certificates_expire_and_renew_while_the_cluster_works() {
    let options = Options {
        node_flags: vec!["--voters".into(), "2".into(), "--cert-lifetime-secs".into(), "10".into()],
        ..Options::default()
    };
    let mut cluster = TestCluster::start(3, options);
    let first: Vec<(u32, (i64, String))> = [1, 2, 3]
        .into_iter()
        .map(|index| {
            let record = wait_until(&format!("node {index}'s certificate record"), Duration::from_secs(30), || {
                cert_record(&cluster, index)
            });
            (index, record)
        })
        .collect();
    for (index, (not_after, pem)) in &first {
        wait_until(&format!("node {index} renewed twice"), Duration::from_secs(40), || {
            let (now_after, now_pem) = cert_record(&cluster, *index)?;
            (now_after >= not_after + 10 && now_pem != *pem).then_some(())
        });
    }
    std::thread::sleep(Duration::from_secs(5));
    let status = cluster.wait_alive(3, Duration::from_secs(30));
    let agent = status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|node| node["role"] == "agent")
        .and_then(|node| cluster.index_of_address(node["address"].as_str()?))
        .expect("an agent");
    cluster.restart(agent);
    // Its API answers a leader read: forwarded over a new QUIC connection.
    wait_until("the restarted agent to reach the leader", Duration::from_secs(60), || cluster.status(agent));
    let token = cluster.ok(agent, &["cluster", "create-join-token", "--description", "after renewals"]);
    assert!(token.starts_with("fmj1."), "{token}");
    for index in [1, 2, 3] {
        assert!(cluster.log(index).contains("node certificate renewed"), "node {index} logged no renewal");
    }
}

/// The tags of node id `id` as `cluster status --json` shows them.
fn tags_of(cluster: &TestCluster, via: u32, id: u64) -> Option<Value> {
    let status = cluster.status(via)?;
    let node = status["nodes"].as_array()?.iter().find(|node| node["id"].as_u64() == Some(id))?.clone();
    Some(node["tags"].clone())
}

#[test]
fn a_member_restarted_with_other_tags_is_recorded_with_them() {
    // Node 3 restarts with an extra tag: the leader records it from its polls
    // (`UpdateMember`), so groups and routes select it by its new tags.
    let mut cluster = TestCluster::start(3, Options::default());
    let id = cluster.node_id(3);
    assert_eq!(tags_of(&cluster, 1, id), Some(serde_json::json!({"role": "web"})));
    cluster.restart_with(3, &["--tag", "zone=b"]);
    let started = std::time::Instant::now();
    wait_until("the new tag is recorded", Duration::from_secs(30), || {
        (tags_of(&cluster, 1, id)? == serde_json::json!({"role": "web", "zone": "b"})).then_some(())
    });
    println!("a restart's new tag was recorded {} ms after the restart", started.elapsed().as_millis());
}
