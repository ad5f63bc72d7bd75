//! The simulator's trigger receiver: what every leader's real trigger duty delivers to
//! instead of webhooks and SNS (through `Leader::start_with_trigger_sink`). Nothing
//! leaves the process.
//!
//! Each try takes 1–30 ms of virtual time, then is accepted or refused (a 503); a
//! refusal is drawn from the seed ([`REFUSE_RATE`]), but never more than
//! [`REFUSALS_IN_A_ROW_MAX`] times in a row for one node, trigger and event, so a leader
//! retries (its backoff is 1 s, 2 s, 4 s) and never gives an event up
//! ([`fleetmesh_node::leader::triggers::ATTEMPTS`] tries). Every try that gets its
//! answer is recorded as a [`DeliveryTry`] with the node's term when it
//! made the try; a try whose leader is killed before the answer is not (the receiver
//! never answered it). The nodes' apply taps call [`SimTriggerSink::note_applied`], so
//! each entry carries how many tries had been made when it was first applied.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fleetmesh_node::leader::triggers::{Delivery, DeliveryError, TriggerSink, ATTEMPTS};
use fleetmesh_node::runtime::Node;
use fleetmesh_transport::{BoxFuture, NodeId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::invariants::trigger_cursors::DeliveryTry;

/// Probability that a try is refused (within [`REFUSALS_IN_A_ROW_MAX`]).
pub const REFUSE_RATE: f64 = 0.2;

/// Most refusals in a row of one node's tries of one event to one trigger.
pub const REFUSALS_IN_A_ROW_MAX: u32 = 3;

const _: () = assert!(REFUSALS_IN_A_ROW_MAX < ATTEMPTS, "a leader would give an event up");

/// What the sink holds and saw.
#[derive(Debug)]
struct SinkWorld {
    rng: ChaCha8Rng,
    /// The next try's place.
    next_seq: u64,
    /// Tries answered since the last [`SimTriggerSink::drain`].
    tries: Vec<DeliveryTry>,
    /// Refusals in a row per node, trigger name and event.
    refused_in_a_row: BTreeMap<(NodeId, String, u64), u32>,
    /// Per entry index: tries answered when a node first applied it (since the last drain).
    marks: BTreeMap<u64, u64>,
}

/// The receiver every node's trigger duty delivers to.
#[derive(Clone, Debug)]
pub struct SimTriggerSink {
    world: Arc<Mutex<SinkWorld>>,
}

/// What the observer takes each round: tries in order, and each entry's mark.
#[derive(Debug, Default)]
pub struct Drained {
    /// Tries answered since the last round, in order.
    pub tries: Vec<DeliveryTry>,
    /// Per entry index first applied since the last round: tries answered by then.
    pub marks: BTreeMap<u64, u64>,
}

impl SimTriggerSink {
    /// A receiver drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        let world = SinkWorld {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x7472_6967_6765_7273),
            next_seq: 0,
            tries: Vec::new(),
            refused_in_a_row: BTreeMap::new(),
            marks: BTreeMap::new(),
        };
        Self { world: Arc::new(Mutex::new(world)) }
    }

    /// The world, locked (every update is complete under the lock).
    fn world(&self) -> MutexGuard<'_, SinkWorld> {
        self.world.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The sink `node`'s trigger duty delivers to.
    pub fn for_node(&self, node: &Arc<Node>) -> Arc<dyn TriggerSink> {
        Arc::new(NodeSink { sink: self.clone(), node: Arc::downgrade(node) })
    }

    /// Notes that entry `index` was applied by some node now.
    pub fn note_applied(&self, index: u64) {
        let mut world = self.world();
        let answered = world.next_seq;
        world.marks.entry(index).or_insert(answered);
    }

    /// Takes the tries and marks recorded since the last call.
    pub fn drain(&self) -> Drained {
        let mut world = self.world();
        Drained { tries: std::mem::take(&mut world.tries), marks: std::mem::take(&mut world.marks) }
    }
}

/// One node's handle on the receiver: tries are recorded with its id and term.
struct NodeSink {
    sink: SimTriggerSink,
    node: std::sync::Weak<Node>,
}

impl TriggerSink for NodeSink {
    fn deliver(&self, delivery: Delivery) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let sink = self.sink.clone();
        let node = self.node.upgrade();
        let (id, term) = node.map_or((NodeId(0), 0), |node| (node.id(), node.term()));
        let (latency, refuse) = {
            let mut world = sink.world();
            let latency = Duration::from_millis(world.rng.gen_range(1..=30));
            let draw = world.rng.gen_bool(REFUSE_RATE);
            let key = (id, delivery.trigger_name.clone(), delivery.event_id);
            let in_a_row = world.refused_in_a_row.entry(key.clone()).or_default();
            let refuse = draw && *in_a_row < REFUSALS_IN_A_ROW_MAX;
            *in_a_row += 1;
            if !refuse {
                world.refused_in_a_row.remove(&key);
            }
            (latency, refuse)
        };
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            let mut world = sink.world();
            let seq = world.next_seq;
            world.next_seq += 1;
            world.tries.push(DeliveryTry {
                seq,
                node: id,
                term,
                trigger: delivery.trigger_name,
                target: delivery.target,
                event_id: delivery.event_id,
                kind: delivery.kind,
                accepted: !refuse,
            });
            match refuse {
                true => Err(DeliveryError::Status(503)),
                false => Ok(()),
            }
        })
    }
}
