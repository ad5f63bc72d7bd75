//! The alarm decision and the reading of Prometheus answers.

use fleetmesh_state::model::alarms::{AlarmConfiguration, ComparisonOperator, PrometheusAlarm, Threshold};

use super::prometheus::{reading, values};
use super::{verdict, PollError, Reading};

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
