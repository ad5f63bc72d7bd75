use super::*;

const LAMBDA: &str = r#"
version: 0.0
Resources:
  - myLambdaFunction:
      Type: AWS::Lambda::Function
      Properties:
        Name: "myLambdaFunction"
        Alias: "myLambdaFunctionAlias"
        CurrentVersion: "1"
        TargetVersion: "2"
Hooks:
  - AfterAllowTraffic: "LambdaFunctionToValidateAfterTrafficShift"
  - BeforeAllowTraffic: "LambdaFunctionToValidateBeforeTrafficShift"
"#;

const ECS: &str = r#"
version: 0.0
Resources:
  - TargetService:
      Type: AWS::ECS::Service
      Properties:
        TaskDefinition: "arn:aws:ecs:us-east-1:111222333444:task-definition/my-task-definition-family-name:1"
        LoadBalancerInfo:
          ContainerName: "SampleApplicationName"
          ContainerPort: 80
        PlatformVersion: "LATEST"
        NetworkConfiguration:
          AwsvpcConfiguration:
            Subnets: ["subnet-1234abcd", "subnet-5678abcd"]
            SecurityGroups: ["sg-12345678"]
            AssignPublicIp: "ENABLED"
        CapacityProviderStrategy:
          - Base: 1
            CapacityProvider: "FARGATE_SPOT"
            Weight: 2
Hooks:
  - BeforeInstall: "LambdaFunctionToValidateBeforeInstall"
  - AfterAllowTestTraffic: "LambdaFunctionToValidateAfterTestTrafficStarts"
"#;

fn hook(event: &'static str, function_name: &str) -> Hook {
    Hook { event, function_name: function_name.to_string() }
}

fn lambda_error(text: &str) -> PlatformAppSpecError {
    parse_lambda(text).expect_err("refused")
}

#[test]
fn aws_lambda_example_parses_with_hooks_in_run_order() {
    let spec = parse_lambda(LAMBDA).expect("parses");
    assert_eq!(spec.logical_name, "myLambdaFunction");
    assert_eq!((spec.function_name.as_str(), spec.alias.as_str()), ("myLambdaFunction", "myLambdaFunctionAlias"));
    assert_eq!((spec.current_version, spec.target_version), (1, 2));
    assert_eq!(
        spec.hooks,
        vec![
            hook("BeforeAllowTraffic", "LambdaFunctionToValidateBeforeTrafficShift"),
            hook("AfterAllowTraffic", "LambdaFunctionToValidateAfterTrafficShift"),
        ]
    );
    assert!(spec.warnings.is_empty(), "{:?}", spec.warnings);
}

#[test]
fn lowercase_keys_json_and_numeric_versions_are_the_same_document() {
    let lower = LAMBDA
        .replace("Resources", "resources")
        .replace("Type:", "type:")
        .replace("Properties", "properties")
        .replace("Name:", "name:")
        .replace("Alias:", "alias:")
        .replace("CurrentVersion", "currentversion")
        .replace("TargetVersion", "targetversion");
    assert_eq!(parse_lambda(&lower), parse_lambda(LAMBDA));
    let json = r#"{"version": 0.0, "Resources": [{"myLambdaFunction": {"Type": "AWS::Lambda::Function",
        "Properties": {"Name": "myLambdaFunction", "Alias": "myLambdaFunctionAlias", "CurrentVersion": 1,
        "TargetVersion": 2}}}], "Hooks": [{"BeforeAllowTraffic": "LambdaFunctionToValidateBeforeTrafficShift"},
        {"AfterAllowTraffic": "LambdaFunctionToValidateAfterTrafficShift"}]}"#;
    assert_eq!(parse_lambda(json), parse_lambda(LAMBDA));
}

#[test]
fn broken_lambda_appspecs_name_the_member_and_the_code() {
    let cases = [
        (LAMBDA.replace("version: 0.0", "version: 1.0"), "version", "must be 0.0"),
        (LAMBDA.replace("        Alias: \"myLambdaFunctionAlias\"\n", ""), ".Properties.Alias", "is required"),
        (LAMBDA.replace("\"myLambdaFunctionAlias\"", "\"7\""), ".Alias", "is a version number"),
        (
            LAMBDA.replace("CurrentVersion: \"1\"", "CurrentVersion: \"$LATEST\""),
            ".CurrentVersion",
            "published version",
        ),
        (LAMBDA.replace("TargetVersion: \"2\"", "TargetVersion: 0"), ".TargetVersion", "got 0"),
        (LAMBDA.replace("AWS::Lambda::Function", "AWS::ECS::Service"), ".Type", "must be AWS::Lambda::Function"),
        (LAMBDA.replace("AfterAllowTraffic:", "BeforeInstall:"), "Hooks[0].BeforeInstall", "not a hook event"),
        (LAMBDA.replace("AfterAllowTraffic:", "BeforeAllowTraffic:"), "Hooks[1].BeforeAllowTraffic", "twice"),
        (LAMBDA.replace("Name: \"myLambdaFunction\"", "Name: \"my function\""), ".Name", "contains ' '"),
        ("version: 0.0\nResources: []\n".to_string(), "Resources", "exactly one resource, found 0"),
        ("- 1\n".to_string(), "", "must be a mapping"),
        ("version: [\n".to_string(), "", "not YAML or JSON"),
    ];
    for (text, path, message) in cases {
        let error = lambda_error(&text);
        assert_eq!(error.code(), "INVALID_LAMBDA_CONFIGURATION");
        assert!(error.path.ends_with(path), "{error} is not at {path}");
        assert!(error.message.contains(message), "{error} lacks {message:?}");
    }
}

#[test]
fn unknown_keys_are_warned_about_not_refused() {
    let text = LAMBDA.replace("        Name:", "        Description: \"x\"\n        Name:") + "os: linux\n";
    let spec = parse_lambda(&text).expect("parses");
    assert_eq!(
        spec.warnings,
        vec![
            "AppSpec os: unknown key, ignored".to_string(),
            "AppSpec Resources[0].myLambdaFunction.Properties.Description: unknown key, ignored".to_string(),
        ]
    );
}

#[test]
fn aws_ecs_example_parses() {
    let spec = parse_ecs(ECS).expect("parses");
    assert_eq!(spec.logical_name, "TargetService");
    assert!(spec.task_definition.ends_with("my-task-definition-family-name:1"));
    assert_eq!((spec.container_name.as_str(), spec.container_port), ("SampleApplicationName", 80));
    assert_eq!(spec.platform_version.as_deref(), Some("LATEST"));
    let network = spec.network.expect("a network configuration");
    assert_eq!(network.subnets, vec!["subnet-1234abcd", "subnet-5678abcd"]);
    assert_eq!((network.security_groups.len(), network.assign_public_ip), (1, Some(true)));
    let strategy = CapacityProviderItem { capacity_provider: "FARGATE_SPOT".into(), base: 1, weight: 2 };
    assert_eq!(spec.capacity_provider_strategy, vec![strategy]);
    assert_eq!(
        spec.hooks.iter().map(|hook| hook.event).collect::<Vec<_>>(),
        ["BeforeInstall", "AfterAllowTestTraffic"]
    );
}

#[test]
fn broken_ecs_appspecs_name_the_member_and_the_code() {
    let cases = [
        (ECS.replace("ContainerPort: 80", "ContainerPort: \"80\""), ".LoadBalancerInfo.ContainerPort", "port number"),
        (ECS.replace("ContainerPort: 80", "ContainerPort: 70000"), ".ContainerPort", "got 70000"),
        (ECS.replace("          ContainerName: \"SampleApplicationName\"\n", ""), ".ContainerName", "is required"),
        (ECS.replace("Subnets: [\"subnet-1234abcd\", \"subnet-5678abcd\"]", "Subnets: []"), ".Subnets", "at least one"),
        (ECS.replace("\"ENABLED\"", "\"yes\""), ".AssignPublicIp", "ENABLED or DISABLED"),
        (ECS.replace("Weight: 2", "Weight: -2"), "CapacityProviderStrategy[0].Weight", "0-100000"),
        (ECS.replace("BeforeInstall:", "AllowTraffic:"), "Hooks[0].AllowTraffic", "not a hook event"),
        (ECS.replace("AWS::ECS::Service", "AWS::Lambda::Function"), ".Type", "must be AWS::ECS::Service"),
    ];
    for (text, path, message) in cases {
        let error = parse_ecs(&text).expect_err("refused");
        assert_eq!(error.code(), "INVALID_ECS_SERVICE");
        assert!(error.path.ends_with(path), "{error} is not at {path}");
        assert!(error.message.contains(message), "{error} lacks {message:?}");
    }
}

#[test]
fn an_oversized_appspec_is_refused_before_parsing() {
    let text = format!("version: 0.0\n# {}\n", "x".repeat(PLATFORM_APPSPEC_BYTES_MAX));
    assert!(lambda_error(&text).message.contains("at most"));
}
