//! A stand-in for `fleetmesh node` that flips one bit in every chunk it serves to a
//! peer, so an end-to-end test can prove that receivers never store what they cannot
//! verify. Everything else is the production node (`daemon::run_with`), with the same
//! flags; only the revision service's chunk uploads are rewired.
//!
//! The harness starts it in place of the `fleetmesh` binary for chosen nodes
//! (`Options::programs`), with the same command line: `corrupting_node node --data-dir ...`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fleetmesh_node::daemon::{self, NodeConfig, Wiring};
use fleetmesh_node::revision::service::ChunkUploads;
use fleetmesh_node::runtime::Timing;

/// Flips the first bit of every chunk on its way out.
#[derive(Debug)]
struct CorruptUploads;

impl ChunkUploads for CorruptUploads {
    fn outgoing(&self, chunk: &mut [u8]) {
        if let Some(first) = chunk.first_mut() {
            *first ^= 0x01;
        }
    }
}

/// The command line: the `node` command of `fleetmesh`, nothing else.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a node that corrupts every chunk it serves.
    Node(NodeArgs),
}

/// The flags of `fleetmesh node`, with its defaults.
#[derive(Debug, clap::Args)]
struct NodeArgs {
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value = "0.0.0.0:7400")]
    listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:7480")]
    api: SocketAddr,
    #[arg(long, requires = "token")]
    join: Option<SocketAddr>,
    #[arg(long)]
    token: Option<String>,
    #[arg(long = "tag", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    #[arg(long, default_value_t = 3)]
    voters: u32,
    #[arg(long, default_value = "/")]
    install_root: PathBuf,
    #[arg(long, default_value_t = 16 << 30)]
    max_revision_bytes: u64,
    #[arg(long, default_value_t = 30)]
    voter_grace_secs: u64,
    #[arg(long, default_value_t = 30)]
    shutdown_grace_secs: u64,
    #[arg(long = "api-san")]
    api_sans: Vec<String>,
    #[arg(long)]
    api_plaintext: bool,
    #[arg(long, default_value_t = fleetmesh_node::daemon::API_CERT_LIFETIME_DEFAULT_SECS)]
    cert_lifetime_secs: u64,
    #[arg(long, default_value = "info,openraft=error")]
    log: String,
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("tag {text:?} must be KEY=VALUE"))?;
    Ok((key.to_string(), value.to_string()))
}

fn main() -> ExitCode {
    let Command::Node(args) = Cli::parse().command;
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("corrupting_node: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: NodeArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .with_context(|| format!("--log {:?} is not a valid filter", args.log))?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    let config = NodeConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        api: args.api,
        advertise: None,
        join: args.join,
        token: args.token,
        tags: args.tags.into_iter().collect::<BTreeMap<_, _>>(),
        instance_name: None,
        aws_region: None,
        aws_account_id: None,
        voters: args.voters,
        install_root: args.install_root,
        max_revision_bytes: args.max_revision_bytes,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        api_sans: args.api_sans,
        api_plaintext: args.api_plaintext,
        cert_lifetime_secs: args.cert_lifetime_secs,
        timing: Timing { voter_grace: Duration::from_secs(args.voter_grace_secs), ..Timing::default() },
        recovery: None,
        hook_timeout: std::time::Duration::from_secs(3600),
    };
    let wiring = Wiring { chunk_uploads: Arc::new(CorruptUploads) };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        let shutdown = async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = terminate => {}
            }
        };
        daemon::run_with(config, shutdown, wiring).await?;
        Ok(())
    })
}
