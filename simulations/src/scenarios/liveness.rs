//! The liveness phase shared by the deployment scenarios: faults stop (network healed,
//! host faults cleared, clocks fixed, every node restarted), every deployment must end
//! within its deadline, the group must converge, and the final safety checks run on
//! the voters' logs.

use std::time::Duration;

use fleetmesh_state::model::deployment::DeploymentStatus;
use fleetmesh_transport::NodeId;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use super::app::{self, App};
use super::ScenarioError;
use crate::cluster::{ClusterError, SimCluster};
use crate::invariants::{convergence, logs_agree, Verdicts, Violation};

/// How long the group must stay without a running deployment before it counts as
/// settled (the rollout engine deploys to outdated hosts within a tick or two of the
/// group going idle and of those hosts answering again).
const SETTLE_QUIET: Duration = Duration::from_secs(10);

/// What the liveness phase measured.
#[derive(Debug, Default)]
pub struct LivenessReport {
    /// Hosts that did not run the group's revision before the operator's redeploy
    /// because their last attempt at it failed.
    pub exempt_hosts: Vec<NodeId>,
    /// Status of the operator's redeploy, if one ran.
    pub redeploy: Option<DeploymentStatus>,
    /// Virtual time the phase took.
    pub phase: Duration,
}

/// Waits until no deployment has run for [`SETTLE_QUIET`] (the leader has heard from
/// every restarted host by then), for at most `timeout`.
///
/// # Errors
/// The group did not settle within `timeout`.
pub async fn wait_settled(cluster: &SimCluster, timeout: Duration) -> Result<(), ClusterError> {
    let mut quiet_since: Option<Instant> = None;
    cluster
        .wait_for("the group to settle", timeout, |cluster| {
            if app::all_ended(cluster) {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                since.elapsed() >= SETTLE_QUIET
            } else {
                quiet_since = None;
                false
            }
        })
        .await
}

/// Runs the liveness phase and records its verdicts.
///
/// # Errors
/// A node could not restart (a setup failure, not a verdict).
pub async fn run(
    cluster: &mut SimCluster,
    app: &App,
    rng: &mut ChaCha8Rng,
    verdicts: &mut Verdicts,
) -> Result<LivenessReport, ScenarioError> {
    let started = Instant::now();
    let mut report = LivenessReport::default();
    cluster.trace.note("liveness phase: faults stop");
    cluster.heal_everything().await?;
    let limit = super::rolling_chaos::deployment_limit(cluster);
    let ended = wait_settled(cluster, limit).await;
    cluster.with_observer(|observer| {
        let shadow = observer.shadow().clone();
        observer.monitor.deadline.final_check(&shadow);
    });
    if let Err(error) = ended {
        verdicts.record("group_converges", Err(Violation::new(format!("the group never settled: {error}"))));
    } else {
        let live = cluster.running();
        let settled =
            cluster.with_observer(|observer| convergence::check(observer.shadow(), &live, cluster.host_disks(), true));
        match settled {
            Ok(exempt) => report.exempt_hosts = exempt,
            Err(problem) => {
                verdicts.record("group_converges", Err(Violation::new(format!("after settling: {problem}"))))
            }
        }
        let target = cluster.with_observer(|observer| {
            observer.shadow().deployment_group(&app.application, &app.group).and_then(|group| group.target_revision)
        });
        if let Some(revision) = target {
            let redeploy = app.deploy(cluster, rng, revision, Duration::from_secs(60)).await?;
            let done = cluster
                .wait_for("the operator's redeploy", limit, |cluster| {
                    app::status(cluster, &redeploy).is_some_and(DeploymentStatus::is_terminal)
                })
                .await;
            report.redeploy = app::status(cluster, &redeploy);
            let succeeded = report.redeploy == Some(DeploymentStatus::Succeeded);
            verdicts.record(
                "group_converges",
                if done.is_ok() && succeeded {
                    Ok(())
                } else {
                    Err(Violation::new(format!(
                        "the fault-free redeploy {redeploy} of {revision} ended {:?}",
                        report.redeploy
                    )))
                },
            );
            let live = cluster.running();
            let strict = cluster
                .with_observer(|observer| convergence::check(observer.shadow(), &live, cluster.host_disks(), false));
            verdicts.record(
                "group_converges",
                strict.map(|_| ()).map_err(|problem| Violation::new(format!("after the redeploy: {problem}"))),
            );
        } else {
            verdicts.record("group_converges", Ok(()));
        }
    }
    final_checks(cluster, verdicts).await;
    report.phase = started.elapsed();
    Ok(report)
}

/// Waits for the voters to catch up, then checks their logs and the end-of-run
/// invariants, and records every continuous verdict.
pub async fn final_checks(cluster: &SimCluster, verdicts: &mut Verdicts) {
    let caught_up = cluster
        .wait_for("voters to apply everything", Duration::from_secs(60), |cluster| {
            let Some(leader) = cluster.leader() else { return false };
            let node = cluster.node(leader);
            let applied = node.state().applied_index();
            cluster.leaders().len() == 1
                && node.voters().iter().all(|voter| {
                    cluster.running().contains(voter) && cluster.node(*voter).state().applied_index() == applied
                })
        })
        .await;
    verdicts.record("voters_catch_up", caught_up.map_err(|error| Violation::new(error.to_string())));
    cluster.pump().await;
    let voters: Vec<NodeId> = cluster
        .leader()
        .map(|leader| {
            cluster.node(leader).voters().into_iter().filter(|voter| cluster.running().contains(voter)).collect()
        })
        .unwrap_or_default();
    let logs = cluster.voter_logs(&voters).await;
    verdicts.record("logs_agree", logs_agree::check(&logs));
    cluster.check_event_logs().await;
    cluster.with_observer(|observer| {
        observer.monitor.committed.final_check(&logs);
        observer.final_check();
        observer.monitor.installs.final_check();
    });
    cluster.with_observer(|observer| observer.monitor.record(verdicts));
}
