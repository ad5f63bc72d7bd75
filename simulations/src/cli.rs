//! `fleetmesh sim`: runs one seed or a sweep, prints the result (JSON or text), and on
//! failure the violated invariant, the last events and a one-line replay command.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde_json::{json, Map, Value};

use crate::cluster::SimConfig;
use crate::invariants::{Verdicts, Violation};
use crate::planted::PlantedBug;
use crate::scenarios::{self, ScenarioOutcome};
use crate::{SeedRangeError, SimError};

/// `fleetmesh sim`.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Scenario: leader-partition, rolling-chaos, traffic-chaos, blue-green-chaos,
    /// leader-kill-mid-wave, traffic-shift-chaos; swarm (the discrete-event model of the
    /// swarm), swarm-nodes (every host of a cluster fetching one revision at once with the
    /// node's own swarm code), byzantine-peer (swarm-nodes with a tenth of the hosts
    /// lying: corrupt, withholding or slow).
    #[arg(long, value_name = "NAME")]
    pub scenario: String,
    /// Nodes to simulate.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub nodes: usize,
    /// Seed: decides every latency, fault and timer.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// A sweep A..B (inclusive start, exclusive end) that stops at the first failing seed.
    #[arg(long, value_name = "A..B", conflicts_with = "seed")]
    pub seeds: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Swarm scenarios: revision size in MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub size_mib: u64,
    /// Swarm: model the revision in pieces of this many MiB, one chunk each (coarse,
    /// for very large revisions), instead of 64 KiB chunks in 1 MiB pieces.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..4096))]
    pub piece_mib: Option<u32>,
    /// Swarm: uplink per node in Mbit/s.
    #[arg(long, default_value_t = 1000, value_name = "MBPS")]
    pub uplink_mbps: u64,
    /// Swarm scenarios: downlink per node in Mbit/s (swarm-nodes and byzantine-peer:
    /// uplink and downlink).
    #[arg(long, default_value_t = 1000, value_name = "MBPS")]
    pub downlink_mbps: u64,
    /// Network latency per message in milliseconds.
    #[arg(long, default_value_t = 0.5, value_name = "MS")]
    pub latency_ms: f64,
    /// Probability that a message is lost.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub loss: f64,
    /// Deliberately break the rollout engine to check that the invariants catch it: take
    /// one target too many out of service, or (blue-green-chaos) take blue off the route
    /// while green installs.
    #[arg(long, hide = true)]
    pub planted_bug: bool,
}

/// One finished run.
#[derive(Debug)]
pub struct Report {
    /// The JSON document `sim --json` prints.
    pub json: Value,
    /// True when every invariant held.
    pub passed: bool,
    /// Last events, for failure output.
    pub recent: Vec<String>,
}

/// Runs one scenario for one seed on a fresh paused, single-threaded runtime.
///
/// # Errors
/// Unknown scenario, or a setup failure.
pub fn run_seed(args: &SimArgs, seed: u64) -> Result<Report, SimError> {
    let wall = Instant::now();
    let outcome: ScenarioOutcome = match args.scenario.as_str() {
        "leader-partition" => {
            let runtime = runtime(seed)?;
            runtime.block_on(scenarios::leader_partition::run(cluster_config(args, seed)))?
        }
        "rolling-chaos" | "traffic-chaos" | "leader-kill-mid-wave" => {
            if args.nodes < 1 {
                return Err(SimError::NoNodes { scenario: args.scenario.clone() });
            }
            let runtime = runtime(seed)?;
            let planted = args.planted_bug.then_some(PlantedBug::OneTooMany);
            let config = scenarios::rolling_chaos::deployment_config(cluster_config(args, seed), planted);
            if args.scenario == "rolling-chaos" {
                runtime.block_on(scenarios::rolling_chaos::run(config))?
            } else if args.scenario == "traffic-chaos" {
                runtime.block_on(scenarios::rolling_chaos::run_with_traffic(config))?
            } else {
                runtime.block_on(scenarios::leader_kill_mid_wave::run(config))?
            }
        }
        "blue-green-chaos" => {
            if args.nodes < 2 {
                return Err(SimError::NoGreenFleet { nodes: args.nodes });
            }
            let runtime = runtime(seed)?;
            let planted = args.planted_bug.then_some(PlantedBug::BlueLeavesEarly);
            let config = scenarios::rolling_chaos::deployment_config(cluster_config(args, seed), planted);
            runtime.block_on(scenarios::blue_green_chaos::run(config))?
        }
        "traffic-shift-chaos" => {
            let runtime = runtime(seed)?;
            let config = scenarios::traffic_shift_chaos::config(cluster_config(args, seed));
            runtime.block_on(scenarios::traffic_shift_chaos::run(config))?
        }
        "swarm" => run_swarm(args, seed)?,
        "swarm-nodes" | "byzantine-peer" => {
            let runtime = runtime(seed)?;
            let run = scenarios::swarm_rollout::SwarmRollout {
                size_bytes: args.size_mib << 20,
                liars: args.scenario == "byzantine-peer",
            };
            let mut config = scenarios::rolling_chaos::deployment_config(cluster_config(args, seed), None);
            config.host.downlink_bytes_per_sec = args.downlink_mbps * 125_000;
            let config = scenarios::swarm_rollout::config(config, run);
            runtime.block_on(scenarios::swarm_rollout::run(config, run))?
        }
        other => return Err(SimError::UnknownScenario { name: other.to_string() }),
    };
    let passed = outcome.verdicts.all_ok();
    let mut json = Map::new();
    json.insert("scenario".into(), json!(args.scenario));
    json.insert("seed".into(), json!(seed));
    json.insert("nodes".into(), json!(args.nodes));
    json.insert("virtual_secs".into(), json!(round3(outcome.virtual_secs)));
    json.insert("wall_secs".into(), json!(round3(wall.elapsed().as_secs_f64())));
    json.insert("trace_hash".into(), json!(outcome.trace_hash));
    json.insert("events".into(), json!(outcome.events));
    json.insert("passed".into(), json!(passed));
    json.insert("invariants".into(), json!(outcome.verdicts.clone().into_map()));
    for (key, value) in outcome.figures {
        json.insert(key, value);
    }
    Ok(Report { json: Value::Object(json), passed, recent: outcome.recent })
}

/// Runs the discrete-event swarm simulation (`swarm`, or `byzantine-peer` with a tenth
/// of the peers corrupt) and turns its report into a scenario outcome.
///
/// # Errors
/// Fewer than 2 nodes.
fn run_swarm(args: &SimArgs, seed: u64) -> Result<ScenarioOutcome, SimError> {
    let params = crate::swarm::SwarmParams {
        nodes: args.nodes,
        seed,
        revision_bytes: args.size_mib << 20,
        coarse_piece_bytes: args.piece_mib.map(|mib| mib << 20),
        uplink_bps: args.uplink_mbps * 1_000_000,
        downlink_bps: args.downlink_mbps * 1_000_000,
        latency_ms: args.latency_ms,
        loss: args.loss,
        corrupt_peers: 0,
        tuning: crate::swarm::SwarmTuning {
            // Coarse pieces scale the model's time: the have-set pull, tuned at 100 ms
            // for 1 MiB pieces (about twelve piece transfers at 1 Gbit/s), stays as
            // many piece transfers long. Announcements of fresh pieces still go at once.
            pull_interval_ms: 100.0 * f64::from(args.piece_mib.unwrap_or(1)),
            ..Default::default()
        },
    };
    if args.nodes < 2 {
        return Err(SimError::SwarmTooSmall);
    }
    let report = crate::swarm::run(&params);
    let mut verdicts = Verdicts::default();
    for (name, verdict) in &report.invariants {
        verdicts.record(
            name,
            if verdict == "ok" { Ok(()) } else { Err(Violation::new(verdict.trim_start_matches("violated: "))) },
        );
    }
    let mut figures = std::collections::BTreeMap::new();
    figures.insert("last_node_secs".to_string(), json!(round3(report.last_node_secs)));
    figures.insert("lower_bound_secs".to_string(), json!(round3(report.lower_bound_secs)));
    figures.insert("ratio".to_string(), json!(round3(report.ratio)));
    figures.insert("seed_bytes_served".to_string(), json!(report.seed_bytes_served));
    figures.insert("p50_node_secs".to_string(), json!(round3(report.p50_node_secs)));
    figures.insert("p99_node_secs".to_string(), json!(round3(report.p99_node_secs)));
    figures.insert("revision_bytes".to_string(), json!(params.revision_bytes));
    figures.insert("pieces".to_string(), json!(report.pieces));
    figures.insert("piece_bytes".to_string(), json!(params.coarse_piece_bytes.map_or(1 << 20, u64::from)));
    figures.insert("corrupt_peers".to_string(), json!(params.corrupt_peers));
    Ok(ScenarioOutcome {
        verdicts,
        figures,
        virtual_secs: report.virtual_secs,
        trace_hash: report.trace_hash.clone(),
        events: report.events,
        recent: Vec::new(),
    })
}

/// The cluster configuration of a cluster scenario: the seed, the node count, and the
/// message loss asked for on the command line.
fn cluster_config(args: &SimArgs, seed: u64) -> SimConfig {
    let mut config = SimConfig::new(seed, args.nodes);
    config.link.loss = args.loss;
    config
}

/// A paused, single-threaded runtime whose internal randomness comes from `seed`.
///
/// # Errors
/// The runtime cannot be built.
pub fn runtime(seed: u64) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_time().start_paused(true);
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()));
    // Without tokio_unstable, tokio's randomness cannot be seeded and the seed has no
    // use here (the workspace sets the flag in .cargo/config.toml).
    #[cfg(not(tokio_unstable))]
    let _ = seed;
    builder.build()
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The command that replays one seed.
pub fn replay_command(args: &SimArgs, seed: u64) -> String {
    let mut command = format!("fleetmesh sim --scenario {} --nodes {} --seed {seed}", args.scenario, args.nodes);
    if args.loss > 0.0 {
        command.push_str(&format!(" --loss {}", args.loss));
    }
    if args.planted_bug {
        command.push_str(" --planted-bug");
    }
    command
}

fn parse_range(text: &str) -> Result<std::ops::Range<u64>, SeedRangeError> {
    let (start, end) = text.split_once("..").ok_or_else(|| SeedRangeError::Shape(text.to_string()))?;
    let start: u64 = start.trim().parse().map_err(|_| SeedRangeError::Start(start.to_string()))?;
    let end: u64 = end.trim().parse().map_err(|_| SeedRangeError::End(end.to_string()))?;
    if start >= end {
        return Err(SeedRangeError::Empty(text.to_string()));
    }
    Ok(start..end)
}

/// What a failed run prints: the violated invariant, the last events, and the
/// one-line command that replays the seed.
pub fn failure_text(args: &SimArgs, report: &Report, seed: u64) -> String {
    let violated = report.json["invariants"]
        .as_object()
        .and_then(|map| map.iter().find(|(_, verdict)| *verdict != "ok"))
        .map(|(name, verdict)| format!("{name}: {}", verdict.as_str().unwrap_or_default()))
        .unwrap_or_default();
    let mut text = format!("FAILED seed {seed}: {violated}\nlast events:\n");
    for line in &report.recent {
        text.push_str(&format!("  {line}\n"));
    }
    text.push_str(&format!("replay: {}\n", replay_command(args, seed)));
    text
}

fn print_failure(args: &SimArgs, report: &Report, seed: u64) {
    eprint!("{}", failure_text(args, report, seed));
}

fn print_report(args: &SimArgs, report: &Report) {
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json).unwrap_or_default());
        return;
    }
    let json = &report.json;
    println!(
        "{} seed {} nodes {}: {} in {}s virtual / {}s wall, trace {}",
        json["scenario"].as_str().unwrap_or_default(),
        json["seed"],
        json["nodes"],
        if report.passed { "passed" } else { "FAILED" },
        json["virtual_secs"],
        json["wall_secs"],
        json["trace_hash"].as_str().unwrap_or_default()
    );
    for (name, verdict) in json["invariants"].as_object().into_iter().flatten() {
        println!("  {name}: {}", verdict.as_str().unwrap_or_default());
    }
    for (key, value) in json.as_object().into_iter().flatten() {
        if !matches!(
            key.as_str(),
            "scenario" | "seed" | "nodes" | "virtual_secs" | "wall_secs" | "trace_hash" | "invariants" | "passed"
        ) {
            println!("  {key} = {value}");
        }
    }
}

/// Runs `fleetmesh sim`: one seed, or a sweep that stops at the first failure.
///
/// # Errors
/// An unknown scenario, a bad seed range, or a run that could not be set up (as
/// opposed to one whose invariants failed, which is the `FAILURE` exit code).
pub fn run(args: &SimArgs) -> Result<ExitCode, SimError> {
    match &args.seeds {
        None => {
            let report = run_seed(args, args.seed)?;
            print_report(args, &report);
            if !report.passed {
                print_failure(args, &report, args.seed);
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(range) => {
            let range = parse_range(range)?;
            let total = range.end - range.start;
            for seed in range {
                let report = run_seed(args, seed)?;
                if !report.passed {
                    print_report(args, &report);
                    print_failure(args, &report, seed);
                    return Ok(ExitCode::FAILURE);
                }
                eprintln!("seed {seed}: passed (trace {})", report.json["trace_hash"].as_str().unwrap_or_default());
            }
            println!("{total} seeds passed");
            Ok(ExitCode::SUCCESS)
        }
    }
}
