//! `bench_cluster`: the cluster and rollout figures of `docs/benchmarks.md`, measured on
//! real `fleetmesh` processes on loopback (the harness of `fleetmesh-tests`).
//!
//! ```text
//! cargo build --release -p fleetmesh
//! cargo run --release -p fleetmesh-tests --bin bench_cluster -- <failover|commit|idle|waves|all> [--json] [--runs N]
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
//! * `waves`: a 5-host `OneAtATime` deployment of a prefetched revision whose appspec has
//!   no hooks (and one whose hooks are `exit 0` scripts); wall time from create to
//!   Succeeded, divided by 5, and where the time goes (from the lifecycle events).
//!
//! Every section also prints the Raft term before and after its quiet phases: a term
//! that moves while nothing is killed is a spurious election.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fleetmesh_tests::{wait_until, write_bundle, Options, TestCluster};
use serde_json::{json, Value};

const USAGE: &str = "usage: bench_cluster <failover|commit|idle|waves|all> [--json] [--runs N]";

/// Linux's user-visible clock tick (`USER_HZ`), the unit of utime/stime in `/proc/<pid>/stat`.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

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
        Some(one @ ("failover" | "commit" | "idle" | "waves")) => vec![one],
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

// ---------------------------------------------------------------------------------------
// The HTTP API, called directly (no CLI process per call, so the figures are the node's).

struct Api {
    agent: ureq::Agent,
    token: String,
}

impl Api {
    fn new(token: &str, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_millis(500)))
            .timeout_global(Some(timeout))
            .build()
            .into();
        Self { agent, token: token.to_string() }
    }

    /// `POST /v1/deploy/<operation>`; the JSON answer, or the error text.
    fn operation(&self, base: &str, operation: &str, body: &Value) -> Result<Value, String> {
        let response = self
            .agent
            .post(&format!("{base}/v1/deploy/{operation}"))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body.to_string());
        Self::finish(response)
    }

    fn get(&self, base: &str, path: &str) -> Result<Value, String> {
        let response =
            self.agent.get(&format!("{base}{path}")).header("Authorization", &format!("Bearer {}", self.token)).call();
        Self::finish(response)
    }

    fn finish(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, String> {
        let mut response = response.map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(|error| error.to_string())?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(format!("HTTP {status}: {}", value["error"].as_str().unwrap_or(&text)))
        }
    }

    /// The leader a node's `/healthz` names (its own Raft view), if any.
    fn healthz_leader(&self, base: &str) -> Option<u64> {
        self.get(base, "/healthz").ok()?["leader"].as_u64()
    }
}

// ---------------------------------------------------------------------------------------
// Cluster helpers.

fn voters(status: &Value) -> usize {
    status["nodes"].as_array().map_or(0, |nodes| nodes.iter().filter(|node| node["role"] == "voter").count())
}

/// Starts `count` nodes and waits for `min(count, 3)` voters.
fn start_cluster(count: u32, options: Options) -> TestCluster {
    let cluster = TestCluster::start(count, options);
    let want = count.min(3) as usize;
    wait_until("the voters", Duration::from_secs(60), || cluster.status(1).filter(|status| voters(status) == want));
    cluster
}

/// Node index by node id, from `cluster status`.
fn indices_by_id(cluster: &TestCluster) -> BTreeMap<u64, u32> {
    cluster.nodes.keys().map(|index| (cluster.node_id(*index), *index)).collect()
}

/// Waits until every running node's `/healthz` names the same leader, and returns it.
fn agreed_leader(cluster: &TestCluster, api: &Api) -> u64 {
    wait_until("every node to name the same leader", Duration::from_secs(60), || {
        let seen: Vec<Option<u64>> =
            cluster.live_indices().iter().map(|index| api.healthz_leader(&cluster.api_url(*index))).collect();
        let first = (*seen.first()?)?;
        seen.iter().all(|leader| *leader == Some(first)).then_some(first)
    })
}

/// The Raft term as the leader reports it.
fn term(cluster: &TestCluster, api: &Api) -> u64 {
    let via = cluster.live_indices()[0];
    api.get(&cluster.api_url(via), "/v1/cluster").ok().and_then(|status| status["term"].as_u64()).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Failover.

/// What one `kill -9` of the leader cost, from the kill.
struct FailoverSample {
    new_leader: Option<Duration>,
    first_write: Option<Duration>,
}

fn failover(runs: usize) -> Value {
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

fn kill_leader_and_watch(cluster: &mut TestCluster, api: &Api, index: u32, leader: u64, run: usize) -> FailoverSample {
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
                if api.operation(base, "CreateApplication", &json!({ "applicationName": name })).is_ok() {
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

// ---------------------------------------------------------------------------------------
// Commit latency and throughput.

fn commit(writes: usize, clients: usize) -> Value {
    let cluster = start_cluster(3, Options::default());
    let api = Api::new(&cluster.admin_token, Duration::from_secs(10));
    let ids = indices_by_id(&cluster);
    let leader = agreed_leader(&cluster, &api);
    let leader_url = cluster.api_url(ids[&leader]);
    let follower_url = cluster.api_url(*ids.iter().find(|(id, _)| **id != leader).expect("a follower").1);
    let term_before = term(&cluster, &api);
    let write = |base: &str, name: String| -> f64 {
        let started = Instant::now();
        api.operation(base, "CreateApplication", &json!({ "applicationName": name }))
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
        "terms": { "before": term_before, "after": term(&cluster, &api) },
    })
}

// ---------------------------------------------------------------------------------------
// Idle footprint.

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the man page, utime 14 and stime 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn idle(count: u32, window: Duration) -> Value {
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

// ---------------------------------------------------------------------------------------
// Rollout control-plane overhead.

const NO_HOOKS: &str = "version: 0.0\nos: linux\n";

fn true_hooks_appspec() -> String {
    let events = ["ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"];
    let hooks: String =
        events.iter().map(|event| format!("  {event}:\n    - location: hooks/true.sh\n      timeout: 30\n")).collect();
    format!("version: 0.0\nos: linux\nhooks:\n{hooks}")
}

/// Milliseconds of a `UnixMillis` JSON field.
fn at(value: &Value) -> Option<f64> {
    value.as_u64().map(|ms| ms as f64)
}

/// Where one deployment's time went, from its record and its targets' lifecycle events.
struct WaveBreakdown {
    /// create → the first event of the first target starts.
    head_ms: f64,
    /// Per target: first event start → last event end (the agent's work).
    agent_ms: Vec<f64>,
    /// Between targets: one target's last event end → the next target's first start.
    handoff_ms: Vec<f64>,
    /// The last target's last event end → the deployment completes.
    tail_ms: f64,
    /// Per lifecycle event name: start → end, every target.
    event_ms: BTreeMap<String, Vec<f64>>,
}

fn breakdown(cluster: &TestCluster, api: &Api, info: &Value) -> Option<WaveBreakdown> {
    let id = info["deploymentId"].as_str()?;
    let base = cluster.api_url(1);
    let mut spans = Vec::new();
    let mut event_ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for target in info["targetWaves"].as_array()? {
        let answer = api
            .operation(&base, "GetDeploymentTarget", &json!({ "deploymentId": id, "targetId": target["targetId"] }))
            .ok()?;
        let events = answer["deploymentTarget"]["instanceTarget"]["lifecycleEvents"].as_array()?.clone();
        let start = events.iter().filter_map(|event| at(&event["startTime"])).fold(f64::MAX, f64::min);
        let end = events.iter().filter_map(|event| at(&event["endTime"])).fold(0.0, f64::max);
        for event in &events {
            if let (Some(name), Some(start), Some(end)) =
                (event["lifecycleEventName"].as_str(), at(&event["startTime"]), at(&event["endTime"]))
            {
                event_ms.entry(name.to_string()).or_default().push(end - start);
            }
        }
        spans.push((start, end));
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let created = at(&info["createTime"])?;
    let completed = at(&info["completeTime"])?;
    Some(WaveBreakdown {
        head_ms: spans.first()?.0 - created,
        agent_ms: spans.iter().map(|(start, end)| end - start).collect(),
        handoff_ms: spans.windows(2).map(|pair| pair[1].0 - pair[0].1).collect(),
        tail_ms: completed - spans.last()?.1,
        event_ms,
    })
}

/// Pushes a bundle with `appspec` and version `version`, prefetches it to the group, waits.
fn prepare_revision(cluster: &TestCluster, work: &std::path::Path, appspec: &str, version: usize) -> String {
    let dir = work.join(format!("v{version}"));
    write_bundle(
        &dir,
        &[
            ("appspec.yml", appspec, 0o644),
            ("VERSION", &format!("{version}\n"), 0o644),
            ("hooks/true.sh", "#!/bin/sh\nexit 0\n", 0o755),
        ],
    );
    let revision = cluster.push(1, "bench", &dir);
    cluster.ok(1, &["deploy", "prefetch", "--revision", &revision, "--deployment-group-name", "waves", "--wait"]);
    revision
}

/// Creates a deployment through the API and polls it every 10 ms until it ends.
fn deploy_and_time(cluster: &TestCluster, api: &Api, revision: &str) -> (Duration, Value) {
    let base = cluster.api_url(1);
    let body = json!({ "applicationName": "bench", "deploymentGroupName": "waves", "revisionId": revision });
    let started = Instant::now();
    let created = api.operation(&base, "CreateDeployment", &body).expect("create deployment");
    let id = created["deploymentId"].as_str().expect("deployment id").to_string();
    // Bounded by the deadline; not `wait_until`, whose 100 ms period would blur the figure.
    let deadline = started + Duration::from_secs(120);
    loop {
        let info = api.operation(&base, "GetDeployment", &json!({ "deploymentId": id })).ok();
        let info = info.map(|info| info["deploymentInfo"].clone()).unwrap_or_default();
        if matches!(info["status"].as_str(), Some("Succeeded" | "Failed" | "Stopped")) {
            return (started.elapsed(), info);
        }
        assert!(Instant::now() < deadline, "deployment {id} did not end within 120 s: {info}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn waves(runs: usize) -> Value {
    const HOSTS: u32 = 5;
    let cluster = start_cluster(HOSTS, Options::default());
    let api = Api::new(&cluster.admin_token, Duration::from_secs(30));
    cluster.ok(1, &["deploy", "create-application", "--application-name", "bench"]);
    cluster.ok(
        1,
        &[
            "deploy",
            "create-deployment-group",
            "--application-name",
            "bench",
            "--deployment-group-name",
            "waves",
            "--tag",
            "role=web",
            "--deployment-config-name",
            "CodeDeployDefault.OneAtATime",
        ],
    );
    let work = tempfile::tempdir().expect("tempdir");
    let mut version = 0;
    let mut variants = serde_json::Map::new();
    let term_before = term(&cluster, &api);
    for (name, appspec) in [("no_hooks", NO_HOOKS.to_string()), ("exit_0_hooks", true_hooks_appspec())] {
        let (mut per_wave, mut recorded_per_wave) = (Vec::new(), Vec::new());
        let (mut heads, mut agents, mut handoffs, mut tails) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut events: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for run in 0..runs {
            version += 1;
            let revision = prepare_revision(&cluster, work.path(), &appspec, version);
            let (wall, info) = deploy_and_time(&cluster, &api, &revision);
            assert_eq!(info["status"], "Succeeded", "{info}");
            per_wave.push(millis(wall) / f64::from(HOSTS));
            if let (Some(created), Some(completed)) = (at(&info["createTime"]), at(&info["completeTime"])) {
                recorded_per_wave.push((completed - created) / f64::from(HOSTS));
            }
            if let Some(parts) = breakdown(&cluster, &api, &info) {
                heads.push(parts.head_ms);
                agents.extend(parts.agent_ms);
                handoffs.extend(parts.handoff_ms);
                tails.push(parts.tail_ms);
                for (event, durations) in parts.event_ms {
                    events.entry(event).or_default().extend(durations);
                }
            }
            eprintln!("waves {name} run {run}: {:.0} ms for {HOSTS} waves", millis(wall));
        }
        variants.insert(
            name.to_string(),
            json!({
                "per_wave_wall": summary(&per_wave),
                "per_wave_recorded": summary(&recorded_per_wave),
                "create_to_first_event": summary(&heads),
                "agent_per_target": summary(&agents),
                "handoff_between_targets": summary(&handoffs),
                "last_event_to_complete": summary(&tails),
                "lifecycle_event_median_ms": events.iter().map(|(event, durations)| (event.clone(), summary(durations)["median_ms"].clone())).collect::<serde_json::Map<_, _>>(),
            }),
        );
    }
    json!({
        "what": format!("{HOSTS}-host OneAtATime deployment of a prefetched revision; wall time from CreateDeployment to Succeeded (GetDeployment polled every 10 ms) / {HOSTS}; 'recorded' uses the deployment's createTime/completeTime; the breakdown uses the targets' lifecycle event times (ms)"),
        "runs_per_variant": runs,
        "variants": variants,
        "terms": { "before": term_before, "after": term(&cluster, &api) },
    })
}
