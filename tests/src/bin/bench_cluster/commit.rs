//! Commit latency and throughput of writes through the leader's (and a follower's) API.

use std::time::{Duration, Instant};

use fleetmesh_tests::Options;
use serde_json::{json, Value};

use crate::api::Api;
use crate::cluster::{agreed_leader, indices_by_id, start_cluster, term};
use crate::{millis, summary};
use fleetmesh_model::{ApplicationInput, CreateApplicationInput, CreateApplicationOutput, GetApplicationOutput};

pub(crate) fn commit(writes: usize, clients: usize) -> Value {
    let cluster = start_cluster(3, Options::default());
    let api = Api::new(&cluster.admin_token, Duration::from_secs(10));
    let ids = indices_by_id(&cluster);
    let leader = agreed_leader(&cluster, &api);
    let leader_url = cluster.api_url(ids[&leader]);
    let follower_url = cluster.api_url(*ids.iter().find(|(id, _)| **id != leader).expect("a follower").1);
    let term_before = term(&cluster, &api);
    let write = |base: &str, name: String| -> f64 {
        let started = Instant::now();
        api.call::<_, CreateApplicationOutput>(
            base,
            "CreateApplication",
            &CreateApplicationInput { application_name: name, compute_platform: None, tags: None },
        )
        .unwrap_or_else(|error| panic!("write failed: {error}"));
        millis(started.elapsed())
    };
    // Warm up connections (HTTP keep-alive, QUIC to the followers).
    for index in 0..20 {
        write(&leader_url, format!("warm-{index}"));
        write(&follower_url, format!("warm-follower-{index}"));
    }
    let sequential: Vec<f64> = (0..writes).map(|index| write(&leader_url, format!("seq-{index}"))).collect();
    let forwarded: Vec<f64> = (0..writes / 2).map(|index| write(&follower_url, format!("forwarded-{index}"))).collect();
    let per_client = writes.div_ceil(clients).max(50);
    let started = Instant::now();
    let concurrent: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let (write, leader_url) = (&write, &leader_url);
                scope.spawn(move || {
                    (0..per_client).map(|index| write(leader_url, format!("c{client}-{index}"))).collect::<Vec<f64>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().expect("client thread")).collect()
    });
    let concurrent_secs = started.elapsed().as_secs_f64();
    let read = |base: &str, operation: &str| -> f64 {
        let started = Instant::now();
        let input = ApplicationInput { application_name: "seq-0".to_string() };
        api.call::<_, GetApplicationOutput>(base, operation, &input)
            .unwrap_or_else(|error| panic!("read failed: {error}"));
        millis(started.elapsed())
    };
    let reads = |base: &str, operation: &str| -> Vec<f64> { (0..writes).map(|_| read(base, operation)).collect() };
    let (leader_reads, follower_reads) = (reads(&leader_url, "GetApplication"), reads(&follower_url, "GetApplication"));
    let consistent_reads = reads(&follower_url, "GetApplication?consistent=true");
    let sequential_secs = sequential.iter().sum::<f64>() / 1000.0;
    json!({
        "what": "CreateApplication through the HTTP API of a 3-voter cluster (one Raft entry per write, fsync'd on every voter)",
        "sequential_via_leader": { "latency": summary(&sequential), "writes_per_sec": (writes as f64 / sequential_secs).round() },
        "sequential_via_follower": { "latency": summary(&forwarded) },
        "concurrent_via_leader": {
            "clients": clients,
            "writes": concurrent.len(),
            "latency": summary(&concurrent),
            "writes_per_sec": (concurrent.len() as f64 / concurrent_secs).round(),
        },
        "reads": {
            "what": "GetApplication, sequential: on the leader; on a follower (this release answers from its own applied state, releases before feature level 3 forward to the leader); on a follower with ?consistent=true (forwarded, leader confirms with a quorum)",
            "via_leader": summary(&leader_reads),
            "via_follower": summary(&follower_reads),
            "via_follower_consistent": summary(&consistent_reads),
        },
        "terms": { "before": term_before, "after": term(&cluster, &api) },
    })
}
