//! `fleetmesh node`: runs a node until SIGINT/SIGTERM.

use std::time::Duration;

use anyhow::Context;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::{tag_map, NodeArgs};
use fleetmesh_node::daemon::{self as boot, NodeConfig, Recovery};
use fleetmesh_node::runtime::Timing;

pub(super) fn run(args: NodeArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .with_context(|| format!("--log {:?} is not a valid filter", args.log))?;
    // Colours only on a terminal: a log file (the demo's, systemd's) gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // openraft's repeated ERRORs (an unreachable voter, every RPC) once per call site
    // every ten seconds.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .finish()
        .with(super::quiet_log::OpenraftErrorLimiter::default())
        .init();
    let timing = Timing {
        voter_grace: Duration::from_secs(args.voter_grace_secs),
        no_holder_timeout: Duration::from_secs(args.no_holder_timeout_secs),
        ..Timing::default()
    };
    if args.force_new_cluster && !args.data_dir.join("node.json").exists() {
        anyhow::bail!(
            "--force-new-cluster needs the data directory of a surviving voter, and {} holds no node \
             (node.json is missing)",
            args.data_dir.display()
        );
    }
    let recovery = match (args.force_new_cluster, args.from_snapshot) {
        (false, _) => None,
        (true, None) => Some(Recovery::OwnState),
        (true, Some(file)) => Some(Recovery::Saved(file)),
    };
    let config = NodeConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        api: args.api,
        advertise: args.advertise_address,
        join: args.join,
        token: args.join_token,
        tags: tag_map(&args.tags),
        instance_name: args.instance_name,
        aws_region: args.aws_region,
        aws_account_id: args.aws_account_id,
        voters: args.voters,
        install_root: args.install_root,
        max_revision_bytes: args.max_revision_bytes,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        api_sans: args.api_sans,
        api_plaintext: args.api_plaintext,
        cert_lifetime_secs: args.cert_lifetime_secs,
        timing,
        recovery,
        hook_timeout: Duration::from_secs(args.hook_timeout_secs),
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = async {
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match terminate.as_mut() { Some(signal) => { signal.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        };
        boot::run(config, shutdown).await
    })
}
