//! The fault plan of the simulated hosts: which hook fails or hangs on which host, and
//! which peers serve corrupt chunks. Scenarios set it during the safety phase and clear
//! it for the liveness phase.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_transport::NodeId;

/// What a hook does on a faulty host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookFault {
    /// The script exits non-zero after its usual duration (`ScriptFailed`).
    Fail,
    /// The script never returns; the agent kills it at the hook timeout
    /// (`ScriptTimedOut`).
    Hang,
}

/// Per-host hook faults and byzantine peers.
#[derive(Clone, Debug, Default)]
pub struct HostFaults {
    /// Host → (lifecycle event, fault): every run of that event on that host, in any
    /// deployment, fails or hangs while the entry is set.
    pub hooks: BTreeMap<NodeId, (String, HookFault)>,
    /// Peers that advertise every piece and serve corrupt contents for every chunk
    /// they are asked for.
    pub corrupt_peers: BTreeSet<NodeId>,
    /// Peers that advertise every piece and answer every piece request with an error.
    pub withholding_peers: BTreeSet<NodeId>,
    /// Peers that send at a hundredth of the bandwidth.
    pub slow_peers: BTreeSet<NodeId>,
}

impl HostFaults {
    /// The fault of `event` on `host`, if any.
    pub fn hook(&self, host: NodeId, event: &str) -> Option<HookFault> {
        self.hooks.get(&host).filter(|(name, _)| name == event).map(|(_, fault)| *fault)
    }
}
