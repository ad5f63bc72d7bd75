//! Safety: at most one leader per term.
//!
//! A monitor samples every running node's Raft state every few milliseconds of virtual
//! time and remembers which node led each term; a second node leading the same term is
//! a violation (it would mean two nodes could commit conflicting entries).

use std::collections::BTreeMap;

use fleetmesh_transport::NodeId;

use super::Violation;

/// Leaders seen per term.
#[derive(Debug, Default)]
pub struct LeaderPerTerm {
    leaders: BTreeMap<u64, NodeId>,
    violation: Option<Violation>,
}

impl LeaderPerTerm {
    /// Records leaders observed at one instant.
    pub fn observe(&mut self, leaders: &[(u64, NodeId)]) {
        for (term, node) in leaders {
            match self.leaders.get(term) {
                Some(existing) if existing != node && self.violation.is_none() => {
                    self.violation =
                        Some(Violation::new(format!("term {term} had two leaders: node {existing} and node {node}")));
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(*term, *node);
                }
            }
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }

    /// Terms that had a leader.
    pub fn terms(&self) -> usize {
        self.leaders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_leaders_in_one_term_are_caught() {
        let mut view = LeaderPerTerm::default();
        view.observe(&[(1, NodeId(1))]);
        view.observe(&[(2, NodeId(2)), (1, NodeId(1))]);
        assert!(view.verdict().is_ok());
        view.observe(&[(2, NodeId(3))]);
        assert!(view.verdict().unwrap_err().reason().contains("term 2"));
    }
}
