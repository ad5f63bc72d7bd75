//! Cluster helpers: starting a cluster, its leader as every node sees it, the Raft term.

use std::collections::BTreeMap;
use std::time::Duration;

use fleetmesh_tests::{wait_until, Options, TestCluster};
use serde_json::Value;

use crate::api::Api;

pub(crate) fn voters(status: &Value) -> usize {
    status["nodes"].as_array().map_or(0, |nodes| nodes.iter().filter(|node| node["role"] == "voter").count())
}

/// Starts `count` nodes and waits for `min(count, 3)` voters. The API is plain HTTP on
/// loopback (`--api-plaintext`), so the figures stay comparable with earlier releases'.
pub(crate) fn start_cluster(count: u32, mut options: Options) -> TestCluster {
    options.node_flags.push("--api-plaintext".to_string());
    let cluster = TestCluster::start(count, options);
    let want = count.min(3) as usize;
    wait_until("the voters", Duration::from_secs(60), || cluster.status(1).filter(|status| voters(status) == want));
    cluster
}

/// Node index by node id, from `cluster status`.
pub(crate) fn indices_by_id(cluster: &TestCluster) -> BTreeMap<u64, u32> {
    cluster.nodes.keys().map(|index| (cluster.node_id(*index), *index)).collect()
}

/// Waits until every running node's `/healthz` names the same leader, and returns it.
pub(crate) fn agreed_leader(cluster: &TestCluster, api: &Api) -> u64 {
    wait_until("every node to name the same leader", Duration::from_secs(60), || {
        let seen: Vec<Option<u64>> =
            cluster.live_indices().iter().map(|index| api.healthz_leader(&cluster.api_url(*index))).collect();
        let first = (*seen.first()?)?;
        seen.iter().all(|leader| *leader == Some(first)).then_some(first)
    })
}

/// The Raft term as the leader reports it.
pub(crate) fn term(cluster: &TestCluster, api: &Api) -> u64 {
    let via = cluster.live_indices()[0];
    api.get(&cluster.api_url(via), "/v1/cluster").ok().and_then(|status| status["term"].as_u64()).unwrap_or(0)
}
