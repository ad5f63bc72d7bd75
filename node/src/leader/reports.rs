//! Agents' lifecycle reports, committed in groups: the request handler hands them to the
//! leader task and waits for the outcome of the proposal that carried them. While one
//! proposal of reports is in flight, the reports that arrive wait and go into the next
//! one ([`super::core`]), so a wave of many agents costs a few log entries per lifecycle
//! step, not one per agent.

use fleetmesh_state::TargetReport;
use tokio::sync::oneshot;

use super::run::Event;
use super::Leader;
use crate::runtime::protocol::Response;
use crate::runtime::ProposeError;

impl Leader {
    /// Commits agents' lifecycle reports, together with the others that arrive while a
    /// proposal of reports is in flight. Each sender gets the answer of the proposal that
    /// carried its reports; the proposal goes on if this request's caller gives up.
    pub(super) async fn handle_report(&self, reports: Vec<TargetReport>) -> Response {
        let (reply, answered) = oneshot::channel();
        let stopped = || Response::Error("the leader stopped before committing the reports".into());
        if self.events.send(Event::Reports { reports, reply }).is_err() {
            return stopped();
        }
        match answered.await {
            Ok(Ok(())) => Response::Ack,
            Ok(Err(ProposeError::NotLeader { leader })) => Response::NotLeader { leader },
            Ok(Err(error)) => Response::Error(error.to_string()),
            Err(_) => stopped(),
        }
    }
}
