//! Credentials the AWS way (issue 15), against moto's server: the environment's keys
//! through the standard chain, and a group's `serviceRoleArn` assumed through STS.

use fleetmesh_aws::{caller_identity, AwsSettings, SESSION_NAME};
use fleetmesh_tests::moto::Moto;

/// Without a role the calls run as the environment's keys' user; with `role_arn` they
/// run as the assumed role, session `fleetmesh`. (moto assumes any ARN, so a bad role is
/// not checked here. Env vars are set for this process: nextest runs each test in its
/// own.)
#[test]
fn calls_run_as_the_chains_user_or_as_the_assumed_service_role() {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    let script = "import json, boto3\nprint(boto3.client('iam').create_role(RoleName='deployer', \
                  AssumeRolePolicyDocument='{}')['Role']['Arn'])";
    let role_arn = moto.python(script).trim().to_string();
    for (key, value) in moto.env() {
        std::env::set_var(key, value);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let user = caller_identity(&AwsSettings::default().load().await).await.expect("GetCallerIdentity");
        assert!(user.starts_with("arn:aws:") && !user.contains("assumed-role"), "{user}");

        let settings = AwsSettings { role_arn: Some(role_arn.clone()), ..AwsSettings::default() };
        let assumed = caller_identity(&settings.load().await).await.expect("GetCallerIdentity as the role");
        assert!(assumed.contains(&format!(":assumed-role/deployer/{SESSION_NAME}")), "{assumed} for {role_arn}");
    });
}
