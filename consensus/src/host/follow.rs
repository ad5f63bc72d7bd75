//! Keeping a node's Raft instance in step with its role.

use std::sync::Arc;

use tokio::sync::watch;

use super::{HostError, RaftHost, ServerStateWatch};

/// Keeps `host`'s Raft in step with its role until `shutdown` turns true. A dormant
/// instance (every node starts with one, see `RaftTiming::dormant`) is restarted with the
/// voter timing as soon as its membership lists the node as a voter: a voter that
/// restarts, an agent being promoted, the first node of a cluster. Ticks are on while
/// the node is a voter and off otherwise: on a non-voter each is a no-op pass of
/// openraft's main loop that also republishes its metrics. A removed voter keeps the
/// voter timing with ticks off until a reset ([`RaftHost::reset`]) makes it dormant
/// again.
///
/// # Errors
/// The instance could not be restarted with the voter timing; the node cannot serve as
/// a voter and should stop.
pub async fn follow_role(host: Arc<RaftHost>, mut shutdown: watch::Receiver<bool>) -> Result<(), HostError> {
    let mut server = ServerStateWatch::new(&host);
    let mut ticking = None;
    // Bounded by shutdown: every pass waits for a change of the server state.
    loop {
        let needed = server.needs_tick(host.id());
        if needed && !host.is_active() {
            host.activate().await?;
            server = ServerStateWatch::new(&host);
            ticking = None;
            continue;
        }
        if ticking != Some(needed) {
            host.raft().runtime_config().tick(needed);
            ticking = Some(needed);
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            () = server.changed(&host) => {}
        }
        if server.take_replaced() {
            // Another Raft instance, which ticks until told otherwise.
            ticking = None;
        }
    }
}
