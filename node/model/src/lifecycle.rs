//! `LifecycleEventName`: the lifecycle events CodeDeploy runs (`codedeploy.md` §2).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A lifecycle event's name (§2.2–2.8). The state keeps the names as text; the API
/// gives them this type so a client matches on them instead of spelling them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LifecycleEventName {
    /// Reserved: the deployment starts on the host.
    Start,
    /// Stops the old revision's application.
    ApplicationStop,
    /// Fetches the revision (fleetmesh: through the swarm).
    DownloadBundle,
    /// Before the files are copied.
    BeforeInstall,
    /// Copies the files.
    Install,
    /// After the files are copied.
    AfterInstall,
    /// Starts the new revision's application.
    ApplicationStart,
    /// Checks the new revision works.
    ValidateService,
    /// Before the host leaves the load balancer.
    BeforeBlockTraffic,
    /// The host leaves the load balancer.
    BlockTraffic,
    /// After the host left the load balancer.
    AfterBlockTraffic,
    /// Before the host joins the load balancer.
    BeforeAllowTraffic,
    /// The host joins the load balancer.
    AllowTraffic,
    /// After the host joined the load balancer.
    AfterAllowTraffic,
    /// Reserved: the deployment ends on the host.
    End,
    /// ECS, reserved: the test listener moves to the replacement task set.
    AllowTestTraffic,
    /// ECS: after the test listener moved.
    AfterAllowTestTraffic,
}

impl LifecycleEventName {
    /// Every name: in the order an in-place deployment behind a load balancer runs them,
    /// then ECS's own two.
    pub const ALL: [Self; 17] = [
        Self::Start,
        Self::BeforeBlockTraffic,
        Self::BlockTraffic,
        Self::AfterBlockTraffic,
        Self::ApplicationStop,
        Self::DownloadBundle,
        Self::BeforeInstall,
        Self::Install,
        Self::AfterInstall,
        Self::ApplicationStart,
        Self::ValidateService,
        Self::BeforeAllowTraffic,
        Self::AllowTraffic,
        Self::AfterAllowTraffic,
        Self::End,
        Self::AllowTestTraffic,
        Self::AfterAllowTestTraffic,
    ];

    /// The name as CodeDeploy spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "Start",
            Self::ApplicationStop => "ApplicationStop",
            Self::DownloadBundle => "DownloadBundle",
            Self::BeforeInstall => "BeforeInstall",
            Self::Install => "Install",
            Self::AfterInstall => "AfterInstall",
            Self::ApplicationStart => "ApplicationStart",
            Self::ValidateService => "ValidateService",
            Self::BeforeBlockTraffic => "BeforeBlockTraffic",
            Self::BlockTraffic => "BlockTraffic",
            Self::AfterBlockTraffic => "AfterBlockTraffic",
            Self::BeforeAllowTraffic => "BeforeAllowTraffic",
            Self::AllowTraffic => "AllowTraffic",
            Self::AfterAllowTraffic => "AfterAllowTraffic",
            Self::End => "End",
            Self::AllowTestTraffic => "AllowTestTraffic",
            Self::AfterAllowTestTraffic => "AfterAllowTestTraffic",
        }
    }
}

impl fmt::Display for LifecycleEventName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A text that is not a lifecycle event's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a lifecycle event name")]
pub struct UnknownLifecycleEvent(pub String);

impl FromStr for LifecycleEventName {
    type Err = UnknownLifecycleEvent;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|name| name.as_str() == text).ok_or_else(|| UnknownLifecycleEvent(text.to_string()))
    }
}
