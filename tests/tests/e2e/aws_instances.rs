//! On-premises instances through the real AWS CLI: a name registered and tagged, a node
//! restarted with `--instance-name` takes it (its tags join the instance's), groups
//! select the node by the instance's tags as they change, a deregistered instance's node
//! is no target, and the errors carry AWS's exception names.

use std::time::Duration;

use fleetmesh_model::PlanDeploymentOutput;
use fleetmesh_tests::{wait_until, write_bundle, Options, TestCluster};
use serde_json::Value;

use super::aws_protocol::{access_key, aws, aws_json};

/// The node ids a dry run of group `group` would deploy to (empty when it would not run).
fn planned_targets(cluster: &TestCluster, group: &str, revision: &str) -> Vec<String> {
    let args = [
        "deploy",
        "create-deployment",
        "--application-name",
        "app",
        "--deployment-group-name",
        group,
        "--revision",
        revision,
        "--dry-run",
        "--json",
    ];
    let output = cluster.cli(1, &args);
    let Ok(plan) = serde_json::from_slice::<PlanDeploymentOutput>(&output.stdout) else {
        return Vec::new();
    };
    let mut targets: Vec<String> = plan
        .steps
        .iter()
        .flat_map(|step| step.target_ids.clone().unwrap_or_default())
        .map(|id| id.to_string())
        .collect();
    targets.sort();
    targets
}

/// The node id of node `index` (ids follow join order, not indices).
fn node_id(cluster: &TestCluster, index: u32) -> String {
    let status = cluster.cli_json(1, &["cluster", "status", "--json"]).expect("cluster status");
    let api = cluster.nodes[&index].api.to_string();
    let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
    let node = nodes.iter().find(|node| node["api"].as_str() == Some(api.as_str()));
    node.map(|node| node["id"].to_string()).unwrap_or_else(|| panic!("node {index} ({api}) in {status}"))
}

/// `aws deploy <args>` fails with `exception`.
fn refused_with(cluster: &TestCluster, key: &(String, String), args: &[&str], exception: &str) {
    let output = aws(cluster, key, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains(exception), "aws deploy {args:?}: {stderr}");
}

fn tags_of(info: &Value) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = info["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|tag| (tag["Key"].as_str().unwrap_or("").into(), tag["Value"].as_str().unwrap_or("").into()))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags
}

#[test]
fn a_node_takes_a_registered_instance_and_groups_follow_its_tags() {
    let flags = ["--voters", "1", "--aws-region", "eu-west-3", "--aws-account-id", "123456789012"];
    let options = Options { node_flags: flags.iter().map(ToString::to_string).collect(), ..Options::default() };
    let mut cluster = TestCluster::start(3, options);
    let key = access_key(&cluster);

    aws_json(
        &cluster,
        &key,
        &[
            "register-on-premises-instance",
            "--instance-name",
            "box-2",
            "--iam-user-arn",
            "arn:aws:iam::123456789012:user/box-2",
        ],
    );
    refused_with(
        &cluster,
        &key,
        &["register-on-premises-instance", "--instance-name", "box-2"],
        "InstanceNameAlreadyRegisteredException",
    );
    refused_with(
        &cluster,
        &key,
        &[
            "register-on-premises-instance",
            "--instance-name",
            "box-3",
            "--iam-user-arn",
            "arn:aws:iam::123456789012:user/box-2",
        ],
        "IamUserArnAlreadyRegisteredException",
    );
    refused_with(
        &cluster,
        &key,
        &["register-on-premises-instance", "--instance-name", "no spaces"],
        "InvalidInstanceNameException",
    );
    refused_with(
        &cluster,
        &key,
        &["get-on-premises-instance", "--instance-name", "nobody"],
        "InstanceNotRegisteredException",
    );
    aws_json(
        &cluster,
        &key,
        &["add-tags-to-on-premises-instances", "--instance-names", "box-2", "--tags", "Key=env,Value=prod"],
    );
    refused_with(
        &cluster,
        &key,
        &["add-tags-to-on-premises-instances", "--instance-names", "box-2", "nobody", "--tags", "Key=a,Value=b"],
        "InstanceNotRegisteredException",
    );
    let unchanged = aws_json(&cluster, &key, &["get-on-premises-instance", "--instance-name", "box-2"]);
    assert_eq!(tags_of(&unchanged["instanceInfo"]), vec![("env".into(), "prod".into())], "{unchanged}");
    assert_eq!(unchanged["instanceInfo"]["instanceArn"], "arn:aws:codedeploy:eu-west-3:123456789012:instance/box-2");

    // Node 2 (tagged role=web) restarts as the instance: its tags join the instance's.
    cluster.restart_with(2, &["--instance-name", "box-2"]);
    let taken = wait_until("node 2 to take instance box-2", Duration::from_secs(60), || {
        let output = aws(&cluster, &key, &["get-on-premises-instance", "--instance-name", "box-2"]);
        let info: Value = serde_json::from_slice(&output.stdout).ok()?;
        (tags_of(&info["instanceInfo"]).len() == 2).then_some(info)
    });
    assert_eq!(
        tags_of(&taken["instanceInfo"]),
        vec![("env".into(), "prod".into()), ("role".into(), "web".into())],
        "{taken}"
    );
    let listed = aws_json(
        &cluster,
        &key,
        &[
            "list-on-premises-instances",
            "--registration-status",
            "Registered",
            "--tag-filters",
            "Key=env,Value=prod,Type=KEY_AND_VALUE",
        ],
    );
    assert_eq!(listed["instanceNames"], serde_json::json!(["box-2"]), "{listed}");

    // Node 3 naming the same instance runs on without it; the leader says so once.
    cluster.restart_with(3, &["--instance-name", "box-2"]);
    let warning = "names an on-premises instance another node holds";
    wait_until("the leader to say node 3 cannot take box-2", Duration::from_secs(30), || {
        cluster.log(1).contains(warning).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(cluster.log(1).matches(warning).count(), 1, "{}", cluster.log(1));
    let held = aws_json(&cluster, &key, &["get-on-premises-instance", "--instance-name", "box-2"]);
    assert_eq!(held["instanceInfo"]["tags"], taken["instanceInfo"]["tags"], "{held}");

    // `cluster status` names the node that holds the instance, and only that one.
    let status = cluster.cli_json(1, &["cluster", "status", "--json"]).expect("cluster status");
    let named: Vec<(String, Value)> = status["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|node| (node["id"].to_string(), node["instance_name"].clone()))
        .collect();
    for (id, name) in &named {
        let expected = if *id == node_id(&cluster, 2) { Value::from("box-2") } else { Value::Null };
        assert_eq!(*name, expected, "node {id} in {status}");
    }
    let table = cluster.ok(1, &["cluster", "status"]);
    assert!(table.contains("NAME") && table.contains("box-2"), "{table}");

    // Groups select the node by the instance's tags, as they change.
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    cluster.create_group("prod", &["--tag", "env=prod"]);
    cluster.create_group("web", &["--tag", "role=web"]);
    let work = tempfile::tempdir().expect("tempdir");
    write_bundle(work.path(), &[("appspec.yml", "version: 0.0\nos: linux\n", 0o644)]);
    let revision = cluster.push(1, "app", work.path());
    let (one, two, three) = (node_id(&cluster, 1), node_id(&cluster, 2), node_id(&cluster, 3));
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    assert_eq!(planned_targets(&cluster, "prod", &revision), vec![two.clone()]);
    aws_json(
        &cluster,
        &key,
        &["remove-tags-from-on-premises-instances", "--instance-names", "box-2", "--tags", "Key=env,Value=prod"],
    );
    assert_eq!(planned_targets(&cluster, "prod", &revision), Vec::<String>::new());
    assert_eq!(planned_targets(&cluster, "web", &revision), sorted(vec![one.clone(), two.clone(), three.clone()]));
    // A restart keeps the instance's tags: --tag flags do not come back over them.
    cluster.restart_with(2, &["--instance-name", "box-2"]);
    std::thread::sleep(Duration::from_secs(3));
    let kept = aws_json(&cluster, &key, &["get-on-premises-instance", "--instance-name", "box-2"]);
    assert_eq!(tags_of(&kept["instanceInfo"]), vec![("role".into(), "web".into())], "{kept}");

    // Deregistered, its node is no target, and the instance shows when it left.
    aws_json(&cluster, &key, &["deregister-on-premises-instance", "--instance-name", "box-2"]);
    refused_with(
        &cluster,
        &key,
        &["deregister-on-premises-instance", "--instance-name", "box-2"],
        "InstanceNotRegisteredException",
    );
    assert_eq!(planned_targets(&cluster, "web", &revision), sorted(vec![one, three]));
    let batch = aws_json(&cluster, &key, &["batch-get-on-premises-instances", "--instance-names", "box-2", "nobody"]);
    let infos = batch["instanceInfos"].as_array().cloned().unwrap_or_default();
    assert_eq!(infos.len(), 1, "{batch}");
    assert!(infos[0]["deregisterTime"].as_f64().is_some_and(|time| time > 1.7e9), "{batch}");
    let gone = aws_json(&cluster, &key, &["list-on-premises-instances", "--registration-status", "Deregistered"]);
    assert_eq!(gone["instanceNames"], serde_json::json!(["box-2"]), "{gone}");

    // Tags of applications and groups, by the ARNs of the cluster's region and account.
    let app_arn = "arn:aws:codedeploy:eu-west-3:123456789012:application:app";
    let group_arn = "arn:aws:codedeploy:eu-west-3:123456789012:deploymentgroup:app/web";
    aws_json(
        &cluster,
        &key,
        &["tag-resource", "--resource-arn", app_arn, "--tags", "Key=team,Value=shop", "Key=tier,Value=1"],
    );
    aws_json(&cluster, &key, &["tag-resource", "--resource-arn", group_arn, "--tags", "Key=stage,Value=prod"]);
    aws_json(&cluster, &key, &["untag-resource", "--resource-arn", app_arn, "--tag-keys", "tier"]);
    let listed = aws_json(&cluster, &key, &["list-tags-for-resource", "--resource-arn", app_arn]);
    assert_eq!(listed["Tags"], serde_json::json!([{"Key": "team", "Value": "shop"}]), "{listed}");
    let listed = aws_json(&cluster, &key, &["list-tags-for-resource", "--resource-arn", group_arn]);
    assert_eq!(listed["Tags"], serde_json::json!([{"Key": "stage", "Value": "prod"}]), "{listed}");
    aws_json(&cluster, &key, &["create-application", "--application-name", "tagged", "--tags", "Key=owner,Value=ops"]);
    let tagged_arn = "arn:aws:codedeploy:eu-west-3:123456789012:application:tagged";
    let listed = aws_json(&cluster, &key, &["list-tags-for-resource", "--resource-arn", tagged_arn]);
    assert_eq!(listed["Tags"], serde_json::json!([{"Key": "owner", "Value": "ops"}]), "{listed}");
    let elsewhere = "arn:aws:codedeploy:us-east-1:123456789012:application:app";
    refused_with(&cluster, &key, &["list-tags-for-resource", "--resource-arn", elsewhere], "InvalidArnException");
    let missing = "arn:aws:codedeploy:eu-west-3:123456789012:application:nothing";
    refused_with(
        &cluster,
        &key,
        &["tag-resource", "--resource-arn", missing, "--tags", "Key=a,Value=b"],
        "ApplicationDoesNotExistException",
    );
    let config = "arn:aws:codedeploy:eu-west-3:123456789012:deploymentconfig:CodeDeployDefault.AllAtOnce";
    refused_with(&cluster, &key, &["list-tags-for-resource", "--resource-arn", config], "ArnNotSupportedException");
}
