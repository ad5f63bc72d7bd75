//! Scenarios for `ClusterState::apply`: a known state, commands in, the exact state
//! and outcomes asserted; and replaying the same proposals gives the same bytes.

use std::collections::BTreeMap;

use crate::NodeId;
use proptest::prelude::*;

use super::*;
use crate::model::deployment::{
    DeploymentCreator, DeploymentStatus, LifecycleEvent, LifecycleEventStatus, TargetStatus, IN_PLACE_EVENTS,
};
use crate::model::ids::{ChunkHash, DeploymentId, UnixMillis};
use crate::model::members::{Actor, ApiTokenKind, ClusterCa, ClusterInfo, JoinTokenRecord, MemberSpec};
use crate::model::resources::{
    AutoRollbackConfiguration, ComputePlatform, FileExistsBehavior, MinimumHealthyHosts, MinimumHealthyHostsType,
    TagFilter, TagFilterType, TargetSelector, ONE_AT_A_TIME,
};
use crate::model::revision::{
    ChunkRef, ChunkingParams, EntryKind, Manifest, ManifestEntry, RevisionRecord, MANIFEST_FORMAT,
};
use crate::model::traffic_routing::tests::canary;
use crate::model::traffic_routing::{TrafficRouting, TrafficRoutingConfig};

pub(crate) fn at(millis: u64, commands: Vec<Command>) -> Proposal {
    Proposal::new(UnixMillis(millis), commands)
}

fn spec(port: u16) -> MemberSpec {
    MemberSpec {
        listen: format!("127.0.0.1:{port}").parse().expect("addr"),
        api: format!("127.0.0.1:{}", port + 1000).parse().expect("addr"),
        tags: BTreeMap::from([("role".to_string(), "web".to_string())]),
        advertise: None,
        instance_name: None,
    }
}

fn manifest(content: &[u8]) -> Manifest {
    let chunk = ChunkRef(ChunkHash::of(content), content.len() as u32);
    Manifest {
        format: MANIFEST_FORMAT,
        chunking: ChunkingParams { algorithm: "fastcdc-v2020".into(), min_bytes: 16, avg_bytes: 64, max_bytes: 256 },
        entries: vec![ManifestEntry {
            path: "appspec.yml".into(),
            mode: 0o644,
            kind: EntryKind::File { size: content.len() as u64, chunks: vec![chunk] },
        }],
    }
}

fn revision(content: &[u8]) -> RevisionRecord {
    let manifest = manifest(content);
    RevisionRecord {
        revision_id: manifest.revision_id(),
        application_name: "app".into(),
        description: String::new(),
        size_bytes: content.len() as u64,
        unique_bytes: content.len() as u64,
        chunk_count: 1,
        register_time: UnixMillis(0),
        registered_by: "test".into(),
        seeds: vec![NodeId(1)],
        created_by: None,
        manifest,
        app_spec: None,
        source: None,
    }
}

/// A cluster of three web hosts with an application, a OneAtATime group with automatic
/// rollback, and two revisions.
pub(crate) fn setup() -> (ClusterState, RevisionRecord, RevisionRecord) {
    let mut state = ClusterState::default();
    let info = ClusterInfo {
        ca: ClusterCa { cluster_id: "t".into(), cert_pem: "x".into(), key_pem: "x".into(), sealed_key: None },
        admin_token_hash: "h".into(),
        join_tokens: vec![],
        voters_desired: 3,
        read_only_token_hash: None,
        metrics_token_hash: None,
        created_at: UnixMillis(0),
        access_keys: Vec::new(),
        aws_region: None,
        aws_account_id: None,
    };
    let (first, second) = (revision(b"version: 0.0 # one"), revision(b"version: 0.0 # two"));
    let response = state.apply(&at(
        1,
        vec![
            Command::Bootstrap { info, first: spec(7401) },
            Command::AddMember { spec: spec(7402) },
            Command::AddMember { spec: spec(7403) },
            Command::CreateApplication {
                name: "app".into(),
                application_id: "a".into(),
                compute_platform: ComputePlatform::Server,
            },
            Command::CreateDeploymentGroup {
                spec: DeploymentGroupSpec {
                    alarm_configuration: None,
                    application_name: "app".into(),
                    deployment_group_name: "web".into(),
                    deployment_config_name: ONE_AT_A_TIME.into(),
                    target_selector: TargetSelector {
                        tag_filters: vec![TagFilter {
                            key: Some("role".into()),
                            value: Some("web".into()),
                            filter_type: TagFilterType::KeyAndValue,
                        }],
                        tag_set: vec![],
                    },
                    auto_rollback_configuration: AutoRollbackConfiguration::on_failure(),
                    update_outdated_instances: true,
                    deployment_option: Default::default(),
                    load_balancer_info: None,
                    deployment_type: Default::default(),
                    blue_green_deployment_configuration: None,
                    service_role_arn: None,
                    ecs_services: Vec::new(),
                    trigger_configurations: Vec::new(),
                },
                deployment_group_id: "g".into(),
            },
            Command::RegisterRevision { record: Box::new(first.clone()) },
            Command::RegisterRevision { record: Box::new(second.clone()) },
        ],
    ));
    assert_eq!(
        response.outcomes[..3],
        [Outcome::MemberAdded(NodeId(1)), Outcome::MemberAdded(NodeId(2)), Outcome::MemberAdded(NodeId(3))]
    );
    assert!(response.outcomes.iter().all(|outcome| !matches!(outcome, Outcome::Rejected(_))), "{response:?}");
    (state, first, second)
}

pub(crate) fn deploy(revision: &RevisionRecord, id: &str) -> Command {
    Command::CreateDeployment {
        spec: DeploymentSpec {
            alarm_configuration: None,
            application_name: "app".into(),
            deployment_group_name: "web".into(),
            revision_id: revision.revision_id,
            deployment_config_name: None,
            description: String::new(),
            ignore_application_stop_failures: false,
            file_exists_behavior: FileExistsBehavior::Disallow,
            auto_rollback_configuration: None,
            creator: DeploymentCreator::User,
            targets: None,
            target_instances: None,
            shift: None,
        },
        deployment_id: DeploymentId(id.into()),
    }
}

pub(crate) fn report(id: &str, node: u64, seq: u64, status: TargetStatus) -> TargetReport {
    let event_status = match status {
        TargetStatus::Succeeded => LifecycleEventStatus::Succeeded,
        _ => LifecycleEventStatus::Failed,
    };
    TargetReport {
        deployment_id: DeploymentId(id.into()),
        target_id: NodeId(node),
        seq,
        status,
        lifecycle_events: IN_PLACE_EVENTS
            .iter()
            .map(|name| LifecycleEvent { status: event_status, ..LifecycleEvent::pending(name) })
            .collect(),
    }
}

#[test]
fn a_successful_deployment_updates_the_group_and_frees_it() {
    // Deploy to all three hosts one wave at a time; every target succeeds.
    let (mut state, first, _) = setup();
    let id = "d-AAAAAAAAA";
    state.apply(&at(2, vec![deploy(&first, id)]));
    let deployment_id = DeploymentId(id.into());
    assert_eq!(state.deployments[&deployment_id].targets.len(), 3);
    for node in 1..=3 {
        let outcomes = state.apply(&at(
            3 + node,
            vec![Command::StartTargets { deployment_id: deployment_id.clone(), targets: vec![NodeId(node)] }],
        ));
        assert_eq!(outcomes.outcomes, vec![Outcome::Done]);
        state.apply(&at(
            4 + node,
            vec![Command::ReportTargets { reports: vec![report(id, node, 1, TargetStatus::Succeeded)] }],
        ));
    }
    // A stale report (same sequence number) changes nothing.
    let before = state.clone();
    state.apply(&at(10, vec![Command::ReportTargets { reports: vec![report(id, 1, 1, TargetStatus::Failed)] }]));
    assert_eq!(state.deployments, before.deployments);
    let finish = Finish { deployment_id: deployment_id.clone(), succeeded: true, error: None, rollback_id: None };
    assert_eq!(state.apply(&at(11, vec![Command::FinishDeployment(finish)])).outcomes, vec![Outcome::Done]);
    let deployment = &state.deployments[&deployment_id];
    assert_eq!(deployment.status, DeploymentStatus::Succeeded);
    assert_eq!(deployment.waves, 3);
    let group = state.deployment_group("app", "web").expect("group");
    assert_eq!(group.target_revision, Some(first.revision_id));
    assert_eq!(group.active_deployment_id, None);
    assert!(group.instances.values().all(|record| record.healthy && record.revision_id == Some(first.revision_id)));
}

/// Deploys `revision` to hosts 1-3 at once, every target succeeding, at times 2-4.
pub(crate) fn deploy_everywhere(state: &mut ClusterState, revision: &RevisionRecord, id: &str) {
    let deployment_id = DeploymentId(id.into());
    let everyone = vec![NodeId(1), NodeId(2), NodeId(3)];
    state.apply(&at(
        2,
        vec![deploy(revision, id), Command::StartTargets { deployment_id: deployment_id.clone(), targets: everyone }],
    ));
    let reports = (1..=3).map(|node| report(id, node, 1, TargetStatus::Succeeded)).collect();
    state.apply(&at(3, vec![Command::ReportTargets { reports }]));
    let finish = Finish { deployment_id, succeeded: true, error: None, rollback_id: None };
    state.apply(&at(4, vec![Command::FinishDeployment(finish)]));
}

#[test]
fn one_deployment_per_group_and_a_failure_rolls_back_what_changed() {
    // v1 succeeds everywhere; v2 fails on its first host: a second deployment is refused
    // while it runs, and finishing it as failed creates a rollback of v1 to that host only.
    let (mut state, first, second) = setup();
    deploy_everywhere(&mut state, &first, "d-AAAAAAAAA");

    let two = DeploymentId("d-BBBBBBBBB".into());
    state.apply(&at(
        5,
        vec![deploy(&second, &two.0), Command::StartTargets { deployment_id: two.clone(), targets: vec![NodeId(1)] }],
    ));
    let refused = state.apply(&at(6, vec![deploy(&first, "d-CCCCCCCCC")]));
    assert!(
        matches!(&refused.outcomes[0], Outcome::Rejected(error) if error.kind == ApplyErrorKind::Conflict && error.message.contains("d-BBBBBBBBB"))
    );
    state.apply(&at(7, vec![Command::ReportTargets { reports: vec![report(&two.0, 1, 1, TargetStatus::Failed)] }]));
    let rollback = DeploymentId("d-RRRRRRRRR".into());
    let finish =
        Finish { deployment_id: two.clone(), succeeded: false, error: None, rollback_id: Some(rollback.clone()) };
    state.apply(&at(8, vec![Command::FinishDeployment(finish)]));
    let failed = &state.deployments[&two];
    assert_eq!(failed.status, DeploymentStatus::Failed);
    assert_eq!(failed.targets[&NodeId(2)].status, TargetStatus::Skipped);
    assert_eq!(
        failed.rollback_info.as_ref().and_then(|info| info.rollback_deployment_id.clone()),
        Some(rollback.clone())
    );
    let created = &state.deployments[&rollback];
    assert_eq!(created.revision_id, first.revision_id);
    assert_eq!(created.creator, DeploymentCreator::CodeDeployRollback);
    assert_eq!(created.targets.keys().copied().collect::<Vec<_>>(), vec![NodeId(1)]);
    assert_eq!(
        state.deployment_group("app", "web").and_then(|group| group.active_deployment_id.clone()),
        Some(rollback)
    );
}

#[test]
fn stopping_fails_running_targets_and_skips_pending_ones() {
    let (mut state, first, _) = setup();
    let id = DeploymentId("d-AAAAAAAAA".into());
    state.apply(&at(
        2,
        vec![deploy(&first, &id.0), Command::StartTargets { deployment_id: id.clone(), targets: vec![NodeId(1)] }],
    ));
    state.apply(&at(3, vec![Command::StopDeployment { deployment_id: id.clone(), rollback_id: None }]));
    let deployment = &state.deployments[&id];
    assert_eq!(deployment.status, DeploymentStatus::Stopped);
    assert_eq!(deployment.targets[&NodeId(1)].status, TargetStatus::Failed);
    assert_eq!(deployment.targets[&NodeId(2)].status, TargetStatus::Skipped);
    let again = state.apply(&at(4, vec![Command::StopDeployment { deployment_id: id, rollback_id: None }]));
    assert!(matches!(&again.outcomes[0], Outcome::Rejected(error) if error.message.contains("already finished")));
}

#[test]
fn a_lost_host_runs_an_unknown_revision_unless_it_reported_install() {
    // v1 everywhere, then v2 starts on hosts 1, 2 and 3. Host 1 reported Install done,
    // host 2 only ApplicationStop, host 3 nothing; all three hosts are lost and the
    // leader fails their targets. The group's record must say host 1 runs v2, hosts 2
    // and 3 run something unknown (not v1: they may have installed v2 unreported).
    let (mut state, first, second) = setup();
    deploy_everywhere(&mut state, &first, "d-AAAAAAAAA");
    let two = DeploymentId("d-BBBBBBBBB".into());
    state.apply(&at(
        5,
        vec![
            deploy(&second, &two.0),
            Command::StartTargets { deployment_id: two.clone(), targets: vec![NodeId(1), NodeId(2), NodeId(3)] },
        ],
    ));
    let progress = |node: u64, done: usize| {
        let mut partial = report(&two.0, node, 1, TargetStatus::InProgress);
        for (index, event) in partial.lifecycle_events.iter_mut().enumerate() {
            event.status = if index < done { LifecycleEventStatus::Succeeded } else { LifecycleEventStatus::Pending };
        }
        partial
    };
    let install_done = IN_PLACE_EVENTS.iter().position(|name| *name == "Install").expect("Install") + 1;
    state.apply(&at(6, vec![Command::ReportTargets { reports: vec![progress(1, install_done), progress(2, 1)] }]));
    let lost = (1..=3).map(|node| (NodeId(node), "host lost".to_string())).collect();
    state.apply(&at(7, vec![Command::FailTargets { deployment_id: two.clone(), targets: lost }]));
    let group = state.deployment_group("app", "web").expect("group");
    let runs = |node: u64| group.instances[&NodeId(node)].revision_id;
    assert_eq!(runs(1), Some(second.revision_id));
    assert_eq!(runs(2), None);
    assert_eq!(runs(3), None);
    assert!((1..=3).all(|node| !group.instances[&NodeId(node)].healthy));
}

#[test]
fn a_host_that_reports_an_interrupted_install_runs_an_unknown_revision() {
    // A host that restarted mid-Install reports its target failed with Install failed:
    // some of the new files may be in place, so the group must not record the old revision.
    let (mut state, first, _) = setup();
    let id = DeploymentId("d-AAAAAAAAA".into());
    state.apply(&at(
        2,
        vec![deploy(&first, &id.0), Command::StartTargets { deployment_id: id.clone(), targets: vec![NodeId(1)] }],
    ));
    let mut interrupted = report(&id.0, 1, 1, TargetStatus::Failed);
    let mut reached_install = false;
    for event in &mut interrupted.lifecycle_events {
        if event.lifecycle_event_name == "Install" {
            reached_install = true;
            event.status = LifecycleEventStatus::Failed;
        } else {
            event.status =
                if reached_install { LifecycleEventStatus::Skipped } else { LifecycleEventStatus::Succeeded };
        }
    }
    state.apply(&at(3, vec![Command::ReportTargets { reports: vec![interrupted] }]));
    let group = state.deployment_group("app", "web").expect("group");
    assert_eq!(group.instances[&NodeId(1)].revision_id, None);
}

#[test]
fn a_revision_whose_id_is_not_its_manifest_hash_is_refused() {
    let (mut state, first, _) = setup();
    let mut forged = revision(b"version: 0.0 # forged");
    forged.revision_id = first.revision_id;
    forged.application_name = "app".into();
    let outcome = state.apply(&at(2, vec![Command::RegisterRevision { record: Box::new(forged) }]));
    assert!(matches!(&outcome.outcomes[0], Outcome::Rejected(error) if error.message.contains("not the hash")));
}

proptest! {
    /// Replaying the same proposals from the same start gives the same state, byte for
    /// byte, whatever the commands (including rejected ones).
    #[test]
    fn apply_is_deterministic(steps in proptest::collection::vec((0u8..6, 1u64..4, 0u64..5), 1..40)) {
        let (start, first, second) = setup();
        let proposals: Vec<Proposal> = steps
            .iter()
            .enumerate()
            .map(|(index, (kind, node, seq))| {
                let id = DeploymentId(format!("d-{:0>9}", index % 3));
                let command = match kind {
                    0 => deploy(if node % 2 == 0 { &first } else { &second }, &id.0),
                    1 => Command::StartTargets { deployment_id: id.clone(), targets: vec![NodeId(*node)] },
                    2 => Command::ReportTargets { reports: vec![report(&id.0, *node, *seq, TargetStatus::Succeeded)] },
                    3 => Command::ReportTargets { reports: vec![report(&id.0, *node, *seq, TargetStatus::Failed)] },
                    4 => Command::FinishDeployment(Finish { deployment_id: id.clone(), succeeded: *seq > 2, error: None, rollback_id: Some(DeploymentId(format!("d-R{:0>8}", index))) }),
                    _ => Command::StopDeployment { deployment_id: id.clone(), rollback_id: None },
                };
                at(10 + index as u64, vec![command])
            })
            .collect();
        let (mut a, mut b) = (start.clone(), start);
        let outcomes_a: Vec<_> = proposals.iter().map(|proposal| a.apply(proposal)).collect();
        let outcomes_b: Vec<_> = proposals.iter().map(|proposal| b.apply(proposal)).collect();
        prop_assert_eq!(outcomes_a, outcomes_b);
        prop_assert_eq!(serde_json::to_vec(&a).expect("json"), serde_json::to_vec(&b).expect("json"));
        a.check_invariants();
    }
}

#[test]
fn poll_touches_name_the_pollers_a_command_concerns() {
    // A target that ends wakes its own poll only; lifecycle progress inside a target
    // wakes nobody; members and deployments ending wake every poll.
    let mut touches = PollTouches::default();
    touches.add_command(&Command::ReportTargets {
        reports: vec![report("d", 3, 1, TargetStatus::InProgress), report("d", 4, 1, TargetStatus::Succeeded)],
    });
    touches.add_command(&Command::StartTargets { deployment_id: DeploymentId("d".into()), targets: vec![NodeId(7)] });
    touches.add_command(&Command::RecordRevisionHolder {
        revision_id: crate::model::ids::Hash32([1; 32]),
        node: NodeId(9),
    });
    touches.add_command(&Command::CreateApplication {
        name: "a".into(),
        application_id: "id".into(),
        compute_platform: ComputePlatform::Server,
    });
    assert_eq!(touches, PollTouches { all: false, nodes: [NodeId(4), NodeId(7), NodeId(9)].into() });

    touches.add_command(&Command::RemoveMember { id: NodeId(2) });
    assert!(touches.all && touches.nodes.is_empty(), "{touches:?}");
    touches.add(NodeId(5));
    assert!(touches.nodes.is_empty(), "all stays all");
}

#[test]
fn poll_touches_collapse_into_all_past_their_bound() {
    let mut touches = PollTouches::default();
    for id in 0..PollTouches::NODES_MAX as u64 {
        touches.add(NodeId(id));
    }
    assert!(!touches.all);
    assert_eq!(touches.nodes.len(), PollTouches::NODES_MAX);
    touches.add(NodeId(u64::MAX));
    assert!(touches.all && touches.nodes.is_empty());
    assert!(!PollTouches::default().all && PollTouches::default().is_empty());
}

#[test]
fn a_proposal_names_its_level_before_its_commands_and_old_entries_read_as_the_base_level() {
    // The encoding of an entry: `level` comes before `commands`, so a release that does
    // not know the level can refuse the entry before it meets an unknown command; entries
    // of the first release carry no level.
    let proposal = Proposal::new(UnixMillis(5), vec![Command::SetFeatureLevel { level: FeatureLevel(2) }]);
    assert_eq!(proposal.level, FeatureLevel::VERSIONED_ENTRIES);
    let text = serde_json::to_string(&proposal).expect("encodes");
    assert!(text.find("\"level\"") < text.find("\"commands\""), "{text}");
    assert_eq!(serde_json::from_str::<Proposal>(&text).expect("decodes"), proposal);
    let old = r#"{"at":7,"commands":[{"DeleteApplication":{"name":"web"}}]}"#;
    let decoded: Proposal = serde_json::from_str(old).expect("an entry of the first release decodes");
    assert_eq!(decoded.level, FeatureLevel::BASE);
    assert_eq!(decoded.commands, vec![Command::DeleteApplication { name: "web".into() }]);
    assert_eq!(Proposal::new(UnixMillis(1), Vec::new()).level, FeatureLevel::BASE);
}

#[test]
fn an_entry_of_a_level_this_release_does_not_know_is_refused_with_a_reason() {
    let future =
        format!(r#"{{"at":1,"level":{},"commands":[{{"SomeFutureCommand":{{}}}}]}}"#, FeatureLevel::CURRENT.0 + 1);
    let error = serde_json::from_str::<Proposal>(&future).expect_err("unknown level");
    assert!(error.to_string().contains("upgrade this node"), "{error}");
    let garbage = serde_json::from_str::<Proposal>(r#"{"level":1}"#).expect_err("no commands");
    assert!(garbage.to_string().contains("missing field"), "{garbage}");
}

#[test]
fn the_feature_level_only_rises() {
    let (mut state, _, _) = setup();
    assert_eq!(state.feature_level, FeatureLevel::BASE);
    let raise = |level| Command::SetFeatureLevel { level: FeatureLevel(level) };
    assert_eq!(state.apply(&at(10, vec![raise(2)])).outcomes, vec![Outcome::Done]);
    assert_eq!(state.feature_level, FeatureLevel(2));
    let outcomes = state.apply(&at(11, vec![raise(2), raise(1)])).outcomes;
    assert!(outcomes.iter().all(|outcome| matches!(outcome, Outcome::Rejected(_))), "{outcomes:?}");
    assert_eq!(state.feature_level, FeatureLevel(2));
    // A state written before feature levels existed reads as the base level.
    let mut old = serde_json::to_value(ClusterState::default()).expect("encodes");
    old.as_object_mut().expect("an object").remove("feature_level");
    let old: ClusterState = serde_json::from_value(old).expect("decodes");
    assert_eq!(old.feature_level, FeatureLevel::BASE);
}

/// A join token record with `secret_hash` `hash` (the id is `jt-` and its first 16 characters).
fn token(hash: &str, expires_at: Option<u64>, max_uses: Option<u32>) -> JoinTokenRecord {
    JoinTokenRecord {
        secret_hash: hash.into(),
        expires_at: expires_at.map(UnixMillis),
        description: "test".into(),
        max_uses,
        ..JoinTokenRecord::default()
    }
}

/// The setup's state at the join-token lifecycle's feature level.
fn at_token_level() -> ClusterState {
    let (mut state, _, _) = setup();
    let raise = Command::SetFeatureLevel { level: FeatureLevel::JOIN_TOKEN_LIFECYCLE };
    assert_eq!(state.apply(&at(5, vec![raise])).outcomes, vec![Outcome::Done]);
    state
}

fn tokens(state: &ClusterState) -> &[JoinTokenRecord] {
    &state.cluster.as_ref().expect("bootstrapped").join_tokens
}

#[test]
fn a_token_with_max_uses_admits_that_many_joins_even_in_one_entry() {
    // Adds a token with max_uses 2, then proposes three joins with it in one entry (as
    // racing joins that all passed the leader's check would be); asserts two members are
    // added and counted, the third is refused naming the limit, and the entry's level.
    let mut state = at_token_level();
    let add = Command::AddJoinToken { record: token("aaaaaaaaaaaaaaaa00", None, Some(2)) };
    assert_eq!(add.feature_level(), FeatureLevel::JOIN_TOKEN_LIFECYCLE);
    assert_eq!(state.apply(&at(10, vec![add])).outcomes, vec![Outcome::Done]);
    let stored = &tokens(&state)[0];
    assert_eq!(
        (stored.id().as_str(), stored.uses, stored.created_at),
        ("jt-aaaaaaaaaaaaaaaa", 0, Some(UnixMillis(10)))
    );
    let admit = |port| Command::AdmitMember { spec: spec(port), token_id: "jt-aaaaaaaaaaaaaaaa".into() };
    let outcomes = state.apply(&at(11, vec![admit(7404), admit(7405), admit(7406)])).outcomes;
    assert_eq!(outcomes[..2], [Outcome::MemberAdded(NodeId(4)), Outcome::MemberAdded(NodeId(5))]);
    let Outcome::Rejected(error) = &outcomes[2] else { panic!("the third join is refused: {outcomes:?}") };
    assert_eq!(error.kind, ApplyErrorKind::Conflict);
    assert_eq!(
        error.message,
        "the join token jt-aaaaaaaaaaaaaaaa was used 2 time(s), its --max-uses; create a new one with \
         `fleetmesh cluster create-join-token`"
    );
    assert_eq!(tokens(&state)[0].uses, 2);
    assert_eq!(state.members.len(), 5);
}

#[test]
fn an_expired_or_deleted_token_admits_nobody() {
    // Adds a token expiring at 20 and one without limits; a join at 25 with the first is
    // refused as expired and adds no member; deleting the second refuses the next join
    // with it; deleting an unknown id is NotFound.
    let mut state = at_token_level();
    let add = |record| Command::AddJoinToken { record };
    state.apply(&at(
        10,
        vec![add(token("bbbbbbbbbbbbbbbb", Some(20), None)), add(token("cccccccccccccccc", None, None))],
    ));
    let admit = |token: &str| Command::AdmitMember { spec: spec(7404), token_id: token.into() };
    let outcomes = state.apply(&at(25_000, vec![admit("jt-bbbbbbbbbbbbbbbb")])).outcomes;
    assert!(
        matches!(&outcomes[0], Outcome::Rejected(error) if error.message.starts_with("the join token expired 24 s ago")),
        "{outcomes:?}"
    );
    assert_eq!(state.members.len(), 3);
    let delete = |token: &str| Command::DeleteJoinToken { token_id: token.into() };
    let outcomes = state.apply(&at(25_001, vec![delete("jt-cccccccccccccccc"), admit("jt-cccccccccccccccc")])).outcomes;
    assert_eq!(outcomes[0], Outcome::Done);
    assert!(matches!(&outcomes[1], Outcome::Rejected(error) if error.kind == ApplyErrorKind::NotFound), "{outcomes:?}");
    let outcomes = state.apply(&at(25_002, vec![delete("jt-nope")])).outcomes;
    assert!(
        matches!(&outcomes[0], Outcome::Rejected(error) if error.kind == ApplyErrorKind::NotFound
            && error.message.contains("list-join-tokens")),
        "{outcomes:?}"
    );
    assert_eq!(tokens(&state).iter().map(JoinTokenRecord::id).collect::<Vec<_>>(), ["jt-bbbbbbbbbbbbbbbb"]);
}

#[test]
fn a_token_with_zero_uses_or_a_taken_id_is_refused() {
    // At the token level, max_uses 0 is Invalid and a second record with the same id
    // AlreadyExists; neither is stored.
    let mut state = at_token_level();
    let add = |record| Command::AddJoinToken { record };
    let outcomes = state
        .apply(&at(
            10,
            vec![
                add(token("dddddddddddddddd", None, Some(0))),
                add(token("eeeeeeeeeeeeeeee", None, None)),
                add(token("eeeeeeeeeeeeeeee", None, Some(3))),
            ],
        ))
        .outcomes;
    assert!(matches!(&outcomes[0], Outcome::Rejected(error) if error.kind == ApplyErrorKind::Invalid), "{outcomes:?}");
    assert_eq!(outcomes[1], Outcome::Done);
    assert!(matches!(&outcomes[2], Outcome::Rejected(error) if error.kind == ApplyErrorKind::AlreadyExists));
    assert_eq!(tokens(&state).len(), 1);
}

#[test]
fn below_the_token_level_joins_are_added_uncounted_and_records_keep_their_old_encoding() {
    // Below level 4, `Command::admit` is the old AddMember and a record is stored as
    // sent; a record without the new fields encodes exactly as before, and one written
    // by an older release decodes with no limit and no uses.
    let (mut state, _, _) = setup();
    let record = token("ffffffffffffffff", None, None);
    let command = Command::admit(spec(7404), &record, state.feature_level);
    assert_eq!(command, Command::AddMember { spec: spec(7404) });
    assert_eq!(
        Command::admit(spec(7404), &record, FeatureLevel::JOIN_TOKEN_LIFECYCLE),
        Command::AdmitMember { spec: spec(7404), token_id: "jt-ffffffffffffffff".into() }
    );
    state.apply(&at(10, vec![Command::AddJoinToken { record: record.clone() }]));
    assert_eq!(tokens(&state)[0], record, "no creation time below the level");
    let text = serde_json::to_string(&record).expect("encodes");
    assert_eq!(text, r#"{"secret_hash":"ffffffffffffffff","expires_at":null,"description":"test"}"#);
    let old: JoinTokenRecord = serde_json::from_str(&text).expect("decodes");
    assert_eq!((old.max_uses, old.uses, old.created_at), (None, 0, None));
    assert_eq!(token("short", None, None).id(), "jt-short");
}

#[test]
fn the_ca_key_is_sealed_once_and_sealing_needs_its_level() {
    let (mut state, _, _) = setup();
    let seal = |sealed: &str| Command::SealCa { sealed_key: sealed.into() };
    assert_eq!(seal("s").feature_level(), FeatureLevel::SEALED_CA);
    let outcomes =
        state.apply(&at(2, vec![seal(""), seal("chacha20poly1305:00"), seal("chacha20poly1305:11")])).outcomes;
    assert!(matches!(&outcomes[0], Outcome::Rejected(error) if error.message.contains("between")), "{outcomes:?}");
    assert_eq!(outcomes[1], Outcome::Done);
    assert!(matches!(&outcomes[2], Outcome::Rejected(error) if error.message.contains("sealed already")));
    let ca = state.cluster.as_ref().map(|info| info.ca.clone()).expect("bootstrapped");
    assert!(ca.key_pem.is_empty() && ca.sealed_key.as_deref() == Some("chacha20poly1305:00"));
    // A bootstrap entry that carries a sealed CA needs the level too.
    let info = state.cluster.clone().expect("bootstrapped");
    assert_eq!(Command::Bootstrap { info, first: spec(7401) }.feature_level(), FeatureLevel::SEALED_CA);
}

#[test]
fn a_write_made_for_a_caller_records_it_and_the_clusters_own_work_records_nobody() {
    let (mut state, first, _) = setup();
    let admin = Actor::api_token(ApiTokenKind::Admin, "0123456789abcdef");
    assert_eq!(admin.to_string(), "admin-token:01234567");
    let made_by = |millis, command| at(millis, vec![command]).made_by(admin.clone());

    let config = Command::CreateDeploymentConfig {
        name: "two".into(),
        deployment_config_id: "c".into(),
        compute_platform: ComputePlatform::Server,
        minimum_healthy_hosts: MinimumHealthyHosts { kind: MinimumHealthyHostsType::HostCount, value: 2 },
        traffic_routing_config: None,
    };
    let entry = made_by(2, config);
    assert_eq!(entry.level, FeatureLevel::AUDIT, "naming the caller needs the audit level");
    let text = serde_json::to_string(&entry).expect("encodes");
    assert_eq!(serde_json::from_str::<Proposal>(&text).expect("decodes"), entry, "{text}");
    assert!(!serde_json::to_string(&at(2, vec![])).expect("encodes").contains("\"by\""), "no caller, no field");

    state.apply(&entry);
    state.apply(&made_by(3, deploy(&first, "d-AUDIT0001")));
    state.apply(&made_by(
        4,
        Command::StopDeployment { deployment_id: DeploymentId("d-AUDIT0001".into()), rollback_id: None },
    ));
    // The same revision registered again by someone else keeps its first registrar
    // (setup registered it with no caller); a new one records its caller.
    let other = Actor::api_token(ApiTokenKind::Admin, "fedcba9876543210");
    state.apply(&at(5, vec![Command::RegisterRevision { record: Box::new(first.clone()) }]).made_by(other.clone()));
    let third = revision(b"version: 0.0 # three");
    state.apply(&at(6, vec![Command::RegisterRevision { record: Box::new(third.clone()) }]).made_by(other.clone()));

    assert_eq!(state.deployment_configs["two"].created_by, Some(admin.clone()));
    let deployment = &state.deployments[&DeploymentId("d-AUDIT0001".into())];
    assert_eq!((deployment.created_by.as_ref(), deployment.stopped_by.as_ref()), (Some(&admin), Some(&admin)));
    assert_eq!(state.revisions[&first.revision_id].created_by, None);
    assert_eq!(state.revisions[&third.revision_id].created_by, Some(other));
    assert_eq!(state.applications["app"].created_by, None, "setup's entries name no caller");
    // A refused write records nothing.
    let again = Command::CreateApplication {
        name: "app".into(),
        application_id: "b".into(),
        compute_platform: ComputePlatform::Server,
    };
    let response = state.apply(&made_by(7, again));
    assert!(matches!(response.outcomes[0], Outcome::Rejected(_)));
    assert_eq!(state.applications["app"].created_by, None);
}

/// A `CreateDeploymentConfig` of `name` with HOST_COUNT 0 or, with `one_at_a_time`,
/// OneAtATime's rule (the API's default for a config with steps), and `routing`.
fn routed_config(name: &str, one_at_a_time: bool, routing: Option<TrafficRoutingConfig>) -> Command {
    let minimum_healthy_hosts = if one_at_a_time {
        MinimumHealthyHosts { kind: MinimumHealthyHostsType::MostConcurrency, value: 1 }
    } else {
        MinimumHealthyHosts { kind: MinimumHealthyHostsType::HostCount, value: 0 }
    };
    Command::CreateDeploymentConfig {
        name: name.into(),
        deployment_config_id: format!("id-{name}"),
        compute_platform: ComputePlatform::Server,
        minimum_healthy_hosts,
        traffic_routing_config: routing,
    }
}

#[test]
fn a_config_with_steps_needs_the_traffic_control_level() {
    // The same config with and without a routing config: asserts only the one with
    // steps needs feature level 9, and that its proposal survives encoding.
    assert_eq!(routed_config("plain", false, None).feature_level(), FeatureLevel::BASE);
    let routed = routed_config("canary", true, Some(canary(10, None, Some(30))));
    assert_eq!(routed.feature_level(), FeatureLevel::TRAFFIC_CONTROL);
    let entry = at(2, vec![routed]);
    assert_eq!(entry.level, FeatureLevel::TRAFFIC_CONTROL);
    let text = serde_json::to_string(&entry).expect("encodes");
    assert_eq!(serde_json::from_str::<Proposal>(&text).expect("decodes"), entry, "{text}");
    assert!(!serde_json::to_string(&routed_config("plain", false, None)).expect("encodes").contains("trafficRouting"));
}

#[test]
fn bad_routing_configs_are_refused_and_change_nothing() {
    // Bad routing configs, and OneAtATime's rule without one: asserts each is
    // rejected as invalid with a message naming the member, and no config is created.
    let (mut state, _, _) = setup();
    let cases = [
        (routed_config("both", true, Some(canary(10, Some(1), Some(30)))), "both given"),
        (routed_config("neither", true, Some(canary(10, None, None))), "is required"),
        (routed_config("zero", true, Some(canary(0, Some(1), None))), "canaryPercentage must be 1 to 99"),
        (routed_config("hundred", true, Some(canary(100, Some(1), None))), "got 100"),
        (routed_config("long", true, Some(canary(10, Some(2881), None))), "at most 2880"),
        (routed_config("mc", true, None), "HOST_COUNT or FLEET_PERCENT"),
    ];
    let before = state.deployment_configs.len();
    for (command, expected) in cases {
        let response = state.apply(&at(2, vec![command]));
        let Outcome::Rejected(error) = &response.outcomes[0] else { panic!("{response:?}") };
        assert_eq!(error.kind, ApplyErrorKind::Invalid, "{error:?}");
        assert!(error.message.contains(expected), "{} lacks {expected:?}", error.message);
    }
    assert_eq!(state.deployment_configs.len(), before);
}

#[test]
fn a_deployment_keeps_the_steps_it_was_created_with() {
    // A canary config (30 s) made the group's default through a deployment's
    // override, then deleted while the deployment runs: asserts the deployment copied
    // the normalised steps at creation and still has them after the delete.
    let (mut state, first, _) = setup();
    let routing = canary(34, Some(2), None);
    let response = state.apply(&at(2, vec![routed_config("canary", true, Some(routing))]));
    assert_eq!(response.outcomes, vec![Outcome::Done]);
    assert_eq!(state.deployment_configs["canary"].traffic_routing_config, Some(routing));
    let Command::CreateDeployment { mut spec, deployment_id } = deploy(&first, "d-CANARY001") else { unreachable!() };
    spec.deployment_config_name = Some("canary".into());
    let response = state.apply(&at(3, vec![Command::CreateDeployment { spec, deployment_id: deployment_id.clone() }]));
    assert_eq!(response.outcomes, vec![Outcome::Done]);
    let expected = Some(TrafficRouting::TimeBasedCanary { percentage: 34, interval_seconds: 120 });
    assert_eq!(state.deployments[&deployment_id].traffic_routing, expected);
    let response = state.apply(&at(4, vec![Command::DeleteDeploymentConfig { name: "canary".into() }]));
    assert_eq!(response.outcomes, vec![Outcome::Done]);
    assert_eq!(state.deployments[&deployment_id].traffic_routing, expected);
}
