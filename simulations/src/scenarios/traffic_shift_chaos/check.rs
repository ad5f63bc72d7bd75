//! The checks at the end of a `traffic-shift-chaos` round: what the simulated Lambda
//! recorded against the round's plan and outcome.

use fleetmesh_aws::AliasRouting;
use fleetmesh_state::model::deployment::DeploymentStatus;
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::model::shift::{shift_weights, LambdaSpec};
use fleetmesh_state::model::traffic_routing::TrafficRoutingConfig;
use tokio::time::Instant;

use super::Figures;
use crate::cluster::SimCluster;
use crate::invariants::{Verdicts, Violation};

/// The round's verdicts; false when it did not end.
pub(super) fn check_round(
    cluster: &SimCluster,
    id: &DeploymentId,
    spec: &LambdaSpec,
    routing: TrafficRoutingConfig,
    changes_before: usize,
    verdicts: &mut Verdicts,
    figures: &mut Figures,
) -> bool {
    let (status, rollback_status) = cluster.with_observer(|observer| {
        let state = observer.shadow();
        let deployment = state.deployments.get(id);
        let rollback = deployment
            .and_then(|deployment| deployment.rollback_info.as_ref())
            .and_then(|info| info.rollback_deployment_id.as_ref())
            .and_then(|rollback| state.deployments.get(rollback))
            .map(|rollback| rollback.status);
        (deployment.map(|deployment| deployment.status), rollback)
    });
    let Some(status) = status.filter(|status| status.is_terminal()) else { return false };
    let (current, target) = (spec.current_version.to_string(), spec.target_version.to_string());
    let world = cluster.lambda.world();
    let changes: Vec<(Instant, AliasRouting)> = world.changes[changes_before..].to_vec();
    let alias = world.alias.clone();
    drop(world);
    let (weights, interval_ms) = shift_weights(routing.normalise().ok());
    let expected = match (status, rollback_status) {
        (DeploymentStatus::Succeeded, _) => {
            figures.succeeded += 1;
            AliasRouting::all_to(&target)
        }
        (_, Some(DeploymentStatus::Succeeded)) => {
            figures.rolled_back += 1;
            AliasRouting::all_to(&current)
        }
        (_, None) => {
            figures.unmoved += 1;
            AliasRouting::all_to(&current)
        }
        (_, Some(other)) => {
            verdicts.record(
                "shift_final_state_matches_outcome",
                Err(Violation::new(format!("the rollback of {id} ended {other:?}"))),
            );
            return true;
        }
    };
    verdicts.record(
        "shift_final_state_matches_outcome",
        if alias == expected {
            Ok(())
        } else {
            Err(Violation::new(format!("{id} ended {status:?} with the alias at {alias:?}, not {expected:?}")))
        },
    );
    verdicts.record("shift_weights_monotonic", monotonic(&changes, &current, &target, &weights));
    let mut last: Option<Instant> = None;
    figures.round_lateness_ms = 0;
    for (at, routing) in &changes {
        if routing.version == current && routing.additional.is_none() {
            break;
        }
        if let Some(previous) = last {
            let late = at.duration_since(previous).as_millis() as u64;
            figures.round_lateness_ms = figures.round_lateness_ms.max(late.saturating_sub(interval_ms));
            figures.max_lateness_ms = figures.max_lateness_ms.max(figures.round_lateness_ms);
        }
        last = Some(*at);
    }
    true
}

/// The round's changes: steps of the plan with a growing share, then at most one move
/// back to the current version, as the last change.
fn monotonic(
    changes: &[(Instant, AliasRouting)],
    current: &str,
    target: &str,
    weights: &[u32],
) -> Result<(), Violation> {
    let plan: Vec<AliasRouting> =
        weights.iter().map(|weight| AliasRouting::shifted(current, target, *weight)).collect();
    let mut next = 0;
    for (index, (_, routing)) in changes.iter().enumerate() {
        if *routing == AliasRouting::all_to(current) {
            if index + 1 != changes.len() {
                return Err(Violation::new(format!("the alias went back to {current} before the round's end")));
            }
            continue;
        }
        if plan.get(next) != Some(routing) {
            return Err(Violation::new(format!(
                "change {routing:?} is not step {next} of the plan {weights:?}: a step skipped, repeated or \
                 moved backwards"
            )));
        }
        next += 1;
    }
    Ok(())
}
