//! `apply` for traffic routes: create, delete, set targets. Every check is here, so a
//! route in the state is always valid whoever proposed it.

use std::collections::BTreeSet;

use crate::command::{ApplyError, DeploymentGroupSpec, Outcome};
use crate::model::deployment::{LifecycleEventStatus, Target, TargetStatus};
use crate::model::ecs_group::is_target_group_arn;
use crate::model::ids::{DeploymentId, UnixMillis};
use crate::model::resources::{validate_name, DeploymentOption, LoadBalancerInfo, TARGET_GROUPS_MAX};
use crate::model::routes::{
    Route, RouteSpec, RouteTarget, TrafficState, DRAIN_SECONDS_MAX, ROUTER_TAGS_MAX, ROUTES_MAX,
    ROUTE_COMMAND_BYTES_MAX, ROUTE_TARGETS_MAX, ROUTE_WEIGHT_DEFAULT, ROUTE_WEIGHT_MAX,
};
use crate::{ClusterState, NodeId};

/// Most characters of a router tag key and value (as CodeDeploy's tag filters).
const ROUTER_TAG_KEY_CHARS_MAX: usize = 128;
const ROUTER_TAG_VALUE_CHARS_MAX: usize = 256;

impl DeploymentGroupSpec {
    /// True when the spec uses what feature level 9 added (traffic control).
    pub(crate) fn uses_traffic_control(&self) -> bool {
        self.deployment_option != DeploymentOption::default() || self.load_balancer_info.is_some()
    }
}

impl ClusterState {
    pub(crate) fn create_route(&mut self, spec: &RouteSpec, at: UnixMillis) -> Result<Outcome, ApplyError> {
        validate_spec(spec)?;
        if self.routes.contains_key(&spec.route_name) {
            return Err(ApplyError::exists(format!("route {} already exists", spec.route_name)));
        }
        if let Some(other) = self.routes.values().find(|route| route.spec.listen_port == spec.listen_port) {
            return Err(ApplyError::conflict(format!(
                "listen port {} is already used by route {}; choose another port",
                spec.listen_port, other.spec.route_name
            )));
        }
        if self.routes.len() >= ROUTES_MAX {
            return Err(ApplyError::conflict(format!("the cluster has {ROUTES_MAX} routes, the most it may have")));
        }
        let route = Route {
            spec: spec.clone(),
            targets: Vec::new(),
            create_time: at,
            update_time: at,
            created_by: None,
            targets_set_by: None,
            version: 1,
        };
        self.routes.insert(spec.route_name.clone(), route);
        Ok(Outcome::Done)
    }

    pub(crate) fn delete_route(&mut self, route_name: &str) -> Result<Outcome, ApplyError> {
        if !self.routes.contains_key(route_name) {
            return Err(ApplyError::not_found(format!("route {route_name} does not exist")));
        }
        if let Some(user) = self.route_user(route_name) {
            return Err(ApplyError::conflict(format!("route {route_name} is used by {user}; change that first")));
        }
        self.routes.remove(route_name);
        Ok(Outcome::Done)
    }

    /// What keeps `route_name` from being deleted, in words: a deployment group whose
    /// `loadBalancerInfo` names it, or a running deployment that moves traffic on it.
    fn route_user(&self, route_name: &str) -> Option<String> {
        debug_assert!(self.routes.contains_key(route_name));
        let names = |info: &Option<LoadBalancerInfo>| {
            info.as_ref().is_some_and(|info| info.target_group_info_list.iter().any(|group| group.name == route_name))
        };
        let group = self
            .deployment_groups
            .values()
            .flat_map(|groups| groups.values())
            .find(|group| names(&group.load_balancer_info));
        if let Some(group) = group {
            return Some(format!(
                "deployment group {} of application {} (its loadBalancerInfo)",
                group.deployment_group_name, group.application_name
            ));
        }
        self.deployments
            .values()
            .find(|deployment| {
                !deployment.status.is_terminal() && deployment.traffic_routes.iter().any(|name| name == route_name)
            })
            .map(|deployment| format!("deployment {}, which is running", deployment.deployment_id))
    }

    /// The first of `routes` that a running deployment moves traffic on, with that
    /// deployment.
    pub(crate) fn route_in_use(&self, routes: &[String]) -> Option<(String, DeploymentId)> {
        self.active_deployments().find_map(|deployment| {
            let route = deployment.traffic_routes.iter().find(|name| routes.contains(name))?;
            Some((route.clone(), deployment.deployment_id.clone()))
        })
    }

    /// A group's deployment style and load-balancer info: traffic control needs at least
    /// one target group, each naming an existing route, none twice; blue/green is not
    /// built yet.
    pub(crate) fn validate_traffic_control(&self, spec: &DeploymentGroupSpec) -> Result<(), ApplyError> {
        let Some(info) = &spec.load_balancer_info else {
            if spec.deployment_option == DeploymentOption::WithTrafficControl {
                return Err(ApplyError::invalid(
                    "deploymentOption WITH_TRAFFIC_CONTROL needs loadBalancerInfo naming at least one route \
                     (--load-balancer-info '{\"targetGroupInfoList\":[{\"name\":\"ROUTE\"}]}')",
                ));
            }
            return Ok(());
        };
        let list = &info.target_group_info_list;
        if list.len() > TARGET_GROUPS_MAX {
            return Err(ApplyError::invalid(format!(
                "loadBalancerInfo names {} target groups; at most {TARGET_GROUPS_MAX}",
                list.len()
            )));
        }
        let elbv2 = info.elbv2_target_groups();
        if !elbv2.is_empty() && self.feature_level < crate::FeatureLevel::ECS_DEPLOYMENTS {
            return Err(ApplyError::invalid(format!(
                "ELBv2 target groups ({}) need feature level {}",
                elbv2.join(", "),
                crate::FeatureLevel::ECS_DEPLOYMENTS.0
            )));
        }
        if !elbv2.is_empty() && spec.deployment_type == crate::model::resources::DeploymentType::BlueGreen {
            return Err(ApplyError::invalid(
                "a BLUE_GREEN group moves traffic on fleetmesh routes; ELBv2 target groups are for IN_PLACE groups",
            ));
        }
        if list.is_empty() && spec.deployment_option == DeploymentOption::WithTrafficControl {
            return Err(ApplyError::invalid(
                "loadBalancerInfo.targetGroupInfoList is empty; WITH_TRAFFIC_CONTROL needs at least one route",
            ));
        }
        let mut seen = BTreeSet::new();
        for group in list {
            if !is_target_group_arn(&group.name) && !self.routes.contains_key(&group.name) {
                return Err(ApplyError::not_found(format!(
                    "loadBalancerInfo names route {:?}, which does not exist; create it with \
                     `fleetmesh traffic create-route` (`fleetmesh traffic list-routes` lists them), or name an \
                     ELBv2 target group by its ARN",
                    group.name
                )));
            }
            if !seen.insert(group.name.as_str()) {
                return Err(ApplyError::invalid(format!("loadBalancerInfo names route {:?} twice", group.name)));
            }
        }
        Ok(())
    }

    /// Blocks or allows traffic to one target of a running deployment on its routes
    /// ([`crate::Command::SetTargetTraffic`]).
    pub(crate) fn set_target_traffic(
        &mut self,
        deployment_id: &DeploymentId,
        target_id: NodeId,
        allow: bool,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        let deployment = self
            .deployments
            .get(deployment_id)
            .ok_or_else(|| ApplyError::not_found(format!("deployment {deployment_id} does not exist")))?;
        if deployment.status.is_terminal() {
            return Err(ApplyError::conflict(format!("deployment {deployment_id} is {:?}", deployment.status)));
        }
        if deployment.traffic_routes.is_empty() && deployment.elbv2_target_groups.is_empty() {
            return Err(ApplyError::invalid(format!("deployment {deployment_id} does not control traffic")));
        }
        let target = deployment
            .targets
            .get(&target_id)
            .ok_or_else(|| ApplyError::not_found(format!("node {target_id} is not a target of {deployment_id}")))?;
        if target.status != TargetStatus::InProgress {
            return Err(ApplyError::conflict(format!("target {target_id} of {deployment_id} is {:?}", target.status)));
        }
        if allow && !passed_validate_service(target) {
            return Err(ApplyError::conflict(format!(
                "target {target_id} of {deployment_id} has not passed ValidateService; it gets no traffic"
            )));
        }
        let names = deployment.traffic_routes.clone();
        if let Some(missing) = names.iter().find(|name| !self.routes.contains_key(name.as_str())) {
            return Err(ApplyError::not_found(format!("route {missing} does not exist")));
        }
        for name in &names {
            let Some(route) = self.routes.get_mut(name) else { continue };
            // Every traffic event counts, even one that changes no target (a retry, a
            // block of a host already off the route): its `--command` routers run the
            // program again, so the event learns how a run on the current state goes
            // rather than inheriting an older run's failure.
            route.version += 1;
            let existing = route.targets.iter_mut().find(|entry| entry.target_id == target_id);
            match (existing, allow) {
                (Some(entry), true) => {
                    entry.state = TrafficState::Serving;
                    if entry.weight == 0 {
                        entry.weight = ROUTE_WEIGHT_DEFAULT;
                    }
                }
                (Some(entry), false) => entry.state = TrafficState::Draining,
                (None, true) => {
                    if route.targets.len() >= ROUTE_TARGETS_MAX {
                        return Err(ApplyError::invalid(format!(
                            "route {name} has {ROUTE_TARGETS_MAX} targets, its most"
                        )));
                    }
                    route.targets.push(RouteTarget {
                        target_id,
                        weight: ROUTE_WEIGHT_DEFAULT,
                        state: TrafficState::Serving,
                    });
                }
                // Not on the route: nothing to take off.
                (None, false) => continue,
            }
            route.update_time = at;
        }
        Ok(Outcome::Done)
    }

    pub(crate) fn set_route_targets(
        &mut self,
        route_name: &str,
        targets: &[RouteTarget],
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        if !self.routes.contains_key(route_name) {
            return Err(ApplyError::not_found(format!("route {route_name} does not exist")));
        }
        self.validate_targets(targets)?;
        if let Some(route) = self.routes.get_mut(route_name) {
            route.targets = targets.to_vec();
            route.update_time = at;
            route.version += 1;
        }
        Ok(Outcome::Done)
    }

    /// Targets are members, each once, with weights within bounds.
    fn validate_targets(&self, targets: &[RouteTarget]) -> Result<(), ApplyError> {
        if targets.len() > ROUTE_TARGETS_MAX {
            return Err(ApplyError::invalid(format!(
                "{} targets; a route has at most {ROUTE_TARGETS_MAX}",
                targets.len()
            )));
        }
        let mut seen = BTreeSet::new();
        for target in targets {
            if !self.members.contains_key(&target.target_id) {
                return Err(ApplyError::invalid(format!(
                    "target {} is not a member of the cluster; `fleetmesh cluster status` lists them",
                    target.target_id
                )));
            }
            if !seen.insert(target.target_id) {
                return Err(ApplyError::invalid(format!("target {} is listed twice", target.target_id)));
            }
            if target.weight > ROUTE_WEIGHT_MAX {
                return Err(ApplyError::invalid(format!(
                    "target {} has weight {}; weights are 0 to {ROUTE_WEIGHT_MAX}",
                    target.target_id, target.weight
                )));
            }
        }
        Ok(())
    }
}

/// True when the target's `ValidateService` event succeeded (the agent reported it).
fn passed_validate_service(target: &Target) -> bool {
    target
        .lifecycle_events
        .iter()
        .any(|event| event.lifecycle_event_name == "ValidateService" && event.status == LifecycleEventStatus::Succeeded)
}

/// The spec's own bounds: name, ports, selector, drain time, command.
fn validate_spec(spec: &RouteSpec) -> Result<(), ApplyError> {
    validate_name("route name", &spec.route_name).map_err(ApplyError::invalid)?;
    for (field, port) in [("listen port", spec.listen_port), ("target port", spec.target_port)] {
        if port == 0 {
            return Err(ApplyError::invalid(format!("the {field} must be 1 to 65535, not 0")));
        }
    }
    if spec.router_tags.is_empty() {
        return Err(ApplyError::invalid("a route needs at least one router tag KEY=VALUE (--router-tag)"));
    }
    if spec.router_tags.len() > ROUTER_TAGS_MAX {
        return Err(ApplyError::invalid(format!(
            "{} router tags; a route has at most {ROUTER_TAGS_MAX}",
            spec.router_tags.len()
        )));
    }
    for (key, value) in &spec.router_tags {
        if key.is_empty() || key.chars().count() > ROUTER_TAG_KEY_CHARS_MAX {
            return Err(ApplyError::invalid(format!(
                "router tag key {key:?} must be 1 to {ROUTER_TAG_KEY_CHARS_MAX} characters"
            )));
        }
        if value.chars().count() > ROUTER_TAG_VALUE_CHARS_MAX {
            return Err(ApplyError::invalid(format!(
                "router tag {key}'s value is longer than {ROUTER_TAG_VALUE_CHARS_MAX} characters"
            )));
        }
    }
    if spec.drain_seconds > DRAIN_SECONDS_MAX {
        return Err(ApplyError::invalid(format!(
            "drain time {} s is more than the maximum, {DRAIN_SECONDS_MAX} s",
            spec.drain_seconds
        )));
    }
    if let Some(command) = &spec.command {
        if !command.starts_with('/') || command.len() > ROUTE_COMMAND_BYTES_MAX || command.contains('\0') {
            return Err(ApplyError::invalid(format!(
                "the route command must be an absolute path of at most {ROUTE_COMMAND_BYTES_MAX} bytes, not {command:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
