//! The deployments running on this host, and how each is stopped (see [`Runs`]).

use std::collections::BTreeMap;

use fleetmesh_state::model::ids::DeploymentId;
use tokio::sync::watch;
use tracing::info;

use crate::agent::hooks::{Interrupt, InterruptReason};
use crate::runtime::protocol::DeploymentAssignment;

/// One deployment running on this host.
#[derive(Debug)]
struct Running {
    /// Set to true to stop the run between events; closed once the run ended (its
    /// receiver dropped).
    cancel: watch::Sender<bool>,
    /// Set to end the running event at once (its scripts' process groups are ended).
    interrupt: watch::Sender<Option<InterruptReason>>,
    /// The term of the leader that assigned it: only a leader at least as recent may
    /// withdraw it.
    assigned_term: u64,
}

/// The runs of this host by deployment: which to start, which to stop, and whether any
/// still runs. No I/O; the agent spawns the runs it is told to start, each holding the
/// cancel receiver it is given, and drops the receiver when the run ends.
#[derive(Debug, Default)]
pub(super) struct Runs {
    running: BTreeMap<DeploymentId, Running>,
    /// Set when the node stops: no run starts any more.
    closed: bool,
}

/// A run to start: the assignment, the receiver that stops it between events, and the
/// interrupt that ends its running event.
#[derive(Debug)]
pub(super) struct Start<'a> {
    /// What to run.
    pub(super) assignment: &'a DeploymentAssignment,
    /// Turns true to stop the run between events; dropped when the run ends.
    pub(super) cancelled: watch::Receiver<bool>,
    /// Ends the running event at once.
    pub(super) interrupt: Interrupt,
}

impl Runs {
    /// The assignments of a poll answer from a leader of `term`: forgets the runs that
    /// ended, stops the runs whose assignment is gone if that leader is at least as
    /// recent as the one that assigned them (their running event is interrupted: its
    /// scripts' process groups are ended; said once per run), and registers and returns
    /// the assignments that do not run yet, by deployment id. A deployment listed twice
    /// is started once, with its last listing. Once [`Self::close`]d, nothing starts.
    pub(super) fn assign<'a>(&mut self, assignments: &'a [DeploymentAssignment], term: u64) -> Vec<Start<'a>> {
        let assigned: BTreeMap<&DeploymentId, &DeploymentAssignment> =
            assignments.iter().map(|assignment| (&assignment.deployment_id, assignment)).collect();
        self.running.retain(|id, run| {
            let finished = run.cancel.is_closed();
            let interrupted = run.interrupt.borrow().is_some();
            if !assigned.contains_key(id) && term >= run.assigned_term && !finished && !interrupted {
                info!(deployment = %id, "assignment withdrawn: ending the running lifecycle event and skipping the rest");
                run.cancel.send_replace(true);
                run.interrupt.send_replace(Some(InterruptReason::Stopped));
            }
            !finished
        });
        let mut started = Vec::new();
        if self.closed {
            return started;
        }
        for (id, assignment) in assigned {
            if self.running.contains_key(id) {
                continue;
            }
            let (cancel, cancelled) = watch::channel(false);
            let (interrupt_sender, interrupt) = Interrupt::channel();
            self.running.insert(id.clone(), Running { cancel, interrupt: interrupt_sender, assigned_term: term });
            started.push(Start { assignment, cancelled, interrupt });
        }
        started
    }

    /// The node stops: no run starts any more, and every run stops after its current
    /// event. True if any was still running.
    pub(super) fn close(&mut self) -> bool {
        self.closed = true;
        for run in self.running.values() {
            run.cancel.send_replace(true);
        }
        self.is_busy()
    }

    /// True once [`Self::close`]d.
    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Ends the running event of every run that has not ended, for `reason`; how many
    /// were running.
    pub(super) fn interrupt_all(&self, reason: InterruptReason) -> usize {
        let running: Vec<&Running> = self.running.values().filter(|run| !run.cancel.is_closed()).collect();
        for run in &running {
            run.cancel.send_replace(true);
            run.interrupt.send_replace(Some(reason));
        }
        running.len()
    }

    /// True while a run has not ended.
    pub(super) fn is_busy(&self) -> bool {
        self.running.values().any(|run| !run.cancel.is_closed())
    }
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::ids::Hash32;

    use super::*;

    fn assignment(id: &str) -> DeploymentAssignment {
        DeploymentAssignment {
            deployment_id: DeploymentId(id.into()),
            application_name: "app".into(),
            deployment_group_name: "web".into(),
            deployment_group_id: "g-1".into(),
            revision_id: Hash32([1; 32]),
            ignore_application_stop_failures: false,
            file_exists_behavior: Default::default(),
            traffic_routes: Vec::new(),
            events: Vec::new(),
            ready_before: None,
            source: None,
        }
    }

    fn ids(started: &[Start<'_>]) -> Vec<String> {
        started.iter().map(|start| start.assignment.deployment_id.0.clone()).collect()
    }

    #[test]
    fn new_assignments_start_once_in_id_order() {
        // d-B and d-A are assigned (in that order): both start, d-A first; the same list
        // again starts nothing.
        let mut runs = Runs::default();
        let list = [assignment("d-B"), assignment("d-A")];
        let started = runs.assign(&list, 3);
        assert_eq!(ids(&started), ["d-A", "d-B"]);
        assert!(runs.assign(&list, 3).is_empty());
        assert!(runs.is_busy());
    }

    #[test]
    fn a_withdrawn_assignment_is_cancelled_only_by_a_leader_at_least_as_recent() {
        // d-A assigned in term 5. An answer of term 4 without it (a deposed leader's)
        // leaves it running; one of term 5 cancels it.
        let mut runs = Runs::default();
        let list = [assignment("d-A")];
        let started = runs.assign(&list, 5);
        let cancelled = started[0].cancelled.clone();
        runs.assign(&[], 4);
        assert!(!*cancelled.borrow());
        assert_eq!(started[0].interrupt.reason(), None);
        runs.assign(&[], 5);
        assert!(*cancelled.borrow());
        assert_eq!(
            started[0].interrupt.reason(),
            Some(InterruptReason::Stopped),
            "a withdrawal ends the running event"
        );
    }

    #[test]
    fn an_ended_run_is_forgotten_and_can_start_again() {
        // The run of d-A ends (its receiver is dropped): the host is idle, and d-A
        // listed again starts anew (the sequencer then only re-reports it).
        let mut runs = Runs::default();
        let list = [assignment("d-A")];
        let started = runs.assign(&list, 1);
        assert!(runs.is_busy());
        drop(started);
        assert!(!runs.is_busy());
        assert_eq!(ids(&runs.assign(&list, 1)), ["d-A"]);
    }

    #[test]
    fn close_stops_every_run_after_its_event_and_starts_nothing_new() {
        // Closing cancels both runs between events without interrupting them; a new
        // assignment afterwards does not start; interrupt_all then ends both events.
        let mut runs = Runs::default();
        let list = [assignment("d-A"), assignment("d-B")];
        let started = runs.assign(&list, 1);
        assert!(runs.close() && runs.is_closed());
        assert!(started.iter().all(|start| *start.cancelled.borrow() && start.interrupt.reason().is_none()));
        let more = [assignment("d-A"), assignment("d-B"), assignment("d-C")];
        assert!(runs.assign(&more, 1).is_empty(), "a closed agent starts nothing");
        assert_eq!(runs.interrupt_all(InterruptReason::ShuttingDown), 2);
        assert!(started.iter().all(|start| start.interrupt.reason() == Some(InterruptReason::ShuttingDown)));
        drop(started);
        assert!(!runs.close());
        assert_eq!(runs.interrupt_all(InterruptReason::ShuttingDown), 0);
    }
}
