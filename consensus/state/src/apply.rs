//! `apply`: each command of a proposal in order; applications, groups, configurations
//! and revisions here, membership in `membership.rs`, deployments in `deployments.rs`.

use crate::NodeId;

use crate::command::{ApplyError, Command, Outcome, Proposal, ProposalResponse};
use crate::features::FeatureLevel;
use crate::model::ids::{RevisionId, UnixMillis};
use crate::model::members::Actor;
use crate::model::platform_configs::check_platform_config;
use crate::model::resources::{
    validate_name, Application, ComputePlatform, DeploymentConfig, MinimumHealthyHosts, MinimumHealthyHostsType,
    PREDEFINED_PREFIX,
};
use crate::model::revision::RevisionRecord;
use crate::model::traffic_routing::TrafficRoutingConfig;
use crate::ClusterState;

impl ClusterState {
    /// Applies a proposal: each command in order, each all-or-nothing.
    pub fn apply(&mut self, proposal: &Proposal) -> ProposalResponse {
        let at = proposal.at.max(self.last_applied_at);
        self.last_applied_at = at;
        let outcomes = proposal
            .commands
            .iter()
            .map(|command| {
                let fresh_revision = match command {
                    Command::RegisterRevision { record } => !self.revisions.contains_key(&record.revision_id),
                    _ => false,
                };
                let before = self.events_before(command);
                match self.apply_one(command, at) {
                    Ok(outcome) => {
                        if let Some(before) = before {
                            self.record_events(before, at);
                        }
                        if let Some(by) = &proposal.by {
                            self.record_actor(command, by, fresh_revision);
                        }
                        outcome
                    }
                    Err(error) => Outcome::Rejected(error),
                }
            })
            .collect();
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        ProposalResponse { outcomes }
    }

    fn apply_one(&mut self, command: &Command, at: UnixMillis) -> Result<Outcome, ApplyError> {
        match command {
            Command::Bootstrap { info, first } => self.bootstrap(info, first, at),
            Command::AddMember { spec } => self.add_member(spec, at),
            Command::UpdateMember { id, spec } => self.update_member(id, spec, at),
            Command::RemoveMember { id } => self.remove_member(id),
            Command::AddJoinToken { record } => self.add_join_token(record, at),
            Command::AdmitMember { spec, token_id } => self.admit_member(spec, token_id, at),
            Command::DeleteJoinToken { token_id } => self.delete_join_token(token_id),
            Command::SetApiToken { kind, hash } => self.set_api_token(*kind, hash),
            Command::SealCa { sealed_key } => self.seal_ca(sealed_key),
            Command::CreateAccessKey { record } => self.create_access_key(record, at),
            Command::DeleteAccessKey { access_key_id } => self.delete_access_key(access_key_id),
            Command::RegisterInstance { .. }
            | Command::DeregisterInstance { .. }
            | Command::TagInstances { .. }
            | Command::TagResource { .. } => self.apply_tagging(command, at),
            Command::SetFeatureLevel { level } => self.set_feature_level(*level),
            Command::CreateApplication { name, application_id, compute_platform } => {
                self.create_application(name, application_id, compute_platform, at)
            }
            Command::DeleteApplication { name } => self.delete_application(name),
            Command::CreateDeploymentGroup { spec, deployment_group_id } => {
                self.create_deployment_group(spec, deployment_group_id, at)
            }
            Command::UpdateApplication { application_name, new_application_name } => {
                self.update_application(application_name, new_application_name)
            }
            Command::UpdateDeploymentGroup { current_deployment_group_name, spec } => {
                self.update_deployment_group(current_deployment_group_name, spec)
            }
            Command::AdvanceTriggerCursor(cursor) => self.advance_trigger_cursor(cursor),
            Command::SetDeploymentRetention(retention) => self.set_deployment_retention(*retention, at),
            Command::DeleteDeploymentGroup { application_name, deployment_group_name } => {
                self.delete_deployment_group(application_name, deployment_group_name)
            }
            Command::CreateDeploymentConfig {
                name,
                deployment_config_id,
                compute_platform,
                minimum_healthy_hosts,
                traffic_routing_config,
            } => self.create_deployment_config(
                name,
                deployment_config_id,
                compute_platform,
                minimum_healthy_hosts,
                traffic_routing_config.as_ref(),
                at,
            ),
            Command::DeleteDeploymentConfig { name } => self.delete_deployment_config(name),
            Command::RegisterRevision { record } => self.register_revision(record),
            Command::RecordRevisionHolder { revision_id, node } => self.record_revision_holder(revision_id, node),
            Command::RequestPrefetch { revision_id, targets } => self.request_prefetch(revision_id, targets),
            Command::CreateDeployment { spec, deployment_id } => self.create_compacting(spec, deployment_id, at),
            Command::StartTargets { deployment_id, targets } => self.start_targets(deployment_id, targets, at),
            Command::ReportTargets { reports } => Ok(self.report_targets(reports, at)),
            Command::FailTargets { deployment_id, targets } => self.fail_targets(deployment_id, targets, at),
            Command::FinishDeployment(finish) => self.finish_deployment(finish, at),
            Command::StopDeployment { deployment_id, rollback_id } => {
                self.stop_deployment(deployment_id, rollback_id.as_ref(), None, at)
            }
            Command::StopOnAlarm { deployment_id, rollback_id, message } => {
                self.stop_deployment(deployment_id, rollback_id.as_ref(), Some(message), at)
            }
            Command::CreateRoute { spec } => self.create_route(spec, at),
            Command::DeleteRoute { route_name } => self.delete_route(route_name),
            Command::SetRouteTargets { route_name, targets } => self.set_route_targets(route_name, targets, at),
            Command::SetTargetTraffic { deployment_id, target_id, allow } => {
                self.set_target_traffic(deployment_id, *target_id, *allow, at)
            }
            Command::AdvanceBlueGreen { deployment_id, step } => self.advance_blue_green(deployment_id, *step, at),
            Command::AdvanceShift { deployment_id, step } => self.advance_shift(deployment_id, step, at),
            Command::PutLifecycleEventHookExecutionStatus { deployment_id, execution_id, status } => {
                self.put_hook_status(deployment_id, execution_id, *status, at)
            }
            Command::ContinueDeployment { deployment_id: id, wait_type } => self.continue_deployment(id, *wait_type),
        }
    }

    /// Applies target reports, each on its own: a stale one is skipped, not fatal to the
    /// batch.
    fn report_targets(&mut self, reports: &[crate::command::TargetReport], at: UnixMillis) -> Outcome {
        for report in reports {
            // A stale report's refusal is the expected answer to a race; nothing to do.
            let _ = self.report_target(report, at);
        }
        Outcome::Done
    }

    /// Records `by` on what `command` (applied) created or changed, for audit. A revision
    /// registered again keeps its first registrar (`fresh_revision` is false then).
    fn record_actor(&mut self, command: &Command, by: &Actor, fresh_revision: bool) {
        let by = Some(by.clone());
        match command {
            Command::CreateApplication { name, .. } => {
                if let Some(application) = self.applications.get_mut(name) {
                    application.created_by = by;
                }
            }
            Command::CreateDeploymentGroup { spec, .. } => {
                if let Some(group) = self.deployment_group_mut(&spec.application_name, &spec.deployment_group_name) {
                    group.created_by = by;
                }
            }
            Command::CreateDeploymentConfig { name, .. } => {
                if let Some(config) = self.deployment_configs.get_mut(name) {
                    config.created_by = by;
                }
            }
            Command::RegisterRevision { record } if fresh_revision => {
                if let Some(revision) = self.revisions.get_mut(&record.revision_id) {
                    revision.created_by = by;
                }
            }
            Command::CreateDeployment { deployment_id, .. } => {
                if let Some(deployment) = self.deployments.get_mut(deployment_id) {
                    deployment.created_by = by;
                }
            }
            Command::StopDeployment { deployment_id, .. } => {
                if let Some(deployment) = self.deployments.get_mut(deployment_id) {
                    deployment.stopped_by = by;
                }
            }
            Command::AddJoinToken { record } => {
                let id = record.id();
                let tokens = self.cluster.as_mut().map(|cluster| cluster.join_tokens.iter_mut());
                if let Some(token) = tokens.into_iter().flatten().find(|token| token.id() == id) {
                    token.created_by = by;
                }
            }
            Command::CreateAccessKey { record } => {
                let keys = self.cluster.as_mut().map(|cluster| cluster.access_keys.iter_mut());
                if let Some(key) = keys.into_iter().flatten().find(|key| key.access_key_id == record.access_key_id) {
                    key.created_by = by;
                }
            }
            Command::CreateRoute { spec } => {
                if let Some(route) = self.routes.get_mut(&spec.route_name) {
                    route.created_by = by;
                }
            }
            Command::SetRouteTargets { route_name, .. } => {
                if let Some(route) = self.routes.get_mut(route_name) {
                    route.targets_set_by = by;
                }
            }
            // Deletions leave nothing to record on, and the rest are the cluster's own
            // work; the leader's audit log names the caller of every write.
            _ => {}
        }
    }

    fn create_application(
        &mut self,
        name: &str,
        application_id: &str,
        compute_platform: &ComputePlatform,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        validate_name("application name", name).map_err(ApplyError::invalid)?;
        if self.applications.contains_key(name) {
            return Err(ApplyError::exists(format!("application {name} already exists")));
        }
        self.applications.insert(
            name.to_string(),
            Application {
                application_name: name.to_string(),
                application_id: application_id.to_string(),
                compute_platform: *compute_platform,
                create_time: at,
                created_by: None,
                tags: Default::default(),
            },
        );
        Ok(Outcome::Done)
    }

    fn delete_application(&mut self, name: &str) -> Result<Outcome, ApplyError> {
        if !self.applications.contains_key(name) {
            return Err(ApplyError::not_found(format!("application {name} does not exist")));
        }
        if let Some(active) = self.active_deployments().find(|deployment| deployment.application_name == name) {
            return Err(ApplyError::conflict(format!(
                "application {name} has deployment {} in progress; stop it first",
                active.deployment_id
            )));
        }
        self.applications.remove(name);
        self.deployment_groups.remove(name);
        self.revisions.retain(|_, revision| revision.application_name != name);
        Ok(Outcome::Done)
    }

    fn delete_deployment_group(
        &mut self,
        application_name: &str,
        deployment_group_name: &str,
    ) -> Result<Outcome, ApplyError> {
        let group = self.deployment_group(application_name, deployment_group_name).ok_or_else(|| {
            ApplyError::not_found(format!(
                "deployment group {deployment_group_name} of application {application_name} does not exist"
            ))
        })?;
        if let Some(active) = &group.active_deployment_id {
            return Err(ApplyError::conflict(format!(
                "deployment group {deployment_group_name} has deployment {active} in progress; stop it first"
            )));
        }
        if let Some(groups) = self.deployment_groups.get_mut(application_name) {
            groups.remove(deployment_group_name);
        }
        Ok(Outcome::Done)
    }

    fn create_deployment_config(
        &mut self,
        name: &str,
        deployment_config_id: &str,
        compute_platform: &ComputePlatform,
        minimum_healthy_hosts: &MinimumHealthyHosts,
        traffic_routing_config: Option<&TrafficRoutingConfig>,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        validate_name("deployment configuration name", name).map_err(ApplyError::invalid)?;
        if name.starts_with(PREDEFINED_PREFIX) {
            return Err(ApplyError::invalid(format!(
                "deployment configuration names starting with {PREDEFINED_PREFIX} are reserved"
            )));
        }
        match minimum_healthy_hosts.kind {
            MinimumHealthyHostsType::FleetPercent if minimum_healthy_hosts.value > 99 => {
                return Err(ApplyError::invalid(format!(
                    "FLEET_PERCENT must be 0 to 99, got {}",
                    minimum_healthy_hosts.value
                )))
            }
            // OneAtATime's rule is the default minimum of a config with steps (issue 14).
            MinimumHealthyHostsType::MostConcurrency
                if traffic_routing_config.is_some() && minimum_healthy_hosts.value == 1 => {}
            MinimumHealthyHostsType::MostConcurrency => {
                return Err(ApplyError::invalid("minimum healthy hosts type must be HOST_COUNT or FLEET_PERCENT"))
            }
            _ => {}
        }
        if let Some(routing) = traffic_routing_config {
            routing.normalise().map_err(|error| ApplyError::invalid(error.to_string()))?;
        }
        if self.feature_level >= FeatureLevel::COMPUTE_PLATFORMS {
            check_platform_config(*compute_platform, minimum_healthy_hosts, traffic_routing_config)
                .map_err(|error| ApplyError::invalid(error.to_string()))?;
        }
        if self.deployment_config(name).is_some() {
            return Err(ApplyError::exists(format!("deployment configuration {name} already exists")));
        }
        self.deployment_configs.insert(
            name.to_string(),
            DeploymentConfig {
                deployment_config_name: name.to_string(),
                deployment_config_id: deployment_config_id.to_string(),
                compute_platform: *compute_platform,
                minimum_healthy_hosts: *minimum_healthy_hosts,
                traffic_routing_config: traffic_routing_config.copied(),
                create_time: at,
                created_by: None,
            },
        );
        Ok(Outcome::Done)
    }

    fn delete_deployment_config(&mut self, name: &str) -> Result<Outcome, ApplyError> {
        if name.starts_with(PREDEFINED_PREFIX) {
            return Err(ApplyError::invalid(format!("{name} is predefined and cannot be deleted")));
        }
        if !self.deployment_configs.contains_key(name) {
            return Err(ApplyError::not_found(format!("deployment configuration {name} does not exist")));
        }
        let in_use = self
            .deployment_groups
            .values()
            .flat_map(|groups| groups.values())
            .find(|group| group.deployment_config_name == name);
        if let Some(group) = in_use {
            return Err(ApplyError::conflict(format!(
                "deployment configuration {name} is used by deployment group {}",
                group.deployment_group_name
            )));
        }
        self.deployment_configs.remove(name);
        Ok(Outcome::Done)
    }

    fn record_revision_holder(&mut self, revision_id: &RevisionId, node: &NodeId) -> Result<Outcome, ApplyError> {
        if !self.revisions.contains_key(revision_id) {
            return Err(ApplyError::not_found(format!("revision {revision_id} does not exist")));
        }
        self.revision_holders.entry(*revision_id).or_default().insert(*node);
        if let Some(waiting) = self.prefetch_requests.get_mut(revision_id) {
            waiting.remove(node);
            if waiting.is_empty() {
                self.prefetch_requests.remove(revision_id);
            }
        }
        Ok(Outcome::Done)
    }

    fn request_prefetch(&mut self, revision_id: &RevisionId, targets: &[NodeId]) -> Result<Outcome, ApplyError> {
        if !self.revisions.contains_key(revision_id) {
            return Err(ApplyError::not_found(format!("revision {revision_id} does not exist")));
        }
        let holders = self.revision_holders.get(revision_id).cloned().unwrap_or_default();
        let waiting: Vec<NodeId> =
            targets.iter().copied().filter(|id| self.members.contains_key(id) && !holders.contains(id)).collect();
        if !waiting.is_empty() {
            self.prefetch_requests.entry(*revision_id).or_default().extend(waiting);
        }
        Ok(Outcome::Done)
    }

    fn register_revision(&mut self, record: &RevisionRecord) -> Result<Outcome, ApplyError> {
        if !self.applications.contains_key(&record.application_name) {
            return Err(ApplyError::not_found(format!("application {} does not exist", record.application_name)));
        }
        if let Some(content) = &record.app_spec {
            let platform = self.applications.get(&record.application_name).map(|app| app.compute_platform);
            if platform == Some(ComputePlatform::Server) {
                return Err(ApplyError::invalid(format!(
                    "application {} is for Server: its revisions are pushed bundles, not an AppSpec given inline",
                    record.application_name
                )));
            }
            if !record.manifest.entries.is_empty() || RevisionRecord::content_id(content) != record.revision_id {
                return Err(ApplyError::invalid(format!(
                    "revision {} is an AppSpec given inline: its manifest is empty and its id is the content's hash",
                    record.revision_id
                )));
            }
        } else if record.manifest.validate().is_err() || record.manifest.revision_id() != record.revision_id {
            record.manifest.validate().map_err(|error| ApplyError::invalid(error.to_string()))?;
            return Err(ApplyError::invalid(format!(
                "revision id {} is not the hash of its manifest",
                record.revision_id
            )));
        }
        if let Some(existing) = self.revisions.get(&record.revision_id) {
            if existing.application_name != record.application_name {
                return Err(ApplyError::conflict(format!(
                    "revision {} is already registered to application {}",
                    record.revision_id, existing.application_name
                )));
            }
        }
        let holders = self.revision_holders.entry(record.revision_id).or_default();
        holders.extend(record.seeds.iter().copied());
        let kept = self.revisions.entry(record.revision_id).or_insert_with(|| record.clone());
        if record.source.is_some() {
            kept.source.clone_from(&record.source);
        }
        Ok(Outcome::Done)
    }
}
