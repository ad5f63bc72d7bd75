//! A log filter for openraft's repeated errors: while a voter is down, openraft logs
//! every failed replication RPC (about ten a second) at ERROR. This lets each of its
//! ERROR call sites through once per [`QUIET_FOR`]; everything else passes untouched.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How long one openraft ERROR call site stays quiet after it logged.
pub(crate) const QUIET_FOR: Duration = Duration::from_secs(10);

/// The filter; add it to the subscriber with `.with(OpenraftErrorLimiter::default())`.
#[derive(Default)]
pub(crate) struct OpenraftErrorLimiter {
    /// When each limited call site last logged (a few dozen call sites at most).
    last: Mutex<HashMap<Identifier, Instant>>,
}

impl OpenraftErrorLimiter {
    fn limits(metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && *metadata.level() == Level::ERROR && metadata.target().starts_with("openraft")
    }
}

impl<S: Subscriber> Layer<S> for OpenraftErrorLimiter {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Limited call sites are asked about every event; the rest never.
        if Self::limits(metadata) {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _context: Context<'_, S>) -> bool {
        if !Self::limits(metadata) {
            return true;
        }
        let now = Instant::now();
        let Ok(mut last) = self.last.lock() else { return true };
        match last.get(&metadata.callsite()) {
            Some(logged) if now.duration_since(*logged) < QUIET_FOR => false,
            _ => {
                last.insert(metadata.callsite(), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Counts the events that reach it.
    struct Count(Arc<AtomicUsize>);

    impl<S: Subscriber> Layer<S> for Count {
        fn on_event(&self, _event: &tracing::Event<'_>, _context: Context<'_, S>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_repeated_openraft_error_logs_once_and_everything_else_always() {
        let seen = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(OpenraftErrorLimiter::default()).with(Count(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..20 {
                tracing::error!(target: "openraft::replication", "RPCError");
            }
            assert_eq!(seen.load(Ordering::Relaxed), 1, "one of twenty within the quiet time");
            for _ in 0..3 {
                tracing::error!(target: "fleetmesh_node::leader", "ours");
                tracing::warn!(target: "openraft::replication", "a warning");
            }
            assert_eq!(seen.load(Ordering::Relaxed), 7, "other targets and levels pass");
        });
    }
}
