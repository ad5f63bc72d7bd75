use fleetmesh_state::model::ids::{DeploymentId, UnixMillis};

use super::*;

#[test]
fn every_operation_parses_by_name_and_names_itself() {
    for name in OPERATION_NAMES {
        match Operation::parse(name, b"{}") {
            Ok(operation) => assert_eq!(operation.name(), *name),
            // Operations that need more than nothing say which field is missing.
            Err(ModelError::InvalidInput { operation, field, reason }) => {
                assert_eq!(operation, *name);
                assert!(field.is_some(), "{name}: {reason}");
                assert!(reason.contains("missing field"), "{name}: {reason}");
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
    // A member the input does not declare is refused by name, at any depth: a request
    // is never half understood.
    let error = Operation::parse("ListDeployments", br#"{"nextTokens": "x"}"#).unwrap_err();
    assert_eq!(error.field(), Some("nextTokens"), "{error}");
    let error = Operation::parse(
        "CreateDeploymentGroup",
        br#"{"applicationName": "a", "deploymentGroupName": "g",
            "onPremisesInstanceTagFilters": [{"Key": "k", "Type": "KEY_ONLY", "Colour": "red"}]}"#,
    )
    .unwrap_err();
    assert_eq!(error.field(), Some("onPremisesInstanceTagFilters[0].Colour"), "{error}");
    let error = Operation::parse(
        "CreateDeployment",
        br#"{"applicationName": "a", "deploymentGroupName": "g", "updateOutdatedInstancesOnly": true,
            "revisionId": "00000000000000000000000000000000000000000000000000000000000000aa"}"#,
    )
    .unwrap_err();
    assert_eq!(error.field(), Some("updateOutdatedInstancesOnly"), "{error}");
    // A member of the flattened revision reference names itself.
    let error = Operation::parse(
        "CreateDeployment",
        br#"{"applicationName": "a", "deploymentGroupName": "g",
        "revisionId": "00"}"#,
    )
    .unwrap_err();
    assert_eq!(error.field(), Some("revisionId"), "{error}");
    // fleetmesh's extensions are declared members.
    let operation = Operation::parse(
        "Prefetch",
        br#"{"revisionId": "00000000000000000000000000000000000000000000000000000000000000aa", "allNodes": true}"#,
    );
    assert!(operation.is_ok(), "{operation:?}");
}

#[test]
fn a_wrong_type_names_the_field_and_echoes_are_cut_short() {
    let error = Operation::parse("CreateApplication", br#"{"applicationName": 5}"#).unwrap_err();
    assert_eq!(error.field(), Some("applicationName"));
    assert!(error.to_string().contains("applicationName: invalid type"), "{error}");
    let error = Operation::parse(
        "CreateDeploymentConfig",
        br#"{"deploymentConfigName": "c",
        "minimumHealthyHosts": {"type": "HOST_COUNT", "value": -1}}"#,
    )
    .unwrap_err();
    assert_eq!(error.field(), Some("minimumHealthyHosts.value"), "{error}");
    let huge = "x".repeat(100_000);
    let body = format!(r#"{{"applicationName": "a", "computePlatform": "{huge}", "{huge}": 1}}"#);
    let error = Operation::parse("CreateApplication", body.as_bytes()).unwrap_err();
    assert!(error.to_string().len() < 600, "{}", error.to_string().len());
    let body = format!(r#"{{"{huge}": 1}}"#);
    let error = Operation::parse("ListApplications", body.as_bytes()).unwrap_err();
    assert!(error.to_string().len() < 600 && error.field().is_some_and(|field| field.len() < 200), "{error}");
}

#[test]
fn bounds_name_the_field() {
    let check = |name: &str, body: &str| Operation::parse(name, body.as_bytes()).unwrap().check();
    let long = "a".repeat(101);
    let error = check("CreateApplication", &format!(r#"{{"applicationName": "{long}"}}"#)).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("applicationName"));
    assert!(error.message.contains("101 characters") && error.message.len() < 300, "{}", error.message);
    assert!(check("CreateApplication", &format!(r#"{{"applicationName": "{}"}}"#, "a".repeat(100))).is_ok());
    let error =
        check("GetDeploymentGroup", r#"{"applicationName": "a", "deploymentGroupName": "has space"}"#).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("deploymentGroupName"));
    let error = check(
        "CreateDeployment",
        &format!(r#"{{"applicationName": "a", "deploymentGroupName": "g", "description": "{}"}}"#, "d".repeat(257)),
    )
    .unwrap_err();
    assert_eq!(error.field.as_deref(), Some("description"));
    let error = check(
        "CreateDeploymentGroup",
        r#"{"applicationName": "a", "deploymentGroupName": "g", "onPremisesTagSet": {"onPremisesTagSetList":
            [[{"Key": "k", "Type": "KEY_ONLY"}], [{"Type": "KEY_ONLY"}]]}}"#,
    )
    .unwrap_err();
    assert_eq!(error.field.as_deref(), Some("onPremisesTagSet.onPremisesTagSetList[1][0].Key"), "{error}");
    let error = check(
        "CreateDeploymentConfig",
        r#"{"deploymentConfigName": "c",
        "minimumHealthyHosts": {"type": "FLEET_PERCENT", "value": 4294967295}}"#,
    )
    .unwrap_err();
    assert_eq!(error.field.as_deref(), Some("minimumHealthyHosts.value"));
    let error = check("CreateJoinToken", r#"{"ttlSeconds": 18446744073709551615}"#).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("ttlSeconds"));
}

#[test]
fn echoes_are_cut_short() {
    assert_eq!(bounds::echo("ab"), "\"ab\"");
    assert_eq!(bounds::echo(&"é".repeat(150)), format!("{:?}…", "é".repeat(100)));
    let message = format!("unknown variant `{}`, expected `A` or \"{}\"", "v".repeat(500), "s".repeat(500));
    let short = bounds::shorten_echoes(&message);
    assert!(short.len() < 300 && short.contains("expected `A` or"), "{short}");
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
        revision: Some(RevisionLocation {
            revision_type: RevisionLocationType::S3,
            revision_id: None,
            ..Default::default()
        }),
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

#[test]
fn a_manifest_with_a_member_it_does_not_know_is_refused_by_path() {
    use fleetmesh_state::model::ids::ChunkHash;
    use fleetmesh_state::model::revision::{ChunkRef, ChunkingParams, EntryKind, ManifestEntry, MANIFEST_FORMAT};
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        chunking: ChunkingParams { algorithm: "fastcdc-v2020".into(), min_bytes: 16, avg_bytes: 64, max_bytes: 256 },
        entries: vec![ManifestEntry {
            path: "appspec.yml".into(),
            mode: 0o644,
            kind: EntryKind::File { size: 3, chunks: vec![ChunkRef(ChunkHash::of(b"abc"), 3)] },
        }],
    };
    let input = |manifest: serde_json::Value| {
        let body = serde_json::json!({"applicationName": "a", "manifest": manifest});
        Operation::parse("RegisterApplicationRevision", body.to_string().as_bytes())
    };
    let plain = serde_json::to_value(&manifest).unwrap();
    let Ok(Operation::RegisterPushedRevision(parsed)) = input(plain.clone()) else { panic!("a plain manifest") };
    assert_eq!(parsed.manifest, manifest);
    // An entry's member (entries flatten their kind, where serde alone would drop it)
    // and a nested one are named with their path; a client's hash would not match.
    let mut extra = plain.clone();
    extra["entries"][0]["owner"] = serde_json::json!("root");
    let error = input(extra).unwrap_err();
    assert!(error.to_string().contains("unknown field `entries[0].owner`"), "{error}");
    assert_eq!(error.field(), Some("manifest.entries[0].owner"), "{error}");
    let mut nested = plain;
    nested["chunking"]["window"] = serde_json::json!(48);
    let error = input(nested).unwrap_err();
    assert!(error.to_string().contains("unknown field `chunking.window`"), "{error}");
}

#[test]
fn routing_configs_are_strict_and_checked_naming_the_member() {
    // CreateDeploymentConfig with a canary in seconds, then with an unknown member,
    // both intervals, a percentage of 100 and a type that does not match: asserts the
    // first parses, checks and needs level 9, and each other is a bad request naming
    // the member at fault.
    let parse = |body: &str| Operation::parse("CreateDeploymentConfig", body.as_bytes());
    let good = parse(
        r#"{"deploymentConfigName": "c", "computePlatform": "Server", "trafficRoutingConfig":
        {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryIntervalSeconds": 30}}}"#,
    )
    .expect("parses");
    assert!(good.check().is_ok());
    assert_eq!(good.feature_level(), FeatureLevel::TRAFFIC_CONTROL);
    let error = parse(
        r#"{"deploymentConfigName": "c", "trafficRoutingConfig":
        {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryBake": 30}}}"#,
    )
    .unwrap_err();
    assert!(error.to_string().contains("canaryBake"), "{error}");
    let checked = |body: &str| parse(body).expect("parses").check().unwrap_err();
    let error = checked(
        r#"{"deploymentConfigName": "c", "trafficRoutingConfig": {"type": "TimeBasedLinear", "timeBasedLinear":
        {"linearPercentage": 10, "linearInterval": 1, "linearIntervalSeconds": 30}}}"#,
    );
    assert_eq!(error.field.as_deref(), Some("trafficRoutingConfig.timeBasedLinear.linearInterval"));
    assert!(error.message.contains("both given"), "{}", error.message);
    let error = checked(
        r#"{"deploymentConfigName": "c", "trafficRoutingConfig": {"type": "TimeBasedCanary", "timeBasedCanary":
        {"canaryPercentage": 100, "canaryInterval": 1}}}"#,
    );
    assert_eq!(error.field.as_deref(), Some("trafficRoutingConfig.timeBasedCanary.canaryPercentage"));
    let error = checked(
        r#"{"deploymentConfigName": "c", "trafficRoutingConfig": {"type": "AllAtOnce", "timeBasedLinear":
        {"linearPercentage": 10, "linearInterval": 1}}}"#,
    );
    assert_eq!(error.field.as_deref(), Some("trafficRoutingConfig.timeBasedLinear"));
}

#[test]
fn a_stop_rolls_back_as_asked_else_as_the_deployment_is_configured() {
    use fleetmesh_state::model::resources::{AutoRollbackConfiguration, AutoRollbackEvent};
    let on_request =
        AutoRollbackConfiguration { enabled: true, events: vec![AutoRollbackEvent::DeploymentStopOnRequest] };
    let disabled = AutoRollbackConfiguration { enabled: false, ..on_request.clone() };
    let stop =
        |asked| StopDeploymentInput { deployment_id: DeploymentId("d-AAAAAAAAA".into()), auto_rollback_enabled: asked };
    let cases = [
        (None, &on_request, true),
        (None, &AutoRollbackConfiguration::on_failure(), false),
        (None, &disabled, false),
        (Some(false), &on_request, false),
        (Some(true), &disabled, true),
    ];
    for (asked, configuration, rolls_back) in cases {
        assert_eq!(stop(asked).rolls_back(configuration), rolls_back, "{asked:?} {configuration:?}");
    }
}
