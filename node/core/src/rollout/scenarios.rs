//! Every example of `codedeploy.md` §4.1 and §4.2, played to the end against the real
//! replicated state by the [`Harness`]: each round the planner's actions are applied,
//! then every in-flight target reports (the listed hosts fail).

use fleetmesh_state::model::deployment::{DeploymentCreator, DeploymentStatus, ErrorCode, TargetStatus};
use fleetmesh_state::model::resources::{
    MinimumHealthyHosts, MinimumHealthyHostsType, ALL_AT_ONCE, HALF_AT_A_TIME, ONE_AT_A_TIME,
};

use super::harness::{Config, Harness};

fn host_count(value: u32) -> Config {
    Config::Custom(MinimumHealthyHosts { kind: MinimumHealthyHostsType::HostCount, value })
}

fn fleet_percent(value: u32) -> Config {
    Config::Custom(MinimumHealthyHosts { kind: MinimumHealthyHostsType::FleetPercent, value })
}

/// Plays a deployment of `hosts` hosts under `config` where `failing` fail; returns
/// the harness at the end and the waves.
fn play(hosts: u64, config: Config, failing: &[u64]) -> (Harness, Vec<Vec<u64>>) {
    let mut harness = Harness::new(hosts, config);
    let waves = harness.run_to_end(failing);
    (harness, waves)
}

fn assert_succeeded(harness: &Harness) {
    let deployment = harness.deployment();
    assert_eq!(deployment.status, DeploymentStatus::Succeeded, "{:?}", deployment.error_information);
    assert_eq!(deployment.error_information, None);
}

/// Asserts the deployment failed with `code` and returns its message.
fn assert_failed(harness: &Harness, code: ErrorCode) -> String {
    let deployment = harness.deployment();
    assert_eq!(deployment.status, DeploymentStatus::Failed);
    let error = deployment.error_information.clone().expect("a failed deployment says why");
    assert_eq!(error.code, code, "{}", error.message);
    error.message
}

/// Asserts `hosts` were never started and show Skipped.
fn assert_skipped(harness: &Harness, hosts: &[u64]) {
    for host in hosts {
        assert_eq!(harness.status(*host), TargetStatus::Skipped, "host {host}");
        assert_eq!(harness.deployment().targets[&fleetmesh_state::NodeId(*host)].wave, 0, "host {host}");
    }
}

fn sizes(waves: &[Vec<u64>]) -> Vec<usize> {
    waves.iter().map(Vec::len).collect()
}

#[test]
fn nine_hosts_host_count_six_goes_three_at_a_time() {
    // §4.2 API example, 9 hosts with HOST_COUNT 6, all succeed: asserts waves of 3.
    let (harness, waves) = play(9, host_count(6), &[]);
    assert_eq!(waves, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]]);
    assert_succeeded(&harness);
}

#[test]
fn nine_hosts_host_count_six_needs_six_successes() {
    // 9 hosts, HOST_COUNT 6. First the last wave fails whole (6 successes): asserts
    // success. Then failures on hosts 1, 4 and 7: each lowers the budget, so after the
    // third only 6 healthy remain and hosts 8–9 cannot start: asserts
    // HEALTH_CONSTRAINTS naming the minimum, with 8 and 9 skipped.
    let (harness, waves) = play(9, host_count(6), &[7, 8, 9]);
    assert_eq!(sizes(&waves), vec![3, 3, 3]);
    assert_succeeded(&harness);

    let (harness, waves) = play(9, host_count(6), &[1, 4, 7]);
    assert_eq!(waves, vec![vec![1, 2, 3], vec![4, 5], vec![6], vec![7]]);
    let message = assert_failed(&harness, ErrorCode::HealthConstraints);
    assert!(message.contains("fewer than 6 healthy"), "{message}");
    assert!(message.contains("4 of 9 targets succeeded and 3 failed"), "{message}");
    assert_skipped(&harness, &[8, 9]);
}

#[test]
fn nine_hosts_forty_percent_goes_five_at_a_time_and_needs_four() {
    // §4.2 API example, 9 hosts with FLEET_PERCENT 40 (M = ceil(3.6) = 4). All
    // succeed: asserts waves of 5 then 4. With hosts 5–9 failing, 4 successes remain:
    // asserts success. With 4–9 failing only 3 succeed and host 9 cannot start:
    // asserts HEALTH_CONSTRAINTS.
    let (harness, waves) = play(9, fleet_percent(40), &[]);
    assert_eq!(sizes(&waves), vec![5, 4]);
    assert_succeeded(&harness);

    let (harness, _) = play(9, fleet_percent(40), &[5, 6, 7, 8, 9]);
    assert_succeeded(&harness);

    let (harness, waves) = play(9, fleet_percent(40), &[4, 5, 6, 7, 8, 9]);
    assert_eq!(waves, vec![vec![1, 2, 3, 4, 5], vec![6, 7, 8]]);
    assert_failed(&harness, ErrorCode::HealthConstraints);
    assert_skipped(&harness, &[9]);
}

#[test]
fn ten_hosts_minimum_nine_is_one_at_a_time() {
    // §4.2, 10 hosts with minimum 9. A failure on host 3: asserts one host per wave and
    // HEALTH_CONSTRAINTS right after it, hosts 4–10 never started. A failure on the
    // last host only: asserts success.
    let (harness, waves) = play(10, host_count(9), &[3]);
    assert_eq!(waves, vec![vec![1], vec![2], vec![3]]);
    assert_failed(&harness, ErrorCode::HealthConstraints);
    assert_skipped(&harness, &[4, 5, 6, 7, 8, 9, 10]);

    let (harness, waves) = play(10, host_count(9), &[10]);
    assert_eq!(sizes(&waves), vec![1; 10]);
    assert_succeeded(&harness);
}

#[test]
fn ten_hosts_minimum_eight_is_two_at_a_time_and_tolerates_one_failure() {
    // §4.2, 10 hosts with minimum 8. All succeed: asserts waves of 2. Failures on hosts
    // 1 and 5: after the first the budget is one host, after the second none: asserts
    // HEALTH_CONSTRAINTS. Failures on 1 and the last host 10: asserts success (8
    // succeeded).
    let (harness, waves) = play(10, host_count(8), &[]);
    assert_eq!(sizes(&waves), vec![2; 5]);
    assert_succeeded(&harness);

    let (harness, waves) = play(10, host_count(8), &[1, 5]);
    assert_eq!(waves, vec![vec![1, 2], vec![3], vec![4], vec![5]]);
    assert_failed(&harness, ErrorCode::HealthConstraints);
    assert_skipped(&harness, &[6, 7, 8, 9, 10]);

    let (harness, _) = play(10, host_count(8), &[1, 10]);
    assert_succeeded(&harness);
    assert_eq!(harness.deployment().overview().Succeeded, 8);
}

#[test]
fn minimum_zero_is_all_at_once_and_needs_one_success() {
    // §4.2, 10 hosts with minimum 0. Nine fail: asserts a single wave of 10 and
    // success. All fail: asserts HEALTH_CONSTRAINTS.
    let (harness, waves) = play(10, host_count(0), &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(sizes(&waves), vec![10]);
    assert_succeeded(&harness);

    let (harness, _) = play(10, host_count(0), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    let message = assert_failed(&harness, ErrorCode::HealthConstraints);
    assert!(message.contains("needs at least 1 succeeded"), "{message}");
}

#[test]
fn a_rollback_is_never_refused_for_having_fewer_hosts_than_its_rule_needs() {
    // HalfAtATime over the one host a failed deployment changed: a user's deployment
    // is refused (HEALTH_CONSTRAINTS_INVALID, ceil(0.5) = 1 of 1 must stay healthy),
    // a rollback keeps at most N − 1 healthy and runs. 95 % of two hosts likewise goes
    // one host at a time; a failed host still fails the rollback.
    let mut refused = Harness::new(1, Config::Predefined(HALF_AT_A_TIME));
    assert!(refused.run_to_end(&[]).is_empty());
    assert_failed(&refused, ErrorCode::HealthConstraintsInvalid);
    let rollback = |hosts: u64, config: Config| {
        let mut harness = Harness::new(hosts, config);
        harness.deployment_mut().creator = DeploymentCreator::CodeDeployRollback;
        harness
    };
    let mut single = rollback(1, Config::Predefined(HALF_AT_A_TIME));
    assert_eq!(sizes(&single.run_to_end(&[])), vec![1]);
    assert_succeeded(&single);
    let mut pair = rollback(2, fleet_percent(95));
    assert_eq!(sizes(&pair.run_to_end(&[])), vec![1, 1]);
    assert_succeeded(&pair);
    let mut failing = rollback(2, fleet_percent(95));
    failing.run_to_end(&[1]);
    assert_failed(&failing, ErrorCode::HealthConstraints);
}

#[test]
fn ninety_five_percent_of_ten_is_refused_without_touching_a_host() {
    // §4.2, 10 hosts with FLEET_PERCENT 95 (ceil(9.5) = 10 = the fleet): asserts the
    // first plan is a lone HEALTH_CONSTRAINTS_INVALID Finish naming M and N, no wave
    // starts, and every target ends Skipped.
    let mut harness = Harness::new(10, fleet_percent(95));
    let first = harness.plan();
    assert_eq!(first.len(), 1, "{first:?}");
    let waves = harness.run_to_end(&[]);
    assert!(waves.is_empty());
    let message = assert_failed(&harness, ErrorCode::HealthConstraintsInvalid);
    assert!(message.contains("at least 10 healthy") && message.contains("only 10 targets"), "{message}");
    assert_skipped(&harness, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(harness.deployment().waves, 0);
}

#[test]
fn one_at_a_time_forgives_a_failure_on_the_last_host() {
    // §4.1 OneAtATime on 5 hosts, the last host fails: asserts one host per wave and
    // success.
    let (harness, waves) = play(5, Config::Predefined(ONE_AT_A_TIME), &[5]);
    assert_eq!(waves, vec![vec![1], vec![2], vec![3], vec![4], vec![5]]);
    assert_succeeded(&harness);
}

#[test]
fn one_at_a_time_stops_at_an_earlier_failure() {
    // §4.1 OneAtATime on 5 hosts, the 3rd fails: asserts HEALTH_CONSTRAINTS right
    // away, hosts 4 and 5 never started.
    let (harness, waves) = play(5, Config::Predefined(ONE_AT_A_TIME), &[3]);
    assert_eq!(waves, vec![vec![1], vec![2], vec![3]]);
    assert_failed(&harness, ErrorCode::HealthConstraints);
    assert_skipped(&harness, &[4, 5]);
}

#[test]
fn one_at_a_time_on_a_single_host_needs_it_to_succeed() {
    // §4.1 OneAtATime on one host: asserts success when it succeeds and
    // HEALTH_CONSTRAINTS when it fails (the last-host exception does not apply).
    let (harness, _) = play(1, Config::Predefined(ONE_AT_A_TIME), &[]);
    assert_succeeded(&harness);
    let (harness, _) = play(1, Config::Predefined(ONE_AT_A_TIME), &[1]);
    assert_failed(&harness, ErrorCode::HealthConstraints);
}

#[test]
fn half_at_a_time_on_nine_hosts_goes_four_at_a_time_and_needs_five() {
    // §4.1 HalfAtATime on 9 hosts (M = 5). All succeed: asserts waves 4, 4, 1. With
    // hosts 6–9 failing, 5 succeed: asserts success. With 5–9 failing, host 9 cannot
    // start after the second wave: asserts HEALTH_CONSTRAINTS with 4 successes.
    let (harness, waves) = play(9, Config::Predefined(HALF_AT_A_TIME), &[]);
    assert_eq!(sizes(&waves), vec![4, 4, 1]);
    assert_succeeded(&harness);

    let (harness, waves) = play(9, Config::Predefined(HALF_AT_A_TIME), &[6, 7, 8, 9]);
    assert_eq!(waves, vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9]]);
    assert_succeeded(&harness);

    let (harness, _) = play(9, Config::Predefined(HALF_AT_A_TIME), &[5, 6, 7, 8, 9]);
    let message = assert_failed(&harness, ErrorCode::HealthConstraints);
    assert!(message.contains("4 of 9 targets succeeded"), "{message}");
    assert_skipped(&harness, &[9]);
}

#[test]
fn all_at_once_succeeds_with_one_success() {
    // §4.1 AllAtOnce on 4 hosts, three fail: asserts one wave of all 4 and success;
    // all four failing: asserts HEALTH_CONSTRAINTS.
    let (harness, waves) = play(4, Config::Predefined(ALL_AT_ONCE), &[1, 2, 3]);
    assert_eq!(waves, vec![vec![1, 2, 3, 4]]);
    assert_succeeded(&harness);
    let (harness, _) = play(4, Config::Predefined(ALL_AT_ONCE), &[1, 2, 3, 4]);
    assert_failed(&harness, ErrorCode::HealthConstraints);
}

#[test]
fn a_group_already_below_the_minimum_only_deploys_its_unhealthy_hosts() {
    // §4.2 "fewer healthy than M at start": 6 hosts, HOST_COUNT 4, hosts 1–3 recorded
    // unhealthy by an earlier deployment (H = 3 < 4). Asserts the first wave is exactly
    // the unhealthy hosts; when they all fail, no healthy host is ever taken out and
    // the deployment fails with hosts 4–6 skipped. When they succeed, H = 6 and the
    // healthy hosts follow two at a time.
    let mut harness = Harness::new(6, host_count(4));
    for host in 1..=3 {
        harness.set_record(host, None, false);
    }
    let waves = harness.run_to_end(&[1, 2, 3]);
    assert_eq!(waves, vec![vec![1, 2, 3]]);
    assert_failed(&harness, ErrorCode::HealthConstraints);
    assert_skipped(&harness, &[4, 5, 6]);

    let mut harness = Harness::new(6, host_count(4));
    for host in 1..=3 {
        harness.set_record(host, None, false);
    }
    let waves = harness.run_to_end(&[]);
    assert_eq!(waves, vec![vec![1, 2, 3], vec![4, 5], vec![6]]);
    assert_succeeded(&harness);
}

// Canary and linear steps (issue 14, item 4): `steps.rs`.

use fleetmesh_state::model::ids::UnixMillis;

use super::deadlines::next_deadline;
use super::harness::{canary, linear};
use super::plan::plan;

fn all_at_once_rule() -> Option<MinimumHealthyHosts> {
    Some(MinimumHealthyHosts { kind: MinimumHealthyHostsType::HostCount, value: 0 })
}

#[test]
fn canary_goes_first_then_bakes_then_the_rest() {
    // 10 hosts, canary 10 % baking 30 s, HOST_COUNT 0 (no health limit): asserts the
    // waves are host 1 alone at t0, then hosts 2–10 together exactly 30 s after host 1
    // finished (it reports in the same round, at t0), and the deployment succeeds.
    let mut harness = Harness::new(10, canary(10, 30, all_at_once_rule()));
    let t0 = harness.now;
    let waves = harness.run_timed(&[]);
    assert_eq!(waves, vec![(t0, vec![1]), (UnixMillis(t0.0 + 30_000), (2..=10).collect())]);
    assert_succeeded(&harness);
}

#[test]
fn canary_under_one_at_a_time_bakes_after_its_last_host() {
    // 8 hosts, canary 25 % (2 hosts) baking 5 s under OneAtATime's rule, the default of
    // a config with steps: asserts one host per wave, and that host 3 starts 5 s after
    // host 2 (the canary's last) finished, later ones with no bake.
    let mut harness = Harness::new(8, canary(25, 5, None));
    let waves = harness.run_timed(&[]);
    let hosts: Vec<Vec<u64>> = waves.iter().map(|(_, wave)| wave.clone()).collect();
    assert_eq!(hosts, (1..=8).map(|host| vec![host]).collect::<Vec<_>>());
    let finished_2 = harness.deployment().targets[&fleetmesh_state::NodeId(2)].last_updated_at;
    assert_eq!(waves[2].0, UnixMillis(finished_2.0 + 5_000));
    assert_eq!(waves[3].0, UnixMillis(waves[2].0 .0 + 1_000), "no bake after the canary");
    assert_succeeded(&harness);
}

#[test]
fn linear_steps_bake_between_each() {
    // 10 hosts, linear 33 % (steps of 4) every 10 s, HOST_COUNT 0: asserts waves of
    // 4, 4, 2, each starting 10 s after the step before finished.
    let mut harness = Harness::new(10, linear(33, 10, all_at_once_rule()));
    let t0 = harness.now;
    let waves = harness.run_timed(&[]);
    let expected = vec![
        (t0, vec![1, 2, 3, 4]),
        (UnixMillis(t0.0 + 10_000), vec![5, 6, 7, 8]),
        (UnixMillis(t0.0 + 20_000), vec![9, 10]),
    ];
    assert_eq!(waves, expected);
    assert_succeeded(&harness);
}

#[test]
fn a_failed_canary_fails_at_once_when_the_rule_forbids_going_on() {
    // 10 hosts, canary 10 % baking an hour under OneAtATime: host 1 fails. Asserts the
    // deployment fails with HEALTH_CONSTRAINTS right away (no bake: nothing could
    // start after it), the others skipped.
    let mut harness = Harness::new(10, canary(10, 3_600, None));
    let t0 = harness.now;
    let waves = harness.run_timed(&[1]);
    assert_eq!(waves, vec![(t0, vec![1])]);
    assert_failed(&harness, ErrorCode::HealthConstraints);
    assert!(harness.now.0 < t0.0 + 3_600_000, "it did not wait for the bake");
    assert_skipped(&harness, &[2, 3, 10]);
}

#[test]
fn a_failed_canary_the_rule_tolerates_still_bakes() {
    // 4 hosts, canary 25 % baking 30 s, HOST_COUNT 0: host 1 fails. Asserts the rest
    // start after the bake and the deployment succeeds (S = 3 ≥ M = 0).
    let mut harness = Harness::new(4, canary(25, 30, all_at_once_rule()));
    let t0 = harness.now;
    let waves = harness.run_timed(&[1]);
    assert_eq!(waves, vec![(t0, vec![1]), (UnixMillis(t0.0 + 30_000), vec![2, 3, 4])]);
    assert_succeeded(&harness);
}

#[test]
fn a_new_leader_bakes_until_the_same_time() {
    // 10 hosts, canary 10 % baking 60 s: host 1 done, 20 s into the bake. Asserts a
    // planner fed the state after serialization (a new leader) starts nothing, wakes
    // at the same deadline (host 1's finish + 60 s), and at that deadline starts the
    // same wave as the old leader.
    let mut harness = Harness::new(10, canary(10, 60, all_at_once_rule()));
    harness.step();
    harness.report(fleetmesh_state::NodeId(1), true);
    let finished = harness.now;
    harness.advance(20_000);
    let json = serde_json::to_string(&harness.state).expect("the state serializes");
    let restored: fleetmesh_state::ClusterState = serde_json::from_str(&json).expect("the state deserializes");
    let deployment = &restored.deployments[&harness.deployment_id];
    let group = restored.deployment_group("web", "fleet").expect("group");
    assert_eq!(plan(deployment, group, &harness.fleet, harness.now, &harness.settings), vec![]);
    assert_eq!(harness.plan(), vec![]);
    let deadline = next_deadline(deployment, &harness.fleet, &harness.settings);
    assert_eq!(deadline, Some(UnixMillis(finished.0 + 60_000)));
    assert_eq!(deadline, next_deadline(harness.deployment(), &harness.fleet, &harness.settings));
    harness.now = deadline.expect("checked");
    let old_leader = harness.plan();
    assert_eq!(old_leader, vec![super::action::Action::Start(super::harness::ids(&[2, 3, 4, 5, 6, 7, 8, 9, 10]))]);
    assert_eq!(plan(deployment, group, &harness.fleet, harness.now, &harness.settings), old_leader);
}

#[test]
fn a_rollback_has_no_steps() {
    // A canary deployment turned into a rollback (creator CodeDeployRollback) over 4
    // hosts with HOST_COUNT 0: asserts all 4 start in one wave, no canary, no bake.
    let mut harness = Harness::new(4, canary(25, 600, all_at_once_rule()));
    harness.deployment_mut().creator = DeploymentCreator::CodeDeployRollback;
    let waves = harness.run_to_end(&[]);
    assert_eq!(waves, vec![vec![1, 2, 3, 4]]);
    assert_succeeded(&harness);
}
