//! Reading the shapes the replicated state defines (tag filters, rollback settings,
//! minimum healthy hosts) out of a request with unknown members refused, as every
//! input of the model does. The state's own types stay lenient: they are also read
//! back from the Raft log, where a stricter reading would change what old entries mean.
//!
//! Each `*_strict` function is a `deserialize_with` for an input field of that type.

use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::model::resources::{
    AutoRollbackConfiguration, AutoRollbackEvent, MinimumHealthyHosts, MinimumHealthyHostsType, TagFilter,
    TagFilterType,
};
use fleetmesh_state::model::revision::Manifest;
use fleetmesh_state::model::traffic_routing::{
    TimeBasedCanary, TimeBasedLinear, TrafficRoutingConfig, TrafficRoutingType,
};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::RevisionLocation;

/// [`TagFilter`], unknown members refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictTagFilter {
    #[serde(rename = "Key", default)]
    key: Option<String>,
    #[serde(rename = "Value", default)]
    value: Option<String>,
    #[serde(rename = "Type")]
    filter_type: TagFilterType,
}

impl From<StrictTagFilter> for TagFilter {
    fn from(filter: StrictTagFilter) -> Self {
        Self { key: filter.key, value: filter.value, filter_type: filter.filter_type }
    }
}

/// [`AutoRollbackConfiguration`], unknown members refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictAutoRollbackConfiguration {
    enabled: bool,
    #[serde(default)]
    events: Vec<AutoRollbackEvent>,
}

/// [`MinimumHealthyHosts`], unknown members refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictMinimumHealthyHosts {
    #[serde(rename = "type")]
    kind: MinimumHealthyHostsType,
    value: u32,
}

/// [`TrafficRoutingConfig`], unknown members refused at every level.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StrictTrafficRoutingConfig {
    #[serde(rename = "type")]
    kind: TrafficRoutingType,
    #[serde(default)]
    time_based_canary: Option<StrictTimeBasedCanary>,
    #[serde(default)]
    time_based_linear: Option<StrictTimeBasedLinear>,
}

/// [`TimeBasedCanary`], unknown members refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StrictTimeBasedCanary {
    canary_percentage: u32,
    #[serde(default)]
    canary_interval: Option<u32>,
    #[serde(default)]
    canary_interval_seconds: Option<u32>,
}

/// [`TimeBasedLinear`], unknown members refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StrictTimeBasedLinear {
    linear_percentage: u32,
    #[serde(default)]
    linear_interval: Option<u32>,
    #[serde(default)]
    linear_interval_seconds: Option<u32>,
}

impl From<StrictTrafficRoutingConfig> for TrafficRoutingConfig {
    fn from(strict: StrictTrafficRoutingConfig) -> Self {
        Self {
            kind: strict.kind,
            time_based_canary: strict.time_based_canary.map(|canary| TimeBasedCanary {
                canary_percentage: canary.canary_percentage,
                canary_interval: canary.canary_interval,
                canary_interval_seconds: canary.canary_interval_seconds,
            }),
            time_based_linear: strict.time_based_linear.map(|linear| TimeBasedLinear {
                linear_percentage: linear.linear_percentage,
                linear_interval: linear.linear_interval,
                linear_interval_seconds: linear.linear_interval_seconds,
            }),
        }
    }
}

fn filters(list: Vec<StrictTagFilter>) -> Vec<TagFilter> {
    list.into_iter().map(TagFilter::from).collect()
}

/// An optional list of tag filters.
pub(crate) fn tag_filters_strict<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<TagFilter>>, D::Error> {
    Ok(Option::<Vec<StrictTagFilter>>::deserialize(deserializer)?.map(filters))
}

/// A manifest, unknown members refused at any depth. The revision id is the hash of
/// the manifest as the node encodes it, so a member it would drop silently would register
/// another revision than the one the client hashed.
pub(crate) fn manifest_strict<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Manifest, D::Error> {
    let given = serde_json::Value::deserialize(deserializer)?;
    let manifest = Manifest::deserialize(&given).map_err(D::Error::custom)?;
    let kept = serde_json::to_value(&manifest).map_err(D::Error::custom)?;
    match unknown_member(&given, &kept, "") {
        Some(path) => Err(D::Error::custom(format!("unknown field `{}`", crate::bounds::cut(&path)))),
        None => Ok(manifest),
    }
}

/// The path of the first member of `given` that `kept` (the same value read and written
/// again) does not have. The depth is bounded by the JSON parser's recursion limit.
fn unknown_member(given: &serde_json::Value, kept: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match (given, kept) {
        (Value::Object(given), Value::Object(kept)) => given.iter().find_map(|(key, value)| {
            let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            match kept.get(key) {
                None => Some(here),
                Some(kept) => unknown_member(value, kept, &here),
            }
        }),
        (Value::Array(given), Value::Array(kept)) => given
            .iter()
            .zip(kept)
            .enumerate()
            .find_map(|(index, (given, kept))| unknown_member(given, kept, &format!("{path}[{index}]"))),
        _ => None,
    }
}

/// Groups of tag filters (`onPremisesTagSetList`).
pub(crate) fn tag_groups_strict<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Vec<TagFilter>>, D::Error> {
    Ok(Vec::<Vec<StrictTagFilter>>::deserialize(deserializer)?.into_iter().map(filters).collect())
}

/// Optional rollback settings.
pub(crate) fn rollback_strict<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<AutoRollbackConfiguration>, D::Error> {
    Ok(Option::<StrictAutoRollbackConfiguration>::deserialize(deserializer)?
        .map(|strict| AutoRollbackConfiguration { enabled: strict.enabled, events: strict.events }))
}

/// An optional minimum-healthy-hosts rule.
pub(crate) fn minimum_healthy_hosts_strict<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<MinimumHealthyHosts>, D::Error> {
    Ok(Option::<StrictMinimumHealthyHosts>::deserialize(deserializer)?
        .map(|strict| MinimumHealthyHosts { kind: strict.kind, value: strict.value }))
}

/// An optional traffic-routing config (canary or linear steps).
pub(crate) fn traffic_routing_strict<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<TrafficRoutingConfig>, D::Error> {
    Ok(Option::<StrictTrafficRoutingConfig>::deserialize(deserializer)?.map(TrafficRoutingConfig::from))
}

/// An optional `T` whose errors begin with `field: `: a member of a flattened struct
/// (`RevisionRef`) is read from a buffer that loses its path, so the message names it.
fn named<'de, D: Deserializer<'de>, T: Deserialize<'de>>(field: &str, deserializer: D) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(deserializer).map_err(|error| D::Error::custom(format!("{field}: {error}")))
}

/// `revisionId` of a `RevisionRef`.
pub(crate) fn revision_id_named<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<RevisionId>, D::Error> {
    named("revisionId", deserializer)
}

/// `revision` of a `RevisionRef`.
pub(crate) fn revision_location_named<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<RevisionLocation>, D::Error> {
    named("revision", deserializer)
}
