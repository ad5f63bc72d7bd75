//! The leader's core driven by made-up events and times: what it asks the shell to do,
//! and when.

use fleetmesh_state::model::deployment::TargetStatus;
use fleetmesh_state::model::ids::DeploymentId;

use super::*;

const THRESHOLDS: Thresholds = Thresholds {
    suspect_after: Duration::from_millis(2500),
    dead_after: Duration::from_millis(6000),
    first_contact_after: Duration::from_millis(9000),
};
const ME: NodeId = NodeId(1);

fn core() -> LeaderCore<u32> {
    LeaderCore::new(THRESHOLDS)
}

fn reports(target: u64, count: usize) -> Vec<TargetReport> {
    (0..count)
        .map(|index| TargetReport {
            deployment_id: DeploymentId(format!("d-{index}")),
            target_id: NodeId(target),
            seq: 1,
            status: TargetStatus::InProgress,
            lifecycle_events: Vec::new(),
        })
        .collect()
}

fn facts(term: u64, applied: u64) -> TickFacts {
    TickFacts { me: ME, term, applied, bootstrapped: true }
}

fn poll(node: u64, revision: u8, complete: bool) -> PollFacts {
    PollFacts {
        node: NodeId(node),
        release: Release::this_build(),
        revisions: vec![RevisionProgress { revision_id: RevisionId::of(&[revision]), bytes_held: 10, complete }],
    }
}

/// Every action the core has now, in order.
fn drain(core: &mut LeaderCore<u32>, now: Instant) -> Vec<String> {
    std::iter::from_fn(|| core.poll_action(now))
        .map(|action| match action {
            Action::CommitReports(reports) => format!("reports {}", reports.len()),
            Action::CommitBootstrap(_) => "bootstrap".to_string(),
            Action::Plan => "plan".to_string(),
            Action::Duties => "duties".to_string(),
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn reports_that_arrive_during_a_commit_go_together_in_the_next_within_the_bound() {
    // The first sender's reports go at once; later ones wait for that proposal to end,
    // then go together, whole senders up to the bound (one oversized sender alone).
    let now = Instant::now();
    let mut core = core();
    core.handle_reports(reports(1, 1), 1);
    assert_eq!(drain(&mut core, now), ["reports 1"]);
    core.handle_reports(reports(2, REPORTS_PER_PROPOSAL_MAX - 1), 2);
    core.handle_reports(reports(3, 1), 3);
    core.handle_reports(reports(4, REPORTS_PER_PROPOSAL_MAX + 5), 4);
    assert_eq!(drain(&mut core, now), Vec::<String>::new(), "one proposal of reports at a time");
    assert_eq!(core.reports_committed(), [1], "the first proposal answers its one sender");
    assert_eq!(drain(&mut core, now), [format!("reports {}", REPORTS_PER_PROPOSAL_MAX)]);
    assert_eq!(core.reports_committed(), [2, 3]);
    assert_eq!(drain(&mut core, now), [format!("reports {}", REPORTS_PER_PROPOSAL_MAX + 5)]);
    assert_eq!(core.reports_committed(), [4]);
    assert!(drain(&mut core, now).is_empty(), "the queue is drained");
}

#[tokio::test(start_paused = true)]
async fn reports_are_committed_whether_or_not_this_node_leads() {
    // A follower's proposal fails with "not the leader", which is the answer its
    // sender needs: reports never wait for leadership.
    let now = Instant::now();
    let mut core = core();
    core.handle_not_leading();
    core.handle_reports(reports(1, 2), 7);
    assert_eq!(drain(&mut core, now), ["reports 2"]);
    assert_eq!(core.reports_committed(), [7]);
}

#[tokio::test(start_paused = true)]
async fn a_plan_runs_when_its_inputs_change_never_twice_at_once_and_at_the_latest_each_second() {
    let start = Instant::now();
    let at = |millis: u64| start + Duration::from_millis(millis);
    let mut core = core();
    core.handle_tick(facts(2, 10), at(0));
    assert_eq!(drain(&mut core, at(0)), ["plan", "duties"], "the first tick plans");
    // An applied entry while the plan is in flight: the next plan waits for this one.
    core.handle_tick(facts(2, 11), at(10));
    assert!(drain(&mut core, at(10)).is_empty(), "one plan at a time");
    core.plan_done(None);
    // Nothing changed since the plan that just ended started? It did: entry 11.
    core.handle_tick(facts(2, 11), at(20));
    assert_eq!(drain(&mut core, at(20)), ["plan"]);
    core.plan_done(None);
    // Same inputs: no plan until the recheck bound (1 s after the last plan started)...
    core.handle_tick(facts(2, 11), at(500));
    assert_eq!(drain(&mut core, at(500)), ["duties"], "the periodic duties come every 500 ms");
    core.handle_tick(facts(2, 11), at(1019));
    assert_eq!(drain(&mut core, at(1019)), ["duties"]);
    core.handle_tick(facts(2, 11), at(1020));
    assert_eq!(drain(&mut core, at(1020)), ["plan"]);
    // ...or until the planner's own deadline, if earlier.
    core.plan_done(Some(at(1200)));
    core.handle_tick(facts(2, 11), at(1100));
    assert!(drain(&mut core, at(1100)).is_empty());
    core.handle_tick(facts(2, 11), at(1200));
    assert_eq!(drain(&mut core, at(1200)), ["plan"]);
}

#[tokio::test(start_paused = true)]
async fn a_revived_host_or_a_first_complete_download_is_a_new_plan_input() {
    let start = Instant::now();
    let at = |millis: u64| start + Duration::from_millis(millis);
    let mut core = core();
    core.handle_tick(facts(2, 10), at(0));
    drain(&mut core, at(0));
    core.plan_done(Some(at(5000)));
    // Host 5 was never heard (suspect): its first poll revives it.
    core.handle_poll(2, poll(5, 1, false), at(100));
    core.handle_tick(facts(2, 10), at(150));
    assert_eq!(drain(&mut core, at(150)), ["plan"]);
    core.plan_done(Some(at(5000)));
    // A poll with the same progress changes nothing; completing the download does,
    // once.
    core.handle_poll(2, poll(5, 1, false), at(200));
    core.handle_tick(facts(2, 10), at(250));
    assert!(drain(&mut core, at(250)).is_empty());
    core.handle_poll(2, poll(5, 1, true), at(300));
    core.handle_tick(facts(2, 10), at(350));
    assert_eq!(drain(&mut core, at(350)), ["plan"]);
    core.plan_done(Some(at(5000)));
    core.handle_poll(2, poll(5, 1, true), at(400));
    core.handle_tick(facts(2, 10), at(450));
    assert!(drain(&mut core, at(450)).is_empty(), "a download completes once");
}

#[tokio::test(start_paused = true)]
async fn a_new_term_starts_a_fresh_view_and_losing_leadership_forgets_the_plan() {
    let start = Instant::now();
    let at = |millis: u64| start + Duration::from_millis(millis);
    let mut core = core();
    core.handle_poll(2, poll(5, 1, true), at(0));
    assert_eq!(core.health(2, ME, NodeId(5), at(100)), Health::Alive);
    assert_eq!(core.revision_progress(2, RevisionId::of(&[1]), at(100)).len(), 1);
    // Term 3: nobody has been heard yet, and nothing reported.
    assert_eq!(core.health(3, ME, NodeId(5), at(200)), Health::Suspect);
    assert!(core.revision_progress(3, RevisionId::of(&[1]), at(200)).is_empty());
    assert_eq!(core.health(3, ME, ME, at(200)), Health::Alive, "the leader is alive to itself");
    // Dead only after the first-contact threshold counted from the view's start.
    assert_eq!(core.health(3, ME, NodeId(5), at(200 + 6000)), Health::Suspect);
    assert_eq!(core.health(3, ME, NodeId(5), at(200 + 9000)), Health::Dead);
    core.handle_tick(facts(3, 10), at(10_000));
    drain(&mut core, at(10_000));
    core.plan_done(None);
    core.handle_not_leading();
    core.handle_tick(facts(3, 10), at(10_010));
    assert_eq!(drain(&mut core, at(10_010)), ["plan"], "a leader again plans at once");
}

#[tokio::test(start_paused = true)]
async fn the_fleet_view_is_reused_until_health_or_membership_changes() {
    let start = Instant::now();
    let at = |millis: u64| start + Duration::from_millis(millis);
    let mut core = core();
    let members = || vec![ME, NodeId(2), NodeId(3)];
    core.handle_poll(2, poll(2, 1, false), at(0));
    core.handle_poll(2, poll(3, 1, false), at(0));
    let wall = |millis: u64| fleetmesh_state::model::ids::UnixMillis(1_000_000 + millis);
    let first = core.view(2, at(100)).fleet_view(ME, 1, at(100), wall(100), members);
    let again = core.view(2, at(200)).fleet_view(ME, 1, at(200), wall(200), || unreachable!("cached"));
    assert!(std::sync::Arc::ptr_eq(&first, &again), "nothing changed: the same view");
    let grown = core.view(2, at(300)).fleet_view(ME, 2, at(300), wall(300), members);
    assert!(!std::sync::Arc::ptr_eq(&first, &grown), "the member list changed");
    // Node 3 goes silent: dead at 6 s, with its death dated on the wall clock.
    core.handle_poll(2, poll(2, 1, false), at(6500));
    let late = core.view(2, at(7000)).fleet_view(ME, 2, at(7000), wall(7000), members);
    assert_eq!(late.hosts.get(&NodeId(3)), Some(&fleetmesh_core::rollout::HostView::dead_since(wall(6000))));
    assert_eq!(late.hosts.get(&NodeId(2)), Some(&fleetmesh_core::rollout::HostView::alive()));
}

#[tokio::test(start_paused = true)]
async fn work_of_one_kind_runs_once_at_a_time() {
    let mut core = core();
    assert!(core.begin(Work::Voters));
    assert!(!core.begin(Work::Voters), "a voter change is under way");
    assert!(core.begin(Work::FeatureLevel), "kinds do not block each other");
    core.end(Work::Voters);
    assert!(core.begin(Work::Voters));
}
