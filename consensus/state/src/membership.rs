//! `apply` for membership, join tokens and the feature level.

use crate::command::{ApplyError, Outcome};
use crate::features::FeatureLevel;
use crate::model::ids::UnixMillis;
use crate::model::members::{ApiTokenKind, ClusterInfo, JoinTokenRecord, Member, MemberSpec};
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
        let id = NodeId(1);
        if let Some(name) = &first.instance_name {
            self.check_take(id, name)?;
        }
        self.cluster = Some(info.clone());
        self.members.insert(id, Member::from_spec(id, first, at));
        if let Some(name) = &first.instance_name {
            self.take_instance(id, name, at);
        }
        self.next_node_id = 2;
        Ok(Outcome::MemberAdded(id))
    }

    pub(crate) fn add_member(&mut self, spec: &MemberSpec, at: UnixMillis) -> Result<Outcome, ApplyError> {
        if self.cluster.is_none() {
            return Err(ApplyError::conflict("the cluster is not bootstrapped"));
        }
        let id = NodeId(self.next_node_id);
        if let Some(name) = &spec.instance_name {
            self.check_take(id, name)?;
        }
        self.next_node_id += 1;
        self.members.insert(id, Member::from_spec(id, spec, at));
        if let Some(name) = &spec.instance_name {
            self.take_instance(id, name, at);
        }
        Ok(Outcome::MemberAdded(id))
    }

    /// Records a member's new addresses and tags, and the instance it now names; a spec
    /// without an instance name leaves the member's instance as it is.
    pub(crate) fn update_member(
        &mut self,
        id: &NodeId,
        spec: &MemberSpec,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        if !self.members.contains_key(id) {
            return Err(ApplyError::not_found(format!("no member {id}")));
        }
        if let Some(name) = &spec.instance_name {
            self.check_take(*id, name)?;
        }
        if let Some(member) = self.members.get_mut(id) {
            member.listen = spec.listen;
            member.api = spec.api;
            member.tags = spec.tags.clone();
            member.advertise = spec.advertise;
        }
        if let Some(name) = &spec.instance_name {
            self.take_instance(*id, name, at);
        }
        Ok(Outcome::Done)
    }

    pub(crate) fn remove_member(&mut self, id: &NodeId) -> Result<Outcome, ApplyError> {
        if !self.members.contains_key(id) {
            return Err(ApplyError::not_found(format!("no member {id}")));
        }
        self.release_instance(*id);
        self.members.remove(id);
        self.removed.insert(*id);
        Ok(Outcome::Done)
    }

    /// Adds a join token. From feature level 4 on, the record gets its creation time and
    /// no uses, and a use limit of 0 or an id already taken is refused (below it the
    /// record is kept as sent, as older releases do).
    pub(crate) fn add_join_token(&mut self, record: &JoinTokenRecord, at: UnixMillis) -> Result<Outcome, ApplyError> {
        let counted = self.feature_level >= FeatureLevel::JOIN_TOKEN_LIFECYCLE;
        let cluster = self.cluster.as_mut().ok_or_else(|| ApplyError::conflict("the cluster is not bootstrapped"))?;
        let mut record = record.clone();
        if counted {
            if record.max_uses == Some(0) {
                return Err(ApplyError::invalid("maxUses must be at least 1"));
            }
            let id = record.id();
            if cluster.join_tokens.iter().any(|existing| existing.id() == id) {
                return Err(ApplyError::exists(format!("a join token with id {id} exists already")));
            }
            record.created_at = Some(at);
            record.uses = 0;
        }
        cluster.join_tokens.push(record);
        Ok(Outcome::Done)
    }

    /// Adds a member that joined with the token `token_id`, if the token still admits it
    /// at `at`, and counts the use. The check is here, in `apply`, so joins racing for
    /// a token's last use cannot both get it.
    pub(crate) fn admit_member(
        &mut self,
        spec: &MemberSpec,
        token_id: &str,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        let cluster = self.cluster.as_ref().ok_or_else(|| ApplyError::conflict("the cluster is not bootstrapped"))?;
        let index = token_index(cluster, token_id)
            .ok_or_else(|| ApplyError::not_found(format!("the join token {token_id} was deleted; create a new one")))?;
        if let Some(refusal) = cluster.join_tokens[index].refusal(at) {
            return Err(ApplyError::conflict(refusal.to_string()));
        }
        let outcome = self.add_member(spec, at)?;
        if let Some(token) = self.cluster.as_mut().and_then(|cluster| cluster.join_tokens.get_mut(index)) {
            token.uses = token.uses.saturating_add(1);
        }
        Ok(outcome)
    }

    /// Stops accepting the join token `token_id`.
    pub(crate) fn delete_join_token(&mut self, token_id: &str) -> Result<Outcome, ApplyError> {
        let cluster = self.cluster.as_mut().ok_or_else(|| ApplyError::conflict("the cluster is not bootstrapped"))?;
        let index = token_index(cluster, token_id).ok_or_else(|| {
            ApplyError::not_found(format!(
                "no join token has the id {token_id:?}; `fleetmesh cluster list-join-tokens` shows them"
            ))
        })?;
        cluster.join_tokens.remove(index);
        Ok(Outcome::Done)
    }

    pub(crate) fn set_api_token(&mut self, kind: ApiTokenKind, hash: &str) -> Result<Outcome, ApplyError> {
        let cluster = self.cluster.as_mut().ok_or_else(|| ApplyError::conflict("the cluster is not bootstrapped"))?;
        if hash.len() != 64 || !hash.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(ApplyError::invalid("a token hash is 64 hex digits"));
        }
        let others = [ApiTokenKind::Admin, ApiTokenKind::ReadOnly, ApiTokenKind::Metrics]
            .into_iter()
            .filter(|other| *other != kind);
        if others.clone().any(|other| cluster.token_hash(other) == Some(hash)) {
            return Err(ApplyError::conflict("one token cannot serve two kinds"));
        }
        match kind {
            ApiTokenKind::Admin => cluster.admin_token_hash = hash.to_string(),
            ApiTokenKind::ReadOnly => cluster.read_only_token_hash = Some(hash.to_string()),
            ApiTokenKind::Metrics => cluster.metrics_token_hash = Some(hash.to_string()),
        }
        Ok(Outcome::Done)
    }

    pub(crate) fn seal_ca(&mut self, sealed_key: &str) -> Result<Outcome, ApplyError> {
        let cluster = self.cluster.as_mut().ok_or_else(|| ApplyError::conflict("the cluster is not bootstrapped"))?;
        if cluster.ca.is_sealed() {
            return Err(ApplyError::conflict("the cluster CA key is sealed already"));
        }
        if sealed_key.is_empty() || sealed_key.len() > 16 << 10 {
            return Err(ApplyError::invalid("a sealed CA key is between 1 byte and 16 KiB"));
        }
        cluster.ca.key_pem = String::new();
        cluster.ca.sealed_key = Some(sealed_key.to_string());
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

/// Where the join token `token_id` is in the cluster's list.
fn token_index(cluster: &ClusterInfo, token_id: &str) -> Option<usize> {
    cluster.join_tokens.iter().position(|token| token.id() == token_id)
}
