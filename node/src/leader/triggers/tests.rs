//! Delivery retries: a failing receiver is tried again with growing waits, and given up
//! after [`ATTEMPTS`] tries so its trigger moves on.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use fleetmesh_state::model::triggers::TriggerEventType;
use fleetmesh_transport::BoxFuture;

use super::{send_with_retries, Delivery, DeliveryError, TriggerSink, ATTEMPTS};

/// Refuses the first `failures` tries, then accepts.
struct Flaky {
    failures: u32,
    tries: Arc<AtomicU32>,
}

impl TriggerSink for Flaky {
    fn deliver(&self, _: Delivery) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let attempt = self.tries.fetch_add(1, Ordering::SeqCst) + 1;
        let refuse = attempt <= self.failures;
        Box::pin(async move {
            if refuse {
                Err(DeliveryError::Status(503))
            } else {
                Ok(())
            }
        })
    }
}

fn delivery() -> Delivery {
    Delivery {
        target: "http://127.0.0.1:1/".into(),
        event_id: 7,
        kind: TriggerEventType::DeploymentStart,
        trigger_name: "t".into(),
        body: b"{}".to_vec(),
        secret: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_receiver_is_retried_with_backoff_then_given_up() {
    let tries = Arc::new(AtomicU32::new(0));
    let started = tokio::time::Instant::now();
    send_with_retries(&Flaky { failures: 2, tries: tries.clone() }, delivery()).await;
    assert_eq!(tries.load(Ordering::SeqCst), 3, "two refusals, then accepted");
    assert_eq!(started.elapsed().as_secs(), 3, "waits of 1 s and 2 s");

    let tries = Arc::new(AtomicU32::new(0));
    let started = tokio::time::Instant::now();
    send_with_retries(&Flaky { failures: u32::MAX, tries: tries.clone() }, delivery()).await;
    assert_eq!(tries.load(Ordering::SeqCst), ATTEMPTS);
    // 1 + 2 + 4 + 8 + 16 + 30 + 30 seconds between the eight tries.
    assert_eq!(started.elapsed().as_secs(), 91);
}
