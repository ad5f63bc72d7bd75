//! fleetmesh's ELBv2 edge (`fleetmesh-aws`) against moto's server (issue 15): a host
//! taken off a target group and put back (BlockTraffic / AllowTraffic for a Server group
//! on an ELBv2 target group), and a listener's weighted forward (ECS traffic). The
//! deployments that drive these calls are not built yet.

use fleetmesh_aws::{AwsErrorKind, AwsSettings, Elbv2Traffic, SdkElbv2, Target};
use fleetmesh_tests::moto::Moto;

/// A VPC with two subnets, an application load balancer, `ip` target groups `blue` and
/// `green` on port 8080, and a listener forwarding everything to blue.
const SETUP: &str = r#"
import json, boto3
ec2, elb = boto3.client("ec2"), boto3.client("elbv2")
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
           for i, zone in [(1, "us-east-1a"), (2, "us-east-1b")]]
balancer = elb.create_load_balancer(Name="web", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
groups = {name: elb.create_target_group(Name=name, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip")
          ["TargetGroups"][0]["TargetGroupArn"] for name in ["blue", "green"]}
forward = {"TargetGroups": [{"TargetGroupArn": groups["blue"], "Weight": 100},
                            {"TargetGroupArn": groups["green"], "Weight": 0}]}
listener = elb.create_listener(LoadBalancerArn=balancer, Protocol="HTTP", Port=80,
                               DefaultActions=[{"Type": "forward", "ForwardConfig": forward}])["Listeners"][0]["ListenerArn"]
print(json.dumps({"blue": groups["blue"], "green": groups["green"], "listener": listener}))
"#;

/// The listener's forward weights as boto3 reads them, `{arn: weight}`.
fn weights_by_boto3(moto: &Moto, listener: &str) -> serde_json::Value {
    let script = format!(
        "import json, boto3\nactions = boto3.client('elbv2').describe_listeners(ListenerArns=['{listener}'])['Listeners'][0]['DefaultActions']\n\
         print(json.dumps({{group['TargetGroupArn']: group['Weight'] for group in actions[0]['ForwardConfig']['TargetGroups']}}))"
    );
    serde_json::from_str(moto.python(&script).trim()).expect("boto3 printed JSON")
}

/// Target group `blue` is found by name with its type and port; a host (an IP) is
/// registered, listed, deregistered and no longer served; the listener moves from
/// 100/0 to 90/10 and then 0/100, read back through the client and by boto3; a missing
/// target group is a permanent error. (Env vars are set for this process: nextest runs
/// each test in its own.)
#[test]
fn the_elbv2_edge_moves_a_host_and_a_listener_on_moto() {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    let created: serde_json::Value = serde_json::from_str(moto.python(SETUP).trim()).expect("setup printed JSON");
    let arn = |name: &str| created[name].as_str().expect("an ARN").to_string();
    let (blue, green, listener) = (arn("blue"), arn("green"), arn("listener"));
    for (key, value) in moto.env() {
        std::env::set_var(key, value);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let elb = SdkElbv2::new(&AwsSettings::default().load().await);
        let group = elb.target_group("blue").await.expect("DescribeTargetGroups");
        assert_eq!((group.arn.as_str(), group.target_type.as_str(), group.port), (blue.as_str(), "ip", Some(8080)));

        let host = Target { id: "10.0.1.10".to_string(), port: None };
        assert_eq!(elb.target_state(&blue, &host).await.expect("DescribeTargetHealth"), None);
        elb.register(&blue, &host).await.expect("RegisterTargets");
        let state = elb.target_state(&blue, &host).await.expect("DescribeTargetHealth");
        assert!(matches!(state.as_deref(), Some("initial" | "healthy" | "unavailable")), "registered: {state:?}");
        elb.deregister(&blue, &host).await.expect("DeregisterTargets");
        let state = elb.target_state(&blue, &host).await.expect("DescribeTargetHealth");
        assert!(matches!(state.as_deref(), None | Some("draining" | "unused")), "deregistered: {state:?}");

        assert_eq!(
            elb.listener_weights(&listener).await.expect("DescribeListeners"),
            [(blue.clone(), 100), (green.clone(), 0)]
        );
        for (to_blue, to_green) in [(90, 10), (0, 100)] {
            let weights = [(blue.clone(), to_blue), (green.clone(), to_green)];
            elb.set_listener_weights(&listener, &weights).await.expect("ModifyListener");
            assert_eq!(elb.listener_weights(&listener).await.expect("DescribeListeners"), weights);
            let expected = serde_json::json!({ blue.clone(): to_blue, green.clone(): to_green });
            assert_eq!(weights_by_boto3(&moto, &listener), expected);
        }

        let missing = elb.target_group("no-such-group").await.expect_err("no such target group");
        assert_eq!(missing.kind, AwsErrorKind::Permanent, "{missing}");
        assert!(missing.to_string().starts_with("DescribeTargetGroups: TargetGroupNotFound"), "{missing}");
    });
}
