//! A group's `triggerConfigurations` on their way into the state: each secret sealed
//! with the CA seal key, as access keys are, so the replicated state and its snapshots
//! never hold one in clear.
//!
//! A secret signs webhook deliveries only: an SNS topic target given one is refused
//! (SNS signs what it delivers itself; a secret that signs nothing would mislead). `""`
//! (clear the secret) is accepted on any target, so a trigger moved from a webhook to a
//! topic can drop the secret it had.

use fleetmesh_model::{TriggerConfig, TRIGGER_SECRET_CHARS_MAX};
use fleetmesh_state::model::triggers::{self, is_sns_topic_arn};

use crate::api::ApiError;
use crate::runtime::Node;

/// `configs` as the state keeps them: secrets sealed (`""`, which clears a secret, and a
/// left-out secret, which keeps one, pass as they are). The state checks the rest.
///
/// # Errors
/// A secret is too long or given to an SNS topic target, or this node holds no seal key
/// to seal a secret with.
pub(super) fn seal_triggers(
    node: &Node,
    configs: Vec<TriggerConfig>,
) -> Result<Vec<triggers::TriggerConfig>, ApiError> {
    configs
        .into_iter()
        .map(|config| {
            let name: String = config.trigger_name.chars().take(128).collect();
            let has_secret = config.secret.as_ref().is_some_and(|secret| !secret.is_empty());
            if has_secret && is_sns_topic_arn(&config.trigger_target_arn) {
                return Err(ApiError::invalid(
                    "triggerConfigurations",
                    format!(
                        "trigger {name}: a secret signs webhook deliveries only and an SNS topic target takes none \
                         (SNS signs its own deliveries); leave \"secret\" out"
                    ),
                ));
            }
            let sealed_secret = match config.secret {
                None => None,
                Some(secret) if secret.is_empty() => Some(String::new()),
                Some(secret) if secret.chars().count() > TRIGGER_SECRET_CHARS_MAX => {
                    return Err(ApiError::invalid(
                        "triggerConfigurations",
                        format!("trigger {name}: a secret has at most {TRIGGER_SECRET_CHARS_MAX} characters"),
                    ));
                }
                Some(secret) => Some(seal(node, &secret)?),
            };
            Ok(triggers::TriggerConfig {
                trigger_name: config.trigger_name,
                trigger_target_arn: config.trigger_target_arn,
                trigger_events: config.trigger_events,
                sealed_secret,
            })
        })
        .collect()
}

fn seal(node: &Node, secret: &str) -> Result<String, ApiError> {
    let sealer = node.sealer().map_err(|error| ApiError::sealer_unavailable(&error, "the trigger's secret"))?;
    sealer
        .seal(secret.as_bytes(), &triggers::secret_seal_context(sealer.cluster_id()))
        .map_err(|error| ApiError::internal(error.to_string()))
}
