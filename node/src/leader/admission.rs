//! Admitting a joining node, on the leader: the joiner's token is checked against the
//! replicated token hashes, the member is committed (its id assigned), and its
//! certificate is signed with the cluster CA. A member that is not the leader forwards
//! the request there. The joiner's side is `runtime::join`.

use std::time::Duration;

use fleetmesh_state::{Command, Outcome};
use fleetmesh_transport::pki::CaAuthority;
use tracing::info;

use super::liveness::Health;
use super::Leader;
use crate::runtime::identity::{hashes_equal, secret_hash};
use crate::runtime::protocol::{JoinRequest, JoinResponse, Request, Response};

/// Admits a joiner (on the leader) or forwards the request to the leader.
impl Leader {
    pub(super) async fn admit(&self, request: JoinRequest) -> JoinResponse {
        let node = &self.node;
        if !node.is_leader() {
            let Some(leader) = node.leader_hint().filter(|hint| hint.id != node.id()) else {
                return JoinResponse::Refused("no leader is elected right now; retry in a few seconds".into());
            };
            return match node.call(leader.peer(), Request::Join(request), Duration::from_secs(10)).await {
                Ok((Response::Join(answer), _)) => answer,
                Ok((other, _)) => JoinResponse::Refused(format!("the leader answered {other:?}")),
                Err(error) => JoinResponse::Refused(format!("cannot reach the leader: {error}")),
            };
        }
        match self.admit_on_leader(request).await {
            Ok(answer) => answer,
            Err(reason) => JoinResponse::Refused(reason),
        }
    }

    async fn admit_on_leader(&self, request: JoinRequest) -> Result<JoinResponse, String> {
        let node = &self.node;
        let now = node.clock().now();
        let (info, same_address) = node.state().read(|state| {
            let same =
                state.members.values().find(|member| member.listen == request.spec.listen).map(|member| member.id);
            (state.cluster.clone(), same)
        });
        let info = info.ok_or("the cluster is still bootstrapping; retry in a few seconds")?;
        let offered = secret_hash(&request.secret);
        let record = info
            .join_tokens
            .iter()
            .find(|record| hashes_equal(&record.secret_hash, &offered))
            .ok_or("the join token is not valid for this cluster")?;
        if let Some(expires_at) = record.expires_at {
            if now > expires_at {
                return Err(format!(
                    "the join token expired {} s ago; create a new one with `fleetmesh cluster create-join-token`",
                    now.millis_since(expires_at) / 1000
                ));
            }
        }
        let public_key = hex::decode(&request.public_key).map_err(|_| "the public key is not hex".to_string())?;
        let mut commands = Vec::new();
        if let Some(previous) = same_address {
            // A host that lost its data directory rejoins on the same address: replace the
            // dead record instead of leaving a ghost. A live member at that address is a
            // configuration mistake.
            if self.health(previous) != Health::Dead {
                return Err(format!(
                    "node {previous} is alive at {}; give this node another --listen address",
                    request.spec.listen
                ));
            }
            commands.push(Command::RemoveMember { id: previous });
        }
        commands.push(Command::AddMember { spec: request.spec.clone() });
        let outcomes = node.propose(commands).await.map_err(|error| error.to_string())?;
        let node_id = match outcomes.last() {
            Some(Outcome::MemberAdded(id)) => *id,
            other => return Err(format!("the member could not be added: {other:?}")),
        };
        let cert_pem = info.ca.sign_node(node_id, &public_key).map_err(|error| error.to_string())?;
        info!(node = %node_id, listen = %request.spec.listen, "admitted a new node");
        let members = node.member_addresses();
        Ok(JoinResponse::Admitted {
            node_id,
            cluster_id: info.ca.cluster_id.clone(),
            ca_pem: info.ca.cert_pem.clone(),
            cert_pem,
            admin_token_hash: info.admin_token_hash.clone(),
            members,
        })
    }
}
