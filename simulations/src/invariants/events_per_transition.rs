//! Safety: every committed transition of a deployment or of one of its targets gets
//! exactly one event number, and the numbers run on from one command to the next with
//! no gap and no repeat, on every voter alike (they survive snapshots and restarts).
//!
//! The observer applies each committed entry one command at a time (the same pure
//! `apply`, on a proposal of that one command, so the state is the one the voters
//! reach) and, after each command, this monitor compares the deployments with its own
//! view of them from before the command. What counts as a transition is written out
//! here from the event log's definition ([`fleetmesh_state::model::events`]), not taken
//! from the code that appends the events:
//! - a deployment's status changed; a new deployment counts `Created`, then its status
//!   when it is created past `Created`;
//! - a wave started: one per wave number reached;
//! - its traffic moved: a blue/green deployment's phase or green share, a Lambda or ECS
//!   run's applied step (the step, the step count, the weight reached);
//! - its rollback link changed: rolled back by, rolls back, or the reason there is none;
//! - a target's status changed (a new target counts unless it is `Pending`);
//! - a target's lifecycle event changed name or status at its position (a new one
//!   counts unless it is `Pending`). A Lambda or ECS run is one target.
//!
//! Each transition must be matched by one event appended by that command (same type,
//! deployment, target, lifecycle event and status), and each appended event by one
//! transition; the appended events must be numbered `last + 1, last + 2, …` where
//! `last` is where the previous command left the log. Below feature level `EVENTS`
//! nothing may be appended.
//!
//! Cost: deployments that were running before the command, are new, or are named by an
//! appended event are compared target by target (lifecycle event names only in some
//! cases, see `transitions::Depth`); an ended deployment only by its own fields. Everything is
//! compared once more at the end ([`EventsPerTransition::final_check`], which also
//! requires every voter's event log to equal the replayed one).
//!
//! Large fleets: comparing every target after every command is O(fleet) per command,
//! O(fleet²) per run, which was 15 % of a rolling-chaos run at 5,000 nodes and grows
//! with N. A deployment of more than [`LARGE_FLEET_TARGETS`] targets is compared in full
//! when its own fields change and every [`FULL_COMPARE_EVERY`] commands; after other
//! commands only on the targets the command names (started, failed, reported, allowed
//! or blocked) and those its appended events name. A transition no event records is
//! then still found, at the next full comparison, but named after that later command;
//! and one that a later recorded transition of the same target overwrites within those
//! commands is missed. The CI sweeps run far below the threshold and keep every check.

mod transitions;

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_state::model::events::{DeploymentEvent, EventLog};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::{ClusterState, Command, FeatureLevel, NodeId};

use self::transitions::{mismatch, shown, Change, DeploymentView, Depth};
use super::Violation;

/// Deployments with more targets than this are compared as the module's "Large fleets"
/// says; smaller ones after every command, target by target.
pub const LARGE_FLEET_TARGETS: usize = 1000;

/// How often (in commands) a large deployment is compared in full anyway.
pub const FULL_COMPARE_EVERY: u64 = 64;

/// A voter's event log at the index it had applied, for the end-of-run check.
#[derive(Debug)]
pub struct VoterEvents {
    /// The voter.
    pub node: NodeId,
    /// The last index it applied.
    pub applied_index: u64,
    /// Its event log.
    pub events: EventLog,
}

/// The events-per-transition monitor.
#[derive(Debug, Default)]
pub struct EventsPerTransition {
    views: BTreeMap<DeploymentId, DeploymentView>,
    /// The last event number the previous command left.
    last_id: u64,
    /// Commands checked.
    pub commands_checked: u64,
    /// Events matched to a transition.
    pub events_checked: u64,
    /// Voters whose event log was compared at the end.
    pub voters_compared: u64,
    violation: Option<Violation>,
}

/// True when commands applied to `state` record events (what [`EventsPerTransition::check`]
/// needs from before the command).
pub fn recording(state: &ClusterState) -> bool {
    state.feature_level >= FeatureLevel::EVENTS
}

/// The command's name, for a violation's text.
fn command_name(command: &Command) -> String {
    let text = format!("{command:?}");
    text.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default().to_string()
}

/// The targets of each deployment a command or its events name.
type Touched = BTreeMap<DeploymentId, BTreeSet<NodeId>>;

/// The targets `command` names and those `appended` events name, by deployment.
fn touched(command: &Command, appended: &[&DeploymentEvent]) -> Touched {
    let mut touched = Touched::new();
    let mut add = |deployment: &DeploymentId, node: NodeId| {
        touched.entry(deployment.clone()).or_default().insert(node);
    };
    match command {
        Command::StartTargets { deployment_id, targets } => targets.iter().for_each(|node| add(deployment_id, *node)),
        Command::FailTargets { deployment_id, targets } => {
            targets.iter().for_each(|(node, _)| add(deployment_id, *node));
        }
        Command::ReportTargets { reports } => {
            reports.iter().for_each(|report| add(&report.deployment_id, report.target_id));
        }
        Command::SetTargetTraffic { deployment_id, target_id, .. } => add(deployment_id, *target_id),
        _ => {}
    }
    for event in appended {
        let node = event.what.target_id.as_deref().and_then(|target| target.parse().ok());
        if let Some(node) = node {
            add(&event.what.deployment_id, node);
        }
    }
    touched
}

impl EventsPerTransition {
    /// Checks `command` of entry `index`, just applied to `state`; `recording` is
    /// [`recording`] of the state before it.
    pub fn check(&mut self, state: &ClusterState, recording: bool, index: u64, command: &Command) {
        if self.violation.is_some() {
            return;
        }
        let appended = match self.appended(state) {
            Ok(appended) => appended,
            Err(problem) => {
                let name = command_name(command);
                self.violation = Some(Violation::new(format!("entry {index} ({name}): {}", problem.reason())));
                return;
            }
        };
        let named: BTreeSet<&DeploymentId> = appended.iter().map(|event| &event.what.deployment_id).collect();
        let touched = (self.commands_checked % FULL_COMPARE_EVERY != 0).then(|| touched(command, &appended));
        let mut expected = Vec::new();
        self.sync(state, &named, touched.as_ref(), &mut expected);
        if !recording {
            expected.clear();
        }
        self.commands_checked += 1;
        let mut got: Vec<Change> = appended.iter().map(|event| Change::of(&event.what)).collect();
        expected.sort();
        got.sort();
        if expected == got {
            self.events_checked += got.len() as u64;
        } else {
            let name = command_name(command);
            self.violation = Some(Violation::new(format!("entry {index} ({name}): {}", mismatch(&expected, &got))));
        }
    }

    /// The events the command appended, checked to be numbered on from the last one.
    fn appended<'a>(&mut self, state: &'a ClusterState) -> Result<Vec<&'a DeploymentEvent>, Violation> {
        let log = &state.events;
        let last = self.last_id;
        if log.last_id < last {
            return Err(Violation::new(format!("the last event number went back from {last} to {}", log.last_id)));
        }
        let appended: Vec<&DeploymentEvent> = log
            .since(last)
            .map_err(|purged| {
                Violation::new(format!("events after {last} are gone right after they were appended: {purged}"))
            })?
            .collect();
        for (offset, event) in (1..).zip(&appended) {
            if event.id != last + offset {
                return Err(Violation::new(format!(
                    "an appended event is numbered {}, not {} (after {last})",
                    event.id,
                    last + offset
                )));
            }
        }
        if last + appended.len() as u64 != log.last_id {
            return Err(Violation::new(format!(
                "{} events were appended after {last}, but the last number is {}",
                appended.len(),
                log.last_id
            )));
        }
        self.last_id = log.last_id;
        Ok(appended)
    }

    /// Brings every view to `state`, pushing the transitions found (see the module);
    /// `touched` is `None` when large deployments are to be compared in full.
    fn sync(
        &mut self,
        state: &ClusterState,
        named: &BTreeSet<&DeploymentId>,
        touched: Option<&Touched>,
        out: &mut Vec<Change>,
    ) {
        let nobody = BTreeSet::new();
        for (id, deployment) in &state.deployments {
            match self.views.get_mut(id) {
                Some(view) => {
                    let running = !view.own.status.is_terminal() || named.contains(id);
                    match touched.filter(|_| running && deployment.targets.len() > LARGE_FLEET_TARGETS) {
                        Some(touched) => view.update_named(deployment, touched.get(id).unwrap_or(&nobody), out),
                        None => view.update(deployment, if running { Depth::Targets } else { Depth::Own }, out),
                    }
                }
                None => {
                    self.views.insert(id.clone(), DeploymentView::new(deployment, out));
                }
            }
        }
        if self.views.len() != state.deployments.len() {
            self.views.retain(|id, _| state.deployments.contains_key(id));
        }
    }

    /// The end-of-run check: no deployment (ended ones included) differs from the view
    /// the commands left, and every voter in `voters` that applied up to `index` (the
    /// last entry replayed into `state`) holds the same event log.
    pub fn final_check(&mut self, state: &ClusterState, index: u64, voters: &[VoterEvents]) {
        if self.violation.is_some() {
            return;
        }
        let mut silent = Vec::new();
        for (id, deployment) in &state.deployments {
            if let Some(view) = self.views.get_mut(id) {
                view.update(deployment, Depth::Names, &mut silent);
            }
        }
        if !silent.is_empty() {
            self.violation = Some(Violation::new(format!(
                "by the end of the run, {} transition(s) of ended deployments had no event: {}",
                silent.len(),
                shown(&silent)
            )));
            return;
        }
        for voter in voters.iter().filter(|voter| voter.applied_index == index) {
            self.voters_compared += 1;
            if voter.events != state.events {
                self.violation = Some(Violation::new(format!(
                    "voter {} at index {index} holds events up to {} ({} kept from {}), the committed entries \
                     number them up to {} ({} kept from {})",
                    voter.node,
                    voter.events.last_id,
                    voter.events.events.len(),
                    voter.events.first_kept(),
                    state.events.last_id,
                    state.events.events.len(),
                    state.events.first_kept()
                )));
                return;
            }
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;
