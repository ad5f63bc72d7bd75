//! A member that restarted with other tags, another API address or another advertised
//! address: its polls carry what it runs with now, and the leader records the change
//! (a restart without any `--tag` keeps the recorded tags), and the on-premises
//! instance it names (`--instance-name`; its tags are managed through the API then)
//! ([`Command::UpdateMember`]), so deployment groups and routes select it by its current
//! tags and routers reach it where it now listens. The QUIC listen address is not
//! changed this way (voters' Raft addresses hang on it): a node that must move is
//! removed and joins again.

use std::sync::Arc;

use fleetmesh_state::model::members::MemberSpec;
use fleetmesh_state::{Command, FeatureLevel, Outcome};
use fleetmesh_transport::NodeId;
use tracing::{info, warn};

use super::Leader;

impl Leader {
    /// Proposes `reported` for member `node` when it differs from the recorded member,
    /// unless an update of that member is already on its way.
    pub(super) fn refresh_member(self: &Arc<Self>, node: NodeId, reported: Option<&MemberSpec>) {
        let Some(reported) = reported else { return };
        // Compared in place, once per poll: nothing is cloned unless the member changed.
        let (wanted, conflict) = self.node.state().read(|state| {
            let Some(member) = state.members.get(&node) else { return (None, None) };
            // A restart without --tag keeps the recorded tags (a plain `node --data-dir`
            // resume must not drop the host out of its groups), and so does a node that
            // holds an on-premises instance: its tags are the instance's, changed through
            // the API (its --tag flags joined them when it took the name).
            let aws = state.feature_level >= FeatureLevel::AWS_PROTOCOL;
            let mut instance_name =
                reported.instance_name.clone().filter(|name| aws && member.instance_name.as_ref() != Some(name));
            // A name another member holds would only be refused, poll after poll: the
            // node runs on without it, and the leader says so once.
            let holder = instance_name
                .as_ref()
                .and_then(|name| state.instances.get(name))
                .and_then(|instance| instance.node)
                .filter(|holder| *holder != node && state.members.contains_key(holder));
            let conflict = holder.and_then(|holder| instance_name.take().map(|name| (holder, name)));
            let keep = reported.tags.is_empty() || (member.instance_name.is_some() && instance_name.is_none());
            let tags = if keep { &member.tags } else { &reported.tags };
            let advertise = if state.feature_level < FeatureLevel::TRAFFIC_ROUTES { None } else { reported.advertise };
            let same = reported.api == member.api
                && *tags == member.tags
                && advertise == member.advertise
                && instance_name.is_none();
            let wanted = (!same).then(|| MemberSpec {
                listen: member.listen,
                api: reported.api,
                tags: tags.clone(),
                advertise,
                instance_name,
            });
            (wanted, conflict)
        });
        if let Some((holder, name)) = conflict {
            let mut told = self.instance_conflicts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if told.insert((node, name.clone())) {
                warn!(
                    %node, %holder, instance = %name,
                    "a node names an on-premises instance another node holds: it runs on without it; start it with \
                     another --instance-name, or remove the holder first"
                );
            }
        }
        let Some(wanted) = wanted else { return };
        {
            let mut updating = self.member_updates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !updating.insert(node) {
                return;
            }
        }
        let leader = self.clone();
        tokio::spawn(async move {
            let tags = wanted.tags.clone();
            match leader.node.propose_one(Command::UpdateMember { id: node, spec: wanted }).await {
                Ok(Outcome::Done) => info!(%node, ?tags, "recorded a member's new tags or addresses"),
                Ok(other) => warn!(%node, ?other, "a member's new tags or addresses were refused"),
                Err(error) => warn!(%node, %error, "cannot record a member's new tags or addresses yet"),
            }
            let mut updating = leader.member_updates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            updating.remove(&node);
        });
    }
}
