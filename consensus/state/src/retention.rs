//! Deployment retention ([`FeatureLevel::RETENTION`]): finished deployments older than
//! the retention's age, or beyond its count (oldest first), are compacted out of the
//! state when a new deployment is created, so the state, its snapshots and every read
//! of it stay bounded on a cluster that deploys for years. The event log has its own
//! bound ([`crate::model::events`]). A group's last successful deployment (what a
//! rollback reinstalls) and running deployments are never dropped.

use std::collections::BTreeSet;

use crate::command::{ApplyError, Outcome};
use crate::features::FeatureLevel;
use crate::model::ids::{DeploymentId, UnixMillis};
use crate::model::retention::DeploymentRetention;
use crate::model::retention::DAY_MS;
use crate::ClusterState;

impl ClusterState {
    /// `SetDeploymentRetention`: checked, then applied at once.
    pub(crate) fn set_deployment_retention(
        &mut self,
        retention: DeploymentRetention,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        retention.check()?;
        self.deployment_retention = retention;
        self.compact_deployments(at);
        Ok(Outcome::Done)
    }

    /// `CreateDeployment`, then the compaction.
    pub(crate) fn create_compacting(
        &mut self,
        spec: &crate::command::DeploymentSpec,
        deployment_id: &DeploymentId,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        let outcome = self.create_deployment(spec, deployment_id, at)?;
        self.compact_deployments(at);
        Ok(outcome)
    }

    /// Drops the finished deployments past the retention as of `at` (from
    /// [`FeatureLevel::RETENTION`] on; below it nothing is dropped).
    pub(crate) fn compact_deployments(&mut self, at: UnixMillis) {
        if self.feature_level < FeatureLevel::RETENTION {
            return;
        }
        let retention = self.deployment_retention;
        let ended_before = at.0.saturating_sub(u64::from(retention.max_age_days) * DAY_MS);
        let protected: BTreeSet<DeploymentId> = self
            .deployment_groups
            .values()
            .flat_map(|groups| groups.values())
            .flat_map(|group| [group.last_successful_deployment_id.clone(), group.active_deployment_id.clone()])
            .flatten()
            .collect();
        let max = usize::try_from(retention.max_deployments).unwrap_or(usize::MAX);
        let mut over = self.deployment_order.len().saturating_sub(max);
        let deployments = &mut self.deployments;
        self.deployment_order.retain(|id| {
            let Some(deployment) = deployments.get(id) else { return false };
            let old = deployment.complete_time.is_some_and(|ended| ended.0 < ended_before);
            let droppable = deployment.status.is_terminal() && !protected.contains(id);
            if droppable && (over > 0 || old) {
                over = over.saturating_sub(1);
                deployments.remove(id);
                return false;
            }
            true
        });
    }
}

#[cfg(test)]
mod tests;
