//! Wall-clock timestamps behind a trait.
//!
//! Durations and deadlines use `tokio::time::Instant` (which the simulator pauses and
//! advances); only timestamps that end up in records (create times, event times) need
//! the wall clock, and those come through [`Clock`] so the simulator can derive them
//! from virtual time.

use std::sync::Arc;

use fleetmesh_state::model::ids::UnixMillis;

/// A source of wall-clock timestamps.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> UnixMillis;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the real wall clock
    fn now(&self) -> UnixMillis {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        UnixMillis(since_epoch.as_millis() as u64)
    }
}

impl SystemClock {
    /// The wall clock, for code that runs before a node exists.
    pub fn now_for_boot(self) -> UnixMillis {
        self.now()
    }
}

/// Virtual wall time: a fixed epoch plus tokio's (possibly paused) elapsed time.
#[derive(Debug, Clone, Copy)]
pub struct VirtualClock {
    epoch: UnixMillis,
    start: tokio::time::Instant,
}

impl VirtualClock {
    /// A clock that reads `epoch` now and advances with tokio time.
    pub fn new(epoch: UnixMillis) -> Self {
        Self { epoch, start: tokio::time::Instant::now() }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> UnixMillis {
        UnixMillis(self.epoch.0 + self.start.elapsed().as_millis() as u64)
    }
}

/// The production clock, shared.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}
