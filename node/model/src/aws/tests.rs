use serde_json::json;

use super::*;
use crate::Operation;

/// CodeDeploy's exception shapes, as botocore 1.44.8 lists them.
const BOTOCORE: &str = include_str!("botocore-exceptions.txt");
/// The errors every AWS JSON service may answer (not in a service's model).
const COMMON: &[&str] = &[
    "AccessDeniedException",
    "InternalFailure",
    "MissingAuthenticationTokenException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "UnknownOperationException",
    "SerializationException",
];

fn known(name: &str) -> bool {
    COMMON.contains(&name) || BOTOCORE.lines().any(|line| line == name)
}

fn error(kind: ErrorKind, message: &str, field: Option<&str>) -> OperationError {
    OperationError { kind, message: message.into(), field: field.map(Into::into), code: None }
}

#[test]
fn the_errors_of_the_state_get_aws_names() {
    let cases = [
        (
            "CreateDeployment",
            ErrorKind::NotFound,
            "application shop does not exist",
            "ApplicationDoesNotExistException",
        ),
        (
            "CreateDeployment",
            ErrorKind::NotFound,
            "deployment group web of application shop does not exist",
            "DeploymentGroupDoesNotExistException",
        ),
        ("GetDeployment", ErrorKind::NotFound, "deployment d-1 does not exist", "DeploymentDoesNotExistException"),
        (
            "GetDeploymentConfig",
            ErrorKind::NotFound,
            "deployment configuration X does not exist",
            "DeploymentConfigDoesNotExistException",
        ),
        ("GetApplicationRevision", ErrorKind::NotFound, "revision ab does not exist", "RevisionDoesNotExistException"),
        (
            "GetDeploymentTarget",
            ErrorKind::NotFound,
            "node 7 is not a target of d-1",
            "DeploymentTargetDoesNotExistException",
        ),
        (
            "CreateApplication",
            ErrorKind::Conflict,
            "application shop already exists",
            "ApplicationAlreadyExistsException",
        ),
        (
            "CreateDeploymentGroup",
            ErrorKind::Conflict,
            "deployment group web already exists",
            "DeploymentGroupAlreadyExistsException",
        ),
        ("ListDeployments", ErrorKind::Unavailable, "no quorum", "ThrottlingException"),
        ("GetDeployment", ErrorKind::Internal, "bug", "InternalFailure"),
    ];
    for (operation, kind, message, expected) in cases {
        let name = exception(operation, &error(kind, message, None));
        assert_eq!(name, expected, "{operation}: {message}");
        assert!(known(&name), "{name} is not an AWS name");
    }
}

#[test]
fn bad_fields_get_the_exception_of_the_field() {
    let cases = [
        ("onPremisesInstanceTagFilters[0].Type", "unknown variant", "InvalidTagFilterException"),
        ("applicationName", "missing field `applicationName`", "ApplicationNameRequiredException"),
        ("applicationName", "must match [A-Za-z0-9._+=,@-]", "InvalidApplicationNameException"),
        ("deploymentId", "not a deployment id", "InvalidDeploymentIdException"),
        ("nextToken", "not a token this list gave", "InvalidNextTokenException"),
        ("description", "longer than 256", "DescriptionTooLongException"),
        ("somethingElse", "wrong", "InvalidInputException"),
    ];
    for (field, message, expected) in cases {
        let name = exception("CreateDeploymentGroup", &error(ErrorKind::BadRequest, message, Some(field)));
        assert_eq!(name, expected, "{field}");
    }
}

#[test]
fn every_name_the_mapping_can_give_is_aws_s() {
    let source = include_str!("../aws.rs");
    let names = source
        .split('"')
        .filter(|piece| piece.ends_with("Exception") || *piece == "InternalFailure")
        .filter(|piece| piece.chars().all(|c| c.is_ascii_alphanumeric()));
    for name in names {
        assert!(known(name), "{name} is neither botocore's nor a common AWS error");
    }
}

#[test]
fn every_wire_operation_is_an_operation_of_the_model() {
    for name in WIRE_OPERATIONS {
        let parsed = Operation::parse(name, b"{}");
        assert!(
            !matches!(parsed, Err(crate::ModelError::UnknownOperation(_))),
            "{name} is not an operation of the model"
        );
    }
}

#[test]
fn pushed_revisions_read_and_show_as_objects_of_the_reserved_bucket() {
    let id = "ab".repeat(32);
    let mut body = json!({
        "applicationName": "shop",
        "revision": {"revisionType": "S3", "s3Location": {"bucket": "fleetmesh", "key": id, "bundleType": "tar"}}
    });
    revisions_in(&mut body);
    assert_eq!(body["revision"], json!({"revisionType": "fleetmesh", "revisionId": id}));
    let mut other = json!({"revision": {"revisionType": "S3", "s3Location": {"bucket": "mine", "key": "a.zip"}}});
    let before = other.clone();
    revisions_in(&mut other);
    assert_eq!(other, before);
    let mut answer = json!({"deploymentsInfo": [{"revision": {"revisionType": "fleetmesh", "revisionId": id}}]});
    revisions_out(&mut answer);
    assert_eq!(
        answer["deploymentsInfo"][0]["revision"],
        json!({"revisionType": "S3", "s3Location": {"bucket": "fleetmesh", "key": id, "bundleType": "tar"}})
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn targets() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(WIRE_OPERATIONS).prop_map(|name| format!("{TARGET_PREFIX}{name}")),
            ".{0,60}",
        ]
    }

    fn bodies() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            r#"\{("(applicationName|deploymentId|deploymentIds|nextToken|revision|x)": (7|"a"|\[\]|\{\}|null|"d-ABCDEFGHI"),? ?){0,4}\}"#
                .prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Any target and body: an operation, or a client error with an AWS name and a
        /// message; never a panic, never a 5xx.
        #[test]
        fn any_request_parses_or_is_refused_by_name(target in targets(), body in bodies()) {
            if let Err(error) = parse(&target, &body) {
                prop_assert_eq!(status(&error), 400);
                let name = exception("Any", &error);
                prop_assert!(known(&name), "{} is not an AWS name", name);
                prop_assert!(!error.message.is_empty());
            }
        }
    }
}
