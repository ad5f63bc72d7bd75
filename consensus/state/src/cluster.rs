//! [`ClusterState`]: everything the cluster agrees on, and the queries over it.
//!
//! [`ClusterState::apply`] is the only way the state changes. It reads no clock and
//! no randomness (both come inside the [`Proposal`]), iterates only ordered maps, and
//! so replaying the log yields the same state, byte for byte.

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;
use serde::{Deserialize, Serialize};

use crate::command::ApplyError;
use crate::features::FeatureLevel;
use crate::model::deployment::Deployment;
use crate::model::events::EventLog;
use crate::model::ids::{DeploymentId, RevisionId, UnixMillis};
use crate::model::instances::OnPremisesInstance;
use crate::model::members::{ClusterInfo, Member};
use crate::model::platform_configs::predefined_configs_at;
use crate::model::resources::{Application, DeploymentConfig, DeploymentGroup};
use crate::model::retention::DeploymentRetention;
use crate::model::revision::RevisionRecord;
use crate::model::routes::Route;

/// Everything the cluster agrees on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Set by the bootstrap entry.
    pub cluster: Option<ClusterInfo>,
    /// Current members.
    pub members: BTreeMap<NodeId, Member>,
    /// Ids of members that left; never reused, refused by the transport.
    pub removed: BTreeSet<NodeId>,
    /// The id the next joiner gets.
    pub next_node_id: u64,
    /// Applications by name.
    pub applications: BTreeMap<String, Application>,
    /// Deployment groups by application, then by name.
    pub deployment_groups: BTreeMap<String, BTreeMap<String, DeploymentGroup>>,
    /// Custom deployment configurations by name (predefined ones are not stored).
    pub deployment_configs: BTreeMap<String, DeploymentConfig>,
    /// Revisions by id.
    pub revisions: BTreeMap<RevisionId, RevisionRecord>,
    /// Nodes known to hold every chunk of a revision.
    pub revision_holders: BTreeMap<RevisionId, BTreeSet<NodeId>>,
    /// Nodes asked to prefetch a revision that do not hold it yet.
    pub prefetch_requests: BTreeMap<RevisionId, BTreeSet<NodeId>>,
    /// Deployments by id.
    pub deployments: BTreeMap<DeploymentId, Deployment>,
    /// Deployment ids in creation order.
    pub deployment_order: Vec<DeploymentId>,
    /// Timestamp of the last applied proposal.
    pub last_applied_at: UnixMillis,
    /// The feature level the cluster runs at (see [`crate::features`]); a state without
    /// one (written by the first release) is at [`FeatureLevel::BASE`].
    #[serde(default)]
    pub feature_level: FeatureLevel,
    /// Traffic routes by name ([`FeatureLevel::TRAFFIC_ROUTES`]); left out of the
    /// encoding while there are none, so a state without routes reads and writes as
    /// before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, Route>,
    /// On-premises instances by name ([`FeatureLevel::AWS_PROTOCOL`]); left out of the
    /// encoding while there are none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instances: BTreeMap<String, OnPremisesInstance>,
    /// The deployment event log ([`FeatureLevel::EVENTS`]); left out of the encoding
    /// until its first event.
    #[serde(default, skip_serializing_if = "EventLog::is_unused")]
    pub events: EventLog,
    /// How many finished deployments are kept, and how long ([`FeatureLevel::RETENTION`]);
    /// left out of the encoding while it is the default.
    #[serde(default, skip_serializing_if = "DeploymentRetention::is_default")]
    pub deployment_retention: DeploymentRetention,
}

impl ClusterState {
    /// A deployment configuration by name, predefined (those of the cluster's feature
    /// level) or custom.
    pub fn deployment_config(&self, name: &str) -> Option<DeploymentConfig> {
        predefined_configs_at(self.feature_level)
            .into_iter()
            .find(|config| config.deployment_config_name == name)
            .or_else(|| self.deployment_configs.get(name).cloned())
    }

    /// Deployment configuration `name` for a group or deployment of `application` (which
    /// exists): it must exist and, from [`FeatureLevel::COMPUTE_PLATFORMS`] on, be for
    /// the application's compute platform.
    pub(crate) fn check_config_platform(&self, application: &str, name: &str) -> Result<DeploymentConfig, ApplyError> {
        let config = self
            .deployment_config(name)
            .ok_or_else(|| ApplyError::not_found(format!("deployment configuration {name} does not exist")))?;
        let platform = self.applications.get(application).map(|application| application.compute_platform);
        match platform {
            Some(platform)
                if platform != config.compute_platform && self.feature_level >= FeatureLevel::COMPUTE_PLATFORMS =>
            {
                Err(ApplyError::invalid(format!(
                    "deployment configuration {name} is for the {} compute platform; application {application} \
                     deploys to {platform}",
                    config.compute_platform
                )))
            }
            _ => Ok(config),
        }
    }

    /// A deployment group.
    pub fn deployment_group(&self, application: &str, group: &str) -> Option<&DeploymentGroup> {
        self.deployment_groups.get(application)?.get(group)
    }

    pub(crate) fn deployment_group_mut(&mut self, application: &str, group: &str) -> Option<&mut DeploymentGroup> {
        self.deployment_groups.get_mut(application)?.get_mut(group)
    }

    /// Members whose tags a group's selector matches, in id order.
    pub fn group_targets(&self, group: &DeploymentGroup) -> Vec<NodeId> {
        self.members
            .values()
            .filter(|member| self.is_deployable(member) && group.target_selector.matches(&member.tags))
            .map(|member| member.id)
            .collect()
    }

    /// The members that route `route` (their tags hold its router selector), in id order.
    pub fn routers_of(&self, route: &Route) -> Vec<NodeId> {
        self.members.values().filter(|member| route.is_router(&member.tags)).map(|member| member.id).collect()
    }

    /// Deployments that are not finished.
    pub fn active_deployments(&self) -> impl Iterator<Item = &Deployment> {
        self.deployments.values().filter(|deployment| !deployment.status.is_terminal())
    }

    /// Checks the state's internal consistency; called after every apply in debug and
    /// simulation builds.
    ///
    /// # Panics
    /// When an invariant is broken: that is a bug in `apply`.
    pub fn check_invariants(&self) {
        self.events.check();
        self.check_trigger_cursors();
        for (name, instance) in &self.instances {
            if let Some(node) = instance.node {
                let held = self.members.get(&node).and_then(|member| member.instance_name.as_deref());
                assert_eq!(held, Some(name.as_str()), "instance {name} names node {node}, which does not hold it");
            }
        }
        for member in self.members.values() {
            if let Some(name) = &member.instance_name {
                let holder = self.instances.get(name).and_then(|instance| instance.node);
                assert_eq!(holder, Some(member.id), "node {} holds instance {name}, which does not name it", member.id);
            }
        }
        for (application, groups) in &self.deployment_groups {
            assert!(self.applications.contains_key(application), "groups of unknown application {application}");
            for group in groups.values() {
                if let Some(active) = &group.active_deployment_id {
                    let deployment = self.deployments.get(active).expect("active deployment exists");
                    assert!(!deployment.status.is_terminal(), "active deployment {active} is finished");
                }
            }
        }
        for deployment in self.deployments.values() {
            if deployment.status.is_terminal() {
                assert!(
                    deployment
                        .targets
                        .values()
                        .all(|target| target.status != crate::model::deployment::TargetStatus::Pending),
                    "finished deployment {} has pending targets",
                    deployment.deployment_id
                );
            }
        }
        for route in self.routes.values() {
            let listeners = self.routes.values().filter(|other| other.spec.listen_port == route.spec.listen_port);
            assert_eq!(listeners.count(), 1, "listen port {} used twice", route.spec.listen_port);
        }
        for id in self.members.keys() {
            assert!(id.0 < self.next_node_id, "member {id} not below next id {}", self.next_node_id);
            assert!(!self.removed.contains(id), "member {id} is also removed");
        }
    }
}
