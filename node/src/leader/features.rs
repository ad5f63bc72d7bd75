//! The cluster's feature level, on the leader: raised once every voter's polls report a
//! release that knows the next level (`fleetmesh_state::features`), and the members whose
//! release is behind it, which autopilot must not make voters.

use std::collections::BTreeSet;

use fleetmesh_state::features::raisable_level;
use fleetmesh_state::FeatureLevel;
use fleetmesh_transport::NodeId;
use tokio::time::Instant;
use tracing::{info, warn};

use super::Leader;

impl Leader {
    /// Proposes `SetFeatureLevel` when every voter reported a release that knows a level
    /// above the cluster's. A voter that has not polled this leader yet holds it back.
    pub(super) async fn raise_feature_level(&self) {
        let node = &self.node;
        let (bootstrapped, cluster) = node.state().read(|state| (state.cluster.is_some(), state.feature_level));
        if !bootstrapped || cluster >= FeatureLevel::CURRENT {
            return;
        }
        let releases = self.releases();
        let voters: Vec<Option<FeatureLevel>> =
            node.voters().iter().map(|voter| releases.get(voter).map(|release| release.feature_level)).collect();
        let Some(level) = raisable_level(cluster, &voters) else { return };
        match node.propose_feature_level(level).await {
            Ok(_) => {
                info!(from = %cluster, to = %level, "every voter knows the next feature level: the cluster uses it now")
            }
            Err(error) => warn!(%error, "could not raise the cluster's feature level yet; will retry"),
        }
    }

    /// Members that may not become voters: their release does not know the cluster's
    /// feature level. At the first level every member qualifies (it is what a release
    /// that reports nothing knows); above it, a member that has not polled this leader
    /// yet does not.
    pub(super) fn behind_cluster_level(&self) -> BTreeSet<NodeId> {
        let node = &self.node;
        // Asked only when autopilot is about to promote someone: rare, so one read of both.
        let (cluster, members): (FeatureLevel, Vec<NodeId>) =
            node.state().read(|state| (state.feature_level, state.members.keys().copied().collect()));
        if cluster <= FeatureLevel::BASE {
            return BTreeSet::new();
        }
        let me = node.id();
        // The releases are read in place, not cloned: one lookup per member.
        self.view.with(node.term(), Instant::now(), |view| {
            members
                .into_iter()
                .filter(|member| {
                    *member != me && view.releases.get(member).is_none_or(|release| release.feature_level < cluster)
                })
                .collect()
        })
    }
}
