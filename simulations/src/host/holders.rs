//! Which simulated hosts hold each revision, and picking a peer among them.
//!
//! A host fetches every chunk from a peer drawn among the holders. Building the list of
//! usable holders for each chunk was O(holders) per chunk, O(fleet² × chunks) per
//! rollout: 12 % of a rolling-chaos run at 5,000 nodes. Holders are now kept in the order
//! they became holders, and a pick draws a few positions first; only when none of them
//! is usable does it scan the whole list, as every pick did before.

use std::collections::BTreeSet;

use fleetmesh_state::NodeId;

/// Positions drawn before a pick falls back to scanning every holder.
const PROBES: u64 = 8;

/// The holders of one revision.
#[derive(Debug, Default)]
pub struct Holders {
    set: BTreeSet<NodeId>,
    /// Each holder once, in the order it became one.
    order: Vec<NodeId>,
}

impl Holders {
    /// Adds `node` (again is a no-op).
    pub fn insert(&mut self, node: NodeId) {
        if self.set.insert(node) {
            self.order.push(node);
        }
    }

    /// A peer among the holders and `extra` for which `usable` is true, drawn with
    /// `draw(probe)` (a deterministic number per probe); `None` when there is none.
    ///
    /// Probes [`PROBES`] positions of holders followed by `extra` (an `extra` node that
    /// also holds is listed twice, which only weighs it double); then takes the first
    /// usable one from a position drawn once more, in the same list.
    pub fn pick(
        &self,
        extra: &BTreeSet<NodeId>,
        draw: impl Fn(u64) -> u64,
        usable: impl Fn(NodeId) -> bool,
    ) -> Option<NodeId> {
        let total = self.order.len() + extra.len();
        if total == 0 {
            return None;
        }
        let at = |index: usize| {
            self.order.get(index).copied().or_else(|| extra.iter().nth(index - self.order.len()).copied())
        };
        let start = |probe: u64| (draw(probe) % total as u64) as usize;
        if let Some(peer) = (0..PROBES).filter_map(|probe| at(start(probe))).find(|peer| usable(*peer)) {
            return Some(peer);
        }
        let from = start(PROBES);
        (0..total).filter_map(|offset| at((from + offset) % total)).find(|peer| usable(*peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holders(ids: impl IntoIterator<Item = u64>) -> Holders {
        let mut holders = Holders::default();
        for id in ids {
            holders.insert(NodeId(id));
        }
        holders
    }

    #[test]
    fn a_pick_is_usable_and_found_even_when_probes_miss() {
        // 1000 holders of which only node 777 is usable: the probes almost surely miss
        // it and the scan must still find it. Asserts every pick is usable, that no
        // holder means no pick, and that extra nodes can be picked.
        let many = holders(0..1000);
        let none = BTreeSet::new();
        for seed in 0..20u64 {
            let draw = |probe: u64| seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ probe.wrapping_mul(31);
            assert_eq!(many.pick(&none, draw, |peer| peer == NodeId(777)), Some(NodeId(777)));
            assert_eq!(many.pick(&none, draw, |_| false), None);
        }
        let extra: BTreeSet<NodeId> = [NodeId(5000)].into();
        assert_eq!(holders([]).pick(&extra, |probe| probe, |_| true), Some(NodeId(5000)));
        assert_eq!(holders([]).pick(&none, |probe| probe, |_| true), None);
    }

    #[test]
    fn picks_spread_over_the_usable_holders() {
        // Asserts that draws spread picks over many holders (not always the first
        // usable one), with every even node unusable.
        let many = holders(0..100);
        let picked: BTreeSet<NodeId> = (0..500u64)
            .filter_map(|seed| {
                let draw = |probe: u64| seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(probe as u32 + 7);
                many.pick(&BTreeSet::new(), draw, |peer| peer.0 % 2 == 1)
            })
            .collect();
        assert!(picked.iter().all(|peer| peer.0 % 2 == 1));
        assert!(picked.len() > 40, "{} distinct peers", picked.len());
    }

    #[test]
    fn a_holder_added_twice_is_listed_once() {
        let mut twice = holders([3, 3, 4]);
        twice.insert(NodeId(3));
        assert_eq!(twice.order, vec![NodeId(3), NodeId(4)]);
    }
}
