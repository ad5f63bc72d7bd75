//! The rollout planner: a reconciler from (deployment, group, liveness, now) to the
//! commands that move an in-place deployment forward (`codedeploy.md` §4.2, §6.1–§6.3).
//!
//! It keeps no private progress. Everything it reads is replicated (the deployment
//! record and its group) except the leader's liveness view and the time, which are
//! passed in; so a new leader that calls [`plan`] on the same record resumes exactly
//! where the old one stopped, and calling it twice without applying its answer gives
//! the same answer twice.
//!
//! ```text
//!  Deployment + DeploymentGroup (Raft) ─┐
//!  FleetView (heartbeats) ──────────────┼─▶ plan ─▶ [FailTargets] [Start] [Finish]
//!  now, PlannerSettings ────────────────┘             │ into_command
//!                                                      ▼
//!            Command::{FailTargets, StartTargets, FinishDeployment} ─▶ Raft ─▶ apply
//! ```
//!
//! One call decides a whole round: it fails what is lost, then starts the next wave
//! on the state those failures leave, then finishes the deployment if nothing is left
//! to run. The actions come in that order and are meant to be proposed together, in
//! order.

use std::collections::{btree_map, BTreeMap};
use std::iter::Peekable;

use fleetmesh_state::model::deployment::{Deployment, DeploymentStatus, ErrorCode, ErrorInformation, TargetStatus};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::resources::DeploymentGroup;
use fleetmesh_state::NodeId;

use super::action::Action;
use super::deadlines::{lost_in_flight, time_out, HOST_LOST_AFTER_MS_DEFAULT, IN_PLACE_DEPLOYMENT_TIMEOUT_MS};
use super::fleet::{FleetView, Liveness};
use super::order::pending_in_priority_order;
use super::rule::{deployment_minimum, is_success, is_unsatisfiable, may_take_out, target_health, Health};
use super::steps::{gate, Gate};

/// Knobs of the planner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannerSettings {
    /// An in-flight target whose host has been dead this long (milliseconds) is
    /// failed. Default [`HOST_LOST_AFTER_MS_DEFAULT`].
    pub host_lost_after_ms: u64,
    /// A deployment still running this long after its start (milliseconds) fails
    /// with `TIMEOUT`. Default [`IN_PLACE_DEPLOYMENT_TIMEOUT_MS`].
    pub deployment_timeout_ms: u64,
    /// How long a Lambda hook may take to report its status (milliseconds) before its
    /// event fails. Default [`super::shift::HOOK_TIMEOUT_MS_DEFAULT`] (§2.8).
    pub hook_timeout_ms: u64,
}

impl Default for PlannerSettings {
    fn default() -> Self {
        Self {
            host_lost_after_ms: HOST_LOST_AFTER_MS_DEFAULT,
            deployment_timeout_ms: IN_PLACE_DEPLOYMENT_TIMEOUT_MS,
            hook_timeout_ms: super::shift::HOOK_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// Decides what to do now for one in-place deployment; `[]` means nothing until the
/// deployment record, the liveness view or the time changes.
///
/// Call it on the leader after every applied change to the deployment or its group,
/// on every liveness change, and at [`next_deadline`](super::next_deadline). `group` must be the
/// deployment's group (its instance records give the health of pending targets).
/// Rules, in the order they are checked:
/// 1. a finished deployment → `[]`;
/// 2. `Created` with no targets → `Finish` `NO_INSTANCES`; `Created` with a rule that
///    keeps every target in service → `Finish` `HEALTH_CONSTRAINTS_INVALID`, touching
///    no host (never for a rollback: see [`deployment_minimum`]);
/// 3. started at least `deployment_timeout_ms` ago → fail every in-flight target,
///    then `Finish` `TIMEOUT`;
/// 4. fail in-flight targets whose host has been dead for `host_lost_after_ms`, and
///    pending targets whose host is dead (they count as failures, like stopped EC2
///    instances in §4.2);
/// 5. start pending targets in §4.2 priority order: an unhealthy one always, a
///    healthy one only while `H − 1 ≥ M`; hosts that are suspect wait; with canary or
///    linear steps ([`super::steps`]), no more than the current step has room for, and
///    none while a finished step bakes or a started step still runs;
/// 6. with nothing in flight: `Finish` `HEALTH_CONSTRAINTS` when pending targets
///    remain that can never start, else `Finish` succeeded iff `S ≥ M` and `S ≥ 1`.
///    A bake that holds back a target that could start is waited for, not a failure.
pub fn plan(
    deployment: &Deployment,
    group: &DeploymentGroup,
    fleet: &FleetView,
    now: UnixMillis,
    settings: &PlannerSettings,
) -> Vec<Action> {
    debug_assert_eq!(
        group.deployment_group_name, deployment.deployment_group_name,
        "plan called with another deployment's group"
    );
    if deployment.status.is_terminal() {
        return Vec::new();
    }
    if let Some(run) = &deployment.blue_green {
        return super::blue_green::plan_blue_green(deployment, run, fleet, now, settings);
    }
    let minimum = deployment_minimum(deployment);
    if deployment.status == DeploymentStatus::Created {
        if let Some(refusal) = refuse_at_start(deployment, minimum) {
            return vec![refusal];
        }
    }
    if let Some(actions) = time_out(deployment, now, settings) {
        return actions;
    }
    Round::new(deployment, group, fleet, minimum).decide(now, settings, gate(deployment, now))
}

/// The `Finish` CodeDeploy gives before touching any host, if the deployment cannot
/// run at all (§4.2, §6.2).
fn refuse_at_start(deployment: &Deployment, minimum: usize) -> Option<Action> {
    let targets = deployment.targets.len();
    let error = if targets == 0 {
        ErrorInformation {
            code: ErrorCode::NoInstances,
            message: format!(
                "deployment group {} matched no hosts; tag hosts to match its filters, \
                 then deploy again",
                deployment.deployment_group_name
            ),
        }
    } else if minimum >= targets && is_unsatisfiable(deployment.minimum_healthy_hosts, targets) {
        ErrorInformation {
            code: ErrorCode::HealthConstraintsInvalid,
            message: format!(
                "deployment configuration {} needs at least {minimum} healthy hosts but the \
                 deployment has only {targets} targets, so no host could ever be taken out of \
                 service; lower the minimum healthy hosts",
                deployment.deployment_config_name
            ),
        }
    } else {
        return None;
    };
    Some(Action::Finish { succeeded: false, error: Some(error) })
}

/// The value of `id` in a map iterator that is walked in increasing id order, skipping
/// the entries before it.
fn seek<'m, V>(entries: &mut Peekable<btree_map::Iter<'m, NodeId, V>>, id: NodeId) -> Option<&'m V> {
    while entries.next_if(|(key, _)| **key < id).is_some() {}
    entries.next_if(|(key, _)| **key == id).map(|(_, value)| value)
}

/// One planning round: the deployment's target statuses as they will be once this
/// round's actions are applied.
struct Round<'a> {
    deployment: &'a Deployment,
    group: &'a DeploymentGroup,
    fleet: &'a FleetView,
    minimum: usize,
    statuses: BTreeMap<NodeId, TargetStatus>,
}

impl<'a> Round<'a> {
    fn new(deployment: &'a Deployment, group: &'a DeploymentGroup, fleet: &'a FleetView, minimum: usize) -> Self {
        let statuses = deployment.targets.iter().map(|(id, target)| (*id, target.status)).collect();
        Self { deployment, group, fleet, minimum, statuses }
    }

    fn health(&self, id: NodeId, status: TargetStatus) -> Health {
        target_health(status, self.fleet.liveness(id), self.group.instances.get(&id))
    }

    /// `H`: targets counted healthy and not in flight.
    ///
    /// One pass over three maps sorted by node id (statuses, liveness, the group's
    /// records) instead of two tree lookups per target: this runs twice per plan, and a
    /// plan runs after every applied entry of a rollout.
    fn healthy_idle(&self) -> usize {
        let mut hosts = self.fleet.hosts.iter().peekable();
        let mut records = self.group.instances.iter().peekable();
        self.statuses
            .iter()
            .filter(|(id, status)| {
                let liveness = seek(&mut hosts, **id).map_or(Liveness::Dead, |view| view.liveness);
                target_health(**status, liveness, seek(&mut records, **id)) == Health::Healthy
            })
            .count()
    }

    fn count(&self, wanted: TargetStatus) -> usize {
        self.statuses.values().filter(|status| **status == wanted).count()
    }

    fn decide(mut self, now: UnixMillis, settings: &PlannerSettings, gate: Gate) -> Vec<Action> {
        let healthy_before = self.healthy_idle();
        let failures = self.fail_lost(now, settings);
        let room = match gate {
            Gate::Open(room) => room,
            Gate::StepRunning | Gate::Baking(_) => 0,
        };
        let (wave, is_waiting) = self.start_wave(healthy_before, room);
        let healthy_after = self.healthy_idle();
        // §4.2: never fewer than M healthy, and never fewer than we started with when
        // the group began below M. Failing lost targets never lowers H (they were
        // out of service or on dead hosts), so only the wave can break this. Kept on
        // in production: it is cheap and a violation is a planner bug.
        assert!(
            healthy_after >= self.minimum.min(healthy_before),
            "wave {wave:?} leaves {healthy_after} healthy (M = {}, H was {healthy_before})",
            self.minimum
        );
        let finish = if is_waiting { None } else { self.finish() };
        let mut actions = Vec::new();
        if !failures.is_empty() {
            actions.push(Action::FailTargets(failures));
        }
        let marks_start = self.deployment.status == DeploymentStatus::Created && finish.is_none();
        if !wave.is_empty() || marks_start {
            actions.push(Action::Start(wave));
        }
        actions.extend(finish);
        actions
    }

    /// Rule 4: in-flight targets lost with their host, and pending targets whose host
    /// is dead.
    fn fail_lost(&mut self, now: UnixMillis, settings: &PlannerSettings) -> Vec<(NodeId, String)> {
        let mut failures = Vec::new();
        for target in self.deployment.targets.values() {
            let id = target.target_id;
            let reason = match target.status {
                TargetStatus::Pending if self.fleet.liveness(id) == Liveness::Dead => {
                    format!("host unreachable: node {id} is dead, so this target was not started")
                }
                TargetStatus::InProgress => {
                    let Some(reason) = lost_in_flight(target, self.fleet, now, settings) else {
                        continue;
                    };
                    reason
                }
                _ => continue,
            };
            self.statuses.insert(id, TargetStatus::Failed);
            failures.push((id, reason));
        }
        failures
    }

    /// Rule 5: the next wave, at most `room` targets, and whether a suspect host or
    /// the step's room holds back a target that could start later. `healthy` is `H`
    /// before the wave: the count before [`Self::fail_lost`], which never changes it
    /// (it fails targets that were out of service or on dead hosts, unhealthy either
    /// way).
    fn start_wave(&mut self, mut healthy: usize, room: usize) -> (Vec<NodeId>, bool) {
        let mut wave = Vec::new();
        let mut suspects = Vec::new();
        let mut is_held = false;
        for id in pending_in_priority_order(self.deployment, self.group, self.fleet) {
            if self.statuses.get(&id) != Some(&TargetStatus::Pending) {
                continue; // failed above: its host is dead
            }
            let health = self.health(id, TargetStatus::Pending);
            if self.fleet.liveness(id) == Liveness::Suspect {
                suspects.push((id, health));
                continue;
            }
            let may_start = match health {
                Health::Unhealthy => true,
                Health::Healthy => may_take_out(healthy, self.minimum),
                Health::OutOfService => false,
            };
            if may_start && wave.len() >= room {
                // The step is full or baking: this target waits for the next one.
                is_held = true;
                break;
            }
            if may_start {
                if health == Health::Healthy {
                    healthy -= 1;
                }
                self.statuses.insert(id, TargetStatus::InProgress);
                wave.push(id);
            }
        }
        let is_waiting = is_held
            || suspects.iter().any(|(_, health)| *health == Health::Unhealthy || may_take_out(healthy, self.minimum));
        (wave, is_waiting)
    }

    /// Rule 6: the end of the deployment, once nothing is in flight.
    fn finish(&self) -> Option<Action> {
        if self.count(TargetStatus::InProgress) > 0 {
            return None;
        }
        let targets = self.statuses.len();
        let succeeded = self.count(TargetStatus::Succeeded);
        let failed = self.count(TargetStatus::Failed);
        let pending = self.count(TargetStatus::Pending);
        let config = &self.deployment.deployment_config_name;
        let minimum = self.minimum;
        let message = if pending > 0 {
            let lost = self
                .statuses
                .iter()
                .filter(|(id, status)| {
                    **status == TargetStatus::Succeeded && self.fleet.liveness(**id) == Liveness::Dead
                })
                .count();
            let lost_note = if lost > 0 {
                format!(
                    "; {lost} of the succeeded hosts are unreachable and no longer count as \
                     healthy"
                )
            } else {
                String::new()
            };
            format!(
                "{succeeded} of {targets} targets succeeded and {failed} failed; the {pending} \
                 remaining targets cannot start without leaving fewer than {minimum} healthy \
                 hosts, the minimum of deployment configuration {config}{lost_note}"
            )
        } else if is_success(succeeded, minimum) {
            return Some(Action::Finish { succeeded: true, error: None });
        } else {
            format!(
                "{succeeded} of {targets} targets succeeded and {failed} failed; deployment \
                 configuration {config} needs at least {} succeeded targets",
                minimum.max(1)
            )
        };
        Some(Action::Finish {
            succeeded: false,
            error: Some(ErrorInformation { code: ErrorCode::HealthConstraints, message }),
        })
    }
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::resources::{ALL_AT_ONCE, ONE_AT_A_TIME};

    use super::super::deadlines::next_deadline;
    use super::super::fleet::HostView;
    use super::super::harness::{failed_hosts, finish_code, host_count, ids, Config, Harness};
    use super::*;

    #[test]
    fn seek_finds_each_id_of_an_increasing_walk_and_nothing_for_absent_ones() {
        // The map holds 2, 4, 5 and 9; the walk asks for 1..=10 in order, then nothing
        // more is found once past the end.
        let map: BTreeMap<NodeId, u64> = [2, 4, 5, 9].into_iter().map(|id| (NodeId(id), id * 10)).collect();
        let mut entries = map.iter().peekable();
        let found: Vec<Option<u64>> = (1..=10).map(|id| seek(&mut entries, NodeId(id)).copied()).collect();
        let expected = [None, Some(20), None, Some(40), Some(50), None, None, None, Some(90), None];
        assert_eq!(found, expected);
        assert_eq!(seek(&mut entries, NodeId(11)), None);
    }

    #[test]
    fn a_dead_pending_host_is_failed_not_started() {
        // AllAtOnce over 3 hosts with host 2 dead before the start: asserts the first
        // round fails host 2 as unreachable and starts only 1 and 3, and that the
        // deployment still succeeds, with host 2 failed in wave 0 (never started).
        let mut harness = Harness::new(3, Config::Predefined(ALL_AT_ONCE));
        harness.kill(2);
        let actions = harness.plan();
        let Some(Action::FailTargets(failed)) = actions.first() else { panic!("{actions:?}") };
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, NodeId(2));
        assert!(failed[0].1.contains("host unreachable"), "{}", failed[0].1);
        assert_eq!(actions[1..], [Action::Start(ids(&[1, 3]))]);
        harness.run_to_end(&[]);
        assert_eq!(harness.deployment().status, DeploymentStatus::Succeeded);
        assert_eq!(harness.status(2), TargetStatus::Failed);
        assert_eq!(harness.deployment().targets[&NodeId(2)].wave, 0);
    }

    #[test]
    fn dead_pending_hosts_count_as_failures() {
        // OneAtATime over 3 hosts with hosts 1 and 2 dead: asserts both are failed in
        // the first round, and since two failures leave 1 < M = 2 healthy, the same
        // round finishes with HEALTH_CONSTRAINTS instead of starting host 3.
        let mut harness = Harness::new(3, Config::Predefined(ONE_AT_A_TIME));
        harness.kill(1);
        harness.kill(2);
        let actions = harness.step();
        assert_eq!(failed_hosts(&actions), vec![1, 2]);
        assert_eq!(finish_code(&actions), Some(Some(ErrorCode::HealthConstraints)));
        assert_eq!(harness.deployment().status, DeploymentStatus::Failed);
        assert_eq!(harness.status(3), TargetStatus::Skipped);
    }

    #[test]
    fn suspect_hosts_are_waited_for() {
        // OneAtATime over 2 hosts with host 1 suspect. Asserts host 1 is passed over
        // for host 2; once 2 succeeds the planner waits (no finish) while host 1 could
        // start; when host 1 is alive again it starts; and an in-flight target on a
        // suspect host is never given up, however long.
        let mut harness = Harness::new(2, Config::Predefined(ONE_AT_A_TIME));
        harness.fleet.hosts.insert(NodeId(1), HostView::suspect());
        assert_eq!(harness.step(), vec![Action::Start(ids(&[2]))]);
        harness.report(NodeId(2), true);
        assert_eq!(harness.plan(), vec![]);
        harness.fleet.hosts.insert(NodeId(1), HostView::alive());
        assert_eq!(harness.step(), vec![Action::Start(ids(&[1]))]);
        harness.fleet.hosts.insert(NodeId(1), HostView::suspect());
        harness.advance(10 * HOST_LOST_AFTER_MS_DEFAULT);
        assert_eq!(harness.plan(), vec![]);
    }

    #[test]
    fn a_succeeded_host_that_dies_stops_counting_as_healthy() {
        // 4 hosts, HOST_COUNT 2: the first wave takes hosts 1–2 (H = 2). Host 1
        // succeeds, then dies while host 2 still runs. Asserts the planner starts
        // nothing: H is 2 (hosts 3–4), not 3, so no healthy host may leave service.
        let mut harness = Harness::new(4, host_count(2));
        assert_eq!(harness.step(), vec![Action::Start(ids(&[1, 2]))]);
        harness.report(NodeId(1), true);
        harness.kill(1);
        assert_eq!(harness.plan(), vec![]);
        harness.fleet.hosts.insert(NodeId(1), HostView::alive());
        assert_eq!(harness.plan(), vec![Action::Start(ids(&[3]))]);
    }

    #[test]
    fn lost_successes_that_block_the_rest_fail_the_deployment() {
        // 2 hosts, HOST_COUNT 1: host 1 goes first and succeeds, then dies. Asserts
        // host 2 is not started (it would leave no healthy host) and the deployment
        // fails with HEALTH_CONSTRAINTS although S = 1 ≥ M, saying why.
        let mut harness = Harness::new(2, host_count(1));
        assert_eq!(harness.step(), vec![Action::Start(ids(&[1]))]);
        harness.report(NodeId(1), true);
        harness.kill(1);
        let actions = harness.step();
        assert_eq!(finish_code(&actions), Some(Some(ErrorCode::HealthConstraints)));
        let message = &harness.deployment().error_information.as_ref().expect("error").message;
        assert!(message.contains("1 of the succeeded hosts are unreachable"), "{message}");
        assert_eq!(harness.status(2), TargetStatus::Skipped);
    }

    #[test]
    fn a_created_deployment_is_marked_started_while_it_waits() {
        // Every host suspect at creation: asserts the first round is a lone empty Start
        // that moves the deployment to InProgress with a start time.
        let mut harness = Harness::new(2, Config::Predefined(ALL_AT_ONCE));
        for host in 1..=2 {
            harness.fleet.hosts.insert(NodeId(host), HostView::suspect());
        }
        assert_eq!(harness.step(), vec![Action::Start(vec![])]);
        assert_eq!(harness.deployment().status, DeploymentStatus::InProgress);
        assert_eq!(harness.deployment().start_time, Some(harness.now));
        assert_eq!(harness.plan(), vec![]);
    }

    #[test]
    fn no_targets_is_no_instances_and_finished_deployments_are_left_alone() {
        // A group matching no host: asserts a lone NO_INSTANCES Finish, and that once
        // applied the planner has nothing more to say.
        let mut harness = Harness::new(0, Config::Predefined(ALL_AT_ONCE));
        let actions = harness.step();
        assert_eq!(actions.len(), 1);
        assert_eq!(finish_code(&actions), Some(Some(ErrorCode::NoInstances)));
        assert_eq!(harness.deployment().status, DeploymentStatus::Failed);
        assert_eq!(harness.plan(), vec![]);
        assert_eq!(next_deadline(harness.deployment(), &harness.fleet, &harness.settings), None);
    }

    #[test]
    fn pending_targets_start_in_codedeploy_priority_order() {
        // 4 hosts, HOST_COUNT 3, so one healthy host at a time: host 1 already on the
        // revision, 2 on an old one, 3 never deployed, 4 unhealthy. Asserts the waves
        // run 4 (unhealthy, which never waits for the budget), then 3, 2, 1.
        let mut harness = Harness::new(4, host_count(3));
        let current = harness.revision_id();
        harness.set_record(1, Some(current), true);
        harness.set_record(2, Some(fleetmesh_state::model::ids::Hash32::of(b"old")), true);
        harness.set_record(4, Some(current), false);
        let waves = harness.run_to_end(&[]);
        assert_eq!(waves, vec![vec![4], vec![3], vec![2], vec![1]]);
    }

    #[test]
    fn a_new_leader_resumes_from_the_replicated_record() {
        // 9 hosts, HOST_COUNT 6, mid-deployment (first wave done, second running, one
        // report in): asserts a planner fed a copy of the state that went through
        // serialization (a new leader's snapshot) decides exactly what the old leader
        // would, and that planning twice without applying gives the same answer.
        let mut harness = Harness::new(9, host_count(6));
        harness.step();
        for host in 1..=3 {
            harness.report(NodeId(host), host != 2);
        }
        harness.step();
        harness.report(NodeId(4), true);
        let json = serde_json::to_string(&harness.state).expect("the state serializes");
        let restored: fleetmesh_state::ClusterState = serde_json::from_str(&json).expect("the state deserializes");
        let old_leader = harness.plan();
        assert_eq!(old_leader, vec![Action::Start(ids(&[6]))]);
        let deployment = &restored.deployments[&harness.deployment_id];
        let group = restored.deployment_group("web", "fleet").expect("group");
        let new_leader = plan(deployment, group, &harness.fleet, harness.now, &harness.settings);
        assert_eq!(new_leader, old_leader);
        assert_eq!(harness.plan(), old_leader);
    }
}
