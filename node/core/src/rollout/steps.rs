//! Canary and linear steps for in-place deployments (issue 14, item 4): a fleetmesh
//! extension of `trafficRoutingConfig` (`codedeploy.md` §4.6), which AWS allows only for
//! Lambda and ECS.
//!
//! A deployment with [`TrafficRouting::TimeBasedCanary`] `{p, interval}` starts
//! `ceil(p % of its targets)` (at least one) first; once every one of them has
//! finished, it waits `interval` (the bake), then starts the rest. With
//! [`TrafficRouting::TimeBasedLinear`] it goes in steps of that size, a bake after each.
//! The minimum-healthy rule still bounds every wave, so a step may take several waves
//! (OneAtATime's rule, the default of a config with steps, starts one host at a time);
//! a step ends when as many targets have started as its end says.
//!
//! Stateless, like the rest of the planner: the step a deployment is in is read from
//! how many of its targets have started (`wave ≥ 1`), and the bake runs from the latest
//! `last_updated_at` of those targets, all replicated facts. A new leader therefore
//! bakes until exactly the same time.
//!
//! ```text
//!  started targets ─┐                       ┌─▶ Gate::Open(n)       start up to n more
//!  their last update ┼─▶ gate(…, now) ───────┼─▶ Gate::StepRunning   wait for reports
//!  routing, now ─────┘                       └─▶ Gate::Baking(until) wake up then
//! ```
//!
//! A rollback has no steps: it puts back what the failed deployment changed as fast as
//! the minimum-healthy rule allows (as CodeDeploy's traffic rollbacks are immediate).

use fleetmesh_state::model::deployment::{Deployment, DeploymentCreator, TargetStatus};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::traffic_routing::TrafficRouting;

/// What the steps allow now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Up to this many more targets may start (`usize::MAX` without steps).
    Open(usize),
    /// The current step's targets have all started and some still run: nothing starts
    /// until they finish.
    StepRunning,
    /// The step before is done; the next starts at this time.
    Baking(UnixMillis),
}

/// A deployment's steps, normalised: the size of the first step, of every later one,
/// and the bake between two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Steps {
    /// Targets in the first step (the canary), 1 ≤ first ≤ targets.
    pub(crate) first: usize,
    /// Targets in each later step; `usize::MAX` for "all the rest" (canary).
    pub(crate) later: usize,
    /// The bake after each step, in milliseconds.
    pub(crate) bake_ms: u64,
}

/// Targets in a step of `percentage` % of `targets`: rounded up, at least one.
pub fn step_size(percentage: u32, targets: usize) -> usize {
    // u128 cannot overflow: usize::MAX · u32::MAX < 2^96.
    let size = (targets as u128 * u128::from(percentage)).div_ceil(100);
    usize::try_from(size).unwrap_or(usize::MAX).max(1)
}

/// The steps `deployment` runs in, or `None` when only the minimum-healthy rule
/// applies (no routing config, `AllAtOnce`, or a rollback).
pub(crate) fn steps(deployment: &Deployment) -> Option<Steps> {
    if deployment.creator == DeploymentCreator::CodeDeployRollback {
        return None;
    }
    let targets = deployment.targets.len();
    match deployment.traffic_routing? {
        TrafficRouting::TimeBasedCanary { percentage, interval_seconds } => Some(Steps {
            first: step_size(percentage, targets),
            later: usize::MAX,
            bake_ms: u64::from(interval_seconds) * 1000,
        }),
        TrafficRouting::TimeBasedLinear { percentage, interval_seconds } => {
            let size = step_size(percentage, targets);
            Some(Steps { first: size, later: size, bake_ms: u64::from(interval_seconds) * 1000 })
        }
        TrafficRouting::AllAtOnce => None,
    }
}

impl Steps {
    /// The step `started` targets in: (targets started when it began, targets started
    /// when it ends). `begin ≤ started < end`.
    pub(crate) fn step_at(&self, started: usize) -> (usize, usize) {
        if started < self.first {
            return (0, self.first);
        }
        let after_first = started - self.first;
        let done = after_first / self.later.max(1);
        let begin = self.first.saturating_add(done.saturating_mul(self.later));
        (begin, begin.saturating_add(self.later))
    }

    /// How many bakes a deployment of `targets` targets waits through: one between
    /// every two steps.
    pub(crate) fn bakes(&self, targets: usize) -> u64 {
        if targets <= self.first {
            return 0;
        }
        let rest = targets - self.first;
        u64::try_from(rest.div_ceil(self.later.max(1))).unwrap_or(u64::MAX)
    }
}

/// Targets of `deployment` that have been started (in any wave), whatever they became.
pub(crate) fn started(deployment: &Deployment) -> usize {
    deployment.targets.values().filter(|target| target.wave > 0).count()
}

/// What the steps of `deployment` allow at `now` ([`Gate::Open`] with no limit when it
/// has none).
pub(crate) fn gate(deployment: &Deployment, now: UnixMillis) -> Gate {
    let Some(steps) = steps(deployment) else { return Gate::Open(usize::MAX) };
    let started = started(deployment);
    let (begin, end) = steps.step_at(started);
    if begin == 0 || started > begin {
        // The first step, or a step that has begun: fill it.
        return Gate::Open(end - started);
    }
    // Exactly at the end of a step: the next begins once the last one finished and baked.
    match bake_end(deployment, &steps) {
        None => Gate::StepRunning,
        Some(until) if now < until => Gate::Baking(until),
        Some(_) => Gate::Open(end - started),
    }
}

/// When the bake after the current step ends: the latest update of a started target
/// plus the bake; `None` while one of them still runs.
fn bake_end(deployment: &Deployment, steps: &Steps) -> Option<UnixMillis> {
    let mut finished_at = UnixMillis(0);
    for target in deployment.targets.values().filter(|target| target.wave > 0) {
        if target.status == TargetStatus::InProgress {
            return None;
        }
        finished_at = finished_at.max(target.last_updated_at);
    }
    Some(UnixMillis(finished_at.0.saturating_add(steps.bake_ms)))
}

/// The end of the bake `deployment` is in, if it is in one with targets left to start:
/// a deadline for the leader (the bake end may already be past when a suspect host
/// holds the next step back; the leader then re-plans on its ticks).
pub(crate) fn bake_deadline(deployment: &Deployment) -> Option<UnixMillis> {
    let steps = steps(deployment)?;
    let started = started(deployment);
    let (begin, _) = steps.step_at(started);
    let has_pending = deployment.targets.values().any(|target| target.status == TargetStatus::Pending);
    if begin == 0 || started > begin || !has_pending {
        return None;
    }
    bake_end(deployment, &steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_sizes_round_up_and_are_at_least_one() {
        // Every pair of N ∈ {1, 2, 3, 10, 100} and p ∈ {1, 10, 33, 99}: asserts
        // ceil(p·N/100), never 0, never more than N.
        let expected: [(usize, [usize; 4]); 5] =
            [(1, [1, 1, 1, 1]), (2, [1, 1, 1, 2]), (3, [1, 1, 1, 3]), (10, [1, 1, 4, 10]), (100, [1, 10, 33, 99])];
        for (targets, sizes) in expected {
            for (percentage, size) in [1, 10, 33, 99].into_iter().zip(sizes) {
                assert_eq!(step_size(percentage, targets), size, "{percentage} % of {targets}");
                assert!(size >= 1 && size <= targets);
            }
        }
    }

    #[test]
    fn steps_split_the_targets_and_count_the_bakes() {
        // A canary of 1 then the rest, and linear steps of 4 over 10 targets: asserts
        // the step each started count falls in, and the number of bakes.
        let canary = Steps { first: 1, later: usize::MAX, bake_ms: 30_000 };
        assert_eq!(canary.step_at(0), (0, 1));
        assert_eq!(canary.step_at(1), (1, usize::MAX));
        assert_eq!(canary.step_at(9), (1, usize::MAX));
        assert_eq!(canary.bakes(10), 1);
        assert_eq!(canary.bakes(1), 0);
        let linear = Steps { first: 4, later: 4, bake_ms: 1_000 };
        assert_eq!(linear.step_at(0), (0, 4));
        assert_eq!(linear.step_at(3), (0, 4));
        assert_eq!(linear.step_at(4), (4, 8));
        assert_eq!(linear.step_at(8), (8, 12));
        assert_eq!(linear.bakes(10), 2);
        assert_eq!(linear.bakes(8), 1);
        assert_eq!(linear.bakes(4), 0);
    }
}
