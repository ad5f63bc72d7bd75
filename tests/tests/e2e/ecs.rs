//! ECS deployments end to end (issue 15): a cluster whose leader replaces an ECS
//! service's task set and moves its listeners on moto's server through the AWS SDK,
//! the AppSpec given inline, a hook answered through
//! `put-lifecycle-event-hook-execution-status` (moto runs no function code), every
//! production weight observed by a boto3 watcher polling `DescribeListeners`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout};
use std::time::Duration;

use fleetmesh_model::{ComputePlatform, DeploymentStatus, EcsTarget, ErrorCode, LifecycleEventStatus};
use fleetmesh_tests::moto::Moto;
use fleetmesh_tests::{wait_until, Options, TestCluster};

/// A VPC, an application load balancer with a production listener (port 80) and a test
/// listener (8080) both forwarding to target group `blue`, target group `green`, cluster
/// `prod` with service `web` under the `CODE_DEPLOY` controller, its original task set
/// (task definition v1, behind blue) primary, and task definition v2.
const SETUP: &str = r#"
import json, boto3
ec2, elb, ecs = boto3.client("ec2"), boto3.client("elbv2"), boto3.client("ecs")
vpc = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.2.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
           for i, zone in [(1, "us-east-1a"), (2, "us-east-1b")]]
group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
balancer = elb.create_load_balancer(Name="web", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
groups = {name: elb.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")
          ["TargetGroups"][0]["TargetGroupArn"] for name in ["blue", "green"]}
def listener(port):
    forward = {"TargetGroups": [{"TargetGroupArn": groups["blue"], "Weight": 100}]}
    return elb.create_listener(LoadBalancerArn=balancer, Protocol="HTTP", Port=port,
        DefaultActions=[{"Type": "forward", "ForwardConfig": forward}])["Listeners"][0]["ListenerArn"]
prod, test = listener(80), listener(8080)
ecs.create_cluster(clusterName="prod")
definitions = [ecs.register_task_definition(family="web", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
    cpu="256", memory="512", containerDefinitions=[{"name": "web", "image": f"web:{tag}", "memory": 512,
    "portMappings": [{"containerPort": 80}]}])["taskDefinition"]["taskDefinitionArn"] for tag in ["v1", "v2"]]
network = {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [group]}}
ecs.create_service(cluster="prod", serviceName="web", taskDefinition=definitions[0], desiredCount=1,
    deploymentController={"type": "CODE_DEPLOY"}, launchType="FARGATE", networkConfiguration=network,
    loadBalancers=[{"targetGroupArn": groups["blue"], "containerName": "web", "containerPort": 80}])
original = ecs.create_task_set(cluster="prod", service="web", taskDefinition=definitions[0], launchType="FARGATE",
    networkConfiguration=network,
    loadBalancers=[{"targetGroupArn": groups["blue"], "containerName": "web", "containerPort": 80}])["taskSet"]
ecs.update_service_primary_task_set(cluster="prod", service="web", primaryTaskSet=original["taskSetArn"])
print(json.dumps({"prod": prod, "test": test, "blue": groups["blue"], "green": groups["green"],
                  "v2": definitions[1], "subnets": subnets, "group": group}))
"#;

/// Polls the production listener every 20 ms; prints `ready` after the first read,
/// then, once it has seen `sys.argv[1]` forwards (or after 90 s), every forward that
/// differed from the one before as green's weight.
const WATCH: &str = r#"
import json, sys, time, boto3
client, seen, deadline = boto3.client("elbv2"), [], time.time() + 90
while len(seen) < int(sys.argv[1]) and time.time() < deadline:
    action = client.describe_listeners(ListenerArns=[sys.argv[2]])["Listeners"][0]["DefaultActions"][0]
    weights = {g["TargetGroupArn"]: g.get("Weight", 1) for g in action["ForwardConfig"]["TargetGroups"]}
    green = weights.get(sys.argv[3], 0)
    if not seen or seen[-1] != green:
        seen.append(green)
        if len(seen) == 1:
            print("ready", flush=True)
    time.sleep(0.02)
print(json.dumps(seen))
"#;

/// What `SETUP` made.
struct Setup {
    created: serde_json::Value,
}

impl Setup {
    fn arn(&self, name: &str) -> String {
        self.created[name].as_str().unwrap_or_else(|| panic!("setup printed no {name}")).to_string()
    }

    /// An ECS AppSpec running task definition v2 with `hooks` (`- Event: fn` lines).
    fn appspec(&self, hooks: &str) -> String {
        let subnets = self.created["subnets"].to_string();
        let group = self.arn("group");
        let lines = [
            "version: 0.0".to_string(),
            "Resources:".to_string(),
            "  - TargetService:".to_string(),
            "      Type: AWS::ECS::Service".to_string(),
            "      Properties:".to_string(),
            format!("        TaskDefinition: {}", self.arn("v2")),
            "        LoadBalancerInfo:".to_string(),
            "          ContainerName: web".to_string(),
            "          ContainerPort: 80".to_string(),
            "        NetworkConfiguration:".to_string(),
            "          AwsvpcConfiguration:".to_string(),
            format!("            Subnets: {subnets}"),
            format!("            SecurityGroups: [\"{group}\"]"),
            "Hooks:".to_string(),
        ];
        let revision = format!("{}\n{hooks}", lines.join("\n"));
        serde_json::json!({"revisionType": "AppSpecContent", "appSpecContent": {"content": revision}}).to_string()
    }

    /// `--load-balancer-info` naming the pair and both listeners.
    fn load_balancer_info(&self) -> String {
        serde_json::json!({"targetGroupPairInfoList": [{
            "targetGroups": [{"name": "blue"}, {"name": "green"}],
            "prodTrafficRoute": {"listenerArns": [self.arn("prod")]},
            "testTrafficRoute": {"listenerArns": [self.arn("test")]},
        }]})
        .to_string()
    }
}

/// Moto with the service set up, and a 3-node cluster reaching it with application `svc`
/// for ECS.
fn ecs_cluster() -> (Moto, Setup, TestCluster) {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    moto.lambda_setup(&["smoke", "post"]);
    let created = serde_json::from_str(moto.python(SETUP).trim()).expect("setup printed JSON");
    let env: Vec<(String, String)> = moto.env().iter().map(|(key, value)| (key.to_string(), value.clone())).collect();
    let options = Options { env: (1..=3).map(|index| (index, env.clone())).collect(), ..Options::default() };
    let cluster = TestCluster::start(3, options);
    wait_until("feature level 14", Duration::from_secs(60), || {
        (cluster.status(1)?["feature_level"].as_u64()? >= 14).then_some(())
    });
    cluster.ok(1, &["deploy", "create-application", "--application-name", "svc", "--compute-platform", "ECS"]);
    (moto, Setup { created }, cluster)
}

/// The production listener's watcher, once it has read the listener.
fn watch(moto: &Moto, setup: &Setup, count: usize) -> (Child, BufReader<ChildStdout>) {
    let (prod, green) = (setup.arn("prod"), setup.arn("green"));
    let script = format!("import sys; sys.argv = ['watch', '{count}', '{prod}', '{green}']\n{WATCH}");
    let mut child = moto.spawn_python(&script);
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line).expect("the watcher's first line");
    assert_eq!(line.trim(), "ready", "the watcher could not read the listener");
    (child, out)
}

/// Green's production weights the watcher saw, in order.
fn seen((mut child, mut out): (Child, BufReader<ChildStdout>)) -> serde_json::Value {
    let mut text = String::new();
    out.read_to_string(&mut text).expect("the watcher's output");
    // Reaped; it printed already.
    let _ = child.wait();
    serde_json::from_str(text.trim()).unwrap_or_else(|error| panic!("watcher printed {text:?}: {error}"))
}

/// `{listener: {target group: weight}}` of both listeners and the service's task sets as
/// `[[task definition, status, external id], …]`, as boto3 reads them.
fn aws_state(moto: &Moto, setup: &Setup) -> serde_json::Value {
    let script = format!(
        "import json, boto3\nelb, ecs = boto3.client('elbv2'), boto3.client('ecs')\n\
         def forward(arn):\n    action = elb.describe_listeners(ListenerArns=[arn])['Listeners'][0]['DefaultActions'][0]\n    \
         return {{g['TargetGroupArn']: g.get('Weight', 1) for g in action['ForwardConfig']['TargetGroups']}}\n\
         sets = ecs.describe_services(cluster='prod', services=['web'])['services'][0].get('taskSets', [])\n\
         print(json.dumps({{'prod': forward('{}'), 'test': forward('{}'), \
         'sets': sorted([s['taskDefinition'].split('/')[-1], s['status'], s.get('externalId', '')] for s in sets)}}))",
        setup.arn("prod"),
        setup.arn("test")
    );
    serde_json::from_str(moto.python(&script).trim()).expect("boto3 printed JSON")
}

fn ecs_target(cluster: &TestCluster, id: &str) -> EcsTarget {
    let answer = cluster.deployment_target(cluster.live_indices()[0], id, "prod:web");
    answer.deployment_target.ecs_target.expect("an ECS target")
}

fn create_group(cluster: &TestCluster, setup: &Setup, name: &str, extra: &[&str]) {
    let group = ["deploy", "create-deployment-group", "--application-name", "svc", "--deployment-group-name", name];
    let info = setup.load_balancer_info();
    let ecs = ["--ecs-services", "serviceName=web,clusterName=prod", "--load-balancer-info", &info];
    cluster.ok(1, &[&group[..], &ecs[..], extra].concat());
}

fn create(cluster: &TestCluster, group: &str, revision: &str) -> String {
    let args = ["deploy", "create-deployment", "--application-name", "svc", "--deployment-group-name", group];
    cluster.ok(1, &[&args[..], &["--revision", revision]].concat()).trim().to_string()
}

/// Canary 20 % then the rest 2 s later, with a test listener and an
/// AfterAllowTestTraffic hook. While the hook waits, the replacement task set (v2,
/// external id = the deployment) exists behind green, the test listener sends to green
/// and production still all to blue; after it reports Succeeded, production goes 0 → 20
/// → 100 % green, each step seen once; the original task set is deleted after the
/// group's termination wait and v2 is primary.
#[test]
fn an_ecs_canary_creates_the_replacement_tests_it_shifts_and_retires_the_original_on_moto() {
    let (moto, setup, cluster) = ecs_cluster();
    let routing = r#"{"type":"TimeBasedCanary","timeBasedCanary":{"canaryPercentage":20,"canaryIntervalSeconds":2}}"#;
    let config = ["deploy", "create-deployment-config", "--deployment-config-name", "canary20"];
    cluster.ok(1, &[&config[..], &["--compute-platform", "ECS", "--traffic-routing-config", routing]].concat());
    let wait =
        r#"{"terminateBlueInstancesOnDeploymentSuccess":{"action":"TERMINATE","terminationWaitTimeInSeconds":2}}"#;
    let extra = ["--deployment-config-name", "canary20", "--blue-green-deployment-configuration", wait];
    create_group(&cluster, &setup, "live", &extra);
    let watcher = watch(&moto, &setup, 3);

    let id = create(&cluster, "live", &setup.appspec("  - AfterAllowTestTraffic: smoke\n"));
    let execution = wait_until("the smoke hook's execution id", Duration::from_secs(30), || {
        ecs_target(&cluster, &id)
            .lifecycle_events
            .iter()
            .find_map(|event| event.lifecycle_event_hook_execution_id.clone())
    });
    let (blue, green) = (setup.arn("blue"), setup.arn("green"));
    let during = aws_state(&moto, &setup);
    assert_eq!(during["prod"], serde_json::json!({ &blue: 100 }), "production untouched before the shift: {during}");
    assert_eq!(during["test"][&green], 100, "test traffic to green: {during}");
    assert_eq!(during["test"][&blue], 0, "no test traffic to blue: {during}");
    assert_eq!(during["sets"].as_array().map(Vec::len), Some(2), "{during}");
    assert!(during["sets"].to_string().contains(&format!("\"ACTIVE\",\"{id}\"")), "replacement found by id: {during}");
    let target = ecs_target(&cluster, &id);
    let labels: Vec<_> = target.task_sets_info.iter().map(|set| set.task_set_label.as_str()).collect();
    assert_eq!(labels, ["BLUE", "GREEN"], "{target:?}");
    let shown = cluster.ok(1, &["deploy", "get-deployment-target", "--deployment-id", &id, "--target-id", "prod:web"]);
    assert!(shown.contains(&format!("waiting for hook execution {execution}")), "{shown}");

    let put = ["deploy", "put-lifecycle-event-hook-execution-status", "--deployment-id", &id];
    cluster.ok(1, &[&put[..], &["--lifecycle-event-hook-execution-id", &execution, "--status", "Succeeded"]].concat());
    let answer = cluster.wait_deployment(&id, Duration::from_secs(90));
    assert_eq!(answer.deployment_info.status, DeploymentStatus::Succeeded, "{answer:?}");
    assert_eq!(answer.deployment_info.compute_platform, ComputePlatform::Ecs);
    assert_eq!(seen(watcher), serde_json::json!([0, 20, 100]), "each production step once, in order");
    let after = aws_state(&moto, &setup);
    assert_eq!(after["prod"][&green], 100, "{after}");
    let sets = after["sets"].as_array().cloned().unwrap_or_default();
    assert_eq!(sets.len(), 1, "the original was deleted: {after}");
    assert_eq!((sets[0][0].as_str(), sets[0][1].as_str()), (Some("web:2"), Some("PRIMARY")), "{after}");
    let target = ecs_target(&cluster, &id);
    let statuses: Vec<_> = target.lifecycle_events.iter().map(|event| event.status).collect();
    use LifecycleEventStatus::{Skipped, Succeeded};
    assert_eq!(statuses, [Skipped, Succeeded, Skipped, Succeeded, Succeeded, Skipped, Succeeded, Skipped]);
}

/// All at once with auto-rollback and an AfterAllowTraffic hook that reports Failed:
/// production goes to green and back to blue; the rollback deployment deletes the
/// replacement, makes the original primary again and points the test listener back;
/// errors in a group's ECS settings are refused with their reason.
#[test]
fn a_failed_ecs_hook_rolls_traffic_back_and_deletes_the_replacement_on_moto() {
    let (moto, setup, cluster) = ecs_cluster();
    let group = ["deploy", "create-deployment-group", "--application-name", "svc", "--deployment-group-name", "bad"];
    let refused = cluster.cli(1, &[&group[..], &["--load-balancer-info", &setup.load_balancer_info()]].concat());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("exactly one service in ecsServices"), "{stderr}");
    create_group(&cluster, &setup, "live", &["--auto-rollback"]);
    let watcher = watch(&moto, &setup, 3);

    let id = create(&cluster, "live", &setup.appspec("  - AfterAllowTraffic: post\n"));
    let execution = wait_until("the post hook's execution id", Duration::from_secs(30), || {
        ecs_target(&cluster, &id)
            .lifecycle_events
            .iter()
            .find_map(|event| event.lifecycle_event_hook_execution_id.clone())
    });
    let put = ["deploy", "put-lifecycle-event-hook-execution-status", "--deployment-id", &id];
    cluster.ok(1, &[&put[..], &["--lifecycle-event-hook-execution-id", &execution, "--status", "Failed"]].concat());
    let failed = cluster.wait_deployment(&id, Duration::from_secs(60));
    assert_eq!(failed.deployment_info.status, DeploymentStatus::Failed);
    let error = failed.deployment_info.error_information.clone().expect("an error");
    assert_eq!(error.code, ErrorCode::HookExecutionFailure, "{error:?}");
    let rollback = wait_until("a rollback deployment", Duration::from_secs(30), || {
        let answer = cluster.deployment(1, &id)?;
        answer.deployment_info.rollback_info?.rollback_deployment_id
    });
    let rolled = cluster.wait_deployment(&rollback.to_string(), Duration::from_secs(60));
    assert_eq!(rolled.deployment_info.status, DeploymentStatus::Succeeded, "{rolled:?}");
    assert_eq!(seen(watcher), serde_json::json!([0, 100, 0]), "to green and back");
    let after = aws_state(&moto, &setup);
    let blue = setup.arn("blue");
    assert_eq!((after["prod"][&blue].as_i64(), after["test"][&blue].as_i64()), (Some(100), Some(100)), "{after}");
    let sets = after["sets"].as_array().cloned().unwrap_or_default();
    assert_eq!(sets.len(), 1, "the replacement was deleted: {after}");
    assert_eq!((sets[0][0].as_str(), sets[0][1].as_str()), (Some("web:1"), Some("PRIMARY")), "{after}");
}

/// Linear 25 % every 2 s; the leader is killed (-9) as soon as the replacement task set
/// is recorded: the new leader finds the replacement by its external id instead of
/// creating another, carries on from the committed steps, and the deployment succeeds
/// with each production weight seen once, in order, and only the replacement left.
#[test]
fn a_leader_killed_after_the_replacement_was_created_creates_no_second_one_on_moto() {
    let (moto, setup, mut cluster) = ecs_cluster();
    let routing = r#"{"type":"TimeBasedLinear","timeBasedLinear":{"linearPercentage":25,"linearIntervalSeconds":2}}"#;
    let config = ["deploy", "create-deployment-config", "--deployment-config-name", "linear25"];
    cluster.ok(1, &[&config[..], &["--compute-platform", "ECS", "--traffic-routing-config", routing]].concat());
    create_group(&cluster, &setup, "live", &["--deployment-config-name", "linear25"]);
    wait_until("three voters", Duration::from_secs(60), || {
        let status = cluster.status(1)?;
        let voters = status["nodes"].as_array()?.iter().filter(|node| node["role"] == "voter").count();
        (voters == 3).then_some(())
    });
    let watcher = watch(&moto, &setup, 5);

    let id = create(&cluster, "live", &setup.appspec(""));
    wait_until("the replacement task set", Duration::from_secs(30), || {
        let target = ecs_target(&cluster, &id);
        target.task_sets_info.iter().any(|set| set.task_set_label == "GREEN").then_some(())
    });
    let leader = cluster.leader_index(1).expect("a leader");
    cluster.kill9(leader);
    eprintln!("killed the leader, node {leader}");

    let done = cluster.wait_deployment(&id, Duration::from_secs(90));
    assert_eq!(done.deployment_info.status, DeploymentStatus::Succeeded, "{done:?}");
    assert_eq!(seen(watcher), serde_json::json!([0, 25, 50, 75, 100]), "every weight once, in order");
    let after = aws_state(&moto, &setup);
    let sets = after["sets"].as_array().cloned().unwrap_or_default();
    assert_eq!(sets.len(), 1, "one replacement, the original deleted: {after}");
    assert_eq!((sets[0][0].as_str(), sets[0][1].as_str()), (Some("web:2"), Some("PRIMARY")), "{after}");
}
