//! Safety: a deployment never has more healthy targets out of service at once than its
//! minimum-healthy-hosts rule allows (`codedeploy.md` §4.2).
//!
//! Checked after every committed proposal, on the replicated deployment record as the
//! observer replays it, so the check sees every state the cluster agreed on, not
//! samples of it.
//!
//! What "healthy" means here, and why the check is exact:
//! - At the deployment's creation each target is *healthy at start* iff the group's
//!   record of its host is healthy or absent (the planner's rule for a pending target,
//!   minus liveness). `H0` counts them; `M` is
//!   [`fleetmesh_core::rollout::deployment_minimum`]: the rule over the targets,
//!   clamped to N − 1 for a rollback.
//! - At every committed state, the targets *in service* are those that succeeded, plus
//!   the healthy-at-start ones the rollout has not taken: still pending, skipped at the
//!   end, or failed before they ever started (wave 0: their host was dead — a loss the
//!   environment caused, not the rollout). The invariant is `in service ≥ min(M, H0)`.
//! - Why a correct planner can never break it: the count only drops when the planner
//!   starts a healthy-at-start target, which it does only while its own healthy count
//!   stays at least `M` afterwards; and its own count is never above ours (it also
//!   drops hosts it believes dead, and the group records of pending targets cannot
//!   change while the deployment runs, one deployment per group at a time). So the
//!   check needs no liveness guess and no sampling: every violation is a planner bug,
//!   and a planner that takes one target too many out is caught on its first wave.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_core::rollout::deployment_minimum;
use fleetmesh_state::model::deployment::{Deployment, TargetStatus};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::ClusterState;
use fleetmesh_transport::NodeId;

use super::Violation;

#[derive(Debug)]
struct Baseline {
    healthy_at_start: BTreeSet<NodeId>,
    minimum: usize,
    /// `min(M, H0)`: in-service targets may never drop below it.
    floor: usize,
}

/// The min-healthy monitor.
#[derive(Debug, Default)]
pub struct MinHealthy {
    baselines: BTreeMap<DeploymentId, Baseline>,
    /// Deployments checked at least once.
    pub deployments_checked: usize,
    /// The smallest `in service − floor` seen over all deployments.
    pub least_margin: Option<usize>,
    violation: Option<Violation>,
}

impl MinHealthy {
    /// Records the baseline of a deployment just created in `state`. A blue/green
    /// deployment has none: its green fleet serves nothing while it installs, all at
    /// once, and what it must keep is traffic on the route
    /// ([`super::route_never_empty`]).
    pub fn created(&mut self, state: &ClusterState, deployment: &Deployment) {
        if deployment.blue_green.is_some() {
            return;
        }
        let group = state.deployment_group(&deployment.application_name, &deployment.deployment_group_name);
        let healthy_at_start: BTreeSet<NodeId> = deployment
            .targets
            .keys()
            .copied()
            .filter(|id| group.and_then(|group| group.instances.get(id)).is_none_or(|record| record.healthy))
            .collect();
        let minimum = deployment_minimum(deployment);
        let floor = minimum.min(healthy_at_start.len());
        self.baselines.insert(deployment.deployment_id.clone(), Baseline { healthy_at_start, minimum, floor });
        self.deployments_checked += 1;
    }

    /// Checks a deployment after a committed change (`index`: its log index).
    pub fn check(&mut self, deployment: &Deployment, index: u64) {
        let Some(baseline) = self.baselines.get(&deployment.deployment_id) else { return };
        let in_service = deployment
            .targets
            .values()
            .filter(|target| match target.status {
                TargetStatus::Succeeded => true,
                TargetStatus::Pending | TargetStatus::Skipped => baseline.healthy_at_start.contains(&target.target_id),
                TargetStatus::Failed => target.wave == 0 && baseline.healthy_at_start.contains(&target.target_id),
                _ => false,
            })
            .count();
        if in_service >= baseline.floor {
            let margin = in_service - baseline.floor;
            self.least_margin = Some(self.least_margin.map_or(margin, |least| least.min(margin)));
            return;
        }
        if self.violation.is_none() {
            let out: Vec<String> = deployment
                .targets
                .values()
                .filter(|target| target.status == TargetStatus::InProgress)
                .map(|target| target.target_id.to_string())
                .collect();
            self.violation = Some(Violation::new(format!(
                "deployment {} ({}, {} targets, M = {}, {} healthy at start) had only {in_service} targets in service \
                 at log index {index} (in progress: {}); the rule needs at least {}",
                deployment.deployment_id,
                deployment.deployment_config_name,
                deployment.targets.len(),
                baseline.minimum,
                baseline.healthy_at_start.len(),
                out.join(", "),
                baseline.floor
            )));
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use fleetmesh_state::model::deployment::{DeploymentCreator, DeploymentStatus, Target};
    use fleetmesh_state::model::ids::{Hash32, UnixMillis};
    use fleetmesh_state::model::resources::{
        AutoRollbackConfiguration, FileExistsBehavior, MinimumHealthyHosts, MinimumHealthyHostsType,
    };

    use super::*;

    /// An in-progress OneAtATime deployment `d-TEST00001` of hosts 1..=`targets`, all pending.
    pub(crate) fn deployment(targets: u64) -> Deployment {
        Deployment {
            alarm_configuration: None,
            deployment_id: DeploymentId("d-TEST00001".into()),
            application_name: "app".into(),
            deployment_group_name: "web".into(),
            deployment_group_id: "g".into(),
            revision_id: Hash32([1; 32]),
            deployment_config_name: "CodeDeployDefault.OneAtATime".into(),
            minimum_healthy_hosts: MinimumHealthyHosts { kind: MinimumHealthyHostsType::MostConcurrency, value: 1 },
            traffic_routing: None,
            creator: DeploymentCreator::User,
            status: DeploymentStatus::InProgress,
            error_information: None,
            description: String::new(),
            ignore_application_stop_failures: false,
            file_exists_behavior: FileExistsBehavior::Disallow,
            auto_rollback_configuration: AutoRollbackConfiguration::default(),
            rollback_info: None,
            create_time: UnixMillis(0),
            created_by: None,
            stopped_by: None,
            start_time: None,
            complete_time: None,
            waves: 0,
            traffic_routes: Vec::new(),
            elbv2_target_groups: Vec::new(),
            targets: (1..=targets).map(|id| (NodeId(id), Target::pending(NodeId(id), UnixMillis(0)))).collect(),
            blue_green: None,
            shift: None,
        }
    }

    fn set(deployment: &mut Deployment, id: u64, status: TargetStatus, wave: u32) {
        let target = deployment.targets.get_mut(&NodeId(id)).expect("target");
        target.status = status;
        target.wave = wave;
    }

    #[test]
    fn one_at_a_time_allows_one_out_and_ignores_environmental_losses() {
        // OneAtATime over 4 hosts with no group records (all healthy at start, M = 3):
        // asserts one in-flight target passes, a target failed before it started (dead
        // host, wave 0) does not count as taken out, and a second healthy target in
        // flight is caught with both hosts named.
        let state = ClusterState::default();
        let mut monitor = MinHealthy::default();
        let mut deployment = deployment(4);
        monitor.created(&state, &deployment);
        set(&mut deployment, 1, TargetStatus::InProgress, 1);
        set(&mut deployment, 4, TargetStatus::Failed, 0);
        monitor.check(&deployment, 10);
        assert_eq!(monitor.verdict(), Ok(()));
        assert_eq!(monitor.least_margin, Some(0));
        set(&mut deployment, 1, TargetStatus::Succeeded, 1);
        set(&mut deployment, 2, TargetStatus::InProgress, 2);
        monitor.check(&deployment, 11);
        assert_eq!(monitor.verdict(), Ok(()));
        set(&mut deployment, 3, TargetStatus::InProgress, 2);
        monitor.check(&deployment, 12);
        let violation = monitor.verdict().expect_err("two out of service").to_string();
        assert!(violation.contains("in progress: 2, 3") && violation.contains("at least 3"), "{violation}");
    }
}
