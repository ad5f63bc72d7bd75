//! Disaster recovery: `cluster snapshot save` and `node --force-new-cluster`
//! (`--from-snapshot`), with real processes.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use fleetmesh_tests::{wait_until, Options, TestCluster};

/// The application names node `via` lists, once it answers.
fn applications(cluster: &TestCluster, via: u32) -> Option<BTreeSet<String>> {
    let listed = cluster.cli_json(via, &["deploy", "list-applications", "--json"])?;
    Some(listed["applications"].as_array()?.iter().filter_map(|name| name.as_str().map(String::from)).collect())
}

fn create_application(cluster: &TestCluster, via: u32, name: &str) {
    let output = cluster.cli(via, &["deploy", "create-application", "--application-name", name]);
    assert!(output.status.success(), "create-application {name}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A cluster that lost every voter comes back from one of them: the state is saved
/// while it runs, all three voters are killed, voter 2 restarts with
/// `--force-new-cluster` and leads alone with every acknowledged write, takes new ones,
/// and a second start with the flag still given changes nothing. Then the saved state
/// is restored on it with `--from-snapshot`: what was written after the save is gone.
#[test]
fn a_cluster_that_lost_its_quorum_comes_back_from_one_voter_or_from_a_saved_state() {
    let mut cluster = TestCluster::start(3, Options::default());
    wait_until("three voters", Duration::from_secs(60), || {
        let status = cluster.status(1)?;
        let voters = status["nodes"].as_array()?.iter().filter(|node| node["role"] == "voter").count();
        (voters == 3).then_some(())
    });
    create_application(&cluster, 1, "before");
    let file = cluster.dir.path().join("state.json");
    let saved = cluster.cli(1, &["cluster", "snapshot", "save", &file.to_string_lossy()]);
    let said = String::from_utf8_lossy(&saved.stdout);
    assert!(
        saved.status.success() && said.contains("saved the cluster state"),
        "{said}{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    let mode = std::fs::metadata(&file).map(|meta| meta.permissions().mode() & 0o777).ok();
    assert_eq!(mode, Some(0o600));
    create_application(&cluster, 1, "after");
    // The procedure recovers from the survivor with the most recent log; this test
    // picks voter 2, so it waits until every voter's log holds the leader's entries.
    wait_until("every voter holds the acknowledged writes", Duration::from_secs(30), || {
        let logs: Option<Vec<u64>> =
            (1..=3).map(|index| cluster.metric(index, "fleetmesh_raft_last_log_index")).collect();
        let logs = logs?;
        logs.iter().all(|last| *last == logs[0]).then_some(())
    });

    for index in 1..=3 {
        cluster.kill9(index);
    }
    cluster.restart_with(2, &["--force-new-cluster"]);
    let names = wait_until("voter 2 leads alone with every write", Duration::from_secs(60), || {
        (cluster.leader_index(2)? == 2).then(|| applications(&cluster, 2)).flatten()
    });
    assert!(names.contains("before") && names.contains("after"), "{names:?}");
    create_application(&cluster, 2, "recovered");
    assert!(cluster.nodes[&2].data_dir.join("force-new-cluster.done").exists());
    assert!(cluster.log(2).contains("forced a new cluster"), "{}", cluster.log(2));

    // The flag left on a later start: it runs only once.
    cluster.restart_with(2, &["--force-new-cluster"]);
    let names = wait_until("voter 2 back", Duration::from_secs(60), || applications(&cluster, 2));
    assert!(names.contains("recovered"), "{names:?}");
    assert!(cluster.log(2).contains("already recovered"));

    std::fs::remove_file(cluster.nodes[&2].data_dir.join("force-new-cluster.done")).expect("remove marker");
    cluster.restart_with(2, &["--force-new-cluster", "--from-snapshot", &file.to_string_lossy()]);
    let names = wait_until("the saved state restored", Duration::from_secs(60), || {
        (cluster.leader_index(2)? == 2).then(|| applications(&cluster, 2)).flatten()
    });
    assert_eq!(names, BTreeSet::from(["before".to_string()]), "only what was saved");
    create_application(&cluster, 2, "again");
}

/// Bad recovery requests change nothing: an empty data directory, a file that is not a
/// saved state, and an agent's saved-state request.
#[test]
fn recovery_refuses_what_it_cannot_use() {
    let mut cluster = TestCluster::start(1, Options::default());
    let empty = cluster.dir.path().join("empty");
    let output = std::process::Command::new(fleetmesh_tests::binary())
        .args(["node", "--force-new-cluster", "--data-dir"])
        .arg(&empty)
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && said.contains("node.json is missing"), "{said}");
    assert!(!empty.exists(), "nothing was created");

    let bogus = cluster.dir.path().join("bogus.json");
    std::fs::write(&bogus, "{\"not\": \"a state\"}").expect("write");
    cluster.kill9(1);
    cluster.restart_with(1, &["--force-new-cluster", "--from-snapshot", &bogus.to_string_lossy()]);
    wait_until("the node refuses the file and exits", Duration::from_secs(30), || {
        cluster.log(1).contains("is not a state saved by `cluster snapshot save`").then_some(())
    });
    assert!(!cluster.nodes[&1].data_dir.join("force-new-cluster.done").exists());
    cluster.restart(1);
    let names = wait_until("node 1 back, unchanged", Duration::from_secs(60), || applications(&cluster, 1));
    assert!(names.is_empty(), "{names:?}");
}
