//! Which target a new connection tries first, and which next when a connect fails:
//! a pure function of the route's targets and one random number.

use fleetmesh_model::RouteTargetInfo;
use fleetmesh_state::model::routes::TrafficState;

/// Most targets one connection tries before it gives up (and the client sees the
/// connection closed): each failed try costs up to the connect timeout.
pub(super) const CONNECT_TRIES_MAX: usize = 4;

/// The order in which a new connection tries `targets`: first one chosen at random in
/// proportion to weight (`roll` is a uniform random number), then the other open ones
/// by weight, heaviest first (ties in list order). Only serving targets with a weight
/// above 0 and an address are open; at most [`CONNECT_TRIES_MAX`] indices.
pub(super) fn order(targets: &[RouteTargetInfo], roll: u64) -> Vec<usize> {
    let open: Vec<usize> = (0..targets.len()).filter(|index| is_open(&targets[*index])).collect();
    let total: u64 = open.iter().map(|index| u64::from(targets[*index].weight)).sum();
    if total == 0 {
        return Vec::new();
    }
    let mut point = roll % total;
    let mut first = open[0];
    for index in &open {
        let weight = u64::from(targets[*index].weight);
        if point < weight {
            first = *index;
            break;
        }
        point -= weight;
    }
    let mut rest: Vec<usize> = open.into_iter().filter(|index| *index != first).collect();
    // Stable: equal weights keep list order.
    rest.sort_by_key(|index| std::cmp::Reverse(targets[*index].weight));
    let mut tries = vec![first];
    tries.extend(rest);
    tries.truncate(CONNECT_TRIES_MAX);
    tries
}

/// True when `target` takes new connections.
pub(super) fn is_open(target: &RouteTargetInfo) -> bool {
    target.state == TrafficState::Serving && target.weight > 0 && !target.address.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_state::NodeId;

    fn target(id: u64, weight: u32, state: TrafficState) -> RouteTargetInfo {
        RouteTargetInfo { target_id: NodeId(id), address: format!("127.0.0.{id}:80"), weight, state }
    }

    #[test]
    fn the_first_try_follows_the_weights_and_the_rest_go_heaviest_first() {
        // Weights 30/60/10 and a blocked and a zero-weight target: over every roll of one
        // cycle the first try matches the weights exactly, and the closed ones never come.
        let targets = vec![
            target(1, 30, TrafficState::Serving),
            target(2, 60, TrafficState::Serving),
            target(3, 10, TrafficState::Serving),
            target(4, 50, TrafficState::Blocked),
            target(5, 0, TrafficState::Serving),
            target(6, 50, TrafficState::Draining),
        ];
        let mut firsts = [0u32; 6];
        for roll in 0..100 {
            let tries = order(&targets, roll);
            firsts[tries[0]] += 1;
            assert_eq!(tries.len(), 3, "open targets only: {tries:?}");
        }
        assert_eq!(firsts, [30, 60, 10, 0, 0, 0]);
        assert_eq!(order(&targets, 0), vec![0, 1, 2], "after the pick, heaviest first");
        assert_eq!(order(&targets, 95), vec![2, 1, 0]);
    }

    #[test]
    fn no_open_target_means_no_try() {
        assert!(order(&[], 7).is_empty());
        assert!(order(&[target(1, 0, TrafficState::Serving), target(2, 9, TrafficState::Blocked)], 7).is_empty());
        let gone = RouteTargetInfo { address: String::new(), ..target(3, 5, TrafficState::Serving) };
        assert!(order(&[gone], 3).is_empty(), "a target that left the cluster has no address");
    }
}
