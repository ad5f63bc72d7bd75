//! `apply` for deployments: creation, waves, agent reports, finish, stop, rollback.

use std::collections::BTreeMap;

use crate::model::blue_green::BlueGreenRun;
use crate::NodeId;

use crate::command::{ApplyError, DeploymentSpec, Finish, Outcome, TargetReport};
use crate::model::deployment::{
    in_place_events, Deployment, DeploymentStatus, Diagnostics, ErrorCode, ErrorInformation, LifecycleErrorCode,
    LifecycleEventStatus, Target, TargetStatus,
};
use crate::model::ids::{DeploymentId, UnixMillis};
use crate::model::resources::{DeploymentGroup, InstanceRecord};
use crate::{ClusterState, FeatureLevel};

impl ClusterState {
    fn deployment_mut(&mut self, id: &DeploymentId) -> Result<&mut Deployment, ApplyError> {
        self.deployments.get_mut(id).ok_or_else(|| ApplyError::not_found(format!("deployment {id} does not exist")))
    }

    fn active_deployment_mut(&mut self, id: &DeploymentId) -> Result<&mut Deployment, ApplyError> {
        let deployment = self.deployment_mut(id)?;
        if deployment.status.is_terminal() {
            return Err(ApplyError::conflict(format!("deployment {id} already finished ({:?})", deployment.status)));
        }
        Ok(deployment)
    }

    /// The group a new deployment of `spec` runs in, after the checks that do not depend
    /// on the deployment itself: the application, group and revision exist, the
    /// revision is the application's, and the platform is one this release deploys to.
    fn deployable_group(&self, spec: &DeploymentSpec) -> Result<&DeploymentGroup, ApplyError> {
        let application = self
            .applications
            .get(&spec.application_name)
            .ok_or_else(|| ApplyError::not_found(format!("application {} does not exist", spec.application_name)))?;
        let platform = application.compute_platform;
        let group = self.deployment_group(&spec.application_name, &spec.deployment_group_name).ok_or_else(|| {
            ApplyError::not_found(format!(
                "deployment group {} of application {} does not exist",
                spec.deployment_group_name, spec.application_name
            ))
        })?;
        let revision = self.revisions.get(&spec.revision_id).ok_or_else(|| {
            ApplyError::not_found(format!("revision {} does not exist; push it first", spec.revision_id))
        })?;
        if revision.application_name != spec.application_name {
            return Err(ApplyError::invalid(format!(
                "revision {} belongs to application {}, not {}",
                spec.revision_id, revision.application_name, spec.application_name
            )));
        }
        self.check_deployment_platform(spec, platform, revision)?;
        Ok(group)
    }

    pub(super) fn create_deployment(
        &mut self,
        spec: &DeploymentSpec,
        deployment_id: &DeploymentId,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        let group = self.deployable_group(spec)?;
        let config_name = spec.deployment_config_name.clone().unwrap_or_else(|| group.deployment_config_name.clone());
        let config = self.check_config_platform(&spec.application_name, &config_name)?;
        if let Some(active) = &group.active_deployment_id {
            return Err(ApplyError::conflict(format!(
                "deployment group {} already has deployment {active} in progress; \
                 wait for it or stop it (one deployment per group at a time)",
                spec.deployment_group_name
            )));
        }
        if self.deployments.contains_key(deployment_id) {
            return Err(ApplyError::exists(format!("deployment {deployment_id} already exists")));
        }
        let traffic_routes = group.traffic_routes();
        if let Some((route, other)) = self.route_in_use(&traffic_routes) {
            return Err(ApplyError::conflict(format!(
                "route {route} is being changed by deployment {other} of another group; one deployment at a \
                 time moves a route's traffic, wait for it or stop it"
            )));
        }
        let traffic_routing = config.traffic_routing_config.and_then(|routing| routing.normalise().ok());
        self.check_stepped_blue_green(group, spec, &config_name, traffic_routing.is_some())?;
        let shift = Self::new_shift_run(spec, group, traffic_routing, at);
        let (targets, blue_green) =
            if shift.is_some() { (BTreeMap::new(), None) } else { self.new_targets(group, spec, at)? };
        let deployment = Deployment {
            deployment_id: deployment_id.clone(),
            application_name: spec.application_name.clone(),
            deployment_group_name: spec.deployment_group_name.clone(),
            deployment_group_id: group.deployment_group_id.clone(),
            revision_id: spec.revision_id,
            deployment_config_name: config_name,
            minimum_healthy_hosts: config.minimum_healthy_hosts,
            // Checked when the configuration was created; a config that no longer reads
            // as valid (it cannot happen today) deploys with the minimum-healthy rule alone.
            traffic_routing,
            creator: spec.creator,
            status: DeploymentStatus::Created,
            error_information: None,
            description: spec.description.clone(),
            ignore_application_stop_failures: spec.ignore_application_stop_failures,
            file_exists_behavior: spec.file_exists_behavior,
            auto_rollback_configuration: spec
                .auto_rollback_configuration
                .clone()
                .unwrap_or_else(|| group.auto_rollback_configuration.clone()),
            alarm_configuration: deployment_alarms(spec, group)?,
            rollback_info: None,
            create_time: at,
            created_by: None,
            stopped_by: None,
            start_time: None,
            complete_time: None,
            waves: 0,
            targets,
            traffic_routes,
            elbv2_target_groups: group.elbv2_target_groups(),
            blue_green,
            shift,
        };
        let (application_name, group_name) = (spec.application_name.clone(), spec.deployment_group_name.clone());
        self.deployments.insert(deployment_id.clone(), deployment);
        self.deployment_order.push(deployment_id.clone());
        if let Some(group) = self.deployment_group_mut(&application_name, &group_name) {
            group.active_deployment_id = Some(deployment_id.clone());
        }
        Ok(Outcome::Done)
    }

    /// A blue/green deployment with a configuration that has steps (any
    /// `trafficRoutingConfig`) needs level 11: releases before it refused one, and all
    /// voters must decide alike.
    fn check_stepped_blue_green(
        &self,
        group: &DeploymentGroup,
        spec: &DeploymentSpec,
        config_name: &str,
        stepped: bool,
    ) -> Result<(), ApplyError> {
        if stepped && Self::is_blue_green(group, spec) && self.feature_level < FeatureLevel::BLUE_GREEN_STEPS {
            return Err(ApplyError::invalid(format!(
                "deployment configuration {config_name} has canary or linear steps; this cluster shifts \
                 blue/green traffic all at once until every voter runs a release with feature level {} \
                 (use a configuration without --traffic-routing-config)",
                FeatureLevel::BLUE_GREEN_STEPS.0
            )));
        }
        Ok(())
    }

    /// The targets of a new deployment of `spec` in `group`, and a blue/green
    /// deployment's progress record: blue/green picks its two fleets; in place takes the
    /// explicit targets that are members, or the hosts the group selects.
    fn new_targets(
        &self,
        group: &DeploymentGroup,
        spec: &DeploymentSpec,
        at: UnixMillis,
    ) -> Result<(BTreeMap<NodeId, Target>, Option<BlueGreenRun>), ApplyError> {
        if Self::is_blue_green(group, spec) {
            let (targets, run) = self.blue_green_targets(group, spec, at)?;
            return Ok((targets, Some(run)));
        }
        let hosts: Vec<NodeId> = match &spec.targets {
            Some(explicit) => explicit.iter().copied().filter(|id| self.members.contains_key(id)).collect(),
            None => self.group_targets(group),
        };
        let events = in_place_events(!group.traffic_routes().is_empty() || !group.elbv2_target_groups().is_empty());
        Ok((hosts.into_iter().map(|id| (id, Target::pending_with(id, at, events))).collect(), None))
    }

    pub(super) fn start_targets(
        &mut self,
        deployment_id: &DeploymentId,
        targets: &[NodeId],
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        let deployment = self.active_deployment_mut(deployment_id)?;
        for id in targets {
            match deployment.targets.get(id) {
                Some(target) if target.status == TargetStatus::Pending => {}
                Some(target) => {
                    return Err(ApplyError::conflict(format!(
                        "target {id} of {deployment_id} is {:?}, not Pending",
                        target.status
                    )))
                }
                None => return Err(ApplyError::not_found(format!("node {id} is not a target of {deployment_id}"))),
            }
        }
        if deployment.status == DeploymentStatus::Created {
            deployment.status = DeploymentStatus::InProgress;
            deployment.start_time = Some(at);
        }
        if targets.is_empty() {
            return Ok(Outcome::Done);
        }
        deployment.waves += 1;
        let wave = deployment.waves;
        for id in targets {
            let target = deployment.targets.get_mut(id).expect("checked above");
            target.status = TargetStatus::InProgress;
            target.wave = wave;
            target.last_updated_at = at;
        }
        Ok(Outcome::Done)
    }

    pub(super) fn report_target(&mut self, report: &TargetReport, at: UnixMillis) -> Result<Outcome, ApplyError> {
        let deployment = self.deployment_mut(&report.deployment_id)?;
        let phase = deployment.blue_green.map(|run| run.phase);
        let target = deployment.targets.get_mut(&report.target_id).ok_or_else(|| {
            ApplyError::not_found(format!("node {} is not a target of {}", report.target_id, report.deployment_id))
        })?;
        if target.status != TargetStatus::InProgress {
            return Err(ApplyError::conflict(format!("target is {:?}; report ignored", target.status)));
        }
        if report.seq <= target.report_seq {
            return Err(ApplyError::conflict("stale report"));
        }
        let ready_allowed = report.status == TargetStatus::Ready && target.target_label.is_some();
        if ready_allowed && !crate::blue_green::pauses_in(phase, target.target_label) {
            // A late copy of a pause the phase has moved past (an agent that restarted
            // re-sends its Ready report with a new number): taking it would put a
            // released target back to Ready, where nobody assigns it again, and the
            // deployment would wait forever (found by the simulator: blue-green-chaos
            // seed 40 at 7 nodes).
            return Err(ApplyError::conflict(format!(
                "target {} of {} reported Ready, but its fleet was released ({phase:?}); report ignored",
                report.target_id, report.deployment_id
            )));
        }
        if !ready_allowed
            && !matches!(report.status, TargetStatus::InProgress | TargetStatus::Succeeded | TargetStatus::Failed)
        {
            return Err(ApplyError::invalid(format!("an agent cannot report {:?}", report.status)));
        }
        target.report_seq = report.seq;
        target.status = report.status;
        target.lifecycle_events = report.lifecycle_events.clone();
        target.last_updated_at = at;
        if report.status.is_terminal() {
            let installed = match install_status(target) {
                Some(LifecycleEventStatus::Succeeded) => Installed::Yes,
                // Install began and did not finish: some files may be in place.
                Some(LifecycleEventStatus::InProgress | LifecycleEventStatus::Failed) => Installed::Unknown,
                _ => Installed::No,
            };
            let succeeded = report.status == TargetStatus::Succeeded;
            self.record_instance(&report.deployment_id, report.target_id, succeeded, installed);
        }
        Ok(Outcome::Done)
    }

    /// Updates the group's record of a host after a target of `deployment_id` ended.
    fn record_instance(&mut self, deployment_id: &DeploymentId, node: NodeId, succeeded: bool, installed: Installed) {
        let Some(deployment) = self.deployments.get(deployment_id) else { return };
        let (application, group_name, revision) =
            (deployment.application_name.clone(), deployment.deployment_group_name.clone(), deployment.revision_id);
        let Some(group) = self.deployment_group_mut(&application, &group_name) else { return };
        let record = group.instances.entry(node).or_insert(InstanceRecord {
            revision_id: None,
            healthy: false,
            last_deployment_id: deployment_id.clone(),
        });
        record.healthy = succeeded;
        record.last_deployment_id = deployment_id.clone();
        match installed {
            Installed::Yes => record.revision_id = Some(revision),
            Installed::No => {}
            Installed::Unknown => record.revision_id = None,
        }
    }

    pub(super) fn fail_targets(
        &mut self,
        deployment_id: &DeploymentId,
        targets: &[(NodeId, String)],
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        let deployment = self.active_deployment_mut(deployment_id)?;
        let mut failed = Vec::new();
        for (id, reason) in targets {
            let Some(target) = deployment.targets.get_mut(id) else { continue };
            if target.status.is_terminal() {
                continue;
            }
            // The leader fails a target without a last report from its host (host lost,
            // deployment timed out). A pending one was never sent to the host; an
            // in-flight one may have installed the revision after its last report, so
            // what the host runs is unknown unless Install was reported done. Recording
            // the old revision there would let the group believe a host that runs the
            // new one is up to date (found by the simulator: rolling-chaos seed 116, a
            // host lost right after Install never converged).
            let installed = match target.status {
                TargetStatus::Pending => Installed::No,
                _ if install_status(target) == Some(LifecycleEventStatus::Succeeded) => Installed::Yes,
                _ => Installed::Unknown,
            };
            fail_target(target, LifecycleEventStatus::Failed, reason, at);
            failed.push((*id, installed));
        }
        for (id, installed) in failed {
            self.record_instance(deployment_id, id, false, installed);
        }
        Ok(Outcome::Done)
    }

    pub(super) fn finish_deployment(&mut self, finish: &Finish, at: UnixMillis) -> Result<Outcome, ApplyError> {
        let deployment = self.active_deployment_mut(&finish.deployment_id)?;
        if let Some(busy) = deployment.targets.values().find(|target| target.status == TargetStatus::InProgress) {
            return Err(ApplyError::conflict(format!(
                "target {} of {} is still in progress",
                busy.target_id, finish.deployment_id
            )));
        }
        if let Some(run) = deployment.shift.as_mut().filter(|run| !run.status.is_terminal()) {
            run.stop(at);
        }
        skip_pending(deployment, at);
        deployment.status = if finish.succeeded { DeploymentStatus::Succeeded } else { DeploymentStatus::Failed };
        deployment.error_information = finish.error.clone();
        deployment.complete_time = Some(at);
        if deployment.start_time.is_none() {
            deployment.start_time = Some(at);
        }
        let rollback_wanted = !finish.succeeded
            && deployment
                .auto_rollback_configuration
                .triggers_on(crate::model::resources::AutoRollbackEvent::DeploymentFailure);
        if deployment.blue_green.is_some() {
            // Blue still runs: a rollback gives it the traffic back at once, in this
            // entry, instead of deploying the old revision again.
            let rolled_back = if rollback_wanted { self.roll_back_traffic(&finish.deployment_id, at) } else { None };
            return Ok(self.end_blue_green(&finish.deployment_id, finish.succeeded, rolled_back, at));
        }
        let (application, group_name, revision) =
            (deployment.application_name.clone(), deployment.deployment_group_name.clone(), deployment.revision_id);
        if let Some(group) = self.deployment_group_mut(&application, &group_name) {
            group.active_deployment_id = None;
            if finish.succeeded {
                group.target_revision = Some(revision);
                group.last_successful_deployment_id = Some(finish.deployment_id.clone());
            }
        }
        if rollback_wanted {
            if let Some(rollback_id) = &finish.rollback_id {
                self.create_rollback(&finish.deployment_id, rollback_id, at);
            }
        }
        Ok(Outcome::Done)
    }

    pub(super) fn stop_deployment(
        &mut self,
        deployment_id: &DeploymentId,
        rollback_id: Option<&DeploymentId>,
        alarm: Option<&str>,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        let deployment = self.active_deployment_mut(deployment_id)?;
        let mut interrupted = Vec::new();
        for target in deployment.targets.values_mut() {
            if target.status == TargetStatus::InProgress {
                fail_target(target, LifecycleEventStatus::Unknown, "the deployment was stopped", at);
                interrupted.push(target.target_id);
            }
        }
        if let Some(run) = deployment.shift.as_mut() {
            run.stop(at);
        }
        skip_pending(deployment, at);
        deployment.status = DeploymentStatus::Stopped;
        deployment.error_information = Some(match alarm {
            Some(message) => ErrorInformation { code: ErrorCode::AlarmActive, message: message.to_string() },
            None => ErrorInformation {
                code: ErrorCode::ManualStop,
                message: "the deployment was stopped by request".into(),
            },
        });
        deployment.complete_time = Some(at);
        let (application, group_name) = (deployment.application_name.clone(), deployment.deployment_group_name.clone());
        if let Some(group) = self.deployment_group_mut(&application, &group_name) {
            group.active_deployment_id = None;
        }
        for id in interrupted {
            self.record_instance(deployment_id, id, false, Installed::No);
        }
        if self.deployments.get(deployment_id).is_some_and(|deployment| deployment.blue_green.is_some()) {
            let rolled_back = rollback_id.and_then(|_| self.roll_back_traffic(deployment_id, at));
            return Ok(self.end_blue_green(deployment_id, false, rolled_back, at));
        }
        if let Some(rollback_id) = rollback_id {
            self.create_rollback(deployment_id, rollback_id, at);
        }
        Ok(Outcome::Done)
    }
}

/// Marks a target failed: the running event gets `running_becomes` with `reason`, later
/// events are skipped.
/// What a group's record learns about a host's revision when its target ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Installed {
    /// The host reported Install done: it runs the deployment's revision.
    Yes,
    /// The host did not start installing it: the record keeps what it knew before.
    No,
    /// Nobody knows: the host was lost mid-lifecycle, or Install began and did not
    /// finish (a crash, a failed copy).
    Unknown,
}

/// The status of the target's Install event, as last reported.
fn install_status(target: &Target) -> Option<LifecycleEventStatus> {
    target.lifecycle_events.iter().find(|event| event.lifecycle_event_name == "Install").map(|event| event.status)
}

fn fail_target(target: &mut Target, running_becomes: LifecycleEventStatus, reason: &str, at: UnixMillis) {
    let mut marked = false;
    for event in &mut target.lifecycle_events {
        match event.status {
            LifecycleEventStatus::InProgress => {
                event.status = running_becomes;
                event.end_time = Some(at);
                event.diagnostics = Some(Diagnostics {
                    error_code: LifecycleErrorCode::UnknownError,
                    script_name: String::new(),
                    message: reason.to_string(),
                    log_tail: String::new(),
                });
                marked = true;
            }
            LifecycleEventStatus::Pending if !marked => {
                // The host never started this event: it is the one that failed.
                event.status = running_becomes;
                event.start_time = Some(at);
                event.end_time = Some(at);
                event.diagnostics = Some(Diagnostics {
                    error_code: LifecycleErrorCode::UnknownError,
                    script_name: String::new(),
                    message: reason.to_string(),
                    log_tail: String::new(),
                });
                marked = true;
            }
            LifecycleEventStatus::Pending => event.status = LifecycleEventStatus::Skipped,
            _ => {}
        }
    }
    target.status = TargetStatus::Failed;
    target.last_updated_at = at;
}

pub(crate) fn skip_pending(deployment: &mut Deployment, at: UnixMillis) {
    for target in deployment.targets.values_mut() {
        if target.status == TargetStatus::Pending {
            target.status = TargetStatus::Skipped;
            target.last_updated_at = at;
            for event in &mut target.lifecycle_events {
                event.status = LifecycleEventStatus::Skipped;
            }
        }
    }
}

/// The alarms a new deployment is gated on: its override or its group's. A rollback
/// restores the last good revision while the alarm may still be on: gating it on the
/// same alarms would stop the cure with the disease.
fn deployment_alarms(
    spec: &DeploymentSpec,
    group: &crate::model::resources::DeploymentGroup,
) -> Result<Option<crate::model::alarms::AlarmConfiguration>, ApplyError> {
    if let Some(alarms) = &spec.alarm_configuration {
        crate::model::alarms::check_alarms(alarms).map_err(|error| ApplyError::invalid(error.0))?;
    }
    Ok(match spec.creator {
        crate::model::deployment::DeploymentCreator::CodeDeployRollback => None,
        _ => spec.alarm_configuration.clone().or_else(|| group.alarm_configuration.clone()),
    })
}
