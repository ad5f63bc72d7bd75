//! Super-seeding for the revisions this node received by a push (their origin seed).
//!
//! Right after a push, the origin is the only source, and its uplink bounds the whole
//! distribution: no node can finish before every piece has left the origin once. The
//! swarm core's [`SeedAdvertisement`] makes the origin advertise only the pieces it has
//! not handed out yet and decline requests for the others (answered `Busy`), so on a
//! LAN of N hosts the origin sends about one copy of the revision and the receivers
//! trade the rest among themselves (the swarm simulation measured 1.06 × S uploaded by
//! the seed at 1,000 nodes).
//!
//! A copy counts as sent when its request is accepted: the transport writes the answer
//! after the handler returns and reports no failure back, so a copy lost with a dying
//! receiver is not re-advertised at once. It is not lost for good either: once every
//! piece has gone out, the origin advertises (and serves) everything, like any seed,
//! and drops this state. The state is in memory only; after a restart the origin is
//! an ordinary seed.

use std::collections::BTreeMap;

use fleetmesh_core::swarm::{Bitfield, SeedAdvertisement};
use fleetmesh_state::model::ids::RevisionId;

/// What the origin does with a piece request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginDecision {
    /// Not an origin seed of this revision (or every piece is out): serve as usual.
    Ordinary,
    /// A first copy of this piece: serve it.
    FirstCopy,
    /// The piece already went out while others have not: answer `Busy`.
    Decline,
}

/// The super-seeding state of every revision this node is the origin of; part of the
/// service's core ([`super::book::Book`]), so plain data without a lock.
#[derive(Debug, Default)]
pub struct Origins {
    seeding: BTreeMap<RevisionId, SeedAdvertisement>,
}

impl Origins {
    /// Starts super-seeding `revision` (of `pieces` pieces), which this node just
    /// received by a push; a revision of one piece (or none) is served as usual.
    pub fn begin(&mut self, revision: RevisionId, pieces: usize) {
        if pieces > 1 {
            self.seeding.insert(revision, SeedAdvertisement::new(pieces));
        }
    }

    /// The origin's advertisement for `revision` while it super-seeds it.
    pub fn advertised(&self, revision: RevisionId) -> Option<&Bitfield> {
        self.seeding.get(&revision).map(SeedAdvertisement::advertised)
    }

    /// Decides a request for `piece` of `revision` and, for a first copy, counts it as
    /// sent. Ends super-seeding once every piece is out.
    pub fn decide(&mut self, revision: RevisionId, piece: usize) -> OriginDecision {
        let Some(advertisement) = self.seeding.get_mut(&revision) else {
            return OriginDecision::Ordinary;
        };
        if piece >= advertisement.advertised().len() {
            // Not a piece of this revision: the chunk lookup refuses it.
            return OriginDecision::Ordinary;
        }
        if !advertisement.accepts(piece) {
            return OriginDecision::Decline;
        }
        advertisement.sending(piece);
        if advertisement.unsent() == 0 {
            self.seeding.remove(&revision);
        }
        OriginDecision::FirstCopy
    }
}
