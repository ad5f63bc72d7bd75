//! The shape the leader's watch duties share (trigger delivery, alarm polls): while this
//! node leads, one task per key that the state says needs one; all of them aborted when
//! leadership moves, so only one node acts, and a new leader starts them afresh from the
//! replicated state.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{AbortHandle, JoinSet};

use crate::runtime::Node;

/// Runs until shutdown on every node: on each pass while leading, `wanted` lists the keys
/// that need a task and `work` starts one for each key without a running one. A pass
/// runs after every applied change, a task's end, a leadership change and, with
/// `rescan`, at that period. `each_pass` runs first on every pass, leading or not.
pub(super) async fn per_key_while_leading<K, Fut>(
    node: Arc<Node>,
    wanted: impl Fn(&Node) -> Vec<K>,
    work: impl Fn(K) -> Fut,
    rescan: Option<Duration>,
    mut each_pass: impl FnMut(&Node),
) where
    K: Ord + Clone,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut shutdown = node.shutdown_signal();
    let mut server = node.server_state();
    let mut changes = node.state().subscribe();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut running: BTreeMap<K, AbortHandle> = BTreeMap::new();
    // Bounded by shutdown: every pass waits for a change, a task's end or a tick.
    loop {
        each_pass(&node);
        let leading = server.leadership(node.id()).1;
        if leading {
            running.retain(|_, handle| !handle.is_finished());
            for key in wanted(&node) {
                if let Entry::Vacant(slot) = running.entry(key) {
                    let key = slot.key().clone();
                    slot.insert(tasks.spawn(work(key)));
                }
            }
        } else if !running.is_empty() {
            tasks.abort_all();
            running.clear();
        }
        let tick = rescan.unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = shutdown.changed() => {
                tasks.abort_all();
                return;
            }
            () = server.changed(node.raft_host()) => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            changed = changes.changed(), if leading => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(tick), if leading && rescan.is_some() => {}
        }
    }
}
