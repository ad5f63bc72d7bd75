//! Delivery retries: a failing receiver is tried again with growing waits, and given up
//! after [`ATTEMPTS`] tries so its trigger moves on. Dispatch: each target goes to the
//! sink of its kind.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use fleetmesh_state::model::triggers::TriggerEventType;
use fleetmesh_transport::BoxFuture;

use crate::runtime::duty_metrics::DutyMetrics;

use super::{send_with_retries, ByTarget, Delivery, DeliveryError, TriggerSink, ATTEMPTS};

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
        subject: "CREATED: AWS CodeDeploy d-1 in us-east-1 to app".into(),
        role_arn: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_receiver_is_retried_with_backoff_then_given_up() {
    let metrics = DutyMetrics::default();
    let counted = |result: &str| {
        let labels = [("target", "webhook".to_string()), ("result", result.to_string())];
        metrics.trigger_deliveries.get(&labels).map_or(0, |counter| counter.get())
    };
    let tries = Arc::new(AtomicU32::new(0));
    let started = tokio::time::Instant::now();
    send_with_retries(&Flaky { failures: 2, tries: tries.clone() }, delivery(), &metrics).await;
    assert_eq!(tries.load(Ordering::SeqCst), 3, "two refusals, then accepted");
    assert_eq!(started.elapsed().as_secs(), 3, "waits of 1 s and 2 s");
    assert_eq!((counted("failed"), counted("delivered")), (2, 1));

    let tries = Arc::new(AtomicU32::new(0));
    let started = tokio::time::Instant::now();
    send_with_retries(&Flaky { failures: u32::MAX, tries: tries.clone() }, delivery(), &metrics).await;
    assert_eq!(tries.load(Ordering::SeqCst), ATTEMPTS);
    // 1 + 2 + 4 + 8 + 16 + 30 + 30 seconds between the eight tries.
    assert_eq!(started.elapsed().as_secs(), 91);
    assert_eq!((counted("failed"), counted("undeliverable")), (2 + u64::from(ATTEMPTS) - 1, 1));
}

/// Counts what it is given and accepts it.
#[derive(Default)]
struct Counting {
    targets: std::sync::Mutex<Vec<String>>,
}

impl TriggerSink for Counting {
    fn deliver(&self, delivery: Delivery) -> BoxFuture<'static, Result<(), DeliveryError>> {
        self.targets.lock().expect("not poisoned").push(delivery.target);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn webhook_urls_and_sns_topic_arns_go_to_their_own_sinks() {
    let (webhook, sns) = (Arc::new(Counting::default()), Arc::new(Counting::default()));
    let sink = ByTarget { webhook: webhook.clone(), sns: sns.clone() };
    let topic = "arn:aws:sns:eu-west-2:123456789012:deploys";
    for target in ["https://hooks.example/x", topic, "http://127.0.0.1:9/y"] {
        sink.deliver(Delivery { target: target.into(), ..delivery() }).await.expect("accepted");
    }
    let unknown = sink.deliver(Delivery { target: "ftp://x/y".into(), ..delivery() }).await;
    assert!(matches!(unknown, Err(DeliveryError::UnknownTarget)), "{unknown:?}");
    assert_eq!(*webhook.targets.lock().expect("not poisoned"), ["https://hooks.example/x", "http://127.0.0.1:9/y"]);
    assert_eq!(*sns.targets.lock().expect("not poisoned"), [topic]);
}
