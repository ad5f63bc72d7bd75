//! Deployment configurations per compute platform (`codedeploy.md` §4.4–4.6): the
//! predefined Lambda and ECS ones, and the rules a custom configuration of each platform
//! must follow. Pure; the state machine applies the rules from
//! [`FeatureLevel::COMPUTE_PLATFORMS`] on, so entries committed before keep the meaning
//! they had.

use crate::features::FeatureLevel;
use crate::model::ids::UnixMillis;
use crate::model::resources::{
    predefined_configs, ComputePlatform, DeploymentConfig, MinimumHealthyHosts, MinimumHealthyHostsType,
};
use crate::model::traffic_routing::{
    InvalidTrafficRouting, TimeBasedCanary, TimeBasedLinear, TrafficRouting, TrafficRoutingConfig, TrafficRoutingType,
};

/// The longest time from a Lambda or ECS deployment's first shift to its last, in
/// minutes (AWS: 2880, two days).
pub const SHIFT_SPAN_MINUTES_MAX: u64 = 2880;

/// What a Lambda or ECS configuration stores as its minimum-healthy rule: none applies
/// (traffic shifts, no host waves), so the API omits it.
pub const NO_MINIMUM: MinimumHealthyHosts = MinimumHealthyHosts { kind: MinimumHealthyHostsType::HostCount, value: 0 };

/// The Lambda configuration that shifts at once: a Lambda group's default, and what a
/// rollback moves the alias back with.
pub const LAMBDA_ALL_AT_ONCE: &str = "CodeDeployDefault.LambdaAllAtOnce";

/// The ECS configuration of a new ECS group when none is named, and of a rollback.
pub const ECS_ALL_AT_ONCE: &str = "CodeDeployDefault.ECSAllAtOnce";

/// The predefined Lambda configurations (§4.4): name suffix, steps.
const LAMBDA: [(&str, Step); 9] = [
    ("LambdaCanary10Percent5Minutes", Step::Canary(10, 5)),
    ("LambdaCanary10Percent10Minutes", Step::Canary(10, 10)),
    ("LambdaCanary10Percent15Minutes", Step::Canary(10, 15)),
    ("LambdaCanary10Percent30Minutes", Step::Canary(10, 30)),
    ("LambdaLinear10PercentEvery1Minute", Step::Linear(10, 1)),
    ("LambdaLinear10PercentEvery2Minutes", Step::Linear(10, 2)),
    ("LambdaLinear10PercentEvery3Minutes", Step::Linear(10, 3)),
    ("LambdaLinear10PercentEvery10Minutes", Step::Linear(10, 10)),
    ("LambdaAllAtOnce", Step::AllAtOnce),
];

/// The predefined ECS configurations (§4.5).
const ECS: [(&str, Step); 5] = [
    ("ECSLinear10PercentEvery1Minutes", Step::Linear(10, 1)),
    ("ECSLinear10PercentEvery3Minutes", Step::Linear(10, 3)),
    ("ECSCanary10Percent5Minutes", Step::Canary(10, 5)),
    ("ECSCanary10Percent15Minutes", Step::Canary(10, 15)),
    ("ECSAllAtOnce", Step::AllAtOnce),
];

/// A predefined routing: percentage and minutes.
#[derive(Clone, Copy)]
enum Step {
    Canary(u32, u32),
    Linear(u32, u32),
    AllAtOnce,
}

impl Step {
    fn config(self) -> TrafficRoutingConfig {
        let mut config = TrafficRoutingConfig::ALL_AT_ONCE;
        match self {
            Self::Canary(canary_percentage, minutes) => {
                config.kind = TrafficRoutingType::TimeBasedCanary;
                config.time_based_canary = Some(TimeBasedCanary {
                    canary_percentage,
                    canary_interval: Some(minutes),
                    canary_interval_seconds: None,
                });
            }
            Self::Linear(linear_percentage, minutes) => {
                config.kind = TrafficRoutingType::TimeBasedLinear;
                config.time_based_linear = Some(TimeBasedLinear {
                    linear_percentage,
                    linear_interval: Some(minutes),
                    linear_interval_seconds: None,
                });
            }
            Self::AllAtOnce => {}
        }
        config
    }
}

/// The predefined configurations a cluster at `level` has: the Server ones, and from
/// [`FeatureLevel::COMPUTE_PLATFORMS`] on the Lambda and ECS ones too.
pub fn predefined_configs_at(level: FeatureLevel) -> Vec<DeploymentConfig> {
    let mut configs = predefined_configs();
    if level < FeatureLevel::COMPUTE_PLATFORMS {
        return configs;
    }
    let platforms = [(ComputePlatform::Lambda, &LAMBDA[..]), (ComputePlatform::Ecs, &ECS[..])];
    for (compute_platform, table) in platforms {
        configs.extend(table.iter().map(|(suffix, step)| DeploymentConfig {
            deployment_config_name: format!("CodeDeployDefault.{suffix}"),
            deployment_config_id: format!("predefined-{}", suffix.to_ascii_lowercase()),
            compute_platform,
            minimum_healthy_hosts: NO_MINIMUM,
            traffic_routing_config: Some(step.config()),
            create_time: UnixMillis(0),
            created_by: None,
        }));
    }
    configs
}

/// Why a configuration does not fit its compute platform.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPlatformConfig {
    /// The routing config breaks its own rules.
    #[error(transparent)]
    Routing(#[from] InvalidTrafficRouting),
    /// A Lambda or ECS configuration without a routing config.
    #[error(
        "a {0} deployment configuration needs trafficRoutingConfig (AllAtOnce, TimeBasedCanary or TimeBasedLinear)"
    )]
    NoRouting(ComputePlatform),
    /// A Lambda or ECS configuration with a minimum-healthy rule.
    #[error("minimumHealthyHosts applies only to the Server compute platform, not {0}")]
    MinimumHealthyHosts(ComputePlatform),
    /// Linear steps that would take longer than [`SHIFT_SPAN_MINUTES_MAX`].
    #[error(
        "trafficRoutingConfig.timeBasedLinear: {steps} steps {interval_seconds} s apart take {span_minutes} minutes \
         from the first shift to the last; at most {SHIFT_SPAN_MINUTES_MAX} are allowed"
    )]
    SpanTooLong {
        /// Shifts after the first one.
        steps: u64,
        /// Between two shifts.
        interval_seconds: u32,
        /// The whole span, rounded up.
        span_minutes: u64,
    },
}

/// Checks a Lambda or ECS configuration: a routing config that passes its own rules,
/// no minimum-healthy rule (stored as [`NO_MINIMUM`]), and at most
/// [`SHIFT_SPAN_MINUTES_MAX`] from the first shift to the last. Server configurations
/// pass (their rules are checked where they are created).
///
/// # Errors
/// The first rule broken.
pub fn check_platform_config(
    platform: ComputePlatform,
    minimum: &MinimumHealthyHosts,
    routing: Option<&TrafficRoutingConfig>,
) -> Result<(), InvalidPlatformConfig> {
    if platform == ComputePlatform::Server {
        return Ok(());
    }
    if *minimum != NO_MINIMUM {
        return Err(InvalidPlatformConfig::MinimumHealthyHosts(platform));
    }
    let routing = routing.ok_or(InvalidPlatformConfig::NoRouting(platform))?.normalise()?;
    if let TrafficRouting::TimeBasedLinear { percentage, interval_seconds } = routing {
        // 10 % steps: 10 shifts, the first at once, so 9 intervals.
        let steps = u64::from(100u32.div_ceil(percentage)) - 1;
        let span_seconds = steps * u64::from(interval_seconds);
        if span_seconds > SHIFT_SPAN_MINUTES_MAX * 60 {
            let span_minutes = span_seconds.div_ceil(60);
            return Err(InvalidPlatformConfig::SpanTooLong { steps, interval_seconds, span_minutes });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear(percentage: u32, minutes: u32) -> TrafficRoutingConfig {
        Step::Linear(percentage, minutes).config()
    }

    #[test]
    fn lambda_and_ecs_configs_appear_at_their_level() {
        let before = predefined_configs_at(FeatureLevel::BLUE_GREEN_STEPS);
        assert_eq!(before.len(), 3);
        let after = predefined_configs_at(FeatureLevel::COMPUTE_PLATFORMS);
        assert_eq!(after.len(), 3 + 9 + 5);
        let count = |platform| after.iter().filter(|config| config.compute_platform == platform).count();
        assert_eq!((count(ComputePlatform::Lambda), count(ComputePlatform::Ecs)), (9, 5));
        for config in &after[3..] {
            let routing = config.traffic_routing_config.as_ref().map(TrafficRoutingConfig::normalise);
            assert!(matches!(routing, Some(Ok(_))), "{}", config.deployment_config_name);
            assert_eq!(
                check_platform_config(
                    config.compute_platform,
                    &config.minimum_healthy_hosts,
                    config.traffic_routing_config.as_ref()
                ),
                Ok(())
            );
        }
        let canary = after
            .iter()
            .find(|config| config.deployment_config_name == "CodeDeployDefault.LambdaCanary10Percent30Minutes");
        let routing = canary.and_then(|config| config.traffic_routing_config).map(|routing| routing.normalise());
        assert_eq!(routing, Some(Ok(TrafficRouting::TimeBasedCanary { percentage: 10, interval_seconds: 1800 })));
    }

    #[test]
    fn lambda_configs_need_routing_and_no_minimum() {
        let lambda = ComputePlatform::Lambda;
        assert_eq!(check_platform_config(lambda, &NO_MINIMUM, None), Err(InvalidPlatformConfig::NoRouting(lambda)));
        let half = MinimumHealthyHosts { kind: MinimumHealthyHostsType::FleetPercent, value: 50 };
        let routing = Step::AllAtOnce.config();
        assert_eq!(
            check_platform_config(lambda, &half, Some(&routing)),
            Err(InvalidPlatformConfig::MinimumHealthyHosts(lambda))
        );
        assert_eq!(check_platform_config(ComputePlatform::Server, &half, None), Ok(()));
        let bad = Step::Canary(100, 5).config();
        assert!(matches!(
            check_platform_config(ComputePlatform::Ecs, &NO_MINIMUM, Some(&bad)),
            Err(InvalidPlatformConfig::Routing(_))
        ));
    }

    #[test]
    fn linear_span_is_at_most_two_days() {
        // 10 % steps: 9 intervals; 320 minutes each is 2880 minutes exactly.
        assert_eq!(check_platform_config(ComputePlatform::Lambda, &NO_MINIMUM, Some(&linear(10, 320))), Ok(()));
        let error = check_platform_config(ComputePlatform::Lambda, &NO_MINIMUM, Some(&linear(10, 321)));
        assert_eq!(
            error,
            Err(InvalidPlatformConfig::SpanTooLong { steps: 9, interval_seconds: 19_260, span_minutes: 2889 })
        );
        // 99 % steps: two shifts, one interval, which may be the whole 2880 minutes.
        assert_eq!(check_platform_config(ComputePlatform::Ecs, &NO_MINIMUM, Some(&linear(99, 2880))), Ok(()));
        // 1 % steps: 99 intervals of 30 minutes is too long.
        assert!(check_platform_config(ComputePlatform::Ecs, &NO_MINIMUM, Some(&linear(1, 30))).is_err());
    }
}
