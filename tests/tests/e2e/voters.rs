//! Membership robustness: a voter replaced while it was down comes back as a clean
//! agent, and a joiner waits for a seed that is not up yet.

use std::time::Duration;

use fleetmesh_tests::{wait_until, Options, TestCluster};
use serde_json::Value;

fn voters(status: &Value) -> usize {
    status["nodes"].as_array().map_or(0, |nodes| nodes.iter().filter(|node| node["role"] == "voter").count())
}

fn entry(status: &Value, address: &str) -> Option<Value> {
    status["nodes"].as_array()?.iter().find(|node| node["address"] == address).cloned()
}

/// A gauge of node `index`'s own `/metrics` (its Raft view, not the leader's).
fn gauge(cluster: &TestCluster, index: u32, name: &str) -> Option<u64> {
    let text = cluster
        .http()
        .get(&format!("{}/metrics", cluster.api_url(index)))
        .header("Authorization", &format!("Bearer {}", cluster.admin_token))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    let line = text.lines().find(|line| line.starts_with(&format!("{name}{{")))?;
    line.rsplit(' ').next()?.parse().ok()
}

/// Five nodes, grace 3 s. A non-leader voter is killed and replaced by an agent; when it
/// comes back, its own Raft log still lists it as a voter. It must notice that it is an
/// agent now and reset its Raft state: its own term and log drop to 0 and stay there
/// (without the reset it campaigns forever and its term climbs). The cluster status shows
/// it alive as an agent with three voters. Then the leader is killed: the survivors elect
/// a new leader, and the autopilot promotes the reset node (the lowest-id live agent) to
/// restore three live voters.
#[test]
fn a_voter_replaced_while_down_comes_back_as_an_agent_and_can_be_promoted_again() {
    let options = Options { node_flags: vec!["--voter-grace-secs".into(), "3".into()], ..Options::default() };
    let mut cluster = TestCluster::start(5, options);
    let (victim_index, address) = cluster.follower_voter();
    cluster.kill9(victim_index);
    let via = *cluster.live_indices().first().expect("a live node");
    wait_until("the dead voter replaced", Duration::from_secs(60), || {
        let status = cluster.status(via)?;
        (voters(&status) == 3 && entry(&status, &address)?["role"] == "agent").then_some(())
    });

    cluster.restart(victim_index);
    wait_until("the returning node to reset its Raft state", Duration::from_secs(60), || {
        let reset = gauge(&cluster, victim_index, "fleetmesh_raft_term")? == 0
            && gauge(&cluster, victim_index, "fleetmesh_raft_last_log_index")? == 0;
        reset.then_some(())
    });
    assert!(cluster.log(victim_index).contains("resetting its Raft state"), "the reset is not logged");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(gauge(&cluster, victim_index, "fleetmesh_raft_term"), Some(0), "the reset node campaigns again");
    let status = cluster.status(via).expect("status");
    let returned = entry(&status, &address).expect("the returning node is still a member");
    assert_eq!((returned["role"].as_str(), returned["health"].as_str()), (Some("agent"), Some("alive")), "{status}");
    assert_eq!(voters(&status), 3, "{status}");

    let leader_index = cluster.leader_index(via).expect("a leader");
    let old_leader = cluster.status(via).expect("status")["leader"].clone();
    cluster.kill9(leader_index);
    let survivor = *cluster.live_indices().first().expect("a live node");
    wait_until("a new leader", Duration::from_secs(30), || {
        let status = cluster.status(survivor)?;
        (!status["leader"].is_null() && status["leader"] != old_leader).then_some(())
    });
    let status = wait_until("three live voters, the reset node among them", Duration::from_secs(90), || {
        let status = cluster.status(survivor)?;
        let live_voters = status["nodes"]
            .as_array()?
            .iter()
            .filter(|node| node["role"] == "voter" && node["health"] == "alive")
            .count();
        (live_voters == 3 && entry(&status, &address)?["role"] == "voter").then_some(status)
    });
    assert_eq!(voters(&status), 3, "{status}");
}

/// A joiner started while its seed is down retries (printing why) instead of exiting,
/// and joins once the seed is back; the cluster then counts two live nodes.
#[test]
fn a_joiner_waits_for_a_seed_that_is_not_up_yet() {
    let mut cluster = TestCluster::start(1, Options::default());
    cluster.kill9(1);
    let seed = cluster.nodes[&1].listen;
    let token = cluster.join_token.clone();
    cluster.add_node(2, Some((seed, token)));
    wait_until("the joiner to report a retry", Duration::from_secs(30), || {
        cluster.log(2).contains("retrying for up to").then_some(())
    });
    cluster.restart(1);
    let status = cluster.wait_alive(2, Duration::from_secs(60));
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(2), "{status}");
}
