//! The transitions of [`super`]: the monitor's view of each deployment, what counts
//! as a transition from one view to the next, and how it is matched with an event.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_state::model::blue_green::BlueGreenPhase;
use fleetmesh_state::model::deployment::{
    Deployment, DeploymentStatus, LifecycleEvent, LifecycleEventStatus, Target, TargetStatus,
};
use fleetmesh_state::model::events::{EventBody, EventType};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::NodeId;

/// A transition, or an event, as the two are matched.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Change {
    kind: &'static str,
    deployment: String,
    target: Option<String>,
    lifecycle_event: Option<String>,
    status: Option<String>,
}

fn kind_name(kind: EventType) -> &'static str {
    match kind {
        EventType::DeploymentStatusChanged => "DeploymentStatusChanged",
        EventType::WaveStarted => "WaveStarted",
        EventType::TargetStatusChanged => "TargetStatusChanged",
        EventType::LifecycleEventChanged => "LifecycleEventChanged",
        EventType::TrafficShifted => "TrafficShifted",
        EventType::RollbackLinked => "RollbackLinked",
    }
}

impl Change {
    pub(super) fn of(event: &EventBody) -> Self {
        Self {
            kind: kind_name(event.kind),
            deployment: event.deployment_id.to_string(),
            target: event.target_id.clone(),
            lifecycle_event: event.lifecycle_event_name.clone(),
            status: event.status.clone(),
        }
    }

    fn own(kind: EventType, deployment: &DeploymentId, status: Option<String>) -> Self {
        Self { kind: kind_name(kind), deployment: deployment.to_string(), target: None, lifecycle_event: None, status }
    }
}

/// Where a deployment's traffic is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Traffic {
    BlueGreen { phase: BlueGreenPhase, green_percent: Option<u32> },
    Shift { applied: u32, steps: usize, percent: u32 },
}

fn traffic(deployment: &Deployment) -> Option<Traffic> {
    if let Some(run) = &deployment.blue_green {
        return Some(Traffic::BlueGreen { phase: run.phase, green_percent: run.green_percent });
    }
    let run = deployment.shift.as_ref()?;
    let reached = run.applied_steps.checked_sub(1).and_then(|step| run.weights.get(step as usize));
    Some(Traffic::Shift {
        applied: run.applied_steps,
        steps: run.weights.len(),
        percent: reached.copied().unwrap_or(0),
    })
}

/// A deployment's rollback link.
#[derive(Clone, Debug, PartialEq)]
enum Link {
    RolledBackBy(DeploymentId),
    RollsBack(DeploymentId),
    Reason(String),
}

/// A deployment's own fields, as transitions see them.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Own {
    pub(super) status: DeploymentStatus,
    waves: u32,
    traffic: Option<Traffic>,
    link: Option<Link>,
}

impl Own {
    fn of(deployment: &Deployment) -> Self {
        let link = deployment.rollback_info.as_ref().map(|info| {
            match (&info.rollback_deployment_id, &info.rollback_triggering_deployment_id) {
                (Some(by), _) => Link::RolledBackBy(by.clone()),
                (None, Some(of)) => Link::RollsBack(of.clone()),
                (None, None) => Link::Reason(info.rollback_message.clone()),
            }
        });
        Self { status: deployment.status, waves: deployment.waves, traffic: traffic(deployment), link }
    }
}

/// The transitions of a deployment's own fields from `old` (`None`: it is new) to `now`.
fn own_changes(id: &DeploymentId, old: Option<&Own>, now: &Own, out: &mut Vec<Change>) {
    if old.map(|old| old.status) != Some(now.status) {
        if old.is_none() && now.status != DeploymentStatus::Created {
            out.push(Change::own(EventType::DeploymentStatusChanged, id, Some("Created".into())));
        }
        out.push(Change::own(EventType::DeploymentStatusChanged, id, Some(format!("{:?}", now.status))));
    }
    for _ in old.map_or(0, |old| old.waves)..now.waves {
        out.push(Change::own(EventType::WaveStarted, id, None));
    }
    if now.traffic.is_some() && old.map(|old| old.traffic) != Some(now.traffic) {
        out.push(Change::own(EventType::TrafficShifted, id, None));
    }
    if now.link.is_some() && old.map(|old| &old.link) != Some(&now.link) {
        out.push(Change::own(EventType::RollbackLinked, id, None));
    }
}

/// A target as transitions see them: its status, its report number (a cheap sign of
/// change, see [`Depth`]) and its lifecycle events in order.
#[derive(Clone, Debug, PartialEq)]
struct TargetView {
    status: TargetStatus,
    report_seq: u64,
    events: Vec<(String, LifecycleEventStatus)>,
}

/// A target in the state, as [`TargetView`] reads it.
#[derive(Clone, Copy)]
struct Seen<'a> {
    status: TargetStatus,
    report_seq: u64,
    events: &'a [LifecycleEvent],
}

impl<'a> Seen<'a> {
    fn of(target: &'a Target) -> Self {
        Self { status: target.status, report_seq: target.report_seq, events: &target.lifecycle_events }
    }
}

impl TargetView {
    fn of(seen: Seen<'_>) -> Self {
        let events = seen.events.iter().map(|event| (event.lifecycle_event_name.clone(), event.status)).collect();
        Self { status: seen.status, report_seq: seen.report_seq, events }
    }

    /// All but the lifecycle events' names is as it was.
    fn looks_same(&self, seen: Seen<'_>) -> bool {
        self.status == seen.status
            && self.report_seq == seen.report_seq
            && self.events.len() == seen.events.len()
            && self.events.iter().zip(seen.events).all(|((_, was), event)| *was == event.status)
    }

    /// Names included.
    fn is(&self, seen: Seen<'_>) -> bool {
        self.looks_same(seen)
            && self.events.iter().zip(seen.events).all(|((name, _), event)| *name == event.lifecycle_event_name)
    }
}

/// The transitions of target `target` of deployment `id` from `old` (`None`: new) to
/// `seen`.
fn target_changes(id: &DeploymentId, target: &str, old: Option<&TargetView>, seen: Seen<'_>, out: &mut Vec<Change>) {
    let change = |kind, lifecycle_event, status| Change {
        kind: kind_name(kind),
        deployment: id.to_string(),
        target: Some(target.to_string()),
        lifecycle_event,
        status: Some(status),
    };
    for (index, event) in seen.events.iter().enumerate() {
        let news = match old.and_then(|old| old.events.get(index)) {
            Some((name, was)) => *name != event.lifecycle_event_name || *was != event.status,
            None => event.status != LifecycleEventStatus::Pending,
        };
        if news {
            let name = Some(event.lifecycle_event_name.clone());
            out.push(change(EventType::LifecycleEventChanged, name, format!("{:?}", event.status)));
        }
    }
    let (was, status) = (old.map(|old| old.status), seen.status);
    if was != Some(status) && !(was.is_none() && status == TargetStatus::Pending) {
        out.push(change(EventType::TargetStatusChanged, None, format!("{status:?}")));
    }
}

/// The view of target `name` (`view`; `None`: new) brought to `seen`, with its
/// transitions pushed; `None` when it is unchanged (names compared only with `names`).
fn target_update(
    id: &DeploymentId,
    name: impl Fn() -> String,
    view: Option<&TargetView>,
    seen: Seen<'_>,
    names: bool,
    out: &mut Vec<Change>,
) -> Option<TargetView> {
    if view.is_some_and(|view| if names { view.is(seen) } else { view.looks_same(seen) }) {
        return None;
    }
    target_changes(id, &name(), view, seen, out);
    Some(TargetView::of(seen))
}

/// How far a deployment is compared with its view.
///
/// At N = 1000 comparing every lifecycle event name of every target after every
/// command was most of the monitor's cost; names are compared when anything else about
/// the target changed (status, a lifecycle status, the count, its report number), when
/// the deployment's own fields change (its status, each wave…), for a new deployment,
/// and at the end of the run. A name changed silently is still caught, later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Depth {
    /// Its own fields only.
    Own,
    /// Its targets too, names as above.
    Targets,
    /// Every target, names included.
    Names,
}

/// The monitor's view of one deployment.
#[derive(Clone, Debug)]
pub(super) struct DeploymentView {
    pub(super) own: Own,
    targets: BTreeMap<NodeId, TargetView>,
    /// A Lambda or ECS run's one target: its id and view.
    shift: Option<(String, TargetView)>,
}

impl DeploymentView {
    /// The view of new deployment `deployment`, with its transitions.
    pub(super) fn new(deployment: &Deployment, out: &mut Vec<Change>) -> Self {
        let own = Own::of(deployment);
        own_changes(&deployment.deployment_id, None, &own, out);
        let mut view = Self { own, targets: BTreeMap::new(), shift: None };
        view.update_targets(deployment, true, out);
        view
    }

    /// Brings the view to `deployment` as deep as `depth` says, pushing its transitions.
    pub(super) fn update(&mut self, deployment: &Deployment, depth: Depth, out: &mut Vec<Change>) {
        let own = Own::of(deployment);
        let changed = own != self.own;
        if changed {
            own_changes(&deployment.deployment_id, Some(&self.own), &own, out);
            self.own = own;
        }
        match if changed { Depth::Names } else { depth } {
            Depth::Own => {}
            Depth::Targets => self.update_targets(deployment, false, out),
            Depth::Names => self.update_targets(deployment, true, out),
        }
    }

    fn update_targets(&mut self, deployment: &Deployment, names: bool, out: &mut Vec<Change>) {
        let id = &deployment.deployment_id;
        if self.targets.len() == deployment.targets.len() && self.targets.keys().eq(deployment.targets.keys()) {
            // The usual case, walked in step without a lookup per target.
            for ((node, view), target) in self.targets.iter_mut().zip(deployment.targets.values()) {
                if let Some(new) = target_update(id, || node.to_string(), Some(view), Seen::of(target), names, out) {
                    *view = new;
                }
            }
        } else {
            for (node, target) in &deployment.targets {
                let view = self.targets.get(node);
                if let Some(new) = target_update(id, || node.to_string(), view, Seen::of(target), names, out) {
                    self.targets.insert(*node, new);
                }
            }
            self.targets.retain(|node, _| deployment.targets.contains_key(node));
        }
        self.update_shift(deployment, out);
    }

    /// Brings the view to `deployment` comparing only the targets in `ids` (the others
    /// are taken as unchanged), or every target, names included, when its own fields
    /// changed. See [`super::LARGE_FLEET_TARGETS`] for when this is used.
    pub(super) fn update_named(&mut self, deployment: &Deployment, ids: &BTreeSet<NodeId>, out: &mut Vec<Change>) {
        if Own::of(deployment) != self.own {
            self.update(deployment, Depth::Targets, out);
            return;
        }
        let id = &deployment.deployment_id;
        for node in ids {
            let Some(target) = deployment.targets.get(node) else { continue };
            let view = self.targets.get(node);
            if let Some(new) = target_update(id, || node.to_string(), view, Seen::of(target), false, out) {
                self.targets.insert(*node, new);
            }
        }
        self.update_shift(deployment, out);
    }

    /// The Lambda or ECS run's one target.
    fn update_shift(&mut self, deployment: &Deployment, out: &mut Vec<Change>) {
        let id = &deployment.deployment_id;
        let Some(run) = &deployment.shift else {
            self.shift = None;
            return;
        };
        let name = run.spec.target_id();
        let now = Seen { status: run.status, report_seq: 0, events: &run.lifecycle_events };
        let old = self.shift.as_ref().filter(|(was, _)| *was == name).map(|(_, view)| view);
        if let Some(new) = target_update(id, || name.clone(), old, now, true, out) {
            self.shift = Some((name, new));
        }
    }
}

/// What differs between the transitions and the events (both sorted).
pub(super) fn mismatch(expected: &[Change], got: &[Change]) -> String {
    let mut missing = Vec::new();
    let mut unexpected = Vec::new();
    let (mut i, mut j) = (0, 0);
    // Bounded: every pass moves i or j on, or ends.
    loop {
        match (expected.get(i), got.get(j)) {
            (Some(want), Some(have)) if want == have => {
                i += 1;
                j += 1;
            }
            (Some(want), Some(have)) if want > have => {
                unexpected.push(have.clone());
                j += 1;
            }
            (Some(want), _) => {
                missing.push(want.clone());
                i += 1;
            }
            (None, Some(have)) => {
                unexpected.push(have.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    format!(
        "{} transition(s), {} event(s) appended; transitions without an event: {}; events without a transition: {}",
        expected.len(),
        got.len(),
        shown(&missing),
        shown(&unexpected)
    )
}

/// Up to five changes, in words.
pub(super) fn shown(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "none".into();
    }
    let mut words: Vec<String> = changes
        .iter()
        .take(5)
        .map(|change| {
            let at = [&change.target, &change.lifecycle_event, &change.status];
            let details: Vec<&str> = at.iter().filter_map(|part| part.as_deref()).collect();
            format!("{} {} [{}]", change.kind, change.deployment, details.join(" "))
        })
        .collect();
    if changes.len() > 5 {
        words.push(format!("and {} more", changes.len() - 5));
    }
    words.join(", ")
}
