//! Triggers from outside: a local webhook receiver gets CodeDeploy's notifications of a
//! deployment that succeeds, one that fails and rolls back, and one whose leader is
//! killed with -9 in the middle: every event arrives (duplicates allowed, with the same
//! `X-Fleetmesh-Event-Id`), in order per trigger, signed with the trigger's secret or
//! the cluster's `DIR/webhook-secret`. And an SNS topic on moto's server, read through a
//! subscribed SQS queue: CodeDeploy's messages and subjects, published as the group's
//! service role.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_aws::{AwsErrorKind, AwsSettings, SdkSns};
use fleetmesh_model::DeploymentStatus;
use fleetmesh_tests::moto::Moto;
use fleetmesh_tests::{wait_until, write_bundle, HttpStub, Options, StubRequest, TestCluster};
use serde_json::Value;

const APPSPEC: &str = "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/app\n";

const FAILING_APPSPEC: &str = "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/app\n\
                               hooks:\n  ValidateService:\n    - location: hooks/fail.sh\n      timeout: 30\n";

const ALL_EVENTS: &str = r#"["DeploymentStart","DeploymentSuccess","DeploymentFailure","DeploymentStop",
    "DeploymentRollback","DeploymentReady","InstanceStart","InstanceSuccess","InstanceFailure","InstanceReady"]"#;

/// One request the receiver accepted.
#[derive(Clone, Debug)]
struct Received {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn id(&self) -> u64 {
        self.headers.get("x-fleetmesh-event-id").and_then(|id| id.parse().ok()).expect("X-Fleetmesh-Event-Id")
    }

    fn kind(&self) -> &str {
        self.headers.get("x-fleetmesh-event").map_or("", String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A webhook receiver on loopback that refuses its first `refuse` requests with 503 and
/// takes `delay` over each answer (so deliveries lag behind the deployment).
struct Receiver {
    url: String,
    stub: HttpStub,
}

impl Receiver {
    fn start(refuse: u32, delay: Duration) -> Self {
        let refusals = AtomicU32::new(refuse);
        let stub = HttpStub::start(Arc::new(move |_: &StubRequest| {
            std::thread::sleep(delay);
            match refusals.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
                Ok(_) => (503, String::new()),
                Err(_) => (200, String::new()),
            }
        }));
        Self { url: stub.url.clone(), stub }
    }

    /// The requests accepted at `path`.
    fn at(&self, path: &str) -> Vec<Received> {
        self.stub
            .requests()
            .into_iter()
            .filter(|request| request.status == 200 && request.target == path)
            .map(|request| Received { headers: request.headers, body: request.body })
            .collect()
    }
}

fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    format!("sha256={}", hex::encode(ring::hmac::sign(&key, body).as_ref()))
}

/// The trigger events of `deployment` that `requests` hold, first deliveries only.
fn kinds_of(requests: &[Received], deployment: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    requests
        .iter()
        .filter(|request| request.json()["deploymentId"] == deployment && seen.insert(request.id()))
        .map(|request| request.kind().to_string())
        .collect()
}

/// The trigger event an entry of the event log is, as the state maps it.
fn trigger_kind(event: &Value) -> Option<&'static str> {
    let status = event["status"].as_str().unwrap_or_default();
    Some(match (event["type"].as_str()?, status) {
        ("DeploymentStatusChanged", "InProgress") => "DeploymentStart",
        ("DeploymentStatusChanged", "Succeeded") => "DeploymentSuccess",
        ("DeploymentStatusChanged", "Failed") => "DeploymentFailure",
        ("DeploymentStatusChanged", "Stopped") => "DeploymentStop",
        ("DeploymentStatusChanged", "Ready") => "DeploymentReady",
        ("RollbackLinked", _) if event["message"].as_str()?.starts_with("rolled back by") => "DeploymentRollback",
        ("TargetStatusChanged", "InProgress") => "InstanceStart",
        ("TargetStatusChanged", "Succeeded") => "InstanceSuccess",
        ("TargetStatusChanged", "Failed") => "InstanceFailure",
        ("TargetStatusChanged", "Ready") => "InstanceReady",
        _ => return None,
    })
}

/// Waits until `receiver` got `kind` for `deployment` at `path`.
fn wait_for(receiver: &Receiver, path: &str, deployment: &str, kind: &str) {
    wait_until(&format!("{kind} of {deployment} at {path}"), Duration::from_secs(180), || {
        kinds_of(&receiver.at(path), deployment).iter().any(|got| got == kind).then_some(())
    });
}

#[test]
fn webhooks_get_every_event_in_order_signed_across_a_failure_a_rollback_and_a_leader_kill() {
    let mut cluster = TestCluster::start(3, Options::default());
    cluster.wait_alive(3, Duration::from_secs(60));
    let level = u64::from(fleetmesh_state::FeatureLevel::TRIGGERS.0);
    wait_until("the triggers feature level", Duration::from_secs(60), || {
        cluster.status(1).filter(|status| status["feature_level"].as_u64() >= Some(level))
    });
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    let receiver = Receiver::start(1, Duration::from_millis(150));
    let url = &receiver.url;

    // A bad target is refused, naming what is wrong.
    let triggers = r#"[{"triggerName":"t","triggerTargetArn":"ftp://x/y","triggerEvents":["DeploymentStart"]}]"#;
    let mut command = vec!["deploy", "create-deployment-group", "--application-name", "app"];
    command.extend(["--deployment-group-name", "bad", "--tag", "role=web", "--trigger-configurations", triggers]);
    let output = cluster.cli(1, &command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("neither an http(s)"), "{stderr}");

    let triggers = format!(
        r#"[{{"triggerName":"all","triggerTargetArn":"{url}/all","triggerEvents":{ALL_EVENTS}}},
            {{"triggerName":"outcomes","triggerTargetArn":"{url}/outcomes",
              "triggerEvents":["DeploymentSuccess","DeploymentFailure"],"secret":"s3cret"}}]"#
    );
    cluster.create_group(
        "web",
        &["--tag", "role=web", "--deployment-config-name", "CodeDeployDefault.OneAtATime", "--auto-rollback"],
    );
    let update = [
        "deploy",
        "update-deployment-group",
        "--application-name",
        "app",
        "--current-deployment-group-name",
        "web",
        "--trigger-configurations",
        &triggers,
    ];
    cluster.ok(1, &update);
    let show = ["deploy", "get-deployment-group", "--application-name", "app", "--deployment-group-name", "web"];
    let group = cluster.ok(1, &show);
    assert!(group.contains("\"outcomes\"") && !group.contains("s3cret"), "shown without its secret: {group}");

    let work = tempfile::tempdir().expect("tempdir");
    let (good, bad) = (work.path().join("good"), work.path().join("bad"));
    write_bundle(&good, &[("appspec.yml", APPSPEC, 0o644), ("site/index.html", "one\n", 0o644)]);
    write_bundle(
        &bad,
        &[
            ("appspec.yml", FAILING_APPSPEC, 0o644),
            ("site/index.html", "two\n", 0o644),
            ("hooks/fail.sh", "#!/bin/sh\necho broken on purpose\nexit 1\n", 0o755),
        ],
    );
    let (good, bad) = (cluster.push(1, "app", &good), cluster.push(1, "app", &bad));

    // A deployment that succeeds: CodeDeploy's sequence, one host at a time. (The first
    // delivery was refused with 503 and retried.)
    let first = cluster.deploy_and_wait(1, "app", "web", &good, &[]).deployment_info;
    assert_eq!(first.status, DeploymentStatus::Succeeded);
    let first = first.deployment_id.to_string();
    wait_for(&receiver, "/all", &first, "DeploymentSuccess");
    let mut expected = vec!["DeploymentStart"];
    expected.extend(["InstanceStart", "InstanceSuccess"].repeat(3));
    expected.push("DeploymentSuccess");
    assert_eq!(kinds_of(&receiver.at("/all"), &first), expected);
    wait_for(&receiver, "/outcomes", &first, "DeploymentSuccess");
    let success = receiver.at("/outcomes").into_iter().find(|request| request.json()["deploymentId"] == first);
    let success = success.expect("the outcome").json();
    assert_eq!(
        (success["status"].as_str(), success["eventTriggerName"].as_str()),
        (Some("Succeeded"), Some("outcomes"))
    );
    assert_eq!(success["deploymentOverview"]["Succeeded"], "3", "{success}");
    assert_eq!(
        (success["applicationName"].as_str(), success["deploymentGroupName"].as_str()),
        (Some("app"), Some("web"))
    );
    assert_eq!((success["region"].as_str(), success["accountId"].as_str()), (Some("us-east-1"), Some("000000000000")));

    // A deployment that fails on its first host and rolls back.
    let failed = cluster.deploy_and_wait(1, "app", "web", &bad, &[]).deployment_info;
    assert_eq!(failed.status, DeploymentStatus::Failed);
    let rollback = failed.rollback_info.as_ref().and_then(|info| info.rollback_deployment_id.clone());
    let (failed, rollback) = (failed.deployment_id.to_string(), rollback.expect("a rollback").to_string());
    wait_for(&receiver, "/all", &rollback, "DeploymentSuccess");
    let story = kinds_of(&receiver.at("/all"), &failed);
    let head = ["DeploymentStart", "InstanceStart", "InstanceFailure", "DeploymentFailure", "DeploymentRollback"];
    assert_eq!(story, head, "the failed deployment's notifications");
    let rolled = kinds_of(&receiver.at("/all"), &rollback);
    assert_eq!(rolled, ["DeploymentStart", "InstanceStart", "InstanceSuccess", "DeploymentSuccess"]);
    let failure = receiver.at("/outcomes").into_iter().find(|request| request.json()["deploymentId"] == failed);
    let failure = failure.expect("the failure's outcome").json();
    assert_eq!(failure["status"], "Failed");
    assert!(failure["errorInformation"]["ErrorCode"].is_string(), "{failure}");

    // The leader is killed mid-deployment: the new leader delivers from the committed
    // cursor, so nothing is lost.
    let leader = wait_until("a leader", Duration::from_secs(30), || cluster.leader_index(1));
    let via = cluster.live_indices().into_iter().find(|index| *index != leader).expect("a follower");
    let third = cluster.start_deployment(via, "web", &good);
    wait_for(&receiver, "/all", &third, "InstanceStart");
    cluster.kill9(leader);
    let before_kill = kinds_of(&receiver.at("/all"), &third).len();
    let ended = cluster.wait_deployment(&third, Duration::from_secs(240)).deployment_info;
    let end_kind = if ended.status == DeploymentStatus::Succeeded { "DeploymentSuccess" } else { "DeploymentFailure" };
    wait_for(&receiver, "/all", &third, end_kind);
    if let Some(rollback) = ended.rollback_info.as_ref().and_then(|info| info.rollback_deployment_id.clone()) {
        let rollback = cluster.wait_deployment(&rollback.0, Duration::from_secs(240)).deployment_info;
        let kind =
            if rollback.status == DeploymentStatus::Succeeded { "DeploymentSuccess" } else { "DeploymentFailure" };
        wait_for(&receiver, "/all", &rollback.deployment_id.0, kind);
    }

    assert!(kinds_of(&receiver.at("/all"), &third).len() > before_kill, "the new leader delivered the rest");

    // Every trigger event of the log since the trigger was made reached /all, in order,
    // and duplicates carry the number of the event they repeat.
    let survivor = cluster.live_indices()[0];
    let log: Vec<Value> = cluster
        .ok(survivor, &["events", "--json"])
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    let all = receiver.at("/all");
    let first_id = all.iter().map(Received::id).min().expect("deliveries");
    let wanted: Vec<(u64, &str)> = log
        .iter()
        .filter_map(|event| Some((event["id"].as_u64()?, trigger_kind(event)?)))
        .filter(|(id, _)| *id >= first_id)
        .collect();
    let mut delivered: Vec<(u64, &str)> = Vec::new();
    for request in &all {
        let event = log.iter().find(|event| event["id"].as_u64() == Some(request.id())).expect("a logged event");
        assert_eq!(request.json()["deploymentId"], event["deploymentId"], "the id names the event it delivers");
        if !delivered.iter().any(|(id, _)| *id == request.id()) {
            delivered.push((request.id(), request.kind()));
        }
    }
    assert_eq!(delivered, wanted, "every event once at least, in order");

    // Signatures: /all with the cluster's webhook secret (the same on every voter),
    // /outcomes with the trigger's own.
    let secrets: Vec<String> = cluster
        .nodes
        .values()
        .filter_map(|node| std::fs::read_to_string(node.data_dir.join("webhook-secret")).ok())
        .collect();
    assert_eq!(secrets.len(), 3, "every voter wrote DIR/webhook-secret");
    assert!(secrets.iter().all(|secret| secret == &secrets[0]));
    let cluster_secret = secrets[0].trim().as_bytes().to_vec();
    for (path, secret) in [("/all", cluster_secret.as_slice()), ("/outcomes", b"s3cret".as_slice())] {
        for request in receiver.at(path) {
            let got = request.headers.get("x-fleetmesh-signature").map(String::as_str);
            assert_eq!(got, Some(signature(secret, &request.body).as_str()), "{path} event {}", request.id());
        }
    }
    let instance = all.iter().find(|request| request.kind() == "InstanceSuccess").expect("an instance event").json();
    assert!(instance["instanceId"].as_str().is_some_and(|id| id.starts_with("arn:aws:codedeploy:us-east-1:")));
    assert_eq!(instance["instanceStatus"], "Succeeded");
    assert!(instance["lifecycleEvents"].as_array().is_some_and(|events| !events.is_empty()), "{instance}");
}

/// Topic `deploys` and queue `deploys` subscribed to it (the SNS envelope kept, so the
/// subject shows); prints `{"topic": ARN, "queue": URL}`.
const SNS_SETUP: &str = r#"
import json, boto3
sns, sqs = boto3.client("sns"), boto3.client("sqs")
topic = sns.create_topic(Name="deploys")["TopicArn"]
queue = sqs.create_queue(QueueName="deploys")["QueueUrl"]
queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
print(json.dumps({"topic": topic, "queue": queue}))
"#;

/// Takes what queue `sys.argv[1]` holds (waiting up to a second) and prints the SNS
/// envelopes as a JSON list.
const SQS_DRAIN: &str = r#"
import json, sys, boto3
sqs, got = boto3.client("sqs"), []
for message in sqs.receive_message(QueueUrl=sys.argv[1], MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
    got.append(json.loads(message["Body"]))
    sqs.delete_message(QueueUrl=sys.argv[1], ReceiptHandle=message["ReceiptHandle"])
print(json.dumps(got))
"#;

/// A message attribute of an SNS envelope.
fn attribute<'a>(envelope: &'a Value, name: &str) -> &'a str {
    envelope["MessageAttributes"][name]["Value"].as_str().unwrap_or_default()
}

/// A 3-node cluster reaching moto, group `web` (one host at a time, service role
/// `deployer`) with a trigger on an SNS topic for DeploymentStart, InstanceSuccess and
/// DeploymentSuccess: a secret on an SNS trigger is refused; a deployment's messages
/// reach the queue subscribed to the topic, in event order, with CodeDeploy's JSON, its
/// subject, and the event's number as an attribute.
#[test]
fn an_sns_topic_gets_codedeploys_messages_in_order_on_moto() {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    let created: Value = serde_json::from_str(moto.python(SNS_SETUP).trim()).expect("setup printed JSON");
    let (topic, queue) = (created["topic"].as_str().expect("topic"), created["queue"].as_str().expect("queue"));
    let env: Vec<(String, String)> = moto.env().iter().map(|(key, value)| (key.to_string(), value.clone())).collect();
    let options = Options { env: (1..=3).map(|index| (index, env.clone())).collect(), ..Options::default() };
    let cluster = TestCluster::start(3, options);
    cluster.wait_alive(3, Duration::from_secs(60));
    let level = u64::from(fleetmesh_state::FeatureLevel::TRIGGERS.0);
    wait_until("the triggers feature level", Duration::from_secs(60), || {
        cluster.status(1).filter(|status| status["feature_level"].as_u64() >= Some(level))
    });
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);

    let events = r#"["DeploymentStart","InstanceSuccess","DeploymentSuccess"]"#;
    let trigger = format!(r#"{{"triggerName":"sns","triggerTargetArn":"{topic}","triggerEvents":{events}"#);
    let signed = format!(r#"[{trigger},"secret":"s3cret"}}]"#);
    let mut group = vec!["--tag", "role=web", "--deployment-config-name", "CodeDeployDefault.OneAtATime"];
    group.extend(["--service-role-arn", "arn:aws:iam::123456789012:role/deployer", "--trigger-configurations"]);
    let create = ["deploy", "create-deployment-group", "--application-name", "app", "--deployment-group-name", "web"];
    let output = cluster.cli(1, &[&create[..], &group, &[signed.as_str()]].concat());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("signs webhook deliveries only"), "{stderr}");
    let unsigned = format!("[{trigger}}}]");
    cluster.create_group("web", &[&group[..], &[unsigned.as_str()]].concat());

    let work = tempfile::tempdir().expect("tempdir");
    write_bundle(work.path(), &[("appspec.yml", APPSPEC, 0o644), ("site/index.html", "one\n", 0o644)]);
    let revision = cluster.push(1, "app", work.path());
    let deployed = cluster.deploy_and_wait(1, "app", "web", &revision, &[]).deployment_info;
    assert_eq!(deployed.status, DeploymentStatus::Succeeded);
    let id = deployed.deployment_id.to_string();

    // Drained until the success arrives; duplicates (same event number) dropped.
    let mut got: BTreeMap<u64, Value> = BTreeMap::new();
    wait_until("DeploymentSuccess in the queue", Duration::from_secs(90), || {
        let drained: Vec<Value> = serde_json::from_str(
            moto.python(&format!("import sys; sys.argv = ['drain', '{queue}']\n{SQS_DRAIN}")).trim(),
        )
        .expect("the drain printed JSON");
        for envelope in drained {
            let number = attribute(&envelope, "X-Fleetmesh-Event-Id").parse().expect("X-Fleetmesh-Event-Id");
            got.entry(number).or_insert(envelope);
        }
        got.values().any(|envelope| attribute(envelope, "X-Fleetmesh-Event") == "DeploymentSuccess").then_some(())
    });
    let kinds: Vec<&str> = got.values().map(|envelope| attribute(envelope, "X-Fleetmesh-Event")).collect();
    let mut expected = vec!["DeploymentStart"];
    expected.extend(["InstanceSuccess"; 3]);
    expected.push("DeploymentSuccess");
    assert_eq!(kinds, expected, "in event order");
    for envelope in got.values() {
        let kind = attribute(envelope, "X-Fleetmesh-Event");
        let message: Value = serde_json::from_str(envelope["Message"].as_str().expect("Message")).expect("JSON");
        assert_eq!((envelope["TopicArn"].as_str(), attribute(envelope, "X-Fleetmesh-Trigger")), (Some(topic), "sns"));
        assert_eq!((message["deploymentId"].as_str(), message["eventTriggerName"].as_str()), (Some(&*id), Some("sns")));
        let word = if kind == "DeploymentStart" { "CREATED" } else { "SUCCEEDED" };
        let subject = format!("{word}: AWS CodeDeploy {id} in us-east-1 to app");
        assert_eq!(envelope["Subject"].as_str(), Some(subject.as_str()), "{kind}");
        if kind == "InstanceSuccess" {
            assert_eq!(message["instanceStatus"], "Succeeded", "{message}");
        } else {
            assert_eq!(
                (message["applicationName"].as_str(), message["region"].as_str()),
                (Some("app"), Some("us-east-1"))
            );
        }
    }
    let success = got.values().last().expect("the success");
    let success: Value = serde_json::from_str(success["Message"].as_str().expect("Message")).expect("JSON");
    assert_eq!(
        (success["status"].as_str(), success["deploymentOverview"]["Succeeded"].as_str()),
        (Some("Succeeded"), Some("3"))
    );

    // The edge alone: a topic that does not exist is AWS's permanent error, with its code.
    // (Env vars are set for this process: nextest runs each test in its own.)
    for (key, value) in moto.env() {
        std::env::set_var(key, value);
    }
    let missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic";
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let error = runtime.block_on(async {
        let sns = SdkSns::for_topic(&AwsSettings::default(), missing).await.expect("a client");
        sns.publish(missing, "subject", "{}").await.expect_err("no such topic")
    });
    assert_eq!((error.kind, error.code.as_str()), (AwsErrorKind::Permanent, "NotFound"), "{error}");
}
