//! The `fleetmesh` binary: parses the command line and hands it to the CLI, or to the
//! simulator for `fleetmesh sim`.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};

fn main() -> ExitCode {
    cap_malloc_arenas();
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => fleetmesh_sim::cli::run(&args).unwrap_or_else(|error| {
            eprintln!("fleetmesh: error: {}", cli::one_line(&error.into()));
            ExitCode::FAILURE
        }),
        _ => cli::run(cli),
    }
}

/// Caps glibc's malloc at two arenas, unless `MALLOC_ARENA_MAX` says otherwise.
///
/// glibc gives threads that allocate at once arenas of their own (up to 8 per core) and
/// keeps what is freed in them. A node allocates ~1 MiB piece buffers on its async
/// workers and blocking threads, so freed pieces stayed in many arenas: with 5 nodes on
/// loopback sharing 2 cores (`bench_swarm --size-mib 1024 --nodes 5`, alternated, 2 runs
/// each) the receiver's peak RSS was 74–81 MiB above idle, and 35–36 MiB with two
/// arenas, no slower (last node 13.7–14.2 s against 12.6–13.6 s). Fixing the mmap
/// threshold instead kept RSS at 32 MiB but cost a fresh mapping per piece: the last
/// node took 16.4 s.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn cap_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt sets one malloc parameter and takes no pointers; it runs first
    // in main, before this process starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cap_malloc_arenas() {}
