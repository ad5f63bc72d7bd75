//! fleetmesh's Lambda edge (`fleetmesh-aws`) against moto's server (issue 15): the calls a
//! leader makes to shift an alias and start hooks, through the AWS SDK for Rust with
//! rustls on ring, the endpoint and credentials taken the AWS way (`AWS_ENDPOINT_URL`,
//! the environment's keys). The deployment that drives these calls is not built yet.

use fleetmesh_aws::{AliasRouting, AwsErrorKind, AwsSettings, LambdaTraffic, SdkLambda};
use fleetmesh_tests::moto::Moto;

/// What boto3 reads of alias `live`, independently of the client under test.
const READ_ALIAS: &str = r#"
import json, boto3
alias = boto3.client("lambda").get_alias(FunctionName="app", Name="live")
print(json.dumps([alias["FunctionVersion"], alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})]))
"#;

/// Alias `live` read back by boto3, as `[version, {version: weight}]`.
fn alias_by_boto3(moto: &Moto) -> serde_json::Value {
    serde_json::from_str(moto.python(READ_ALIAS).trim()).expect("boto3 printed JSON")
}

/// Alias `live` moves 1 → 10 % → 55 % → all of version 2, each step read back through the
/// client and by boto3; a hook function is invoked; a missing function is a permanent
/// error with AWS's code. (Env vars are set for this process: nextest runs each test in
/// its own.)
#[test]
fn the_lambda_edge_moves_an_alias_step_by_step_and_invokes_a_hook_on_moto() {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    let second = moto.lambda_setup(&["hook"]);
    assert_eq!(second, "2", "moto published the second version as {second}");
    for (key, value) in moto.env() {
        std::env::set_var(key, value);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let config = AwsSettings::default().load().await;
        let lambda = SdkLambda::new(&config);
        let read = || async { lambda.alias_routing("app", "live").await.expect("GetAlias") };
        assert_eq!(read().await, AliasRouting::all_to("1"));

        for percent in [10, 55] {
            let routing = AliasRouting::shifted("1", "2", percent);
            lambda.set_alias_routing("app", "live", &routing).await.expect("UpdateAlias");
            assert_eq!(read().await, routing);
            let weight = f64::from(percent) / 100.0;
            assert_eq!(alias_by_boto3(&moto), serde_json::json!(["1", {"2": weight}]));
        }
        lambda.set_alias_routing("app", "live", &AliasRouting::all_to("2")).await.expect("UpdateAlias");
        assert_eq!(read().await, AliasRouting::all_to("2"));
        assert_eq!(alias_by_boto3(&moto), serde_json::json!(["2", {}]));

        let payload = serde_json::json!({"DeploymentId": "d-HOOK00001", "LifecycleEventHookExecutionId": "h-1"});
        lambda.invoke_hook("hook", &payload).await.expect("Invoke");

        let missing = lambda.alias_routing("no-such-function", "live").await.expect_err("no such function");
        assert_eq!((missing.kind, missing.code.as_str()), (AwsErrorKind::Permanent, "ResourceNotFoundException"));
        assert!(missing.to_string().starts_with("GetAlias: ResourceNotFoundException"), "{missing}");
    });
}
