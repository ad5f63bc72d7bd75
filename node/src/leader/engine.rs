//! The rollout engine's shell on the leader: when the core says a plan is due (after an
//! applied change, at a deadline) it plans each active deployment from the replicated
//! state, the leader's liveness view and the time, and commits the decisions in one
//! proposal. It also starts repair deployments for hosts that joined a group after its
//! last success (§5.1) or were left on another revision (a failed rollback, say), each
//! saying why, and records which nodes hold a complete copy of a revision.
//!
//! No rollout progress lives here: a new leader runs the same code on the same
//! replicated state and continues where the old one stopped.

use fleetmesh_state::model::deployment::{Deployment, DeploymentCreator, DeploymentStatus};
use fleetmesh_state::model::ids::{DeploymentId, UnixMillis};
use fleetmesh_state::model::resources::{AutoRollbackConfiguration, DeploymentGroup, DeploymentType, ONE_AT_A_TIME};
use fleetmesh_state::{ClusterState, Command, DeploymentSpec, Outcome};
use tracing::{debug, info, warn};

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_transport::NodeId;
use tokio::time::Instant;

use super::core::{LeaderCore, Work};
use super::run::{Done, ReportReply, Shell};
use crate::runtime::Node;
use fleetmesh_core::rollout::shift::ShiftMove;
use fleetmesh_core::rollout::{self, Action, FleetView, WavePlanner};
use fleetmesh_state::Finish;

use super::shift::AwsMove;

/// Plans every active deployment; returns the earliest time at which planning again
/// could decide something new with no other change (see [`rollout::next_deadline`]).
fn plan_deployments(
    node: &Node,
    planner: &dyn WavePlanner,
    state: &ClusterState,
    fleet: &FleetView,
    commands: &mut Vec<Command>,
    aws: &mut Vec<AwsMove>,
) -> Option<UnixMillis> {
    let now = node.clock().now();
    let settings = node.settings().planner;
    let mut earliest = None;
    for deployment in state.active_deployments() {
        if deployment.shift.is_some() {
            let deadline = plan_shift(node, deployment, now, settings.hook_timeout_ms, commands, aws);
            earliest = earliest.into_iter().chain(deadline).min();
            continue;
        }
        let Some(group) = state.deployment_group(&deployment.application_name, &deployment.deployment_group_name)
        else {
            continue;
        };
        for action in planner.plan(deployment, group, fleet, now, &settings) {
            let rollback = matches!(action, Action::Finish { succeeded: false, .. })
                .then(|| DeploymentId::from_random(node.random_bytes()));
            commands.push(action.into_command(&deployment.deployment_id, rollback));
        }
        let deadline = rollout::next_deadline(deployment, fleet, &settings);
        earliest = earliest.into_iter().chain(deadline).min();
    }
    earliest
}

/// The next move of a Lambda or ECS deployment: a command, or an AWS call for the shell to
/// make; returns when to plan again without other changes.
fn plan_shift(
    node: &Node,
    deployment: &Deployment,
    now: UnixMillis,
    hook_timeout_ms: u64,
    commands: &mut Vec<Command>,
    aws: &mut Vec<AwsMove>,
) -> Option<UnixMillis> {
    let deployment_id = deployment.deployment_id.clone();
    match rollout::shift::next_move(deployment, now, hook_timeout_ms) {
        ShiftMove::Commit(step) => commands.push(Command::AdvanceShift { deployment_id, step }),
        ShiftMove::Finish { succeeded, error } => {
            let rollback = (!succeeded).then(|| DeploymentId::from_random(node.random_bytes()));
            commands.push(Command::FinishDeployment(Finish { deployment_id, succeeded, error, rollback_id: rollback }));
        }
        ShiftMove::Wait(at) => return at,
        call @ (ShiftMove::InvokeHook { .. }
        | ShiftMove::SetWeight { .. }
        | ShiftMove::ResolveEcs
        | ShiftMove::CreateTaskSet
        | ShiftMove::RouteTestTraffic
        | ShiftMove::Retire) => {
            let run = deployment.shift.as_ref()?;
            let before = match &call {
                ShiftMove::SetWeight { index: 0, .. }
                    if deployment.creator == DeploymentCreator::CodeDeployRollback =>
                {
                    None
                }
                ShiftMove::SetWeight { index, .. } => Some(
                    index.checked_sub(1).and_then(|previous| run.weights.get(previous as usize)).copied().unwrap_or(0),
                ),
                _ => None,
            };
            let (spec, role, ecs) = (run.spec.clone(), run.role_arn.clone(), run.ecs.clone());
            aws.push(AwsMove { deployment_id, spec, role, ecs, call, before });
            // Checked again soon: the call may be waiting for another one to end.
            return Some(UnixMillis(now.0 + AWS_RECHECK_MS));
        }
    }
    None
}

/// How often a plan looks again at an AWS call it could not start.
const AWS_RECHECK_MS: u64 = 200;

fn late_joiners(node: &Node, state: &ClusterState, fleet: &FleetView, commands: &mut Vec<Command>) {
    for groups in state.deployment_groups.values() {
        for group in groups.values() {
            if group.deployment_style == DeploymentType::BlueGreen {
                // A blue/green group's hosts get revisions only from its deployments: an
                // in-place update of a late joiner would put it on the group's routes.
                continue;
            }
            // Before matching every member against the selector: most ticks run while
            // the group deploys, and then nothing is outdated.
            let Some(revision) = rollout::updates_outdated(group) else { continue };
            let matching = state.group_targets(group);
            let hosts = rollout::outdated_hosts(group, &matching, fleet, &state.deployments);
            if hosts.is_empty() {
                continue;
            }
            let file_exists_behavior = group
                .last_successful_deployment_id
                .as_ref()
                .and_then(|id| state.deployments.get(id))
                .map(|deployment: &Deployment| deployment.file_exists_behavior)
                .unwrap_or_default();
            let description = repair_reason(group, revision, &hosts, &state.deployments);
            info!(group = %group.deployment_group_name, ?hosts, "{description}");
            commands.push(Command::CreateDeployment {
                spec: DeploymentSpec {
                    alarm_configuration: None,
                    application_name: group.application_name.clone(),
                    deployment_group_name: group.deployment_group_name.clone(),
                    revision_id: revision,
                    // One at a time, whatever the group's configuration: like CodeDeploy's
                    // deployments to launched instances, and always satisfiable. The group's
                    // own rule may not be for a handful of hosts (HalfAtATime over one host
                    // needs that host to stay healthy), and a deployment refused at start
                    // leaves the hosts outdated, so the next tick would create it again,
                    // forever (found by the simulator, rolling-chaos seed 4).
                    deployment_config_name: Some(ONE_AT_A_TIME.to_string()),
                    description,
                    ignore_application_stop_failures: false,
                    file_exists_behavior,
                    auto_rollback_configuration: Some(AutoRollbackConfiguration::default()),
                    creator: DeploymentCreator::Autoscaling,
                    targets: Some(hosts),
                    target_instances: None,
                    shift: None,
                },
                deployment_id: DeploymentId::from_random(node.random_bytes()),
            });
        }
    }
}

impl Shell {
    /// One pass of the rollout engine (leader only): plans from the replicated state and
    /// the core's view, and proposes the decisions in a task of their own. Reports back
    /// when the engine must run again even if nothing else changes: its earliest
    /// deadline, or now when the decisions could not be committed (they are retried on
    /// the next tick).
    pub(super) fn plan(&mut self, core: &mut LeaderCore<ReportReply>) {
        let node = self.node.clone();
        let (term, me, now, wall) = (node.term(), node.id(), Instant::now(), node.clock().now());
        let members_version = node.state().versions().members;
        let fleet = core.view(term, now).fleet_view(me, members_version, now, wall, || {
            node.state().read(|state| state.members.keys().copied().collect())
        });
        let (mut commands, aws, deadline) = node.state().read(|state| {
            let (mut commands, mut aws) = (Vec::new(), Vec::new());
            let deadline = plan_deployments(&node, self.planner.as_ref(), state, &fleet, &mut commands, &mut aws);
            late_joiners(&node, state, &fleet, &mut commands);
            (commands, aws, deadline)
        });
        if let Some(call) = aws.into_iter().next() {
            if core.begin(Work::Aws) {
                let (node, aws) = (node.clone(), self.aws.clone());
                self.spawn(Work::Aws, async move {
                    super::shift::run(node, aws, call).await;
                    Done::Other
                });
            }
        }
        commands.extend(new_revision_holders(&mut core.view(term, now).unrecorded, &node));
        // The planner's deadline is a wall-clock time; the core keeps monotonic ones.
        let deadline = deadline.map(|at| now + Duration::from_millis(at.0.saturating_sub(wall.0)));
        if commands.is_empty() {
            core.plan_done(deadline);
            return;
        }
        self.spawn(Work::Plan, async move {
            match node.propose(commands).await {
                Ok(outcomes) => {
                    for outcome in outcomes {
                        if let Outcome::Rejected(error) = outcome {
                            debug!(%error, "a rollout decision was refused by apply (the state moved on)");
                        }
                    }
                    Done::Plan(deadline)
                }
                Err(error) => {
                    warn!(%error, "rollout decisions not committed; retrying on the next tick");
                    Done::Plan(Some(Instant::now()))
                }
            }
        });
    }
}

/// `RecordRevisionHolder` commands for nodes whose polls reported a complete revision
/// the replicated state does not list them as holding. `unrecorded` holds each report of
/// completion until the state lists the holder (holders are never removed); one whose
/// revision is not registered yet waits for it.
fn new_revision_holders(unrecorded: &mut BTreeSet<(RevisionId, NodeId)>, node: &Node) -> Vec<Command> {
    if unrecorded.is_empty() {
        return Vec::new();
    }
    node.state().read(|state| {
        unrecorded.retain(|(revision, node)| {
            !state.revision_holders.get(revision).is_some_and(|holders| holders.contains(node))
        });
        unrecorded
            .iter()
            .filter(|(revision, _)| state.revisions.contains_key(revision))
            .map(|(revision_id, node)| Command::RecordRevisionHolder { revision_id: *revision_id, node: *node })
            .collect()
    })
}

/// Hosts a repair deployment names one by one, at most.
const REPAIR_HOSTS_NAMED_MAX: usize = 5;

/// Why the engine deploys the group's revision to `hosts` unasked: each host is new to
/// the group, or was left on another revision (by a failed deployment or rollback).
fn repair_reason(
    group: &DeploymentGroup,
    revision: RevisionId,
    hosts: &[NodeId],
    deployments: &BTreeMap<DeploymentId, Deployment>,
) -> String {
    let last = group.last_successful_deployment_id.as_ref().map_or_else(String::new, |id| format!(", by {id}"));
    let mut reasons: Vec<String> = hosts
        .iter()
        .take(REPAIR_HOSTS_NAMED_MAX)
        .map(|host| match group.instances.get(host) {
            None => format!("node {host} joined the group since"),
            Some(record) => {
                let status = deployments.get(&record.last_deployment_id).map_or("gone", |deployment| {
                    if deployment.status == DeploymentStatus::Failed {
                        "Failed"
                    } else {
                        "ended"
                    }
                });
                let runs =
                    record.revision_id.map_or("an unknown revision".to_string(), |other| format!("revision {other}"));
                format!("node {host} runs {runs} after {} ({status})", record.last_deployment_id)
            }
        })
        .collect();
    if hosts.len() > REPAIR_HOSTS_NAMED_MAX {
        reasons.push(format!("{} more", hosts.len() - REPAIR_HOSTS_NAMED_MAX));
    }
    format!(
        "repair: bringing {} host(s) to the group's revision {revision} (last deployed successfully{last}): {}",
        hosts.len(),
        reasons.join("; ")
    )
}
