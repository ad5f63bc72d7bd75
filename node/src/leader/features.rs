//! The cluster's feature level, on the leader: raised once every voter's polls report a
//! release that knows the next level (`fleetmesh_state::features`), and the members whose
//! release is behind it, which autopilot must not make voters.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_state::features::raisable_level;
use fleetmesh_state::{FeatureLevel, Release};
use fleetmesh_transport::NodeId;
use tokio::time::Instant;
use tracing::{info, warn};

use super::core::{LeaderCore, Work};
use super::run::{Done, ReportReply, Shell};

impl Shell {
    /// Proposes `SetFeatureLevel` when every voter reported a release that knows a level
    /// above the cluster's. A voter that has not polled this leader yet holds it back.
    pub(super) fn raise_feature_level(&mut self, core: &mut LeaderCore<ReportReply>) {
        let node = self.node.clone();
        let (bootstrapped, cluster) = node.state().read(|state| (state.cluster.is_some(), state.feature_level));
        if !bootstrapped || cluster >= FeatureLevel::CURRENT {
            return;
        }
        let releases = core.releases(node.term(), Instant::now());
        let voters: Vec<Option<FeatureLevel>> = node
            .voters()
            .iter()
            .map(|voter| match *voter == node.id() {
                true => Some(Release::this_build().feature_level),
                false => releases.get(voter).map(|release| release.feature_level),
            })
            .collect();
        let Some(level) = raisable_level(cluster, &voters) else { return };
        if !core.begin(Work::FeatureLevel) {
            return;
        }
        self.spawn(Work::FeatureLevel, async move {
            match node.propose_feature_level(level).await {
                Ok(_) => info!(
                    from = %cluster, to = %level,
                    "every voter knows the next feature level: the cluster uses it now"
                ),
                Err(error) => warn!(%error, "could not raise the cluster's feature level yet; will retry"),
            }
            Done::Other
        });
    }
}

/// Members that may not become voters: their release (`releases`, as polls reported
/// them) does not know the cluster's feature level. At the first level every member
/// qualifies (it is what a release that reports nothing knows); above it, a member that
/// has not polled this leader yet does not. `me`, the leader, runs this build.
pub(super) fn behind_cluster_level(
    cluster: FeatureLevel,
    members: impl IntoIterator<Item = NodeId>,
    me: NodeId,
    releases: &BTreeMap<NodeId, Release>,
) -> BTreeSet<NodeId> {
    if cluster <= FeatureLevel::BASE {
        return BTreeSet::new();
    }
    members
        .into_iter()
        .filter(|member| *member != me && releases.get(member).is_none_or(|release| release.feature_level < cluster))
        .collect()
}
