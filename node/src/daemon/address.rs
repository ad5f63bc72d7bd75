//! Where other hosts reach this node (`--advertise-address`, else the `--listen` IP),
//! and what it asks to be recorded as when it joins or bootstraps.

use fleetmesh_state::model::members::MemberSpec;

use super::boot::NodeConfig;
use super::error::DaemonError;

impl NodeConfig {
    /// Where other hosts reach this node: `--advertise-address`, else the `--listen` IP.
    ///
    /// # Errors
    /// Neither is given and `--listen` is a wildcard address.
    pub fn advertised(&self) -> Result<std::net::IpAddr, DaemonError> {
        match self.advertise {
            Some(address) => Ok(address),
            None if self.listen.ip().is_unspecified() => {
                Err(DaemonError::AdvertiseAddressNeeded { listen: self.listen })
            }
            None => Ok(self.listen.ip()),
        }
    }

    /// What this node asks to be recorded as: its addresses and tags, the advertised
    /// address only when it differs from the listen IP (older releases record none).
    pub(super) fn member_spec(&self) -> MemberSpec {
        let advertise = self.advertise.filter(|address| *address != self.listen.ip());
        MemberSpec {
            listen: self.listen,
            api: self.api,
            tags: self.tags.clone(),
            advertise,
            instance_name: self.instance_name.clone(),
        }
    }
}
