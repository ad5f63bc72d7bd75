//! `apply` for traffic routes: create, delete, set targets. Every check is here, so a
//! route in the state is always valid whoever proposed it.

use std::collections::BTreeSet;

use crate::command::{ApplyError, Outcome};
use crate::model::ids::UnixMillis;
use crate::model::resources::validate_name;
use crate::model::routes::{
    Route, RouteSpec, RouteTarget, DRAIN_SECONDS_MAX, ROUTER_TAGS_MAX, ROUTES_MAX, ROUTE_COMMAND_BYTES_MAX,
    ROUTE_TARGETS_MAX, ROUTE_WEIGHT_MAX,
};
use crate::ClusterState;

/// Most characters of a router tag key and value (as CodeDeploy's tag filters).
const ROUTER_TAG_KEY_CHARS_MAX: usize = 128;
const ROUTER_TAG_VALUE_CHARS_MAX: usize = 256;

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

    /// What keeps `route_name` from being deleted, in words. Nothing yet: once
    /// deployment groups name routes (`loadBalancerInfo`, issue 14 item 2), a group
    /// that names it answers here.
    fn route_user(&self, route_name: &str) -> Option<String> {
        debug_assert!(self.routes.contains_key(route_name));
        None
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
