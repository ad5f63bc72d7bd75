//! Deployment groups and applications: create, update (a rename keeps the group's id,
//! its hosts' install records and its history) and the checks a group's spec passes.

use crate::blue_green::validate_blue_green;
use crate::command::{ApplyError, DeploymentGroupSpec, Outcome};
use crate::model::ids::UnixMillis;
use crate::model::resources::{
    validate_name, ComputePlatform, DeploymentGroup, TAG_SET_GROUPS_MAX, TAG_SET_GROUP_FILTERS_MAX,
};
use crate::triggers::check_triggers;
use crate::ClusterState;

impl ClusterState {
    pub(crate) fn create_deployment_group(
        &mut self,
        spec: &DeploymentGroupSpec,
        deployment_group_id: &str,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        self.check_group_spec(spec)?;
        if self.deployment_group(&spec.application_name, &spec.deployment_group_name).is_some() {
            return Err(ApplyError::exists(format!(
                "deployment group {} of application {} already exists",
                spec.deployment_group_name, spec.application_name
            )));
        }
        let group = DeploymentGroup {
            application_name: spec.application_name.clone(),
            deployment_group_name: spec.deployment_group_name.clone(),
            deployment_group_id: deployment_group_id.to_string(),
            deployment_config_name: spec.deployment_config_name.clone(),
            target_selector: spec.target_selector.clone(),
            auto_rollback_configuration: spec.auto_rollback_configuration.clone(),
            deployment_style: spec.deployment_type,
            deployment_option: spec.deployment_option,
            load_balancer_info: spec.load_balancer_info.clone(),
            blue_green_deployment_configuration: spec.blue_green_deployment_configuration,
            service_role_arn: spec.service_role_arn.clone(),
            ecs_services: spec.ecs_services.clone(),
            update_outdated_instances: spec.update_outdated_instances,
            target_revision: None,
            last_successful_deployment_id: None,
            active_deployment_id: None,
            instances: Default::default(),
            create_time: at,
            created_by: None,
            tags: Default::default(),
            triggers: self.new_triggers(&[], &spec.trigger_configurations),
            alarm_configuration: spec.alarm_configuration.clone(),
        };
        self.deployment_groups
            .entry(spec.application_name.clone())
            .or_default()
            .insert(spec.deployment_group_name.clone(), group);
        Ok(Outcome::Done)
    }

    /// What a group's spec must satisfy, whether it is created or updated.
    fn check_group_spec(&self, spec: &DeploymentGroupSpec) -> Result<(), ApplyError> {
        validate_name("deployment group name", &spec.deployment_group_name).map_err(ApplyError::invalid)?;
        if !self.applications.contains_key(&spec.application_name) {
            return Err(ApplyError::not_found(format!("application {} does not exist", spec.application_name)));
        }
        self.check_config_platform(&spec.application_name, &spec.deployment_config_name)?;
        let selector = &spec.target_selector;
        if !selector.tag_filters.is_empty() && !selector.tag_set.is_empty() {
            return Err(ApplyError::invalid("use either tag filters or a tag set, not both"));
        }
        if selector.tag_set.len() > TAG_SET_GROUPS_MAX
            || selector.tag_set.iter().any(|group| group.len() > TAG_SET_GROUP_FILTERS_MAX)
        {
            return Err(ApplyError::invalid(format!(
                "a tag set has at most {TAG_SET_GROUPS_MAX} groups of at most {TAG_SET_GROUP_FILTERS_MAX} filters"
            )));
        }
        if self.applications.get(&spec.application_name).map(|app| app.compute_platform) == Some(ComputePlatform::Ecs) {
            self.check_ecs_group(spec)?;
        } else if !spec.ecs_services.is_empty()
            || spec.load_balancer_info.as_ref().is_some_and(|info| !info.target_group_pair_info_list.is_empty())
        {
            return Err(ApplyError::invalid(format!(
                "ecsServices and targetGroupPairInfoList are for ECS applications; {} is not one",
                spec.application_name
            )));
        } else {
            self.validate_traffic_control(spec)?;
        }
        validate_blue_green(spec)?;
        check_triggers(&spec.trigger_configurations)?;
        if let Some(alarms) = &spec.alarm_configuration {
            crate::model::alarms::check_alarms(alarms).map_err(|error| ApplyError::invalid(error.0))?;
        }
        if let Some(role) = spec.service_role_arn.as_deref().filter(|role| !is_role_arn(role)) {
            return Err(ApplyError::invalid(format!(
                "serviceRoleArn {role:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
            )));
        }
        Ok(())
    }

    /// The spec that would create the group `application`/`name` as it is (tests).
    #[cfg(test)]
    pub(crate) fn deployment_group_spec_for_test(&self, application: &str, name: &str) -> DeploymentGroupSpec {
        let group = self.deployment_group(application, name).expect("the group exists");
        DeploymentGroupSpec {
            application_name: group.application_name.clone(),
            deployment_group_name: group.deployment_group_name.clone(),
            deployment_config_name: group.deployment_config_name.clone(),
            target_selector: group.target_selector.clone(),
            auto_rollback_configuration: group.auto_rollback_configuration.clone(),
            update_outdated_instances: group.update_outdated_instances,
            deployment_option: group.deployment_option,
            load_balancer_info: group.load_balancer_info.clone(),
            deployment_type: group.deployment_style,
            blue_green_deployment_configuration: group.blue_green_deployment_configuration,
            service_role_arn: group.service_role_arn.clone(),
            ecs_services: group.ecs_services.clone(),
            trigger_configurations: group.triggers.iter().map(|trigger| trigger.config.clone()).collect(),
            alarm_configuration: group.alarm_configuration.clone(),
        }
    }

    /// `UpdateApplication`: a new name for an application, its groups, revisions and
    /// deployments. Refused while one of its deployments runs.
    pub(crate) fn update_application(&mut self, current: &str, new: &str) -> Result<Outcome, ApplyError> {
        validate_name("application name", new).map_err(ApplyError::invalid)?;
        if !self.applications.contains_key(current) {
            return Err(ApplyError::not_found(format!("application {current} does not exist")));
        }
        if current == new {
            return Ok(Outcome::Done);
        }
        if self.applications.contains_key(new) {
            return Err(ApplyError::exists(format!("application {new} already exists")));
        }
        if let Some(active) = self.active_deployments().find(|deployment| deployment.application_name == current) {
            return Err(ApplyError::conflict(format!(
                "application {current} has deployment {} in progress; wait for it or stop it first",
                active.deployment_id
            )));
        }
        if let Some(mut application) = self.applications.remove(current) {
            application.application_name = new.to_string();
            self.applications.insert(new.to_string(), application);
        }
        if let Some(mut groups) = self.deployment_groups.remove(current) {
            groups.values_mut().for_each(|group| group.application_name = new.to_string());
            self.deployment_groups.insert(new.to_string(), groups);
        }
        let revisions = self.revisions.values_mut().filter(|revision| revision.application_name == current);
        revisions.for_each(|revision| revision.application_name = new.to_string());
        let deployments = self.deployments.values_mut().filter(|deployment| deployment.application_name == current);
        deployments.for_each(|deployment| deployment.application_name = new.to_string());
        Ok(Outcome::Done)
    }

    /// `UpdateDeploymentGroup`: `spec` replaces the group named `current`, renamed when
    /// the spec's name differs. The group keeps its id, its hosts' install records, its
    /// last successful revision and its creation; its deployments follow a rename.
    /// Refused while one of its deployments runs.
    pub(crate) fn update_deployment_group(
        &mut self,
        current: &str,
        spec: &DeploymentGroupSpec,
    ) -> Result<Outcome, ApplyError> {
        let application = spec.application_name.as_str();
        let group = self.deployment_group(application, current).ok_or_else(|| {
            ApplyError::not_found(format!("deployment group {current} of application {application} does not exist"))
        })?;
        if let Some(active) = &group.active_deployment_id {
            return Err(ApplyError::conflict(format!(
                "deployment group {current} has deployment {active} in progress; wait for it or stop it first"
            )));
        }
        let new = spec.deployment_group_name.as_str();
        if new != current && self.deployment_group(application, new).is_some() {
            return Err(ApplyError::exists(format!(
                "deployment group {new} of application {application} already exists"
            )));
        }
        self.check_group_spec(spec)?;
        let Some(mut group) = self.deployment_groups.get_mut(application).and_then(|groups| groups.remove(current))
        else {
            return Err(ApplyError::not_found(format!("deployment group {current} does not exist")));
        };
        group.deployment_group_name = new.to_string();
        group.deployment_config_name.clone_from(&spec.deployment_config_name);
        group.target_selector = spec.target_selector.clone();
        group.auto_rollback_configuration = spec.auto_rollback_configuration.clone();
        group.deployment_style = spec.deployment_type;
        group.deployment_option = spec.deployment_option;
        group.load_balancer_info.clone_from(&spec.load_balancer_info);
        group.blue_green_deployment_configuration = spec.blue_green_deployment_configuration;
        group.service_role_arn.clone_from(&spec.service_role_arn);
        group.ecs_services.clone_from(&spec.ecs_services);
        group.update_outdated_instances = spec.update_outdated_instances;
        group.triggers = self.new_triggers(&group.triggers, &spec.trigger_configurations);
        group.alarm_configuration.clone_from(&spec.alarm_configuration);
        self.deployment_groups.entry(application.to_string()).or_default().insert(new.to_string(), group);
        if new != current {
            self.deployments
                .values_mut()
                .filter(|deployment| {
                    deployment.application_name == application && deployment.deployment_group_name == current
                })
                .for_each(|deployment| deployment.deployment_group_name = new.to_string());
        }
        Ok(Outcome::Done)
    }
}

/// True for `arn:<partition>:iam::<account>:role/<path and name>`.
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if !partition.is_empty() && !account.is_empty() && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()))
}

#[cfg(test)]
mod tests {
    use crate::command::{Command, Outcome};
    use crate::model::ids::DeploymentId;
    use crate::tests::{at, setup};

    #[test]
    fn renaming_an_application_moves_its_groups_and_revisions() {
        let (mut state, first, _) = setup();
        let rename =
            |new: &str| Command::UpdateApplication { application_name: "app".into(), new_application_name: new.into() };
        let outcomes = state.apply(&at(5, vec![rename("bad name!"), rename("shop")])).outcomes;
        assert!(matches!(&outcomes[0], Outcome::Rejected(_)), "{outcomes:?}");
        assert_eq!(outcomes[1], Outcome::Done);
        assert!(!state.applications.contains_key("app") && state.applications["shop"].application_name == "shop");
        let group = state.deployment_group("shop", "web").expect("the group moved with its application");
        assert_eq!((group.application_name.as_str(), group.deployment_group_id.as_str()), ("shop", "g"));
        assert_eq!(state.revisions[&first.revision_id].application_name, "shop");
        let again = state.apply(&at(6, vec![rename("x")])).outcomes;
        assert!(matches!(&again[0], Outcome::Rejected(error) if error.message.contains("does not exist")));
    }

    #[test]
    fn a_group_update_keeps_its_id_and_waits_for_its_deployment() {
        let (mut state, _, _) = setup();
        let mut spec = state.deployment_group_spec_for_test("app", "web");
        spec.deployment_group_name = "prod".into();
        spec.deployment_config_name = "CodeDeployDefault.AllAtOnce".into();
        let update = |spec| Command::UpdateDeploymentGroup { current_deployment_group_name: "web".into(), spec };
        let busy = DeploymentId("d-BUSY00000".into());
        if let Some(group) = state.deployment_groups.get_mut("app").and_then(|groups| groups.get_mut("web")) {
            group.active_deployment_id = Some(busy.clone());
        }
        let outcomes = state.apply(&at(5, vec![update(spec.clone())])).outcomes;
        assert!(
            matches!(&outcomes[0], Outcome::Rejected(error) if error.message.contains("in progress")),
            "{outcomes:?}"
        );
        if let Some(group) = state.deployment_groups.get_mut("app").and_then(|groups| groups.get_mut("web")) {
            group.active_deployment_id = None;
        }
        let outcomes = state.apply(&at(6, vec![update(spec)])).outcomes;
        assert_eq!(outcomes[0], Outcome::Done);
        assert!(state.deployment_group("app", "web").is_none());
        let group = state.deployment_group("app", "prod").expect("renamed");
        assert_eq!(group.deployment_group_id, "g");
        assert_eq!(group.deployment_config_name, "CodeDeployDefault.AllAtOnce");
    }
}
