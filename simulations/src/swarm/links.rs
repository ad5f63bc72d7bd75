//! The bandwidth model: every node has one uplink and one downlink, and a piece moves
//! from an uploader to a requester only while both are free.
//!
//! Model: a work-conserving "busy until" pair. A transfer of B bytes from A to C
//! occupies A's uplink and C's downlink for `B / min(up, down)`; it starts as soon as
//! both are free, and the moment either frees, the model starts whatever waiting
//! transfer can use it (the uploader serves its queue by [`SendPriority`], then in
//! arrival order, skipping requesters whose downlink is busy; a freed downlink takes
//! the best such transfer among idle uploaders). Unlike reserving a slot at `max(up_free, down_free)`
//! when a request arrives, nothing is booked ahead, so a link never sits idle behind a
//! reservation that waits for the other end.
//!
//! Why not fair sharing: sharing a link among n flows at 1/n each moves the same bytes
//! per second but needs every flow's completion time recomputed whenever any flow on
//! either end starts or stops, which at a thousand nodes multiplies the event count
//! several times. The exclusive model is cheaper and, if anything, pessimistic: an
//! uploader whose queued requesters are all busy receiving stays idle, where fair
//! sharing would trickle data to them.

use fleetmesh_core::swarm::SendPriority;
use fleetmesh_state::model::revision::ChunkRef;

/// A piece on its way from an uploader to a requester.
#[derive(Clone, Debug)]
pub(crate) struct Transfer {
    /// Sending node (index).
    pub(crate) uploader: usize,
    /// Receiving node (index).
    pub(crate) requester: usize,
    /// Piece index.
    pub(crate) piece: usize,
    /// The chunks requested (the piece's missing ones).
    pub(crate) chunks: Vec<ChunkRef>,
    /// Sum of the chunks' lengths.
    pub(crate) bytes: u64,
    /// True when the uploader is byzantine and sends garbage.
    pub(crate) forged: bool,
    /// Service priority at the uploader: higher first, then arrival order.
    pub(crate) priority: SendPriority,
    /// Arrival order at the uploader, for FIFO service among equal priorities.
    sequence: u64,
}

impl Transfer {
    /// A transfer of `chunks` of `piece`.
    pub(crate) fn new(uploader: usize, requester: usize, piece: usize, chunks: Vec<ChunkRef>, forged: bool) -> Self {
        let bytes = chunks.iter().map(|chunk| u64::from(chunk.len())).sum();
        Self { uploader, requester, piece, chunks, bytes, forged, priority: SendPriority::completed(0), sequence: 0 }
    }
}

/// A transfer that just took both its links, and how long it holds them.
#[derive(Debug)]
pub(crate) struct Started {
    /// The transfer.
    pub(crate) transfer: Transfer,
    /// Virtual nanoseconds until its last byte leaves the uploader.
    pub(crate) duration_ns: u64,
}

/// Every node's uplink and downlink.
#[derive(Debug)]
pub(crate) struct Links {
    /// Bits per second of the slower end of any transfer (all nodes are alike).
    rate_bps: u64,
    uplink_busy: Vec<bool>,
    downlink_busy: Vec<bool>,
    /// Per uploader: accepted transfers not started, in arrival order. Bounded by the
    /// uploader's upload slots.
    queued: Vec<Vec<Transfer>>,
    /// Per requester: one entry per queued transfer of theirs, naming the uploader.
    waiting_at: Vec<Vec<usize>>,
    next_sequence: u64,
}

impl Links {
    /// `nodes` nodes, all with the given uplink and downlink rates.
    pub(crate) fn new(nodes: usize, uplink_bps: u64, downlink_bps: u64) -> Self {
        Self {
            rate_bps: uplink_bps.min(downlink_bps).max(1),
            uplink_busy: vec![false; nodes],
            downlink_busy: vec![false; nodes],
            queued: vec![Vec::new(); nodes],
            waiting_at: vec![Vec::new(); nodes],
            next_sequence: 0,
        }
    }

    /// Queues an accepted transfer; returns it started if both its links are free.
    pub(crate) fn enqueue(&mut self, mut transfer: Transfer) -> Option<Started> {
        transfer.sequence = self.next_sequence;
        self.next_sequence += 1;
        let uploader = transfer.uploader;
        self.waiting_at[transfer.requester].push(uploader);
        self.queued[uploader].push(transfer);
        self.start_at_uploader(uploader)
    }

    /// The transfer from `uploader` to `requester` sent its last byte: both links are
    /// free again. Returns the transfers that start on them now (at most two).
    pub(crate) fn finish(&mut self, uploader: usize, requester: usize) -> Vec<Started> {
        assert!(
            self.uplink_busy[uploader] && self.downlink_busy[requester],
            "finishing a transfer that was not running"
        );
        self.uplink_busy[uploader] = false;
        self.downlink_busy[requester] = false;
        self.start_at_uploader(uploader).into_iter().chain(self.start_for_requester(requester)).collect()
    }

    /// Transfers accepted but not started, over all uploaders.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queued.iter().map(Vec::len).sum()
    }

    /// If `uploader`'s uplink is free, starts its earliest queued transfer whose
    /// requester can receive.
    fn start_at_uploader(&mut self, uploader: usize) -> Option<Started> {
        if self.uplink_busy[uploader] {
            return None;
        }
        let position = self.queued[uploader]
            .iter()
            .enumerate()
            .filter(|(_, transfer)| !self.downlink_busy[transfer.requester])
            .max_by_key(|(_, transfer)| (transfer.priority, std::cmp::Reverse(transfer.sequence)))
            .map(|(position, _)| position)?;
        Some(self.start(uploader, position))
    }

    /// If `requester`'s downlink is free, starts the earliest-queued transfer to it
    /// among uploaders whose uplink is free.
    fn start_for_requester(&mut self, requester: usize) -> Option<Started> {
        if self.downlink_busy[requester] {
            return None;
        }
        let mut best: Option<((SendPriority, std::cmp::Reverse<u64>), usize, usize)> = None;
        for &uploader in &self.waiting_at[requester] {
            if self.uplink_busy[uploader] {
                continue;
            }
            for (position, transfer) in self.queued[uploader].iter().enumerate() {
                let key = (transfer.priority, std::cmp::Reverse(transfer.sequence));
                if transfer.requester == requester && best.is_none_or(|(best_key, _, _)| key > best_key) {
                    best = Some((key, uploader, position));
                }
            }
        }
        let (_, uploader, position) = best?;
        Some(self.start(uploader, position))
    }

    fn start(&mut self, uploader: usize, position: usize) -> Started {
        let transfer = self.queued[uploader].remove(position);
        let waiting = &mut self.waiting_at[transfer.requester];
        let entry =
            waiting.iter().position(|&at| at == uploader).expect("a queued transfer is listed at its requester");
        waiting.swap_remove(entry);
        self.uplink_busy[uploader] = true;
        self.downlink_busy[transfer.requester] = true;
        let duration_ns =
            u64::try_from((u128::from(transfer.bytes) * 8 * 1_000_000_000).div_ceil(u128::from(self.rate_bps)))
                .unwrap_or(u64::MAX);
        Started { transfer, duration_ns }
    }
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::ids::ChunkHash;

    use super::*;

    fn transfer(uploader: usize, requester: usize, bytes: u32) -> Transfer {
        Transfer::new(uploader, requester, 0, vec![ChunkRef(ChunkHash::of(b"c"), bytes)], false)
    }

    #[test]
    fn a_transfer_holds_both_ends_for_bytes_over_rate() {
        // 1 Gbit/s links, 125,000 bytes: 1 ms. A second transfer to the same requester
        // from another uploader waits for the requester's downlink, then starts as soon
        // as the first finishes; the uploader of the first is free for others meanwhile.
        let mut links = Links::new(4, 1_000_000_000, 1_000_000_000);
        let first = links.enqueue(transfer(0, 1, 125_000)).expect("both ends free");
        assert_eq!(first.duration_ns, 1_000_000);
        assert!(links.enqueue(transfer(2, 1, 125_000)).is_none(), "requester 1 is receiving");
        let to_three = links.enqueue(transfer(0, 3, 125_000));
        assert!(to_three.is_none(), "uploader 0 is sending");
        let started = links.finish(0, 1);
        let pairs: Vec<_> = started.iter().map(|s| (s.transfer.uploader, s.transfer.requester)).collect();
        assert_eq!(pairs, vec![(0, 3), (2, 1)]);
        assert_eq!(links.queued(), 0);
    }

    #[test]
    fn an_uploader_skips_requesters_that_are_busy_receiving() {
        // Uploader 0 has queued transfers to 1 (busy receiving from 2) and then to 3:
        // when 0 frees, it serves 3 first rather than idling behind 1.
        let mut links = Links::new(5, 1_000_000_000, 1_000_000_000);
        links.enqueue(transfer(0, 4, 1000)).expect("free");
        links.enqueue(transfer(2, 1, 1000)).expect("free");
        assert!(links.enqueue(transfer(0, 1, 1000)).is_none());
        assert!(links.enqueue(transfer(0, 3, 1000)).is_none());
        let started = links.finish(0, 4);
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].transfer.requester, 3);
        let started = links.finish(2, 1);
        assert!(started.is_empty(), "uploader 0 is now busy sending to 3");
        let started = links.finish(0, 3);
        assert_eq!(started[0].transfer.requester, 1);
    }
}
