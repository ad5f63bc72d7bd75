//! Scenario tests for the swarm simulation: small, fast runs of the real picker.

use std::time::Instant;

use super::*;

/// A small swarm: `nodes` nodes, 64 MiB, invariants checked after every event.
fn small(nodes: usize, seed: u64) -> SwarmParams {
    SwarmParams {
        nodes,
        seed,
        revision_bytes: 64 << 20,
        tuning: SwarmTuning { check_every_event: true, ..SwarmTuning::default() },
        ..SwarmParams::default()
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_bit_for_bit() {
    // Two runs of 20 nodes with seed 42 produce the same trace hash and figures; seed
    // 43 produces a different trace.
    let first = run(&small(20, 42));
    let second = run(&small(20, 42));
    assert_eq!(first, second);
    assert_ne!(first.trace_hash, run(&small(20, 43)).trace_hash);
}

#[test]
fn a_small_swarm_completes_close_to_the_bound() {
    // 10 nodes, 64 MiB over 1 Gbit/s links: every receiver completes, every invariant
    // holds, and the last one finishes within twice the bandwidth lower bound.
    let report = run(&small(10, 7));
    assert!(report.is_ok(), "{:?}", report.invariants);
    assert!(report.ratio < 2.0, "ratio {}", report.ratio);
    assert!(report.ratio >= 1.0, "faster than the lower bound: {}", report.ratio);
    assert!(report.seed_bytes_served >= 64 << 20, "the seed must send every byte at least once");
}

#[test]
fn coarse_pieces_model_the_same_swarm_with_fewer_pieces() {
    // 20 nodes, 256 MiB. Pieces of one 1 MiB chunk each finish within 2 % of the fine
    // model (chunks around 64 KiB in pieces of at most 1 MiB): the picker sees pieces,
    // not chunks. Pieces of 4 MiB are 64, every invariant holds, and the tail grows (a
    // node waits for whole 4 MiB pieces) but stays under 1.5 times the bound.
    let fine = SwarmParams { revision_bytes: 256 << 20, ..small(20, 3) };
    let one = SwarmParams { coarse_piece_bytes: Some(1 << 20), ..fine.clone() };
    let four = SwarmParams { coarse_piece_bytes: Some(4 << 20), ..fine.clone() };
    let (fine, one, four) = (run(&fine), run(&one), run(&four));
    assert_eq!((one.pieces, four.pieces), (256, 64));
    assert!(one.is_ok() && four.is_ok(), "{:?} {:?}", one.invariants, four.invariants);
    assert!((one.ratio - fine.ratio).abs() < fine.ratio * 0.02, "fine {} coarse {}", fine.ratio, one.ratio);
    assert!(four.ratio >= 1.0 && four.ratio < 1.5, "4 MiB pieces: ratio {}", four.ratio);
}

#[test]
fn corrupt_peers_are_banned_and_everyone_still_gets_verified_chunks() {
    // 30 nodes of which 3 are byzantine (they advertise every piece and serve garbage):
    // every honest receiver completes with exactly the manifest's chunks, every node
    // that received garbage banned its sender and never asked it again.
    let report = run(&SwarmParams { corrupt_peers: 3, ..small(30, 11) });
    assert!(report.is_ok(), "{:?}", report.invariants);
    for name in ["receivers_complete", "stored_chunks_verified", "corrupt_peers_banned"] {
        assert_eq!(report.invariants[name], "ok");
    }
}

#[test]
fn a_lossy_network_still_completes() {
    // 10 % of piece responses lost: the requesters time out, back off, re-fetch
    // elsewhere, and every receiver still completes with verified chunks.
    let report = run(&SwarmParams { loss: 0.1, ..small(15, 5) });
    assert!(report.is_ok(), "{:?}", report.invariants);
    assert!(report.ratio > 1.0);
}

#[test]
fn the_lower_bound_is_s_over_u_for_equal_links() {
    // 1 GiB at 1 Gbit/s: 8.589934592 s whatever N, since every node uploads equally.
    for nodes in [2, 10, 1000] {
        let bound = lower_bound_secs(&SwarmParams { nodes, ..SwarmParams::default() });
        assert!((bound - 8.589934592).abs() < 1e-9, "{nodes}: {bound}");
    }
    let slow_seed = SwarmParams { nodes: 1, uplink_bps: 500_000_000, ..SwarmParams::default() };
    assert!((lower_bound_secs(&slow_seed) - 17.179869184).abs() < 1e-9);
}

/// A number from the environment, for tuning sweeps of the measurement.
fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|text| text.parse().ok())
}

/// The defaults, overridden by `SWARM_*` variables (tuning sweeps only).
fn params_from_env(nodes: usize) -> SwarmParams {
    let mut params = SwarmParams { nodes, ..SwarmParams::default() };
    let tuning = &mut params.tuning;
    let download = &mut tuning.download;
    if let Some(mib) = env_number::<u64>("SWARM_MIB") {
        params.revision_bytes = mib << 20;
    }
    if let Some(seed) = env_number("SWARM_SEED") {
        params.seed = seed;
    }
    if let Some(loss) = env_number("SWARM_LOSS") {
        params.loss = loss;
    }
    if let Some(corrupt) = env_number("SWARM_CORRUPT") {
        params.corrupt_peers = corrupt;
    }
    if let Some(neighbours) = env_number("SWARM_K") {
        tuning.neighbours = neighbours;
    }
    if let Some(flag) = env_number::<u8>("SWARM_SEED_ALL") {
        tuning.seed_in_every_view = flag != 0;
    }
    if let Some(flag) = env_number::<u8>("SWARM_ANNOUNCE") {
        tuning.announce_pieces = flag != 0;
    }
    if let Some(flag) = env_number::<u8>("SWARM_SUPER") {
        tuning.super_seeding = flag != 0;
    }
    if let Some(flag) = env_number::<u8>("SWARM_NEWEST") {
        tuning.newest_first = flag != 0;
    }
    if let Some(pull) = env_number("SWARM_PULL_MS") {
        tuning.pull_interval_ms = pull;
    }
    if let Some(uploads) = env_number("SWARM_UPLOADS") {
        tuning.uploads_in_flight_max = uploads;
    }
    if let Some(per_peer) = env_number("SWARM_PER_PEER") {
        download.requests_per_peer_max = per_peer;
    }
    if let Some(total) = env_number("SWARM_TOTAL") {
        download.requests_in_flight_max = total;
    }
    if let Some(busy) = env_number("SWARM_BUSY_MAX_MS") {
        download.busy_backoff_max = std::time::Duration::from_millis(busy);
    }
    if let Some(uploads) = env_number("SWARM_SEED_UPLOADS") {
        tuning.seed_uploads_in_flight_max = uploads;
    }
    if let Some(busy) = env_number("SWARM_BUSY_MS") {
        download.busy_backoff = std::time::Duration::from_millis(busy);
    }
    params
}

/// The measurement the issue asks for: 1 GiB to 10, 100 and 1000 nodes with the
/// defaults. Slow (tens of seconds); run with
/// `cargo test --release -p fleetmesh-sim swarm::tests::measure -- --ignored --nocapture`
/// (`SWARM_NODES=10,100` and the other `SWARM_*` variables of `params_from_env`
/// override the defaults for tuning sweeps).
#[test]
#[ignore = "measurement, tens of seconds"]
fn measure() {
    let nodes_list: Vec<usize> = std::env::var("SWARM_NODES")
        .ok()
        .map(|text| text.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 100, 1000]);
    let mut times = Vec::new();
    for nodes in nodes_list {
        let params = params_from_env(nodes);
        let wall = Instant::now();
        let report = run(&params);
        let wall_secs = wall.elapsed().as_secs_f64();
        println!(
            "N={nodes:5} last={:.3}s p50={:.3}s p99={:.3}s seed_done={:.3}s bound={:.3}s ratio={:.3} seed_served={:.3}xS moved={:.3}xS busy={} events={} wall={wall_secs:.1}s ok={} {:?}",
            report.last_node_secs,
            report.p50_node_secs,
            report.p99_node_secs,
            report.seed_all_sent_secs,
            report.lower_bound_secs,
            report.ratio,
            report.seed_bytes_served as f64 / params.revision_bytes as f64,
            report.bytes_moved as f64 / params.revision_bytes as f64,
            report.busy_replies,
            report.events,
            report.is_ok(),
            report.trace_hash.get(..16),
        );
        if !report.is_ok() {
            println!("  {:?}", report.invariants);
        }
        times.push((nodes, report.last_node_secs));
    }
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        println!("T({})/T({}) = {:.3}", last.0, first.0, last.1 / first.1);
    }
}
