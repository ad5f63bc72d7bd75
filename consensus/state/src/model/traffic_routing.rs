//! `trafficRoutingConfig` (`codedeploy.md` §4.6): AWS's canary and linear shapes, which
//! fleetmesh also accepts for Server configurations, where they size the waves of an
//! in-place deployment (issue 14, item 4).
//!
//! Two forms, on purpose:
//! - [`TrafficRoutingConfig`] is the shape a user writes and `GetDeploymentConfig`
//!   shows back, AWS's JSON as given (minutes stay minutes; the `…IntervalSeconds`
//!   members are fleetmesh's extension for short bakes). A configuration stores it.
//! - [`TrafficRouting`] is the checked, normalised meaning (percentage and interval in
//!   seconds) that [`TrafficRoutingConfig::normalise`] gives. A deployment copies it at
//!   creation, so the planner never reads the configuration again.
//!
//! ```text
//!  API input ─▶ TrafficRoutingConfig ─normalise()─▶ TrafficRouting ─▶ Deployment ─▶ planner
//!                 (stored in the config)   │ InvalidTrafficRouting: 400 naming the field
//! ```

use serde::{Deserialize, Serialize};

/// Longest interval in minutes (§4.6: at most 2880 minutes between shifts).
pub const TRAFFIC_INTERVAL_MINUTES_MAX: u32 = 2880;
/// Longest interval in seconds: the same 48 hours.
pub const TRAFFIC_INTERVAL_SECONDS_MAX: u32 = TRAFFIC_INTERVAL_MINUTES_MAX * 60;

/// `trafficRoutingConfig` as AWS writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRoutingConfig {
    /// Which of the members below applies.
    #[serde(rename = "type")]
    pub kind: TrafficRoutingType,
    /// Set iff `kind` is `TimeBasedCanary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_based_canary: Option<TimeBasedCanary>,
    /// Set iff `kind` is `TimeBasedLinear`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_based_linear: Option<TimeBasedLinear>,
}

impl TrafficRoutingConfig {
    /// `{"type": "AllAtOnce"}`.
    pub const ALL_AT_ONCE: Self =
        Self { kind: TrafficRoutingType::AllAtOnce, time_based_canary: None, time_based_linear: None };
}

/// `trafficRoutingConfig.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrafficRoutingType {
    /// A first step of `canaryPercentage`, a bake, then the rest.
    TimeBasedCanary,
    /// Steps of `linearPercentage`, one every `linearInterval`.
    TimeBasedLinear,
    /// Everything at once (for Server: the minimum-healthy rule alone).
    AllAtOnce,
}

/// `timeBasedCanary`: exactly one of the two interval members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeBasedCanary {
    /// Percentage of the targets in the canary step, 1–99.
    pub canary_percentage: u32,
    /// The bake after the canary step, in minutes (AWS), at most 2880.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_interval: Option<u32>,
    /// The same in seconds (fleetmesh's extension), at most 172800.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_interval_seconds: Option<u32>,
}

/// `timeBasedLinear`: exactly one of the two interval members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeBasedLinear {
    /// Percentage of the targets in each step, 1–99.
    pub linear_percentage: u32,
    /// The bake between steps, in minutes (AWS), at most 2880.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_interval: Option<u32>,
    /// The same in seconds (fleetmesh's extension), at most 172800.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_interval_seconds: Option<u32>,
}

/// What a checked routing config means for the waves of a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum TrafficRouting {
    /// A first step of `percentage` of the targets, a bake of `interval_seconds` after
    /// its last target finished, then the rest.
    TimeBasedCanary {
        /// 1–99.
        percentage: u32,
        /// 0–172800.
        interval_seconds: u32,
    },
    /// Steps of `percentage` of the targets, each `interval_seconds` after the previous
    /// step's last target finished.
    TimeBasedLinear {
        /// 1–99.
        percentage: u32,
        /// 0–172800.
        interval_seconds: u32,
    },
    /// No steps: the minimum-healthy rule alone.
    AllAtOnce,
}

/// Why a routing config is refused; each names the member at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTrafficRouting {
    /// A percentage outside 1–99.
    #[error("{field} must be 1 to 99, got {value}")]
    Percentage {
        /// The member's path.
        field: &'static str,
        /// What was given.
        value: u32,
    },
    /// Both the minutes and the seconds member were given.
    #[error("{minutes} and {seconds} were both given; give exactly one (minutes, or seconds for short bakes)")]
    BothIntervals {
        /// The minutes member's path.
        minutes: &'static str,
        /// The seconds member's path.
        seconds: &'static str,
    },
    /// Neither interval member was given.
    #[error("{minutes} or {seconds} is required")]
    NoInterval {
        /// The minutes member's path.
        minutes: &'static str,
        /// The seconds member's path.
        seconds: &'static str,
    },
    /// An interval above 2880 minutes (172800 seconds).
    #[error("{field} must be at most {max}, got {value}")]
    IntervalTooLong {
        /// The member's path.
        field: &'static str,
        /// What was given.
        value: u32,
        /// The bound in the member's unit.
        max: u32,
    },
    /// The sub-structure does not match `type`.
    #[error("{field}: {message}")]
    Shape {
        /// The member's path.
        field: &'static str,
        /// What is wrong.
        message: &'static str,
    },
}

impl InvalidTrafficRouting {
    /// The path of the member at fault (for an API error's field).
    pub fn field(&self) -> &'static str {
        match self {
            Self::Percentage { field, .. } | Self::IntervalTooLong { field, .. } | Self::Shape { field, .. } => field,
            Self::BothIntervals { minutes, .. } | Self::NoInterval { minutes, .. } => minutes,
        }
    }
}

const CANARY: &str = "trafficRoutingConfig.timeBasedCanary";
const LINEAR: &str = "trafficRoutingConfig.timeBasedLinear";

impl TrafficRoutingConfig {
    /// Checks the config and gives its meaning.
    ///
    /// # Errors
    /// The first rule broken: a percentage outside 1–99, both or neither interval
    /// member, an interval above 2880 minutes / 172800 seconds, or a sub-structure that
    /// does not match `type` (a canary needs `timeBasedCanary` and no
    /// `timeBasedLinear`, and so on; `AllAtOnce` takes neither).
    pub fn normalise(&self) -> Result<TrafficRouting, InvalidTrafficRouting> {
        let shape = |field, message| InvalidTrafficRouting::Shape { field, message };
        match self.kind {
            TrafficRoutingType::TimeBasedCanary => {
                if self.time_based_linear.is_some() {
                    return Err(shape(LINEAR, "must be absent when type is TimeBasedCanary"));
                }
                let canary = self.time_based_canary.ok_or(shape(CANARY, "is required when type is TimeBasedCanary"))?;
                let percentage =
                    percentage("trafficRoutingConfig.timeBasedCanary.canaryPercentage", canary.canary_percentage)?;
                let interval_seconds = interval_seconds(
                    "trafficRoutingConfig.timeBasedCanary.canaryInterval",
                    canary.canary_interval,
                    "trafficRoutingConfig.timeBasedCanary.canaryIntervalSeconds",
                    canary.canary_interval_seconds,
                )?;
                Ok(TrafficRouting::TimeBasedCanary { percentage, interval_seconds })
            }
            TrafficRoutingType::TimeBasedLinear => {
                if self.time_based_canary.is_some() {
                    return Err(shape(CANARY, "must be absent when type is TimeBasedLinear"));
                }
                let linear = self.time_based_linear.ok_or(shape(LINEAR, "is required when type is TimeBasedLinear"))?;
                let percentage =
                    percentage("trafficRoutingConfig.timeBasedLinear.linearPercentage", linear.linear_percentage)?;
                let interval_seconds = interval_seconds(
                    "trafficRoutingConfig.timeBasedLinear.linearInterval",
                    linear.linear_interval,
                    "trafficRoutingConfig.timeBasedLinear.linearIntervalSeconds",
                    linear.linear_interval_seconds,
                )?;
                Ok(TrafficRouting::TimeBasedLinear { percentage, interval_seconds })
            }
            TrafficRoutingType::AllAtOnce => {
                if self.time_based_canary.is_some() {
                    return Err(shape(CANARY, "must be absent when type is AllAtOnce"));
                }
                if self.time_based_linear.is_some() {
                    return Err(shape(LINEAR, "must be absent when type is AllAtOnce"));
                }
                Ok(TrafficRouting::AllAtOnce)
            }
        }
    }
}

fn percentage(field: &'static str, value: u32) -> Result<u32, InvalidTrafficRouting> {
    if (1..=99).contains(&value) {
        Ok(value)
    } else {
        Err(InvalidTrafficRouting::Percentage { field, value })
    }
}

fn interval_seconds(
    minutes_field: &'static str,
    minutes: Option<u32>,
    seconds_field: &'static str,
    seconds: Option<u32>,
) -> Result<u32, InvalidTrafficRouting> {
    match (minutes, seconds) {
        (Some(_), Some(_)) => {
            Err(InvalidTrafficRouting::BothIntervals { minutes: minutes_field, seconds: seconds_field })
        }
        (None, None) => Err(InvalidTrafficRouting::NoInterval { minutes: minutes_field, seconds: seconds_field }),
        (Some(value), None) if value > TRAFFIC_INTERVAL_MINUTES_MAX => Err(InvalidTrafficRouting::IntervalTooLong {
            field: minutes_field,
            value,
            max: TRAFFIC_INTERVAL_MINUTES_MAX,
        }),
        (None, Some(value)) if value > TRAFFIC_INTERVAL_SECONDS_MAX => Err(InvalidTrafficRouting::IntervalTooLong {
            field: seconds_field,
            value,
            max: TRAFFIC_INTERVAL_SECONDS_MAX,
        }),
        // In range: 2880 · 60 fits a u32 many times over.
        (Some(value), None) => Ok(value * 60),
        (None, Some(value)) => Ok(value),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A TimeBasedCanary config as given (minutes, seconds, both or neither).
    pub(crate) fn canary(percentage: u32, minutes: Option<u32>, seconds: Option<u32>) -> TrafficRoutingConfig {
        TrafficRoutingConfig {
            kind: TrafficRoutingType::TimeBasedCanary,
            time_based_canary: Some(TimeBasedCanary {
                canary_percentage: percentage,
                canary_interval: minutes,
                canary_interval_seconds: seconds,
            }),
            time_based_linear: None,
        }
    }

    #[test]
    fn minutes_and_seconds_normalise_to_seconds_and_print_as_given() {
        // A canary in minutes and a linear config in seconds: asserts both normalise to
        // seconds, and that each serializes back in the unit it was given (AWS shape).
        assert_eq!(
            canary(10, Some(5), None).normalise(),
            Ok(TrafficRouting::TimeBasedCanary { percentage: 10, interval_seconds: 300 })
        );
        let json = serde_json::to_string(&canary(10, Some(5), None)).expect("serializes");
        assert_eq!(json, r#"{"type":"TimeBasedCanary","timeBasedCanary":{"canaryPercentage":10,"canaryInterval":5}}"#);
        let linear: TrafficRoutingConfig = serde_json::from_str(
            r#"{"type":"TimeBasedLinear","timeBasedLinear":{"linearPercentage":25,"linearIntervalSeconds":3}}"#,
        )
        .expect("parses");
        assert_eq!(linear.normalise(), Ok(TrafficRouting::TimeBasedLinear { percentage: 25, interval_seconds: 3 }));
        let back = serde_json::to_string(&linear).expect("serializes");
        assert!(back.contains(r#""linearIntervalSeconds":3"#) && !back.contains("linearInterval\""), "{back}");
    }

    #[test]
    fn bad_configs_are_refused_naming_the_member() {
        // Each rule of `normalise` broken once: asserts the error and the field it names.
        let refused = |config: TrafficRoutingConfig| config.normalise().expect_err("refused");
        let error = refused(canary(0, Some(1), None));
        assert_eq!(error.field(), "trafficRoutingConfig.timeBasedCanary.canaryPercentage");
        assert!(refused(canary(100, Some(1), None)).to_string().contains("1 to 99, got 100"));
        let both = refused(canary(10, Some(1), Some(30))).to_string();
        assert!(both.contains("canaryInterval and") && both.contains("both given"), "{both}");
        assert!(matches!(refused(canary(10, None, None)), InvalidTrafficRouting::NoInterval { .. }));
        assert!(refused(canary(10, Some(2881), None)).to_string().contains("at most 2880"));
        assert!(refused(canary(10, None, Some(172_801))).to_string().contains("at most 172800"));
        assert!(canary(10, Some(2880), None).normalise().is_ok());
        assert!(canary(99, None, Some(172_800)).normalise().is_ok());
        let mut no_canary = canary(10, Some(1), None);
        no_canary.time_based_canary = None;
        assert_eq!(refused(no_canary).field(), CANARY);
        let mut all = canary(10, Some(1), None);
        all.kind = TrafficRoutingType::AllAtOnce;
        assert_eq!(refused(all).field(), CANARY);
        let mut linear = canary(10, Some(1), None);
        linear.kind = TrafficRoutingType::TimeBasedLinear;
        assert_eq!(refused(linear).field(), CANARY);
        let all_at_once = TrafficRoutingConfig {
            kind: TrafficRoutingType::AllAtOnce,
            time_based_canary: None,
            time_based_linear: None,
        };
        assert_eq!(all_at_once.normalise(), Ok(TrafficRouting::AllAtOnce));
    }
}
