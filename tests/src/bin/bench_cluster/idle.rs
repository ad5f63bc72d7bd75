//! Idle footprint: RSS and CPU of the nodes of a cluster left alone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fleetmesh_tests::Options;
use serde_json::{json, Value};

use crate::api::Api;
use crate::cluster::{agreed_leader, indices_by_id, start_cluster, term};

/// Linux's user-visible clock tick (`USER_HZ`), the unit of utime/stime in `/proc/<pid>/stat`.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the man page, utime 14 and stime 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
pub(crate) fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn idle(count: u32, window: Duration) -> Value {
    let cluster = start_cluster(count, Options::default());
    let api = Api::new(&cluster.admin_token, Duration::from_secs(10));
    let leader = agreed_leader(&cluster, &api);
    let status = cluster.status(1).expect("status");
    let ids = indices_by_id(&cluster);
    // Let the start-up work (joins, promotions, first snapshots) finish.
    std::thread::sleep(Duration::from_secs(10));
    let term_before = term(&cluster, &api);
    let pids: BTreeMap<u64, u32> =
        ids.iter().map(|(id, index)| (*id, cluster.pid(*index).expect("running node"))).collect();
    let before: BTreeMap<u64, u64> = pids.iter().map(|(id, pid)| (*id, cpu_ticks(*pid).expect("stat"))).collect();
    let mut rss_samples: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let started = Instant::now();
    // One RSS sample a second over the window; the bench makes no request meanwhile.
    while started.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1));
        for (id, pid) in &pids {
            rss_samples.entry(*id).or_default().push(status_kib(*pid, "VmRSS").expect("status"));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut nodes = Vec::new();
    for (id, pid) in &pids {
        let ticks = cpu_ticks(*pid).expect("stat") - before[id];
        let cpu_percent = ticks as f64 / CLOCK_TICKS_PER_SECOND / elapsed * 100.0;
        let rss = &rss_samples[id];
        let role = status["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|node| node["id"].as_u64() == Some(*id)))
            .and_then(|node| node["role"].as_str())
            .unwrap_or("?");
        nodes.push(json!({
            "id": id,
            "role": if *id == leader { "leader" } else { role },
            "rss_mib_last": (*rss.last().unwrap_or(&0) as f64 / 1024.0 * 10.0).round() / 10.0,
            "rss_mib_max": (*rss.iter().max().unwrap_or(&0) as f64 / 1024.0 * 10.0).round() / 10.0,
            "hwm_mib": (status_kib(*pid, "VmHWM").unwrap_or(0) as f64 / 1024.0 * 10.0).round() / 10.0,
            "cpu_percent_of_one_core": (cpu_percent * 100.0).round() / 100.0,
        }));
    }
    json!({
        "what": format!("{count} idle nodes (3 voters); VmRSS sampled every second and utime+stime over {} s", window.as_secs()),
        "nodes": nodes,
        "terms": { "before": term_before, "after": term(&cluster, &api) },
    })
}
