//! Alarm gates: while this node leads, every running deployment with an active
//! `alarmConfiguration` has its alarms polled every [`POLL_EVERY`]; an alarm that fires,
//! or one that cannot be read unless `ignorePollAlarmFailure` is set, stops the
//! deployment with `ALARM_ACTIVE` ([`Command::StopOnAlarm`]) and starts its rollback when
//! its `autoRollbackConfiguration` has `DEPLOYMENT_STOP_ON_ALARM`.
//!
//! The poll runs through an [`AlarmProbe`] (Prometheus's query API over HTTP here), so
//! the decision ([`verdict`]) is plain code tested on its own.

pub mod prometheus;

use std::sync::Arc;
use std::time::Duration;

use fleetmesh_state::model::alarms::{Alarm, AlarmConfiguration};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::model::resources::AutoRollbackEvent;
use fleetmesh_state::{Command, Outcome};
use fleetmesh_transport::BoxFuture;
use tracing::{info, warn};

use crate::runtime::Node;

/// How often a running deployment's alarms are read.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// What one poll of one alarm found.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The alarm is on.
    pub firing: bool,
    /// What was read, in words (`value 12 > threshold 5`, `no data`).
    pub detail: String,
}

/// Why an alarm could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PollError(pub String);

/// Reads alarms: Prometheus's query API, or a stand-in.
pub trait AlarmProbe: Send + Sync {
    /// The state of `alarm` now.
    fn read(&self, alarm: &Alarm) -> BoxFuture<'static, Result<Reading, PollError>>;
}

/// Whether a deployment stops after one round of polls, and why: the first alarm that
/// fires; else, unless failures are ignored, the first that could not be read.
pub fn verdict(
    configuration: &AlarmConfiguration,
    readings: &[(String, Result<Reading, PollError>)],
) -> Option<String> {
    let firing = readings.iter().find_map(|(name, reading)| match reading {
        Ok(reading) if reading.firing => Some(format!("alarm {name} is on: {}", reading.detail)),
        _ => None,
    });
    firing.or_else(|| {
        if configuration.ignore_poll_alarm_failure {
            return None;
        }
        readings.iter().find_map(|(name, reading)| match reading {
            Err(error) => Some(format!("alarm {name} could not be read (ignorePollAlarmFailure is false): {error}")),
            Ok(_) => None,
        })
    })
}

/// The poller: runs on every node and acts only while the node leads.
pub async fn run(node: Arc<Node>, probe: Arc<dyn AlarmProbe>) {
    let worker_node = node.clone();
    let work = move |id| watch(worker_node.clone(), probe.clone(), id);
    super::keyed::per_key_while_leading(node, gated_deployments, work, None, |_| {}).await;
}

/// Running deployments with alarms to poll.
fn gated_deployments(node: &Node) -> Vec<DeploymentId> {
    node.state().read(|state| {
        state
            .active_deployments()
            .filter(|deployment| deployment.alarm_configuration.as_ref().is_some_and(AlarmConfiguration::is_active))
            .map(|deployment| deployment.deployment_id.clone())
            .collect()
    })
}

/// Polls deployment `id`'s alarms until it ends, is stopped here, or this node stops
/// leading (the task is aborted then).
async fn watch(node: Arc<Node>, probe: Arc<dyn AlarmProbe>, id: DeploymentId) {
    loop {
        let running = node.state().read(|state| {
            let deployment = state.deployments.get(&id).filter(|deployment| !deployment.status.is_terminal())?;
            let rolls_back =
                deployment.auto_rollback_configuration.triggers_on(AutoRollbackEvent::DeploymentStopOnAlarm);
            Some((deployment.alarm_configuration.clone()?, rolls_back))
        });
        let Some((configuration, rolls_back)) = running else { return };
        let mut readings = Vec::new();
        for alarm in &configuration.alarms {
            readings.push((alarm.name.clone(), probe.read(alarm).await));
        }
        if let Some(message) = verdict(&configuration, &readings) {
            stop(&node, &id, message, rolls_back).await;
            return;
        }
        for (name, reading) in &readings {
            if let Err(error) = reading {
                info!(deployment = %id, alarm = %name, %error, "alarm not read; ignorePollAlarmFailure lets the deployment go on");
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn stop(node: &Node, id: &DeploymentId, message: String, rolls_back: bool) {
    warn!(deployment = %id, %message, rollback = rolls_back, "stopping the deployment: ALARM_ACTIVE");
    let rollback_id = rolls_back.then(|| DeploymentId::from_random(node.random_bytes()));
    let command = Command::StopOnAlarm { deployment_id: id.clone(), rollback_id, message };
    match node.propose_one(command).await {
        Ok(Outcome::Rejected(error)) => info!(deployment = %id, %error, "the alarm stop was refused (it ended first)"),
        Ok(_) => {}
        // Leadership moved or no quorum: the next leader polls again and decides anew.
        Err(error) => warn!(deployment = %id, %error, "the alarm stop did not commit"),
    }
}

#[cfg(test)]
mod tests;
