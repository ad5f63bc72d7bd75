//! The alarm decision, the reading of Prometheus answers and of CloudWatch alarm states,
//! and the split of a round between the probes.

use std::sync::{Arc, Mutex};

use fleetmesh_aws::{AlarmState, AlarmStateValue};
use fleetmesh_state::model::alarms::{Alarm, AlarmConfiguration, ComparisonOperator, PrometheusAlarm, Threshold};
use fleetmesh_transport::BoxFuture;

use super::cloudwatch::readings;
use super::prometheus::{reading, values};
use super::{verdict, AlarmProbe, PollError, Probes, Reading, Role};

fn configuration(ignore: bool) -> AlarmConfiguration {
    AlarmConfiguration { enabled: true, ignore_poll_alarm_failure: ignore, alarms: Vec::new() }
}

fn quiet() -> Result<Reading, PollError> {
    Ok(Reading { firing: false, detail: "value 1".into() })
}

#[test]
fn a_firing_alarm_stops_and_a_failed_poll_stops_unless_ignored() {
    let on = Ok(Reading { firing: true, detail: "value 9 GreaterThanThreshold 5".into() });
    let failed = || Err(PollError("connection refused".into()));
    let readings = vec![("a".to_string(), failed()), ("b".to_string(), on)];
    for ignore in [false, true] {
        let stop = verdict(&configuration(ignore), &readings).expect("a firing alarm stops either way");
        assert_eq!(stop, "alarm b is on: value 9 GreaterThanThreshold 5", "the firing one is named first");
    }
    let unread = vec![("a".to_string(), quiet()), ("b".to_string(), failed())];
    let stop = verdict(&configuration(false), &unread).expect("stops");
    assert!(stop.starts_with("alarm b could not be read") && stop.ends_with("connection refused"), "{stop}");
    assert_eq!(verdict(&configuration(true), &unread), None);
    assert_eq!(verdict(&configuration(false), &[("a".to_string(), quiet())]), None);
}

#[test]
fn prometheus_answers_are_read_as_the_query_api_writes_them() {
    let vector = br#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"job":"a"},"value":[1700000000.1,"0.5"]},{"metric":{"job":"b"},"value":[1700000000.1,"7"]}]}}"#;
    assert_eq!(values(vector).expect("read"), vec![0.5, 7.0]);
    let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3.25"]}}"#;
    assert_eq!(values(scalar).expect("read"), vec![3.25]);
    let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    assert_eq!(values(empty).expect("read"), Vec::<f64>::new());
    let failed = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
    assert!(values(failed).is_err_and(|error| error.0.contains("parse error at char 3")));
    assert!(values(b"<html>").is_err());
    let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
    assert!(values(matrix).is_err_and(|error| error.0.contains("matrix")));

    let alarm = PrometheusAlarm {
        url: "http://p".into(),
        query: "q".into(),
        threshold: Threshold(5.0),
        comparison_operator: ComparisonOperator::GreaterThanThreshold,
    };
    assert!(reading(&alarm, &[0.5, 7.0]).firing, "any series crossing fires");
    assert_eq!(reading(&alarm, &[1.0]), Reading { firing: false, detail: "value 1".into() });
    assert_eq!(reading(&alarm, &[]), Reading { firing: false, detail: "no data".into() });
}

fn state(name: &str, state: AlarmStateValue, reason: &str) -> AlarmState {
    AlarmState { name: name.into(), state, reason: reason.into(), is_composite: false }
}

/// ALARM fires; OK and INSUFFICIENT_DATA do not; a name CloudWatch did not answer for is
/// a poll failure naming it, so `verdict` stops on it unless poll failures are ignored.
#[test]
fn cloudwatch_states_fire_only_in_alarm_and_an_unknown_name_is_a_poll_failure() {
    let names: Vec<String> = ["on", "ok", "unsure", "missing", "odd"].map(String::from).to_vec();
    let states = [
        state("ok", AlarmStateValue::Ok, ""),
        state("odd", AlarmStateValue::Unknown("MAYBE".into()), ""),
        state("on", AlarmStateValue::Alarm, "Threshold Crossed: 1 datapoint [3.0] was greater than 1.0"),
        state("unsure", AlarmStateValue::InsufficientData, "no datapoints"),
    ];
    let read = readings(&names, &states, "eu-west-1");
    assert_eq!(
        read[0].as_ref().expect("read"),
        &Reading {
            firing: true,
            detail: "CloudWatch state ALARM (Threshold Crossed: 1 datapoint [3.0] was greater than 1.0)".into()
        }
    );
    assert_eq!(read[1].as_ref().expect("read"), &Reading { firing: false, detail: "CloudWatch state OK".into() });
    assert!(!read[2].as_ref().expect("read").firing, "INSUFFICIENT_DATA does not fire");
    let missing = read[3].as_ref().expect_err("unknown");
    assert_eq!(missing.0, "CloudWatch has no alarm named missing in eu-west-1");
    assert!(read[4].as_ref().is_err_and(|error| error.0.contains("\"MAYBE\"")), "{:?}", read[4]);

    let round: Vec<_> = names.iter().cloned().zip(read).skip(1).collect();
    let stop = verdict(&configuration(false), &round).expect("an unknown alarm stops");
    assert_eq!(
        stop,
        "alarm missing could not be read (ignorePollAlarmFailure is false): CloudWatch has no alarm named missing in eu-west-1"
    );
    assert_eq!(verdict(&configuration(true), &round), None, "ignored");
}

/// Answers `<kind> <name> as <role>` for each alarm, and records what it was asked.
struct Echo {
    kind: &'static str,
    asked: Mutex<Vec<(Vec<String>, Role)>>,
}

impl AlarmProbe for Echo {
    fn read(&self, alarms: Vec<Alarm>, role: Role) -> BoxFuture<'static, Vec<Result<Reading, PollError>>> {
        let names: Vec<String> = alarms.into_iter().map(|alarm| alarm.name).collect();
        self.asked.lock().expect("lock").push((names.clone(), role.clone()));
        let kind = self.kind;
        let shown = role.unwrap_or_default();
        let answers = names
            .iter()
            .map(|name| Ok(Reading { firing: false, detail: format!("{kind} {name} as {shown}") }))
            .collect();
        Box::pin(async move { answers })
    }
}

/// A round asks each probe once for its own kind (one CloudWatch call for all of them)
/// with the group's role, and gives the answers back in the configuration's order; a
/// kind with no alarms is not asked.
#[tokio::test]
async fn a_round_asks_each_kind_once_and_keeps_the_configurations_order() {
    let prometheus = Arc::new(Echo { kind: "prometheus", asked: Mutex::default() });
    let cloudwatch = Arc::new(Echo { kind: "cloudwatch", asked: Mutex::default() });
    let probes = Probes { prometheus: prometheus.clone(), cloudwatch: cloudwatch.clone() };
    let query = PrometheusAlarm {
        url: "http://p".into(),
        query: "q".into(),
        threshold: Threshold(1.0),
        comparison_operator: ComparisonOperator::GreaterThanThreshold,
    };
    let by_name = |name: &str| Alarm { name: name.into(), prometheus: None };
    let by_query = |name: &str| Alarm { name: name.into(), prometheus: Some(query.clone()) };
    let alarms = [by_name("c1"), by_query("p1"), by_name("c2"), by_query("p2")];
    let role = Some("arn:aws:iam::1:role/deployer".to_string());
    let read = probes.read(&alarms, role.clone()).await;
    let shown: Vec<(String, String)> =
        read.into_iter().map(|(name, answer)| (name, answer.expect("read").detail)).collect();
    let at = |name: &str, detail: &str| (name.to_string(), detail.to_string());
    assert_eq!(
        shown,
        [
            at("c1", "cloudwatch c1 as arn:aws:iam::1:role/deployer"),
            at("p1", "prometheus p1 as arn:aws:iam::1:role/deployer"),
            at("c2", "cloudwatch c2 as arn:aws:iam::1:role/deployer"),
            at("p2", "prometheus p2 as arn:aws:iam::1:role/deployer"),
        ]
    );
    assert_eq!(*cloudwatch.asked.lock().expect("lock"), [(vec!["c1".to_string(), "c2".to_string()], role)]);

    let only_queries = probes.read(&[by_query("p3")], None).await;
    assert_eq!(only_queries.len(), 1);
    assert_eq!(cloudwatch.asked.lock().expect("lock").len(), 1, "no CloudWatch call without CloudWatch alarms");
    assert_eq!(prometheus.asked.lock().expect("lock").len(), 2);
}
