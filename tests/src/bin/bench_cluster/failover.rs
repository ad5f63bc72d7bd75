//! Failover: how long a cluster goes without a leader, and without writes, after a
//! `kill -9` of its leader.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fleetmesh_tests::{Options, TestCluster};
use serde_json::{json, Value};

use crate::api::Api;
use crate::cluster::{agreed_leader, indices_by_id, start_cluster, term};
use crate::{millis, summary};
use fleetmesh_model::{CreateApplicationInput, CreateApplicationOutput};

/// What one `kill -9` of the leader cost, from the kill.
pub(crate) struct FailoverSample {
    new_leader: Option<Duration>,
    first_write: Option<Duration>,
}

pub(crate) fn failover(runs: usize) -> Value {
    let mut cluster = start_cluster(3, Options::default());
    let api = Api::new(&cluster.admin_token, Duration::from_secs(3));
    let ids = indices_by_id(&cluster);
    let mut samples = Vec::new();
    let first_term = term(&cluster, &api);
    for run in 0..runs {
        let leader = agreed_leader(&cluster, &api);
        // A quiet second, so the run starts from a steady cluster (the restarted node
        // caught up, no election in flight).
        std::thread::sleep(Duration::from_secs(1));
        let leader_index = ids[&leader];
        let sample = kill_leader_and_watch(&mut cluster, &api, leader_index, leader, run);
        eprintln!(
            "failover run {run}: killed node {leader}; new leader after {:?}, first write after {:?}",
            sample.new_leader, sample.first_write
        );
        samples.push(sample);
        cluster.restart(leader_index);
        cluster.wait_alive(3, Duration::from_secs(60));
    }
    let last_term = term(&cluster, &api);
    let leader_ms: Vec<f64> = samples.iter().filter_map(|sample| sample.new_leader.map(millis)).collect();
    let write_ms: Vec<f64> = samples.iter().filter_map(|sample| sample.first_write.map(millis)).collect();
    json!({
        "what": "3 voters on loopback; kill -9 the leader; time from the kill until a survivor's /healthz names a new leader (polled every 10 ms), and until a CreateApplication through a survivor's API succeeds (attempt every 20 ms)",
        "runs": runs,
        "new_leader": summary(&leader_ms),
        "first_write_through_survivor": summary(&write_ms),
        "terms": { "first": first_term, "last": last_term, "elections_per_kill": (last_term.saturating_sub(first_term)) as f64 / runs.max(1) as f64 },
    })
}

pub(crate) fn kill_leader_and_watch(
    cluster: &mut TestCluster,
    api: &Api,
    index: u32,
    leader: u64,
    run: usize,
) -> FailoverSample {
    let survivors: Vec<String> = cluster
        .live_indices()
        .into_iter()
        .filter(|other| *other != index)
        .map(|other| cluster.api_url(other))
        .collect();
    let deadline = Duration::from_secs(20);
    let killed_at = Instant::now();
    cluster.kill9(index);
    let new_leader: Mutex<Option<Duration>> = Mutex::new(None);
    let first_write: Mutex<Option<Duration>> = Mutex::new(None);
    let leader_seen = AtomicBool::new(false);
    let written = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for base in &survivors {
            let (new_leader, leader_seen) = (&new_leader, &leader_seen);
            scope.spawn(move || {
                // Bounded by the deadline.
                while !leader_seen.load(Ordering::SeqCst) && killed_at.elapsed() < deadline {
                    let tick = Instant::now();
                    if api.healthz_leader(base).is_some_and(|seen| seen != leader) {
                        let elapsed = killed_at.elapsed();
                        let mut slot = new_leader.lock().expect("lock");
                        *slot = Some(slot.map_or(elapsed, |earlier: Duration| earlier.min(elapsed)));
                        leader_seen.store(true, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(10).saturating_sub(tick.elapsed()));
                }
            });
        }
        // One attempt every 20 ms, alternating survivors, each in its own thread: an
        // attempt forwarded to the dead leader may hang, and must not delay the next.
        let mut attempt = 0usize;
        while !written.load(Ordering::SeqCst) && killed_at.elapsed() < deadline {
            let base = &survivors[attempt % survivors.len()];
            let name = format!("failover-{run}-{attempt}");
            let (first_write, written) = (&first_write, &written);
            scope.spawn(move || {
                if api
                    .call::<_, CreateApplicationOutput>(
                        base,
                        "CreateApplication",
                        &CreateApplicationInput { application_name: name, compute_platform: None, tags: None },
                    )
                    .is_ok()
                {
                    let elapsed = killed_at.elapsed();
                    let mut slot = first_write.lock().expect("lock");
                    *slot = Some(slot.map_or(elapsed, |earlier: Duration| earlier.min(elapsed)));
                    written.store(true, Ordering::SeqCst);
                }
            });
            attempt += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    FailoverSample {
        new_leader: new_leader.into_inner().expect("lock"),
        first_write: first_write.into_inner().expect("lock"),
    }
}
