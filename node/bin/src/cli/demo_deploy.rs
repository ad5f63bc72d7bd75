//! The demo's deployment: the bundled sample application (compiled into the binary,
//! so `fleetmesh demo` works from any directory), pushed to node 1 and rolled out
//! OneAtATime across the demo cluster with live progress.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use fleetmesh_model::{
    ApplicationInput, AutoRollbackConfiguration, CreateApplicationInput, CreateApplicationOutput,
    CreateDeploymentGroupInput, CreateDeploymentGroupOutput, CreateDeploymentInput, CreateDeploymentOutput,
    ListApplicationRevisionsOutput, RevisionLocation, RevisionRef, TagFilter, TagFilterType,
};

use super::demo::DemoCluster;
use super::deploy::PushArgs;

/// The sample application's files: (path, contents, executable).
const SAMPLE_APP: &[(&str, &str, bool)] = &[
    ("appspec.yml", include_str!("../../../../examples/sample-app/appspec.yml"), false),
    ("VERSION", include_str!("../../../../examples/sample-app/VERSION"), false),
    ("site/index.html", include_str!("../../../../examples/sample-app/site/index.html"), false),
    ("scripts/common.sh", include_str!("../../../../examples/sample-app/scripts/common.sh"), true),
    ("scripts/stop.sh", include_str!("../../../../examples/sample-app/scripts/stop.sh"), true),
    ("scripts/before_install.sh", include_str!("../../../../examples/sample-app/scripts/before_install.sh"), true),
    ("scripts/after_install.sh", include_str!("../../../../examples/sample-app/scripts/after_install.sh"), true),
    ("scripts/start.sh", include_str!("../../../../examples/sample-app/scripts/start.sh"), true),
    ("scripts/validate.sh", include_str!("../../../../examples/sample-app/scripts/validate.sh"), true),
];

/// Writes the sample application to `dir`.
///
/// # Errors
/// The files cannot be written.
pub(crate) fn write_sample_app(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (path, contents, executable) in SAMPLE_APP {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, contents).with_context(|| format!("cannot write {}", target.display()))?;
        let mode = if *executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn say(command: &str) {
    println!("\n$ fleetmesh {command}");
}

/// Pushes the sample app and deploys it; `Ok(Err(_))` when the deployment itself failed.
pub(super) fn run(cluster: &DemoCluster) -> anyhow::Result<anyhow::Result<()>> {
    let client = &cluster.client;
    let bundle = cluster.dir.join("sample-app");
    write_sample_app(&bundle)?;
    say("deploy create-application --application-name sample-app");
    let application =
        CreateApplicationInput { application_name: "sample-app".into(), compute_platform: None, tags: None };
    client.call::<_, CreateApplicationOutput>("CreateApplication", &application)?;
    say("deploy create-deployment-group --application-name sample-app --deployment-group-name web --tag role=web --deployment-config-name CodeDeployDefault.OneAtATime --auto-rollback");
    let group = CreateDeploymentGroupInput {
        alarm_configuration: None,
        application_name: "sample-app".into(),
        deployment_group_name: "web".into(),
        deployment_config_name: Some("CodeDeployDefault.OneAtATime".into()),
        on_premises_instance_tag_filters: Some(vec![TagFilter {
            key: Some("role".into()),
            value: Some("web".into()),
            filter_type: TagFilterType::KeyAndValue,
        }]),
        on_premises_tag_set: None,
        auto_rollback_configuration: Some(AutoRollbackConfiguration::on_failure()),
        outdated_instances_strategy: None,
        deployment_style: None,
        load_balancer_info: None,
        blue_green_deployment_configuration: None,
        service_role_arn: None,
        ecs_services: None,
        tags: None,
        trigger_configurations: None,
    };
    client.call::<_, CreateDeploymentGroupOutput>("CreateDeploymentGroup", &group)?;
    say(&format!("deploy push --application-name sample-app --source {}", bundle.display()));
    super::push::run(
        client,
        &PushArgs { application_name: "sample-app".into(), source: bundle, description: "demo".into(), json: false },
    )?;
    let revisions: ListApplicationRevisionsOutput =
        client.call("ListApplicationRevisions", &ApplicationInput { application_name: "sample-app".into() })?;
    let revision = revisions.revisions.first().context("the pushed revision is not listed")?.revision_id;
    say(&format!("deploy create-deployment --application-name sample-app --deployment-group-name web --revision {revision} --wait"));
    let deployment = CreateDeploymentInput {
        override_alarm_configuration: None,
        application_name: "sample-app".into(),
        deployment_group_name: "web".into(),
        revision: RevisionRef { revision_id: None, revision: Some(RevisionLocation::fleetmesh(revision)) },
        deployment_config_name: None,
        description: None,
        ignore_application_stop_failures: false,
        file_exists_behavior: None,
        auto_rollback_configuration: None,
        target_instances: None,
    };
    let created: CreateDeploymentOutput = client.call("CreateDeployment", &deployment)?;
    let deployment = created.deployment_id.to_string();
    println!("created deployment {deployment}");
    let code = super::watch::wait_for_deployment(client, &deployment, false)?;
    let installed = cluster.dir.join("n1/root/srv/sample-app/site/index.html");
    let events = cluster.dir.join("n1/root/var/lib/sample-app/events.log");
    println!("\nInstalled on node 1: {}\nIts hooks logged to: {}", installed.display(), events.display());
    Ok(if code == ExitCode::SUCCESS {
        Ok(())
    } else {
        Err(anyhow::anyhow!("the demo deployment {deployment} did not succeed"))
    })
}
