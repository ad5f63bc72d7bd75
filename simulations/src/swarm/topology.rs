//! Who knows whom: each node's neighbour list, as the leader would hand it out.
//!
//! In the real cluster the leader gives every target of a deployment a peer list (the
//! revision's seeds plus a random sample of other targets), and a node asks for more
//! when its download says so ([`fleetmesh_core::swarm::Download::wanted_peers_hint`]).
//! The simulation builds the same thing: a random graph where every receiver has about
//! `degree` neighbours, links are symmetric (a connection carries requests both ways),
//! and the seed is either in every receiver's list or just a neighbour like any other.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Index of the seed (node 1).
pub(crate) const SEED: usize = 0;

/// Symmetric neighbour lists for `nodes` nodes, sorted, as close to `degree`
/// neighbours each as possible (a near-regular random graph). Equal list sizes matter:
/// a node's download capacity is roughly its share of its neighbours' uplinks, so in a
/// graph where degrees vary (measured: 14 to 30 around a mean of 20) the least
/// connected nodes finish last, up to half a second behind the median at 1000 nodes.
/// The seed is then added to every list (`seed_in_every_view`) or gets `degree` random
/// partners of its own.
pub(crate) fn neighbour_lists(
    nodes: usize,
    degree: usize,
    seed_in_every_view: bool,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let mut lists: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); nodes];
    let degree_max = degree.min(nodes.saturating_sub(2));
    let mut order: Vec<usize> = (1..nodes).collect();
    order.shuffle(rng);
    for &node in &order {
        // Bounded: each attempt either adds a link or hits a full or known partner; the
        // cap leaves a few nodes a link or two short rather than spinning at the end.
        for _ in 0..degree_max * 16 {
            if lists[node].len() >= degree_max {
                break;
            }
            let partner = rng.gen_range(1..nodes);
            if partner != node && lists[partner].len() < degree_max && lists[node].insert(partner) {
                lists[partner].insert(node);
            }
        }
    }
    if seed_in_every_view {
        for node in 1..nodes {
            lists[node].insert(SEED);
            lists[SEED].insert(node);
        }
    } else {
        let mut candidates: Vec<usize> = (1..nodes).collect();
        candidates.shuffle(rng);
        for &node in candidates.iter().take(degree) {
            lists[node].insert(SEED);
            lists[SEED].insert(node);
        }
    }
    lists.into_iter().map(|list| list.into_iter().collect()).collect()
}

/// A random node that `node` does not list yet and is not in `refused`, as the leader
/// would add to a peer list on request; `None` when there is none.
pub(crate) fn fresh_neighbour(
    node: usize,
    known: &[usize],
    refused: impl Fn(usize) -> bool,
    nodes: usize,
    rng: &mut ChaCha8Rng,
) -> Option<usize> {
    let start = rng.gen_range(0..nodes);
    (0..nodes)
        .map(|offset| (start + offset) % nodes)
        .find(|&candidate| candidate != node && known.binary_search(&candidate).is_err() && !refused(candidate))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn lists_are_symmetric_and_nearly_regular() {
        // 1000 nodes, degree 20, seed as an ordinary neighbour: every link appears in
        // both lists, no node lists itself, every receiver has 20 or 21 neighbours (21
        // with the seed) except at most a few left a few links short, and the seed has 20.
        let lists = neighbour_lists(1000, 20, false, &mut ChaCha8Rng::seed_from_u64(1));
        for (node, list) in lists.iter().enumerate() {
            assert!(!list.contains(&node));
            for &other in list {
                assert!(lists[other].contains(&node), "{node} -> {other} is one-way");
            }
        }
        let short = lists.iter().skip(1).filter(|list| list.len() < 20).count();
        assert!(short <= 5, "{short} nodes below 20 neighbours");
        assert!(lists.iter().skip(1).all(|list| (16..=21).contains(&list.len())));
        assert_eq!(lists[SEED].len(), 20);
    }

    #[test]
    fn small_swarms_are_complete_and_the_seed_can_be_in_every_view() {
        // 5 nodes with degree 20: every node knows every other; with the seed in every
        // view, node 0 lists all 4 others.
        let lists = neighbour_lists(5, 20, true, &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(lists[SEED], vec![1, 2, 3, 4]);
        assert!(lists.iter().skip(1).all(|list| list.len() == 4));
        let extra = fresh_neighbour(1, &lists[1], |_| false, 5, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(extra, None, "node 1 already knows everyone");
    }
}
