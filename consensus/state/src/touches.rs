//! What applying a command may change ([`Touches`]) and whose poll answers it may change
//! ([`PollTouches`]), for readers that cache something derived from the state.

use std::collections::BTreeSet;

use crate::command::{Command, Proposal};
use crate::model::deployment::TargetStatus;
use crate::NodeId;

/// Which parts of the applied state a command may change, for readers that cache
/// something derived from them (see `StateHandle::versions`). Errs on the side of
/// "changed": a false positive costs a recomputation, a false negative a stale answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Touches {
    /// The member list (ids, addresses, tags).
    pub members: bool,
    /// What an agent's poll answer is made of: active deployments and which of their
    /// targets are pending or in progress, revision holders, prefetch requests, members.
    pub poll_inputs: bool,
}

impl Touches {
    /// Both.
    pub const ALL: Self = Self { members: true, poll_inputs: true };

    /// Either part of `self` or of `other`.
    #[must_use]
    pub fn or(self, other: Self) -> Self {
        Self { members: self.members || other.members, poll_inputs: self.poll_inputs || other.poll_inputs }
    }
}

/// Whose poll answers applied commands may have changed, gathered until a reader
/// takes them (the leader wakes those pollers' held polls, not every poll). Errs like
/// [`Touches`]: naming a node whose answer did not change costs one recomputation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollTouches {
    /// Every poller's answer may have changed (members, voters, a deployment created or
    /// ended, a snapshot installed, or more single nodes than are worth listing).
    pub all: bool,
    /// These pollers' answers may have changed.
    pub nodes: BTreeSet<NodeId>,
}

impl PollTouches {
    /// Nodes listed one by one before the set collapses into [`PollTouches::all`].
    pub const NODES_MAX: usize = 4096;

    /// Every poller.
    pub fn add_all(&mut self) {
        self.all = true;
        self.nodes.clear();
    }

    /// The poller `node`.
    pub fn add(&mut self, node: NodeId) {
        if self.all {
            return;
        }
        if self.nodes.len() >= Self::NODES_MAX {
            self.add_all();
        } else {
            self.nodes.insert(node);
        }
    }

    /// The pollers `command` may concern; nothing when [`Command::touches`] says it
    /// leaves poll inputs alone. An agent's assignments depend only on its own targets
    /// (pending or in progress) in active deployments, its own revision holdings and
    /// prefetch requests naming it; anything wider counts as every poller.
    pub fn add_command(&mut self, command: &Command) {
        if !command.touches().poll_inputs {
            return;
        }
        match command {
            Command::RecordRevisionHolder { node, .. } => self.add(*node),
            Command::RequestPrefetch { targets, .. } | Command::StartTargets { targets, .. } => {
                targets.iter().for_each(|node| self.add(*node));
            }
            Command::FailTargets { targets, .. } => targets.iter().for_each(|(node, _)| self.add(*node)),
            Command::ReportTargets { reports } => reports
                .iter()
                .filter(|report| report.status != TargetStatus::InProgress)
                .for_each(|report| self.add(report.target_id)),
            _ => self.add_all(),
        }
    }

    /// True when no poller is concerned.
    pub fn is_empty(&self) -> bool {
        !self.all && self.nodes.is_empty()
    }
}

impl Command {
    /// What applying this command may change (whether or not it is then refused).
    pub fn touches(&self) -> Touches {
        match self {
            Self::Bootstrap { .. }
            | Self::AddMember { .. }
            | Self::AdmitMember { .. }
            | Self::UpdateMember { .. }
            | Self::RemoveMember { .. }
            | Self::RegisterInstance { .. }
            | Self::DeregisterInstance { .. }
            | Self::TagInstances { .. } => Touches::ALL,
            Self::AddJoinToken { .. }
            | Self::DeleteJoinToken { .. }
            | Self::SetApiToken { .. }
            | Self::CreateAccessKey { .. }
            | Self::DeleteAccessKey { .. }
            | Self::UpdateApplication { .. }
            | Self::UpdateDeploymentGroup { .. }
            | Self::TagResource { .. }
            | Self::SealCa { .. }
            | Self::AdvanceTriggerCursor(_)
            | Self::SetDeploymentRetention(_)
            | Self::CreateApplication { .. }
            | Self::CreateDeploymentGroup { .. }
            | Self::CreateDeploymentConfig { .. }
            | Self::DeleteDeploymentConfig { .. }
            | Self::RegisterRevision { .. }
            | Self::AdvanceShift { .. }
            | Self::PutLifecycleEventHookExecutionStatus { .. } => Touches::default(),
            // Lifecycle progress inside a target changes no poll answer; a target that
            // ends leaves the poller's assignments.
            Self::ReportTargets { reports } => Touches {
                members: false,
                poll_inputs: reports.iter().any(|report| report.status != TargetStatus::InProgress),
            },
            Self::DeleteApplication { .. }
            | Self::DeleteDeploymentGroup { .. }
            | Self::RecordRevisionHolder { .. }
            | Self::RequestPrefetch { .. }
            | Self::CreateDeployment { .. }
            | Self::StartTargets { .. }
            | Self::FailTargets { .. }
            | Self::FinishDeployment(_)
            | Self::StopDeployment { .. }
            | Self::StopOnAlarm { .. }
            | Self::SetFeatureLevel { .. }
            | Self::CreateRoute { .. }
            | Self::DeleteRoute { .. }
            | Self::SetRouteTargets { .. }
            | Self::SetTargetTraffic { .. }
            | Self::AdvanceBlueGreen { .. }
            | Self::ContinueDeployment { .. } => Touches { members: false, poll_inputs: true },
        }
    }
}

impl Proposal {
    /// What applying this proposal may change.
    pub fn touches(&self) -> Touches {
        self.commands.iter().fold(Touches::default(), |touches, command| touches.or(command.touches()))
    }
}
