//! The deployments running on this host, and how each is stopped (see [`Runs`]).

use std::collections::BTreeMap;

use fleetmesh_state::model::ids::DeploymentId;
use tokio::sync::watch;
use tracing::info;

use crate::runtime::protocol::DeploymentAssignment;

/// One deployment running on this host.
#[derive(Debug)]
struct Running {
    /// Set to true to stop the run between events; closed once the run ended (its
    /// receiver dropped).
    cancel: watch::Sender<bool>,
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
}

impl Runs {
    /// The assignments of a poll answer from a leader of `term`: forgets the runs that
    /// ended, cancels the runs whose assignment is gone if that leader is at least as
    /// recent as the one that assigned them, and registers and returns the assignments
    /// that do not run yet, by deployment id, each with the receiver that stops it.
    /// A deployment listed twice is started once, with its last listing.
    pub(super) fn assign<'a>(
        &mut self,
        assignments: &'a [DeploymentAssignment],
        term: u64,
    ) -> Vec<(&'a DeploymentAssignment, watch::Receiver<bool>)> {
        let assigned: BTreeMap<&DeploymentId, &DeploymentAssignment> =
            assignments.iter().map(|assignment| (&assignment.deployment_id, assignment)).collect();
        self.running.retain(|id, run| {
            let finished = run.cancel.is_closed();
            if !assigned.contains_key(id) && term >= run.assigned_term && !finished {
                info!(deployment = %id, "assignment withdrawn: stopping after the current lifecycle event");
                run.cancel.send_replace(true);
            }
            !finished
        });
        let mut started = Vec::new();
        for (id, assignment) in assigned {
            if self.running.contains_key(id) {
                continue;
            }
            let (cancel, cancelled) = watch::channel(false);
            self.running.insert(id.clone(), Running { cancel, assigned_term: term });
            started.push((assignment, cancelled));
        }
        started
    }

    /// Cancels every run (each stops after its current event); true if any was still
    /// running.
    pub(super) fn cancel_all(&self) -> bool {
        for run in self.running.values() {
            run.cancel.send_replace(true);
        }
        self.is_busy()
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
        }
    }

    fn ids(started: &[(&DeploymentAssignment, watch::Receiver<bool>)]) -> Vec<String> {
        started.iter().map(|(assignment, _)| assignment.deployment_id.0.clone()).collect()
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
        let cancelled = started[0].1.clone();
        runs.assign(&[], 4);
        assert!(!*cancelled.borrow());
        runs.assign(&[], 5);
        assert!(*cancelled.borrow());
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
    fn cancel_all_stops_every_run_and_says_whether_any_still_runs() {
        let mut runs = Runs::default();
        let list = [assignment("d-A"), assignment("d-B")];
        let started = runs.assign(&list, 1);
        assert!(runs.cancel_all());
        assert!(started.iter().all(|(_, cancelled)| *cancelled.borrow()));
        drop(started);
        assert!(!runs.cancel_all());
    }
}
