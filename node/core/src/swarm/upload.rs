//! Upload slots: how many piece requests a node serves at once, and in what order.
//!
//! Every accepted request pins up to a piece (~1 MiB) of read buffer and a share of the
//! uplink until it is sent. [`UploadSlots`] bounds that: beyond
//! [`UPLOADS_IN_FLIGHT_MAX`] accepted requests (or [`UPLOADS_PER_REQUESTER_MAX`] from one
//! requester) the node answers `Busy` at once, and the requester backs off and asks
//! someone else. A busy answer costs one small message; a deep queue would cost memory
//! and make the requester's choice of source stale by the time it is served.
//!
//! Accepted requests are sent by [`SendPriority`], not first come first served: the
//! piece this node completed most recently goes first. In a swarm fed by one seed, the
//! freshest pieces are the rarest, and every hop a fresh piece waits behind requests
//! for old, plentiful ones delays every node that still needs it (measured at 200
//! nodes: the tail after the seed's last first copy fell from ~0.5 s to ~0.25 s).

use std::collections::BTreeMap;

use fleetmesh_state::NodeId;

use super::download::{InvariantViolation, REQUESTS_PER_PEER_MAX};

/// Requests a node accepts at once, queued and sending together.
///
/// 8: at ~8 ms per 1 MiB piece on 1 Gbit/s a full set is ~70 ms of uplink work, enough
/// that the uplink never idles while requesters refill (a round trip is ~1 ms), and
/// it bounds the buffers pinned by uploads to ~8 MiB per node.
pub const UPLOADS_IN_FLIGHT_MAX: usize = 8;

/// Requests an origin seed (the node that pushed the revision) accepts at once.
///
/// 16: the seed's uplink is the bottleneck of the whole distribution, so it must never
/// idle; more queued requests from more requesters make it likelier that one of them
/// can receive when the uplink frees. With [`super::SeedAdvertisement`] declining second
/// copies, a deeper queue no longer fills with duplicates (measured at 200 nodes: the
/// seed's first copies finished 2 % after the bound instead of 5 % with 8 slots).
pub const SEED_UPLOADS_IN_FLIGHT_MAX: usize = 16;

/// Requests accepted at once from a single requester: the download side's own
/// per-peer cap, so a well-behaved requester is never refused for that reason and a
/// greedy one cannot take every slot.
pub const UPLOADS_PER_REQUESTER_MAX: usize = REQUESTS_PER_PEER_MAX;

/// The order in which an uploader sends its accepted requests: higher first, and
/// first come first served among equals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendPriority(u64);

impl SendPriority {
    /// A piece served by an origin seed: its first copies are the freshest pieces of all.
    pub const ORIGIN: Self = Self(u64::MAX);

    /// A piece this node completed as its `rank`-th during the download (see
    /// [`super::Download::completion_rank`]); pieces held from the start have rank 0 and
    /// go last.
    pub fn completed(rank: u32) -> Self {
        Self(u64::from(rank))
    }
}

/// The answer to a piece request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadDecision {
    /// A slot was taken: serve the request, then call [`UploadSlots::release`].
    Accept,
    /// No slot: answer `Busy` without reading anything.
    Busy,
}

/// Bounded concurrent uploads of one node.
#[derive(Clone, Debug)]
pub struct UploadSlots {
    /// Total accepted requests allowed at once.
    in_flight_max: usize,
    /// Accepted requests allowed at once per requester.
    per_requester_max: usize,
    /// Accepted, not yet released, per requester; no zero entries.
    by_requester: BTreeMap<NodeId, usize>,
    /// Sum of `by_requester`.
    in_flight: usize,
}

impl Default for UploadSlots {
    fn default() -> Self {
        Self::new(UPLOADS_IN_FLIGHT_MAX, UPLOADS_PER_REQUESTER_MAX)
    }
}

impl UploadSlots {
    /// The slots of an origin seed: [`SEED_UPLOADS_IN_FLIGHT_MAX`] in total.
    pub fn for_origin_seed() -> Self {
        Self::new(SEED_UPLOADS_IN_FLIGHT_MAX, UPLOADS_PER_REQUESTER_MAX)
    }

    /// Slots with the given caps (each at least 1).
    pub fn new(in_flight_max: usize, per_requester_max: usize) -> Self {
        Self {
            in_flight_max: in_flight_max.max(1),
            per_requester_max: per_requester_max.max(1),
            by_requester: BTreeMap::new(),
            in_flight: 0,
        }
    }

    /// Takes a slot for a request from `requester`, or says `Busy`.
    pub fn try_acquire(&mut self, requester: NodeId) -> UploadDecision {
        let mine = self.by_requester.get(&requester).copied().unwrap_or(0);
        if self.in_flight >= self.in_flight_max || mine >= self.per_requester_max {
            return UploadDecision::Busy;
        }
        *self.by_requester.entry(requester).or_insert(0) += 1;
        self.in_flight += 1;
        UploadDecision::Accept
    }

    /// Gives back a slot taken for `requester` once its response is sent (or failed).
    /// A release without a matching acquire is ignored, so a duplicate completion from
    /// the shell cannot push the count below zero.
    pub fn release(&mut self, requester: NodeId) {
        if let Some(count) = self.by_requester.get_mut(&requester) {
            *count -= 1;
            self.in_flight -= 1;
            if *count == 0 {
                self.by_requester.remove(&requester);
            }
        }
    }

    /// Accepted requests not yet released.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Checks that the counts agree and respect the caps.
    ///
    /// # Errors
    /// A description of the first inconsistency.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let sum: usize = self.by_requester.values().sum();
        if sum != self.in_flight {
            return Err(InvariantViolation(format!(
                "upload slots: {} in flight but requesters hold {sum}",
                self.in_flight
            )));
        }
        if self.in_flight > self.in_flight_max {
            return Err(InvariantViolation(format!(
                "upload slots: {} in flight, cap {}",
                self.in_flight, self.in_flight_max
            )));
        }
        if let Some((requester, count)) =
            self.by_requester.iter().find(|(_, &count)| count == 0 || count > self.per_requester_max)
        {
            return Err(InvariantViolation(format!("upload slots: requester {requester} holds {count}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_beyond_the_total_and_per_requester_caps() {
        // Caps of 3 in total and 2 per requester: node 1 gets two slots then Busy,
        // node 2 gets the last slot, node 3 is refused until a slot is released.
        let mut slots = UploadSlots::new(3, 2);
        assert_eq!(slots.try_acquire(NodeId(1)), UploadDecision::Accept);
        assert_eq!(slots.try_acquire(NodeId(1)), UploadDecision::Accept);
        assert_eq!(slots.try_acquire(NodeId(1)), UploadDecision::Busy);
        assert_eq!(slots.try_acquire(NodeId(2)), UploadDecision::Accept);
        assert_eq!(slots.try_acquire(NodeId(3)), UploadDecision::Busy);
        assert_eq!(slots.in_flight(), 3);
        slots.release(NodeId(1));
        assert_eq!(slots.try_acquire(NodeId(3)), UploadDecision::Accept);
        assert_eq!(slots.check_invariants(), Ok(()));
    }

    #[test]
    fn fresher_pieces_are_sent_first_and_the_origin_before_all() {
        // Ranks order sends: the 9th completed piece before the 2nd, both before pieces
        // held from the start, and an origin seed's pieces before everything.
        let mut order =
            [SendPriority::completed(2), SendPriority::ORIGIN, SendPriority::completed(0), SendPriority::completed(9)];
        order.sort_by(|a, b| b.cmp(a));
        assert_eq!(
            order,
            [SendPriority::ORIGIN, SendPriority::completed(9), SendPriority::completed(2), SendPriority::completed(0)]
        );
        assert_eq!(UploadSlots::for_origin_seed().in_flight_max, SEED_UPLOADS_IN_FLIGHT_MAX);
    }

    #[test]
    fn a_stray_release_changes_nothing() {
        // Releasing for a requester that holds no slot leaves the counts intact.
        let mut slots = UploadSlots::default();
        assert_eq!(slots.try_acquire(NodeId(7)), UploadDecision::Accept);
        slots.release(NodeId(8));
        assert_eq!(slots.in_flight(), 1);
        slots.release(NodeId(7));
        slots.release(NodeId(7));
        assert_eq!(slots.in_flight(), 0);
        assert_eq!(slots.check_invariants(), Ok(()));
    }
}
