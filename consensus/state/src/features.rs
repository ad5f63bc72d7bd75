//! Feature levels: which commands and node-to-node messages a release knows, and which
//! the cluster may use.
//!
//! A fleet upgrades fleetmesh host by host, so for a while old and new releases run side
//! by side. Each release knows the features up to its [`FeatureLevel::CURRENT`]; the
//! cluster state records the level the cluster runs at (`ClusterState::feature_level`).
//! The leader raises it (with [`crate::Command::SetFeatureLevel`]) only once every voter
//! reports a release that knows the new level, and no command or message of a higher
//! level is used before that: an old voter never meets a log entry it cannot decode, and
//! an old node never gets a request it does not know. A release never lowers the level.
//!
//! ```text
//!  voters' releases (polls) ──all ≥ L──▶ leader proposes SetFeatureLevel{L} ──▶ commands
//!  and messages of level ≤ L may be used from then on
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// A feature level: a number that only grows, one step per release that adds commands or
/// messages an older release would not understand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FeatureLevel(pub u32);

impl FeatureLevel {
    /// What the first release knows (the one before feature levels existed): a cluster
    /// state, a proposal or a message that names no level is at this level.
    pub const BASE: Self = Self(1);

    /// Level 2: [`crate::Command::SetFeatureLevel`], proposals that name their level, and
    /// members' release reports.
    pub const VERSIONED_ENTRIES: Self = Self(2);

    /// Level 3: API operations travel between nodes as typed operations (the API model's
    /// `Operation`/`Output`) instead of HTTP requests tunnelled over the transport, and
    /// poll answers tell agents the cluster's level.
    pub const TYPED_OPERATIONS: Self = Self(3);

    /// Level 4: the join-token lifecycle. Joins are counted against their token
    /// ([`crate::Command::AdmitMember`]), tokens can have a use limit (`AddJoinToken`
    /// with `max_uses`) and be deleted ([`crate::Command::DeleteJoinToken`]), and the
    /// API's `ListJoinTokens` and `DeleteJoinToken` operations exist.
    pub const JOIN_TOKEN_LIFECYCLE: Self = Self(4);

    /// Level 5: production hardening. The API's read-only and metrics tokens exist and
    /// any token can be replaced ([`crate::Command::SetApiToken`], `RotateApiToken`).
    pub const HARDENING: Self = Self(5);

    /// Level 6: the cluster CA's private key is sealed in the replicated state
    /// ([`crate::Command::SealCa`], and bootstrap entries that carry a sealed CA).
    pub const SEALED_CA: Self = Self(6);

    /// Level 7: audit. A proposal made for an API caller names who made it
    /// ([`crate::Proposal::by`]), and what it creates or changes records that caller.
    pub const AUDIT: Self = Self(7);

    /// Level 8: traffic routes ([`crate::Command::CreateRoute`], `DeleteRoute`,
    /// `SetRouteTargets`), members' advertised addresses, and the routes a node serves
    /// in its poll answers.
    pub const TRAFFIC_ROUTES: Self = Self(8);

    /// Level 9: traffic control in deployments. Deployment groups with a deployment
    /// style and load-balancer info (a target group names a route), deployment configs
    /// with a traffic-routing config (canary and linear waves for servers), and the
    /// traffic events an agent asks the leader to perform (`BlockTraffic`,
    /// `AllowTraffic`).
    pub const TRAFFIC_CONTROL: Self = Self(9);

    /// Level 10: blue/green deployments of servers. Deployment groups of type
    /// `BLUE_GREEN` with a `blueGreenDeploymentConfiguration`, deployments with
    /// `targetInstances`, targets labelled blue or green, and the commands that move a
    /// blue/green deployment ([`crate::Command::AdvanceBlueGreen`],
    /// [`crate::Command::ContinueDeployment`]).
    pub const BLUE_GREEN: Self = Self(10);

    /// Level 11: blue/green deployments whose configuration has canary or linear steps:
    /// green's share of the routes' new connections moves in committed steps
    /// (`BlueGreenPhase::Shifting`, `BlueGreenStep::Shift`).
    pub const BLUE_GREEN_STEPS: Self = Self(11);

    /// Level 12: the Lambda and ECS compute platforms' deployment configurations (the
    /// predefined `CodeDeployDefault.Lambda*` and `CodeDeployDefault.ECS*` ones, custom
    /// ones checked by AWS's rules) and the check that a group's or a deployment's
    /// configuration is for its application's platform.
    pub const COMPUTE_PLATFORMS: Self = Self(12);

    /// Level 13: Lambda deployments, the leader moving a function's alias in committed
    /// steps ([`crate::model::shift`]): AppSpec-content revisions, `AdvanceShift`,
    /// `PutLifecycleEventHookExecutionStatus`, and the deployment error codes of hooks and
    /// AWS calls.
    pub const PLATFORM_DEPLOYMENTS: Self = Self(13);

    /// Level 14: ECS deployments: groups with `ecsServices` and a target group pair, and
    /// the leader replacing a service's task set and moving its listeners' weights in
    /// committed steps ([`crate::model::shift::EcsSpec`]).
    pub const ECS_DEPLOYMENTS: Self = Self(14);

    /// Level 15: CodeDeploy's own protocol (AWS JSON 1.1 with SigV4): the cluster's
    /// access keys ([`crate::Command::CreateAccessKey`], `DeleteAccessKey`).
    pub const AWS_PROTOCOL: Self = Self(15);

    /// Level 16: the deployment event log (`ClusterState::events`): applying a command
    /// that changes a deployment also numbers its events, so a release without the log
    /// must not apply entries past this level.
    pub const EVENTS: Self = Self(16);

    /// Level 17: deployment-group triggers (`triggerConfigurations`) and their delivery
    /// cursors ([`crate::Command::AdvanceTriggerCursor`]).
    pub const TRIGGERS: Self = Self(17);

    /// Level 18: alarm gates: `alarmConfiguration` on groups and deployments, and
    /// [`crate::Command::StopOnAlarm`] (`ALARM_ACTIVE`).
    pub const ALARMS: Self = Self(18);

    /// Level 19: deployment retention: finished deployments past the cluster's retention
    /// are compacted out of the state ([`crate::Command::SetDeploymentRetention`]); and
    /// SNS topics as trigger targets and CloudWatch alarms in alarm gates, which a leader
    /// of an earlier release would neither deliver nor poll.
    pub const RETENTION: Self = Self(19);

    /// The highest level this release knows.
    pub const CURRENT: Self = Self::RETENTION;

    /// True when this release knows `self`.
    pub fn is_known(self) -> bool {
        self <= Self::CURRENT
    }
}

impl Default for FeatureLevel {
    fn default() -> Self {
        Self::BASE
    }
}

impl fmt::Display for FeatureLevel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// A node's release, as it reports it to the leader (in its join request and its polls).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// The release's version (`fleetmesh --version`); empty for a release that does not
    /// report one.
    #[serde(default)]
    pub version: String,
    /// The highest feature level it knows.
    #[serde(default)]
    pub feature_level: FeatureLevel,
}

impl Default for Release {
    /// What a node that reports nothing is: the first release.
    fn default() -> Self {
        Self { version: String::new(), feature_level: FeatureLevel::BASE }
    }
}

impl Release {
    /// This release.
    pub fn this_build() -> Self {
        Self { version: env!("CARGO_PKG_VERSION").to_string(), feature_level: FeatureLevel::CURRENT }
    }
}

/// The level the leader may raise the cluster to, given the feature levels the voters
/// reported: the lowest of them and this release's own, if that is above `cluster`.
/// `None` while any voter has not reported (`voters` holds `None` for it) or none is
/// ahead.
pub fn raisable_level(cluster: FeatureLevel, voters: &[Option<FeatureLevel>]) -> Option<FeatureLevel> {
    let lowest = voters.iter().try_fold(FeatureLevel::CURRENT, |lowest, level| level.map(|level| lowest.min(level)))?;
    (lowest > cluster).then_some(lowest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_rises_only_when_every_voter_knows_it() {
        let (base, two) = (FeatureLevel::BASE, FeatureLevel::VERSIONED_ENTRIES);
        assert_eq!(raisable_level(base, &[Some(two), Some(two), Some(two)]), Some(two));
        assert_eq!(raisable_level(base, &[Some(two), Some(base), Some(two)]), None, "an old voter holds it back");
        assert_eq!(raisable_level(base, &[Some(two), None, Some(two)]), None, "a voter that did not report");
        assert_eq!(raisable_level(two, &[Some(two), Some(two)]), None, "already there");
        assert_eq!(raisable_level(base, &[Some(FeatureLevel(99))]), Some(FeatureLevel::CURRENT), "never above ours");
    }

    #[test]
    fn a_node_that_reports_nothing_is_the_first_release() {
        let old: Release = serde_json::from_str("{}").expect("decodes");
        assert_eq!(old.feature_level, FeatureLevel::BASE);
        assert!(FeatureLevel::CURRENT.is_known() && !FeatureLevel(FeatureLevel::CURRENT.0 + 1).is_known());
    }
}
