//! Delays between retries of a request that keeps failing.
//!
//! When a leader goes away, every agent in the fleet loses it at the same moment. Retrying
//! every 250 ms, a fleet of 4,000 sends 16,000 requests a second to voters that are busy
//! electing. Doubling the delay up to a cap spreads that load, and a jitter drawn from
//! the node's id (not from an RNG) keeps the fleet out of lockstep while a simulation
//! with the same seed still replays exactly.

use std::time::Duration;

use fleetmesh_transport::NodeId;

/// Exponential backoff with a per-node jitter of up to a quarter of each delay.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    salt: u64,
    failures: u32,
}

impl Backoff {
    /// Delays for node `node`: `first` after the first failure, doubling to `max`.
    pub(crate) fn new(first: Duration, max: Duration, node: NodeId) -> Self {
        Self { first, max: max.max(first), salt: node.0, failures: 0 }
    }

    /// The pause before the next attempt; counts one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let doublings = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let base = self.first.saturating_mul(1 << doublings).min(self.max);
        let quarter = u64::try_from(base.as_nanos() / 4).unwrap_or(u64::MAX);
        let jitter = if quarter == 0 { 0 } else { mix(self.salt ^ u64::from(self.failures).rotate_left(32)) % quarter };
        base + Duration::from_nanos(jitter)
    }

    /// An attempt succeeded: the next failure starts again from `first`.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// SplitMix64's finalizer: a cheap, well-spread hash of one word.
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(2);

    #[test]
    fn delays_double_to_the_cap_with_at_most_a_quarter_of_jitter() {
        let mut backoff = Backoff::new(FIRST, MAX, NodeId(7));
        let bases = [250, 500, 1000, 2000, 2000, 2000];
        for base in bases {
            let base = Duration::from_millis(base);
            let delay = backoff.next_delay();
            assert!(delay >= base && delay <= base + base / 4, "{delay:?} for a base of {base:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() < FIRST + FIRST / 4);
    }

    #[test]
    fn nodes_draw_different_delays_and_each_draws_the_same_every_time() {
        let delays = |node: u64| {
            let mut backoff = Backoff::new(FIRST, MAX, NodeId(node));
            (0..5).map(|_| backoff.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays(3), delays(3));
        let distinct: std::collections::BTreeSet<Vec<Duration>> = (1..=50).map(delays).collect();
        assert!(distinct.len() > 45, "only {} distinct schedules among 50 nodes", distinct.len());
    }
}
