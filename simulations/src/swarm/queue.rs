//! Virtual time: the ordered queue of future events and the trace of past ones.
//!
//! The swarm scenario is a discrete-event simulation on virtual nanoseconds, not tokio
//! timers: a thousand nodes moving a gibibyte is a few million events, which a queue
//! processes in seconds, while a timer per transfer on a runtime would be far slower.
//! Events with the same time run in insertion order (a sequence number breaks ties), so
//! a run is a pure function of its seed; the [`Trace`] hashes every event processed so
//! two runs can be compared bit for bit.

use std::collections::BTreeMap;

/// Future events keyed by (virtual ns, insertion sequence).
#[derive(Debug)]
pub(crate) struct EventQueue<E> {
    pending: BTreeMap<(u64, u64), E>,
    next_sequence: u64,
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        Self { pending: BTreeMap::new(), next_sequence: 0 }
    }

    /// Schedules `event` at virtual time `at_ns`.
    pub(crate) fn push(&mut self, at_ns: u64, event: E) {
        self.pending.insert((at_ns, self.next_sequence), event);
        self.next_sequence += 1;
    }

    /// The earliest event and its time; among equal times, the first scheduled.
    pub(crate) fn pop(&mut self) -> Option<(u64, E)> {
        self.pending.pop_first().map(|((at_ns, _), event)| (at_ns, event))
    }
}

/// What kind of event a trace record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TraceKind {
    /// A request reached its uploader.
    Request = 1,
    /// An uploader finished sending a piece.
    Sent = 2,
    /// A response reached its requester.
    Response = 3,
    /// A node pulled its neighbours' have-sets.
    Pull = 4,
    /// A node woke at a back-off deadline.
    Wake = 5,
    /// A node received the announcement of a piece.
    Have = 6,
}

/// BLAKE3 over the ordered log of processed events.
#[derive(Debug)]
pub(crate) struct Trace {
    hasher: blake3::Hasher,
    events: u64,
}

impl Trace {
    /// An empty trace.
    pub(crate) fn new() -> Self {
        Self { hasher: blake3::Hasher::new(), events: 0 }
    }

    /// Appends one event: when, between whom, what, about which piece.
    pub(crate) fn record(&mut self, at_ns: u64, from: usize, to: usize, kind: TraceKind, piece: usize) {
        let mut record = [0u8; 25];
        record[..8].copy_from_slice(&at_ns.to_le_bytes());
        record[8..12].copy_from_slice(&(from as u32).to_le_bytes());
        record[12..16].copy_from_slice(&(to as u32).to_le_bytes());
        record[16] = kind as u8;
        record[17..25].copy_from_slice(&(piece as u64).to_le_bytes());
        self.hasher.update(&record);
        self.events += 1;
    }

    /// Events recorded.
    pub(crate) fn events(&self) -> u64 {
        self.events
    }

    /// The hash of the log so far, as hex.
    pub(crate) fn hash_hex(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_and_fifo_among_equal_times() {
        // Events at 5, 1, 5, 3 ns come out as 1, 3, then the two at 5 in the order
        // they were scheduled.
        let mut queue = EventQueue::new();
        for (at, name) in [(5, "a"), (1, "b"), (5, "c"), (3, "d")] {
            queue.push(at, name);
        }
        let order: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(order, vec![(1, "b"), (3, "d"), (5, "a"), (5, "c")]);
    }

    #[test]
    fn the_trace_hash_depends_on_every_field_and_on_order() {
        // Two traces of the same records agree; changing one field or swapping two
        // records changes the hash.
        let hash = |records: &[(u64, usize, usize, TraceKind, usize)]| {
            let mut trace = Trace::new();
            for &(at, from, to, kind, piece) in records {
                trace.record(at, from, to, kind, piece);
            }
            trace.hash_hex()
        };
        let base = [(1, 2, 3, TraceKind::Request, 4), (2, 3, 2, TraceKind::Sent, 4)];
        assert_eq!(hash(&base), hash(&base));
        assert_ne!(hash(&base), hash(&[(1, 2, 3, TraceKind::Request, 5), base[1]]));
        assert_ne!(hash(&base), hash(&[base[1], base[0]]));
    }
}
