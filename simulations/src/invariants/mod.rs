//! Invariants, one file each. The continuous ones live in a [`Monitor`] the observer
//! feeds with every committed proposal (and the cluster with leader samples); the
//! end-of-run ones are functions the scenarios call after their liveness phase, on what
//! the cluster read from its voters ([`VoterLog`], a node's applied state). A violation
//! is a [`Violation`]; a scenario collects the verdicts into a map
//! `name → "ok" | "violated: ..."`, printed with the result.
//!
//! Nothing here knows the cluster: the cluster runs the [`Monitor`] on every wait, so
//! the invariants sit below it and read only plain data (replayed states, logs, disks).

pub mod acknowledged_writes;
pub mod committed_entries;
pub mod convergence;
pub mod events_per_transition;
pub mod green_share_monotonic;
pub mod installs_exact;
pub mod logs_agree;
pub mod min_healthy;
pub mod one_deployment_per_route;
pub mod rollback_restores;
pub mod rollback_restores_blue;
pub mod route_never_empty;
pub mod route_weights;
pub mod runaway;
pub mod single_leader;
pub mod terminal_deadline;
pub mod traffic_safe;
pub mod trigger_cursors;
mod violation;
mod voter_log;

use std::collections::BTreeMap;
use std::time::Duration;

use self::committed_entries::CommittedEntries;
use self::events_per_transition::EventsPerTransition;
use self::green_share_monotonic::GreenShareMonotonic;
use self::installs_exact::InstallsExact;
use self::min_healthy::MinHealthy;
use self::one_deployment_per_route::OneDeploymentPerRoute;
use self::rollback_restores::RollbackRestores;
use self::rollback_restores_blue::RollbackRestoresBlue;
use self::route_never_empty::RouteNeverEmpty;
use self::route_weights::EntryView;
use self::runaway::Runaway;
use self::single_leader::LeaderPerTerm;
use self::terminal_deadline::TerminalDeadline;
use self::traffic_safe::TrafficSafe;
use self::trigger_cursors::TriggerCursors;
pub use self::violation::Violation;
pub use self::voter_log::VoterLog;

/// Verdicts by invariant name.
#[derive(Debug, Default, Clone)]
pub struct Verdicts {
    map: BTreeMap<String, String>,
}

impl Verdicts {
    /// Records a verdict; the first violation of a name wins.
    pub fn record(&mut self, name: &str, result: Result<(), Violation>) {
        let entry = self.map.entry(name.to_string()).or_insert_with(|| "ok".to_string());
        if let Err(reason) = result {
            if entry == "ok" {
                *entry = format!("violated: {reason}");
            }
        }
    }

    /// True when nothing was violated.
    pub fn all_ok(&self) -> bool {
        self.map.values().all(|verdict| verdict == "ok")
    }

    /// The first violation, if any.
    pub fn first_violation(&self) -> Option<(String, String)> {
        self.map.iter().find(|(_, verdict)| *verdict != "ok").map(|(name, verdict)| (name.clone(), verdict.clone()))
    }

    /// The map.
    pub fn into_map(self) -> BTreeMap<String, String> {
        self.map
    }
}

/// The continuously checked invariants of one run.
#[derive(Debug)]
pub struct Monitor {
    /// At most one leader per term.
    pub single_leader: LeaderPerTerm,
    /// Committed entries never lost or changed.
    pub committed: CommittedEntries,
    /// Out-of-service targets within the minimum-healthy rule.
    pub min_healthy: MinHealthy,
    /// Deployments end within their deadline.
    pub deadline: TerminalDeadline,
    /// Installs are the manifest's exact bytes.
    pub installs: InstallsExact,
    /// Rollbacks restore the previous revision.
    pub rollbacks: RollbackRestores,
    /// No deployment storm.
    pub runaway: Runaway,
    /// Traffic reaches only validated hosts.
    pub traffic: TrafficSafe,
    /// One deployment at a time moves a route.
    pub one_per_route: OneDeploymentPerRoute,
    /// A blue/green deployment never empties a route that had traffic.
    pub route_never_empty: RouteNeverEmpty,
    /// Green's share of a blue/green deployment's routes only rises, but in a rollback.
    pub green_share: GreenShareMonotonic,
    /// A blue/green rollback gives the routes back to blue.
    pub rollback_blue: RollbackRestoresBlue,
    /// One event number per committed transition, without gaps.
    pub events: EventsPerTransition,
    /// Trigger cursors never pass an undelivered event.
    pub trigger_cursors: TriggerCursors,
}

impl Monitor {
    /// A monitor for deployments that time out after `deployment_timeout`.
    pub fn new(deployment_timeout: Duration) -> Self {
        Self {
            single_leader: LeaderPerTerm::default(),
            committed: CommittedEntries::default(),
            min_healthy: MinHealthy::default(),
            deadline: TerminalDeadline::new(deployment_timeout, DEADLINE_GRACE),
            installs: InstallsExact::default(),
            rollbacks: RollbackRestores::default(),
            runaway: Runaway::default(),
            traffic: TrafficSafe::default(),
            one_per_route: OneDeploymentPerRoute::default(),
            route_never_empty: RouteNeverEmpty::default(),
            green_share: GreenShareMonotonic::default(),
            rollback_blue: RollbackRestoresBlue::default(),
            events: EventsPerTransition::default(),
            trigger_cursors: TriggerCursors::default(),
        }
    }

    /// Runs the blue/green checks on one committed entry.
    pub fn check_blue_green(&mut self, entry: &EntryView<'_>) {
        self.route_never_empty.check(entry);
        self.green_share.check(entry);
        self.rollback_blue.check(entry);
    }

    /// Every continuous verdict so far, by name.
    fn verdicts(&self) -> [(&'static str, Result<(), Violation>); 14] {
        [
            ("single_leader_per_term", self.single_leader.verdict()),
            ("committed_entries_never_change", self.committed.verdict()),
            ("min_healthy_hosts", self.min_healthy.verdict()),
            ("terminal_within_deadline", self.deadline.verdict()),
            ("installs_exact_bytes", self.installs.verdict()),
            ("rollback_restores_previous", self.rollbacks.verdict()),
            ("no_runaway_deployments", self.runaway.verdict()),
            ("traffic_only_to_validated_hosts", self.traffic.verdict()),
            ("one_deployment_per_route", self.one_per_route.verdict()),
            ("route_never_empty", self.route_never_empty.verdict()),
            ("green_share_monotonic", self.green_share.verdict()),
            ("rollback_restores_blue", self.rollback_blue.verdict()),
            ("events_per_transition", self.events.verdict()),
            ("trigger_cursors_behind_delivery", self.trigger_cursors.verdict()),
        ]
    }

    /// Records every continuous verdict.
    pub fn record(&self, verdicts: &mut Verdicts) {
        for (name, verdict) in self.verdicts() {
            verdicts.record(name, verdict);
        }
    }

    /// The first continuous invariant violated so far (in name order), with the reason.
    pub fn first_violation(&self) -> Option<(&'static str, Violation)> {
        self.verdicts().into_iter().find_map(|(name, verdict)| verdict.err().map(|reason| (name, reason)))
    }
}

/// Slack on top of the deployment timeout before a deployment that has not ended is a
/// violation: its first planning round, leader elections, the observer's sampling.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(120);
