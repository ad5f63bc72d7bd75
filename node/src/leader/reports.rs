//! Agents' lifecycle reports, committed in groups: while one proposal of reports is in
//! flight, the reports that arrive wait and go into the next one, so a wave of many
//! agents costs a few log entries per lifecycle step, not one per agent.

use std::sync::{Arc, Mutex, PoisonError};

use fleetmesh_state::{Command, TargetReport};
use tokio::sync::oneshot;

use super::Leader;
use crate::runtime::protocol::Response;
use crate::runtime::ProposeError;

/// Reports of one proposal at most: bounds a log entry (a report carries its
/// lifecycle events and their diagnostics, a few KiB at most).
const REPORTS_PER_PROPOSAL_MAX: usize = 256;

/// Agents' reports waiting to be committed together (group commit). While one proposal
/// of reports is in flight, the reports that arrive wait and go into the next one, so a
/// wave of many agents costs a few log entries per lifecycle step, not one per agent.
#[derive(Default)]
pub(super) struct ReportBatcher {
    queue: Mutex<ReportQueue>,
}

/// Where the committing proposal's result goes, for one sender of reports.
type ReportAnswer = oneshot::Sender<Result<(), ProposeError>>;

/// One sender's reports and its answer.
type QueuedReports = (Vec<TargetReport>, ReportAnswer);

#[derive(Default)]
struct ReportQueue {
    /// Each sender's reports, and where its answer goes.
    waiting: std::collections::VecDeque<QueuedReports>,
    /// A flush task is running; it takes what is queued before it stops.
    flushing: bool,
}

impl ReportBatcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReportQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `reports`; true when the caller must start the flush task.
    fn enqueue(&self, reports: Vec<TargetReport>, answer: ReportAnswer) -> bool {
        let mut queue = self.lock();
        queue.waiting.push_back((reports, answer));
        !std::mem::replace(&mut queue.flushing, true)
    }

    /// The next proposal's worth of queued senders (whole senders, at least one, up to
    /// [`REPORTS_PER_PROPOSAL_MAX`] reports); when none are queued, ends the flush.
    fn next_batch(&self) -> Vec<QueuedReports> {
        let mut queue = self.lock();
        let mut batch = Vec::new();
        let mut reports = 0;
        while let Some((front, _)) = queue.waiting.front() {
            if !batch.is_empty() && reports + front.len() > REPORTS_PER_PROPOSAL_MAX {
                break;
            }
            reports += front.len();
            batch.extend(queue.waiting.pop_front());
        }
        if batch.is_empty() {
            queue.flushing = false;
        }
        batch
    }
}

impl Leader {
    /// Commits agents' lifecycle reports, together with the others that arrive while a
    /// proposal of reports is in flight. Each sender gets the answer of the proposal that
    /// carried its reports.
    pub(super) async fn handle_report(self: &Arc<Self>, reports: Vec<TargetReport>) -> Response {
        let (answer, answered) = oneshot::channel();
        if self.reports.enqueue(reports, answer) {
            // A task of its own, not this request's: a request whose caller gave up is
            // dropped, and the reports of the others queued behind it must still go.
            let leader = self.clone();
            tokio::spawn(async move { leader.flush_reports().await });
        }
        match answered.await {
            Ok(Ok(())) => Response::Ack,
            Ok(Err(ProposeError::NotLeader { leader })) => Response::NotLeader { leader },
            Ok(Err(error)) => Response::Error(error.to_string()),
            Err(_) => Response::Error("the leader stopped before committing the reports".into()),
        }
    }

    async fn flush_reports(&self) {
        // Bounded: every pass takes at least one queued sender, and the flush ends when
        // the queue is empty.
        loop {
            let batch = self.reports.next_batch();
            if batch.is_empty() {
                return;
            }
            let (reports, answers): (Vec<Vec<TargetReport>>, Vec<ReportAnswer>) = batch.into_iter().unzip();
            let reports = reports.into_iter().flatten().collect();
            let committed = self.node.propose_one(Command::ReportTargets { reports }).await.map(|_| ());
            for answer in answers {
                // A sender that gave up no longer listens; its reports are committed anyway.
                let _ = answer.send(committed.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::deployment::TargetStatus;
    use fleetmesh_state::model::ids::DeploymentId;
    use fleetmesh_transport::NodeId;

    use super::*;

    fn reports(target: u64, count: usize) -> Vec<TargetReport> {
        (0..count)
            .map(|index| TargetReport {
                deployment_id: DeploymentId(format!("d-{index}")),
                target_id: NodeId(target),
                seq: 1,
                status: TargetStatus::InProgress,
                lifecycle_events: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn reports_that_arrive_during_a_flush_go_together_within_the_bound() {
        // The first sender starts the flush; later ones only queue. A batch takes whole
        // senders up to the bound (one oversized sender still goes alone), and the flush
        // ends when the queue is empty, so the next sender starts a new one.
        let batcher = ReportBatcher::default();
        let mut answers = Vec::new();
        let mut enqueue = |target: u64, count: usize| {
            let (answer, answered) = oneshot::channel();
            answers.push(answered);
            batcher.enqueue(reports(target, count), answer)
        };
        assert!(enqueue(1, 1), "the first sender flushes");
        assert!(!enqueue(2, REPORTS_PER_PROPOSAL_MAX - 1));
        assert!(!enqueue(3, 1));
        assert!(!enqueue(4, REPORTS_PER_PROPOSAL_MAX + 5));
        let sizes = |batch: &[QueuedReports]| batch.iter().map(|(reports, _)| reports.len()).collect::<Vec<_>>();
        assert_eq!(sizes(&batcher.next_batch()), vec![1, REPORTS_PER_PROPOSAL_MAX - 1]);
        assert_eq!(sizes(&batcher.next_batch()), vec![1]);
        assert_eq!(sizes(&batcher.next_batch()), vec![REPORTS_PER_PROPOSAL_MAX + 5]);
        assert!(batcher.next_batch().is_empty(), "the queue is drained");
        assert!(enqueue(5, 1), "a drained queue ended the flush; the next sender starts one");
    }
}
