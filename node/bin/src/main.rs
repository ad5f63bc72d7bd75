//! The `fleetmesh` binary: parses the command line and hands it to the node library,
//! or to the simulator for `fleetmesh sim`.

use std::process::ExitCode;

use clap::Parser;
use fleetmesh_node::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => fleetmesh_sim::cli::run(&args),
        _ => fleetmesh_node::cli::run(cli),
    }
}
