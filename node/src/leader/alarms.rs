//! Alarm gates: while this node leads, every running deployment with an active
//! `alarmConfiguration` has its alarms polled every [`POLL_EVERY`]; an alarm that fires,
//! or one that cannot be read unless `ignorePollAlarmFailure` is set, stops the
//! deployment with `ALARM_ACTIVE` ([`Command::StopOnAlarm`]) and starts its rollback when
//! its `autoRollbackConfiguration` has `DEPLOYMENT_STOP_ON_ALARM`.
//!
//! Each round reads every alarm through the [`AlarmProbe`] of its kind ([`Probes`]):
//! Prometheus query alarms through Prometheus's query API over HTTP, CloudWatch alarms by
//! name through one `DescribeAlarms` for all of them, as the group's `serviceRoleArn` when
//! set. The decision ([`verdict`]) is plain code tested on its own.
//!
//! ```text
//! every POLL_EVERY ─▶ Probes::read(alarms, role) ─┬─▶ PrometheusProbe (one query per alarm)
//!                                                 └─▶ CloudWatchProbe (one DescribeAlarms)
//!                  ─▶ verdict(configuration, readings) ─▶ Command::StopOnAlarm or wait
//! ```

pub mod cloudwatch;
pub mod prometheus;

use std::sync::Arc;
use std::time::Duration;

use fleetmesh_state::model::alarms::{Alarm, AlarmConfiguration};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::model::resources::AutoRollbackEvent;
use fleetmesh_state::{Command, Outcome};
use fleetmesh_transport::BoxFuture;
use tracing::{info, warn};

use super::shift::Role;
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

/// Reads alarms of one kind: Prometheus's query API, CloudWatch's `DescribeAlarms`, or a
/// stand-in.
pub trait AlarmProbe: Send + Sync {
    /// The state of each of `alarms` now, one answer per alarm in their order; AWS calls
    /// run as `role` (the group's `serviceRoleArn`) when set.
    fn read(&self, alarms: Vec<Alarm>, role: Role) -> BoxFuture<'static, Vec<Result<Reading, PollError>>>;
}

/// The probe of each kind of alarm.
#[derive(Clone)]
pub struct Probes {
    /// Alarms with a `prometheus` member.
    pub prometheus: Arc<dyn AlarmProbe>,
    /// Alarms by name alone: CloudWatch's.
    pub cloudwatch: Arc<dyn AlarmProbe>,
}

impl Probes {
    /// Prometheus over HTTP and CloudWatch over AWS JSON.
    pub fn real() -> Self {
        Self {
            prometheus: Arc::new(prometheus::PrometheusProbe::default()),
            cloudwatch: Arc::new(cloudwatch::CloudWatchProbe::default()),
        }
    }

    /// Reads every one of `alarms` with the probe of its kind, both kinds at once:
    /// `(name, answer)` in the order of `alarms`. A kind with no alarms is not asked.
    pub async fn read(&self, alarms: &[Alarm], role: Role) -> Vec<(String, Result<Reading, PollError>)> {
        let (prometheus, cloudwatch): (Vec<Alarm>, Vec<Alarm>) =
            alarms.iter().cloned().partition(|alarm| alarm.prometheus.is_some());
        let ask = |probe: &Arc<dyn AlarmProbe>, alarms: Vec<Alarm>| {
            let asked = (!alarms.is_empty()).then(|| probe.read(alarms, role.clone()));
            async move {
                match asked {
                    Some(answers) => answers.await,
                    None => Vec::new(),
                }
            }
        };
        let (prometheus, cloudwatch) =
            tokio::join!(ask(&self.prometheus, prometheus), ask(&self.cloudwatch, cloudwatch));
        let (mut prometheus, mut cloudwatch) = (prometheus.into_iter(), cloudwatch.into_iter());
        let answered = alarms.iter().map(|alarm| {
            let answer = if alarm.prometheus.is_some() { prometheus.next() } else { cloudwatch.next() };
            let missing = || Err(PollError(format!("alarm {}: the probe gave no answer", alarm.name)));
            (alarm.name.clone(), answer.unwrap_or_else(missing))
        });
        answered.collect()
    }
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
pub async fn run(node: Arc<Node>, probes: Probes) {
    let worker_node = node.clone();
    let work = move |id| watch(worker_node.clone(), probes.clone(), id);
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
async fn watch(node: Arc<Node>, probes: Probes, id: DeploymentId) {
    loop {
        let running = node.state().read(|state| {
            let deployment = state.deployments.get(&id).filter(|deployment| !deployment.status.is_terminal())?;
            let rolls_back =
                deployment.auto_rollback_configuration.triggers_on(AutoRollbackEvent::DeploymentStopOnAlarm);
            let role = state
                .deployment_group(&deployment.application_name, &deployment.deployment_group_name)
                .and_then(|group| group.service_role_arn.clone());
            Some((deployment.alarm_configuration.clone()?, rolls_back, role))
        });
        let Some((configuration, rolls_back, role)) = running else { return };
        let readings = probes.read(&configuration.alarms, role).await;
        count_polls(&node, &configuration, &readings);
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

/// Counts one round's polls in `/metrics` (`fleetmesh_alarm_polls_total`).
fn count_polls(node: &Node, configuration: &AlarmConfiguration, readings: &[(String, Result<Reading, PollError>)]) {
    for (alarm, (_, reading)) in configuration.alarms.iter().zip(readings) {
        let kind = if alarm.prometheus.is_some() { "prometheus" } else { "cloudwatch" };
        let result = match reading {
            Ok(reading) if reading.firing => "firing",
            Ok(_) => "ok",
            Err(_) => "failed",
        };
        node.duty_metrics().alarm_poll(kind, result);
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
