//! Revisions over real QUIC between real processes: a large revision reaches every
//! node byte for byte, a receiver killed mid-transfer resumes without fetching again
//! what it had, a peer serving corrupt chunks corrupts nobody, a small change moves
//! few bytes, and hostile archives are refused before anything is stored.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fleetmesh_model::{DeploymentStatus, GetRevisionDistributionOutput, ListApplicationRevisionsOutput};
use fleetmesh_tests::{hash_file, write_random_file, Options, TestCluster};

const MIB: u64 = 1 << 20;

/// An appspec without files or hooks: a deployment only materializes the bundle into
/// the host's deployment archive, where the test reads it back.
const APPSPEC: &str = "version: 0.0\nos: linux\n";

/// Writes a bundle of an appspec and `blob.bin` (`bytes` seeded random bytes) under
/// `dir`; returns the blob's path.
fn random_bundle(dir: &Path, bytes: u64, seed: u64) -> PathBuf {
    std::fs::create_dir_all(dir).expect("bundle dir");
    std::fs::write(dir.join("appspec.yml"), APPSPEC).expect("appspec");
    let blob = dir.join("blob.bin");
    write_random_file(&blob, bytes, seed);
    blob
}

/// Creates application `app` and group `group` over hosts tagged `tag`.
fn setup(cluster: &TestCluster, group: &str, tag: &str) {
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    cluster.create_group(group, &["--tag", tag, "--deployment-config-name", "CodeDeployDefault.AllAtOnce"]);
}

/// The revision's distinct bytes, from `get-revision-distribution`.
fn revision_size(cluster: &TestCluster, revision: &str) -> u64 {
    let answer: GetRevisionDistributionOutput =
        cluster.ok_as(1, &["deploy", "get-revision-distribution", "--revision", revision, "--json"]);
    answer.size
}

/// Every `blob.bin` under a node's deployment archives.
fn deployed_blobs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    // Bounded by the directory tree, which the test itself created.
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                stack.push(path);
            } else if path.file_name().is_some_and(|name| name == "blob.bin") {
                found.push(path);
            }
        }
    }
    found
}

fn fetched(cluster: &TestCluster, index: u32) -> u64 {
    cluster.metric(index, "fleetmesh_swarm_bytes_fetched_total").expect("bytes fetched metric")
}

/// Five nodes. A 200 MiB revision pushed on node 1 is prefetched by all; node 5 is
/// killed with SIGKILL once it holds a fifth of it, then restarted. Asserts that node 5
/// then fetches no more than what it lacked (plus the endgame's duplicate pieces), that
/// every node completes, and that a deployment materializes a file byte-identical to
/// the pushed one on every host.
#[test]
fn a_200_mib_revision_reaches_every_node_and_a_killed_receiver_resumes() {
    let started = Instant::now();
    let mut cluster = TestCluster::start(5, Options::default());
    setup(&cluster, "web", "role=web");
    let work = tempfile::tempdir().expect("tempdir");
    let blob = random_bundle(&work.path().join("v1"), 200 * MIB, 200);
    let source_hash = hash_file(&blob);
    let revision = cluster.push(1, "app", &work.path().join("v1"));
    let size = revision_size(&cluster, &revision);
    assert!(size > 200 * MIB, "the revision holds the blob and the appspec: {size}");

    cluster.prefetch_all(1, &revision);
    cluster.wait_store_bytes(5, size / 5, Duration::from_secs(60));
    cluster.kill9(5);
    let (_, held) = cluster.verify_chunk_store(5);
    assert!(held < size, "node 5 must be killed mid-transfer, yet it held all {size} bytes");

    cluster.restart(5);
    cluster.wait_distributed(&revision, &[1, 2, 3, 4, 5], Duration::from_secs(90));
    let refetched = fetched(&cluster, 5);
    // Endgame duplicates: at most one second copy per request in flight (8 x ~1 MiB pieces).
    let slack = 8 * MIB + MIB / 2;
    assert!(
        refetched <= size - held + slack,
        "after its restart node 5 fetched {refetched} bytes, but it lacked only {} of {size}",
        size - held
    );
    assert!(refetched >= size - held, "node 5 fetched {refetched} bytes, less than the {} it lacked", size - held);
    eprintln!("node 5 held {held} of {size} bytes when killed; after its restart it fetched {refetched}");
    for index in 2..=5 {
        let (_, bytes) = cluster.verify_chunk_store(index);
        assert!(bytes >= size, "node {index} holds {bytes} of {size} bytes");
    }

    let deployment = cluster.deploy_and_wait(3, "app", "web", &revision, &[]);
    assert_eq!(deployment.deployment_info.status, DeploymentStatus::Succeeded, "{deployment:?}");
    for index in 1..=5 {
        let blobs = deployed_blobs(&cluster.nodes[&index].data_dir.join("deployment-root"));
        assert_eq!(blobs.len(), 1, "node {index}: one deployment archive holds the blob: {blobs:?}");
        assert_eq!(hash_file(&blobs[0]), source_hash, "node {index}: the deployed blob differs from the pushed one");
    }
    eprintln!("200 MiB to 5 nodes with a kill and restart: {:.1} s", started.elapsed().as_secs_f64());
}

/// Four nodes: 1 pushes, 2 (the `corrupting_node` binary, which flips a bit in every
/// chunk it serves) fetches the revision first, then 3 and 4 fetch it from
/// both. Asserts that node 2 did serve bytes (so the receivers met the bad peer), that 3
/// and 4 complete anyway, that every chunk file in their stores hashes to its name, and
/// that at least one of them logged the bad peer.
#[test]
fn a_peer_serving_corrupt_chunks_corrupts_no_store_and_the_download_completes() {
    let mut options = Options::default();
    options.programs.insert(2, PathBuf::from(env!("CARGO_BIN_EXE_corrupting_node")));
    options.tags.insert(1, vec!["role=origin".into()]);
    options.tags.insert(2, vec!["role=relay".into()]);
    let cluster = TestCluster::start(4, options);
    setup(&cluster, "web", "role=web");
    cluster.create_group("relay", &["--tag", "role=relay"]);
    let work = tempfile::tempdir().expect("tempdir");
    random_bundle(work.path(), 40 * MIB, 40);
    let revision = cluster.push(1, "app", work.path());
    let size = revision_size(&cluster, &revision);
    cluster.ok(1, &["deploy", "prefetch", "--revision", &revision, "--deployment-group-name", "relay", "--wait"]);
    assert!(cluster.verify_chunk_store(2).1 >= size, "the corrupting node holds the whole revision, intact");

    cluster.ok(1, &["deploy", "prefetch", "--revision", &revision, "--deployment-group-name", "web"]);
    cluster.wait_distributed(&revision, &[3, 4], Duration::from_secs(60));
    let served = cluster.metric(2, "fleetmesh_swarm_bytes_served_total").expect("served metric");
    assert!(served > 0, "node 2 was never asked for a piece, so the test proved nothing");
    for index in [3, 4] {
        let (files, bytes) = cluster.verify_chunk_store(index);
        assert!(files > 0 && bytes >= size, "node {index} holds {bytes} of {size} bytes");
    }
    let logged = [3, 4].iter().any(|index| {
        std::fs::read_to_string(cluster.dir.path().join(format!("n{index}.log")))
            .is_ok_and(|log| log.contains("does not match its hash"))
    });
    assert!(logged, "no receiver reported the corrupt peer");
}

/// Three nodes. v1 (a 50 MiB file) is pushed and prefetched everywhere; v2 is v1 with a
/// contiguous 1 % (512 KiB) of the file rewritten. Asserts that each receiver fetches at
/// most 3 % of 50 MiB for v2, and that the push itself uploads little more than the change.
#[test]
fn a_one_percent_change_moves_at_most_three_percent() {
    let cluster = TestCluster::start(3, Options::default());
    setup(&cluster, "web", "role=web");
    let work = tempfile::tempdir().expect("tempdir");
    let v1 = work.path().join("v1");
    let blob = random_bundle(&v1, 50 * MIB, 50);
    let first = cluster.push(1, "app", &v1);
    cluster.prefetch_all(1, &first);
    cluster.wait_distributed(&first, &[1, 2, 3], Duration::from_secs(60));
    let before: Vec<u64> = [2, 3].iter().map(|index| fetched(&cluster, *index)).collect();
    assert!(before.iter().all(|bytes| *bytes >= 50 * MIB), "v1 moved in full first: {before:?}");

    let v2 = work.path().join("v2");
    std::fs::create_dir_all(&v2).expect("v2 dir");
    std::fs::write(v2.join("appspec.yml"), APPSPEC).expect("appspec");
    let mut bytes = std::fs::read(&blob).expect("v1 blob");
    let change = (bytes.len() / 100) as u64;
    let patch = work.path().join("patch");
    write_random_file(&patch, change, 51);
    let start = 20 * MIB as usize;
    bytes[start..start + change as usize].copy_from_slice(&std::fs::read(&patch).expect("patch"));
    std::fs::write(v2.join("blob.bin"), &bytes).expect("v2 blob");
    drop(bytes);

    let output = cluster.cli(1, &["deploy", "push", "--application-name", "app", "--source", &v2.to_string_lossy()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let second = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert_ne!(first, second);
    cluster.prefetch_all(1, &second);
    cluster.wait_distributed(&second, &[1, 2, 3], Duration::from_secs(60));
    let bound = 50 * MIB * 3 / 100;
    for (position, index) in [2u32, 3].iter().enumerate() {
        let delta = fetched(&cluster, *index) - before[position];
        assert!(delta > 0, "node {index} fetched nothing for v2, yet v2 has new chunks");
        assert!(delta <= bound, "node {index} fetched {delta} bytes for v2; the bound is {bound}");
        eprintln!("node {index}: v2 cost {delta} bytes ({:.2} % of 50 MiB)", delta as f64 * 100.0 / (50 * MIB) as f64);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("uploaded"), "{stderr}");
}

/// Appends a tar entry with a raw name (and link target), bypassing the tar crate's
/// own refusal of `..`, as a hostile archive would be written.
fn raw_entry(builder: &mut tar::Builder<std::fs::File>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    builder.append(&header, data).expect("append tar entry");
}

/// One node. Pushes three hostile tar bundles (a `..` path, an absolute path, and a
/// symlink whose target leaves the bundle), each with a valid appspec. Asserts each
/// push fails with an error naming the offending entry, and that no revision was
/// registered.
#[test]
fn path_traversal_and_symlink_escape_archives_are_refused() {
    let cluster = TestCluster::start(1, Options::default());
    cluster.ok(1, &["deploy", "create-application", "--application-name", "app"]);
    let work = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("dotdot.tar", "../evil.txt", tar::EntryType::Regular, "", "has a '..' component"),
        ("absolute.tar", "/etc/evil.txt", tar::EntryType::Regular, "", "has an absolute path"),
        ("symlink.tar", "site/link", tar::EntryType::Symlink, "../../etc/passwd", "resolves outside the bundle"),
    ];
    for (file, name, kind, link, needle) in cases {
        let path = work.path().join(file);
        let mut builder = tar::Builder::new(std::fs::File::create(&path).expect("tar file"));
        raw_entry(&mut builder, "appspec.yml", tar::EntryType::Regular, "", APPSPEC.as_bytes());
        raw_entry(&mut builder, "site/", tar::EntryType::Directory, "", b"");
        raw_entry(&mut builder, name, kind, link, if link.is_empty() { b"payload" } else { b"" });
        builder.finish().expect("finish tar");
        drop(builder);
        let output =
            cluster.cli(1, &["deploy", "push", "--application-name", "app", "--source", &path.to_string_lossy()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{file}: the push must fail");
        assert!(stderr.contains(name) && stderr.contains(needle), "{file}: unclear error: {stderr}");
    }
    let listed: ListApplicationRevisionsOutput =
        cluster.ok_as(1, &["deploy", "list-application-revisions", "--application-name", "app", "--json"]);
    assert!(listed.revisions.is_empty(), "a refused bundle registered a revision: {listed:?}");
    let held = cluster.metric(1, "fleetmesh_chunk_store_bytes").expect("store metric");
    assert_eq!(held, 0, "a refused bundle left chunks in the store");
}
