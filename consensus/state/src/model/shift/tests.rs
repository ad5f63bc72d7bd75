use super::*;

fn spec() -> ShiftSpec {
    ShiftSpec::Lambda(LambdaSpec {
        function_name: "checkout".into(),
        alias: "live".into(),
        current_version: 1,
        target_version: 2,
        hooks: vec![("BeforeAllowTraffic".into(), "checkout-pre".into())],
    })
}

fn id() -> DeploymentId {
    DeploymentId("d-TESTTEST1".into())
}

#[test]
fn weights_follow_canary_linear_and_all_at_once() {
    let canary = TrafficRouting::TimeBasedCanary { percentage: 10, interval_seconds: 300 };
    assert_eq!(shift_weights(Some(canary)), (vec![10, 100], 300_000));
    let linear = TrafficRouting::TimeBasedLinear { percentage: 25, interval_seconds: 60 };
    assert_eq!(shift_weights(Some(linear)), (vec![25, 50, 75, 100], 60_000));
    let uneven = TrafficRouting::TimeBasedLinear { percentage: 40, interval_seconds: 1 };
    assert_eq!(shift_weights(Some(uneven)).0, vec![40, 80, 100]);
    assert_eq!(shift_weights(Some(TrafficRouting::AllAtOnce)), (vec![100], 0));
    assert_eq!(shift_weights(None), (vec![100], 0));
}

#[test]
fn a_run_goes_through_its_events_and_steps_in_order() {
    let canary = TrafficRouting::TimeBasedCanary { percentage: 10, interval_seconds: 60 };
    let mut run = ShiftRun::new(spec(), Some(canary), UnixMillis(0));
    let at = UnixMillis(1);
    run.advance(&ShiftStep::StartEvent, &id(), at).unwrap();
    let hook = run.hook.clone().unwrap();
    assert_eq!(
        (hook.event.as_str(), hook.function.as_str(), hook.invoked),
        ("BeforeAllowTraffic", "checkout-pre", false)
    );
    assert!(run.advance(&ShiftStep::BeginWeight { index: 0 }, &id(), at).is_err(), "not in AllowTraffic yet");
    run.advance(&ShiftStep::HookInvoked, &id(), at).unwrap();
    assert!(run.advance(&ShiftStep::HookInvoked, &id(), at).is_err(), "invoked once");
    assert!(run.hook_status("someone-else", LifecycleEventStatus::Succeeded, at).is_err());
    assert!(run.hook_status(&hook.execution_id, LifecycleEventStatus::InProgress, at).is_err());
    run.hook_status(&hook.execution_id, LifecycleEventStatus::Succeeded, at).unwrap();
    assert_eq!(run.current_event().unwrap().1.lifecycle_event_name, "AllowTraffic");
    run.advance(&ShiftStep::StartEvent, &id(), at).unwrap();
    assert!(run.hook.is_none(), "AllowTraffic has no hook");
    assert!(run.advance(&ShiftStep::BeginWeight { index: 1 }, &id(), at).is_err(), "steps in order");
    run.advance(&ShiftStep::BeginWeight { index: 0 }, &id(), at).unwrap();
    assert!(run.advance(&ShiftStep::BeginWeight { index: 0 }, &id(), at).is_err(), "begun once");
    run.advance(&ShiftStep::WeightApplied { index: 0 }, &id(), UnixMillis(5)).unwrap();
    assert_eq!((run.applied_weight(), run.last_shift_at), (10, Some(UnixMillis(5))));
    assert!(run.advance(&ShiftStep::WeightApplied { index: 0 }, &id(), at).is_err(), "applied once");
    run.advance(&ShiftStep::BeginWeight { index: 1 }, &id(), at).unwrap();
    run.advance(&ShiftStep::WeightApplied { index: 1 }, &id(), at).unwrap();
    assert_eq!(run.applied_weight(), 100);
    let done = ShiftStep::EndEvent { status: LifecycleEventStatus::Succeeded, error: None };
    run.advance(&done, &id(), at).unwrap();
    let skipped = ShiftStep::EndEvent { status: LifecycleEventStatus::Skipped, error: None };
    run.advance(&skipped, &id(), at).unwrap();
    assert_eq!(run.status, TargetStatus::Succeeded);
    assert!(run.current_event().is_none() && !run.failed());
}

#[test]
fn a_failed_hook_skips_the_rest_and_fails_the_target() {
    let mut run = ShiftRun::new(spec(), None, UnixMillis(0));
    run.advance(&ShiftStep::StartEvent, &id(), UnixMillis(1)).unwrap();
    let execution = run.hook.clone().unwrap().execution_id;
    run.hook_status(&execution, LifecycleEventStatus::Failed, UnixMillis(2)).unwrap();
    assert!(run.failed());
    assert_eq!(run.status, TargetStatus::Failed);
    let statuses: Vec<_> = run.lifecycle_events.iter().map(|event| event.status).collect();
    assert_eq!(statuses, [LifecycleEventStatus::Failed, LifecycleEventStatus::Skipped, LifecycleEventStatus::Skipped]);
    let diagnostics = run.lifecycle_events[0].diagnostics.clone().unwrap();
    assert_eq!(diagnostics.script_name, "checkout-pre");
    assert!(run.hook_status(&execution, LifecycleEventStatus::Succeeded, UnixMillis(3)).is_err(), "once");
}

#[test]
fn execution_ids_are_stable_and_differ_by_event_and_deployment() {
    let a = execution_id(&id(), "BeforeAllowTraffic");
    assert_eq!(a, execution_id(&id(), "BeforeAllowTraffic"));
    assert_ne!(a, execution_id(&id(), "AfterAllowTraffic"));
    assert_ne!(a, execution_id(&DeploymentId("d-OTHER0001".into()), "BeforeAllowTraffic"));
    assert_eq!(a.len(), 32);
}

#[test]
fn the_reversed_spec_moves_the_alias_back_without_hooks() {
    let ShiftSpec::Lambda(lambda) = spec() else { panic!("a Lambda spec") };
    let back = ShiftSpec::Lambda(lambda.reversed());
    let reversed = back.lambda().unwrap();
    assert_eq!((reversed.current_version, reversed.target_version, reversed.hooks.len()), (2, 1, 0));
    assert_eq!(back.target_id(), "checkout:live");
}

fn ecs_spec() -> ShiftSpec {
    ShiftSpec::Ecs(Box::new(EcsSpec {
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
        hooks: vec![("AfterAllowTestTraffic".into(), "smoke".into())],
        termination_wait_ms: 0,
        rollback: None,
    }))
}

/// A Lambda spec stored at level 13 reads back as one, and an ECS spec as ECS (the
/// enum is untagged: the stored JSON of Lambda runs did not change).
#[test]
fn specs_round_trip_untagged_and_lambda_json_is_unchanged() {
    let lambda = serde_json::to_value(spec()).unwrap();
    assert_eq!(lambda["functionName"], "checkout");
    assert!(lambda.get("Lambda").is_none());
    assert_eq!(serde_json::from_value::<ShiftSpec>(lambda).unwrap(), spec());
    let ecs = serde_json::to_value(ecs_spec()).unwrap();
    assert_eq!(serde_json::from_value::<ShiftSpec>(ecs).unwrap(), ecs_spec());
    assert_eq!(ecs_spec().target_id(), "prod:web");
    assert_eq!(ecs_spec().events().len(), 8);
}

#[test]
fn an_ecs_run_resolves_creates_routes_test_traffic_shifts_and_retires_in_order() {
    let mut run = ShiftRun::new(ecs_spec(), None, UnixMillis(0));
    let at = UnixMillis(1);
    let skipped = ShiftStep::EndEvent { status: LifecycleEventStatus::Skipped, error: None };
    let done = ShiftStep::EndEvent { status: LifecycleEventStatus::Succeeded, error: None };
    run.advance(&skipped, &id(), at).unwrap(); // BeforeInstall: no hook
    let found = EcsProgress {
        blue_target_group: "arn:tg/blue".into(),
        green_target_group: "arn:tg/green".into(),
        original: Some("arn:ts/1".into()),
        ..EcsProgress::default()
    };
    assert!(run.advance(&ShiftStep::EcsResolved(found.clone()), &id(), at).is_err(), "Install has not started");
    run.advance(&ShiftStep::StartEvent, &id(), at).unwrap();
    assert!(run.advance(&ShiftStep::TaskSetCreated { arn: "arn:ts/2".into() }, &id(), at).is_err(), "resolve first");
    run.advance(&ShiftStep::EcsResolved(found.clone()), &id(), at).unwrap();
    assert!(run.advance(&ShiftStep::EcsResolved(found), &id(), at).is_err(), "resolved once");
    run.advance(&ShiftStep::TaskSetCreated { arn: "arn:ts/2".into() }, &id(), at).unwrap();
    assert!(run.advance(&ShiftStep::TaskSetCreated { arn: "arn:ts/3".into() }, &id(), at).is_err(), "created once");
    run.advance(&done, &id(), at).unwrap(); // Install
    run.advance(&skipped, &id(), at).unwrap(); // AfterInstall
    assert!(run.advance(&ShiftStep::TestTrafficRouted, &id(), at).is_err(), "AllowTestTraffic has not started");
    run.advance(&ShiftStep::StartEvent, &id(), at).unwrap();
    run.advance(&ShiftStep::TestTrafficRouted, &id(), at).unwrap();
    run.advance(&done, &id(), at).unwrap();
    assert!(run.advance(&ShiftStep::Retired, &id(), at).is_err(), "not before the events end");
    run.advance(&ShiftStep::StartEvent, &id(), at).unwrap(); // AfterAllowTestTraffic: the smoke hook
    let execution = run.hook.clone().unwrap().execution_id;
    run.hook_status(&execution, LifecycleEventStatus::Succeeded, at).unwrap();
    run.advance(&skipped, &id(), at).unwrap(); // BeforeAllowTraffic
    run.advance(&ShiftStep::StartEvent, &id(), at).unwrap();
    run.advance(&ShiftStep::BeginWeight { index: 0 }, &id(), at).unwrap();
    run.advance(&ShiftStep::WeightApplied { index: 0 }, &id(), at).unwrap();
    run.advance(&done, &id(), at).unwrap();
    run.advance(&skipped, &id(), at).unwrap(); // AfterAllowTraffic
    assert_eq!(run.status, TargetStatus::Succeeded);
    assert!(!run.retired());
    run.advance(&ShiftStep::Retired, &id(), at).unwrap();
    assert!(run.retired());
    assert!(run.advance(&ShiftStep::Retired, &id(), at).is_err(), "retired once");
    let progress = run.ecs.clone().unwrap();
    assert_eq!((progress.replacement.as_deref(), progress.test_traffic_routed), (Some("arn:ts/2"), true));
    let back = progress.reversed(&id());
    assert_eq!((back.original.as_deref(), back.replacement.as_deref()), (Some("arn:ts/2"), Some("arn:ts/1")));
    assert_eq!(
        (back.blue_target_group.as_str(), back.remove_external_id.as_deref()),
        ("arn:tg/green", Some("d-TESTTEST1"))
    );
}
