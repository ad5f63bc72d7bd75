//! `bench_cluster`: the cluster and rollout figures of `docs/benchmarks.md`, measured on
//! real `fleetmesh` processes on loopback (the harness of `fleetmesh-tests`).
//!
//! ```text
//! cargo build --release -p fleetmesh
//! cargo run --release -p fleetmesh-tests --bin bench_cluster -- <failover|commit|idle|waves|aws|all> [--json] [--runs N]
//! ```
//!
//! * `failover`: a 3-voter cluster; `kill -9` the leader, then measure (a) until a
//!   survivor's `/healthz` names a new leader (polled every 10 ms on every survivor) and
//!   (b) until a write (`CreateApplication`) through a survivor's API succeeds (a new
//!   attempt every 20 ms, each with a 3 s timeout). The node is restarted and the cluster
//!   settles before the next run.
//! * `commit`: a 3-voter cluster; sequential `CreateApplication` writes through the
//!   leader's API (and through a follower's), then K concurrent clients for throughput.
//! * `idle`: a 5-node cluster (3 voters, 2 agents) left idle; RSS and CPU from `/proc`.
//! * `aws`: `GetDeployment` and `ListDeployments` through CodeDeploy's protocol (SigV4
//!   over HTTPS) and through the REST path (bearer token over HTTPS), 1 and 4 clients.
//! * `waves`: a 5-host `OneAtATime` deployment of a prefetched revision whose appspec has
//!   no hooks (and one whose hooks are `exit 0` scripts); wall time from create to
//!   Succeeded, divided by 5, and where the time goes (from the lifecycle events).
//!
//! Every section also prints the Raft term before and after its quiet phases: a term
//! that moves while nothing is killed is a spurious election.

mod api;
mod aws;
mod cluster;
mod commit;
mod failover;
mod idle;
mod waves;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use aws::aws;
use commit::commit;
use failover::failover;
use idle::idle;
use waves::waves;

const USAGE: &str = "usage: bench_cluster <failover|commit|idle|waves|aws|all> [--json] [--runs N]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json_output = args.iter().any(|arg| arg == "--json");
    let runs = args
        .iter()
        .position(|arg| arg == "--runs")
        .map(|at| args.get(at + 1).and_then(|text| text.parse::<usize>().ok()).expect("--runs takes a number"));
    let what = args.iter().find(|arg| !arg.starts_with("--") && arg.parse::<usize>().is_err()).map(String::as_str);
    let sections: Vec<&str> = match what {
        Some("all") => vec!["failover", "commit", "idle", "waves"],
        Some(one @ ("failover" | "commit" | "idle" | "waves" | "aws")) => vec![one],
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    assert!(
        fleetmesh_tests::binary().exists(),
        "{} is missing: run `cargo build --release -p fleetmesh` first",
        fleetmesh_tests::binary().display()
    );
    let mut report = serde_json::Map::new();
    for section in sections {
        let started = Instant::now();
        let figures = match section {
            "failover" => failover(runs.unwrap_or(10)),
            "commit" => commit(runs.unwrap_or(500), 8),
            "idle" => idle(5, Duration::from_secs(30)),
            "aws" => aws(runs.unwrap_or(2000)),
            _ => waves(runs.unwrap_or(5)),
        };
        eprintln!("[{section} done in {:.0} s]", started.elapsed().as_secs_f64());
        if !json_output {
            println!("== {section}\n{}", serde_json::to_string_pretty(&figures).expect("json"));
        }
        report.insert(section.to_string(), figures);
    }
    if json_output {
        println!("{}", Value::Object(report));
    }
}

// ---------------------------------------------------------------------------------------
// Statistics.

/// Count, min, median, p99, max and mean of samples in milliseconds (nearest rank).
fn summary(samples_ms: &[f64]) -> Value {
    if samples_ms.is_empty() {
        return json!({ "count": 0 });
    }
    let mut sorted = samples_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |quantile: f64| sorted[((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    let round = |value: f64| (value * 10.0).round() / 10.0;
    json!({
        "count": sorted.len(),
        "min_ms": round(sorted[0]),
        "median_ms": round(rank(0.5)),
        "p99_ms": round(rank(0.99)),
        "max_ms": round(sorted[sorted.len() - 1]),
        "mean_ms": round(sorted.iter().sum::<f64>() / sorted.len() as f64),
    })
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
