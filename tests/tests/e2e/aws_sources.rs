//! Revisions the cluster fetches itself: the AWS CLI registers a bundle that lives in S3
//! (moto's server), the leader reads it once and seeds it, and a deployment of it
//! installs on every host with CodeDeploy's `BUNDLE_*` variables in the hooks. The same
//! content as a `.tgz` is the same revision; a missing object, a wrong ETag and an
//! object that is not a bundle are refused by AWS's names.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fleetmesh_tests::moto::Moto;
use fleetmesh_tests::{wait_until, write_bundle, Options, TestCluster};

use super::aws_protocol::{access_key, aws, aws_json, create_web_group};

/// Uploads the files of `BUNDLE` (a tar and a tgz of the same tree) and a text file to
/// bucket `releases`; prints the tar's ETag.
const UPLOAD: &str = r#"
import boto3, os, sys
s3 = boto3.client("s3")
s3.create_bucket(Bucket="releases")
for key, path in [("shop/v1.tar", sys.argv[1]), ("shop/v1.tgz", sys.argv[2])]:
    with open(path, "rb") as f:
        s3.put_object(Bucket="releases", Key=key, Body=f.read())
s3.put_object(Bucket="releases", Key="shop/notes.zip", Body=b"not a zip at all")
print(s3.head_object(Bucket="releases", Key="shop/v1.tar")["ETag"].strip('"'))
"#;

/// A two-node cluster (node 1 the voter) whose nodes reach moto for S3 when given.
fn cluster(moto: Option<&Moto>) -> TestCluster {
    let env: Vec<(String, String)> =
        moto.iter().flat_map(|moto| moto.env()).map(|(key, value)| (key.to_string(), value)).collect();
    let options = Options {
        node_flags: vec!["--voters".into(), "1".into()],
        env: [(1, env.clone()), (2, env)].into_iter().collect(),
        ..Options::default()
    };
    TestCluster::start(2, options)
}

/// `tar` over `dir` into `archive`, gzip-compressed when `gzip`.
fn archive(dir: &std::path::Path, archive: &std::path::Path, gzip: bool) {
    let flags = if gzip { "-czf" } else { "-cf" };
    let status = Command::new("tar").arg(flags).arg(archive).arg("-C").arg(dir).arg(".").status().expect("run tar");
    assert!(status.success(), "tar {flags} failed");
}

#[test]
fn an_s3_revision_is_fetched_once_and_deployed_with_its_bundle_variables() {
    let moto = Moto::start().unwrap_or_else(|error| panic!("{error}"));
    let cluster = cluster(Some(&moto));
    let work = cluster.dir.path();
    let tree = work.join("tree");
    write_bundle(
        &tree,
        &[
            (
                "appspec.yml",
                "version: 0.0\nos: linux\nfiles:\n  - source: index.html\n    destination: /srv/shop\nhooks:\n  \
                 AfterInstall:\n    - location: bundle.sh\n",
                0o644,
            ),
            ("index.html", "<h1>shop from s3</h1>\n", 0o644),
            ("bundle.sh", "#!/bin/sh\necho \"bundle $BUNDLE_BUCKET $BUNDLE_KEY $BUNDLE_ETAG\"\n", 0o755),
        ],
    );
    let (tar, tgz) = (work.join("v1.tar"), work.join("v1.tgz"));
    archive(&tree, &tar, false);
    archive(&tree, &tgz, true);
    let script = format!("import sys; sys.argv = ['upload', {:?}, {:?}]\n{UPLOAD}", tar.display(), tgz.display());
    let e_tag = moto.python(&script).trim().to_string();

    let key = access_key(&cluster);
    aws_json(&cluster, &key, &["create-application", "--application-name", "shop"]);
    create_web_group(&cluster, &key);
    let register = |location: &str, description: &str| {
        let args = ["--application-name", "shop", "--s3-location", location, "--description", description];
        aws(&cluster, &key, &[&["register-application-revision"][..], &args].concat())
    };
    let location = "bucket=releases,key=shop/v1.tar,bundleType=tar";
    let registered = register(location, "v1");
    assert!(registered.status.success(), "{}{}", String::from_utf8_lossy(&registered.stderr), cluster.logs());
    let got = aws_json(
        &cluster,
        &key,
        &["get-application-revision", "--application-name", "shop", "--s3-location", location],
    );
    assert_eq!(got["revision"]["revisionType"], "S3", "{got}");
    assert_eq!(got["revision"]["s3Location"]["key"], "shop/v1.tar", "{got}");
    assert_eq!(got["revision"]["s3Location"]["eTag"], e_tag.as_str(), "{got}");
    assert_eq!(got["revisionInfo"]["description"], "v1", "{got}");

    let deployment = aws_json(
        &cluster,
        &key,
        &[
            "create-deployment",
            "--application-name",
            "shop",
            "--deployment-group-name",
            "web",
            "--s3-location",
            location,
        ],
    );
    let id = deployment["deploymentId"].as_str().expect("deploymentId").to_string();
    let waited = aws(&cluster, &key, &["wait", "deployment-successful", "--deployment-id", &id]);
    assert!(waited.status.success(), "wait: {}{}", String::from_utf8_lossy(&waited.stderr), cluster.logs());
    let info = &aws_json(&cluster, &key, &["get-deployment", "--deployment-id", &id])["deploymentInfo"];
    assert_eq!(info["deploymentOverview"]["Succeeded"], 2, "{info}");
    assert_eq!(info["revision"]["s3Location"]["key"], "shop/v1.tar", "the deployment shows its object: {info}");
    assert!(info["revision"].get("revisionId").is_none(), "no fleetmesh member on the wire: {info}");
    for index in [1, 2] {
        let node = &cluster.nodes[&index];
        let installed = std::fs::read_to_string(node.install_root.join("srv/shop/index.html")).unwrap_or_default();
        assert_eq!(installed, "<h1>shop from s3</h1>\n", "node {index}");
        let log = node.data_dir.join("deployment-root/deployment-logs/codedeploy-agent-deployments.log");
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let line = format!("] [{id}] [stdout] bundle releases shop/v1.tar {e_tag}");
        assert!(log.contains(&line), "node {index} lacks {line:?}: {log}");
    }

    // The same tree as a tgz is the same revision: one revision, now shown at its newest source.
    let tgz = register("bucket=releases,key=shop/v1.tgz,bundleType=tgz", "v1 again");
    assert!(tgz.status.success(), "{}", String::from_utf8_lossy(&tgz.stderr));
    let listed = aws_json(&cluster, &key, &["list-application-revisions", "--application-name", "shop"]);
    let revisions = listed["revisions"].as_array().cloned().unwrap_or_default();
    assert_eq!(revisions.len(), 1, "{listed}");
    assert_eq!(revisions[0]["s3Location"]["key"], "shop/v1.tgz", "{listed}");

    let refused = |location: &str, name: &str| {
        let output = register(location, "refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(&format!("({name})")), "{location}: {stderr}");
        stderr.into_owned()
    };
    let missing = refused("bucket=releases,key=shop/v9.tar,bundleType=tar", "RevisionDoesNotExistException");
    assert!(missing.contains("s3://releases/shop/v9.tar"), "names the object: {missing}");
    refused("bucket=releases,key=shop/v1.tar,bundleType=tar,eTag=0123abcd", "InvalidRevisionException");
    let bad = refused("bucket=releases,key=shop/notes.zip,bundleType=zip", "InvalidRevisionException");
    assert!(bad.contains("s3://releases/shop/notes.zip"), "names the object: {bad}");
    let listed = aws_json(&cluster, &key, &["list-application-revisions", "--application-name", "shop"]);
    assert_eq!(listed["revisions"].as_array().map(Vec::len), Some(1), "refusals register nothing: {listed}");
}

/// `git ARGS` in `dir`, as a user named `ci`; its stdout.
pub(super) fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=ci", "-c", "user.email=ci@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("git is not available: {error}"));
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `git daemon` serving `base` on a free loopback port; killed when dropped, with its
/// process group: `git` runs `git-daemon` as a child, which forks one more per
/// connection, so killing `git` alone left the daemon running.
struct GitDaemon(Child, u16);

impl GitDaemon {
    fn start(base: &Path) -> Self {
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port();
        let child = Command::new("git")
            .args(["daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1", &format!("--port={port}")])
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("git daemon is not available: {error}"));
        wait_until("git daemon to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
        Self(child, port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        // Best effort: it may have exited already.
        if let Ok(group) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bare repository `WORK/repos/shop.git` with two commits on `main`: the first has an
/// appspec, `site/index.html` ("<h1>shop from git</h1>") and a hook printing
/// `BUNDLE_COMMIT`; the second changes the page. Returns the first commit's id.
pub(super) fn shop_repository(work: &Path) -> String {
    let (repos, checkout) = (work.join("repos"), work.join("checkout"));
    std::fs::create_dir_all(&repos).expect("mkdir repos");
    git(&repos, &["init", "--bare", "-q", "shop.git"]);
    write_bundle(
        &checkout,
        &[
            (
                "appspec.yml",
                "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/shop\nhooks:\n  \
                 AfterInstall:\n    - location: scripts/commit.sh\n",
                0o644,
            ),
            ("site/index.html", "<h1>shop from git</h1>\n", 0o644),
            ("scripts/commit.sh", "#!/bin/sh\necho \"commit $BUNDLE_COMMIT\"\n", 0o755),
        ],
    );
    git(&checkout, &["init", "-q"]);
    git(&checkout, &["add", "-A"]);
    git(&checkout, &["commit", "-q", "-m", "v1"]);
    let first = git(&checkout, &["rev-parse", "HEAD"]);
    std::fs::write(checkout.join("site/index.html"), "<h1>shop v2</h1>\n").expect("edit");
    git(&checkout, &["commit", "-q", "-am", "v2"]);
    git(&checkout, &["push", "-q", repos.join("shop.git").to_str().expect("utf-8 path"), "HEAD:refs/heads/main"]);
    first
}

/// A commit of a repository served by `git daemon` deploys through the AWS CLI's
/// `--github-location` with the commit in `BUNDLE_COMMIT`; registering it again reads
/// nothing new; a commit the repository lacks and a short id are refused, naming them.
#[test]
fn a_git_commit_served_by_git_daemon_is_fetched_once_and_deployed() {
    let cluster = cluster(None);
    let work = cluster.dir.path();
    let (repos, first) = (work.join("repos"), shop_repository(work));
    let daemon = GitDaemon::start(&repos);
    let repository = format!("git://127.0.0.1:{}/shop.git", daemon.1);
    let location = |commit: &str| serde_json::json!({"repository": repository, "commitId": commit}).to_string();

    let key = access_key(&cluster);
    aws_json(&cluster, &key, &["create-application", "--application-name", "shop"]);
    create_web_group(&cluster, &key);
    let args = ["--application-name", "shop", "--deployment-group-name", "web", "--github-location", &location(&first)];
    let deployment = aws_json(&cluster, &key, &[&["create-deployment"][..], &args].concat());
    let id = deployment["deploymentId"].as_str().expect("deploymentId").to_string();
    let waited = aws(&cluster, &key, &["wait", "deployment-successful", "--deployment-id", &id]);
    assert!(waited.status.success(), "wait: {}{}", String::from_utf8_lossy(&waited.stderr), cluster.logs());
    let info = &aws_json(&cluster, &key, &["get-deployment", "--deployment-id", &id])["deploymentInfo"];
    assert_eq!(info["revision"]["gitHubLocation"]["commitId"], first.as_str(), "{info}");
    for index in [1, 2] {
        let node = &cluster.nodes[&index];
        let installed = std::fs::read_to_string(node.install_root.join("srv/shop/index.html")).unwrap_or_default();
        assert_eq!(installed, "<h1>shop from git</h1>\n", "node {index} has the first commit's tree");
        let log = node.data_dir.join("deployment-root/deployment-logs/codedeploy-agent-deployments.log");
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(log.contains(&format!("] [{id}] [stdout] commit {first}")), "node {index}: {log}");
    }
    let got = aws_json(
        &cluster,
        &key,
        &["get-application-revision", "--application-name", "shop", "--github-location", &location(&first)],
    );
    assert_eq!(got["revision"]["revisionType"], "GitHub", "{got}");
    assert_eq!(got["revision"]["gitHubLocation"]["commitId"], first.as_str(), "{got}");

    let register = |commit: &str| {
        let args = ["--application-name", "shop", "--github-location", &location(commit)];
        aws(&cluster, &key, &[&["register-application-revision"][..], &args].concat())
    };
    let again = register(&first);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    for (commit, named) in [("0".repeat(40), "0000000000"), ("abc123".to_string(), "abc123")] {
        let output = register(&commit);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains("(InvalidRevisionException)"), "{commit}: {stderr}");
        assert!(stderr.contains(named), "names the commit: {stderr}");
    }
    let listed = aws_json(&cluster, &key, &["list-application-revisions", "--application-name", "shop"]);
    assert_eq!(listed["revisions"].as_array().map(Vec::len), Some(1), "one commit, one revision: {listed}");
}
