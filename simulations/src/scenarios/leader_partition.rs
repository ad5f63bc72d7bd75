//! `leader-partition`: the leader is cut off from everyone; the majority elects a new
//! leader and keeps committing; the old leader cannot commit; after healing there is
//! one leader and all logs agree.

use std::time::Duration;

use fleetmesh_node::runtime::ProposeError;
use fleetmesh_state::model::resources::ComputePlatform;
use fleetmesh_state::{Command, Outcome};
use fleetmesh_transport::NodeId;
use serde_json::json;

use super::ScenarioOutcome;
use crate::cluster::{SimCluster, SimConfig};
use crate::invariants::{acknowledged_writes, logs_agree, Verdicts};

fn create(name: &str) -> Command {
    Command::CreateApplication {
        name: name.to_string(),
        application_id: name.to_string(),
        compute_platform: ComputePlatform::Server,
    }
}

async fn write(cluster: &SimCluster, leader: NodeId, name: &str) -> Result<(), String> {
    match cluster.node(leader).propose_one(create(name)).await {
        Ok(Outcome::Done) => Ok(()),
        Ok(other) => Err(format!("{other:?}")),
        Err(error) => Err(error.to_string()),
    }
}

/// Runs the scenario.
///
/// # Errors
/// The cluster could not even form (a setup failure, not an invariant verdict).
pub async fn run(config: SimConfig) -> anyhow::Result<ScenarioOutcome> {
    let start = tokio::time::Instant::now();
    let mut verdicts = Verdicts::default();
    let cluster = SimCluster::start(config).await?;
    let old = cluster.leader().ok_or_else(|| anyhow::anyhow!("no leader after formation"))?;
    let term_before = cluster.node(old).raft().metrics().borrow().current_term;
    let mut acknowledged = Vec::new();
    for index in 0..20 {
        let name = format!("before-{index}");
        write(&cluster, old, &name)
            .await
            .map_err(|error| anyhow::anyhow!("write before the partition failed: {error}"))?;
        acknowledged.push(name);
    }

    // Safety phase: cut the leader off.
    let everyone = cluster.all();
    cluster.trace.note(&format!("partition leader {old}"));
    cluster.net.partition(&[old], &everyone);
    let partitioned_at = tokio::time::Instant::now();
    let applied_before = cluster.node(old).state().applied_index();
    let old_node = cluster.node(old);
    let refused_name = "during-partition".to_string();
    let stale_write = tokio::spawn(async move { old_node.propose_one(create("during-partition")).await });
    let new_leader = cluster
        .wait_for("a new leader in the majority", Duration::from_secs(15), |cluster| {
            cluster.leaders().iter().any(|(_, id)| *id != old)
        })
        .await;
    let failover = partitioned_at.elapsed();
    verdicts.record("majority_elects_new_leader", new_leader.map_err(|error| error.to_string()));
    let new = cluster.leaders().into_iter().filter(|(_, id)| *id != old).max().map(|(_, id)| id);
    if let Some(new) = new {
        for index in 0..10 {
            let name = format!("after-{index}");
            match write(&cluster, new, &name).await {
                Ok(()) => acknowledged.push(name),
                Err(error) => {
                    verdicts.record("majority_commits", Err(format!("write on new leader {new} failed: {error}")))
                }
            }
        }
        verdicts.record("majority_commits", Ok(()));
    }
    let stale = stale_write.await.map_err(|error| anyhow::anyhow!("stale write task failed: {error}"))?;
    let old_refused = match stale {
        Err(ProposeError::NoQuorum(_)) | Err(ProposeError::NotLeader { .. }) => Ok(()),
        other => Err(format!("the partitioned leader's write returned {other:?}")),
    };
    verdicts.record("old_leader_cannot_commit", old_refused);
    let applied_during = cluster.node(old).state().applied_index();
    verdicts.record(
        "old_leader_cannot_commit",
        if applied_during == applied_before {
            Ok(())
        } else {
            Err(format!("old leader applied {applied_before} → {applied_during} while cut off"))
        },
    );

    // Liveness phase: heal and converge.
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
    verdicts.record("one_leader_after_heal", converged.map_err(|error| error.to_string()));
    let leader_after = cluster.leader();
    let voters: Vec<NodeId> =
        leader_after.map(|leader| cluster.node(leader).voters().into_iter().collect()).unwrap_or_default();
    verdicts.record("logs_agree", logs_agree::check(&cluster, &voters).await);
    verdicts.record(
        "acknowledged_writes_durable",
        acknowledged_writes::check(&cluster, &voters, &acknowledged, &[refused_name]),
    );
    verdicts.record("single_leader_per_term", cluster.single_leader_verdict());
    let term_after = leader_after.map_or(0, |leader| cluster.node(leader).raft().metrics().borrow().current_term);

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
