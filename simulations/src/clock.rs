//! Simulated wall clocks: one virtual time base for the whole cluster, plus a per-node
//! skew the `skew_clock` fault sets.
//!
//! Durations and deadlines in the node code use tokio's paused clock directly; only
//! timestamps that end up in records (proposal times, lifecycle event times, the
//! planner's `now`) come through [`fleetmesh_node::runtime::clock::Clock`]. Those are what a
//! skewed host clock would corrupt, so that is where the skew applies. The base is
//! shared and created once per run: a restarted node keeps reading the same virtual
//! wall time instead of starting again at the epoch.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use fleetmesh_node::runtime::clock::{Clock, VirtualClock};
use fleetmesh_state::model::ids::UnixMillis;

/// One node's wall clock: the shared virtual base plus this node's skew.
#[derive(Debug)]
pub struct SkewedClock {
    base: VirtualClock,
    skew_ms: AtomicI64,
}

impl SkewedClock {
    /// A clock reading `base` shifted by `skew_ms` (negative: behind).
    pub fn new(base: VirtualClock, skew_ms: i64) -> Arc<Self> {
        Arc::new(Self { base, skew_ms: AtomicI64::new(skew_ms) })
    }

    /// Changes the skew from now on.
    pub fn set_skew(&self, skew_ms: i64) {
        self.skew_ms.store(skew_ms, Ordering::Relaxed);
    }
}

impl Clock for SkewedClock {
    fn now(&self) -> UnixMillis {
        let base = self.base.now().0;
        UnixMillis(base.saturating_add_signed(self.skew_ms.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn skew_shifts_the_reading_and_time_still_advances() {
        // A clock at epoch 1000 skewed by −300 ms, then by +500 ms after 2 s of virtual
        // time: asserts each reading is the base plus the skew in force.
        let clock = SkewedClock::new(VirtualClock::new(UnixMillis(1000)), -300);
        assert_eq!(clock.now(), UnixMillis(700));
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        clock.set_skew(500);
        assert_eq!(clock.now(), UnixMillis(3500));
    }
}
