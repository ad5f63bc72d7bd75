//! `apply` for membership, join tokens and the feature level.

use crate::command::{ApplyError, Outcome};
use crate::features::FeatureLevel;
use crate::model::ids::UnixMillis;
use crate::model::members::{ClusterInfo, JoinTokenRecord, Member, MemberSpec};
use crate::{ClusterState, NodeId};

impl ClusterState {
    pub(crate) fn bootstrap(
        &mut self,
        info: &ClusterInfo,
        first: &MemberSpec,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        if self.cluster.is_some() {
            return Err(ApplyError::conflict("the cluster is already bootstrapped"));
        }
        self.cluster = Some(info.clone());
        let id = NodeId(1);
        self.members
            .insert(id, Member { id, listen: first.listen, api: first.api, tags: first.tags.clone(), joined_at: at });
        self.next_node_id = 2;
        Ok(Outcome::MemberAdded(id))
    }

    pub(crate) fn add_member(&mut self, spec: &MemberSpec, at: UnixMillis) -> Result<Outcome, ApplyError> {
        if self.cluster.is_none() {
            return Err(ApplyError::conflict("the cluster is not bootstrapped"));
        }
        let id = NodeId(self.next_node_id);
        self.next_node_id += 1;
        self.members
            .insert(id, Member { id, listen: spec.listen, api: spec.api, tags: spec.tags.clone(), joined_at: at });
        Ok(Outcome::MemberAdded(id))
    }

    pub(crate) fn update_member(&mut self, id: &NodeId, spec: &MemberSpec) -> Result<Outcome, ApplyError> {
        let member = self.members.get_mut(id).ok_or_else(|| ApplyError::not_found(format!("no member {id}")))?;
        member.listen = spec.listen;
        member.api = spec.api;
        member.tags = spec.tags.clone();
        Ok(Outcome::Done)
    }

    pub(crate) fn remove_member(&mut self, id: &NodeId) -> Result<Outcome, ApplyError> {
        if self.members.remove(id).is_none() {
            return Err(ApplyError::not_found(format!("no member {id}")));
        }
        self.removed.insert(*id);
        Ok(Outcome::Done)
    }

    pub(crate) fn add_join_token(&mut self, record: &JoinTokenRecord) -> Result<Outcome, ApplyError> {
        let cluster = self.cluster.as_mut().ok_or_else(|| ApplyError::conflict("the cluster is not bootstrapped"))?;
        cluster.join_tokens.push(record.clone());
        Ok(Outcome::Done)
    }

    pub(crate) fn set_feature_level(&mut self, level: FeatureLevel) -> Result<Outcome, ApplyError> {
        if level <= self.feature_level {
            return Err(ApplyError::conflict(format!(
                "the cluster already runs at feature level {}; a level only rises",
                self.feature_level
            )));
        }
        self.feature_level = level;
        Ok(Outcome::Done)
    }
}
