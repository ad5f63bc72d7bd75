use proptest::prelude::*;

use super::*;

/// A request botocore 1.44.8 signed (`SigV4Auth(credentials, "codedeploy",
/// "eu-west-3").add_auth`): the signature is botocore's, not ours.
const SECRET: &str = "fleetmesh/test+secret/0123456789abcdefABCD";
const BODY: &[u8] = br#"{"deploymentId": "d-1234"}"#;
const AUTHORIZATION: &str =
    "AWS4-HMAC-SHA256 Credential=AKIAFLEETMESH0000001/20261204/eu-west-3/codedeploy/aws4_request, \
     SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
     Signature=9da784372c140cc03bb0d49df9d41c1b9bc455a5b6ca08a77877ff576d2a2d75";
const TARGET: &str = "CodeDeploy_20141006.GetDeployment";

fn botocore_request<'a>(authorization: &'a str, body: &'a [u8]) -> RequestParts<'a> {
    RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: vec![
            ("X-Amz-Target", TARGET.as_bytes()),
            ("Content-Type", b"application/x-amz-json-1.1"),
            ("User-Agent", b"aws-cli/1.46.3"),
            ("X-Amz-Date", b"20261204T214349Z"),
            ("Authorization", authorization.as_bytes()),
            ("host", b"127.0.0.1:28401"),
        ],
        body,
    }
}

fn now() -> i64 {
    parse_amz_date("20261204T214349Z").unwrap_or_default()
}

#[test]
fn a_request_botocore_signed_verifies() {
    let signed = signed(&botocore_request(AUTHORIZATION, BODY)).expect("parses");
    assert_eq!(signed.access_key_id, "AKIAFLEETMESH0000001");
    assert_eq!(signed.scope, "20261204/eu-west-3/codedeploy/aws4_request");
    assert_eq!(verify(&signed, SECRET, now()), Ok(()));
    assert_eq!(verify(&signed, SECRET, now() + SKEW_MAX_SECS), Ok(()));
    assert!(binds(&signed, TARGET, BODY));
    assert!(!binds(&signed, "CodeDeploy_20141006.StopDeployment", BODY));
    assert!(!binds(&signed, TARGET, br#"{"deploymentId": "d-9999"}"#));
}

#[test]
fn a_wrong_secret_a_changed_body_or_an_old_date_is_refused_by_name() {
    let signed_request = signed(&botocore_request(AUTHORIZATION, BODY)).expect("parses");
    let wrong = verify(&signed_request, "another secret", now());
    assert!(matches!(&wrong, Err(AuthError::Invalid(message)) if message.contains("does not match")), "{wrong:?}");
    assert_eq!(wrong.map_err(|error| error.exception()), Err("InvalidSignatureException"));
    let changed = signed(&botocore_request(AUTHORIZATION, br#"{"deploymentId": "d-9"}"#)).expect("parses");
    assert!(verify(&changed, SECRET, now()).is_err());
    let late = verify(&signed_request, SECRET, now() + SKEW_MAX_SECS + 1);
    assert!(matches!(&late, Err(AuthError::Invalid(message)) if message.contains("15 minutes")), "{late:?}");
    let mut other_service = signed_request.clone();
    other_service.scope = "20261204/eu-west-3/s3/aws4_request".into();
    assert!(matches!(verify(&other_service, SECRET, now()), Err(AuthError::Invalid(m)) if m.contains("codedeploy")));
}

#[test]
fn headers_that_do_not_sign_what_matters_are_refused() {
    let missing = signed(&RequestParts { headers: vec![], ..botocore_request(AUTHORIZATION, BODY) });
    assert_eq!(missing.map_err(|error| error.exception()), Err("MissingAuthenticationTokenException"));
    let unsigned_target = AUTHORIZATION.replace(";x-amz-target", "");
    let refused = signed(&botocore_request(&unsigned_target, BODY));
    assert!(matches!(&refused, Err(AuthError::Invalid(m)) if m.contains("x-amz-target must be signed")), "{refused:?}");
    let basic = signed(&botocore_request("Basic dXNlcjpwYXNz", BODY));
    assert_eq!(basic.map_err(|error| error.exception()), Err("MissingAuthenticationTokenException"));
    let short = AUTHORIZATION.replace("Signature=9da7", "Signature=");
    assert!(matches!(signed(&botocore_request(&short, BODY)), Err(AuthError::Invalid(_))));
}

#[test]
fn amz_dates_convert_to_epoch_seconds() {
    assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
    assert_eq!(parse_amz_date("20000301T000000Z"), Some(951_868_800));
    assert_eq!(parse_amz_date("20261204T214349Z"), Some(1_796_420_629));
    for secs in [0, 951_868_800, 1_796_420_629, 4_102_444_799] {
        assert_eq!(parse_amz_date(&amz_date(secs)), Some(secs), "{secs}");
    }
    assert_eq!(amz_date(1_796_420_629), "20261204T214349Z");
    for bad in ["2026-12-04T21:43:49Z", "20261304T000000Z", "20261204T246000Z", "", "20261204T214349"] {
        assert_eq!(parse_amz_date(bad), None, "{bad}");
    }
}

#[test]
fn query_strings_are_canonicalized_as_sigv4_says() {
    assert_eq!(canonical_query(""), "");
    assert_eq!(canonical_query("b=2&a=1&a%20b=x y"), "a=1&a%20b=x%20y&b=2");
    assert_eq!(canonical_query("flag"), "flag=");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any Authorization header and body: an answer, never a panic.
    #[test]
    fn any_authorization_header_is_answered(header in ".{0,300}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(parsed) = signed(&botocore_request(&header, &body)) {
            let _verdict = verify(&parsed, SECRET, now());
        }
    }

    /// Any Signed value (a member may forward anything): an answer, never a panic.
    #[test]
    fn any_forwarded_signature_is_answered(
        key in "[A-Z0-9]{0,24}", date in ".{0,20}", scope in "[a-z0-9/_-]{0,60}",
        canonical in ".{0,200}", signature in "[0-9a-f]{0,70}",
    ) {
        let forwarded = Signed { access_key_id: key, amz_date: date, scope, canonical_request: canonical, signature };
        prop_assert!(verify(&forwarded, SECRET, now()).is_err());
    }
}
