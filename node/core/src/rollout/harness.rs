//! Test harness: plays deployments against the real replicated state.
//!
//! It builds a [`ClusterState`] with members, an application, a revision, a
//! deployment configuration, a group and a deployment, then turns the planner's
//! actions into [`Command`]s and feeds them through [`ClusterState::apply`], so the
//! tests check the planner against the real preconditions (a `Finish` is refused while
//! a target is in progress, only pending targets start, …) rather than a mirror of
//! them. Agents' results arrive as `ReportTargets`, as they do in production.

use std::collections::BTreeMap;

use fleetmesh_state::model::deployment::{
    Deployment, DeploymentCreator, ErrorCode, LifecycleEvent, LifecycleEventStatus, TargetStatus, IN_PLACE_EVENTS,
};
use fleetmesh_state::model::ids::{DeploymentId, Hash32, RevisionId, UnixMillis};
use fleetmesh_state::model::members::Member;
use fleetmesh_state::model::resources::{
    ComputePlatform, DeploymentGroup, FileExistsBehavior, InstanceRecord, MinimumHealthyHosts, MinimumHealthyHostsType,
    TagFilter, TagFilterType, TargetSelector,
};
use fleetmesh_state::model::revision::{
    ChunkRef, ChunkingParams, EntryKind, Manifest, ManifestEntry, RevisionRecord, MANIFEST_FORMAT,
};
use fleetmesh_state::model::traffic_routing::{
    TimeBasedCanary, TimeBasedLinear, TrafficRoutingConfig, TrafficRoutingType,
};
use fleetmesh_state::NodeId;
use fleetmesh_state::{ClusterState, Command, DeploymentGroupSpec, DeploymentSpec, Outcome, Proposal, TargetReport};

use super::action::Action;
use super::deadlines::next_deadline;
use super::fleet::{FleetView, HostView};
use super::plan::PlannerSettings;
use super::planner::{CodeDeployPlanner, WavePlanner};

const APPLICATION: &str = "web";
const GROUP: &str = "fleet";
const CUSTOM_CONFIG: &str = "custom";

/// The deployment configuration a harness deployment uses.
#[derive(Clone, Copy, Debug)]
pub(super) enum Config {
    /// A `CodeDeployDefault.*` configuration by name.
    Predefined(&'static str),
    /// A custom HOST_COUNT or FLEET_PERCENT rule.
    Custom(MinimumHealthyHosts),
    /// A custom rule with canary or linear steps.
    Routed(MinimumHealthyHosts, TrafficRoutingConfig),
}

/// One deployment in a real cluster state, with a liveness view and a clock.
pub(super) struct Harness {
    pub(super) state: ClusterState,
    pub(super) deployment_id: DeploymentId,
    pub(super) fleet: FleetView,
    pub(super) now: UnixMillis,
    pub(super) settings: PlannerSettings,
    /// The planner under test: CodeDeploy's rules unless a test plants another.
    pub(super) planner: Box<dyn WavePlanner>,
    report_seq: u64,
}

impl Harness {
    /// `hosts` alive members, all targets of a deployment under `config`.
    pub(super) fn new(hosts: u64, config: Config) -> Self {
        Self::build(hosts, None, config)
    }

    /// `hosts` alive members; the deployment targets only `targets`.
    pub(super) fn with_targets(hosts: u64, targets: &[u64], config: Config) -> Self {
        Self::build(hosts, Some(targets.iter().copied().map(NodeId).collect()), config)
    }

    fn build(hosts: u64, targets: Option<Vec<NodeId>>, config: Config) -> Self {
        let mut state = ClusterState::default();
        for id in 1..=hosts {
            let id = NodeId(id);
            let address = "127.0.0.1:7400".parse().expect("literal address");
            let tags = BTreeMap::from([("role".to_string(), "web".to_string())]);
            state.members.insert(
                id,
                Member {
                    id,
                    listen: address,
                    api: address,
                    tags,
                    joined_at: UnixMillis(0),
                    advertise: None,
                    instance_name: None,
                },
            );
        }
        state.next_node_id = hosts + 1;
        let mut harness = Self {
            state,
            deployment_id: DeploymentId("d-TEST00001".into()),
            fleet: FleetView::all_alive((1..=hosts).map(NodeId)),
            now: UnixMillis(1_000),
            settings: PlannerSettings::default(),
            planner: Box::new(CodeDeployPlanner),
            report_seq: 0,
        };
        let revision = revision_record();
        let config_name = match config {
            Config::Predefined(name) => name.to_string(),
            Config::Custom(rule) => {
                harness.commit(vec![custom_config(rule, None)]);
                CUSTOM_CONFIG.to_string()
            }
            Config::Routed(rule, routing) => {
                harness.commit(vec![custom_config(rule, Some(routing))]);
                CUSTOM_CONFIG.to_string()
            }
        };
        let selector = TargetSelector {
            tag_filters: vec![TagFilter {
                key: Some("role".into()),
                value: Some("web".into()),
                filter_type: TagFilterType::KeyAndValue,
            }],
            tag_set: vec![],
        };
        harness.commit(vec![
            Command::CreateApplication {
                name: APPLICATION.into(),
                application_id: "app-1".into(),
                compute_platform: ComputePlatform::Server,
            },
            Command::RegisterRevision { record: Box::new(revision.clone()) },
            Command::CreateDeploymentGroup {
                spec: DeploymentGroupSpec {
                    alarm_configuration: None,
                    application_name: APPLICATION.into(),
                    deployment_group_name: GROUP.into(),
                    deployment_config_name: config_name,
                    target_selector: selector,
                    auto_rollback_configuration: Default::default(),
                    update_outdated_instances: false,
                    deployment_option: Default::default(),
                    load_balancer_info: None,
                    deployment_type: Default::default(),
                    blue_green_deployment_configuration: None,
                    service_role_arn: None,
                    ecs_services: Vec::new(),
                    trigger_configurations: Vec::new(),
                },
                deployment_group_id: "group-1".into(),
            },
            Command::CreateDeployment {
                spec: DeploymentSpec {
                    alarm_configuration: None,
                    application_name: APPLICATION.into(),
                    deployment_group_name: GROUP.into(),
                    revision_id: revision.revision_id,
                    deployment_config_name: None,
                    description: "harness".into(),
                    ignore_application_stop_failures: false,
                    file_exists_behavior: FileExistsBehavior::Disallow,
                    auto_rollback_configuration: None,
                    creator: DeploymentCreator::User,
                    targets,
                    target_instances: None,
                    shift: None,
                },
                deployment_id: harness.deployment_id.clone(),
            },
        ]);
        harness
    }

    /// Applies `commands` at the current time; every one must be accepted.
    fn commit(&mut self, commands: Vec<Command>) {
        let proposal = Proposal::new(self.now, commands);
        let response = self.state.apply(&proposal);
        for (command, outcome) in proposal.commands.iter().zip(&response.outcomes) {
            assert!(!matches!(outcome, Outcome::Rejected(_)), "apply refused {command:?}: {outcome:?}");
        }
        self.state.check_invariants();
    }

    pub(super) fn deployment(&self) -> &Deployment {
        &self.state.deployments[&self.deployment_id]
    }

    pub(super) fn deployment_mut(&mut self) -> &mut Deployment {
        self.state.deployments.get_mut(&self.deployment_id).expect("the harness deployment exists")
    }

    pub(super) fn group(&self) -> &DeploymentGroup {
        self.state.deployment_group(APPLICATION, GROUP).expect("the harness group exists")
    }

    pub(super) fn group_mut(&mut self) -> &mut DeploymentGroup {
        self.state
            .deployment_groups
            .get_mut(APPLICATION)
            .and_then(|groups| groups.get_mut(GROUP))
            .expect("the harness group exists")
    }

    pub(super) fn revision_id(&self) -> RevisionId {
        self.deployment().revision_id
    }

    /// Sets the group's record of `host` as if an earlier deployment left it so.
    pub(super) fn set_record(&mut self, host: u64, revision_id: Option<RevisionId>, healthy: bool) {
        let record = InstanceRecord { revision_id, healthy, last_deployment_id: DeploymentId("d-EARLIER01".into()) };
        self.group_mut().instances.insert(NodeId(host), record);
    }

    /// What the planner says now.
    pub(super) fn plan(&self) -> Vec<Action> {
        self.planner.plan(self.deployment(), self.group(), &self.fleet, self.now, &self.settings)
    }

    /// Commits `actions` through the real apply.
    pub(super) fn apply(&mut self, actions: Vec<Action>) {
        let id = self.deployment_id.clone();
        self.commit(actions.into_iter().map(|action| action.into_command(&id, None)).collect());
    }

    /// Plans and commits; returns what was planned.
    pub(super) fn step(&mut self) -> Vec<Action> {
        let actions = self.plan();
        self.apply(actions.clone());
        actions
    }

    /// The host's agent reports its target finished. A failure fails BeforeInstall, so
    /// the group's record keeps the host's previous revision.
    pub(super) fn report(&mut self, host: NodeId, succeeded: bool) {
        self.report_seq += 1;
        let failing = if succeeded { None } else { Some("BeforeInstall") };
        let mut reached_failure = false;
        let lifecycle_events = IN_PLACE_EVENTS
            .iter()
            .map(|name| {
                let status = if reached_failure {
                    LifecycleEventStatus::Skipped
                } else if failing == Some(*name) {
                    reached_failure = true;
                    LifecycleEventStatus::Failed
                } else {
                    LifecycleEventStatus::Succeeded
                };
                LifecycleEvent { status, ..LifecycleEvent::pending(name) }
            })
            .collect();
        let status = if succeeded { TargetStatus::Succeeded } else { TargetStatus::Failed };
        let report = TargetReport {
            deployment_id: self.deployment_id.clone(),
            target_id: host,
            seq: self.report_seq,
            status,
            lifecycle_events,
        };
        self.commit(vec![Command::ReportTargets { reports: vec![report] }]);
        assert_eq!(self.status(host.0), status, "report for {host} was not applied");
    }

    pub(super) fn status(&self, host: u64) -> TargetStatus {
        self.deployment().targets[&NodeId(host)].status
    }

    pub(super) fn in_flight(&self) -> Vec<NodeId> {
        let targets = self.deployment().targets.values();
        targets.filter(|target| target.status == TargetStatus::InProgress).map(|target| target.target_id).collect()
    }

    pub(super) fn advance(&mut self, ms: u64) {
        self.now = UnixMillis(self.now.0 + ms);
    }

    /// The host stops answering now.
    pub(super) fn kill(&mut self, host: u64) {
        self.fleet.hosts.insert(NodeId(host), HostView::dead_since(self.now));
    }

    /// Plays the deployment to its end: each round plans, commits, then every
    /// in-flight target reports (hosts in `failing` fail). Returns the waves started.
    pub(super) fn run_to_end(&mut self, failing: &[u64]) -> Vec<Vec<u64>> {
        self.run_timed(failing).into_iter().map(|(_, wave)| wave).collect()
    }

    /// [`Self::run_to_end`], with the time each wave started. A round that decides
    /// nothing with nothing in flight jumps the clock to the planner's next deadline
    /// (a bake's end), as the leader's shell sleeps until it.
    pub(super) fn run_timed(&mut self, failing: &[u64]) -> Vec<(UnixMillis, Vec<u64>)> {
        let mut waves = Vec::new();
        // Each round ends at least one target, a bake or the deployment (3 per target
        // + 2 is generous); more means the planner stalls.
        let rounds_max = 3 * self.deployment().targets.len() + 2;
        for _ in 0..rounds_max {
            let actions = self.step();
            let is_idle = actions.is_empty();
            for action in actions {
                if let Action::Start(wave) = action {
                    if !wave.is_empty() {
                        waves.push((self.now, wave.iter().map(|id| id.0).collect()));
                    }
                }
            }
            if self.deployment().status.is_terminal() {
                return waves;
            }
            if is_idle && self.in_flight().is_empty() {
                let deadline = next_deadline(self.deployment(), &self.fleet, &self.settings);
                self.now = deadline.expect("an idle, unfinished deployment waits for a deadline");
                continue;
            }
            for host in self.in_flight() {
                self.report(host, !failing.contains(&host.0));
            }
            self.advance(1_000);
        }
        panic!("deployment did not end within {rounds_max} rounds: {:?}", self.deployment().overview());
    }
}

/// The harness's custom configuration, with `routing` if given.
fn custom_config(rule: MinimumHealthyHosts, routing: Option<TrafficRoutingConfig>) -> Command {
    Command::CreateDeploymentConfig {
        name: CUSTOM_CONFIG.into(),
        deployment_config_id: "config-1".into(),
        compute_platform: ComputePlatform::Server,
        minimum_healthy_hosts: rule,
        traffic_routing_config: routing,
    }
}

/// A minimal valid revision: one `appspec.yml` of one chunk.
fn revision_record() -> RevisionRecord {
    let chunk = ChunkRef(Hash32::of(b"version: 0.0\nos: linux\n"), 22);
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        chunking: ChunkingParams { algorithm: "fastcdc-v2020".into(), min_bytes: 16, avg_bytes: 64, max_bytes: 256 },
        entries: vec![ManifestEntry {
            path: "appspec.yml".into(),
            mode: 0o644,
            kind: EntryKind::File { size: 22, chunks: vec![chunk] },
        }],
    };
    RevisionRecord {
        revision_id: manifest.revision_id(),
        application_name: APPLICATION.into(),
        description: "harness revision".into(),
        size_bytes: 22,
        unique_bytes: 22,
        chunk_count: 1,
        register_time: UnixMillis(0),
        registered_by: "harness".into(),
        seeds: vec![NodeId(1)],
        created_by: None,
        manifest,
        app_spec: None,
        source: None,
    }
}

/// Node ids from plain numbers.
pub(super) fn ids(hosts: &[u64]) -> Vec<NodeId> {
    hosts.iter().copied().map(NodeId).collect()
}

/// The hosts a round fails, in action order.
pub(super) fn failed_hosts(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::FailTargets(targets) => Some(targets.iter().map(|(id, _)| id.0)),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The error code of a round's `Finish`: `None` without a Finish, `Some(None)` for success.
pub(super) fn finish_code(actions: &[Action]) -> Option<Option<ErrorCode>> {
    actions.iter().find_map(|action| match action {
        Action::Finish { error, .. } => Some(error.as_ref().map(|error| error.code)),
        _ => None,
    })
}

/// A custom HOST_COUNT configuration.
pub(super) fn host_count(value: u32) -> Config {
    Config::Custom(MinimumHealthyHosts { kind: MinimumHealthyHostsType::HostCount, value })
}

/// A canary of `percentage` % baking `seconds`, under `rule` (OneAtATime's when `None`,
/// the API's default for a config with steps).
pub(super) fn canary(percentage: u32, seconds: u32, rule: Option<MinimumHealthyHosts>) -> Config {
    let routing = TrafficRoutingConfig {
        kind: TrafficRoutingType::TimeBasedCanary,
        time_based_canary: Some(TimeBasedCanary {
            canary_percentage: percentage,
            canary_interval: None,
            canary_interval_seconds: Some(seconds),
        }),
        time_based_linear: None,
    };
    Config::Routed(rule.unwrap_or(ONE_AT_A_TIME_RULE), routing)
}

/// Linear steps of `percentage` % every `seconds`, under `rule` (OneAtATime's when `None`).
pub(super) fn linear(percentage: u32, seconds: u32, rule: Option<MinimumHealthyHosts>) -> Config {
    let routing = TrafficRoutingConfig {
        kind: TrafficRoutingType::TimeBasedLinear,
        time_based_canary: None,
        time_based_linear: Some(TimeBasedLinear {
            linear_percentage: percentage,
            linear_interval: None,
            linear_interval_seconds: Some(seconds),
        }),
    };
    Config::Routed(rule.unwrap_or(ONE_AT_A_TIME_RULE), routing)
}

/// OneAtATime's rule.
const ONE_AT_A_TIME_RULE: MinimumHealthyHosts =
    MinimumHealthyHosts { kind: MinimumHealthyHostsType::MostConcurrency, value: 1 };
