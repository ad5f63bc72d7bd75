//! The rollout engine's shell on the leader (placeholder until the planner lands).

use std::sync::Arc;

use crate::runtime::Node;

/// One pass of the rollout engine.
pub(crate) async fn tick(_node: &Arc<Node>) {}
