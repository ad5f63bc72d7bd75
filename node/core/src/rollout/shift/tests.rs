//! The Lambda planner against the real replicated state: its moves become commands
//! applied by [`ClusterState::apply`], AWS calls are recorded, hooks answer through
//! `PutLifecycleEventHookExecutionStatus` as a hook function would.

use fleetmesh_state::model::blue_green::BlueGreenDeploymentConfiguration;
use fleetmesh_state::model::deployment::{DeploymentCreator, DeploymentStatus, ErrorCode, TargetStatus};
use fleetmesh_state::model::ecs_group::{EcsService, TargetGroupPairInfo, TrafficRoute};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::model::resources::{AutoRollbackConfiguration, AutoRollbackEvent, ComputePlatform};
use fleetmesh_state::model::resources::{DeploymentOption, DeploymentType, LoadBalancerInfo, TargetGroupInfo};
use fleetmesh_state::model::revision::{ChunkingParams, Manifest, RevisionRecord, MANIFEST_FORMAT};
use fleetmesh_state::model::shift::{EcsSpec, EcsTaskSet, LambdaSpec, ShiftSpec};
use fleetmesh_state::{
    ClusterState, Command, DeploymentGroupSpec, DeploymentSpec, FeatureLevel, Finish, Outcome, Proposal,
};

use super::*;

const APP: &str = "checkout";
const GROUP: &str = "live";
const CONTENT: &str = "version: 0.0\nResources: []\n";

/// What the leader did, in order.
#[derive(Clone, Debug, PartialEq)]
enum Call {
    Invoke(String),
    Weight(u32),
    CreateTaskSet,
    TestTraffic,
    Retire,
}

struct Lambda {
    state: ClusterState,
    id: DeploymentId,
    now: UnixMillis,
    calls: Vec<Call>,
}

impl Lambda {
    fn new(config: &str, hooks: &[(&str, &str)], rollback: bool) -> Self {
        let spec = ShiftSpec::Lambda(LambdaSpec {
            function_name: "checkout".into(),
            alias: "live".into(),
            current_version: 3,
            target_version: 4,
            hooks: hooks.iter().map(|(event, function)| (event.to_string(), function.to_string())).collect(),
        });
        Self::with(Platform::Lambda, config, spec, rollback)
    }

    /// An ECS service `prod:web` with a test listener, hooks `hooks`, and a termination
    /// wait of `wait_seconds`.
    fn ecs(config: &str, hooks: &[(&str, &str)], rollback: bool, wait_seconds: u32) -> Self {
        let spec = ShiftSpec::Ecs(Box::new(EcsSpec {
            cluster: "prod".into(),
            service: "web".into(),
            task_set: EcsTaskSet {
                task_definition: "arn:td/web:2".into(),
                container_name: "web".into(),
                container_port: 80,
                ..EcsTaskSet::default()
            },
            target_groups: vec!["blue".into(), "green".into()],
            prod_listener: "arn:listener/prod".into(),
            test_listener: Some("arn:listener/test".into()),
            hooks: hooks.iter().map(|(event, function)| (event.to_string(), function.to_string())).collect(),
            termination_wait_ms: 0,
            rollback: None,
        }));
        Self::with(Platform::Ecs(wait_seconds), config, spec, rollback)
    }

    fn with(platform: Platform, config: &str, spec: ShiftSpec, rollback: bool) -> Self {
        let mut lambda = Self {
            state: ClusterState::default(),
            id: DeploymentId("d-LAMBDA001".into()),
            now: UnixMillis(1_000),
            calls: vec![],
        };
        let record = RevisionRecord {
            revision_id: RevisionRecord::content_id(CONTENT),
            application_name: APP.into(),
            description: String::new(),
            size_bytes: CONTENT.len() as u64,
            unique_bytes: 0,
            chunk_count: 0,
            register_time: UnixMillis(0),
            registered_by: "test".into(),
            created_by: None,
            seeds: vec![],
            manifest: Manifest {
                format: MANIFEST_FORMAT,
                chunking: ChunkingParams {
                    algorithm: "fastcdc-v2020".into(),
                    min_bytes: 16,
                    avg_bytes: 64,
                    max_bytes: 256,
                },
                entries: vec![],
            },
            app_spec: Some(CONTENT.into()),
            source: None,
        };
        let auto_rollback_configuration =
            AutoRollbackConfiguration { enabled: rollback, events: vec![AutoRollbackEvent::DeploymentFailure] };
        lambda.commit(vec![
            Command::SetFeatureLevel { level: FeatureLevel::ECS_DEPLOYMENTS },
            Command::CreateApplication {
                name: APP.into(),
                application_id: "a-1".into(),
                compute_platform: platform.compute_platform(),
            },
            Command::RegisterRevision { record: Box::new(record.clone()) },
            Command::CreateDeploymentGroup {
                spec: DeploymentGroupSpec {
                    application_name: APP.into(),
                    deployment_group_name: GROUP.into(),
                    deployment_config_name: config.into(),
                    target_selector: Default::default(),
                    auto_rollback_configuration: auto_rollback_configuration.clone(),
                    update_outdated_instances: false,
                    service_role_arn: None,
                    ..platform.group()
                },
                deployment_group_id: "g-1".into(),
            },
            Command::CreateDeployment {
                spec: DeploymentSpec {
                    alarm_configuration: None,
                    application_name: APP.into(),
                    deployment_group_name: GROUP.into(),
                    revision_id: record.revision_id,
                    deployment_config_name: None,
                    description: String::new(),
                    ignore_application_stop_failures: false,
                    file_exists_behavior: Default::default(),
                    auto_rollback_configuration: None,
                    creator: DeploymentCreator::User,
                    targets: None,
                    target_instances: None,
                    shift: Some(spec),
                },
                deployment_id: lambda.id.clone(),
            },
        ]);
        lambda
    }

    fn commit(&mut self, commands: Vec<Command>) {
        let proposal = Proposal::new(self.now, commands);
        let response = self.state.apply(&proposal);
        for (command, outcome) in proposal.commands.iter().zip(&response.outcomes) {
            assert!(!matches!(outcome, Outcome::Rejected(_)), "apply refused {command:?}: {outcome:?}");
        }
    }

    fn step(&mut self, step: ShiftStep) {
        self.commit(vec![Command::AdvanceShift { deployment_id: self.id.clone(), step }]);
    }

    fn deployment(&self) -> &Deployment {
        &self.state.deployments[&self.id]
    }

    /// Plans and acts until the deployment ends or waits for something other than
    /// time; `hook` answers each invoked hook (None: it never answers).
    fn run(&mut self, hook: &dyn Fn(&str) -> Option<LifecycleEventStatus>) {
        self.run_until(hook, UnixMillis(u64::MAX));
    }

    /// As [`Lambda::run`], stopping at a wait that ends after `until`.
    fn run_until(&mut self, hook: &dyn Fn(&str) -> Option<LifecycleEventStatus>, until: UnixMillis) {
        for _ in 0..200 {
            if self.deployment().status.is_terminal() {
                return;
            }
            match next_move(self.deployment(), self.now, 60_000) {
                ShiftMove::Commit(step) => {
                    self.commit(vec![Command::AdvanceShift { deployment_id: self.id.clone(), step }])
                }
                ShiftMove::InvokeHook { function, execution_id } => {
                    self.calls.push(Call::Invoke(function.clone()));
                    self.commit(vec![Command::AdvanceShift {
                        deployment_id: self.id.clone(),
                        step: ShiftStep::HookInvoked,
                    }]);
                    if let Some(status) = hook(&function) {
                        self.commit(vec![Command::PutLifecycleEventHookExecutionStatus {
                            deployment_id: self.id.clone(),
                            execution_id,
                            status,
                        }]);
                    }
                }
                ShiftMove::SetWeight { index, weight } => {
                    self.calls.push(Call::Weight(weight));
                    self.commit(vec![Command::AdvanceShift {
                        deployment_id: self.id.clone(),
                        step: ShiftStep::WeightApplied { index },
                    }]);
                }
                ShiftMove::Finish { succeeded, error } => {
                    let rollback_id = (!succeeded).then(|| DeploymentId("d-ROLLBACK1".into()));
                    self.commit(vec![Command::FinishDeployment(Finish {
                        deployment_id: self.id.clone(),
                        succeeded,
                        error,
                        rollback_id,
                    })]);
                }
                ShiftMove::ResolveEcs => {
                    let found = EcsProgress {
                        blue_target_group: "arn:tg/blue".into(),
                        green_target_group: "arn:tg/green".into(),
                        original: Some("arn:ts/1".into()),
                        ..EcsProgress::default()
                    };
                    self.step(ShiftStep::EcsResolved(found));
                }
                ShiftMove::CreateTaskSet => {
                    self.calls.push(Call::CreateTaskSet);
                    self.step(ShiftStep::TaskSetCreated { arn: "arn:ts/2".into() });
                }
                ShiftMove::RouteTestTraffic => {
                    self.calls.push(Call::TestTraffic);
                    self.step(ShiftStep::TestTrafficRouted);
                }
                ShiftMove::Retire => {
                    self.calls.push(Call::Retire);
                    self.step(ShiftStep::Retired);
                }
                ShiftMove::Wait(Some(at)) if at > until => return,
                ShiftMove::Wait(Some(at)) => self.now = at,
                ShiftMove::Wait(None) => return,
            }
        }
        panic!("the deployment did not end in 200 moves");
    }
}

/// The application's platform; ECS with its termination wait in seconds.
#[derive(Clone, Copy)]
enum Platform {
    Lambda,
    Ecs(u32),
}

impl Platform {
    fn compute_platform(self) -> ComputePlatform {
        match self {
            Self::Lambda => ComputePlatform::Lambda,
            Self::Ecs(_) => ComputePlatform::Ecs,
        }
    }

    /// The group's platform fields; the rest is overwritten.
    fn group(self) -> DeploymentGroupSpec {
        let mut group = DeploymentGroupSpec {
            alarm_configuration: None,
            application_name: String::new(),
            deployment_group_name: String::new(),
            deployment_config_name: String::new(),
            target_selector: Default::default(),
            auto_rollback_configuration: Default::default(),
            update_outdated_instances: false,
            deployment_option: Default::default(),
            load_balancer_info: None,
            deployment_type: Default::default(),
            blue_green_deployment_configuration: None,
            service_role_arn: None,
            ecs_services: Vec::new(),
            trigger_configurations: Vec::new(),
        };
        let Self::Ecs(wait) = self else { return group };
        group.ecs_services = vec![EcsService { service_name: "web".into(), cluster_name: "prod".into() }];
        group.load_balancer_info = Some(LoadBalancerInfo {
            target_group_info_list: vec![],
            target_group_pair_info_list: vec![TargetGroupPairInfo {
                target_groups: vec![TargetGroupInfo { name: "blue".into() }, TargetGroupInfo { name: "green".into() }],
                prod_traffic_route: TrafficRoute { listener_arns: vec!["arn:listener/prod".into()] },
                test_traffic_route: Some(TrafficRoute { listener_arns: vec!["arn:listener/test".into()] }),
            }],
        });
        group.deployment_type = DeploymentType::BlueGreen;
        group.deployment_option = DeploymentOption::WithTrafficControl;
        let mut configuration = BlueGreenDeploymentConfiguration::default();
        configuration.terminate_blue_instances_on_deployment_success.termination_wait_time_in_seconds = Some(wait);
        group.blue_green_deployment_configuration = Some(configuration);
        group
    }
}

fn succeed(_: &str) -> Option<LifecycleEventStatus> {
    Some(LifecycleEventStatus::Succeeded)
}

#[test]
fn a_canary_runs_the_hooks_and_moves_the_alias_in_two_steps_an_interval_apart() {
    let hooks = [("BeforeAllowTraffic", "pre"), ("AfterAllowTraffic", "post")];
    let mut lambda = Lambda::new("CodeDeployDefault.LambdaCanary10Percent5Minutes", &hooks, false);
    let start = lambda.now;
    lambda.run(&succeed);
    assert_eq!(
        lambda.calls,
        [Call::Invoke("pre".into()), Call::Weight(10), Call::Weight(100), Call::Invoke("post".into())]
    );
    let deployment = lambda.deployment();
    assert_eq!(deployment.status, DeploymentStatus::Succeeded);
    let run = deployment.shift.as_ref().unwrap();
    assert_eq!(run.status, TargetStatus::Succeeded);
    assert!(run.lifecycle_events.iter().all(|event| event.status == LifecycleEventStatus::Succeeded));
    assert_eq!(lambda.now.0 - start.0, 300_000, "the second step waits the canary's five minutes, no more");
}

#[test]
fn linear_steps_each_wait_their_interval_and_hookless_events_are_skipped() {
    let mut lambda = Lambda::new("CodeDeployDefault.LambdaLinear10PercentEvery1Minute", &[], false);
    lambda.run(&succeed);
    let weights: Vec<Call> = (1..=10).map(|step| Call::Weight(step * 10)).collect();
    assert_eq!(lambda.calls, weights);
    let run = lambda.deployment().shift.as_ref().unwrap();
    let statuses: Vec<_> = run.lifecycle_events.iter().map(|event| event.status).collect();
    assert_eq!(
        statuses,
        [LifecycleEventStatus::Skipped, LifecycleEventStatus::Succeeded, LifecycleEventStatus::Skipped]
    );
    assert_eq!(lambda.now.0 - 1_000, 9 * 60_000);
}

#[test]
fn a_failed_hook_fails_the_deployment_and_the_rollback_moves_the_alias_back() {
    let hooks = [("AfterAllowTraffic", "post")];
    let mut lambda = Lambda::new("CodeDeployDefault.LambdaAllAtOnce", &hooks, true);
    lambda.run(&|_| Some(LifecycleEventStatus::Failed));
    let deployment = lambda.deployment().clone();
    assert_eq!(deployment.status, DeploymentStatus::Failed);
    assert_eq!(deployment.error_information.as_ref().map(|error| error.code), Some(ErrorCode::HookExecutionFailure));
    let rollback_id = deployment.rollback_info.and_then(|info| info.rollback_deployment_id).expect("a rollback");
    lambda.id = rollback_id;
    lambda.calls.clear();
    lambda.run(&succeed);
    assert_eq!(lambda.calls, [Call::Weight(100)], "no hooks, all at once");
    let rollback = lambda.deployment();
    assert_eq!(
        (rollback.status, rollback.creator),
        (DeploymentStatus::Succeeded, DeploymentCreator::CodeDeployRollback)
    );
    let spec = rollback.shift.as_ref().unwrap().spec.lambda().unwrap();
    assert_eq!((spec.current_version, spec.target_version), (4, 3));
}

#[test]
fn a_hook_that_never_reports_times_out_and_nothing_to_roll_back_before_a_shift() {
    let hooks = [("BeforeAllowTraffic", "pre")];
    let mut lambda = Lambda::new("CodeDeployDefault.LambdaAllAtOnce", &hooks, true);
    lambda.run_until(&|_| None, lambda.now);
    assert_eq!(next_move(lambda.deployment(), lambda.now, 60_000), ShiftMove::Wait(Some(UnixMillis(61_000))));
    lambda.now = UnixMillis(61_000);
    lambda.run(&|_| None);
    let deployment = lambda.deployment();
    assert_eq!(deployment.status, DeploymentStatus::Failed);
    let error = deployment.error_information.clone().unwrap();
    assert!(error.message.contains("did not report its status within 60 s"), "{}", error.message);
    assert_eq!(lambda.calls, [Call::Invoke("pre".into())], "the alias never moved");
    let info = deployment.rollback_info.clone().unwrap();
    assert!(info.rollback_deployment_id.is_none() && info.rollback_message.contains("not moved"), "{info:?}");
}

#[test]
fn a_new_leader_sets_a_begun_step_again_and_invokes_an_unconfirmed_hook_again() {
    let hooks = [("BeforeAllowTraffic", "pre")];
    let mut lambda = Lambda::new("CodeDeployDefault.LambdaCanary10Percent5Minutes", &hooks, false);
    let step = |step| Command::AdvanceShift { deployment_id: DeploymentId("d-LAMBDA001".into()), step };
    lambda.commit(vec![step(ShiftStep::StartEvent)]);
    // The old leader committed the hook's execution and died before invoking it.
    let again = next_move(lambda.deployment(), lambda.now, 60_000);
    assert!(matches!(again, ShiftMove::InvokeHook { ref function, .. } if function == "pre"), "{again:?}");
    lambda.commit(vec![step(ShiftStep::HookInvoked)]);
    let execution_id = lambda.deployment().shift.as_ref().and_then(|run| run.hook.clone()).unwrap().execution_id;
    let status = LifecycleEventStatus::Succeeded;
    lambda.commit(vec![Command::PutLifecycleEventHookExecutionStatus {
        deployment_id: lambda.id.clone(),
        execution_id,
        status,
    }]);
    lambda.commit(vec![step(ShiftStep::StartEvent)]);
    // The old leader began step 0 and died before confirming it.
    lambda.commit(vec![step(ShiftStep::BeginWeight { index: 0 })]);
    assert_eq!(next_move(lambda.deployment(), lambda.now, 60_000), ShiftMove::SetWeight { index: 0, weight: 10 });
    assert_eq!(
        next_move(lambda.deployment(), UnixMillis(u64::MAX / 2), 60_000),
        ShiftMove::SetWeight { index: 0, weight: 10 }
    );
}

#[test]
fn the_routing_of_a_step_splits_between_the_two_versions() {
    let spec = LambdaSpec {
        function_name: "f".into(),
        alias: "a".into(),
        current_version: 3,
        target_version: 4,
        hooks: vec![],
    };
    assert_eq!(routing_of(&spec, 10), ("3".into(), Some(("4".into(), 0.1))));
    assert_eq!(routing_of(&spec, 100), ("4".into(), None));
    let same = LambdaSpec { target_version: 3, ..spec };
    assert_eq!(routing_of(&same, 10), ("3".into(), None));
}

#[test]
fn an_ecs_canary_creates_the_replacement_tests_it_shifts_and_retires_the_original_after_the_wait() {
    let hooks = [("AfterAllowTestTraffic", "smoke")];
    let mut ecs = Lambda::ecs("CodeDeployDefault.ECSCanary10Percent5Minutes", &hooks, false, 30);
    let start = ecs.now;
    ecs.run(&succeed);
    assert_eq!(
        ecs.calls,
        [
            Call::CreateTaskSet,
            Call::TestTraffic,
            Call::Invoke("smoke".into()),
            Call::Weight(10),
            Call::Weight(100),
            Call::Retire
        ]
    );
    let deployment = ecs.deployment();
    assert_eq!(deployment.status, DeploymentStatus::Succeeded);
    assert_eq!(ecs.now.0 - start.0, 300_000 + 30_000, "the canary's five minutes, then the termination wait");
    let progress = deployment.shift.as_ref().and_then(|run| run.ecs.clone()).unwrap();
    assert_eq!((progress.replacement.as_deref(), progress.retired), (Some("arn:ts/2"), true));
}

#[test]
fn a_failed_ecs_hook_rolls_back_listeners_and_task_sets_without_creating_another() {
    let hooks = [("AfterAllowTraffic", "post")];
    let mut ecs = Lambda::ecs("CodeDeployDefault.ECSAllAtOnce", &hooks, true, 0);
    ecs.run(&|_| Some(LifecycleEventStatus::Failed));
    assert_eq!(
        ecs.calls,
        [Call::CreateTaskSet, Call::TestTraffic, Call::Weight(100), Call::Invoke("post".into())],
        "nothing retired after a failure"
    );
    let deployment = ecs.deployment().clone();
    assert_eq!(deployment.status, DeploymentStatus::Failed);
    ecs.id = deployment.rollback_info.and_then(|info| info.rollback_deployment_id).expect("a rollback");
    ecs.calls.clear();
    ecs.run(&succeed);
    assert_eq!(ecs.calls, [Call::TestTraffic, Call::Weight(100), Call::Retire], "no Install, no hooks");
    let rollback = ecs.deployment();
    assert_eq!(rollback.status, DeploymentStatus::Succeeded);
    let progress = rollback.shift.as_ref().and_then(|run| run.ecs.clone()).unwrap();
    assert_eq!(progress.green_target_group, "arn:tg/blue", "traffic goes back to the original target group");
    assert_eq!(progress.replacement.as_deref(), Some("arn:ts/1"), "the original becomes primary again");
    assert_eq!(progress.original.as_deref(), Some("arn:ts/2"), "the failed replacement is deleted");
    assert_eq!(progress.remove_external_id.as_deref(), Some("d-LAMBDA001"));
}

#[test]
fn a_failed_before_install_hook_has_nothing_to_roll_back() {
    let hooks = [("BeforeInstall", "pre")];
    let mut ecs = Lambda::ecs("CodeDeployDefault.ECSAllAtOnce", &hooks, true, 0);
    ecs.run(&|_| Some(LifecycleEventStatus::Failed));
    assert_eq!(ecs.calls, [Call::Invoke("pre".into())]);
    let info = ecs.deployment().rollback_info.clone().unwrap();
    assert!(
        info.rollback_deployment_id.is_none() && info.rollback_message.contains("no replacement task set"),
        "{info:?}"
    );
}

#[test]
fn an_ecs_listener_step_splits_between_blue_and_green() {
    let progress =
        EcsProgress { blue_target_group: "b".into(), green_target_group: "g".into(), ..EcsProgress::default() };
    assert_eq!(listener_weights(&progress, 10), [("b".to_string(), 90), ("g".to_string(), 10)]);
    assert_eq!(listener_weights(&progress, 100), [("b".to_string(), 0), ("g".to_string(), 100)]);
}
