//! The host agent's shell (placeholder until the lifecycle executor lands).

use std::sync::Arc;

use crate::protocol::{PollResponse, RevisionProgress};
use crate::runtime::Node;

/// Progress of revisions this node fetches.
pub(crate) fn revision_progress(_node: &Node) -> Vec<RevisionProgress> {
    Vec::new()
}

/// New assignments arrived.
pub(crate) fn on_assignments(_node: &Arc<Node>, _poll: &PollResponse) {}

/// Starts the agent's tasks.
pub(crate) fn start(_node: &Arc<Node>, _tasks: &mut tokio::task::JoinSet<()>) {}
