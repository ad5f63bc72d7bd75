//! `BlockTraffic` and `AllowTraffic` on ELBv2 target groups (issue 15, level 14): a
//! Server group whose `loadBalancerInfo` names an ELBv2 target group rather than a
//! fleetmesh route. After the traffic event is committed, the leader deregisters the
//! host from each such group (and answers "draining" until AWS no longer drains it)
//! or registers it again. The host's target id is its node tag: `aws:instance-id` for
//! `instance` target groups, `aws:ip` for `ip` ones.
//!
//! Both calls are idempotent in AWS, so an agent's retry (after a leader change, or
//! while the host drains) repeats them harmlessly.

use fleetmesh_aws::{AwsError, Target, TargetGroup};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_transport::NodeId;
use tracing::info;

use super::shift::{deployment_error, with_retries};
use super::Leader;
use crate::runtime::protocol::Response;

/// The node tag that holds a host's id in a target group of `target_type`.
fn target_tag(target_type: &str) -> Option<&'static str> {
    match target_type {
        "instance" => Some("aws:instance-id"),
        "ip" => Some("aws:ip"),
        _ => None,
    }
}

/// Why a traffic event's ELBv2 change did not complete: the answer the agent gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Elbv2Answer {
    /// Refused for good ([`Response::TrafficRefused`]).
    Refused(String),
    /// Deregistered, still draining: ask again ([`Response::TrafficDraining`]).
    Draining(String),
}

impl From<Elbv2Answer> for Response {
    fn from(answer: Elbv2Answer) -> Self {
        match answer {
            Elbv2Answer::Refused(message) => Self::TrafficRefused(message),
            Elbv2Answer::Draining(message) => Self::TrafficDraining(message),
        }
    }
}

impl Leader {
    /// Takes `peer` off (`allow` false) or puts it back on the ELBv2 target groups of
    /// `deployment_id`. `Err` is the answer to give instead of the usual one: refused
    /// (no tag, AWS said no) or still draining.
    pub(super) async fn move_elbv2(
        &self,
        peer: NodeId,
        deployment_id: &DeploymentId,
        allow: bool,
    ) -> Result<(), Elbv2Answer> {
        let (groups, role, tags) = self.node.state().read(|state| {
            let deployment = state.deployments.get(deployment_id);
            let groups = deployment.map(|deployment| deployment.elbv2_target_groups.clone()).unwrap_or_default();
            let role = deployment
                .and_then(|deployment| {
                    state.deployment_group(&deployment.application_name, &deployment.deployment_group_name)
                })
                .and_then(|group| group.service_role_arn.clone());
            let tags = state.members.get(&peer).map(|member| member.tags.clone()).unwrap_or_default();
            (groups, role, tags)
        });
        for name in groups {
            let refused = |error: &AwsError| {
                let information = deployment_error(error);
                Elbv2Answer::Refused(format!(
                    "ELBv2 target group {name}: {:?}: {}",
                    information.code, information.message
                ))
            };
            let group = with_retries(|| self.aws.ecs.target_group(role.clone(), name.clone()))
                .await
                .map_err(|error| refused(&error))?;
            let target = host_target(&group, &tags, peer)?;
            let state = || self.aws.ecs.target_state(role.clone(), group.arn.clone(), target.clone());
            let register =
                |register| self.aws.ecs.set_registered(role.clone(), group.arn.clone(), target.clone(), register);
            if allow {
                with_retries(|| register(true)).await.map_err(|error| refused(&error))?;
                info!(node = %peer, target = %target.id, group = %name, "registered with the ELBv2 target group");
                continue;
            }
            // Read first: AWS deregisters idempotently, but a host that is not listed
            // (never registered, or a retry) has nothing to leave.
            let mut now = with_retries(state).await.map_err(|error| refused(&error))?;
            if !matches!(now.as_deref(), None | Some("unused" | "draining")) {
                with_retries(|| register(false)).await.map_err(|error| refused(&error))?;
                info!(node = %peer, target = %target.id, group = %name, "deregistered from the ELBv2 target group");
                now = with_retries(state).await.map_err(|error| refused(&error))?;
            }
            if now.as_deref() == Some("draining") {
                return Err(Elbv2Answer::Draining(format!(
                    "ELBv2 target group {name} is draining {} (its deregistration delay)",
                    target.id
                )));
            }
        }
        Ok(())
    }
}

/// `peer`'s target in `group`, from its tags; the refusal to answer when it has none.
fn host_target(
    group: &TargetGroup,
    tags: &std::collections::BTreeMap<String, String>,
    peer: NodeId,
) -> Result<Target, Elbv2Answer> {
    let Some(tag) = target_tag(&group.target_type) else {
        return Err(Elbv2Answer::Refused(format!(
            "target group {} has targets of type {}; hosts go in instance or ip target groups",
            group.arn, group.target_type
        )));
    };
    let id = tags.get(tag).filter(|id| !id.is_empty()).ok_or_else(|| {
        Elbv2Answer::Refused(format!(
            "node {peer} has no tag {tag}, its id in {} target groups (fleetmesh node --tag {tag}=...)",
            group.target_type
        ))
    })?;
    Ok(Target { id: id.clone(), port: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_target_comes_from_the_tag_of_the_groups_type() {
        let group =
            |target_type: &str| TargetGroup { arn: "arn:tg".into(), target_type: target_type.into(), port: Some(80) };
        let tags: std::collections::BTreeMap<String, String> =
            [("aws:ip".to_string(), "10.0.1.7".to_string())].into_iter().collect();
        assert_eq!(host_target(&group("ip"), &tags, NodeId(3)).unwrap().id, "10.0.1.7");
        let refusal = |target_type| match host_target(&group(target_type), &tags, NodeId(3)) {
            Err(Elbv2Answer::Refused(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let missing = refusal("instance");
        assert!(missing.contains("node 3 has no tag aws:instance-id"), "{missing}");
        let lambda = refusal("lambda");
        assert!(lambda.contains("instance or ip"), "{lambda}");
    }
}
