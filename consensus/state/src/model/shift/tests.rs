use super::*;

fn spec() -> ShiftSpec {
    ShiftSpec {
        function_name: "checkout".into(),
        alias: "live".into(),
        current_version: 1,
        target_version: 2,
        hooks: vec![("BeforeAllowTraffic".into(), "checkout-pre".into())],
    }
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
    let back = spec().reversed();
    assert_eq!((back.current_version, back.target_version, back.hooks.len()), (2, 1, 0));
    assert_eq!(back.target_id(), "checkout:live");
}
