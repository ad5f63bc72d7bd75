//! Prometheus query alarms: `GET <url>/api/v1/query?query=<query>`, the answer's numbers
//! compared with the alarm's threshold. An instant vector fires when any of its series
//! crosses; an empty one is "no data" and does not fire (the query names nothing yet).

use std::time::Duration;

use fleetmesh_state::model::alarms::{Alarm, PrometheusAlarm};
use fleetmesh_transport::BoxFuture;
use serde_json::Value;

use super::{AlarmProbe, PollError, Reading, Role};

/// How long one query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The numbers in a query API answer (`vector` or `scalar`).
///
/// # Errors
/// The answer is not JSON, says `"status": "error"`, or holds something else.
pub fn values(body: &[u8]) -> Result<Vec<f64>, PollError> {
    let answer: Value = serde_json::from_slice(body)
        .map_err(|error| PollError(format!("the answer is not the query API's JSON: {error}")))?;
    if answer["status"] != "success" {
        let reason = answer["error"].as_str().unwrap_or("no reason given");
        return Err(PollError(format!("the query failed: {reason}")));
    }
    let number = |pair: &Value| -> Result<f64, PollError> {
        pair.get(1)
            .and_then(Value::as_str)
            .and_then(|text| text.parse::<f64>().ok())
            .ok_or_else(|| PollError(format!("a sample is not [time, \"number\"]: {pair}")))
    };
    let data = &answer["data"];
    match data["resultType"].as_str() {
        Some("scalar") => Ok(vec![number(&data["result"])?]),
        Some("vector") => {
            let series = data["result"].as_array().ok_or_else(|| PollError("the vector has no result list".into()))?;
            series.iter().map(|series| number(&series["value"])).collect()
        }
        other => Err(PollError(format!("the query gives {}, not one number per series", other.unwrap_or("nothing")))),
    }
}

/// What `alarm` says about `values`.
pub fn reading(alarm: &PrometheusAlarm, values: &[f64]) -> Reading {
    let threshold = alarm.threshold.0;
    let crossing = values.iter().copied().find(|value| alarm.comparison_operator.fires(*value, threshold));
    match (crossing, values.first()) {
        (Some(value), _) => {
            Reading { firing: true, detail: format!("value {value} {:?} {threshold}", alarm.comparison_operator) }
        }
        (None, Some(value)) => Reading { firing: false, detail: format!("value {value}") },
        (None, None) => Reading { firing: false, detail: "no data".into() },
    }
}

/// Queries Prometheus servers with a blocking client on the blocking pool.
#[derive(Default)]
pub struct PrometheusProbe {
    agent: std::sync::OnceLock<ureq::Agent>,
}

impl AlarmProbe for PrometheusProbe {
    /// One query per alarm, all at once on the blocking pool.
    fn read(&self, alarms: Vec<Alarm>, _role: Role) -> BoxFuture<'static, Vec<Result<Reading, PollError>>> {
        let agent = self.agent.get_or_init(|| fleetmesh_aws::outbound_agent(QUERY_TIMEOUT, 5)).clone();
        Box::pin(async move {
            let queries: Vec<_> = alarms
                .into_iter()
                .map(|alarm| {
                    let agent = agent.clone();
                    tokio::task::spawn_blocking(move || match &alarm.prometheus {
                        Some(prometheus) => query(&agent, prometheus),
                        None => {
                            Err(PollError(format!("alarm {} is a CloudWatch alarm, not a Prometheus one", alarm.name)))
                        }
                    })
                })
                .collect();
            let mut readings = Vec::with_capacity(queries.len());
            for query in queries {
                readings.push(
                    query.await.unwrap_or_else(|error| Err(PollError(format!("the query task failed: {error}")))),
                );
            }
            readings
        })
    }
}

fn query(agent: &ureq::Agent, alarm: &PrometheusAlarm) -> Result<Reading, PollError> {
    let url = format!("{}/api/v1/query", alarm.url.trim_end_matches('/'));
    let response = agent.get(&url).query("query", &alarm.query).call().map_err(|error| PollError(error.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .map_err(|error| PollError(format!("reading the answer: {error}")))?;
    if !status.is_success() && status.as_u16() != 400 && status.as_u16() != 422 {
        return Err(PollError(format!("Prometheus answered {status}")));
    }
    Ok(reading(alarm, &values(&body)?))
}
