//! The `fleetmesh` command line as a user meets it: help that explains, clear
//! one-line errors and non-zero exits for bad input. (Building this test also builds
//! the binary the end-to-end tests in `tests/` run.)

use std::process::Command;

fn fleetmesh(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(args)
        .env_remove("FLEETMESH_API")
        .env_remove("FLEETMESH_TOKEN")
        .output()
        .expect("run fleetmesh")
}

#[test]
fn help_lists_every_top_level_verb() {
    let output = fleetmesh(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for verb in ["node", "cluster", "deploy", "demo", "sim"] {
        assert!(text.contains(verb), "--help lacks {verb}: {text}");
    }
    let deploy = fleetmesh(&["deploy", "--help"]);
    let text = String::from_utf8_lossy(&deploy.stdout);
    for verb in
        ["create-application", "create-deployment-group", "push", "create-deployment", "stop-deployment", "prefetch"]
    {
        assert!(text.contains(verb), "deploy --help lacks {verb}");
    }
}

#[test]
fn a_missing_token_is_a_clear_error() {
    let output = fleetmesh(&["cluster", "status"]);
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("no admin token"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
}

#[test]
fn an_unreachable_api_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(["--api", "http://127.0.0.1:9", "--token", "x", "cluster", "status"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("cannot reach the fleetmesh API"), "{text}");
}

#[test]
fn node_flags_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_string_lossy().to_string();
    let output =
        fleetmesh(&["node", "--data-dir", &data, "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--token", "x"]);
    assert!(!output.status.success());
    let output = fleetmesh(&["node", "--data-dir", &data, "--tag", "novalue", "--listen", "127.0.0.1:0"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("KEY=VALUE"));
    let output =
        fleetmesh(&["node", "--data-dir", &data, "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--voters", "9"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--voters"));
}

#[test]
fn bad_deploy_flags_fail_before_any_request() {
    let output = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(["--api", "http://127.0.0.1:9", "--token", "x", "deploy", "create-deployment-config"])
        .args(["--deployment-config-name", "c", "--minimum-healthy-hosts", "type=BOGUS,value=1"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("HOST_COUNT or FLEET_PERCENT"));
}

#[test]
fn an_unknown_sim_scenario_is_refused() {
    let output = fleetmesh(&["sim", "--scenario", "nope", "--nodes", "3", "--seed", "1"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown scenario"));
}

#[test]
fn create_deployment_config_needs_a_minimum_or_a_routing_config() {
    // create-deployment-config with neither --minimum-healthy-hosts nor
    // --traffic-routing-config: asserts clap refuses it before any request, naming the
    // flag; with a routing config that is not JSON, the CLI refuses it too.
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
            .args(["--api", "http://127.0.0.1:9", "--token", "x", "deploy", "create-deployment-config"])
            .args(["--deployment-config-name", "c"])
            .args(extra)
            .output()
            .expect("run")
    };
    let output = run(&[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--minimum-healthy-hosts"));
    let output = run(&["--traffic-routing-config", "type=TimeBasedCanary"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--traffic-routing-config is not JSON"));
}
