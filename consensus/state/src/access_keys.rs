//! The AWS protocol's access keys (`CreateAccessKey`, `DeleteAccessKey`).

use crate::command::{ApplyError, Outcome};
use crate::model::ids::UnixMillis;
use crate::model::members::AccessKeyRecord;
use crate::ClusterState;

/// Most access keys a cluster holds: enough for every pipeline and operator, few
/// enough that a verifier's linear search stays trivial.
pub(crate) const ACCESS_KEYS_MAX: usize = 100;

/// Most characters of a sealed secret (a 40-character secret sealed is ~150).
const SEALED_SECRET_CHARS_MAX: usize = 1024;

impl ClusterState {
    pub(crate) fn create_access_key(
        &mut self,
        record: &AccessKeyRecord,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        let cluster = self.cluster.as_mut().ok_or_else(|| ApplyError::conflict("the cluster is not bootstrapped"))?;
        if !AccessKeyRecord::is_id(&record.access_key_id) {
            return Err(ApplyError::invalid("an access key id is AKIA and 16 upper-case letters or digits"));
        }
        if record.sealed_secret.is_empty() || record.sealed_secret.len() > SEALED_SECRET_CHARS_MAX {
            return Err(ApplyError::invalid(format!(
                "a sealed secret is between 1 and {SEALED_SECRET_CHARS_MAX} characters"
            )));
        }
        if cluster.access_keys.iter().any(|key| key.access_key_id == record.access_key_id) {
            return Err(ApplyError::exists(format!("access key {} already exists", record.access_key_id)));
        }
        if cluster.access_keys.len() >= ACCESS_KEYS_MAX {
            return Err(ApplyError::conflict(format!(
                "the cluster holds {ACCESS_KEYS_MAX} access keys already; delete one first"
            )));
        }
        let mut record = record.clone();
        record.created_at = at;
        record.created_by = None;
        cluster.access_keys.push(record);
        Ok(Outcome::Done)
    }

    pub(crate) fn delete_access_key(&mut self, access_key_id: &str) -> Result<Outcome, ApplyError> {
        let cluster = self.cluster.as_mut().ok_or_else(|| ApplyError::conflict("the cluster is not bootstrapped"))?;
        let before = cluster.access_keys.len();
        cluster.access_keys.retain(|key| key.access_key_id != access_key_id);
        if cluster.access_keys.len() == before {
            let shown = access_key_id.chars().take(40).collect::<String>();
            return Err(ApplyError::not_found(format!("access key {shown} does not exist")));
        }
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{at, setup};
    use crate::Command;

    fn key(id: &str) -> AccessKeyRecord {
        AccessKeyRecord {
            access_key_id: id.into(),
            sealed_secret: "chacha20poly1305:00".into(),
            created_at: UnixMillis(0),
            created_by: None,
        }
    }

    #[test]
    fn access_keys_are_created_once_and_revoked() {
        let (mut state, _, _) = setup();
        let create = |id: &str| Command::CreateAccessKey { record: key(id) };
        let delete = |id: &str| Command::DeleteAccessKey { access_key_id: id.into() };
        let outcomes = state
            .apply(&at(
                5,
                vec![create("AKIA0000000000000001"), create("AKIA0000000000000001"), create("akia0000000000000001")],
            ))
            .outcomes;
        assert_eq!(outcomes[0], Outcome::Done);
        assert!(matches!(&outcomes[1], Outcome::Rejected(error) if error.message.contains("already exists")));
        assert!(matches!(&outcomes[2], Outcome::Rejected(error) if error.message.contains("AKIA")));
        let keys = state.cluster.as_ref().map(|cluster| cluster.access_keys.clone()).unwrap_or_default();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].created_at, UnixMillis(5));
        let outcomes =
            state.apply(&at(6, vec![delete("AKIA0000000000000001"), delete("AKIA0000000000000001")])).outcomes;
        assert_eq!(outcomes[0], Outcome::Done);
        assert!(matches!(&outcomes[1], Outcome::Rejected(error) if error.message.contains("does not exist")));
    }
}
