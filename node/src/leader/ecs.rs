//! ECS deployments' AWS calls (and the ELBv2 ones of Server groups), made by the leader (`fleetmesh_core::rollout::shift`
//! decides them, `codedeploy.md` §2.7): find the target groups and the serving task set,
//! create the replacement, point the test listener at it, move the production
//! listener's weights, and retire the original.
//!
//! Every call is a read followed, when needed, by a write, and every attempt reads
//! again: a write answered with a 5xx may have landed. So a step a dead leader made is
//! found, not made twice: the replacement by its external id (the deployment's id), a
//! listener step by its weights. A step is written over the previous step's weights
//! only, and never by a leader that was deposed meanwhile.

use fleetmesh_aws::{AwsError, AwsErrorKind, Target, TargetGroup, TaskSetInfo, TaskSetSpec, VpcNetwork};
use fleetmesh_core::rollout::shift::listener_weights;
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::model::shift::{EcsProgress, EcsSpec, ShiftStep};
use fleetmesh_transport::BoxFuture;
use tracing::info;

use super::shift::{with_retries, Role};

/// The ECS and ELBv2 calls of a deployment, as objects the leader can hold.
pub trait EcsEdge: Send + Sync {
    /// `DescribeTargetGroups` by name.
    fn target_group(&self, role: Role, name: String) -> BoxFuture<'_, Result<TargetGroup, AwsError>>;
    /// `RegisterTargets` (`register`) or `DeregisterTargets` of one target.
    fn set_registered(
        &self,
        role: Role,
        group_arn: String,
        target: Target,
        register: bool,
    ) -> BoxFuture<'_, Result<(), AwsError>>;
    /// `DescribeTargetHealth` of one target: its state, `None` when not listed.
    fn target_state(
        &self,
        role: Role,
        group_arn: String,
        target: Target,
    ) -> BoxFuture<'_, Result<Option<String>, AwsError>>;
    /// `DescribeListeners`: the default forward's (target group ARN, weight).
    fn listener_weights(&self, role: Role, listener: String) -> BoxFuture<'_, Result<Vec<(String, i32)>, AwsError>>;
    /// `ModifyListener`: one forward over `weights`.
    fn set_listener_weights(
        &self,
        role: Role,
        listener: String,
        weights: Vec<(String, i32)>,
    ) -> BoxFuture<'_, Result<(), AwsError>>;
    /// `DescribeServices`: the service's task sets.
    fn task_sets(
        &self,
        role: Role,
        cluster: String,
        service: String,
    ) -> BoxFuture<'_, Result<Vec<TaskSetInfo>, AwsError>>;
    /// `CreateTaskSet`.
    fn create_task_set(
        &self,
        role: Role,
        cluster: String,
        service: String,
        spec: TaskSetSpec,
    ) -> BoxFuture<'_, Result<TaskSetInfo, AwsError>>;
    /// `UpdateServicePrimaryTaskSet`, by ARN.
    fn set_primary(
        &self,
        role: Role,
        cluster: String,
        service: String,
        arn: String,
    ) -> BoxFuture<'_, Result<(), AwsError>>;
    /// `DeleteTaskSet`, by ARN.
    fn delete_task_set(
        &self,
        role: Role,
        cluster: String,
        service: String,
        arn: String,
    ) -> BoxFuture<'_, Result<(), AwsError>>;
}

/// What an ECS call needs besides its own arguments.
pub(super) struct EcsCall<'a> {
    pub(super) edge: &'a dyn EcsEdge,
    pub(super) role: &'a Role,
    pub(super) deployment_id: &'a DeploymentId,
    pub(super) spec: &'a EcsSpec,
    /// False once this node no longer leads the term it planned the call in.
    pub(super) leads: &'a (dyn Fn() -> bool + Sync),
}

impl EcsCall<'_> {
    /// `Install`, first half: the pair's target groups by ARN, which one production
    /// traffic goes to (blue), and the serving (primary) task set.
    pub(super) async fn resolve(&self) -> Result<ShiftStep, AwsError> {
        let spec = self.spec;
        let mut arns = Vec::new();
        for name in &spec.target_groups {
            arns.push(with_retries(|| self.edge.target_group(self.role.clone(), name.clone())).await?.arn);
        }
        let [first, second] = arns.as_slice() else {
            return Err(permanent(
                "DescribeTargetGroups",
                "TargetGroupPair",
                "the group's pair names two target groups",
            ));
        };
        let weights = self.listener(&spec.prod_listener).await?;
        let share =
            |arn: &str| weights.iter().filter(|(group, _)| group == arn).map(|(_, weight)| *weight).sum::<i32>();
        if share(first) <= 0 && share(second) <= 0 {
            return Err(permanent(
                "DescribeListeners",
                "ListenerNotForwarding",
                &format!("listener {} forwards to neither {first} nor {second}", spec.prod_listener),
            ));
        }
        let (blue, green) = if share(second) > share(first) { (second, first) } else { (first, second) };
        let sets = self.task_sets().await?;
        let original = sets
            .iter()
            .find(|set| set.status == "PRIMARY" && set.external_id != self.deployment_id.0)
            .map(|set| set.arn.clone());
        info!(deployment = %self.deployment_id, %blue, %green, ?original, "found the target groups and the serving task set");
        Ok(ShiftStep::EcsResolved(EcsProgress {
            blue_target_group: blue.clone(),
            green_target_group: green.clone(),
            original,
            ..EcsProgress::default()
        }))
    }

    /// `Install`, second half: the replacement task set behind green, created unless
    /// one with this deployment's external id exists.
    pub(super) async fn create_task_set(&self, progress: &EcsProgress) -> Result<ShiftStep, AwsError> {
        let spec = self.spec;
        let request = task_set_spec(spec, progress, self.deployment_id);
        with_retries(|| {
            Box::pin(async {
                if let Some(found) = self.task_sets().await?.into_iter().find(|set| set.external_id == self.deployment_id.0)
                {
                    info!(deployment = %self.deployment_id, arn = %found.arn, "the replacement task set exists");
                    return Ok(ShiftStep::TaskSetCreated { arn: found.arn });
                }
                self.still_leads("CreateTaskSet")?;
                info!(deployment = %self.deployment_id, task_definition = %spec.task_set.task_definition, "creating the replacement task set");
                let created = self
                    .edge
                    .create_task_set(self.role.clone(), spec.cluster.clone(), spec.service.clone(), request.clone())
                    .await?;
                Ok(ShiftStep::TaskSetCreated { arn: created.arn })
            })
        })
        .await
    }

    /// `AllowTestTraffic`: the test listener forwards to green alone.
    pub(super) async fn route_test_traffic(&self, progress: &EcsProgress) -> Result<ShiftStep, AwsError> {
        let Some(listener) = &self.spec.test_listener else { return Ok(ShiftStep::TestTrafficRouted) };
        self.move_listener(listener, progress, 100, None).await?;
        Ok(ShiftStep::TestTrafficRouted)
    }

    /// `AllowTraffic`: the production listener at step `weight` (green's percent), set
    /// only over `before`'s weights when given.
    pub(super) async fn set_step(
        &self,
        progress: &EcsProgress,
        weight: u32,
        before: Option<u32>,
    ) -> Result<(), AwsError> {
        self.move_listener(&self.spec.prod_listener, progress, weight, before).await
    }

    /// After the events: the replacement becomes primary, the original (and, in a
    /// rollback, anything with the failed deployment's external id) is deleted.
    pub(super) async fn retire(&self, progress: &EcsProgress) -> Result<ShiftStep, AwsError> {
        let spec = self.spec;
        with_retries(|| {
            Box::pin(async {
                let sets = self.task_sets().await?;
                let replacement = progress.replacement.as_deref();
                if let Some(set) =
                    sets.iter().find(|set| Some(set.arn.as_str()) == replacement && set.status != "PRIMARY")
                {
                    self.still_leads("UpdateServicePrimaryTaskSet")?;
                    info!(deployment = %self.deployment_id, arn = %set.arn, "making the replacement primary");
                    let (cluster, service) = (spec.cluster.clone(), spec.service.clone());
                    self.edge.set_primary(self.role.clone(), cluster, service, set.arn.clone()).await?;
                }
                let removed = |set: &&TaskSetInfo| {
                    Some(set.arn.as_str()) != replacement
                        && (Some(set.arn.as_str()) == progress.original.as_deref()
                            || progress.remove_external_id.as_deref().is_some_and(|id| id == set.external_id))
                };
                for set in sets.iter().filter(removed) {
                    self.still_leads("DeleteTaskSet")?;
                    info!(deployment = %self.deployment_id, arn = %set.arn, "deleting the original task set");
                    let (cluster, service) = (spec.cluster.clone(), spec.service.clone());
                    self.edge.delete_task_set(self.role.clone(), cluster, service, set.arn.clone()).await?;
                }
                Ok(ShiftStep::Retired)
            })
        })
        .await
    }

    /// Sets `listener` to green's `weight`, unless it is there already; refuses to write
    /// over anything but `before`'s weights when given.
    async fn move_listener(
        &self,
        listener: &str,
        progress: &EcsProgress,
        weight: u32,
        before: Option<u32>,
    ) -> Result<(), AwsError> {
        let wanted = listener_weights(progress, weight);
        with_retries(|| {
            Box::pin(async {
                let now = self.listener(listener).await?;
                let share = green_share(&now, progress);
                if share == Some(weight) {
                    info!(%listener, weight, "the listener forwards as this step says");
                    return Ok(());
                }
                if let Some(before) = before.filter(|before| share != Some(*before)) {
                    return Err(permanent(
                        "ModifyListener",
                        "ListenerMoved",
                        &format!(
                            "listener {listener} forwards {now:?}, neither this step's {weight} % to green nor the \
                             previous step's {before} %: it was changed outside this deployment"
                        ),
                    ));
                }
                self.still_leads("ModifyListener")?;
                info!(%listener, weight, "moving the listener's weights");
                self.edge.set_listener_weights(self.role.clone(), listener.to_string(), wanted.clone()).await
            })
        })
        .await
    }

    async fn listener(&self, listener: &str) -> Result<Vec<(String, i32)>, AwsError> {
        with_retries(|| self.edge.listener_weights(self.role.clone(), listener.to_string())).await
    }

    async fn task_sets(&self) -> Result<Vec<TaskSetInfo>, AwsError> {
        let spec = self.spec;
        with_retries(|| self.edge.task_sets(self.role.clone(), spec.cluster.clone(), spec.service.clone())).await
    }

    fn still_leads(&self, operation: &'static str) -> Result<(), AwsError> {
        if (self.leads)() {
            return Ok(());
        }
        Err(permanent(operation, "NotLeader", "this node no longer leads; the next leader resumes the step"))
    }
}

/// Green's share of `weights` in percent (rounded), `None` when the forward sends to
/// neither target group of `progress`.
fn green_share(weights: &[(String, i32)], progress: &EcsProgress) -> Option<u32> {
    let of =
        |arn: &str| weights.iter().filter(|(group, _)| group == arn).map(|(_, weight)| (*weight).max(0)).sum::<i32>();
    let (blue, green) = (of(&progress.blue_target_group), of(&progress.green_target_group));
    let total = u32::try_from(blue + green).ok().filter(|total| *total > 0)?;
    let green = u32::try_from(green).ok()?;
    Some((green * 100 + total / 2) / total)
}

/// The `CreateTaskSet` request of `spec`'s replacement, behind green, found again by the
/// deployment's id.
fn task_set_spec(spec: &EcsSpec, progress: &EcsProgress, deployment_id: &DeploymentId) -> TaskSetSpec {
    let task_set = &spec.task_set;
    TaskSetSpec {
        task_definition: task_set.task_definition.clone(),
        container_name: task_set.container_name.clone(),
        container_port: task_set.container_port,
        target_group_arn: progress.green_target_group.clone(),
        platform_version: task_set.platform_version.clone(),
        network: (!task_set.subnets.is_empty()).then(|| VpcNetwork {
            subnets: task_set.subnets.clone(),
            security_groups: task_set.security_groups.clone(),
            assign_public_ip: task_set.assign_public_ip,
        }),
        capacity_providers: task_set.capacity_providers.clone(),
        external_id: Some(deployment_id.0.clone()),
    }
}

fn permanent(operation: &'static str, code: &str, message: &str) -> AwsError {
    AwsError { operation, code: code.to_string(), message: message.to_string(), kind: AwsErrorKind::Permanent }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn green_share_reads_weighted_and_plain_forwards() {
        let progress =
            EcsProgress { blue_target_group: "b".into(), green_target_group: "g".into(), ..EcsProgress::default() };
        let weights =
            |pairs: &[(&str, i32)]| pairs.iter().map(|(arn, weight)| (arn.to_string(), *weight)).collect::<Vec<_>>();
        assert_eq!(green_share(&weights(&[("b", 90), ("g", 10)]), &progress), Some(10));
        assert_eq!(green_share(&weights(&[("b", 1)]), &progress), Some(0), "a plain forward to blue");
        assert_eq!(green_share(&weights(&[("g", 0), ("b", 0)]), &progress), None);
        assert_eq!(green_share(&weights(&[("other", 100)]), &progress), None);
        assert_eq!(green_share(&weights(&[("b", 2), ("g", 1)]), &progress), Some(33));
    }
}
