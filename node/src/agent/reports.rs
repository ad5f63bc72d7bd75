//! Reports to the leader: the latest report per deployment is kept until the leader has
//! committed it; sending is retried, and an older report never overtakes a newer one
//! (reports carry increasing sequence numbers and the leader ignores stale ones).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::TargetReport;
use tokio::sync::Notify;
use tracing::debug;

use fleetmesh_transport::Peer;

use super::Agent;
use crate::runtime::backoff::Backoff;
use crate::runtime::protocol::{Request, Response};

/// Pause after a first failed send; it doubles with every further failure up to
/// [`RETRY_DELAY_MAX`].
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// Longest pause between sends while the leader does not commit them.
const RETRY_DELAY_MAX: Duration = Duration::from_secs(2);

/// Reports waiting to be committed.
#[derive(Debug, Default)]
pub(super) struct ReportQueue {
    pending: Mutex<BTreeMap<DeploymentId, TargetReport>>,
    ready: Notify,
}

impl ReportQueue {
    /// Queues a report, replacing an older one for the same deployment.
    pub(super) fn push(&self, report: TargetReport) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let newer = pending.get(&report.deployment_id).is_none_or(|queued| queued.seq < report.seq);
        if newer {
            pending.insert(report.deployment_id.clone(), report);
        }
        drop(pending);
        self.ready.notify_one();
    }

    fn snapshot(&self) -> Vec<TargetReport> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect()
    }

    fn acknowledge(&self, sent: &[TargetReport]) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for report in sent {
            if pending.get(&report.deployment_id).is_some_and(|queued| queued.seq <= report.seq) {
                pending.remove(&report.deployment_id);
            }
        }
    }
}

/// Sends queued reports to the leader until the node shuts down.
pub(super) async fn send_loop(agent: Arc<Agent>) {
    let node = agent.node.clone();
    let mut shutdown = node.shutdown_signal();
    let mut backoff = Backoff::new(RETRY_DELAY, RETRY_DELAY_MAX, node.id());
    loop {
        let batch = agent.reports.snapshot();
        if batch.is_empty() {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                () = agent.reports.ready.notified() => continue,
            }
        }
        // The leader sends its own reports to itself, through its own leader service.
        let leader = if node.is_leader() {
            Some(Peer { id: node.id(), addr: node.settings().listen })
        } else {
            node.leader_hint().filter(|hint| hint.id != node.id()).map(|hint| hint.peer())
        };
        let answer = match leader {
            Some(leader) => match node.call(leader, Request::Report(batch.clone()), Duration::from_secs(10)).await {
                Ok((response, _)) => response,
                Err(error) => Response::Error(error.to_string()),
            },
            None => Response::Error("no leader known".to_string()),
        };
        match answer {
            Response::Ack => {
                agent.reports.acknowledge(&batch);
                backoff.reset();
            }
            other => {
                debug!(?other, "reports not committed yet; retrying");
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}
