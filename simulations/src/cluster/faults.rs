//! The fault verbs: partitions (symmetric and one-way), clogged links, clock skew, and
//! the hosts' hook failures, hangs and corrupt peers. Crash and restart live beside
//! the boot code (`boot.rs`). Every verb is noted in the trace, so a replay
//! shows when each fault struck.

use std::time::Duration;

use fleetmesh_transport::NodeId;

use super::{ClusterError, SimCluster};
use crate::host::faults::HookFault;

impl SimCluster {
    /// Cuts both directions between every node of `side` and every other node.
    pub fn partition(&self, side: &[NodeId]) {
        self.trace.note(&format!("partition {side:?} from the rest"));
        self.net.partition(side, &self.all());
    }

    /// Cuts one direction: nodes of `side` can no longer reach the others, while the
    /// others still reach them.
    pub fn partition_one_way(&self, side: &[NodeId]) {
        self.trace.note(&format!("partition {side:?} one way: they cannot send to the rest"));
        self.net.partition_one_way(side, &self.all());
    }

    /// Cuts the link from `from` to `to` only.
    pub fn cut_one_way(&self, from: NodeId, to: NodeId) {
        self.trace.note(&format!("cut {from} -> {to}"));
        self.net.cut_one_way(from, to);
    }

    /// Delays every message from `from` to `to` by `delay` more.
    pub fn clog(&self, from: NodeId, to: NodeId, delay: Duration) {
        self.trace.note(&format!("clog {from} -> {to} by {delay:?}"));
        self.net.clog(from, to, delay);
    }

    /// Removes every cut and clog.
    pub fn heal(&self) {
        self.trace.note("heal the network");
        self.net.heal();
    }

    /// Shifts node `id`'s wall clock by `skew_ms` (kept across its restarts).
    pub fn skew_clock(&mut self, id: NodeId, skew_ms: i64) {
        self.trace.note(&format!("skew node {id}'s clock by {skew_ms} ms"));
        if let Some(durable) = self.durable_mut(id) {
            durable.skew_ms = skew_ms;
        }
        if let Some(clock) = self.clocks.get(&id) {
            clock.set_skew(skew_ms);
        }
    }

    /// Makes lifecycle event `event` fail (or hang, then time out) on host `id`, in
    /// every deployment, until [`SimCluster::clear_host_faults`].
    pub fn fault_hook(&self, id: NodeId, event: &str, fault: HookFault) {
        self.trace.note(&format!("host {id}: {event} will {fault:?}"));
        self.world.update_faults(|faults| {
            faults.hooks.insert(id, (event.to_string(), fault));
        });
    }

    /// Makes node `id` serve corrupt contents for every chunk it is asked for.
    pub fn corrupt_peer(&self, id: NodeId) {
        self.trace.note(&format!("node {id} serves corrupt chunks"));
        self.world.update_faults(|faults| {
            faults.corrupt_peers.insert(id);
        });
    }

    /// Makes node `id` advertise every piece and answer every piece request with an
    /// error.
    pub fn withholding_peer(&self, id: NodeId) {
        self.trace.note(&format!("node {id} withholds pieces"));
        self.world.update_faults(|faults| {
            faults.withholding_peers.insert(id);
        });
    }

    /// Makes node `id` send pieces at a hundredth of the bandwidth.
    pub fn slow_peer(&self, id: NodeId) {
        self.trace.note(&format!("node {id} sends slowly"));
        self.world.update_faults(|faults| {
            faults.slow_peers.insert(id);
        });
    }

    /// Removes every hook fault and lying peer.
    pub fn clear_host_faults(&self) {
        self.trace.note("clear the host faults");
        self.world.update_faults(|faults| *faults = Default::default());
    }

    /// Heals the network, clears every host fault and clock skew, and restarts every
    /// crashed node: the start of a liveness phase.
    ///
    /// # Errors
    /// A node could not restart.
    pub async fn heal_everything(&mut self) -> Result<(), ClusterError> {
        self.heal();
        self.clear_host_faults();
        for id in self.all() {
            let skewed = self.durable.get(&id).is_some_and(|durable| durable.skew_ms != 0);
            if skewed {
                self.skew_clock(id, 0);
            }
        }
        let running = self.running_ids();
        for id in self.all().into_iter().filter(|id| !running.contains(id)) {
            self.restart(id).await?;
        }
        Ok(())
    }
}
