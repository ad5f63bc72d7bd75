//! Server groups behind an ELBv2 target group (issue 15 item 5), end to end on moto: an
//! in-place deployment with traffic control whose `loadBalancerInfo` names the target
//! group by ARN. The leader deregisters each host (its `aws:ip` node tag) before
//! `ApplicationStop` and registers it again after `ValidateService`, one host at a time,
//! every change seen by a boto3 watcher polling `DescribeTargetHealth`.

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use fleetmesh_model::{DeploymentStatus, LifecycleEventName, LifecycleEventStatus};
use fleetmesh_tests::moto::Moto;
use fleetmesh_tests::{wait_until, write_bundle, Options, TestCluster};

/// A VPC and an `ip` target group `web` on port 8080 with both hosts registered.
const SETUP: &str = r#"
import boto3
ec2, elb = boto3.client("ec2"), boto3.client("elbv2")
vpc = ec2.create_vpc(CidrBlock="10.3.0.0/16")["Vpc"]["VpcId"]
group = elb.create_target_group(Name="web", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip")
arn = group["TargetGroups"][0]["TargetGroupArn"]
elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": "10.3.1.2"}, {"Id": "10.3.1.3"}])
print(arn)
"#;

/// Polls the target group every 20 ms; prints `ready` after the first read, then, once
/// it has seen `sys.argv[1]` memberships (or after 90 s), every membership (sorted ids)
/// that differed from the one before.
const WATCH: &str = r#"
import json, sys, time, boto3
client, seen, deadline = boto3.client("elbv2"), [], time.time() + 90
while len(seen) < int(sys.argv[1]) and time.time() < deadline:
    health = client.describe_target_health(TargetGroupArn=sys.argv[2])["TargetHealthDescriptions"]
    members = sorted(h["Target"]["Id"] for h in health if h["TargetHealth"]["State"] not in ("draining", "unused"))
    if not seen or seen[-1] != members:
        seen.append(members)
        if len(seen) == 1:
            print("ready", flush=True)
    time.sleep(0.02)
print(json.dumps(seen))
"#;

const APPSPEC: &str = "version: 0.0\nos: linux\nfiles:\n  - source: app.txt\n    destination: /srv/app\nhooks:\n  \
                       ApplicationStop:\n    - location: pause.sh\n  ValidateService:\n    - location: pause.sh\n  AfterAllowTraffic:\n    - location: pause.sh\n";

/// A OneAtATime deployment of a group on the target group's ARN: host 2 leaves and
/// rejoins, then host 3, each while the other serves; the targets' traffic events
/// succeed and say what they did. A host without the tag of the group's target type
/// fails its `BlockTraffic` with the reason.
#[test]
fn an_in_place_deployment_takes_each_host_off_its_elbv2_target_group_and_back_on_moto() {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    let arn = moto.python(SETUP).trim().to_string();
    let env: Vec<(String, String)> = moto.env().iter().map(|(key, value)| (key.to_string(), value.clone())).collect();
    let tags = |ip: &str| vec!["role=web".to_string(), format!("aws:ip={ip}")];
    let options = Options {
        env: (1..=4).map(|index| (index, env.clone())).collect(),
        tags: [
            (1, vec!["role=none".to_string()]),
            (2, tags("10.3.1.2")),
            (3, tags("10.3.1.3")),
            (4, vec!["role=untagged".to_string()]),
        ]
        .into(),
        ..Options::default()
    };
    let cluster = TestCluster::start(4, options);
    wait_until("feature level 14", Duration::from_secs(60), || {
        (cluster.status(1)?["feature_level"].as_u64()? >= 14).then_some(())
    });
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    let info = serde_json::json!({"targetGroupInfoList": [{"name": arn}]}).to_string();
    let group = |name: &str, tag: &str| {
        let args = ["deploy", "create-deployment-group", "--application-name", "app", "--deployment-group-name", name];
        let style = ["--deployment-style", "deploymentOption=WITH_TRAFFIC_CONTROL", "--load-balancer-info", &info];
        cluster.ok(1, &[&args[..], &["--tag", tag], &style[..]].concat());
    };
    group("web", "role=web");
    group("untagged", "role=untagged");
    let bundle = tempfile::tempdir().expect("tempdir");
    write_bundle(
        bundle.path(),
        &[("appspec.yml", APPSPEC, 0o644), ("app.txt", "v1\n", 0o644), ("pause.sh", "#!/bin/sh\nsleep 0.3\n", 0o755)],
    );
    let revision = cluster.push(1, "app", bundle.path());

    let mut watcher = moto.spawn_python(&format!("import sys; sys.argv = ['watch', '5', '{arn}']\n{WATCH}"));
    let mut out = BufReader::new(watcher.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line).expect("the watcher's first line");
    assert_eq!(line.trim(), "ready", "the watcher could not read the target group");
    let answer = cluster.deploy_and_wait(
        1,
        "app",
        "web",
        &revision,
        &["--deployment-config-name", "CodeDeployDefault.OneAtATime"],
    );
    let id = answer.deployment_info.deployment_id.to_string();
    let block_event = |id: &str, status: fleetmesh_model::TargetStatus| {
        let target_id = target_with(&cluster, id, status);
        let target = cluster.deployment_target(1, id, &target_id).deployment_target.instance_target;
        let events = target.expect("an instance target").lifecycle_events.into_iter();
        events
            .into_iter()
            .find(|event| event.lifecycle_event_name == LifecycleEventName::BlockTraffic)
            .expect("BlockTraffic")
    };
    if answer.deployment_info.status != DeploymentStatus::Succeeded {
        panic!("{:?}", block_event(&id, fleetmesh_model::TargetStatus::Failed));
    }
    let mut text = String::new();
    out.read_to_string(&mut text).expect("the watcher's output");
    // Reaped; it printed already.
    let _ = watcher.wait();
    let seen: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|error| panic!("{text:?}: {error}"));
    let both = serde_json::json!(["10.3.1.2", "10.3.1.3"]);
    let first_out = &seen[1];
    assert_eq!(seen.as_array().map(Vec::len), Some(5), "each host off and back on once: {seen}");
    assert!(seen[0] == both && seen[2] == both && seen[4] == both, "one host at a time: {seen}");
    assert!(first_out != &seen[3] && first_out.as_array().map(Vec::len) == Some(1), "{seen}");
    let style = answer.deployment_info.deployment_style.deployment_option;
    assert_eq!(style, fleetmesh_model::DeploymentOption::WithTrafficControl, "{answer:?}");
    let block = block_event(&id, fleetmesh_model::TargetStatus::Succeeded);
    assert_eq!(block.status, LifecycleEventStatus::Succeeded, "{block:?}");

    let failed = cluster.deploy_and_wait(1, "app", "untagged", &revision, &[]);
    assert_eq!(failed.deployment_info.status, DeploymentStatus::Failed, "{failed:?}");
    let block = block_event(&failed.deployment_info.deployment_id.to_string(), fleetmesh_model::TargetStatus::Failed);
    let message = block.diagnostics.as_ref().map(|diagnostics| diagnostics.message.clone());
    assert!(message.as_deref().is_some_and(|message| message.contains("has no tag aws:ip")), "{block:?}");
}

/// The id of a target of deployment `id` with `status`.
fn target_with(cluster: &TestCluster, id: &str, status: fleetmesh_model::TargetStatus) -> String {
    let answer = cluster.deployment(1, id).expect("the deployment");
    let wave = answer.deployment_info.target_waves.into_iter().find(|wave| wave.status == status);
    wave.map(|wave| wave.target_id).unwrap_or_else(|| panic!("no target of {id} is {status:?}"))
}
