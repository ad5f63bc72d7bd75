//! What the planner asks for, and the replicated command that carries it.
//!
//! The planner speaks in [`Action`]s so its decisions stay independent of how they are
//! committed; [`Action::into_command`] maps each one onto the consensus command whose
//! `apply` performs it (`consensus/src/state/deployments.rs`).

use fleetmesh_state::model::deployment::ErrorInformation;
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::NodeId;
use fleetmesh_state::{BlueGreenStep, Command, Finish};

/// One change the planner asks the leader to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start these pending targets as one wave, in priority order. On a `Created`
    /// deployment an empty list only marks the deployment started.
    Start(Vec<NodeId>),
    /// Fail these targets (host dead before it started, lost while in flight, or the
    /// deployment timed out), each with the reason shown on its lifecycle event.
    FailTargets(Vec<(NodeId, String)>),
    /// End the deployment; pending targets become `Skipped` when it is applied.
    Finish {
        /// True when the minimum-healthy-hosts rule was met.
        succeeded: bool,
        /// Why it failed; `None` on success.
        error: Option<ErrorInformation>,
    },
    /// Move a blue/green deployment on (see `blue_green.rs`).
    BlueGreen(BlueGreenStep),
}

impl Action {
    /// The command that carries this action for `deployment_id`.
    ///
    /// `rollback_id` is the id the leader drew for a rollback deployment; only a
    /// `Finish` uses it, and `apply` creates the rollback only when the deployment
    /// failed and its configuration asks for one (§7.1).
    pub fn into_command(self, deployment_id: &DeploymentId, rollback_id: Option<DeploymentId>) -> Command {
        let deployment_id = deployment_id.clone();
        match self {
            Self::Start(targets) => Command::StartTargets { deployment_id, targets },
            Self::FailTargets(targets) => Command::FailTargets { deployment_id, targets },
            Self::Finish { succeeded, error } => {
                Command::FinishDeployment(Finish { deployment_id, succeeded, error, rollback_id })
            }
            Self::BlueGreen(step) => Command::AdvanceBlueGreen { deployment_id, step },
        }
    }
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::deployment::ErrorCode;

    use super::*;

    #[test]
    fn each_action_becomes_its_command() {
        // One action of each kind for deployment d-1, with a rollback id offered:
        // asserts the matching command, and that only Finish carries the rollback id.
        let id = DeploymentId("d-AAAAAAAAA".into());
        let rollback = Some(DeploymentId("d-BBBBBBBBB".into()));
        let start = Action::Start(vec![NodeId(2)]).into_command(&id, rollback.clone());
        assert_eq!(start, Command::StartTargets { deployment_id: id.clone(), targets: vec![NodeId(2)] });
        let reason = (NodeId(3), "host lost".to_string());
        let fail = Action::FailTargets(vec![reason.clone()]).into_command(&id, rollback.clone());
        assert_eq!(fail, Command::FailTargets { deployment_id: id.clone(), targets: vec![reason] });
        let error = ErrorInformation { code: ErrorCode::Timeout, message: "late".into() };
        let finish = Action::Finish { succeeded: false, error: Some(error.clone()) };
        let expected =
            Finish { deployment_id: id.clone(), succeeded: false, error: Some(error), rollback_id: rollback.clone() };
        assert_eq!(finish.into_command(&id, rollback), Command::FinishDeployment(expected));
    }
}
