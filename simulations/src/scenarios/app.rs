//! The application the deployment scenarios roll out: one application, one deployment
//! group selecting every node (`role=web`) with automatic rollback on failure, a
//! deployment configuration picked per seed, and a few synthetic revisions registered
//! through Raft with the same commands the API proposes.

use std::time::Duration;

use fleetmesh_state::model::blue_green::BlueGreenDeploymentConfiguration;
use fleetmesh_state::model::deployment::{DeploymentCreator, DeploymentStatus};
use fleetmesh_state::model::ids::{DeploymentId, RevisionId};
use fleetmesh_state::model::resources::{
    AutoRollbackConfiguration, ComputePlatform, DeploymentOption, DeploymentType, FileExistsBehavior, LoadBalancerInfo,
    MinimumHealthyHosts, MinimumHealthyHostsType, TagFilter, TagFilterType, TargetGroupInfo, TargetSelector,
    HALF_AT_A_TIME, ONE_AT_A_TIME,
};
use fleetmesh_state::model::revision::RevisionRecord;
use fleetmesh_state::model::routes::RouteSpec;
use fleetmesh_state::model::traffic_routing::{
    TimeBasedCanary, TimeBasedLinear, TrafficRoutingConfig, TrafficRoutingType,
};
use fleetmesh_state::model::triggers::{TriggerConfig, TriggerEventType};
use fleetmesh_state::{ApplyErrorKind, Command, DeploymentGroupSpec, DeploymentSpec, Outcome};
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

use super::ScenarioError;
use crate::cluster::SimCluster;
use crate::invariants::{Verdicts, Violation};

/// Chunks of `app/bin` in every revision (4 MiB declared: quick to fetch, enough
/// chunks for a corrupt peer to matter).
pub const BIN_CHUNKS: u64 = 16;

/// How long setup commands may wait for a leader.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The deployment configuration of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigChoice {
    /// `CodeDeployDefault.OneAtATime`.
    OneAtATime,
    /// `CodeDeployDefault.HalfAtATime`.
    HalfAtATime,
    /// A custom `HOST_COUNT` rule with this minimum.
    HostCount(u32),
    /// A custom configuration with canary or linear steps (OneAtATime's minimum).
    Steps(TrafficRoutingConfig),
}

impl ConfigChoice {
    /// One of the three, picked by `rng`; a custom minimum lies in `[0, nodes − 1]`.
    pub fn pick(rng: &mut ChaCha8Rng, nodes: usize) -> Self {
        match rng.gen_range(0..3) {
            0 => Self::OneAtATime,
            1 => Self::HalfAtATime,
            _ => Self::HostCount(rng.gen_range(0..nodes.max(1) as u32)),
        }
    }

    /// All at once, a canary (10–50 %, 1–4 s) or linear steps (20–50 %, 1–3 s), a third of
    /// the time each: the blue/green shapes the simulator runs.
    pub fn pick_blue_green(rng: &mut ChaCha8Rng) -> Self {
        let routing = match rng.gen_range(0..3) {
            0 => return Self::OneAtATime,
            1 => TrafficRoutingConfig {
                kind: TrafficRoutingType::TimeBasedCanary,
                time_based_canary: Some(TimeBasedCanary {
                    canary_percentage: rng.gen_range(10..=50),
                    canary_interval: None,
                    canary_interval_seconds: Some(rng.gen_range(1..=4)),
                }),
                time_based_linear: None,
            },
            _ => TrafficRoutingConfig {
                kind: TrafficRoutingType::TimeBasedLinear,
                time_based_canary: None,
                time_based_linear: Some(TimeBasedLinear {
                    linear_percentage: rng.gen_range(20..=50),
                    linear_interval: None,
                    linear_interval_seconds: Some(rng.gen_range(1..=3)),
                }),
            },
        };
        Self::Steps(routing)
    }

    /// The rule and the steps of a custom configuration; `None` for a predefined one.
    fn custom(self) -> Option<(MinimumHealthyHosts, Option<TrafficRoutingConfig>)> {
        match self {
            Self::HostCount(value) => {
                Some((MinimumHealthyHosts { kind: MinimumHealthyHostsType::HostCount, value }, None))
            }
            Self::Steps(routing) => {
                Some((MinimumHealthyHosts { kind: MinimumHealthyHostsType::MostConcurrency, value: 1 }, Some(routing)))
            }
            Self::OneAtATime | Self::HalfAtATime => None,
        }
    }

    /// The configuration's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::OneAtATime => ONE_AT_A_TIME,
            Self::HalfAtATime => HALF_AT_A_TIME,
            Self::HostCount(_) | Self::Steps(_) => CUSTOM_CONFIG,
        }
    }
}

/// How the group deploys.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// In place, no traffic control.
    InPlace,
    /// In place, with traffic control on [`ROUTE`].
    Routed {
        /// The route's drain time.
        drain_seconds: u32,
    },
    /// Blue/green on [`ROUTE`].
    BlueGreen {
        /// The route's drain time.
        drain_seconds: u32,
        /// The group's blue/green settings.
        configuration: BlueGreenDeploymentConfiguration,
    },
}

/// The route of a group with traffic control ([`App::create_routed`]).
pub const ROUTE: &str = "web";

/// Name of the custom configuration.
pub const CUSTOM_CONFIG: &str = "Sim.HostCount";

/// Where the scenarios' triggers point. Nothing is sent there: the simulator's leaders
/// deliver to a stand-in ([`crate::trigger_sink`]).
pub const TRIGGER_URL: &str = "https://sink.invalid/hook";

/// Every CodeDeploy trigger event type.
pub const ALL_TRIGGER_EVENTS: [TriggerEventType; 10] = [
    TriggerEventType::DeploymentStart,
    TriggerEventType::DeploymentSuccess,
    TriggerEventType::DeploymentFailure,
    TriggerEventType::DeploymentStop,
    TriggerEventType::DeploymentRollback,
    TriggerEventType::DeploymentReady,
    TriggerEventType::InstanceStart,
    TriggerEventType::InstanceSuccess,
    TriggerEventType::InstanceFailure,
    TriggerEventType::InstanceReady,
];

/// A trigger named `sim` sending `events` to [`TRIGGER_URL`]: what the scenarios' groups
/// get, so their leaders run the trigger duty (`trigger_cursors_behind_delivery`).
pub fn sim_trigger(events: &[TriggerEventType]) -> TriggerConfig {
    TriggerConfig {
        trigger_name: "sim".into(),
        trigger_target_arn: TRIGGER_URL.into(),
        trigger_events: events.to_vec(),
        sealed_secret: None,
    }
}

/// The application under test.
#[derive(Clone, Debug)]
pub struct App {
    /// Application name.
    pub application: String,
    /// Deployment group name.
    pub group: String,
    /// Its configuration.
    pub config: ConfigChoice,
    /// Registered revisions, version 1 first.
    pub revisions: Vec<RevisionId>,
}

fn random_id(rng: &mut ChaCha8Rng) -> String {
    let mut bytes = [0u8; 8];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Proposes a setup command; a retried command that had in fact committed comes back
/// `AlreadyExists`, which counts as done.
async fn setup_command(cluster: &SimCluster, command: Command) -> Result<(), ScenarioError> {
    match cluster.propose(command, SETUP_TIMEOUT).await? {
        Outcome::Done => Ok(()),
        Outcome::Rejected(error) if error.kind == ApplyErrorKind::AlreadyExists => Ok(()),
        outcome => Err(ScenarioError::SetupRefused { outcome }),
    }
}

impl App {
    /// Creates the application, its configuration and group, and `versions` revisions
    /// seeded by the current leader.
    ///
    /// # Errors
    /// A setup command could not commit.
    pub async fn create(
        cluster: &SimCluster,
        rng: &mut ChaCha8Rng,
        config: ConfigChoice,
        versions: u64,
    ) -> Result<Self, ScenarioError> {
        Self::create_in(cluster, rng, config, versions, Style::InPlace, BIN_CHUNKS).await
    }

    /// As [`Self::create`], with revisions whose `app/bin` has `bin_chunks` chunks of
    /// 256 KiB (the others have [`BIN_CHUNKS`]).
    ///
    /// # Errors
    /// A setup command could not commit.
    pub async fn create_sized(
        cluster: &SimCluster,
        rng: &mut ChaCha8Rng,
        config: ConfigChoice,
        versions: u64,
        bin_chunks: u64,
    ) -> Result<Self, ScenarioError> {
        Self::create_in(cluster, rng, config, versions, Style::InPlace, bin_chunks).await
    }

    /// As [`Self::create`], with a group that deploys with traffic control on a route
    /// named [`ROUTE`] (created first; its router tag matches no node, so no simulated
    /// node listens: the route's state is what the invariants check) whose drain time is
    /// `drain_seconds`.
    ///
    /// # Errors
    /// A setup command could not commit.
    pub async fn create_routed(
        cluster: &SimCluster,
        rng: &mut ChaCha8Rng,
        config: ConfigChoice,
        versions: u64,
        drain_seconds: u32,
    ) -> Result<Self, ScenarioError> {
        Self::create_in(cluster, rng, config, versions, Style::Routed { drain_seconds }, BIN_CHUNKS).await
    }

    /// As [`Self::create_routed`], with a `BLUE_GREEN` group deploying with
    /// `configuration`: its deployments install on the hosts not serving [`ROUTE`] and
    /// move the route to them.
    ///
    /// # Errors
    /// A setup command could not commit.
    pub async fn create_blue_green(
        cluster: &SimCluster,
        rng: &mut ChaCha8Rng,
        versions: u64,
        drain_seconds: u32,
        configuration: BlueGreenDeploymentConfiguration,
        config: ConfigChoice,
    ) -> Result<Self, ScenarioError> {
        let style = Style::BlueGreen { drain_seconds, configuration };
        Self::create_in(cluster, rng, config, versions, style, BIN_CHUNKS).await
    }

    async fn create_in(
        cluster: &SimCluster,
        rng: &mut ChaCha8Rng,
        config: ConfigChoice,
        versions: u64,
        style: Style,
        bin_chunks: u64,
    ) -> Result<Self, ScenarioError> {
        let app = Self { application: "app".into(), group: "web".into(), config, revisions: Vec::new() };
        setup_command(
            cluster,
            Command::CreateApplication {
                name: app.application.clone(),
                application_id: random_id(rng),
                compute_platform: ComputePlatform::Server,
            },
        )
        .await?;
        if let Some((minimum_healthy_hosts, traffic_routing_config)) = config.custom() {
            setup_command(
                cluster,
                Command::CreateDeploymentConfig {
                    name: CUSTOM_CONFIG.into(),
                    deployment_config_id: random_id(rng),
                    compute_platform: ComputePlatform::Server,
                    minimum_healthy_hosts,
                    traffic_routing_config,
                },
            )
            .await?;
        }
        let spec = DeploymentGroupSpec {
            alarm_configuration: None,
            application_name: app.application.clone(),
            deployment_group_name: app.group.clone(),
            deployment_config_name: config.name().to_string(),
            target_selector: TargetSelector {
                tag_filters: vec![TagFilter {
                    key: Some("role".into()),
                    value: Some("web".into()),
                    filter_type: TagFilterType::KeyAndValue,
                }],
                tag_set: Vec::new(),
            },
            auto_rollback_configuration: AutoRollbackConfiguration::on_failure(),
            update_outdated_instances: true,
            deployment_option: Default::default(),
            load_balancer_info: None,
            deployment_type: Default::default(),
            blue_green_deployment_configuration: None,
            service_role_arn: None,
            ecs_services: Vec::new(),
            trigger_configurations: vec![sim_trigger(&ALL_TRIGGER_EVENTS)],
        };
        let spec = styled(cluster, spec, style).await?;
        setup_command(cluster, Command::CreateDeploymentGroup { spec, deployment_group_id: random_id(rng) }).await?;
        let mut app = app;
        for version in 1..=versions {
            let revision = push_and_register(cluster, &app.application, version, bin_chunks).await?;
            app.revisions.push(revision);
        }
        Ok(app)
    }
}

/// Pushes synthetic revision `version` (an `app/bin` of `bin_chunks` chunks) to the
/// current leader and registers it for `application`. Returns its id.
async fn push_and_register(
    cluster: &SimCluster,
    application: &str,
    version: u64,
    bin_chunks: u64,
) -> Result<RevisionId, ScenarioError> {
    let seed = cluster.leader().ok_or(ScenarioError::NoLeaderToPush { version })?;
    let manifest = cluster.push_revision(version, bin_chunks, seed);
    let unique = manifest.unique_chunks();
    let record = RevisionRecord {
        revision_id: manifest.revision_id(),
        application_name: application.to_string(),
        description: format!("synthetic version {version}"),
        size_bytes: manifest.total_bytes(),
        unique_bytes: unique.iter().map(|chunk| u64::from(chunk.len())).sum(),
        chunk_count: unique.len() as u64,
        register_time: cluster.node(seed).clock().now(),
        registered_by: "sim".into(),
        seeds: vec![seed],
        created_by: None,
        manifest,
        app_spec: None,
        source: None,
    };
    let revision = record.revision_id;
    setup_command(cluster, Command::RegisterRevision { record: Box::new(record) }).await?;
    Ok(revision)
}

impl App {
    /// Deploys the first revision without faults, waits up to `limit` for it to end,
    /// and records whether it succeeded as the `baseline_succeeds` verdict.
    ///
    /// # Errors
    /// When the deployment cannot be created.
    pub async fn run_baseline(
        &self,
        cluster: &SimCluster,
        rng: &mut ChaCha8Rng,
        limit: Duration,
        verdicts: &mut Verdicts,
    ) -> Result<(), ScenarioError> {
        let baseline = self.deploy(cluster, rng, self.revisions[0], Duration::from_secs(60)).await?;
        let ended = cluster
            .wait_for("the baseline deployment", limit, |cluster| {
                status(cluster, &baseline).is_some_and(DeploymentStatus::is_terminal)
            })
            .await;
        verdicts.record(
            "baseline_succeeds",
            match (ended, status(cluster, &baseline)) {
                (Ok(()), Some(DeploymentStatus::Succeeded)) => Ok(()),
                (_, status) => Err(Violation::new(format!("the fault-free deployment {baseline} ended {status:?}"))),
            },
        );
        Ok(())
    }

    /// Creates a deployment of `revision` to the group, retrying for up to `timeout`
    /// while there is no leader. Returns its id.
    ///
    /// # Errors
    /// It could not commit, or was refused (another deployment of the group runs).
    pub async fn deploy(
        &self,
        cluster: &SimCluster,
        rng: &mut ChaCha8Rng,
        revision: RevisionId,
        timeout: Duration,
    ) -> Result<DeploymentId, ScenarioError> {
        self.deploy_to(cluster, rng, revision, timeout, None).await
    }

    /// As [`Self::deploy`], on the hosts `target_instances` selects (a blue/green
    /// deployment's green fleet) when given.
    ///
    /// # Errors
    /// As [`Self::deploy`].
    pub async fn deploy_to(
        &self,
        cluster: &SimCluster,
        rng: &mut ChaCha8Rng,
        revision: RevisionId,
        timeout: Duration,
        target_instances: Option<TargetSelector>,
    ) -> Result<DeploymentId, ScenarioError> {
        let mut bytes = [0u8; 9];
        rng.fill_bytes(&mut bytes);
        let deployment_id = DeploymentId::from_random(bytes);
        let spec = DeploymentSpec {
            alarm_configuration: None,
            application_name: self.application.clone(),
            deployment_group_name: self.group.clone(),
            revision_id: revision,
            deployment_config_name: None,
            description: "sim".into(),
            ignore_application_stop_failures: false,
            file_exists_behavior: FileExistsBehavior::Overwrite,
            auto_rollback_configuration: None,
            creator: DeploymentCreator::User,
            targets: None,
            target_instances,
            shift: None,
        };
        let command = Command::CreateDeployment { spec, deployment_id: deployment_id.clone() };
        let outcome = cluster.propose(command, timeout).await?;
        cluster.trace.note(&format!("create deployment {deployment_id} of revision {revision}: {outcome:?}"));
        let exists = |cluster: &SimCluster| {
            cluster.leader().is_some_and(|leader| {
                cluster.node(leader).state().read(|state| state.deployments.contains_key(&deployment_id))
            })
        };
        match outcome {
            Outcome::Done => Ok(deployment_id),
            Outcome::Rejected(_) if exists(cluster) => Ok(deployment_id),
            outcome => Err(ScenarioError::DeploymentRefused { revision, outcome }),
        }
    }
}

/// `spec` as `style` wants it (creating route [`ROUTE`] when it has one).
async fn styled(
    cluster: &SimCluster,
    spec: DeploymentGroupSpec,
    style: Style,
) -> Result<DeploymentGroupSpec, ScenarioError> {
    Ok(match style {
        Style::InPlace => spec,
        Style::Routed { drain_seconds } => routed(cluster, spec, drain_seconds).await?,
        Style::BlueGreen { drain_seconds, configuration } => DeploymentGroupSpec {
            deployment_type: DeploymentType::BlueGreen,
            blue_green_deployment_configuration: Some(configuration),
            ..routed(cluster, spec, drain_seconds).await?
        },
    })
}

/// Creates route [`ROUTE`] and returns `spec` deploying with traffic control on it.
async fn routed(
    cluster: &SimCluster,
    spec: DeploymentGroupSpec,
    drain_seconds: u32,
) -> Result<DeploymentGroupSpec, ScenarioError> {
    let route = RouteSpec {
        route_name: ROUTE.into(),
        listen_port: 18000,
        target_port: 8080,
        router_tags: [("router".to_string(), "none".to_string())].into_iter().collect(),
        drain_seconds,
        command: None,
    };
    setup_command(cluster, Command::CreateRoute { spec: route }).await?;
    Ok(DeploymentGroupSpec {
        deployment_option: DeploymentOption::WithTrafficControl,
        load_balancer_info: Some(LoadBalancerInfo {
            target_group_info_list: vec![TargetGroupInfo { name: ROUTE.into() }],
            target_group_pair_info_list: Vec::new(),
        }),
        ..spec
    })
}

/// The status of a deployment as the observer replayed it.
pub fn status(cluster: &SimCluster, deployment: &DeploymentId) -> Option<DeploymentStatus> {
    cluster.with_observer(|observer| observer.shadow().deployments.get(deployment).map(|deployment| deployment.status))
}

/// True when every deployment the observer knows has ended.
pub fn all_ended(cluster: &SimCluster) -> bool {
    cluster.with_observer(|observer| observer.shadow().active_deployments().next().is_none())
}
