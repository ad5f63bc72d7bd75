//! fleetmesh's ECS edge (`fleetmesh-aws`) against moto's server (issue 15): the task
//! sets of a service under the `CODE_DEPLOY` controller, created, made primary and
//! deleted as an ECS deployment does (`codedeploy.md` §2.7). The deployment that drives
//! these calls is not built yet.

use fleetmesh_aws::{AwsErrorKind, AwsSettings, EcsTraffic, SdkEcs, TaskSetInfo, TaskSetSpec, VpcNetwork};
use fleetmesh_tests::moto::Moto;

/// A VPC, subnets, a security group, `ip` target groups `blue` and `green`, cluster
/// `prod`, two revisions of task definition `web` (Fargate) and service `web` under the
/// `CODE_DEPLOY` controller.
const SETUP: &str = r#"
import json, boto3
ec2, elb, ecs = boto3.client("ec2"), boto3.client("elbv2"), boto3.client("ecs")
vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.1.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
           for i, zone in [(1, "us-east-1a"), (2, "us-east-1b")]]
group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
groups = {name: elb.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")
          ["TargetGroups"][0]["TargetGroupArn"] for name in ["blue", "green"]}
ecs.create_cluster(clusterName="prod")
definitions = [ecs.register_task_definition(family="web", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
    cpu="256", memory="512", containerDefinitions=[{"name": "web", "image": f"web:{tag}", "memory": 512,
    "portMappings": [{"containerPort": 80}]}])["taskDefinition"]["taskDefinitionArn"] for tag in ["v1", "v2"]]
ecs.create_service(cluster="prod", serviceName="web", taskDefinition=definitions[0], desiredCount=1,
    deploymentController={"type": "CODE_DEPLOY"}, launchType="FARGATE",
    networkConfiguration={"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [group]}},
    loadBalancers=[{"targetGroupArn": groups["blue"], "containerName": "web", "containerPort": 80}])
print(json.dumps({"subnets": subnets, "group": group, "blue": groups["blue"], "green": groups["green"],
                  "v1": definitions[0], "v2": definitions[1]}))
"#;

/// The service's task sets as boto3 reads them: `[[task definition, status], …]`, sorted.
fn task_sets_by_boto3(moto: &Moto) -> serde_json::Value {
    let script = "import json, boto3\n\
        sets = boto3.client('ecs').describe_services(cluster='prod', services=['web'])['services'][0].get('taskSets', [])\n\
        print(json.dumps(sorted([s['taskDefinition'], s['status']] for s in sets)))";
    serde_json::from_str(moto.python(script).trim()).expect("boto3 printed JSON")
}

fn status_of<'a>(sets: &'a [TaskSetInfo], id: &str) -> Option<&'a str> {
    sets.iter().find(|set| set.id == id).map(|set| set.status.as_str())
}

/// The original task set (v1, target group blue) and a replacement (v2, green) are
/// created; the replacement becomes primary and the original is deleted, each state
/// read back through the client and by boto3; a missing service is a permanent error.
/// (Env vars are set for this process: nextest runs each test in its own.)
#[test]
fn the_ecs_edge_replaces_a_task_set_on_moto() {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    let created: serde_json::Value = serde_json::from_str(moto.python(SETUP).trim()).expect("setup printed JSON");
    let text = |name: &str| created[name].as_str().expect("a string").to_string();
    let subnets: Vec<String> = serde_json::from_value(created["subnets"].clone()).expect("subnet ids");
    for (key, value) in moto.env() {
        std::env::set_var(key, value);
    }
    let network = VpcNetwork { subnets, security_groups: vec![text("group")], assign_public_ip: Some(false) };
    let spec = |definition: &str, group: &str| TaskSetSpec {
        task_definition: text(definition),
        container_name: "web".to_string(),
        container_port: 80,
        target_group_arn: text(group),
        platform_version: None,
        network: Some(network.clone()),
        capacity_providers: Vec::new(),
        external_id: Some(format!("d-{definition}")),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let ecs = SdkEcs::new(&AwsSettings::default().load().await);
        let original = ecs.create_task_set("prod", "web", &spec("v1", "blue")).await.expect("CreateTaskSet v1");
        ecs.set_primary_task_set("prod", "web", &original.arn).await.expect("UpdateServicePrimaryTaskSet v1");
        let replacement = ecs.create_task_set("prod", "web", &spec("v2", "green")).await.expect("CreateTaskSet v2");
        assert_eq!(replacement.external_id, "d-v2", "the external id comes back");
        assert_eq!(replacement.task_definition, text("v2"));
        let sets = ecs.task_sets("prod", "web").await.expect("DescribeServices");
        assert_eq!(
            (status_of(&sets, &original.id), status_of(&sets, &replacement.id)),
            (Some("PRIMARY"), Some("ACTIVE"))
        );

        ecs.set_primary_task_set("prod", "web", &replacement.arn).await.expect("UpdateServicePrimaryTaskSet v2");
        let sets = ecs.task_sets("prod", "web").await.expect("DescribeServices");
        assert_eq!(status_of(&sets, &replacement.id), Some("PRIMARY"), "{sets:?}");
        ecs.delete_task_set("prod", "web", &original.arn).await.expect("DeleteTaskSet v1");
        let sets = ecs.task_sets("prod", "web").await.expect("DescribeServices");
        assert_eq!(sets.iter().map(|set| set.id.as_str()).collect::<Vec<_>>(), [replacement.id.as_str()]);
        assert_eq!(task_sets_by_boto3(&moto), serde_json::json!([[text("v2"), "PRIMARY"]]));

        let missing = ecs.task_sets("prod", "no-such-service").await.expect_err("no such service");
        assert_eq!(missing.kind, AwsErrorKind::Permanent, "{missing}");
    });
}
