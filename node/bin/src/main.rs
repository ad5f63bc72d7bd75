//! The `fleetmesh` binary: parses the command line and hands it to the CLI, or to the
//! simulator for `fleetmesh sim`.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => fleetmesh_sim::cli::run(&args).unwrap_or_else(|error| {
            eprintln!("fleetmesh: error: {}", cli::one_line(&error.into()));
            ExitCode::FAILURE
        }),
        _ => cli::run(cli),
    }
}
