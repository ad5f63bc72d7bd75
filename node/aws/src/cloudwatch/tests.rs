//! The request's shape and signature against botocore's for the same request, the
//! endpoint's resolution, and answers and errors read as CloudWatch writes them.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;

use super::*;

const ENDPOINT: &str = "https://monitoring.us-east-1.amazonaws.com";

/// `DescribeAlarms` of `HighErrors` and `Latency`, as [`CloudWatchAlarms::describe_alarms`]
/// writes it.
fn body() -> Vec<u8> {
    let names = ["HighErrors".to_string(), "Latency".to_string()];
    let input = DescribeAlarmsInput {
        alarm_names: &names,
        alarm_types: ["CompositeAlarm", "MetricAlarm"],
        max_records: NAMES_PER_CALL_MAX,
        next_token: None,
    };
    serde_json::to_vec(&input).expect("serializes")
}

fn header<'a>(request: &'a SignedRequest, name: &str) -> Option<&'a str> {
    request.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

/// 2026-01-02T03:04:05Z; the credentials are AWS's documentation example.
fn signed(session_token: Option<&str>) -> SignedRequest {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
    let credentials = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token.map(str::to_string),
        None,
        "test",
    );
    signed_request(ENDPOINT, "us-east-1", credentials, body(), now).expect("signs")
}

/// The expected signatures are botocore's `SigV4Auth(credentials, "monitoring",
/// "us-east-1")` on the same POST (same headers and body, clock patched to the same
/// second), so the two implementations agree byte for byte.
#[test]
fn a_describe_alarms_request_is_aws_json_signed_for_monitoring_as_botocore_signs_it() {
    assert_eq!(
        String::from_utf8(body()).expect("utf-8"),
        r#"{"AlarmNames":["HighErrors","Latency"],"AlarmTypes":["CompositeAlarm","MetricAlarm"],"MaxRecords":100}"#
    );
    let request = signed(None);
    assert_eq!(request.url, "https://monitoring.us-east-1.amazonaws.com/");
    assert_eq!(request.body, body());
    assert_eq!(header(&request, "content-type"), Some("application/x-amz-json-1.0"));
    assert_eq!(header(&request, "x-amz-target"), Some("GraniteServiceVersion20100801.DescribeAlarms"));
    assert_eq!(header(&request, "x-amz-date"), Some("20260102T030405Z"));
    assert_eq!(header(&request, "x-amz-security-token"), None);
    assert_eq!(
        header(&request, "authorization"),
        Some(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-east-1/monitoring/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target;x-amzn-query-mode, \
             Signature=4e20ca8cefac4e93d1f170ffa696d9f25e9f875632b8ffd2d8ed64d3eb0d97dc"
        )
    );

    let session = signed(Some("session-token"));
    assert_eq!(header(&session, "x-amz-security-token"), Some("session-token"));
    assert_eq!(
        header(&session, "authorization"),
        Some(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-east-1/monitoring/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target;x-amzn-query-mode, \
             Signature=aa6d0d9a5376c7fde3fc88d39762469fbfe8e4256e1c870996297c2075e1a061"
        )
    );
}

#[test]
fn the_endpoint_is_the_settings_then_cloudwatchs_variable_then_the_general_one_then_aws() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string())
    };
    let both = env(&[("AWS_ENDPOINT_URL_CLOUDWATCH", "http://cw:1/"), ("AWS_ENDPOINT_URL", "http://all:2")]);
    assert_eq!(endpoint_url(Some("http://mine:3/"), both, "eu-west-1"), "http://mine:3");
    assert_eq!(endpoint_url(None, both, "eu-west-1"), "http://cw:1");
    assert_eq!(endpoint_url(None, env(&[("AWS_ENDPOINT_URL", "http://all:2")]), "eu-west-1"), "http://all:2");
    let blank = env(&[("AWS_ENDPOINT_URL_CLOUDWATCH", " "), ("AWS_ENDPOINT_URL", "http://all:2")]);
    assert_eq!(endpoint_url(None, blank, "eu-west-1"), "http://all:2", "an empty variable is skipped");
    assert_eq!(endpoint_url(None, env(&[]), "eu-west-1"), "https://monitoring.eu-west-1.amazonaws.com");
    assert_eq!(endpoint_url(None, env(&[]), "cn-north-1"), "https://monitoring.cn-north-1.amazonaws.com.cn");
}

#[test]
fn metric_and_composite_alarms_are_read_and_errors_carry_aws_code_and_message() {
    // As moto answers: epoch-second timestamps and fields this client does not read.
    let answer = br#"{"CompositeAlarms": [{"AlarmName": "all", "StateValue": "OK", "AlarmRule": "ALARM(a1)"}],
        "MetricAlarms": [{"AlarmName": "a1", "StateValue": "ALARM", "StateReason": "Threshold Crossed",
        "StateUpdatedTimestamp": 1767323045.5, "Threshold": 1.0}]}"#;
    let output = read_answer(200, None, answer).expect("reads");
    let states: Vec<_> = output.metric_alarms.into_iter().map(|record| record.into_state(false)).collect();
    assert_eq!(
        states,
        [AlarmState {
            name: "a1".into(),
            state: AlarmStateValue::Alarm,
            reason: "Threshold Crossed".into(),
            is_composite: false
        }]
    );
    let composite = output.composite_alarms.into_iter().next().expect("one").into_state(true);
    assert_eq!((composite.state, composite.reason.as_str(), composite.is_composite), (AlarmStateValue::Ok, "", true));
    assert_eq!(AlarmStateValue::from_wire("INSUFFICIENT_DATA"), AlarmStateValue::InsufficientData);
    assert_eq!(AlarmStateValue::from_wire("MAYBE").to_string(), "MAYBE");
    assert!(read_answer(200, None, b"<html>").is_err_and(|error| error.code == "SerializationError"));

    let denied = br#"{"__type": "com.amazonaws.cloudwatch#AccessDeniedException", "message": "no, you may not"}"#;
    let error = read_answer(400, None, denied).expect_err("an error");
    assert_eq!((error.code.as_str(), error.message.as_str()), ("AccessDeniedException", "no, you may not"));
    assert_eq!(
        (error.kind, error.to_string().as_str()),
        (AwsErrorKind::Permanent, "DescribeAlarms: AccessDeniedException: no, you may not")
    );
    let throttled = br#"{"__type": "ThrottlingException:http://internal", "Message": "Rate exceeded"}"#;
    let error = read_answer(400, Some("Throttling;Sender"), throttled).expect_err("an error");
    assert_eq!((error.code.as_str(), error.message.as_str()), ("Throttling", "Rate exceeded"));
    assert_eq!(error.kind, AwsErrorKind::Retryable);
    let error = read_answer(503, None, b"").expect_err("an error");
    assert_eq!((error.code.as_str(), error.kind), ("Http503", AwsErrorKind::Retryable));
}
