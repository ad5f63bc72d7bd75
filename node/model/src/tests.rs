use fleetmesh_state::model::ids::{DeploymentId, UnixMillis};

use super::*;

#[test]
fn every_operation_parses_by_name_and_names_itself() {
    let deployment = br#"{"deploymentId": "d-ABCDEFGHI", "applicationName": "app", "deploymentGroupName": "g",
        "deploymentConfigName": "c", "targetId": "3"}"#;
    for name in OPERATION_NAMES {
        match Operation::parse(name, deployment) {
            Ok(operation) => assert_eq!(operation.name(), *name),
            // Operations that need more than these fields say which one is missing.
            Err(ModelError::InvalidInput { operation, reason }) => {
                assert_eq!(operation, *name);
                assert!(reason.contains("missing field") || reason.contains("revision"), "{name}: {reason}");
            }
            Err(other) => panic!("{name}: {other}"),
        }
    }
}

#[test]
fn a_missing_required_field_is_named() {
    let error = Operation::parse("CreateDeploymentGroup", br#"{"applicationName": "app"}"#).unwrap_err();
    assert!(error.to_string().contains("deploymentGroupName"), "{error}");
    let error = Operation::parse("GetDeployment", b"").unwrap_err();
    assert!(error.to_string().contains("deploymentId"), "{error}");
}

#[test]
fn a_wrong_enum_value_is_refused_with_the_choices() {
    let error = Operation::parse("CreateApplication", br#"{"applicationName": "a", "computePlatform": "Mainframe"}"#)
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("Mainframe") && text.contains("Lambda"), "{text}");
}

#[test]
fn unknown_operations_and_unknown_members() {
    assert_eq!(Operation::parse("Nope", b"{}"), Err(ModelError::UnknownOperation("Nope".into())));
    // SDKs send members a server may not know: they are ignored.
    let operation = Operation::parse("ListDeployments", br#"{"nextToken": "x", "externalId": "y"}"#).unwrap();
    assert_eq!(operation, Operation::ListDeployments(ListDeploymentsInput::default()));
}

#[test]
fn access_of_writes_and_reads() {
    let get = Operation::parse("GetDeployment", br#"{"deploymentId": "d-1"}"#).unwrap();
    let stop = Operation::parse("StopDeployment", br#"{"deploymentId": "d-1"}"#).unwrap();
    assert_eq!(get.access(), Access::Read);
    assert_eq!(stop.access(), Access::Write);
}

#[test]
fn operations_round_trip_between_nodes() {
    let operation = Operation::parse(
        "CreateDeployment",
        br#"{"applicationName": "a", "deploymentGroupName": "g",
            "revision": {"revisionType": "fleetmesh", "revisionId": "00000000000000000000000000000000000000000000000000000000000000aa"},
            "fileExistsBehavior": "OVERWRITE"}"#,
    )
    .unwrap();
    let wire = serde_json::to_string(&operation).unwrap();
    assert_eq!(serde_json::from_str::<Operation>(&wire).unwrap(), operation);
    let Operation::CreateDeployment(input) = operation else { panic!("parsed as another operation") };
    assert!(input.revision.resolve().is_ok());
    assert_eq!(input.file_exists_behavior, Some(FileExistsBehavior::Overwrite));
}

#[test]
fn revision_locations_fleetmesh_does_not_serve_are_refused() {
    let reference = RevisionRef {
        revision_id: None,
        revision: Some(RevisionLocation { revision_type: RevisionLocationType::S3, revision_id: None }),
    };
    let error = reference.resolve().unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadRequest);
    assert!(error.message.contains("S3"), "{}", error.message);
    assert_eq!(RevisionRef::default().resolve().unwrap_err().message, "missing revisionId");
}

#[test]
fn timestamps_are_epoch_seconds() {
    let at = EpochSeconds::from(UnixMillis(1_700_000_000_123));
    assert_eq!(serde_json::to_string(&at).unwrap(), "1700000000.123");
    assert_eq!(at.as_millis(), 1_700_000_000_123);
    assert!((EpochSeconds(10.5).secs_since(EpochSeconds(10.0)) - 0.5).abs() < 1e-9);
    assert_eq!(EpochSeconds(1.0).secs_since(EpochSeconds(2.0)), 0.0);
    let range = TimeRange { start: Some(EpochSeconds(10.0)), end: None };
    assert!(range.contains(EpochSeconds(10.0)) && !range.contains(EpochSeconds(9.9)));
}

#[test]
fn lifecycle_event_names_round_trip() {
    for name in LifecycleEventName::ALL {
        assert_eq!(name.as_str().parse::<LifecycleEventName>(), Ok(name));
        assert_eq!(serde_json::to_value(name).unwrap(), serde_json::json!(name.as_str()));
    }
    assert!("Installl".parse::<LifecycleEventName>().is_err());
}

#[test]
fn error_kinds_map_to_statuses_and_back() {
    for kind in [
        ErrorKind::BadRequest,
        ErrorKind::Unauthorized,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::Internal,
        ErrorKind::Unavailable,
    ] {
        assert_eq!(ErrorKind::from_status(kind.status()), kind);
    }
}

#[test]
fn outputs_serialize_without_the_operation_tag() {
    let output = Output::CreateDeployment(CreateDeploymentOutput { deployment_id: DeploymentId("d-1".into()) });
    assert_eq!(output.name(), "CreateDeployment");
    assert_eq!(output.to_json(), serde_json::json!({"deploymentId": "d-1"}));
}

#[test]
fn milliseconds_from_an_older_release_read_as_seconds() {
    let old: EpochSeconds = serde_json::from_str("1700000000123").unwrap();
    assert_eq!(old.as_millis(), 1_700_000_000_123);
    let new: EpochSeconds = serde_json::from_str("1700000000.123").unwrap();
    assert_eq!(new.as_millis(), 1_700_000_000_123);
    assert!(serde_json::from_str::<EpochSeconds>("\"yesterday\"").is_err());
}

#[test]
fn join_token_bounds_defaults_and_levels() {
    // Parses CreateJoinToken inputs at and past the bounds; asserts the refusals name
    // the field, the lifetimes (default 24 h, 0 never, N), and which inputs need level 4.
    let parse = |body: &str| match Operation::parse("CreateJoinToken", body.as_bytes()) {
        Ok(Operation::CreateJoinToken(input)) => input,
        other => panic!("{body}: {other:?}"),
    };
    assert_eq!(parse("{}").lifetime_seconds(), Some(86_400));
    assert_eq!(parse(r#"{"ttlSeconds": 0}"#).lifetime_seconds(), None);
    assert_eq!(parse(r#"{"ttlSeconds": 60}"#).lifetime_seconds(), Some(60));
    assert_eq!(parse(r#"{"ttlSeconds": 315360000}"#).check(), Ok(()));
    let too_long = parse(r#"{"ttlSeconds": 18446744073709551615}"#).check().unwrap_err();
    assert_eq!(too_long.kind, ErrorKind::BadRequest);
    assert!(too_long.message.starts_with("ttlSeconds: 18446744073709551615 is more than the maximum, 315360000"));
    let zero = parse(r#"{"maxUses": 0}"#).check().unwrap_err();
    assert_eq!(zero.message, "maxUses: 0 is not between 1 and 1000000");
    assert!(parse(r#"{"maxUses": 1000001}"#).check().is_err());
    assert_eq!(parse(r#"{"maxUses": 3}"#).check(), Ok(()));
    assert_eq!(Operation::CreateJoinToken(parse("{}")).feature_level(), FeatureLevel::BASE);
    let limited = Operation::CreateJoinToken(parse(r#"{"maxUses": 3}"#));
    assert_eq!(limited.feature_level(), FeatureLevel::JOIN_TOKEN_LIFECYCLE);
    let delete = Operation::parse("DeleteJoinToken", br#"{"tokenId": "jt-0123456789abcdef"}"#).unwrap();
    assert_eq!(delete.feature_level(), FeatureLevel::JOIN_TOKEN_LIFECYCLE);
    assert_eq!(delete.access(), Access::Write);
    assert_eq!(Operation::parse("ListJoinTokens", b"").unwrap().access(), Access::Read);
    // An input without maxUses encodes as an older release's did, for forwarding.
    let wire = serde_json::to_string(&parse(r#"{"ttlSeconds": 5}"#)).unwrap();
    assert_eq!(wire, r#"{"ttlSeconds":5,"description":""}"#);
}
