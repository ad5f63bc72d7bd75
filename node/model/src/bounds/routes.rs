//! Bounds of the traffic route operations.

use fleetmesh_state::model::routes::{
    DRAIN_SECONDS_MAX, ROUTER_TAGS_MAX, ROUTE_COMMAND_BYTES_MAX, ROUTE_TARGETS_MAX, ROUTE_WEIGHT_MAX,
};

use super::{cut, echo, text, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX};
use crate::OperationError;

/// A TCP port: 1–65535.
pub(super) fn port(field: &str, value: u32) -> Result<(), OperationError> {
    if value == 0 || value > u32::from(u16::MAX) {
        return Err(OperationError::invalid(field, format!("{value} is not a port (1 to 65535)")));
    }
    Ok(())
}

/// A route's router selector: 1–10 pairs, keys and values within tag lengths.
pub(super) fn router_tags(tags: &std::collections::BTreeMap<String, String>) -> Result<(), OperationError> {
    if tags.is_empty() || tags.len() > ROUTER_TAGS_MAX {
        return Err(OperationError::invalid(
            "routerTags",
            format!("{} tags; a route needs 1 to {ROUTER_TAGS_MAX} (--router-tag KEY=VALUE)", tags.len()),
        ));
    }
    for (key, value) in tags {
        if key.is_empty() {
            return Err(OperationError::invalid("routerTags", "a tag key must not be empty"));
        }
        text("routerTags key", key, TAG_KEY_CHARS_MAX)?;
        text(&format!("routerTags.{}", cut(key)), value, TAG_VALUE_CHARS_MAX)?;
    }
    Ok(())
}

/// A route's drain time: at most [`DRAIN_SECONDS_MAX`] seconds.
pub(super) fn drain_seconds(seconds: Option<u32>) -> Result<(), OperationError> {
    match seconds {
        Some(seconds) if seconds > DRAIN_SECONDS_MAX => Err(OperationError::invalid(
            "drainSeconds",
            format!("{seconds} is more than the maximum, {DRAIN_SECONDS_MAX}"),
        )),
        _ => Ok(()),
    }
}

/// A route's command: an absolute path of at most [`ROUTE_COMMAND_BYTES_MAX`] bytes.
pub(super) fn route_command(command: Option<&str>) -> Result<(), OperationError> {
    match command {
        Some(path) if !path.starts_with('/') || path.len() > ROUTE_COMMAND_BYTES_MAX || path.contains('\0') => {
            Err(OperationError::invalid(
                "command",
                format!("{} is not an absolute path of at most {ROUTE_COMMAND_BYTES_MAX} bytes", echo(path)),
            ))
        }
        _ => Ok(()),
    }
}

/// A route's targets: at most [`ROUTE_TARGETS_MAX`], weights within bounds, no node twice.
pub(super) fn route_targets(targets: &[crate::RouteTargetInput]) -> Result<(), OperationError> {
    if targets.len() > ROUTE_TARGETS_MAX {
        return Err(OperationError::invalid(
            "targets",
            format!("{} targets; the most is {ROUTE_TARGETS_MAX}", targets.len()),
        ));
    }
    for (index, target) in targets.iter().enumerate() {
        if target.weight > ROUTE_WEIGHT_MAX {
            return Err(OperationError::invalid(
                &format!("targets[{index}].weight"),
                format!("{} is more than the maximum, {ROUTE_WEIGHT_MAX}", target.weight),
            ));
        }
        if targets[..index].iter().any(|earlier| earlier.target_id == target.target_id) {
            return Err(OperationError::invalid(
                &format!("targets[{index}].targetId"),
                format!("node {} is listed twice", target.target_id),
            ));
        }
    }
    Ok(())
}
