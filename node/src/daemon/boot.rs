//! Starting a production node: bootstrap a new cluster, join one, or resume from the
//! data directory; then bind QUIC and the HTTP API and run until shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_state::model::members::{ApiTokenKind, ClusterInfo, JoinTokenRecord};
use fleetmesh_transport::pki::{CaAuthority, ClusterCa, NodeKey};
use fleetmesh_transport::quic::QuicTransport;
use fleetmesh_transport::seal::CaSealKey;
use fleetmesh_transport::NodeId;
use openraft::BasicNode;
use rand::RngCore;
use tracing::{debug, info, warn};

use super::api_tls::ApiTls;
use super::DaemonError;
use crate::agent::host::HostBackend;
use crate::agent::Agent;
use crate::api::Api;
use crate::leader::Leader;
use crate::revision::service::{ChunkUploads, HonestUploads, RevisionRequests, RevisionService};
use crate::runtime::ca_seal::{CaKeyError, SEAL_KEY_FILE};
use crate::runtime::clock;
use crate::runtime::identity::{
    random_hex, secret_hash, write_private_file, JoinToken, KnownPeer, NodeIdentity, IDENTITY_FORMAT,
};
use crate::runtime::join::{join_with_retry, JOIN_RETRY_WINDOW};
use crate::runtime::protocol::MemberAddress;
use crate::runtime::{Node, NodeHandler, NodeSettings, Timing};

/// `fleetmesh node` flags.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--listen`.
    pub listen: SocketAddr,
    /// `--api`.
    pub api: SocketAddr,
    /// `--advertise-address`: where other hosts and routers reach this node; `None` is
    /// the `--listen` IP, which must then not be a wildcard.
    pub advertise: Option<std::net::IpAddr>,
    /// `--join`.
    pub join: Option<SocketAddr>,
    /// `--token`.
    pub token: Option<String>,
    /// `--tag`s.
    pub tags: BTreeMap<String, String>,
    /// `--instance-name`: the on-premises instance this node takes.
    pub instance_name: Option<String>,
    /// `--aws-region` (first node only): the region of the cluster's ARNs.
    pub aws_region: Option<String>,
    /// `--aws-account-id` (first node only): the account of the cluster's ARNs.
    pub aws_account_id: Option<String>,
    /// `--voters`.
    pub voters: u32,
    /// `--install-root`.
    pub install_root: PathBuf,
    /// `--max-revision-bytes`.
    pub max_revision_bytes: u64,
    /// `--shutdown-grace-secs`: how long a stopping node lets running hooks finish.
    pub shutdown_grace: Duration,
    /// `--api-san`s: more names (DNS or IP) the API certificate is for.
    pub api_sans: Vec<String>,
    /// `--api-plaintext`: serve the API over plain HTTP (loopback addresses only).
    pub api_plaintext: bool,
    /// `--cert-lifetime-secs`: lifetime of the API certificate, renewed two thirds in.
    pub cert_lifetime_secs: u64,
    /// Timing.
    pub timing: Timing,
    /// `--force-new-cluster` (`--from-snapshot`): make this voter the only one first.
    pub recovery: Option<super::recover::Recovery>,
    /// `--hook-timeout-secs`: how long a Lambda hook may take to report its status,
    /// when this node leads.
    pub hook_timeout: Duration,
}

/// Largest voter count accepted (Raft fan-out from the leader does not scale, and 5
/// voters already survive two failures).
pub const VOTERS_MAX: u32 = 7;

/// How the node came up.
enum Start {
    Resume(NodeIdentity),
    Joined(NodeIdentity),
    Bootstrap(NodeIdentity, Box<ClusterInfo>),
}

async fn prepare_identity(config: &NodeConfig) -> Result<Start, DaemonError> {
    let existing = NodeIdentity::load(&config.data_dir)?;
    let token = config.token.as_deref().map(JoinToken::parse).transpose()?;
    match (existing, config.join, token) {
        (Some(identity), join, token) => {
            if let Some(token) = token {
                if token.ca != identity.ca_fingerprint {
                    return Err(DaemonError::OtherCluster {
                        data_dir: config.data_dir.clone(),
                        cluster_id: identity.cluster_id,
                    });
                }
            }
            if join.is_some() {
                info!("the data directory already holds node {}: resuming, --join ignored", identity.node_id);
            }
            Ok(Start::Resume(identity))
        }
        (None, Some(seed), Some(token)) => {
            let spec = config.member_spec();
            let identity = join_with_retry(seed, &token, spec, JOIN_RETRY_WINDOW).await?;
            identity.save(&config.data_dir)?;
            Ok(Start::Joined(identity))
        }
        (None, Some(_), None) => Err(DaemonError::JoinWithoutToken),
        (None, None, Some(_)) => Err(DaemonError::TokenWithoutJoin),
        (None, None, None) => {
            bootstrap_identity(config).map(|(identity, info)| Start::Bootstrap(identity, Box::new(info)))
        }
    }
}

fn bootstrap_identity(config: &NodeConfig) -> Result<(NodeIdentity, ClusterInfo), DaemonError> {
    if config.voters == 0 || config.voters > VOTERS_MAX {
        return Err(DaemonError::VoterCount { voters: config.voters, max: VOTERS_MAX });
    }
    let cluster_id = random_hex(8);
    let ca = ClusterCa::generate(&cluster_id)?;
    let key = NodeKey::generate()?;
    let boot_secs = i64::try_from(clock::SystemClock.now_for_boot().0 / 1000).unwrap_or(i64::MAX / 2);
    let validity = crate::leader::api_validity(boot_secs, config.cert_lifetime_secs);
    let cert_pem = ca.sign_node_valid(NodeId(1), &key.public_key, validity)?;
    let fingerprint = ca.fingerprint()?;
    let admin_token = format!("fma1.{}", random_hex(24));
    let metrics_token = format!("fmm1.{}", random_hex(24));
    let join_token = JoinToken::generate(fingerprint.clone());
    let created_at = clock::SystemClock.now_for_boot();
    // The CA key enters the replicated state sealed; its seal key stays on the voters.
    let seal_key = CaSealKey::generate().map_err(CaKeyError::from)?;
    write_private_file(&config.data_dir.join(SEAL_KEY_FILE), format!("{}\n", seal_key.to_hex()).as_bytes())?;
    // The bootstrap token (DIR/join-token) never expires and has no use limit.
    let info = ClusterInfo {
        ca: seal_key.seal(&ca).map_err(CaKeyError::from)?,
        admin_token_hash: secret_hash(&admin_token),
        join_tokens: vec![JoinTokenRecord {
            secret_hash: secret_hash(&join_token.secret),
            expires_at: None,
            description: "bootstrap token".to_string(),
            created_at: Some(created_at),
            ..JoinTokenRecord::default()
        }],
        voters_desired: config.voters,
        read_only_token_hash: None,
        metrics_token_hash: Some(secret_hash(&metrics_token)),
        created_at,
        access_keys: Vec::new(),
        aws_region: config.aws_region.clone(),
        aws_account_id: config.aws_account_id.clone(),
    };
    let identity = NodeIdentity {
        format: IDENTITY_FORMAT,
        node_id: NodeId(1),
        cluster_id,
        ca_fingerprint: fingerprint,
        ca_pem: ca.cert_pem.clone(),
        cert_pem,
        cert_validity: Some(validity),
        key_pem: key.key_pem,
        admin_token_hash: info.admin_token_hash.clone(),
        tags: config.tags.clone(),
        peers: vec![KnownPeer { id: NodeId(1), listen: config.listen }],
    };
    // Until the bootstrap entry commits, the cluster facts live in this file so a crash
    // in between can finish the bootstrap on restart.
    write_private_file(&config.data_dir.join("bootstrap.json"), &serde_json::to_vec(&info)?)?;
    identity.save(&config.data_dir)?;
    write_private_file(&config.data_dir.join("admin-token"), format!("{admin_token}\n").as_bytes())?;
    write_private_file(&config.data_dir.join("join-token"), format!("{join_token}\n").as_bytes())?;
    write_private_file(&config.data_dir.join("metrics-token"), format!("{metrics_token}\n").as_bytes())?;
    Ok((identity, info))
}

/// The parts of a node a caller may swap for its own: a production node uses
/// [`Wiring::default`]; an end-to-end test builds a node that misbehaves on purpose.
#[derive(Clone, Debug)]
pub struct Wiring {
    /// What the revision service does to each chunk it serves a peer.
    pub chunk_uploads: Arc<dyn ChunkUploads>,
}

impl Default for Wiring {
    /// A production node: chunks are served as stored.
    fn default() -> Self {
        Self { chunk_uploads: Arc::new(HonestUploads) }
    }
}

/// Runs a production node until `shutdown` resolves.
///
/// The error converts into the caller's own error type (the binary's `anyhow::Error`).
///
/// # Errors
/// Bad flags, an unusable data directory, a failed join, or a port in use.
pub async fn run<E: From<DaemonError>>(config: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), E> {
    Ok(run_with(config, shutdown, Wiring::default()).await?)
}

/// Runs a node built from `wiring` until `shutdown` resolves (see [`run`]).
///
/// Steps: settle the identity (resume, join or bootstrap), open the runtime on QUIC
/// and the Raft database, start the services, then wait for the signal and stop them.
///
/// # Errors
/// Bad flags, an unusable data directory, a failed join, or a port in use.
pub async fn run_with(
    config: NodeConfig,
    shutdown: impl Future<Output = ()>,
    wiring: Wiring,
) -> Result<(), DaemonError> {
    if config.api_plaintext && !config.api.ip().is_loopback() {
        return Err(DaemonError::PlaintextNotLoopback { address: config.api });
    }
    fleetmesh_transport::pki::check_api_names(&config.api_sans).map_err(DaemonError::ApiCertificate)?;
    config.advertised()?;
    let (identity, bootstrap) = settle_identity(&config).await?;
    let opened = open_node(&config, &identity).await?;
    let running = start_services(&config, &opened, identity, bootstrap, wiring).await?;
    running.stop_after(shutdown, &opened, config.shutdown_grace).await
}

/// The identity this node runs as, and the cluster facts of a bootstrap that has not
/// committed yet (a fresh one, or one a crash interrupted).
async fn settle_identity(config: &NodeConfig) -> Result<(NodeIdentity, Option<ClusterInfo>), DaemonError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| DaemonError::CreateDataDir { path: config.data_dir.clone(), source })?;
    super::disk::protect(&config.data_dir)?;
    if let Ok(reason) = std::fs::read_to_string(crate::runtime::removal::removed_marker(&config.data_dir)) {
        return Err(DaemonError::Removed { reason: reason.trim().to_string() });
    }
    Ok(match prepare_identity(config).await? {
        Start::Resume(identity) | Start::Joined(identity) => {
            // A bootstrap interrupted before its entry committed left this file behind.
            let pending = std::fs::read(config.data_dir.join("bootstrap.json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<ClusterInfo>(&bytes).ok());
            (identity, pending)
        }
        Start::Bootstrap(identity, info) => (identity, Some(*info)),
    })
}

/// A node runtime on its QUIC endpoint, not yet answering peers.
struct Opened {
    node: Arc<Node>,
    transport: Arc<QuicTransport>,
    handler: Arc<NodeHandler>,
}

/// Binds QUIC, opens the Raft database and starts the runtime with the known peers.
async fn open_node(config: &NodeConfig, identity: &NodeIdentity) -> Result<Opened, DaemonError> {
    let tls = identity.tls()?;
    let handler = NodeHandler::new();
    let transport = QuicTransport::bind(config.listen, &tls, handler.clone())?;
    let db_path = config.data_dir.join("raft.redb");
    let db = redb::Database::create(&db_path)
        .map_err(|source| DaemonError::OpenDatabase { path: db_path.clone(), source })?;
    // The log holds the cluster CA's private key (the bootstrap entry): owner only, also
    // for a file an older release created with the umask's 0644.
    std::fs::set_permissions(&db_path, std::fs::Permissions::from_mode(0o600))
        .map_err(|source| DaemonError::ProtectDatabase { path: db_path, source })?;
    super::recover::run(config, identity, &db)?;
    let mut seed = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let settings = NodeSettings {
        id: identity.node_id,
        listen: config.listen,
        api: config.api,
        advertise: config.advertised()?,
        tags: config.tags.clone(),
        instance_name: config.instance_name.clone(),
        data_dir: Some(config.data_dir.clone()),
        install_root: config.install_root.clone(),
        timing: config.timing,
        rng_seed: u64::from_le_bytes(seed),
        max_revision_bytes: config.max_revision_bytes,
        planner: fleetmesh_core::rollout::PlannerSettings {
            hook_timeout_ms: u64::try_from(config.hook_timeout.as_millis()).unwrap_or(u64::MAX),
            ..Default::default()
        },
    };
    let node = Node::new(settings, Arc::new(db), transport.clone(), clock::system()).await?;
    let weak = Arc::downgrade(&node);
    transport.revocation().install(Arc::new(move |id| weak.upgrade().is_some_and(|node| node.is_revoked(id))));
    node.seed_directory(
        Arc::new(
            identity
                .peers
                .iter()
                .map(|peer| (peer.id, MemberAddress { id: peer.id, listen: peer.listen, api: config.api }))
                .collect(),
        ),
        identity.admin_token_hash.clone(),
    );
    Ok(Opened { node, transport, handler })
}

/// The services of a started node, until it stops.
struct Running {
    tasks: tokio::task::JoinSet<()>,
    agent: Option<Arc<Agent>>,
    api_stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts the runtime's tasks, the leader's duties (finishing a pending bootstrap),
/// the revision service, the API and the host agent; then lets peers' requests in.
async fn start_services(
    config: &NodeConfig,
    opened: &Opened,
    identity: NodeIdentity,
    bootstrap: Option<ClusterInfo>,
    wiring: Wiring,
) -> Result<Running, DaemonError> {
    let node = &opened.node;
    let mut tasks = tokio::task::JoinSet::new();
    node.spawn(&mut tasks);
    let leader = Leader::start(node, &mut tasks);
    // Opened in memory to sign this node's first API certificate.
    let bootstrap_ca = match bootstrap.as_ref().map(|info| &info.ca) {
        Some(ca) if ca.is_sealed() => {
            let key = node.seal_keys().get()?.ok_or(CaKeyError::NoSealKey)?;
            Some(key.unseal(ca).map_err(CaKeyError::from)?)
        }
        other => other.cloned(),
    };
    if let Some(info) = bootstrap {
        let first = config.member_spec();
        if !node.raft_host().is_initialized().await? {
            let members = BTreeMap::from([(identity.node_id, BasicNode { addr: config.listen.to_string() })]);
            node.initialize(members).await?;
        }
        leader.set_pending_bootstrap(info, first);
    }
    let revisions = RevisionService::open_with(&config.data_dir, wiring.chunk_uploads)?;
    RevisionRequests::register(node, revisions.clone());
    let tls = api_tls(config, node, &identity, bootstrap_ca.as_ref(), &mut tasks)?;
    let api_listener = tokio::net::TcpListener::bind(config.api)
        .await
        .map_err(|source| DaemonError::ApiListen { address: config.api, source })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!(
        "fleetmesh node {} of cluster {}: QUIC on {}, API on {scheme}://{}",
        identity.node_id, identity.cluster_id, config.listen, config.api
    );
    let api = Api::start(&leader, Some(revisions.clone()));
    // Every service is registered: peers' requests may come in.
    opened.handler.bind(node.clone());
    let (api_stop, api_stopped) = tokio::sync::oneshot::channel::<()>();
    tasks.spawn(crate::api::serve(api, api_listener, tls, async move {
        // A dropped sender stops the API as a sent signal does.
        let _ = api_stopped.await;
    }));
    let identity = Arc::new(std::sync::Mutex::new(identity));
    let certificate = super::node_cert::NodeCertificate::new(
        node.clone(),
        opened.transport.clone(),
        identity.clone(),
        config.data_dir.clone(),
        config.cert_lifetime_secs,
    );
    tasks.spawn(certificate.maintain());
    tasks.spawn(maintain_identity(node.clone(), config.data_dir.clone(), identity));
    crate::router::Router::start(node, &mut tasks);
    let agent = match HostBackend::open(&config.data_dir, &config.install_root, revisions) {
        Ok(backend) => Some(Agent::start(node, Arc::new(backend), &mut tasks)),
        Err(error) => {
            tracing::error!(%error, "the host agent cannot start; this node will not run deployments");
            None
        }
    };
    Ok(Running { tasks, agent, api_stop })
}

/// The HTTPS configuration of the API (`None` with `--api-plaintext`): the node's API
/// key and certificate, signed here at bootstrap and kept valid by a task.
fn api_tls(
    config: &NodeConfig,
    node: &Arc<Node>,
    identity: &NodeIdentity,
    bootstrap_ca: Option<&ClusterCa>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<Option<Arc<rustls::ServerConfig>>, DaemonError> {
    // Clients trust DIR/ca.pem, plaintext or not.
    let names = super::api_names(config.api, &config.api_sans);
    let now = i64::try_from(node.clock().now().0 / 1000).unwrap_or(i64::MAX / 2);
    let tls = ApiTls::open(&config.data_dir, &identity.ca_pem, names, config.cert_lifetime_secs, now)?;
    if config.api_plaintext {
        warn!(api = %config.api, "the API serves plain HTTP (--api-plaintext)");
        return Ok(None);
    }
    if let (Some(ca), false) = (bootstrap_ca, tls.certificate.is_ready()) {
        tls.sign_with(ca, identity.node_id, now)?;
    }
    let server = fleetmesh_transport::tls::api_server_config(tls.certificate.clone())?;
    tasks.spawn(Arc::new(tls).maintain(node.clone()));
    Ok(Some(Arc::new(server)))
}

impl Running {
    /// Waits for `shutdown` (or the node stopping by itself), then lets running hooks
    /// finish for up to `grace` and stops everything.
    async fn stop_after(
        mut self,
        shutdown: impl Future<Output = ()>,
        opened: &Opened,
        grace: Duration,
    ) -> Result<(), DaemonError> {
        // The node stops on the signal, or by itself after a fatal error it has logged.
        let mut stopped = opened.node.shutdown_signal();
        let stopped_itself = tokio::select! {
            () = shutdown => false,
            _ = stopped.wait_for(|stopped| *stopped) => true,
        };
        info!("shutting down");
        if let Some(agent) = &self.agent {
            agent.drain(grace).await;
        }
        // The API task may have ended already (a bind error it logged); then there is
        // nobody to tell.
        let _ = self.api_stop.send(());
        opened.node.shutdown().await;
        opened.transport.close().await;
        self.tasks.abort_all();
        if stopped_itself {
            return Err(DaemonError::Fatal { node: opened.node.id() });
        }
        Ok(())
    }
}

/// Removes the first node's `DIR/admin-token` and `DIR/metrics-token` once their token
/// was rotated, so nobody keeps using a file that no longer works.
fn remove_rotated_tokens(node: &Node, data_dir: &std::path::Path) {
    for (file, kind) in [("admin-token", ApiTokenKind::Admin), ("metrics-token", ApiTokenKind::Metrics)] {
        let path = data_dir.join(file);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        if node.token_kind(text.trim()) == Some(kind) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => info!(file = %path.display(), "the {kind} token was rotated; removed its old file"),
            Err(error) => warn!(%error, file = %path.display(), "cannot remove a rotated token's file"),
        }
    }
}

/// Keeps `node.json`'s peer list current (so a restart finds the cluster even if the
/// seed is gone) and removes `bootstrap.json` once the bootstrap entry has committed.
async fn maintain_identity(node: Arc<Node>, data_dir: PathBuf, identity: Arc<std::sync::Mutex<NodeIdentity>>) {
    let mut shutdown = node.shutdown_signal();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        if node.state().read(|state| state.cluster.is_some()) {
            match std::fs::remove_file(data_dir.join("bootstrap.json")) {
                // Gone after the first pass: NotFound is the usual outcome.
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => debug!(%error, "cannot remove bootstrap.json yet; trying again in 2 s"),
            }
            remove_rotated_tokens(&node, &data_dir);
        }
        let directory = node.directory();
        let mut peers: Vec<KnownPeer> =
            directory.members.values().map(|member| KnownPeer { id: member.id, listen: member.listen }).collect();
        if peers.is_empty() {
            continue;
        }
        peers.sort_by_key(|peer| peer.id);
        // Shared with the certificate renewal, which saves the file too.
        let mut identity = identity.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if peers != identity.peers {
            identity.peers = peers;
            if let Err(error) = identity.save(&data_dir) {
                warn!(%error, "could not update the known peers in node.json");
            }
        }
    }
}
