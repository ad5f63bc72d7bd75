//! Safety of blue/green deployments (issue 14): traffic moves one way. The share of the
//! open weight of a deployment's routes that is on its green targets never decreases
//! while the deployment runs, except in the entry that rolls it back (a stop with
//! `--auto-rollback`, or a failure with rollback on failure).
//!
//! Green joins (allow events), then blue leaves (block events): each step raises green's
//! share or keeps it. A leader that re-ran a step from stale memory, a retried allow
//! that reopened blue, or a rollback outside the entry that ends the deployment would
//! lower it. When weights move in steps (canary, linear), each step raises the share
//! too, so the rule stays the same.
//!
//! While a step holds, green's share is its committed percentage whoever joins or
//! leaves, up to the rounding of split weights to whole numbers: a green target joining
//! can lower it by a few units in 100,000 (27,000/100,000 to 26,985/99,985 at 100
//! nodes). That is not traffic moving back, so the comparison
//! ([`GreenShare::is_below`]) forgives exactly what rounding can explain, and no more.
//!
//! Checked after every committed entry, on every running blue/green deployment and on
//! those the entry ended.

use std::collections::BTreeMap;

use fleetmesh_state::model::ids::DeploymentId;

use super::route_weights::{EntryView, GreenShare};
use super::Violation;

/// The green-share monitor.
#[derive(Debug, Default)]
pub struct GreenShareMonotonic {
    /// Per running blue/green deployment, green's share after the last entry.
    last: BTreeMap<DeploymentId, GreenShare>,
    /// Share checks made (one deployment after one entry).
    pub checks: u64,
    /// Entries in which the share rose.
    pub rises: u64,
    violation: Option<Violation>,
}

impl GreenShareMonotonic {
    /// Checks every blue/green deployment `entry` leaves running or ended.
    pub fn check(&mut self, entry: &EntryView<'_>) {
        if self.violation.is_some() {
            return;
        }
        for deployment in entry.blue_green() {
            let id = &deployment.deployment_id;
            let now = GreenShare::of(entry.state, deployment);
            self.checks += 1;
            let Some(before) = self.last.insert(id.clone(), now) else { continue };
            if before.is_below(now) {
                self.rises += 1;
            }
            let rolled_back = entry.ended.contains(id) && entry.asks_rollback(deployment);
            if now.is_below(before) && !rolled_back {
                self.violation = Some(Violation::new(format!(
                    "entry {}: green's share of the open weight of deployment {id}'s routes fell from {:.1} % \
                     ({}/{}) to {:.1} % ({}/{}) in {:?}, and the entry does not roll it back",
                    entry.index,
                    before.percent(),
                    before.green,
                    before.total,
                    now.percent(),
                    now.green,
                    now.total,
                    deployment.blue_green.map(|run| run.phase),
                )));
                return;
            }
        }
        for id in entry.ended {
            self.last.remove(id);
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::deployment::DeploymentStatus;
    use fleetmesh_state::model::routes::TrafficState;
    use fleetmesh_state::{Command, Finish};

    use super::super::route_weights::tests::{blue_green_state, entry_at, entry_with, set_traffic, DEPLOYMENT};
    use super::*;

    #[test]
    fn the_share_only_falls_in_the_entry_that_rolls_back() {
        // Green 3 joins (share up), blue 1 reopens after draining (share down): a
        // violation. Separately: the deployment fails with rollback and blue comes back
        // in that entry: no violation.
        let id = DeploymentId(DEPLOYMENT.into());
        let mut state = blue_green_state();
        let mut monitor = GreenShareMonotonic::default();
        monitor.check(&entry_at(&state, 1, &[], &[]));
        set_traffic(&mut state, 3, TrafficState::Serving);
        set_traffic(&mut state, 1, TrafficState::Draining);
        monitor.check(&entry_at(&state, 2, &[], &[]));
        assert_eq!((monitor.verdict(), monitor.rises), (Ok(()), 1));
        set_traffic(&mut state, 1, TrafficState::Serving);
        monitor.check(&entry_at(&state, 3, &[], &[]));
        let violation = monitor.verdict().expect_err("share fell").to_string();
        assert!(violation.contains("entry 3: green's share") && violation.contains("50.0 %"), "{violation}");

        let mut monitor = GreenShareMonotonic::default();
        set_traffic(&mut state, 1, TrafficState::Draining);
        monitor.check(&entry_at(&state, 4, &[], &[]));
        set_traffic(&mut state, 1, TrafficState::Serving);
        set_traffic(&mut state, 3, TrafficState::Draining);
        state.deployments.get_mut(&id).expect("deployment").status = DeploymentStatus::Failed;
        let finish = Command::FinishDeployment(Finish {
            deployment_id: id.clone(),
            succeeded: false,
            error: None,
            rollback_id: None,
        });
        monitor.check(&entry_with(&state, 5, vec![finish], &[DEPLOYMENT], &[]));
        assert_eq!(monitor.verdict(), Ok(()));
    }
}
