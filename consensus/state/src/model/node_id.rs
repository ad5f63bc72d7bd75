//! Node identity.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The identity of one member of a cluster.
///
/// Assigned by the leader when a node joins (the first node is 1), written into the
/// node's certificate as the DNS name `node-<id>.fleetmesh`, and never reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The DNS name in this node's certificate, used as the QUIC server name.
    pub fn server_name(self) -> String {
        format!("node-{}.fleetmesh", self.0)
    }

    /// Parses a certificate DNS name of the form `node-<id>.fleetmesh`.
    pub fn from_server_name(name: &str) -> Option<Self> {
        let digits = name.strip_prefix("node-")?.strip_suffix(".fleetmesh")?;
        digits.parse().ok().map(NodeId)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

impl FromStr for NodeId {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(NodeId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_round_trips() {
        assert_eq!(NodeId::from_server_name(&NodeId(42).server_name()), Some(NodeId(42)));
        assert_eq!(NodeId::from_server_name("node-x.fleetmesh"), None);
        assert_eq!(NodeId::from_server_name("cluster.fleetmesh"), None);
    }
}
