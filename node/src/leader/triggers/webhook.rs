//! The webhook client: a trigger's message POSTed as JSON, signed with HMAC-SHA256.
//!
//! Headers: `X-Fleetmesh-Event-Id` (the event's number: the same on a retry or a
//! redelivery after failover, so receivers can drop duplicates), `X-Fleetmesh-Event`
//! (CodeDeploy's event type), `X-Fleetmesh-Trigger` (the trigger's name) and
//! `X-Fleetmesh-Signature: sha256=<hex HMAC-SHA256 of the body>`. Any 2xx answer
//! accepts the delivery. HTTPS targets are checked against the system's roots
//! ([`fleetmesh_aws::outbound_agent`]).

use std::time::Duration;

use fleetmesh_transport::BoxFuture;

use super::{Delivery, DeliveryError, TriggerSink};

/// How long one try may take, connect to answer.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    format!("sha256={}", hex::encode(ring::hmac::sign(&key, body).as_ref()))
}

/// Sends deliveries over HTTP(S) with a blocking client on the blocking pool. The
/// client is made at the first delivery: most nodes never lead with a trigger set.
#[derive(Default)]
pub struct WebhookSink {
    agent: std::sync::OnceLock<ureq::Agent>,
}

impl WebhookSink {
    /// The client, made once ([`fleetmesh_aws::outbound_agent`]); redirects are not
    /// followed (a delivery goes where the trigger says).
    fn agent(&self) -> ureq::Agent {
        self.agent.get_or_init(|| fleetmesh_aws::outbound_agent(TRY_TIMEOUT, 0)).clone()
    }
}

impl TriggerSink for WebhookSink {
    fn deliver(&self, delivery: Delivery) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let agent = self.agent();
        Box::pin(async move {
            let sent = tokio::task::spawn_blocking(move || post(&agent, &delivery)).await;
            sent.map_err(|error| DeliveryError::Task(error.to_string()))?
        })
    }
}

fn post(agent: &ureq::Agent, delivery: &Delivery) -> Result<(), DeliveryError> {
    let mut request = agent
        .post(&delivery.target)
        .header("Content-Type", "application/json")
        .header("User-Agent", concat!("fleetmesh/", env!("CARGO_PKG_VERSION")))
        .header("X-Fleetmesh-Event-Id", &delivery.event_id.to_string())
        .header("X-Fleetmesh-Event", &format!("{:?}", delivery.kind))
        .header("X-Fleetmesh-Trigger", &delivery.trigger_name);
    if let Some(secret) = &delivery.secret {
        request = request.header("X-Fleetmesh-Signature", &signature(secret, &delivery.body));
    }
    let response = request.send(&delivery.body[..]).map_err(|error| DeliveryError::Transport(error.to_string()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Status(status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body_in_hex() {
        // RFC 4231 test case 2.
        let expected = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(signature(b"Jefe", b"what do ya want for nothing?"), expected);
    }
}
