//! Alarm gates (`alarmConfiguration`, [`crate::FeatureLevel::ALARMS`]): the alarms the
//! leader polls while a deployment runs; one that fires stops the deployment with
//! `ALARM_ACTIVE` (and rolls it back with `DEPLOYMENT_STOP_ON_ALARM`).
//!
//! Two kinds: a CloudWatch alarm by name (`{"name"}`), and fleetmesh's Prometheus query
//! alarm (`{"name", "prometheus": {"url", "query", "threshold", "comparisonOperator"}}`),
//! which is on while the query's value crosses the threshold.

use serde::{Deserialize, Serialize};

/// Most alarms a group or deployment names (CodeDeploy's limit).
pub const ALARMS_MAX: usize = 10;

/// Most characters of an alarm's name (CloudWatch's limit).
pub const ALARM_NAME_CHARS_MAX: usize = 255;

/// Most characters of a Prometheus query.
pub const PROMETHEUS_QUERY_CHARS_MAX: usize = 4096;

/// Most characters of a Prometheus base URL.
pub const PROMETHEUS_URL_CHARS_MAX: usize = 2048;

/// CodeDeploy's `AlarmConfiguration`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmConfiguration {
    /// Whether the alarms are polled.
    #[serde(default)]
    pub enabled: bool,
    /// A poll that fails lets the deployment go on (true) or stops it (false, AWS's
    /// default).
    #[serde(default)]
    pub ignore_poll_alarm_failure: bool,
    /// The alarms.
    #[serde(default)]
    pub alarms: Vec<Alarm>,
}

impl AlarmConfiguration {
    /// True when there is something to poll.
    pub fn is_active(&self) -> bool {
        self.enabled && !self.alarms.is_empty()
    }
}

/// An alarm: CloudWatch's by name, or a Prometheus query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alarm {
    /// The CloudWatch alarm's name, or the Prometheus alarm's label.
    pub name: String,
    /// A Prometheus query alarm (fleetmesh's extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusAlarm>,
}

/// A Prometheus query alarm: on while `query`'s value compares to `threshold` as
/// `comparisonOperator` says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusAlarm {
    /// The server's base URL (`http(s)://host:9090`); the query goes to `/api/v1/query`.
    pub url: String,
    /// A PromQL instant query giving one number.
    pub query: String,
    /// What the value is compared with.
    pub threshold: Threshold,
    /// How.
    pub comparison_operator: ComparisonOperator,
}

/// A finite threshold (the state is compared for equality; NaN never gets in).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Threshold(pub f64);

// Reflexive: thresholds are checked to be finite before they enter the state.
impl Eq for Threshold {}

/// CloudWatch's comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names)]
pub enum ComparisonOperator {
    /// value > threshold.
    GreaterThanThreshold,
    /// value ≥ threshold.
    GreaterThanOrEqualToThreshold,
    /// value < threshold.
    LessThanThreshold,
    /// value ≤ threshold.
    LessThanOrEqualToThreshold,
}

impl ComparisonOperator {
    /// True when `value` is on the alarm's side of `threshold`.
    pub fn fires(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::GreaterThanThreshold => value > threshold,
            Self::GreaterThanOrEqualToThreshold => value >= threshold,
            Self::LessThanThreshold => value < threshold,
            Self::LessThanOrEqualToThreshold => value <= threshold,
        }
    }
}

/// What is wrong with an alarm configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAlarms(pub String);

/// What is wrong with `configuration`, if anything.
///
/// # Errors
/// Too many alarms, a name empty, too long or given twice, or a Prometheus alarm
/// without an http(s) URL, a query, or a finite threshold.
pub fn check_alarms(configuration: &AlarmConfiguration) -> Result<(), InvalidAlarms> {
    if configuration.alarms.len() > ALARMS_MAX {
        return Err(InvalidAlarms(format!("an alarm configuration names at most {ALARMS_MAX} alarms")));
    }
    let mut names = std::collections::BTreeSet::new();
    for alarm in &configuration.alarms {
        let shown: String = alarm.name.chars().take(ALARM_NAME_CHARS_MAX).collect();
        if alarm.name.is_empty() || alarm.name.chars().count() > ALARM_NAME_CHARS_MAX {
            return Err(InvalidAlarms(format!("alarm name {shown:?} must be 1 to {ALARM_NAME_CHARS_MAX} characters")));
        }
        if !names.insert(alarm.name.as_str()) {
            return Err(InvalidAlarms(format!("two alarms are named {shown:?}")));
        }
        let Some(prometheus) = &alarm.prometheus else { continue };
        if prometheus.url.len() > PROMETHEUS_URL_CHARS_MAX || !super::triggers::is_webhook_url(&prometheus.url) {
            return Err(InvalidAlarms(format!("alarm {shown}: prometheus.url must be an http(s):// URL")));
        }
        if prometheus.query.trim().is_empty() || prometheus.query.len() > PROMETHEUS_QUERY_CHARS_MAX {
            return Err(InvalidAlarms(format!(
                "alarm {shown}: prometheus.query must be 1 to {PROMETHEUS_QUERY_CHARS_MAX} characters"
            )));
        }
        if !prometheus.threshold.0.is_finite() {
            return Err(InvalidAlarms(format!("alarm {shown}: prometheus.threshold must be a finite number")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prometheus(url: &str, query: &str, threshold: f64) -> AlarmConfiguration {
        let alarm = PrometheusAlarm {
            url: url.into(),
            query: query.into(),
            threshold: Threshold(threshold),
            comparison_operator: ComparisonOperator::GreaterThanThreshold,
        };
        AlarmConfiguration {
            enabled: true,
            ignore_poll_alarm_failure: false,
            alarms: vec![Alarm { name: "errors".into(), prometheus: Some(alarm) }],
        }
    }

    #[test]
    fn operators_compare_as_cloudwatch_says() {
        use ComparisonOperator::*;
        assert!(GreaterThanThreshold.fires(2.0, 1.0) && !GreaterThanThreshold.fires(1.0, 1.0));
        assert!(GreaterThanOrEqualToThreshold.fires(1.0, 1.0) && !GreaterThanOrEqualToThreshold.fires(0.5, 1.0));
        assert!(LessThanThreshold.fires(0.5, 1.0) && !LessThanThreshold.fires(1.0, 1.0));
        assert!(LessThanOrEqualToThreshold.fires(1.0, 1.0) && !LessThanOrEqualToThreshold.fires(1.5, 1.0));
    }

    #[test]
    fn bad_alarms_are_named() {
        assert_eq!(check_alarms(&prometheus("http://127.0.0.1:9090", "up", 1.0)), Ok(()));
        let cases = [
            (prometheus("file:///x", "up", 1.0), "http(s)://"),
            (prometheus("http://p:9090", " ", 1.0), "prometheus.query"),
            (prometheus("http://p:9090", "up", f64::NAN), "finite"),
        ];
        for (configuration, expected) in cases {
            let error = check_alarms(&configuration).expect_err("refused");
            assert!(error.0.contains(expected), "{error}");
        }
        let mut twice = prometheus("http://p:9090", "up", 1.0);
        twice.alarms.push(twice.alarms[0].clone());
        assert!(check_alarms(&twice).is_err_and(|error| error.0.contains("two alarms")));
    }
}
