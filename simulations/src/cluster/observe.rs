//! Observing the run: leader samples and the observer's rounds feed the continuous
//! invariants; the first violation is noted with the events that led to it; long runs
//! print their progress.

use std::time::Duration;

use super::{lock, SimCluster};
use crate::invariants::Violation;
use crate::observer::Observer;

/// Progress lines on stderr for long runs, when `FLEETMESH_SIM_PROGRESS` is set: virtual
/// and wall time once per [`PROGRESS_EVERY`] of virtual time, so a run stopped by a wall
/// time limit still says how fast it went. The wall clock is read only to be printed;
/// nothing in the run depends on it.
#[derive(Debug)]
pub(super) struct Progress {
    enabled: bool,
    next: tokio::time::Instant,
    virtual_start: tokio::time::Instant,
    wall_start: std::time::Instant,
}

/// Virtual time between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

impl Progress {
    pub(super) fn new() -> Self {
        let now = tokio::time::Instant::now();
        Self {
            enabled: std::env::var_os("FLEETMESH_SIM_PROGRESS").is_some(),
            next: now + PROGRESS_EVERY,
            virtual_start: now,
            wall_start: std::time::Instant::now(),
        }
    }

    pub(super) fn tick(&mut self, now: tokio::time::Instant, events: u64) {
        if !self.enabled || now < self.next {
            return;
        }
        self.next = now + PROGRESS_EVERY;
        let virtual_secs = (now - self.virtual_start).as_secs_f64();
        let wall_secs = self.wall_start.elapsed().as_secs_f64();
        eprintln!(
            "sim progress: {virtual_secs:.0} s virtual, {wall_secs:.1} s wall ({:.1}x), {events} events",
            virtual_secs / wall_secs.max(1e-9)
        );
    }
}

impl SimCluster {
    /// Samples who leads which term (the single-leader invariant).
    pub fn observe(&self) {
        let leaders = self.leaders();
        lock(&self.observer).monitor.single_leader.observe(&leaders);
        self.snapshot_on_violation();
    }

    /// On the first violation of a continuous invariant: notes it in the trace and keeps
    /// the events that led to it for the failure report.
    fn snapshot_on_violation(&self) {
        if lock(&self.violation_recent).is_some() {
            return;
        }
        let Some((name, reason)) = lock(&self.observer).monitor.first_violation() else { return };
        self.trace.note(&format!("invariant {name} violated: {reason}"));
        *lock(&self.violation_recent) = Some(self.trace.recent());
    }

    /// The events a failure report prints: those up to the first violation of a
    /// continuous invariant if there was one, else the last ones of the run.
    pub fn recent_events(&self) -> Vec<String> {
        lock(&self.violation_recent).clone().unwrap_or_else(|| self.trace.recent())
    }

    /// The single-leader-per-term verdict so far.
    pub fn single_leader_verdict(&self) -> Result<(), Violation> {
        lock(&self.observer).monitor.single_leader.verdict()
    }

    /// Feeds the observer every entry applied since the last round, and checks new
    /// installs and open deployments.
    pub async fn pump(&self) {
        let now = tokio::time::Instant::now();
        let applied = std::mem::take(&mut *lock(&self.applied));
        let deliveries = self.triggers.drain();
        let installs = self.world.drain_installs();
        let down = self.down.clone();
        let mut observer = lock(&self.observer);
        observer.set_down(down);
        observer.deliveries(&deliveries.tries, deliveries.marks);
        observer.ingest(applied, now, &self.host_disks);
        observer.check_round(installs, now);
        drop(observer);
        self.snapshot_on_violation();
        lock(&self.progress).tick(now, self.trace.events());
    }

    /// True once a monitor has halted the run (see [`crate::invariants::runaway`]).
    pub fn is_halted(&self) -> bool {
        lock(&self.observer).monitor.runaway.is_halted()
    }

    /// Runs `read` on the observer (its replayed state and monitor).
    pub fn with_observer<T>(&self, read: impl FnOnce(&mut Observer) -> T) -> T {
        read(&mut lock(&self.observer))
    }
}
