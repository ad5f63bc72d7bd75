//! Trigger delivery: while this node leads, every trigger of every group sends the
//! events after its replicated cursor, one at a time and in order, and the cursor is
//! committed past each one delivered ([`Command::AdvanceTriggerCursor`]).
//!
//! A new leader starts from the committed cursors, so an event delivered by a leader
//! that died before committing is sent again with the same `X-Fleetmesh-Event-Id`:
//! delivery is at least once and in order per trigger. A receiver that keeps failing
//! does not hold its trigger forever: after [`ATTEMPTS`] tries over about two minutes
//! the event is logged as undeliverable and the trigger moves on.
//!
//! ```text
//!  state change / tick ──▶ run: one worker per trigger with a backlog
//!  worker: backlog[0] ──▶ message ──▶ sink ──retries──▶ propose cursor ──▶ next
//!                                      ├─ http(s) URL ──▶ webhook (signed POST)
//!                                      └─ SNS topic ARN ──▶ sns (Publish, as the group's role)
//! ```

pub mod sns;
pub mod webhook;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fleetmesh_model::trigger_message;
use fleetmesh_state::model::triggers::{
    is_sns_topic_arn, is_webhook_url, secret_seal_context, webhook_secret_label, TriggerCursor, TriggerEventType,
};
use fleetmesh_state::{ClusterState, Command, Outcome, TriggerKey, TriggerScan};
use fleetmesh_transport::BoxFuture;
use tracing::{info, warn};

use crate::runtime::ca_seal::Sealer;
use crate::runtime::duty_metrics::DutyMetrics;
use crate::runtime::Node;

/// Tries per event before it is given up.
pub const ATTEMPTS: u32 = 8;

/// The first retry's wait; each next one doubles, up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between tries.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How often the leader looks for work even when nothing changed.
const RESCAN: Duration = Duration::from_secs(1);

/// One message for one trigger's target.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The webhook URL or the SNS topic ARN.
    pub target: String,
    /// The event's number (`X-Fleetmesh-Event-Id`).
    pub event_id: u64,
    /// CodeDeploy's event type (`X-Fleetmesh-Event`).
    pub kind: TriggerEventType,
    /// The trigger's name.
    pub trigger_name: String,
    /// The JSON body.
    pub body: Vec<u8>,
    /// The HMAC key of `X-Fleetmesh-Signature`; none when no key could be had, and for
    /// an SNS target (SNS signs what it delivers itself).
    pub secret: Option<Vec<u8>>,
    /// The SNS subject line, CodeDeploy's ([`sns::subject`]); webhooks do not send it.
    pub subject: String,
    /// Whom an SNS target is published as: the group's `serviceRoleArn` (assumed through
    /// STS), or `None` for the leader's own credentials. Webhooks do not use it.
    pub role_arn: Option<String>,
}

/// Why a delivery was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver answered with a status other than 2xx.
    #[error("the webhook answered {0}")]
    Status(u16),
    /// No answer: connection, TLS or timeout.
    #[error("{0}")]
    Transport(String),
    /// The sending task ended abnormally.
    #[error("the delivery task failed: {0}")]
    Task(String),
    /// SNS refused the message or could not be reached (retried like any failure).
    #[error("SNS: {0}")]
    Aws(#[from] fleetmesh_aws::AwsError),
    /// The target is neither a webhook URL nor an SNS topic ARN (the state refuses such
    /// triggers; kept for a target written by a future release).
    #[error("the target is neither an http(s):// URL nor an SNS topic ARN")]
    UnknownTarget,
}

/// Where deliveries go: the webhook client, SNS, or a stand-in in tests.
pub trait TriggerSink: Send + Sync {
    /// Sends `delivery` once; an error says why it was not accepted.
    fn deliver(&self, delivery: Delivery) -> BoxFuture<'static, Result<(), DeliveryError>>;
}

/// The sink the leader runs with: each delivery goes to the sink of its target's kind,
/// webhook URLs to `webhook` and SNS topic ARNs to `sns`.
pub struct ByTarget {
    /// Takes `http://` and `https://` targets.
    pub webhook: Arc<dyn TriggerSink>,
    /// Takes `arn:…:sns:…` targets.
    pub sns: Arc<dyn TriggerSink>,
}

impl ByTarget {
    /// The production sinks: [`webhook::WebhookSink`] and [`sns::SnsSink`].
    pub fn production() -> Self {
        Self { webhook: Arc::new(webhook::WebhookSink::default()), sns: Arc::new(sns::SnsSink::default()) }
    }
}

impl TriggerSink for ByTarget {
    fn deliver(&self, delivery: Delivery) -> BoxFuture<'static, Result<(), DeliveryError>> {
        if is_webhook_url(&delivery.target) {
            self.webhook.deliver(delivery)
        } else if is_sns_topic_arn(&delivery.target) {
            self.sns.deliver(delivery)
        } else {
            Box::pin(async { Err(DeliveryError::UnknownTarget) })
        }
    }
}

/// The delivery task: runs on every node and acts only while the node leads; also
/// writes `DIR/webhook-secret` once the node can.
pub async fn run(node: Arc<Node>, sink: Arc<dyn TriggerSink>) {
    let mut secret_written = false;
    let worker_node = node.clone();
    let scan = Mutex::new(TriggerScan::default());
    super::keyed::per_key_while_leading(
        node,
        move |node| triggers_with_backlog(node, &scan),
        move |key| deliver_in_order(worker_node.clone(), sink.clone(), key),
        Some(RESCAN),
        move |node| {
            if !secret_written {
                secret_written = write_webhook_secret(node);
            }
        },
    )
    .await;
}

/// The triggers that have events to send now.
fn triggers_with_backlog(node: &Node, scan: &Mutex<TriggerScan>) -> Vec<TriggerKey> {
    let mut scan = scan.lock().unwrap_or_else(PoisonError::into_inner);
    node.state().read(|state| state.triggers_with_backlog(&mut scan))
}

/// What a worker does next for its trigger.
enum Next {
    /// Nothing left (or the trigger is gone).
    Done,
    /// Send this, then move the cursor to `event_id`.
    Send(Box<Delivery>),
    /// Events up to here are purged or have nothing to say (their deployment is gone):
    /// move the cursor without sending.
    Skip(u64),
}

/// Sends `key`'s backlog, oldest first, committing the cursor after each event; ends
/// when the backlog is empty or this node stops leading.
async fn deliver_in_order(node: Arc<Node>, sink: Arc<dyn TriggerSink>, key: TriggerKey) {
    let (application, group_id, trigger_name) = key;
    loop {
        // Taken before the state's lock: the sealer reads the state itself.
        let sealer = node.sealer().ok();
        let next =
            node.state().read(|state| next_delivery(sealer.as_ref(), state, &application, &group_id, &trigger_name));
        let through = match next {
            Next::Done => return,
            Next::Skip(through) => through,
            Next::Send(delivery) => {
                let through = delivery.event_id;
                send_with_retries(sink.as_ref(), *delivery, node.duty_metrics()).await;
                through
            }
        };
        let command = Command::AdvanceTriggerCursor(TriggerCursor {
            application_name: application.clone(),
            deployment_group_id: group_id.clone(),
            trigger_name: trigger_name.clone(),
            delivered_through: through,
        });
        match node.propose_one(command).await {
            Ok(Outcome::Rejected(error)) => {
                info!(trigger = %trigger_name, %error, "trigger cursor not moved; the trigger changed");
                return;
            }
            Ok(_) => {}
            // Not the leader any more, or no quorum: the next leader starts from the
            // committed cursor and sends this event again.
            Err(error) => {
                info!(trigger = %trigger_name, %error, "trigger cursor not committed; stopping this trigger's delivery");
                return;
            }
        }
    }
}

fn next_delivery(
    sealer: Option<&Sealer>,
    state: &ClusterState,
    application: &str,
    group_id: &str,
    trigger_name: &str,
) -> Next {
    let Some(group) = state
        .deployment_groups
        .get(application)
        .and_then(|groups| groups.values().find(|group| group.deployment_group_id == group_id))
    else {
        return Next::Done;
    };
    let Some(trigger) = group.triggers.iter().find(|trigger| trigger.config.trigger_name == trigger_name) else {
        return Next::Done;
    };
    let first = match state.trigger_backlog(group, trigger, 0) {
        Ok(mut backlog) => backlog.next(),
        Err(purged) => {
            warn!(trigger = trigger_name, %purged, "trigger events were purged before delivery; skipping them");
            return Next::Skip(purged.first_kept.saturating_sub(1));
        }
    };
    let Some((event, kind)) = first else { return Next::Done };
    let Some(message) = trigger_message(state, trigger_name, event, kind) else {
        return Next::Skip(event.id);
    };
    let secret = match (&trigger.config.sealed_secret, sealer) {
        _ if !trigger.config.is_webhook() => None,
        (Some(sealed), Some(sealer)) => sealer.open(sealed, &secret_seal_context(sealer.cluster_id())).ok(),
        (None, Some(sealer)) => Some(webhook_secret(sealer).into_bytes()),
        (_, None) => None,
    };
    let region =
        state.cluster.as_ref().map_or(fleetmesh_state::model::members::DEFAULT_AWS_REGION, |cluster| cluster.region());
    let subject = sns::subject(kind, &event.what.deployment_id.0, region, &event.what.application_name);
    Next::Send(Box::new(Delivery {
        target: trigger.config.trigger_target_arn.clone(),
        event_id: event.id,
        kind,
        trigger_name: trigger_name.to_string(),
        body: message.to_string().into_bytes(),
        secret,
        subject,
        role_arn: group.service_role_arn.clone(),
    }))
}

/// Sends `delivery` until it is accepted or [`ATTEMPTS`] tries failed.
async fn send_with_retries(sink: &dyn TriggerSink, delivery: Delivery, metrics: &DutyMetrics) {
    let kind = if is_sns_topic_arn(&delivery.target) { "sns" } else { "webhook" };
    let mut wait = BACKOFF_FIRST;
    for attempt in 1..=ATTEMPTS {
        match sink.deliver(delivery.clone()).await {
            Ok(()) => return metrics.trigger_delivery(kind, "delivered"),
            Err(error) if attempt == ATTEMPTS => {
                metrics.trigger_delivery(kind, "undeliverable");
                warn!(
                    trigger = %delivery.trigger_name, event = delivery.event_id, target = %delivery.target, %error,
                    "trigger event undeliverable after {ATTEMPTS} tries; moving on"
                );
            }
            Err(error) => {
                metrics.trigger_delivery(kind, "failed");
                info!(
                    trigger = %delivery.trigger_name, event = delivery.event_id, attempt, %error,
                    "trigger delivery failed; retrying in {wait:?}"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// The cluster's webhook secret (hex): what signs deliveries of triggers without a
/// secret of their own.
fn webhook_secret(sealer: &Sealer) -> String {
    hex::encode(sealer.derive(&webhook_secret_label(sealer.cluster_id())))
}

/// Writes the cluster's webhook secret to `DIR/webhook-secret` (mode 0600) once this
/// node holds the seal key and the cluster's id: what receivers of triggers without a
/// secret of their own verify signatures with. True once written (or nowhere to write).
fn write_webhook_secret(node: &Node) -> bool {
    let Some(dir) = node.settings().data_dir.clone() else { return true };
    let Ok(sealer) = node.sealer() else { return false };
    let secret = webhook_secret(&sealer);
    let path = dir.join("webhook-secret");
    if std::fs::read_to_string(&path).is_ok_and(|text| text.trim() == secret) {
        return true;
    }
    match crate::runtime::identity::write_private_file(&path, format!("{secret}\n").as_bytes()) {
        Ok(()) => true,
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot write the webhook secret");
            true
        }
    }
}

#[cfg(test)]
mod tests;
