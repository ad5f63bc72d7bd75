//! The typed API seen from outside: which node answers an operation (voters read their
//! own applied state; agents and writes go to the leader), errors that name the field,
//! and timestamps in epoch seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleetmesh_tests::{wait_until, Options, TestCluster};
use serde_json::{json, Value};

const ANSWERED: &str = "fleetmesh_api_operations_answered_total";
const FORWARDED: &str = "fleetmesh_api_operations_forwarded_total";

/// Node indices by role: (leader, a follower voter, an agent).
fn roles(cluster: &TestCluster) -> (u32, u32, u32) {
    let status = wait_until("3 voters, 1 agent, feature level 3 or above", Duration::from_secs(60), || {
        cluster.status(1).filter(|status| {
            let nodes = status["nodes"].as_array().map(Vec::as_slice).unwrap_or_default();
            nodes.iter().filter(|node| node["role"] == "voter").count() == 3
                && nodes.iter().filter(|node| node["role"] == "agent").count() == 1
                && status["feature_level"].as_u64().is_some_and(|level| level >= 3)
        })
    });
    let index = |node: &Value| cluster.index_of_address(node["address"].as_str().expect("address")).expect("index");
    let nodes = status["nodes"].as_array().expect("nodes");
    let leader = nodes.iter().find(|node| node["id"] == status["leader"]).map(index).expect("leader");
    let follower =
        nodes.iter().find(|node| node["role"] == "voter" && node["id"] != status["leader"]).map(index).expect("voter");
    let agent = nodes.iter().find(|node| node["role"] == "agent").map(index).expect("agent");
    (leader, follower, agent)
}

/// How node `index`'s counters `ANSWERED` and `FORWARDED` move while `call` runs.
fn counted(cluster: &TestCluster, index: u32, call: impl FnOnce() -> (u16, Value)) -> (u16, Value, u64, u64) {
    let before = (cluster.metric(index, ANSWERED).unwrap_or(0), cluster.metric(index, FORWARDED).unwrap_or(0));
    let (status, body) = call();
    let after = (cluster.metric(index, ANSWERED).unwrap_or(0), cluster.metric(index, FORWARDED).unwrap_or(0));
    (status, body, after.0 - before.0, after.1 - before.1)
}

#[test]
fn voters_answer_reads_and_everything_else_goes_to_the_leader_typed() {
    let cluster = TestCluster::start(4, Options::default());
    let (_leader, follower, agent) = roles(&cluster);
    let create = json!({"applicationName": "typed"});

    // A write through a follower voter is forwarded to the leader.
    let (status, body, here, forwarded) =
        counted(&cluster, follower, || cluster.api_post(follower, "/v1/deploy/CreateApplication", &create));
    assert_eq!(status, 200, "{body}");
    assert!(body["applicationId"].as_str().is_some_and(|id| id.len() == 36), "{body}");
    assert_eq!((here, forwarded), (0, 1));

    // A read on the follower voter is answered from its own applied state (once it has
    // applied the write: a voter's reads trail the leader by the replication in flight).
    let get = json!({"applicationName": "typed"});
    let body = wait_until("the follower has applied the application", Duration::from_secs(10), || {
        let (status, body, here, forwarded) =
            counted(&cluster, follower, || cluster.api_post(follower, "/v1/deploy/GetApplication", &get));
        assert_eq!((here, forwarded), (1, 0), "a voter answers reads itself");
        (status == 200).then_some(body)
    });
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs_f64();
    let created = body["application"]["createTime"].as_f64().expect("createTime");
    assert!((now - created).abs() < 600.0, "createTime {created} is epoch seconds (now {now})");
    assert_eq!(body["application"]["computePlatform"], "Server", "{body}");

    // An agent has no state: it forwards reads; a consistent read goes to the leader.
    let (status, body, here, forwarded) =
        counted(&cluster, agent, || cluster.api_post(agent, "/v1/deploy/GetApplication", &get));
    assert_eq!((status, here, forwarded), (200, 0, 1), "{body}");
    assert_eq!(body["application"]["applicationName"], "typed");
    let (status, body, here, forwarded) =
        counted(&cluster, follower, || cluster.api_post(follower, "/v1/deploy/GetApplication?consistent=true", &get));
    assert_eq!((status, here, forwarded), (200, 0, 1), "{body}");

    // The cluster view is the leader's, wherever it is asked.
    let cluster_view = cluster.status(agent).expect("cluster status through the agent");
    assert_eq!(cluster_view["nodes"].as_array().map(Vec::len), Some(4), "{cluster_view}");
}

#[test]
fn bad_requests_are_refused_where_they_arrive_with_the_field_named() {
    let cluster = TestCluster::start(4, Options::default());
    let (leader, follower, agent) = roles(&cluster);
    for via in [leader, follower, agent] {
        let (status, body, here, forwarded) = counted(&cluster, via, || {
            cluster.api_post(via, "/v1/deploy/CreateDeploymentGroup", &json!({"applicationName": "app"}))
        });
        let error = body["error"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{body}");
        assert!(error.contains("deploymentGroupName"), "the error names the missing field: {error}");
        assert_eq!((here, forwarded), (0, 0), "a request that does not parse goes nowhere");

        let (status, body) = cluster.api_post(
            via,
            "/v1/deploy/CreateApplication",
            &json!({"applicationName": "a", "computePlatform": "VAX"}),
        );
        let error = body["error"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{body}");
        assert!(error.contains("VAX") && error.contains("Lambda"), "the error lists the choices: {error}");

        let (status, body) = cluster.api_post(via, "/v1/deploy/LaunchRockets", &json!({}));
        assert_eq!(status, 404, "{body}");
        assert!(
            body["error"].as_str().is_some_and(|error| error.contains("unknown operation LaunchRockets")),
            "{body}"
        );
    }
    // Nothing was created by any of them.
    let (status, body) = cluster.api_post(follower, "/v1/deploy/ListApplications?consistent=true", &json!({}));
    assert_eq!((status, body["applications"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
}
