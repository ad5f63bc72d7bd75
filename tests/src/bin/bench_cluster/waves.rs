//! Rollout control-plane overhead: a `OneAtATime` deployment of a prefetched revision
//! without hooks (and with `exit 0` hooks), and where its time goes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fleetmesh_model::{
    CreateDeploymentInput, CreateDeploymentOutput, DeploymentInfo, DeploymentInput, DeploymentStatus, EpochSeconds,
    GetDeploymentOutput, GetDeploymentTargetInput, GetDeploymentTargetOutput, RevisionRef,
};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_tests::{write_bundle, Options, TestCluster};
use serde_json::{json, Value};

use crate::api::Api;
use crate::cluster::{start_cluster, term};
use crate::{millis, summary};

pub(crate) const NO_HOOKS: &str = "version: 0.0\nos: linux\n";

pub(crate) fn true_hooks_appspec() -> String {
    let events = ["ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"];
    let hooks: String =
        events.iter().map(|event| format!("  {event}:\n    - location: hooks/true.sh\n      timeout: 30\n")).collect();
    format!("version: 0.0\nos: linux\nhooks:\n{hooks}")
}

/// Milliseconds since the epoch of an API time (the API gives seconds with a fraction).
pub(crate) fn at(time: EpochSeconds) -> f64 {
    time.0 * 1000.0
}

/// Where one deployment's time went, from its record and its targets' lifecycle events.
pub(crate) struct WaveBreakdown {
    /// create → the first event of the first target starts.
    head_ms: f64,
    /// Per target: first event start → last event end (the agent's work).
    agent_ms: Vec<f64>,
    /// Between targets: one target's last event end → the next target's first start.
    handoff_ms: Vec<f64>,
    /// The last target's last event end → the deployment completes.
    tail_ms: f64,
    /// Per lifecycle event name: start → end, every target.
    event_ms: BTreeMap<String, Vec<f64>>,
}

pub(crate) fn breakdown(cluster: &TestCluster, api: &Api, info: &DeploymentInfo) -> Option<WaveBreakdown> {
    let base = cluster.api_url(1);
    let mut spans = Vec::new();
    let mut event_ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for target in &info.target_waves {
        let input =
            GetDeploymentTargetInput { deployment_id: info.deployment_id.clone(), target_id: target.target_id.clone() };
        let answer: GetDeploymentTargetOutput = api.call(&base, "GetDeploymentTarget", &input).ok()?;
        let events = answer.deployment_target.instance_target.expect("an instance target").lifecycle_events;
        let start = events.iter().filter_map(|event| event.start_time).map(at).fold(f64::MAX, f64::min);
        let end = events.iter().filter_map(|event| event.end_time).map(at).fold(0.0, f64::max);
        for event in &events {
            if let (Some(start), Some(end)) = (event.start_time, event.end_time) {
                event_ms.entry(event.lifecycle_event_name.to_string()).or_default().push(at(end) - at(start));
            }
        }
        spans.push((start, end));
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let created = at(info.create_time);
    let completed = at(info.complete_time?);
    Some(WaveBreakdown {
        head_ms: spans.first()?.0 - created,
        agent_ms: spans.iter().map(|(start, end)| end - start).collect(),
        handoff_ms: spans.windows(2).map(|pair| pair[1].0 - pair[0].1).collect(),
        tail_ms: completed - spans.last()?.1,
        event_ms,
    })
}

/// Pushes a bundle with `appspec` and version `version`, prefetches it to the group, waits.
pub(crate) fn prepare_revision(cluster: &TestCluster, work: &std::path::Path, appspec: &str, version: usize) -> String {
    let dir = work.join(format!("v{version}"));
    write_bundle(
        &dir,
        &[
            ("appspec.yml", appspec, 0o644),
            ("VERSION", &format!("{version}\n"), 0o644),
            ("hooks/true.sh", "#!/bin/sh\nexit 0\n", 0o755),
        ],
    );
    let revision = cluster.push(1, "bench", &dir);
    cluster.ok(1, &["deploy", "prefetch", "--revision", &revision, "--deployment-group-name", "waves", "--wait"]);
    revision
}

/// Creates a deployment through the API and polls it every 10 ms until it ends.
pub(crate) fn deploy_and_time(cluster: &TestCluster, api: &Api, revision: &str) -> (Duration, DeploymentInfo) {
    let base = cluster.api_url(1);
    let input = CreateDeploymentInput {
        override_alarm_configuration: None,
        application_name: "bench".into(),
        deployment_group_name: "waves".into(),
        revision: RevisionRef::id(revision.parse().expect("revision id")),
        deployment_config_name: None,
        description: None,
        ignore_application_stop_failures: false,
        file_exists_behavior: None,
        auto_rollback_configuration: None,
        target_instances: None,
    };
    let started = Instant::now();
    let created: CreateDeploymentOutput = api.call(&base, "CreateDeployment", &input).expect("create deployment");
    let id: DeploymentId = created.deployment_id;
    // Bounded by the deadline; not `wait_until`, whose 100 ms period would blur the figure.
    let deadline = started + Duration::from_secs(120);
    loop {
        let input = DeploymentInput { deployment_id: id.clone() };
        let answer: Option<GetDeploymentOutput> = api.call(&base, "GetDeployment", &input).ok();
        if let Some(answer) = answer.filter(|answer| answer.deployment_info.status.is_terminal()) {
            return (started.elapsed(), answer.deployment_info);
        }
        assert!(Instant::now() < deadline, "deployment {id} did not end within 120 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn waves(runs: usize) -> Value {
    const HOSTS: u32 = 5;
    let cluster = start_cluster(HOSTS, Options::default());
    let api = Api::new(&cluster.admin_token, Duration::from_secs(30));
    cluster.ok(1, &["deploy", "create-application", "--application-name", "bench"]);
    cluster.ok(
        1,
        &[
            "deploy",
            "create-deployment-group",
            "--application-name",
            "bench",
            "--deployment-group-name",
            "waves",
            "--tag",
            "role=web",
            "--deployment-config-name",
            "CodeDeployDefault.OneAtATime",
        ],
    );
    let work = tempfile::tempdir().expect("tempdir");
    let mut version = 0;
    let mut variants = serde_json::Map::new();
    let term_before = term(&cluster, &api);
    for (name, appspec) in [("no_hooks", NO_HOOKS.to_string()), ("exit_0_hooks", true_hooks_appspec())] {
        let (mut per_wave, mut recorded_per_wave) = (Vec::new(), Vec::new());
        let (mut heads, mut agents, mut handoffs, mut tails) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut events: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for run in 0..runs {
            version += 1;
            let revision = prepare_revision(&cluster, work.path(), &appspec, version);
            let (wall, info) = deploy_and_time(&cluster, &api, &revision);
            assert_eq!(info.status, DeploymentStatus::Succeeded, "{info:?}");
            per_wave.push(millis(wall) / f64::from(HOSTS));
            if let Some(completed) = info.complete_time {
                recorded_per_wave.push((at(completed) - at(info.create_time)) / f64::from(HOSTS));
            }
            if let Some(parts) = breakdown(&cluster, &api, &info) {
                heads.push(parts.head_ms);
                agents.extend(parts.agent_ms);
                handoffs.extend(parts.handoff_ms);
                tails.push(parts.tail_ms);
                for (event, durations) in parts.event_ms {
                    events.entry(event).or_default().extend(durations);
                }
            }
            eprintln!("waves {name} run {run}: {:.0} ms for {HOSTS} waves", millis(wall));
        }
        variants.insert(
            name.to_string(),
            json!({
                "per_wave_wall": summary(&per_wave),
                "per_wave_recorded": summary(&recorded_per_wave),
                "create_to_first_event": summary(&heads),
                "agent_per_target": summary(&agents),
                "handoff_between_targets": summary(&handoffs),
                "last_event_to_complete": summary(&tails),
                "lifecycle_event_median_ms": events.iter().map(|(event, durations)| (event.clone(), summary(durations)["median_ms"].clone())).collect::<serde_json::Map<_, _>>(),
            }),
        );
    }
    json!({
        "what": format!("{HOSTS}-host OneAtATime deployment of a prefetched revision; wall time from CreateDeployment to Succeeded (GetDeployment polled every 10 ms) / {HOSTS}; 'recorded' uses the deployment's createTime/completeTime; the breakdown uses the targets' lifecycle event times (ms)"),
        "runs_per_variant": runs,
        "variants": variants,
        "terms": { "before": term_before, "after": term(&cluster, &api) },
    })
}
