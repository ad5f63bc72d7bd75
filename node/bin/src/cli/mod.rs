//! The `fleetmesh` command line: one binary for nodes, operators, the demo and the
//! simulator. Verbs and flags of `deploy` follow `aws deploy`.

mod access_keys;
mod client;
pub(crate) mod cluster;
mod demo;
mod demo_deploy;
pub(crate) mod deploy;
mod events;
mod node_cmd;
mod push;
mod quiet_log;
pub(crate) mod table;
mod traffic;
pub(crate) mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
pub(crate) use client::ApiClient;
use fleetmesh_model::JOIN_TOKEN_TTL_DEFAULT_SECONDS;

/// fleetmesh: deploy application revisions to a fleet of hosts, peer to peer.
///
/// Every host runs `fleetmesh node`; the nodes elect a leader with Raft, the leader
/// drives rollouts, and revision content spreads host to host over QUIC. Operators use
/// `fleetmesh deploy ...` (verbs as in `aws deploy`) against any node's API.
#[derive(Debug, Parser)]
#[command(name = "fleetmesh", version, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    /// API of any node of the cluster (for `cluster` and `deploy`; also accepted after
    /// the verb).
    #[arg(long, value_name = "URL")]
    pub(crate) api: Option<String>,
    /// The admin token (DIR/admin-token on the first node; for `cluster` and `deploy`).
    #[arg(long, value_name = "TOKEN")]
    pub(crate) token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How the client verbs reach the cluster. Only `cluster` and `deploy` take these, so
/// `node`, whose `--api` and `--token` mean its own listen address and join token, does
/// not show them twice.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// API of any node of the cluster.
    #[arg(long = "api", id = "client_api", global = true, env = "FLEETMESH_API", value_name = "URL")]
    api: Option<String>,
    /// The admin token (DIR/admin-token on the first node).
    #[arg(
        long = "token",
        id = "client_token",
        global = true,
        env = "FLEETMESH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// The CA certificate that signs the API's certificate: DIR/ca.pem of any node.
    #[arg(long, global = true, env = "FLEETMESH_CA_BUNDLE", value_name = "FILE")]
    ca_bundle: Option<PathBuf>,
    /// Reads (get-*, list-*) confirm with a quorum that the answering leader still leads
    /// before reading, instead of trusting its applied state (slower by one round trip).
    #[arg(long, global = true)]
    consistent: bool,
}

/// `fleetmesh cluster`: its client flags and verb.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: ClusterCommand,
}

/// `fleetmesh deploy`: its client flags and verb.
#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: deploy::DeployCommand,
}

/// `fleetmesh traffic`: its client flags and verb.
#[derive(Debug, Args)]
pub(crate) struct TrafficArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: traffic::TrafficCommand,
}

/// `fleetmesh events`: its client flags and options.
#[derive(Debug, Args)]
pub(crate) struct EventsCommandArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    events: events::EventsArgs,
}

/// Top-level verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a node: bootstrap a new cluster, join one, or resume from --data-dir.
    Node(NodeArgs),
    /// Inspect and manage the cluster.
    Cluster(ClusterArgs),
    /// Applications, deployment groups, revisions and deployments (as `aws deploy`).
    Deploy(DeployArgs),
    /// Traffic routes: fleetmesh's built-in TCP load balancer on the nodes you choose.
    Traffic(TrafficArgs),
    /// The deployment event log: every change of a deployment or a target, numbered
    /// cluster-wide without gaps; --follow streams new ones as they commit.
    Events(EventsCommandArgs),
    /// Start a local cluster on loopback and run a rolling deployment of a sample app.
    Demo(DemoArgs),
    /// Run the deterministic simulator (many nodes, one process, one seed).
    Sim(fleetmesh_sim::cli::SimArgs),
}

/// `fleetmesh node`.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// Where this node keeps its identity, Raft log and chunks.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: PathBuf,
    /// QUIC address for node-to-node traffic.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:7400")]
    pub(crate) listen: SocketAddr,
    /// The IP other hosts reach this node at: routers listen on it and proxy to it
    /// (traffic routes). Defaults to the --listen IP; required when --listen is a
    /// wildcard address (0.0.0.0 or [::]).
    #[arg(long, value_name = "IP")]
    pub(crate) advertise_address: Option<std::net::IpAddr>,
    /// API address. The API is HTTPS with a certificate from the cluster CA for this
    /// address (clients trust DIR/ca.pem, `--ca-bundle`).
    #[arg(long = "api", id = "node_api", value_name = "IP:PORT", default_value = "127.0.0.1:7480")]
    pub(crate) api: SocketAddr,
    /// Another name (DNS name or IP address) the API certificate is for, e.g. the
    /// host's DNS name or a load balancer's. Repeatable.
    #[arg(long = "api-san", value_name = "NAME")]
    pub(crate) api_sans: Vec<String>,
    /// Serve the API over plain HTTP instead of HTTPS. Only on a loopback `--api`
    /// address: the token would otherwise cross the network in clear.
    #[arg(long)]
    pub(crate) api_plaintext: bool,
    /// Lifetime in seconds of this node's certificates: the API's (HTTPS) and the node
    /// certificate it speaks QUIC with. Both are renewed two thirds in, without a
    /// restart. An agent down for longer than this cannot renew its node certificate
    /// (peers refuse an expired one) and must join afresh; a voter renews its own.
    #[arg(long, default_value_t = fleetmesh_node::daemon::API_CERT_LIFETIME_DEFAULT_SECS, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(10..=315_360_000))]
    pub(crate) cert_lifetime_secs: u64,
    /// A node of the cluster to join (only needed once; a restart resumes from DIR).
    #[arg(long, value_name = "IP:PORT", requires = "join_token")]
    pub(crate) join: Option<SocketAddr>,
    /// The join token (DIR/join-token on the first node).
    #[arg(
        long = "token",
        id = "join_token",
        value_name = "TOKEN",
        env = "FLEETMESH_JOIN_TOKEN",
        hide_env_values = true
    )]
    pub(crate) join_token: Option<String>,
    /// A tag KEY=VALUE; deployment groups select hosts by tags. Repeatable.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub(crate) tags: Vec<(String, String)>,
    /// The on-premises instance this node is (CodeDeploy's RegisterOnPremisesInstance
    /// names, registered now if they are not yet). While it holds the name, its tags are
    /// the instance's: `aws deploy add-tags-to-on-premises-instances` changes them, and
    /// --tag adds to them when it first takes the name. A deregistered instance's node
    /// gets no deployments.
    #[arg(long, value_name = "NAME", value_parser = parse_instance_name)]
    pub(crate) instance_name: Option<String>,
    /// The region in the ARNs CodeDeploy's protocol shows (instances, applications,
    /// groups). First node only: the cluster keeps it. [default: us-east-1]
    #[arg(long, value_name = "REGION", value_parser = parse_aws_region)]
    pub(crate) aws_region: Option<String>,
    /// The 12-digit account in those ARNs. First node only. [default: 000000000000]
    #[arg(long, value_name = "ACCOUNT", value_parser = parse_aws_account_id)]
    pub(crate) aws_account_id: Option<String>,
    /// Raft voters to keep (first node only; the rest are agents).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub(crate) voters: u32,
    /// Root under which appspec destinations and permission objects resolve.
    #[arg(long, default_value = "/", value_name = "DIR")]
    pub(crate) install_root: PathBuf,
    /// Largest revision (total bytes of files) a push to this node may carry.
    #[arg(long, default_value_t = 16 << 30, value_name = "BYTES")]
    pub(crate) max_revision_bytes: u64,
    /// Seconds a voter may be dead before an agent replaces it.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub(crate) voter_grace_secs: u64,
    /// Seconds a Lambda hook function may take to report its status
    /// (put-lifecycle-event-hook-execution-status) before its event fails, while this
    /// node leads (CodeDeploy: one hour).
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub(crate) hook_timeout_secs: u64,
    /// Seconds a stopping node (SIGTERM) lets running lifecycle events finish.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub(crate) shutdown_grace_secs: u64,
    /// Seconds a piece of a revision being downloaded may have no live holder before
    /// the download, and the DownloadBundle waiting for it, fail.
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) no_holder_timeout_secs: u64,
    /// Disaster recovery: before starting, make this node (a surviving voter, with its
    /// data directory) the only voter of its cluster, keeping its replicated state. For
    /// a cluster that lost its quorum for good. Runs once (DIR/force-new-cluster.done);
    /// wipe the former voters' data directories before they start again. See
    /// docs/operations.md.
    #[arg(long, conflicts_with_all = ["join", "join_token"])]
    pub(crate) force_new_cluster: bool,
    /// With --force-new-cluster: restore the state saved by `cluster snapshot save FILE`
    /// instead of this voter's own.
    #[arg(long, value_name = "FILE", requires = "force_new_cluster")]
    pub(crate) from_snapshot: Option<PathBuf>,
    /// Log filter (e.g. info, debug, fleetmesh_node=debug).
    #[arg(long, env = "FLEETMESH_LOG", default_value = "info,openraft=error", value_name = "FILTER")]
    pub(crate) log: String,
}

pub(crate) fn parse_tag(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("tag {text:?} must be KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("tag {text:?} has an empty key"));
    }
    Ok((key.to_string(), value.to_string()))
}

/// An on-premises instance name: 1 to 100 letters, digits and `._+=,@-`.
fn parse_instance_name(text: &str) -> Result<String, String> {
    fleetmesh_state::model::resources::validate_name("instance name", text).map_err(|error| error.to_string())?;
    Ok(text.to_string())
}

/// A region name such as `eu-west-1`: 1 to 32 lower-case letters, digits and dashes.
fn parse_aws_region(text: &str) -> Result<String, String> {
    let valid = (1..=32).contains(&text.len())
        && text.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    if !valid {
        return Err(format!("{text:?} is not a region name (such as eu-west-1)"));
    }
    Ok(text.to_string())
}

/// An AWS account id: 12 digits.
fn parse_aws_account_id(text: &str) -> Result<String, String> {
    if text.len() != 12 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("{text:?} is not an account id (12 digits)"));
    }
    Ok(text.to_string())
}

/// `fleetmesh cluster ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Show the leader, term and every node's role, health, address and tags.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mint a new join token (for hosts that boot later) and print it; its id and expiry
    /// go to stderr.
    ///
    /// It expires after 24 hours unless --ttl-secs says otherwise, and admits any number
    /// of nodes unless --max-uses says otherwise. The bootstrap token (DIR/join-token on
    /// the first node) is not made here: it never expires and has no use limit (delete it
    /// with delete-join-token to stop it).
    CreateJoinToken {
        /// Lifetime in seconds: 0 never expires (for autoscaling groups); at most
        /// 315360000 (10 years).
        #[arg(long, value_name = "SECS", default_value_t = JOIN_TOKEN_TTL_DEFAULT_SECONDS)]
        ttl_secs: u64,
        /// How many nodes may join with it, at least 1 (default: no limit). Needs every
        /// voter on this release (cluster feature level 4).
        #[arg(long, value_name = "N")]
        max_uses: Option<u64>,
        /// Free text, e.g. who it is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the join tokens the cluster accepts: id, description, created, expires and
    /// uses (never the secret).
    ListJoinTokens {
        /// Print JSON ({"joinTokens": [{"tokenId", "description", "createdAt", "expiresAt",
        /// "uses", "maxUses"}]}).
        #[arg(long)]
        json: bool,
    },
    /// Stop accepting a join token (nodes that joined with it stay members).
    DeleteJoinToken {
        /// The token's id, as list-join-tokens shows it (jt-...).
        #[arg(long, value_name = "ID")]
        token_id: String,
    },
    /// Mint an access key for CodeDeploy's own protocol (the AWS CLI, boto3 and the SDKs
    /// with --endpoint-url https://NODE:PORT). The secret is printed once and kept only
    /// sealed in the cluster.
    CreateAccessKey {
        /// Print JSON ({"accessKeyId", "secretAccessKey"}).
        #[arg(long)]
        json: bool,
    },
    /// List the access keys: id, created, by whom (never the secret).
    ListAccessKeys {
        /// Print JSON ({"accessKeys": [{"accessKeyId", "createTime", "createdBy"}]}).
        #[arg(long)]
        json: bool,
    },
    /// Revoke an access key: requests signed with it are refused from then on.
    DeleteAccessKey {
        /// The key's id (AKIA...).
        #[arg(long, value_name = "ID")]
        access_key_id: String,
    },
    /// Save or restore the replicated state (disaster recovery; see docs/operations.md).
    Snapshot {
        /// What to do.
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Remove a member for good, dead or alive: a voter leaves the Raft voters first
    /// (autopilot promotes an agent in its place), then every node refuses the member's
    /// certificate at the QUIC handshake. A removed node that still runs logs "this node
    /// was removed from the cluster", writes DIR/removed and exits with an error; it does
    /// not start again on that data directory (join afresh with an empty --data-dir).
    /// The leader cannot remove itself: stop it, then run this again once another voter
    /// leads. Ids are never reused.
    RemoveNode {
        /// The member's id, as `cluster status` lists it (`remove-node 4`).
        #[arg(value_name = "ID", required_unless_present = "node_id", conflicts_with = "node_id")]
        id: Option<u64>,
        /// The same id, as a flag (`remove-node --node-id 4`).
        #[arg(long, value_name = "ID")]
        node_id: Option<u64>,
    },
    /// Set how many finished deployments the cluster keeps and for how long (default
    /// 10000 deployments, 90 days). Finished deployments past either are dropped from the
    /// state, oldest first, when the next deployment is created; running deployments and
    /// each group's last successful one are always kept.
    SetDeploymentRetention {
        /// Keep at most this many deployments (10 to 1000000).
        #[arg(long, value_name = "N")]
        max_deployments: Option<u32>,
        /// Drop finished deployments that ended more than this many days ago (1 to 3650).
        #[arg(long, value_name = "DAYS")]
        max_age_days: Option<u32>,
    },
    /// Replace the admin token: prints the new one once; the old one stops working at
    /// once (on every node within a poll). Same as `rotate-token --kind admin`.
    RotateAdminToken,
    /// Replace (or create) an API token: `admin`; `read-only` (reads only, for
    /// dashboards and scripts); `metrics` (/metrics only, for Prometheus). Prints the new
    /// token once.
    RotateToken {
        /// Which token.
        #[arg(long, value_parser = ["admin", "read-only", "metrics"])]
        kind: String,
    },
}

/// `fleetmesh cluster snapshot ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum SnapshotCommand {
    /// Write the replicated state, as the voter behind --api applied it, to FILE (0600;
    /// it holds token hashes and the sealed CA, not the seal key). Restore it with
    /// `fleetmesh node --data-dir VOTER_DIR --force-new-cluster --from-snapshot FILE`.
    Save {
        /// Where to write it.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// `fleetmesh demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Nodes to start.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub(crate) nodes: u32,
    /// Directory for the nodes' data, logs and install roots (default: a new temporary directory).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Stop the cluster after the deployment instead of waiting for Ctrl-C.
    #[arg(long)]
    pub(crate) once: bool,
}

/// Runs every command but `sim` (the binary hands that one to the simulator crate).
pub(crate) fn run(cli: Cli) -> ExitCode {
    // A flag typed before the verb, else one after it, else the environment (read by the
    // verb's own flags).
    let client = |args: &ClientArgs| {
        ApiClient::new(
            cli.api.as_deref().or(args.api.as_deref()),
            cli.token.as_deref().or(args.token.as_deref()),
            args.ca_bundle.as_deref(),
        )
        .map(|client| client.consistent(args.consistent))
    };
    let result: anyhow::Result<ExitCode> = match cli.command {
        Command::Node(args) => node_cmd::run(args).map(|()| ExitCode::SUCCESS),
        Command::Cluster(ClusterArgs { client: args, command }) => client(&args)
            .and_then(|client| cluster::run(&client, command))
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Deploy(DeployArgs { client: args, command }) => {
            client(&args).map_err(Into::into).and_then(|client| deploy::run(&client, command))
        }
        Command::Traffic(TrafficArgs { client: args, command }) => client(&args)
            .map_err(Into::into)
            .and_then(|client| traffic::run(&client, command))
            .map(|()| ExitCode::SUCCESS),
        Command::Events(EventsCommandArgs { client: args, events }) => client(&args)
            .map_err(Into::into)
            .and_then(|client| events::run(&client, events))
            .map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => demo::run(args).map(|()| ExitCode::SUCCESS),
        Command::Sim(_) => Err(anyhow::anyhow!("the simulator is run by the fleetmesh binary")),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("fleetmesh: error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line.
pub(crate) fn one_line(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text.replace('\n', " ")
}

/// Tags as a map.
pub(crate) fn tag_map(tags: &[(String, String)]) -> BTreeMap<String, String> {
    tags.iter().cloned().collect()
}
