//! The model's member names are CodeDeploy's: every field of a type named after a
//! botocore shape (or aliased to one) is a member of that shape in
//! `codedeploy/2014-10-06/service-2.json`, unless it is one of fleetmesh's documented
//! extensions below. The fixture holds the member names of the shapes the model uses,
//! taken from botocore 1.35.0 (PyPI `botocore`, `botocore/data/codedeploy/2014-10-06`).

use std::collections::{BTreeMap, BTreeSet};

const FIXTURE: &str = include_str!("botocore-codedeploy-2014-10-06.json");
const SOURCES: &[&str] = &[
    include_str!("../src/operations.rs"),
    include_str!("../src/shapes.rs"),
    include_str!("../src/lists.rs"),
    include_str!("../src/batch.rs"),
    include_str!("../src/deployments.rs"),
    include_str!("../src/blue_green.rs"),
    include_str!("../src/lambda.rs"),
    include_str!("../src/platform_targets.rs"),
    include_str!("../src/sources.rs"),
];

/// CodeDeploy's shapes whose Rust type is spelled otherwise (acronyms in camel case).
const RENAMED: &[(&str, &str)] = &[("ECSTarget", "EcsTarget"), ("ECSTaskSet", "EcsTaskSetInfo")];

/// fleetmesh's members beyond CodeDeploy's, per type.
const EXTENSIONS: &[(&str, &[&str])] = &[
    (
        "DeploymentInfo",
        &[
            "deploymentGroupId",
            "minimumHealthyHosts",
            "revisionId",
            "waves",
            "targetWaves",
            "createdBy",
            "stoppedBy",
            "blueGreenPhase",
            "greenTrafficPercent",
        ],
    ),
    // Audit: who created it (docs/security.md).
    ("ApplicationInfo", &["createdBy"]),
    ("DeploymentGroupInfo", &["createdBy"]),
    ("DeploymentConfigInfo", &["createdBy"]),
    ("GetDeploymentGroupOutput", &["targetNodes"]),
    ("RevisionLocation", &["revisionId"]),
    ("InstanceTarget", &["wave"]),
    // The leader knows a task set's target group by ARN (AWS gives `targetGroup.name`).
    ("ECSTaskSet", &["targetGroupArn"]),
    ("GetApplicationRevisionOutput", &["manifest"]),
    ("StopDeploymentOutput", &["rollbackInfo"]),
    // Bakes in seconds for short canaries and tests (issue 14): the state's
    // `traffic_routing` types, whose other members are AWS's.
    ("TimeBasedCanary", &["canaryIntervalSeconds"]),
    ("TimeBasedLinear", &["linearIntervalSeconds"]),
    // A Lambda hook's execution id on its event while it waits (issue 15, DESIGN.md).
    ("LifecycleEvent", &["lifecycleEventHookExecutionId"]),
];

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for character in snake.chars() {
        if character == '_' {
            upper = true;
        } else if upper {
            out.extend(character.to_uppercase());
            upper = false;
        } else {
            out.push(character);
        }
    }
    out
}

/// Every struct of the sources with its serialized member names (flattened fields are
/// skipped: their own type is checked), and every `pub type A = B;`.
fn structs() -> (BTreeMap<String, Vec<String>>, BTreeMap<String, String>) {
    let (mut structs, mut aliases) = (BTreeMap::new(), BTreeMap::new());
    for source in SOURCES {
        let mut current: Option<(String, Vec<String>)> = None;
        let mut flatten = false;
        for line in source.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("pub type ") {
                if let Some((alias, target)) = rest.trim_end_matches(';').split_once(" = ") {
                    aliases.insert(alias.to_string(), target.to_string());
                }
            } else if let Some(rest) = line.strip_prefix("pub struct ") {
                let name = rest.split([' ', '{', '(', ';']).next().unwrap_or_default().to_string();
                if line.ends_with('{') {
                    current = Some((name, Vec::new()));
                }
            } else if line == "}" {
                if let Some((name, fields)) = current.take() {
                    structs.insert(name, fields);
                }
            } else if line.contains("serde(flatten)") {
                flatten = true;
            } else if let (Some((_, fields)), Some(rest)) = (current.as_mut(), line.strip_prefix("pub ")) {
                if let Some((field, _)) = rest.split_once(':') {
                    if !flatten {
                        fields.push(camel(field));
                    }
                    flatten = false;
                }
            }
        }
    }
    (structs, aliases)
}

#[test]
fn member_names_are_codedeploys_or_documented_extensions() {
    let fixture: serde_json::Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    let shapes = fixture["shapes"].as_object().expect("shapes");
    let (structs, aliases) = structs();
    let extensions: BTreeMap<&str, BTreeSet<&str>> =
        EXTENSIONS.iter().map(|(name, members)| (*name, members.iter().copied().collect())).collect();
    let mut checked = 0;
    let mut wrong = Vec::new();
    let named = structs.keys().map(|name| (name.clone(), name.clone()));
    let renamed = RENAMED.iter().map(|(shape, type_name)| (shape.to_string(), type_name.to_string()));
    let aliased = aliases.iter().map(|(alias, target)| (alias.clone(), target.clone())).chain(renamed);
    for (shape, type_name) in named.chain(aliased) {
        let (Some(members), Some(fields)) = (shapes.get(&shape), structs.get(&type_name)) else { continue };
        let members: BTreeSet<&str> = members.as_array().into_iter().flatten().filter_map(|m| m.as_str()).collect();
        let allowed = extensions.get(shape.as_str());
        for field in fields {
            if !members.contains(field.as_str()) && !allowed.is_some_and(|allowed| allowed.contains(field.as_str())) {
                wrong.push(format!("{shape}.{field} (type {type_name})"));
            }
        }
        checked += 1;
    }
    assert!(wrong.is_empty(), "members that are neither CodeDeploy's nor listed extensions: {wrong:?}");
    assert!(checked >= 35, "only {checked} shapes were checked: the source scan lost track");
}

#[test]
fn every_codedeploy_operation_of_the_fixture_is_an_operation_of_the_model() {
    let fixture: serde_json::Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    for operation in fixture["operations"].as_object().expect("operations").keys() {
        assert!(fleetmesh_model::OPERATION_NAMES.contains(&operation.as_str()), "{operation} is missing");
    }
}
