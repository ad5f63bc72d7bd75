//! The rollout planner: CodeDeploy's minimum-healthy-hosts rule (`codedeploy.md`
//! §4.1, §4.2) as a pure reconciler, run on the Raft leader.
//!
//! It owns the decisions of an in-place rollout — which pending targets form the next
//! wave, when a lost host's target is given up, when a deployment has failed its
//! health constraints, timed out, or succeeded — and which late joiners need the
//! group's revision (§5.1). It owns no I/O and keeps no private progress: its inputs
//! are the replicated [`Deployment`](fleetmesh_state::model::deployment::Deployment)
//! and [`DeploymentGroup`](fleetmesh_state::model::resources::DeploymentGroup),
//! the leader's [`FleetView`] and the time, and its outputs are [`Action`]s the leader
//! commits as commands. A new leader therefore resumes a rollout exactly where the old
//! one stopped.
//!
//! ```text
//!  replicated state ─┐                                  ┌─▶ Command::FailTargets
//!  FleetView ────────┼─▶ plan(…, now, settings) ─▶ Action ─▶ Command::StartTargets
//!  now ──────────────┘                                  └─▶ Command::FinishDeployment
//! ```
//!
//! Decisions left open by CodeDeploy's documentation, and how fleetmesh settles them:
//! - a running host the group has never deployed to counts as **healthy** (CodeDeploy
//!   says unhealthy, which would make every first deployment all-at-once);
//! - a pending target whose host is dead is failed at once, and counts as a failure
//!   (as a stopped EC2 instance does); an in-flight one gets
//!   [`PlannerSettings::host_lost_after_ms`] to come back;
//! - a suspect host is neither started nor given up on: the planner waits for it;
//! - a succeeded host that dies stops counting as healthy; if that leaves the
//!   remaining targets unable to start, the deployment fails with
//!   `HEALTH_CONSTRAINTS` (they are skipped) even when `S ≥ M`, because the group
//!   could not be fully updated without dropping below the minimum;
//! - `CodeDeployDefault.OneAtATime` (`MOST_CONCURRENCY`) is the rule `M = N − 1`;
//! - a deployment whose configuration has canary or linear steps (`trafficRoutingConfig`,
//!   fleetmesh's extension for servers, issue 14) also waits between steps: see
//!   `steps.rs`. Its status stays `InProgress` while it bakes (a `Baking` status would
//!   need a command of its own), and its 8 h timeout grows by the bakes it waits
//!   through. A rollback has no steps.
//!
//! Only in-place deployments are planned here; blue/green and traffic shifting will
//! be siblings of [`plan`], each a [`WavePlanner`] (the seam the leader's engine calls).

mod action;
mod blue_green;
mod deadlines;
mod dry_run;
mod fleet;
mod order;
mod outdated;
mod plan;
mod planner;
mod rule;
pub mod shift;
mod steps;

#[cfg(test)]
mod harness;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod scenarios;

pub use action::Action;
pub use deadlines::{next_deadline, HOST_LOST_AFTER_MS_DEFAULT, IN_PLACE_DEPLOYMENT_TIMEOUT_MS};
pub use dry_run::{dry_run, DryRun, PlannedEnd, PlannedStep};
pub use fleet::{FleetView, HostView, Liveness};
pub use outdated::{outdated_hosts, updates_outdated};
pub use plan::{plan, PlannerSettings};
pub use planner::{CodeDeployPlanner, WavePlanner};
pub use rule::{deployment_minimum, minimum_healthy_count};
pub use steps::step_size;
