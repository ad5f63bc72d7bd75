//! The arithmetic of CodeDeploy's minimum-healthy-hosts rule (`codedeploy.md` §4.1,
//! §4.2): how many targets must stay healthy, which targets count as healthy, and
//! whether one more healthy target may be taken out of service.
//!
//! Pure functions of replicated facts and the leader's liveness view; the planner
//! composes them, and the tests pin every documented example.

use fleetmesh_state::model::deployment::{Deployment, DeploymentCreator, TargetStatus};
use fleetmesh_state::model::resources::{InstanceRecord, MinimumHealthyHosts, MinimumHealthyHostsType};

use super::fleet::Liveness;

/// The number of targets that must stay healthy (`M` in §4.2) for a deployment with
/// `targets` targets.
///
/// - `HOST_COUNT` → the value itself;
/// - `FLEET_PERCENT` → `ceil(targets · value / 100)` (§4.2: percentages round up at
///   deployment start);
/// - `MOST_CONCURRENCY` (`CodeDeployDefault.OneAtATime`, §4.1) → `targets − 1`, and 0
///   for a single target. With the start test `H − 1 ≥ M` this lets exactly one target
///   out at a time, fails the deployment on any failure but the last host's, and with
///   the end test `S ≥ M ∧ S ≥ 1` a single target must succeed.
pub fn minimum_healthy_count(rule: MinimumHealthyHosts, targets: usize) -> usize {
    match rule.kind {
        MinimumHealthyHostsType::HostCount => usize::try_from(rule.value).unwrap_or(usize::MAX),
        MinimumHealthyHostsType::FleetPercent => {
            // u128 cannot overflow here: usize::MAX · u32::MAX < 2^96.
            let count = (targets as u128 * u128::from(rule.value)).div_ceil(100);
            usize::try_from(count).unwrap_or(usize::MAX)
        }
        MinimumHealthyHostsType::MostConcurrency => targets.saturating_sub(1),
    }
}

/// `M` for `deployment`: its rule over its targets ([`minimum_healthy_count`]), except
/// for a rollback, where it is at most `targets − 1`. CodeDeploy never refuses its own
/// rollback as `HEALTH_CONSTRAINTS_INVALID`: a rollback covers only the hosts the failed
/// deployment changed, often fewer than the group's rule was written for (HalfAtATime
/// over one changed host needs that host to stay in service), and refusing it would
/// leave those hosts on the failed revision. Clamped, one host at a time can always go.
pub fn deployment_minimum(deployment: &Deployment) -> usize {
    let targets = deployment.targets.len();
    let minimum = minimum_healthy_count(deployment.minimum_healthy_hosts, targets);
    match deployment.creator {
        DeploymentCreator::CodeDeployRollback => minimum.min(targets.saturating_sub(1)),
        DeploymentCreator::User | DeploymentCreator::Autoscaling => minimum,
    }
}

/// True when the rule can never be met for `targets` targets, which CodeDeploy refuses
/// at start without touching a host (§4.2: "95% of 10 hosts"; §6.2
/// `HEALTH_CONSTRAINTS_INVALID`): a count or percentage that keeps every target in
/// service. `MOST_CONCURRENCY` is always satisfiable.
pub(crate) fn is_unsatisfiable(rule: MinimumHealthyHosts, targets: usize) -> bool {
    let counted = matches!(rule.kind, MinimumHealthyHostsType::HostCount | MinimumHealthyHostsType::FleetPercent);
    counted && targets > 0 && minimum_healthy_count(rule, targets) >= targets
}

/// How a target counts for the rule right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    /// Counts toward `H`; taking it out of service needs `H − 1 ≥ M`.
    Healthy,
    /// Does not count toward `H`; if pending it may start at any time.
    Unhealthy,
    /// In flight: its lifecycle events are running.
    OutOfService,
}

/// Classifies one target (§4.2 "instance health", adapted to a mesh).
///
/// - `InProgress` → out of service.
/// - `Succeeded` → healthy unless its host is dead now.
/// - `Failed` → unhealthy. `Skipped`, `Unknown` and `Ready` (not produced by in-place
///   rollouts before the end) are treated the same: they did not succeed.
/// - `Pending` → healthy iff its host is not dead and the group's record of the host is
///   healthy or absent. CodeDeploy counts a never-deployed host as unhealthy, which
///   would let every first deployment go all at once whatever the configuration;
///   fleetmesh deliberately counts a running, never-deployed host as healthy so that a
///   first rollout respects the configured batch size too.
pub(crate) fn target_health(status: TargetStatus, liveness: Liveness, record: Option<&InstanceRecord>) -> Health {
    let is_dead = liveness == Liveness::Dead;
    match status {
        TargetStatus::InProgress => Health::OutOfService,
        TargetStatus::Succeeded if !is_dead => Health::Healthy,
        TargetStatus::Pending if !is_dead && record.is_none_or(|record| record.healthy) => Health::Healthy,
        TargetStatus::Succeeded
        | TargetStatus::Pending
        | TargetStatus::Failed
        | TargetStatus::Skipped
        | TargetStatus::Unknown
        | TargetStatus::Ready => Health::Unhealthy,
    }
}

/// The start test for a healthy target (§4.2): with `healthy` targets healthy and not
/// in flight, one more may go out of service iff `healthy − 1 ≥ minimum`.
pub(crate) fn may_take_out(healthy: usize, minimum: usize) -> bool {
    // Written as `healthy ≥ minimum + 1` so that `healthy = 0` cannot underflow.
    healthy > minimum
}

/// The end test (§4.2): succeeded iff at least `minimum` and at least one target
/// succeeded.
pub(crate) fn is_success(succeeded: usize, minimum: usize) -> bool {
    succeeded >= minimum && succeeded >= 1
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::ids::DeploymentId;

    use super::*;

    fn rule(kind: MinimumHealthyHostsType, value: u32) -> MinimumHealthyHosts {
        MinimumHealthyHosts { kind, value }
    }

    #[test]
    fn minimum_matches_every_documented_example() {
        // The minimum for each §4.1/§4.2 example: asserts the count CodeDeploy
        // documents (and the batch size it implies, N − M, where stated).
        use MinimumHealthyHostsType::{FleetPercent, HostCount, MostConcurrency};
        let cases = [
            // (rule, targets, M, batch size N − M)
            (rule(HostCount, 6), 9, 6, 3),       // §4.2 API example
            (rule(FleetPercent, 40), 9, 4, 5),   // ceil(3.6) = 4, up to 5 at a time
            (rule(HostCount, 9), 10, 9, 1),      // one at a time
            (rule(HostCount, 8), 10, 8, 2),      // two at a time
            (rule(HostCount, 0), 10, 0, 10),     // all at once
            (rule(FleetPercent, 95), 10, 10, 0), // ceil(9.5) = 10: invalid
            (rule(FleetPercent, 50), 9, 5, 4),   // HalfAtATime: 4 at a time, needs 5
            (rule(MostConcurrency, 1), 5, 4, 1), // OneAtATime
            (rule(MostConcurrency, 1), 1, 0, 1), // a single host
            (rule(MostConcurrency, 1), 0, 0, 0), // no host
            (rule(FleetPercent, 0), 7, 0, 7),
            (rule(FleetPercent, 99), 1, 1, 0),
        ];
        for (rule, targets, minimum, batch) in cases {
            let got = minimum_healthy_count(rule, targets);
            assert_eq!(got, minimum, "{rule:?} over {targets} targets");
            assert_eq!(targets.saturating_sub(got), batch, "{rule:?} over {targets} targets");
        }
    }

    #[test]
    fn percentages_round_up_without_overflow() {
        // Extreme inputs: asserts FLEET_PERCENT rounds up, and that a huge count or an
        // out-of-range percentage saturates instead of wrapping.
        let half = rule(MinimumHealthyHostsType::FleetPercent, 50);
        assert_eq!(minimum_healthy_count(half, 1), 1);
        assert_eq!(minimum_healthy_count(half, 3), 2);
        let silly = rule(MinimumHealthyHostsType::FleetPercent, u32::MAX);
        assert!(minimum_healthy_count(silly, usize::MAX) == usize::MAX);
        let count = rule(MinimumHealthyHostsType::HostCount, u32::MAX);
        assert_eq!(minimum_healthy_count(count, 3), u32::MAX as usize);
    }

    #[test]
    fn unsatisfiable_rules_are_the_ones_keeping_every_target() {
        // HOST_COUNT and FLEET_PERCENT rules at and around the fleet size, plus
        // OneAtATime: asserts only M ≥ N (with N > 0) is refused, and OneAtATime never.
        use MinimumHealthyHostsType::{FleetPercent, HostCount, MostConcurrency};
        assert!(is_unsatisfiable(rule(FleetPercent, 95), 10));
        assert!(!is_unsatisfiable(rule(FleetPercent, 90), 10));
        assert!(is_unsatisfiable(rule(HostCount, 10), 10));
        assert!(is_unsatisfiable(rule(HostCount, 11), 10));
        assert!(!is_unsatisfiable(rule(HostCount, 9), 10));
        assert!(!is_unsatisfiable(rule(HostCount, 0), 1));
        assert!(!is_unsatisfiable(rule(HostCount, 3), 0), "no targets is NO_INSTANCES instead");
        assert!(!is_unsatisfiable(rule(MostConcurrency, 1), 1));
        assert!(!is_unsatisfiable(rule(MostConcurrency, 1), 40));
    }

    #[test]
    fn health_follows_status_liveness_and_record() {
        // Every target status against each liveness and instance record: asserts the
        // classification documented on `target_health`, including the deliberate
        // "never deployed but running counts as healthy" deviation.
        let record = |healthy| InstanceRecord {
            revision_id: None,
            healthy,
            last_deployment_id: DeploymentId("d-AAAAAAAAA".into()),
        };
        let (good, bad) = (record(true), record(false));
        use Liveness::{Alive, Dead, Suspect};
        use TargetStatus::*;
        let cases = [
            (InProgress, Alive, None, Health::OutOfService),
            (InProgress, Dead, None, Health::OutOfService),
            (Succeeded, Alive, None, Health::Healthy),
            (Succeeded, Suspect, None, Health::Healthy),
            (Succeeded, Dead, None, Health::Unhealthy),
            (Failed, Alive, Some(&good), Health::Unhealthy),
            (Pending, Alive, None, Health::Healthy),
            (Pending, Suspect, None, Health::Healthy),
            (Pending, Alive, Some(&good), Health::Healthy),
            (Pending, Alive, Some(&bad), Health::Unhealthy),
            (Pending, Dead, None, Health::Unhealthy),
            (Pending, Dead, Some(&good), Health::Unhealthy),
            (Skipped, Alive, None, Health::Unhealthy),
            (Unknown, Alive, None, Health::Unhealthy),
            (Ready, Alive, None, Health::Unhealthy),
        ];
        for (status, liveness, record, expected) in cases {
            assert_eq!(
                target_health(status, liveness, record),
                expected,
                "{status:?} on a {liveness:?} host with record {record:?}"
            );
        }
    }

    #[test]
    fn start_test_is_h_minus_one_at_least_m() {
        // The start test around its boundary: asserts H − 1 ≥ M exactly, and that H = 0
        // never passes (no underflow).
        assert!(may_take_out(7, 6));
        assert!(!may_take_out(6, 6));
        assert!(!may_take_out(0, 0));
        assert!(may_take_out(1, 0));
        assert!(!may_take_out(1, 3));
    }

    #[test]
    fn success_needs_m_and_at_least_one() {
        // The end test at its edges: asserts S ≥ M and S ≥ 1 are both required.
        assert!(is_success(6, 6));
        assert!(!is_success(5, 6));
        assert!(is_success(1, 0));
        assert!(!is_success(0, 0));
    }
}
