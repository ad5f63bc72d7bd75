//! On-premises instances: registration, tags, and the node that holds each
//! (see [`crate::model::instances`]).

use std::collections::BTreeMap;

use crate::command::{ApplyError, Command, Outcome};
use crate::model::ids::UnixMillis;
use crate::model::instances::{
    check_tag, is_iam_arn, OnPremisesInstance, Tag, TaggedResource, IAM_ARN_CHARS_MAX, INSTANCES_MAX,
    INSTANCE_TAGS_MAX, RESOURCE_TAGS_MAX, TAGGED_INSTANCES_MAX, TAGS_PER_CALL_MAX,
};
use crate::model::members::Member;
use crate::model::resources::validate_name;
use crate::{ClusterState, NodeId};

impl ClusterState {
    /// Applies an instance or tag command; other commands are not this module's.
    pub(crate) fn apply_tagging(&mut self, command: &Command, at: UnixMillis) -> Result<Outcome, ApplyError> {
        match command {
            Command::RegisterInstance { instance_name, iam_session_arn, iam_user_arn } => {
                self.register_instance(instance_name, iam_session_arn.as_deref(), iam_user_arn.as_deref(), at)
            }
            Command::DeregisterInstance { instance_name } => self.deregister_instance(instance_name, at),
            Command::TagInstances { instance_names, add, remove } => self.tag_instances(instance_names, add, remove),
            Command::TagResource { resource, add, remove } => self.tag_resource(resource, add, remove),
            _ => Err(ApplyError::invalid("not an instance or tag command")),
        }
    }

    /// False for a member that holds a deregistered instance: no deployment selects it.
    pub fn is_deployable(&self, member: &Member) -> bool {
        member
            .instance_name
            .as_ref()
            .and_then(|name| self.instances.get(name))
            .is_none_or(OnPremisesInstance::is_registered)
    }

    /// The tags of instance `name`: its node's while a node holds it.
    pub fn instance_tags(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        let instance = self.instances.get(name)?;
        match instance.node.and_then(|node| self.members.get(&node)) {
            Some(member) => Some(&member.tags),
            None => Some(&instance.tags),
        }
    }

    pub(crate) fn register_instance(
        &mut self,
        name: &str,
        iam_session_arn: Option<&str>,
        iam_user_arn: Option<&str>,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        validate_name("instance name", name).map_err(ApplyError::invalid)?;
        if iam_session_arn.is_some() && iam_user_arn.is_some() {
            return Err(ApplyError::invalid("give an IAM session ARN or an IAM user ARN, not both"));
        }
        for (what, arn) in [("IAM session ARN", iam_session_arn), ("IAM user ARN", iam_user_arn)] {
            let Some(arn) = arn else { continue };
            if !is_iam_arn(arn) {
                return Err(ApplyError::invalid(format!(
                    "the {what} is not an ARN (arn:partition:iam::account:…, at most {IAM_ARN_CHARS_MAX} characters)"
                )));
            }
            let holder = self.instances.values().find(|instance| {
                instance.is_registered()
                    && instance.instance_name != name
                    && (instance.iam_session_arn.as_deref() == Some(arn)
                        || instance.iam_user_arn.as_deref() == Some(arn))
            });
            if let Some(holder) = holder {
                return Err(ApplyError::conflict(format!(
                    "the {what} is registered already, to on-premises instance {}",
                    holder.instance_name
                )));
            }
        }
        let session = iam_session_arn.map(str::to_string);
        let user = iam_user_arn.map(str::to_string);
        match self.instances.get_mut(name) {
            Some(instance) if instance.is_registered() => {
                Err(ApplyError::exists(format!("on-premises instance {name} is registered already")))
            }
            Some(instance) => {
                instance.register_time = at;
                instance.deregister_time = None;
                instance.iam_session_arn = session;
                instance.iam_user_arn = user;
                Ok(Outcome::Done)
            }
            None => {
                if self.instances.len() >= INSTANCES_MAX {
                    return Err(ApplyError::conflict(format!(
                        "the cluster registers {INSTANCES_MAX} on-premises instances already"
                    )));
                }
                self.instances.insert(name.to_string(), new_instance(name, session, user, at));
                Ok(Outcome::Done)
            }
        }
    }

    pub(crate) fn deregister_instance(&mut self, name: &str, at: UnixMillis) -> Result<Outcome, ApplyError> {
        match self.instances.get_mut(name) {
            Some(instance) if instance.is_registered() => {
                instance.deregister_time = Some(at);
                Ok(Outcome::Done)
            }
            _ => Err(not_registered(name)),
        }
    }

    pub(crate) fn tag_instances(
        &mut self,
        names: &[String],
        add: &[Tag],
        remove: &[Tag],
    ) -> Result<Outcome, ApplyError> {
        if names.is_empty() {
            return Err(ApplyError::invalid("instanceNames is missing: name at least one instance"));
        }
        if names.len() > TAGGED_INSTANCES_MAX {
            return Err(ApplyError::invalid(format!(
                "{} instances named; one call tags at most {TAGGED_INSTANCES_MAX}",
                names.len()
            )));
        }
        if add.is_empty() && remove.is_empty() {
            return Err(ApplyError::invalid("tags is missing: give at least one tag"));
        }
        if add.len() > TAGS_PER_CALL_MAX || remove.len() > TAGS_PER_CALL_MAX {
            return Err(ApplyError::invalid(format!("one call adds or removes at most {TAGS_PER_CALL_MAX} tags")));
        }
        add.iter().chain(remove).try_for_each(check_tag).map_err(ApplyError::invalid)?;
        // Every instance is checked before any changes: all or nothing.
        let mut changed = Vec::with_capacity(names.len());
        for name in names {
            let tags = match self.instances.get(name) {
                Some(instance) if instance.is_registered() => self.instance_tags(name).cloned().unwrap_or_default(),
                _ => return Err(not_registered(name)),
            };
            let mut tags = tags;
            tags.retain(|key, value| {
                !remove.iter().any(|tag| tag.key == *key && (tag.value.is_empty() || tag.value == *value))
            });
            tags.extend(add.iter().map(|tag| (tag.key.clone(), tag.value.clone())));
            if tags.len() > INSTANCE_TAGS_MAX {
                return Err(ApplyError::invalid(format!(
                    "on-premises instance {name} would carry {} tags; an instance carries at most {INSTANCE_TAGS_MAX}",
                    tags.len()
                )));
            }
            changed.push((name.clone(), tags));
        }
        for (name, tags) in changed {
            let node = self.instances.get(&name).and_then(|instance| instance.node);
            match node.and_then(|node| self.members.get_mut(&node)) {
                Some(member) => member.tags = tags,
                None => {
                    if let Some(instance) = self.instances.get_mut(&name) {
                        instance.tags = tags;
                    }
                }
            }
        }
        Ok(Outcome::Done)
    }

    pub(crate) fn tag_resource(
        &mut self,
        resource: &TaggedResource,
        add: &[Tag],
        remove: &[String],
    ) -> Result<Outcome, ApplyError> {
        if add.is_empty() && remove.is_empty() {
            return Err(ApplyError::invalid("tags is missing: give at least one tag"));
        }
        add.iter().try_for_each(check_tag).map_err(ApplyError::invalid)?;
        let tags = match resource {
            TaggedResource::Application { application_name } => self
                .applications
                .get_mut(application_name)
                .map(|application| &mut application.tags)
                .ok_or_else(|| ApplyError::not_found(format!("application {application_name} does not exist")))?,
            TaggedResource::DeploymentGroup { application_name, deployment_group_name } => {
                if !self.applications.contains_key(application_name) {
                    return Err(ApplyError::not_found(format!("application {application_name} does not exist")));
                }
                self.deployment_group_mut(application_name, deployment_group_name)
                    .map(|group| &mut group.tags)
                    .ok_or_else(|| {
                        ApplyError::not_found(format!(
                            "deployment group {deployment_group_name} of application {application_name} does not exist"
                        ))
                    })?
            }
        };
        let mut changed = tags.clone();
        changed.retain(|key, _| !remove.contains(key));
        changed.extend(add.iter().map(|tag| (tag.key.clone(), tag.value.clone())));
        if changed.len() > RESOURCE_TAGS_MAX {
            return Err(ApplyError::invalid(format!(
                "{} would carry {} tags; a resource carries at most {RESOURCE_TAGS_MAX}",
                resource.arn_resource(),
                changed.len()
            )));
        }
        *tags = changed;
        Ok(Outcome::Done)
    }

    /// Checks that member `id` may take instance `name` (a valid name, held by no other
    /// member), before anything changes.
    pub(crate) fn check_take(&self, id: NodeId, name: &str) -> Result<(), ApplyError> {
        validate_name("instance name", name).map_err(ApplyError::invalid)?;
        let holder = self.instances.get(name).and_then(|instance| instance.node);
        match holder {
            Some(holder) if holder != id && self.members.contains_key(&holder) => Err(ApplyError::conflict(format!(
                "on-premises instance {name} is held by node {holder}; start this node with another \
                 --instance-name, or remove node {holder} first"
            ))),
            _ => {
                if !self.instances.contains_key(name) && self.instances.len() >= INSTANCES_MAX {
                    return Err(ApplyError::conflict(format!(
                        "the cluster registers {INSTANCES_MAX} on-premises instances already"
                    )));
                }
                Ok(())
            }
        }
    }

    /// Member `id` takes instance `name` (checked by [`Self::check_take`]): registered
    /// now when it was not, its tags joined to the member's (the instance's value wins on
    /// a key both have). A member that held another instance hands it back first.
    pub(crate) fn take_instance(&mut self, id: NodeId, name: &str, at: UnixMillis) {
        if self.members.get(&id).and_then(|member| member.instance_name.as_deref()) == Some(name) {
            return;
        }
        self.release_instance(id);
        let instance = self.instances.entry(name.to_string()).or_insert_with(|| new_instance(name, None, None, at));
        instance.node = Some(id);
        let tags = std::mem::take(&mut instance.tags);
        if let Some(member) = self.members.get_mut(&id) {
            member.tags.extend(tags);
            member.instance_name = Some(name.to_string());
        }
    }

    /// Member `id` lets go of the instance it holds, which keeps the member's tags.
    pub(crate) fn release_instance(&mut self, id: NodeId) {
        let Some(member) = self.members.get_mut(&id) else { return };
        let Some(name) = member.instance_name.take() else { return };
        let tags = member.tags.clone();
        if let Some(instance) = self.instances.get_mut(&name) {
            if instance.node == Some(id) {
                instance.node = None;
                instance.tags = tags;
            }
        }
    }
}

fn new_instance(
    name: &str,
    iam_session_arn: Option<String>,
    iam_user_arn: Option<String>,
    at: UnixMillis,
) -> OnPremisesInstance {
    OnPremisesInstance {
        instance_name: name.to_string(),
        iam_session_arn,
        iam_user_arn,
        register_time: at,
        deregister_time: None,
        tags: BTreeMap::new(),
        node: None,
    }
}

fn not_registered(name: &str) -> ApplyError {
    ApplyError::not_found(format!("on-premises instance {name} is not registered"))
}

#[cfg(test)]
mod tests;
