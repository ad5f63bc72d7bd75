//! CodeDeploy's own protocol: the real AWS CLI (v1, PyPI `awscli`) and boto3 drive a
//! cluster over HTTPS with an access key the cluster minted, through an agent (which
//! cannot open the key's secret, so the leader checks each signature), and a raw client
//! gets AWS's errors for what is wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::time::Duration;

use fleetmesh_tests::{http_agent_trusting, moto, wait_until, write_bundle, Options, TestCluster};
use serde_json::Value;

/// The cluster: node 1 the only voter, node 2 an agent; clients talk to node 2.
fn cluster() -> TestCluster {
    let options = Options { node_flags: vec!["--voters".into(), "1".into()], ..Options::default() };
    TestCluster::start(2, options)
}

/// An access key from `fleetmesh cluster create-access-key --json`, once the leader has
/// raised the cluster's feature level to the protocol's (a moment after it forms).
pub(super) fn access_key(cluster: &TestCluster) -> (String, String) {
    let key = wait_until("the AWS protocol's feature level", Duration::from_secs(60), || {
        cluster.cli_json(1, &["cluster", "create-access-key", "--json"])
    });
    let field = |name: &str| key[name].as_str().unwrap_or_else(|| panic!("{name} in {key}")).to_string();
    (field("accessKeyId"), field("secretAccessKey"))
}

/// The virtualenv with the AWS CLI and boto3, or the test fails with the reason.
fn venv() -> PathBuf {
    moto::ensure_installed().unwrap_or_else(|error| panic!("the AWS CLI is not available: {error}"))
}

/// A client's environment: the key, a region, and no files of this machine's user.
fn client_env(command: &mut Command, home: &Path, key: &(String, String)) {
    command
        .env("AWS_ACCESS_KEY_ID", &key.0)
        .env("AWS_SECRET_ACCESS_KEY", &key.1)
        .env("AWS_DEFAULT_REGION", "eu-west-3")
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("HOME", home)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL");
}

/// `aws --endpoint-url <node 2> --ca-bundle <ca.pem> deploy ARGS`.
pub(super) fn aws(cluster: &TestCluster, key: &(String, String), args: &[&str]) -> Output {
    let mut command = Command::new(venv().join("bin/aws"));
    command
        .args(["--endpoint-url", &cluster.api_url(2), "--ca-bundle"])
        .arg(cluster.ca_bundle(2))
        .args(["--output", "json", "deploy"])
        .args(args);
    client_env(&mut command, cluster.dir.path(), key);
    command.output().expect("run aws")
}

pub(super) fn aws_json(cluster: &TestCluster, key: &(String, String), args: &[&str]) -> Value {
    let output = aws(cluster, key, args);
    assert!(
        output.status.success(),
        "aws deploy {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stderr),
        cluster.logs()
    );
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// `aws deploy create-deployment-group`: group `web` of application `shop`, the hosts
/// tagged `role=web`, all at once.
pub(super) fn create_web_group(cluster: &TestCluster, key: &(String, String)) {
    aws_json(
        cluster,
        key,
        &[
            "create-deployment-group",
            "--application-name",
            "shop",
            "--deployment-group-name",
            "web",
            "--on-premises-instance-tag-filters",
            "Key=role,Value=web,Type=KEY_AND_VALUE",
            "--deployment-config-name",
            "CodeDeployDefault.AllAtOnce",
            "--service-role-arn",
            "arn:aws:iam::000000000000:role/codedeploy",
        ],
    );
}

/// `python` on `script` with the client environment and `ENDPOINT`, `CA` set; its stdout.
fn boto3(cluster: &TestCluster, key: &(String, String), script: &str) -> String {
    let mut command = Command::new(venv().join("bin/python"));
    command.arg("-c").arg(script).env("ENDPOINT", cluster.api_url(2)).env("CA", cluster.ca_bundle(2));
    client_env(&mut command, cluster.dir.path(), key);
    let output = command.output().expect("run python");
    assert!(
        output.status.success(),
        "boto3 script failed: {}{}",
        String::from_utf8_lossy(&output.stderr),
        cluster.logs()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The AWS CLI as a CI pipeline runs it: an application and a group, a revision pushed
/// with `fleetmesh deploy push` named as `--s3-location bucket=fleetmesh,key=<id>`, a
/// deployment, `wait deployment-successful`, the deployment read back, and errors by
/// AWS's exception names.
#[test]
fn the_aws_cli_deploys_a_pushed_revision_through_an_agent() {
    let cluster = cluster();
    let key = access_key(&cluster);
    let created = aws_json(&cluster, &key, &["create-application", "--application-name", "shop"]);
    assert!(created["applicationId"].as_str().is_some_and(|id| !id.is_empty()), "{created}");
    create_web_group(&cluster, &key);
    let bundle = cluster.dir.path().join("bundle");
    write_bundle(
        &bundle,
        &[
            (
                "appspec.yml",
                "version: 0.0\nos: linux\nfiles:\n  - source: index.html\n    destination: /srv/shop\nhooks:\n  \
                 ValidateService:\n    - location: validate.sh\n",
                0o644,
            ),
            ("index.html", "<h1>shop v1</h1>\n", 0o644),
            ("validate.sh", "#!/bin/sh\necho \"validated $DEPLOYMENT_ID\"\n", 0o755),
        ],
    );
    let revision = cluster.push(1, "shop", &bundle);
    let location = format!("bucket=fleetmesh,key={revision},bundleType=tar");
    let deployment = aws_json(
        &cluster,
        &key,
        &[
            "create-deployment",
            "--application-name",
            "shop",
            "--deployment-group-name",
            "web",
            "--s3-location",
            &location,
        ],
    );
    let id = deployment["deploymentId"].as_str().expect("deploymentId").to_string();
    let waited = aws(&cluster, &key, &["wait", "deployment-successful", "--deployment-id", &id]);
    assert!(waited.status.success(), "wait: {}{}", String::from_utf8_lossy(&waited.stderr), cluster.logs());
    let info = &aws_json(&cluster, &key, &["get-deployment", "--deployment-id", &id])["deploymentInfo"];
    assert_eq!(info["status"], "Succeeded", "{info}");
    assert_eq!(info["deploymentOverview"]["Succeeded"], 2, "{info}");
    assert_eq!(info["revision"]["revisionType"], "S3", "{info}");
    assert_eq!(info["revision"]["s3Location"]["bucket"], "fleetmesh", "{info}");
    assert_eq!(info["revision"]["s3Location"]["key"], revision.as_str(), "{info}");
    assert!(info["createTime"].is_number(), "timestamps are epoch seconds: {info}");
    for index in [1, 2] {
        let node = &cluster.nodes[&index];
        let installed = node.install_root.join("srv/shop/index.html");
        assert_eq!(std::fs::read_to_string(&installed).ok().as_deref(), Some("<h1>shop v1</h1>\n"), "node {index}");
        // The agent's log of all deployments, which existing tooling tails.
        let log = node.data_dir.join("deployment-root/deployment-logs/codedeploy-agent-deployments.log");
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(log.contains(&format!("] [{id}] [stdout] validated {id}")), "node {index}: {log}");
    }
    let listed = aws_json(&cluster, &key, &["list-deployments", "--application-name", "shop"]);
    assert_eq!(listed["deployments"], serde_json::json!([id]), "{listed}");
    let batch = aws_json(&cluster, &key, &["batch-get-deployments", "--deployment-ids", &id]);
    assert_eq!(batch["deploymentsInfo"][0]["deploymentId"], id.as_str(), "{batch}");

    // Errors by AWS's names, each a non-zero exit that changed nothing.
    let refused = |args: &[&str], name: &str| {
        let output = aws(&cluster, &key, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(&format!("({name})")), "{args:?}: {stderr}");
    };
    refused(&["get-application", "--application-name", "nope"], "ApplicationDoesNotExistException");
    refused(&["create-application", "--application-name", "shop"], "ApplicationAlreadyExistsException");
    refused(
        &[
            "create-deployment-group",
            "--application-name",
            "shop",
            "--deployment-group-name",
            "bad",
            "--on-premises-instance-tag-filters",
            "Key=role,Value=web,Type=SOMETIMES",
            "--service-role-arn",
            "arn:aws:iam::000000000000:role/codedeploy",
        ],
        "InvalidTagFilterException",
    );
    refused(
        &["get-deployment-group", "--application-name", "shop", "--deployment-group-name", "bad"],
        "DeploymentGroupDoesNotExistException",
    );

    // Renames keep the group's id and history; its deployments follow.
    let before = aws_json(
        &cluster,
        &key,
        &["get-deployment-group", "--application-name", "shop", "--deployment-group-name", "web"],
    );
    aws_json(
        &cluster,
        &key,
        &[
            "update-deployment-group",
            "--application-name",
            "shop",
            "--current-deployment-group-name",
            "web",
            "--new-deployment-group-name",
            "prod",
            "--deployment-config-name",
            "CodeDeployDefault.OneAtATime",
        ],
    );
    aws_json(&cluster, &key, &["update-application", "--application-name", "shop", "--new-application-name", "store"]);
    let after = aws_json(
        &cluster,
        &key,
        &["get-deployment-group", "--application-name", "store", "--deployment-group-name", "prod"],
    );
    let (before, after) = (&before["deploymentGroupInfo"], &after["deploymentGroupInfo"]);
    assert_eq!(after["deploymentGroupId"], before["deploymentGroupId"], "{after}");
    assert_eq!(after["deploymentConfigName"], "CodeDeployDefault.OneAtATime", "{after}");
    assert_eq!(after["onPremisesInstanceTagFilters"], before["onPremisesInstanceTagFilters"], "kept: {after}");
    let moved = &aws_json(&cluster, &key, &["get-deployment", "--deployment-id", &id])["deploymentInfo"];
    assert_eq!(
        (moved["applicationName"].as_str(), moved["deploymentGroupName"].as_str()),
        (Some("store"), Some("prod"))
    );
    refused(&["get-application", "--application-name", "shop"], "ApplicationDoesNotExistException");
    let again = aws_json(
        &cluster,
        &key,
        &[
            "create-deployment",
            "--application-name",
            "store",
            "--deployment-group-name",
            "prod",
            "--s3-location",
            &location,
        ],
    );
    let again = again["deploymentId"].as_str().expect("deploymentId").to_string();
    let waited = aws(&cluster, &key, &["wait", "deployment-successful", "--deployment-id", &again]);
    assert!(waited.status.success(), "wait: {}{}", String::from_utf8_lossy(&waited.stderr), cluster.logs());

    let wrong = ("AKIAAAAAAAAAAAAAAAAA".to_string(), key.1.clone());
    let output = aws(&cluster, &wrong, &["list-applications"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("(UnrecognizedClientException)"), "{output:?}");
}

/// boto3 as a script uses it: a hundred and five deployments listed through
/// `get_paginator('list_deployments')` in pages of 100 (and by the AWS CLI, which
/// follows `nextToken` itself), a wrong secret and a revoked key refused by name.
#[test]
fn boto3_pages_lists_and_wrong_or_revoked_keys_are_refused() {
    let cluster = cluster();
    let key = access_key(&cluster);
    let bundle = cluster.dir.path().join("bundle");
    write_bundle(&bundle, &[("appspec.yml", "version: 0.0\nos: linux\n", 0o644)]);
    cluster.ok(1, &["deploy", "create-application", "--application-name", "bulk"]);
    let revision = cluster.push(1, "bulk", &bundle);
    let script = format!(
        r#"
import os, boto3, botocore
client = boto3.client("codedeploy", endpoint_url=os.environ["ENDPOINT"], verify=os.environ["CA"])
client.create_deployment_group(applicationName="bulk", deploymentGroupName="nobody",
    serviceRoleArn="arn:aws:iam::000000000000:role/codedeploy",
    onPremisesInstanceTagFilters=[{{"Key": "role", "Value": "nobody", "Type": "KEY_AND_VALUE"}}])
created = []
for _ in range(105):
    created.append(client.create_deployment(applicationName="bulk", deploymentGroupName="nobody",
        revision={{"revisionType": "S3", "s3Location": {{"bucket": "fleetmesh", "key": "{revision}", "bundleType": "tar"}}}})["deploymentId"])
pages = list(client.get_paginator("list_deployments").paginate(applicationName="bulk"))
listed = [d for page in pages for d in page["deployments"]]
assert [len(page["deployments"]) for page in pages] == [100, 5], [len(p["deployments"]) for p in pages]
assert sorted(listed) == sorted(created) and len(set(listed)) == 105
try:
    client.list_deployments(nextToken="not-a-token")
    raise SystemExit("a foreign nextToken was accepted")
except botocore.exceptions.ClientError as error:
    assert error.response["Error"]["Code"] == "InvalidNextTokenException", error.response
pushed = {{"revisionType": "S3", "s3Location": {{"bucket": "fleetmesh", "key": "{revision}", "bundleType": "tar"}}}}
found = client.batch_get_application_revisions(applicationName="bulk", revisions=[pushed])
assert found["revisions"][0]["revisionLocation"]["s3Location"]["key"] == "{revision}", found
assert found["revisions"][0]["genericRevisionInfo"]["registerTime"].year >= 2026, found
infos = client.batch_get_deployments(deploymentIds=created[:25])["deploymentsInfo"]
assert len(infos) == 25
try:
    client.batch_get_deployments(deploymentIds=created[:26])
    raise SystemExit("26 ids were accepted")
except botocore.exceptions.ClientError as error:
    assert error.response["Error"]["Code"] == "BatchLimitExceededException", error.response
wrong = boto3.client("codedeploy", endpoint_url=os.environ["ENDPOINT"], verify=os.environ["CA"],
    aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
    aws_secret_access_key="wrong" + os.environ["AWS_SECRET_ACCESS_KEY"][5:])
try:
    wrong.list_applications()
    raise SystemExit("a wrong secret was accepted")
except botocore.exceptions.ClientError as error:
    assert error.response["Error"]["Code"] == "InvalidSignatureException", error.response
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
print(len(listed))
"#
    );
    assert_eq!(boto3(&cluster, &key, &script).trim(), "105");
    let listed = aws_json(&cluster, &key, &["list-deployments", "--application-name", "bulk"]);
    assert_eq!(listed["deployments"].as_array().map(Vec::len), Some(105), "the AWS CLI follows nextToken");

    cluster.ok(1, &["cluster", "delete-access-key", "--access-key-id", &key.0]);
    let revoked = r#"
import os, boto3, botocore
client = boto3.client("codedeploy", endpoint_url=os.environ["ENDPOINT"], verify=os.environ["CA"])
try:
    client.list_applications()
    raise SystemExit("a revoked key was accepted")
except botocore.exceptions.ClientError as error:
    print(error.response["Error"]["Code"])
"#;
    assert_eq!(boto3(&cluster, &key, revoked).trim(), "UnrecognizedClientException");
}

/// A raw client: no signature, an unknown operation, a body that is not JSON or too
/// large, each a 4xx with AWS's name; the bearer token works on the protocol too.
#[test]
fn malformed_protocol_requests_get_aws_errors_and_change_nothing() {
    let cluster = TestCluster::start(1, Options::default());
    access_key(&cluster);
    let agent = http_agent_trusting(Some(&cluster.ca_bundle(1)));
    let url = format!("{}/", cluster.api_url(1));
    let call = |target: &str, token: Option<&str>, body: Vec<u8>| {
        let mut request = agent
            .post(&url)
            .header("X-Amz-Target", target)
            .header("Content-Type", "application/x-amz-json-1.1")
            .config()
            .http_status_as_error(false)
            .build();
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request.send(&body[..]).expect("an answer");
        let status = response.status().as_u16();
        let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        (status, body["__type"].as_str().unwrap_or_default().to_string(), body)
    };
    let token = Some(cluster.admin_token.as_str());
    let create = b"{\"applicationName\": \"raw\"}".to_vec();
    let (status, name, _) = call("CodeDeploy_20141006.CreateApplication", None, create.clone());
    assert_eq!((status, name.as_str()), (403, "MissingAuthenticationTokenException"));
    let (status, name, body) = call("CodeDeploy_20141006.CreateApplication", token, create);
    assert_eq!((status, name.as_str()), (200, ""), "{body}");
    let (status, name, _) = call("CodeDeploy_20141006.DeleteEverything", token, b"{}".to_vec());
    assert_eq!((status, name.as_str()), (400, "UnknownOperationException"));
    let (status, name, _) = call("CodeDeploy_20141006.CreateApplication", token, b"{not json".to_vec());
    assert_eq!((status, name.as_str()), (400, "SerializationException"));
    let (status, name, body) =
        call("CodeDeploy_20141006.CreateApplication", token, b"{\"applicationName\": 7}".to_vec());
    assert_eq!((status, name.as_str()), (400, "InvalidApplicationNameException"), "{body}");
    let (status, name, _) = call("CodeDeploy_20141006.ListApplications", token, vec![b' '; 2 << 20]);
    assert_eq!((status, name.as_str()), (413, "SerializationException"));
    let (status, _, body) = call("CodeDeploy_20141006.ListApplications", token, Vec::new());
    assert_eq!((status, body["applications"].clone()), (200, serde_json::json!(["raw"])), "{body}");
}
