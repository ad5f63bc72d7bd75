//! A harness for end-to-end tests: real `fleetmesh` processes on loopback.
//!
//! Each cluster gets its own loopback subnet `127.A.B.0/24` (A, B random per cluster),
//! one address per node and fixed ports, so tests running in parallel never fight
//! over ports. Every node logs to a file; when a test fails, the harness prints the
//! tail of every node's log.
//!
//! Modules: `cluster` (processes), `cli` (the CLI as a user drives it), `api` (the HTTP
//! API and metrics), `chunk_store` (verifying a node's store), `files` and `procfs`.

mod api;
mod chunk_store;
mod cli;
mod cluster;
pub mod compat;
mod files;
mod http_stub;
pub mod moto;
pub mod netns;
mod procfs;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use api::{http_agent_trusting, http_agent_within, parse_metric};
pub use cluster::{log_tail, Options, TestCluster, TestNode};
pub use files::{hash_file, write_bundle, write_random_file};
pub use http_stub::{Handler, HttpStub, StubRequest};
pub use procfs::{proc_status_kib, process_cpu, process_cpu_split};

/// QUIC port of every test node (each has its own IP).
pub const QUIC_PORT: u16 = 7400;

/// API port of every test node.
pub const API_PORT: u16 = 7480;

/// The `fleetmesh` binary under test: `FLEETMESH_BIN`, else `target/release/fleetmesh`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLEETMESH_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release/fleetmesh")
}

/// Waits until `check` returns `Some`, polling every 100 ms.
///
/// # Panics
/// After `timeout`, naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
