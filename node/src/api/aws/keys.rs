//! The cluster's access keys: minted by the leader (`CreateAccessKey`), their secrets
//! sealed under the voters' CA seal key before they enter the Raft log, opened on a
//! voter only to check a signature.

use fleetmesh_model::{CreateAccessKeyOutput, DeleteAccessKeyInput, Empty};
use fleetmesh_state::model::members::{AccessKeyRecord, Actor};
use fleetmesh_state::{Command, Outcome};
use ring::rand::{SecureRandom, SystemRandom};

use crate::api::{Api, ApiError};
use crate::runtime::Node;
use fleetmesh_model::sigv4::{self, AuthError, Signed};

/// The letters of an access key id after `AKIA` (AWS's: upper case and 2–7).
const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// The letters of a secret (AWS's: base64's).
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_text(alphabet: &[u8], length: usize) -> Result<String, ApiError> {
    let mut bytes = vec![0u8; length];
    SystemRandom::new().fill(&mut bytes).map_err(|_| ApiError::internal("the system random source failed"))?;
    // Both alphabets divide 256, so every letter is equally likely.
    Ok(bytes.into_iter().map(|byte| char::from(alphabet[usize::from(byte) % alphabet.len()])).collect())
}

/// Mints a key, seals its secret and commits it; the answer is the only copy of the
/// secret in clear.
pub(in crate::api) async fn create_access_key(
    api: &Api,
    by: Option<&Actor>,
) -> Result<CreateAccessKeyOutput, ApiError> {
    let node = &api.node;
    let sealer = node.sealer().map_err(|error| ApiError::sealer_unavailable(&error, "the secret"))?;
    let access_key_id = format!("AKIA{}", random_text(ID_ALPHABET, 16)?);
    let secret_access_key = random_text(SECRET_ALPHABET, 40)?;
    let context = AccessKeyRecord::seal_context(sealer.cluster_id(), &access_key_id);
    let sealed_secret =
        sealer.seal(secret_access_key.as_bytes(), &context).map_err(|error| ApiError::internal(error.to_string()))?;
    let record = AccessKeyRecord {
        access_key_id: access_key_id.clone(),
        sealed_secret,
        created_at: Default::default(),
        created_by: None,
    };
    match node.propose_one_by(Command::CreateAccessKey { record }, by).await? {
        Outcome::Rejected(error) => Err(error.into()),
        _ => Ok(CreateAccessKeyOutput { access_key_id, secret_access_key }),
    }
}

/// Revokes a key: requests signed with it are refused once the entry applies.
pub(in crate::api) async fn delete_access_key(
    api: &Api,
    input: DeleteAccessKeyInput,
    by: Option<&Actor>,
) -> Result<Empty, ApiError> {
    let command = Command::DeleteAccessKey { access_key_id: input.access_key_id };
    match api.node.propose_one_by(command, by).await? {
        Outcome::Rejected(error) => Err(error.into()),
        _ => Ok(Empty {}),
    }
}

/// Whether this node can check signatures itself: it holds the replicated state and the
/// seal key (a voter).
pub(in crate::api) fn verifies_here(node: &Node) -> bool {
    node.sealer().is_ok()
}

/// Checks `signed` with the secret of its key, opened here (a voter): the actor it
/// authenticates.
///
/// # Errors
/// The key is unknown or revoked, or the signature, scope or time is wrong.
pub(in crate::api) fn verify_here(node: &Node, signed: &Signed) -> Result<Actor, AuthError> {
    let found = node.state().read(|state| {
        let cluster = state.cluster.as_ref()?;
        let key = cluster.access_keys.iter().find(|key| key.access_key_id == signed.access_key_id)?;
        Some(key.sealed_secret.clone())
    });
    let shown: String = signed.access_key_id.chars().take(32).collect();
    let sealed = found.ok_or_else(|| AuthError::UnknownKey(shown.clone()))?;
    let Ok(sealer) = node.sealer() else {
        return Err(AuthError::Invalid("this node holds no seal key to check signatures with".into()));
    };
    let context = AccessKeyRecord::seal_context(sealer.cluster_id(), &signed.access_key_id);
    let secret = sealer
        .open(&sealed, &context)
        .ok()
        .and_then(|plain| String::from_utf8(plain).ok())
        .ok_or_else(|| AuthError::Invalid(format!("the secret of access key {shown} does not open here")))?;
    let now_secs = i64::try_from(node.clock().now().0 / 1000).unwrap_or(i64::MAX);
    sigv4::verify(signed, &secret, now_secs)?;
    Ok(Actor::access_key(&signed.access_key_id))
}
