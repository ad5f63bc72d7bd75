//! The simulated network: every node's [`Transport`] is a handle on one shared router
//! that delivers messages after seeded latencies, drops them on partitions, loss or
//! crashed nodes, and hashes every delivery into the trace.
//!
//! Delivery uses tokio timers on a paused, single-threaded runtime, so virtual time
//! advances only when every task waits: the same seed replays the same schedule.
//!
//! A message's delay is its link's latency (uniform in `[latency_min, latency_max]`),
//! plus a reordering spike with probability `reorder`, plus any clog on the link, plus
//! its transmission time when the link has a bandwidth: each directed link sends one
//! message at a time, in order, so a large answer delays the ones queued behind it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetmesh_transport::{BoxFuture, Caller, Handler, Message, NodeId, Peer, Transport, TransportError};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::trace::Trace;

/// Link behaviour.
#[derive(Clone, Copy, Debug)]
pub struct LinkModel {
    /// Minimum one-way latency.
    pub latency_min: Duration,
    /// Maximum one-way latency (uniform between min and max).
    pub latency_max: Duration,
    /// Probability a message (request or answer) is lost.
    pub loss: f64,
    /// Probability a request is delivered twice (the duplicate's answer is dropped).
    pub duplication: f64,
    /// Probability a message is held back by an extra delay up to `reorder_delay_max`,
    /// so that later messages on the same link overtake it.
    pub reorder: f64,
    /// Longest extra delay of a reordered message.
    pub reorder_delay_max: Duration,
    /// Bytes per second each directed link carries; `None` for unlimited.
    pub bandwidth_bytes_per_sec: Option<u64>,
}

impl Default for LinkModel {
    fn default() -> Self {
        Self {
            latency_min: Duration::from_micros(200),
            latency_max: Duration::from_micros(2000),
            loss: 0.0,
            duplication: 0.0,
            reorder: 0.0,
            reorder_delay_max: Duration::from_millis(20),
            bandwidth_bytes_per_sec: None,
        }
    }
}

#[derive(Default)]
struct NetState {
    handlers: BTreeMap<NodeId, Arc<dyn Handler>>,
    down: BTreeSet<NodeId>,
    /// One-way cuts of single links: (from, to) drops messages from `from` to `to`.
    cuts: BTreeSet<(NodeId, NodeId)>,
    /// Partitions, kept as two sides rather than as one cut per link: a partition of
    /// half of N nodes is N²/2 links, 50 million at N = 10,000.
    partitions: Vec<Partition>,
    /// Extra latency on a link (clogging).
    clogs: BTreeMap<(NodeId, NodeId), Duration>,
    /// Bumped whenever a node crashes or restarts: an answer computed by an earlier
    /// incarnation is never delivered.
    incarnations: BTreeMap<NodeId, u64>,
    /// When each directed link finishes sending what is queued on it (bandwidth model).
    link_free_at: BTreeMap<(NodeId, NodeId), tokio::time::Instant>,
}

/// Nodes of `side` cannot send to nodes of `others`, and with `both_ways` not receive
/// from them either.
struct Partition {
    side: BTreeSet<NodeId>,
    others: BTreeSet<NodeId>,
    both_ways: bool,
}

impl Partition {
    fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        (self.side.contains(&from) && self.others.contains(&to))
            || (self.both_ways && self.others.contains(&from) && self.side.contains(&to))
    }
}

impl NetState {
    /// True when a cut or a partition drops messages from `from` to `to`.
    fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cuts.contains(&(from, to)) || self.partitions.iter().any(|partition| partition.blocks(from, to))
    }
}

/// The shared router.
pub struct SimNet {
    state: Mutex<NetState>,
    rng: Mutex<ChaCha8Rng>,
    model: LinkModel,
    trace: Arc<Trace>,
}

impl std::fmt::Debug for SimNet {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SimNet").finish_non_exhaustive()
    }
}

impl SimNet {
    /// A network whose randomness comes from `seed`.
    pub fn new(seed: u64, model: LinkModel, trace: Arc<Trace>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(NetState::default()),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x6e65_7477_6f72_6b00)),
            model,
            trace,
        })
    }

    fn with<T>(&self, update: impl FnOnce(&mut NetState) -> T) -> T {
        update(&mut self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The transport handle of node `id`.
    pub fn transport(self: &Arc<Self>, id: NodeId) -> Arc<dyn Transport> {
        Arc::new(SimTransport { me: id, net: self.clone() })
    }

    /// Attaches (or replaces, after a restart) node `id`'s handler and marks it up.
    pub fn attach(&self, id: NodeId, handler: Arc<dyn Handler>) {
        self.with(|state| {
            state.handlers.insert(id, handler);
            state.down.remove(&id);
            *state.incarnations.entry(id).or_default() += 1;
        });
    }

    /// Marks a node crashed: nothing reaches it or leaves it.
    pub fn crash(&self, id: NodeId) {
        self.with(|state| {
            state.down.insert(id);
            *state.incarnations.entry(id).or_default() += 1;
        });
    }

    /// True when a message from `from` to `to` would be delivered now (both up, no
    /// cut between them); loss is not considered. The simulated host agent asks
    /// before it fetches from a peer.
    pub fn reachable(&self, from: NodeId, to: NodeId) -> bool {
        self.with(|state| !state.down.contains(&from) && !state.down.contains(&to) && !state.is_cut(from, to))
    }

    /// Cuts both directions between every node of `side` and every other node of `all`.
    pub fn partition(&self, side: &[NodeId], all: &[NodeId]) {
        self.add_partition(side, all, true);
    }

    /// Cuts one direction: nodes of `side` can no longer send to the other nodes of
    /// `all`, which still reach them.
    pub fn partition_one_way(&self, side: &[NodeId], all: &[NodeId]) {
        self.add_partition(side, all, false);
    }

    fn add_partition(&self, side: &[NodeId], all: &[NodeId], both_ways: bool) {
        let side: BTreeSet<NodeId> = side.iter().copied().collect();
        let others = all.iter().copied().filter(|id| !side.contains(id)).collect();
        self.with(|state| state.partitions.push(Partition { side, others, both_ways }));
    }

    /// Cuts one direction only: `from` can no longer reach `to`.
    pub fn cut_one_way(&self, from: NodeId, to: NodeId) {
        self.with(|state| {
            state.cuts.insert((from, to));
        });
    }

    /// Adds `delay` to every message from `from` to `to`.
    pub fn clog(&self, from: NodeId, to: NodeId, delay: Duration) {
        self.with(|state| {
            state.clogs.insert((from, to), delay);
        });
    }

    /// Removes every cut and clog.
    pub fn heal(&self) {
        self.with(|state| {
            state.cuts.clear();
            state.partitions.clear();
            state.clogs.clear();
        });
    }

    /// The delay of a message of `len` bytes from `from` to `to` sent now.
    fn delay(&self, from: NodeId, to: NodeId, len: usize) -> Duration {
        let extra = self.with(|state| state.clogs.get(&(from, to)).copied().unwrap_or_default());
        let (min, max) = (self.model.latency_min.as_nanos() as u64, self.model.latency_max.as_nanos() as u64);
        let mut rng = self.rng_lock();
        let nanos = if max > min { rng.gen_range(min..=max) } else { min };
        let spike = if self.model.reorder > 0.0 && rng.gen_bool(self.model.reorder) {
            let spike_max = self.model.reorder_delay_max.as_nanos() as u64;
            Duration::from_nanos(rng.gen_range(0..=spike_max))
        } else {
            Duration::ZERO
        };
        drop(rng);
        let queued = self.model.bandwidth_bytes_per_sec.map_or(Duration::ZERO, |rate| {
            let sending = Duration::from_nanos((len as u128 * 1_000_000_000 / u128::from(rate.max(1))) as u64);
            let now = tokio::time::Instant::now();
            self.with(|state| {
                let free_at = state.link_free_at.entry((from, to)).or_insert(now);
                let start = (*free_at).max(now);
                *free_at = start + sending;
                *free_at - now
            })
        });
        Duration::from_nanos(nanos) + spike + extra + queued
    }

    fn incarnation(&self, id: NodeId) -> u64 {
        self.with(|state| state.incarnations.get(&id).copied().unwrap_or_default())
    }

    fn rng_lock(&self) -> std::sync::MutexGuard<'_, ChaCha8Rng> {
        self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lost(&self) -> bool {
        self.model.loss > 0.0 && self.rng_lock().gen_bool(self.model.loss)
    }

    fn duplicated(&self) -> bool {
        self.model.duplication > 0.0 && self.rng_lock().gen_bool(self.model.duplication)
    }

    /// True when a message from `from` to `to` would be delivered now.
    fn passes(&self, from: NodeId, to: NodeId) -> bool {
        self.with(|state| {
            !state.down.contains(&from)
                && !state.down.contains(&to)
                && !state.is_cut(from, to)
                && state.handlers.contains_key(&to)
        })
    }

    async fn deliver(self: Arc<Self>, from: NodeId, to: NodeId, message: Message) -> Option<Message> {
        let sender = self.incarnation(from);
        tokio::time::sleep(self.delay(from, to, message.wire_len())).await;
        if !self.passes(from, to) || self.lost() {
            return None;
        }
        self.trace.record(from, to, &message.header, message.wire_len());
        let handler = self.with(|state| state.handlers.get(&to).cloned())?;
        let receiver = self.incarnation(to);
        if self.duplicated() {
            // A duplicate delivery: handled, its answer dropped (as a retransmission would be).
            let copy = message.clone();
            let duplicate = handler.clone();
            tokio::spawn(async move {
                // The duplicate's answer, or its refusal, goes nowhere: the caller took the first.
                let _ = duplicate.handle(Caller::Node(from), copy).await;
            });
        }
        let answer = handler.handle(Caller::Node(from), message).await.ok()?;
        tokio::time::sleep(self.delay(to, from, answer.wire_len())).await;
        // An answer from a node that crashed meanwhile (even if it is back), or to a
        // caller that crashed, is never delivered: that incarnation is gone.
        if self.incarnation(to) != receiver || self.incarnation(from) != sender {
            return None;
        }
        if !self.passes(to, from) || self.lost() {
            return None;
        }
        self.trace.record(to, from, &answer.header, answer.wire_len());
        Some(answer)
    }
}

struct SimTransport {
    me: NodeId,
    net: Arc<SimNet>,
}

impl Transport for SimTransport {
    fn request(
        &self,
        peer: Peer,
        message: Message,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Message, TransportError>> {
        let net = self.net.clone();
        let me = self.me;
        Box::pin(async move {
            match tokio::time::timeout(timeout, net.deliver(me, peer.id, message)).await {
                Ok(Some(answer)) => Ok(answer),
                // A lost message looks like silence: the caller waits out its timeout,
                // as it would on a real network.
                Ok(None) => {
                    tokio::time::sleep(timeout).await;
                    Err(TransportError::Timeout { peer: peer.id, timeout })
                }
                Err(_) => Err(TransportError::Timeout { peer: peer.id, timeout }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u64]) -> Vec<NodeId> {
        list.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn partitions_cut_between_the_sides_only_and_heal_clears_them() {
        let net = SimNet::new(1, LinkModel::default(), Arc::new(Trace::new()));
        let all = ids(&[1, 2, 3, 4, 5]);
        let reach = |from: u64, to: u64| net.reachable(NodeId(from), NodeId(to));
        net.partition(&ids(&[1, 2]), &all);
        assert!(reach(1, 2) && reach(3, 4), "inside a side");
        assert!(!reach(1, 3) && !reach(3, 1) && !reach(2, 5) && !reach(5, 2), "across");
        // A node not started when the partition was made is on neither side.
        assert!(reach(1, 9) && reach(9, 1));
        net.heal();
        assert!(reach(1, 3) && reach(3, 1));
        net.partition_one_way(&ids(&[4]), &all);
        assert!(!reach(4, 1) && reach(1, 4), "one way: 4 cannot send, still receives");
        net.cut_one_way(NodeId(1), NodeId(2));
        assert!(!reach(1, 2) && reach(2, 1));
        net.heal();
        assert!(reach(4, 1) && reach(1, 2));
    }
}
