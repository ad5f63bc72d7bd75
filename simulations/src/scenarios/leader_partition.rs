//! `leader-partition`: the leader is cut off from everyone; the majority elects a new
//! leader and keeps committing; the old leader cannot commit; after healing there is
//! one leader and all logs agree.

use std::time::Duration;

use fleetmesh_node::runtime::ProposeError;
use fleetmesh_state::model::resources::ComputePlatform;
use fleetmesh_state::{Command, Outcome};
use fleetmesh_transport::NodeId;
use serde_json::json;

use super::{ScenarioError, ScenarioOutcome};
use crate::cluster::{SimCluster, SimConfig};
use crate::invariants::{acknowledged_writes, logs_agree, Verdicts, Violation};

fn create(name: &str) -> Command {
    Command::CreateApplication {
        name: name.to_string(),
        application_id: name.to_string(),
        compute_platform: ComputePlatform::Server,
    }
}

/// The write proposed on the partitioned leader, which must be refused.
const REFUSED_WRITE: &str = "during-partition";

/// Why a write the scenario proposed on a leader was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The command committed with another outcome than `Done`.
    #[error("{0:?}")]
    Outcome(Outcome),
    /// The proposal failed.
    #[error("{0}")]
    Propose(ProposeError),
}

async fn write(cluster: &SimCluster, leader: NodeId, name: &str) -> Result<(), WriteError> {
    match cluster.node(leader).propose_one(create(name)).await {
        Ok(Outcome::Done) => Ok(()),
        Ok(other) => Err(WriteError::Outcome(other)),
        Err(error) => Err(WriteError::Propose(error)),
    }
}

fn current_term(cluster: &SimCluster, id: NodeId) -> u64 {
    cluster.node(id).raft().metrics().borrow().current_term
}

/// Runs the scenario.
///
/// # Errors
/// The cluster could not even form (a setup failure, not an invariant verdict).
pub async fn run(config: SimConfig) -> Result<ScenarioOutcome, ScenarioError> {
    let start = tokio::time::Instant::now();
    let mut verdicts = Verdicts::default();
    let cluster = SimCluster::start(config).await?;
    let old = cluster.leader().ok_or(ScenarioError::NoLeaderAfterFormation)?;
    let term_before = current_term(&cluster, old);
    let mut acknowledged = Vec::new();
    for index in 0..20 {
        let name = format!("before-{index}");
        write(&cluster, old, &name).await.map_err(ScenarioError::WriteBeforePartition)?;
        acknowledged.push(name);
    }

    let failover = cut_off_leader(&cluster, old, &mut acknowledged, &mut verdicts).await?;
    let leader_after = heal(&cluster, &acknowledged, &mut verdicts).await;
    let term_after = leader_after.map_or(0, |leader| current_term(&cluster, leader));

    let mut outcome = ScenarioOutcome::of_cluster(verdicts, start, &cluster);
    outcome.figures.insert("leader_before".into(), json!(old));
    outcome.figures.insert("leader_after".into(), json!(leader_after));
    outcome.figures.insert("term_before".into(), json!(term_before));
    outcome.figures.insert("term_after".into(), json!(term_after));
    outcome.figures.insert("failover_ms".into(), json!(failover.as_millis() as u64));
    outcome.figures.insert("acknowledged_writes".into(), json!(acknowledged.len()));
    cluster.shutdown().await;
    Ok(outcome)
}

/// The safety phase: cuts leader `old` off, checks that the majority elects a new
/// leader that commits (its writes join `acknowledged`) while `old` commits nothing.
/// Returns the failover time.
///
/// # Errors
/// The task proposing on the cut-off leader did not finish.
async fn cut_off_leader(
    cluster: &SimCluster,
    old: NodeId,
    acknowledged: &mut Vec<String>,
    verdicts: &mut Verdicts,
) -> Result<Duration, ScenarioError> {
    let everyone = cluster.all();
    cluster.trace.note(&format!("partition leader {old}"));
    cluster.net.partition(&[old], &everyone);
    let partitioned_at = tokio::time::Instant::now();
    let applied_before = cluster.node(old).state().applied_index();
    let old_node = cluster.node(old);
    let stale_write = tokio::spawn(async move { old_node.propose_one(create(REFUSED_WRITE)).await });
    let new_leader = cluster
        .wait_for("a new leader in the majority", Duration::from_secs(15), |cluster| {
            cluster.leaders().iter().any(|(_, id)| *id != old)
        })
        .await;
    let failover = partitioned_at.elapsed();
    verdicts.record("majority_elects_new_leader", new_leader.map_err(|error| Violation::new(error.to_string())));
    let new = cluster.leaders().into_iter().filter(|(_, id)| *id != old).max().map(|(_, id)| id);
    if let Some(new) = new {
        write_on_new_leader(cluster, new, acknowledged, verdicts).await;
    }
    let stale = stale_write.await.map_err(ScenarioError::StaleWriteTask)?;
    let old_refused = match stale {
        Err(ProposeError::NoQuorum(_)) | Err(ProposeError::NotLeader { .. }) => Ok(()),
        other => Err(Violation::new(format!("the partitioned leader's write returned {other:?}"))),
    };
    verdicts.record("old_leader_cannot_commit", old_refused);
    let applied_during = cluster.node(old).state().applied_index();
    verdicts.record(
        "old_leader_cannot_commit",
        if applied_during == applied_before {
            Ok(())
        } else {
            Err(Violation::new(format!("old leader applied {applied_before} → {applied_during} while cut off")))
        },
    );
    Ok(failover)
}

/// Ten writes on the majority's new leader `new` (the `majority_commits` verdict).
async fn write_on_new_leader(
    cluster: &SimCluster,
    new: NodeId,
    acknowledged: &mut Vec<String>,
    verdicts: &mut Verdicts,
) {
    for index in 0..10 {
        let name = format!("after-{index}");
        match write(cluster, new, &name).await {
            Ok(()) => acknowledged.push(name),
            Err(error) => verdicts
                .record("majority_commits", Err(Violation::new(format!("write on new leader {new} failed: {error}")))),
        }
    }
    verdicts.record("majority_commits", Ok(()));
}

/// The liveness phase: heals the network, waits for one leader and equal logs, and
/// checks the voters' logs and the acknowledged writes. Returns the leader after.
async fn heal(cluster: &SimCluster, acknowledged: &[String], verdicts: &mut Verdicts) -> Option<NodeId> {
    cluster.trace.note("heal");
    cluster.net.heal();
    let converged = cluster
        .wait_for("one leader and equal logs", Duration::from_secs(30), |cluster| {
            let Some(leader) = cluster.leader() else { return false };
            let node = cluster.node(leader);
            let target = node.state().applied_index();
            let voters: Vec<NodeId> = node.voters().into_iter().collect();
            cluster.leaders().len() == 1
                && voters.iter().all(|voter| cluster.node(*voter).state().applied_index() == target)
        })
        .await;
    verdicts.record("one_leader_after_heal", converged.map_err(|error| Violation::new(error.to_string())));
    let leader_after = cluster.leader();
    let voters: Vec<NodeId> =
        leader_after.map(|leader| cluster.node(leader).voters().into_iter().collect()).unwrap_or_default();
    verdicts.record("logs_agree", logs_agree::check(&cluster.voter_logs(&voters).await));
    let refused = [REFUSED_WRITE.to_string()];
    let durable = voters.iter().try_for_each(|voter| {
        cluster.node(*voter).state().read(|state| acknowledged_writes::check(*voter, state, acknowledged, &refused))
    });
    verdicts.record("acknowledged_writes_durable", durable);
    verdicts.record("single_leader_per_term", cluster.single_leader_verdict());
    cluster.check_event_logs().await;
    cluster.with_observer(|observer| {
        verdicts.record("events_per_transition", observer.monitor.events.verdict());
        verdicts.record("trigger_cursors_behind_delivery", observer.monitor.trigger_cursors.verdict());
    });
    leader_after
}
