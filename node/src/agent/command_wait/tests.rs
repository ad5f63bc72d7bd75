use super::*;

fn wait(route: &str, version: u64, routers: &[u64], down: &[u64]) -> CommandRouteWait {
    CommandRouteWait {
        route_name: route.to_string(),
        command: "/etc/lb/reload".to_string(),
        version,
        routers: routers.iter().map(|id| NodeId(*id)).collect(),
        routers_down: down.iter().map(|id| NodeId(*id)).collect(),
    }
}

fn ran(version: u64, succeeded: bool, output: &str) -> Result<Option<RouteCommandOutcome>, RouterAskError> {
    let status = if succeeded { "exit status: 0" } else { "exit status: 1" };
    Ok(Some(RouteCommandOutcome {
        route_version: version,
        succeeded,
        status: status.to_string(),
        output_tail: output.to_string(),
    }))
}

fn failed(verdict: Verdict) -> Diagnostics {
    match verdict {
        Verdict::Failed(diagnostics) => diagnostics,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn the_event_succeeds_once_every_router_ran_the_change_or_a_later_one() {
    // Route web at version 5, routers 2 and 3: router 2 first answers with an older
    // run, then nothing new; router 3 ran a later version. Only once router 2 ran
    // version 5 does the event succeed, and only the pending router is asked again.
    let start = Instant::now();
    let mut core = CommandWait::new(&[wait("web", 5, &[2, 3], &[])], start, COMMAND_WAIT_TIMEOUT);
    assert_eq!(core.to_ask(), vec![("web".to_string(), NodeId(2)), ("web".to_string(), NodeId(3))]);
    core.handle_answer("web", NodeId(2), ran(4, false, "stale failure"));
    core.handle_answer("web", NodeId(3), ran(6, true, ""));
    assert_eq!(core.verdict(start), Verdict::Waiting, "a failure on an older version does not count");
    assert_eq!(core.to_ask(), vec![("web".to_string(), NodeId(2))]);
    core.handle_answer("web", NodeId(2), Ok(None));
    core.handle_answer("web", NodeId(2), ran(5, true, ""));
    assert_eq!(
        core.verdict(start),
        Verdict::Succeeded("route web's command succeeded on router node(s) 3, 2".to_string())
    );
}

#[test]
fn a_failed_run_on_the_change_fails_the_event_naming_router_and_route_with_the_output() {
    // Two routes; router 4 of route api fails on the wanted version: the event fails
    // at once, ScriptFailed, with the program, router, route and the output tail.
    let start = Instant::now();
    let waits = [wait("web", 2, &[2], &[]), wait("api", 7, &[4], &[])];
    let mut core = CommandWait::new(&waits, start, COMMAND_WAIT_TIMEOUT);
    core.handle_answer("api", NodeId(4), ran(7, false, "upstream check failed\n"));
    core.handle_answer("web", NodeId(2), ran(2, true, ""));
    let diagnostics = failed(core.verdict(start));
    assert_eq!(diagnostics.error_code, LifecycleErrorCode::ScriptFailed);
    assert_eq!(diagnostics.script_name, "/etc/lb/reload");
    assert_eq!(
        diagnostics.message,
        "the command of route api failed on router node 4 (route version 7): exit status: 1"
    );
    assert_eq!(diagnostics.log_tail, "upstream check failed\n");
    assert!(core.to_ask().is_empty(), "nothing more to ask once failed");
}

#[test]
fn at_the_deadline_the_event_fails_naming_the_routers_that_did_not_confirm() {
    // Router 2 never answers, router 3 is still on an old version: both are named,
    // with why, once the wait is over, and not a moment before.
    let start = Instant::now();
    let timeout = Duration::from_secs(120);
    let mut core = CommandWait::new(&[wait("web", 3, &[2, 3], &[])], start, timeout);
    core.handle_answer("web", NodeId(2), Err(RouterAskError::NoAddress(NodeId(2))));
    core.handle_answer("web", NodeId(3), ran(2, true, ""));
    assert_eq!(core.verdict(start + timeout - Duration::from_millis(1)), Verdict::Waiting);
    let diagnostics = failed(core.verdict(start + timeout));
    assert_eq!(diagnostics.error_code, LifecycleErrorCode::UnknownError);
    assert!(
        diagnostics.message.contains("route web on router node 2 (no answer: node 2's address is unknown here)"),
        "{diagnostics:?}"
    );
    assert!(
        diagnostics.message.contains("route web on router node 3 (last ran it on version 2, not yet on 3)"),
        "{diagnostics:?}"
    );
}

#[test]
fn a_route_without_routers_or_with_only_dead_ones_does_not_hold_the_event() {
    // Route web has no router; route api's only router (5) is down: nothing to ask,
    // the event succeeds at once and says so.
    let start = Instant::now();
    let core = CommandWait::new(&[wait("web", 1, &[], &[]), wait("api", 1, &[], &[5])], start, COMMAND_WAIT_TIMEOUT);
    assert!(core.to_ask().is_empty());
    assert_eq!(
        core.verdict(start),
        Verdict::Succeeded(
            "route api's command ran on no router (not waited for, down: node(s) 5); \
             route web's command ran on no router"
                .to_string()
        )
    );
}

#[test]
fn answers_for_pairs_not_waited_for_are_ignored() {
    let start = Instant::now();
    let mut core = CommandWait::new(&[wait("web", 1, &[2], &[])], start, COMMAND_WAIT_TIMEOUT);
    core.handle_answer("web", NodeId(9), ran(1, false, "not a router of web"));
    core.handle_answer("other", NodeId(2), ran(1, false, "not a route of this event"));
    assert_eq!(core.verdict(start), Verdict::Waiting);
}
