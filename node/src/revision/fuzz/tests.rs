//! Replays the committed fuzz corpora on the stable toolchain, and regenerates the seeds.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use fleetmesh_state::model::ids::{ChunkHash, RevisionId};
use fleetmesh_state::Release;
use fleetmesh_transport::frame::{encode, FrameKind};
use fleetmesh_transport::{Message, NodeId};

use super::super::testkit::{append_raw_tar, write_dir, write_tar, write_zip, Node, Tree};
use super::{archive, TARGETS};
use crate::runtime::protocol::{encode_request, encode_response, PollRequest, Request, Response};

/// `fuzz/corpus` at the workspace root.
fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// Runs one corpus input through its target.
fn run(target: &str, scratch: &Path, data: &[u8]) {
    match target {
        "appspec" => super::appspec(data),
        "platform_appspec" => super::platform_appspec(data),
        "frame" => super::frame(data),
        "manifest" => super::manifest(data),
        "archive" => archive(scratch, data).expect("write the bundle file"),
        "aws_request" => super::aws_request(data),
        "sigv4" => super::sigv4(data),
        other => panic!("no fuzz target {other}"),
    }
}

#[test]
fn committed_corpora_run_clean() {
    // Feeds every committed corpus file (seeds, minimized fuzzer finds, crash
    // regressions) to its target; asserts none panics, and names every one that does.
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for target in TARGETS {
        let dir = corpus_root().join(target);
        let mut files: Vec<PathBuf> =
            fs::read_dir(&dir).expect("corpus dir").map(|entry| entry.expect("corpus entry").path()).collect();
        files.sort();
        assert!(!files.is_empty(), "{} holds no inputs", dir.display());
        for file in files {
            let data = fs::read(&file).expect("read corpus file");
            if std::panic::catch_unwind(|| run(target, scratch.path(), &data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "inputs that panic: {failures:#?}");
}

/// A small tree with every kind of entry, for archive and manifest seeds.
fn small_tree() -> Tree {
    vec![
        ("appspec.yml".into(), 0o644, Node::File(b"version: 0.0\nos: linux\n".to_vec())),
        ("scripts".into(), 0o755, Node::Dir),
        ("scripts/start.sh".into(), 0o755, Node::File(b"#!/bin/sh\necho started\n".to_vec())),
        ("scripts/www".into(), 0o777, Node::Symlink("../www".into())),
        ("www".into(), 0o755, Node::Dir),
        ("www/current".into(), 0o777, Node::Symlink("index.html".into())),
        ("www/empty".into(), 0o644, Node::File(Vec::new())),
        ("www/index.html".into(), 0o644, Node::File(b"<h1>hello</h1>".to_vec())),
    ]
}

/// A tar whose entries are written raw: hostile names, types and links.
fn hostile_tar(path: &Path, entries: &[(&str, tar::EntryType, &str)]) {
    let mut builder = tar::Builder::new(File::create(path).expect("create tar"));
    append_raw_tar(&mut builder, "appspec.yml", tar::EntryType::Regular, 0o644, "", b"version: 0.0\n");
    for (name, entry_type, link) in entries {
        append_raw_tar(&mut builder, name, *entry_type, 0o644, link, b"x");
    }
    builder.finish().expect("finish tar");
}

/// A zip with an appspec and one entry under a raw (possibly hostile) name.
fn hostile_zip(path: &Path, name: &str, symlink_to: Option<&str>) {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(File::create(path).expect("create zip"));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("appspec.yml", options).expect("zip file");
    zip.write_all(b"version: 0.0\nos: linux\n").expect("zip write");
    match symlink_to {
        Some(target) => zip.add_symlink(name, target, options).expect("zip symlink"),
        None => {
            zip.start_file(name, options).expect("zip file");
            zip.write_all(b"x").expect("zip write");
        }
    }
    zip.finish().expect("finish zip");
}

fn archive_seeds(out: &Path) {
    let tree = small_tree();
    write_tar(&tree, &out.join("seed-small.tar"), false, "");
    write_tar(&tree, &out.join("seed-small-top-dir.tgz"), true, "app/");
    write_zip(&tree, &out.join("seed-small.zip"), "");
    write_zip(&tree, &out.join("seed-small-top-dir.zip"), "app/");
    use tar::EntryType::{Char, Link, Regular, Symlink};
    hostile_tar(&out.join("seed-dotdot.tar"), &[("../evil", Regular, "")]);
    hostile_tar(&out.join("seed-absolute.tar"), &[("/etc/evil", Regular, "")]);
    hostile_tar(&out.join("seed-symlink-escape.tar"), &[("up", Symlink, "../../etc/passwd")]);
    hostile_tar(&out.join("seed-symlink-absolute.tar"), &[("abs", Symlink, "/etc/passwd")]);
    hostile_tar(&out.join("seed-write-through-symlink.tar"), &[("dir", Symlink, "."), ("dir/x", Regular, "")]);
    hostile_tar(&out.join("seed-hard-link.tar"), &[("hard", Link, "/etc/shadow")]);
    hostile_tar(&out.join("seed-device.tar"), &[("tty", Char, "")]);
    hostile_zip(&out.join("seed-dotdot.zip"), "../evil", None);
    hostile_zip(&out.join("seed-absolute.zip"), "/etc/evil", None);
    hostile_zip(&out.join("seed-symlink-escape.zip"), "up", Some("../../etc/passwd"));
    // The sample application's own bundle.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-app");
    let file = File::create(out.join("seed-sample-app.tgz")).expect("create tgz");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::best()));
    builder.append_dir_all(".", &sample).expect("append sample app");
    builder.into_inner().expect("finish tar").finish().expect("finish gzip");
}

fn manifest_seeds(out: &Path) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let tree_dir = scratch.path().join("tree");
    fs::create_dir(&tree_dir).expect("mkdir");
    write_dir(&small_tree(), &tree_dir);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-app");
    for (name, source) in [("small", tree_dir.as_path()), ("sample-app", sample.as_path())] {
        let built =
            super::build_manifest(source, &mut |_, _| Ok::<(), std::convert::Infallible>(())).expect("build manifest");
        fs::write(out.join(format!("seed-{name}.json")), built.manifest.canonical_bytes()).expect("write seed");
    }
    let escape = r#"{"format":1,"chunking":{"algorithm":"fastcdc-v2020","min_bytes":16384,"avg_bytes":65536,"max_bytes":262144},"entries":[{"path":"appspec.yml","mode":420,"type":"file","size":1,"chunks":[["0000000000000000000000000000000000000000000000000000000000000000",1]]},{"path":"up","mode":511,"type":"symlink","target":"../etc"}]}"#;
    fs::write(out.join("seed-symlink-escape.json"), escape).expect("write seed");
}

fn frame_seeds(out: &Path) {
    let revision_id = RevisionId::of(b"revision");
    let poll = PollRequest {
        node: NodeId(2),
        assignments_digest: String::new(),
        members_version: 0,
        hold_ms: 1000,
        revisions: Vec::new(),
        release: Release::default(),
        feature_level: None,
        route_errors: Default::default(),
        member: None,
    };
    let messages: Vec<(&str, FrameKind, Message)> = vec![
        ("get-manifest", FrameKind::Message, encode_request(&Request::GetManifest { revision_id }, Bytes::new())),
        (
            "get-piece",
            FrameKind::Message,
            encode_request(
                &Request::GetPiece { revision_id, piece: 3, chunks: vec![ChunkHash::of(b"a")] },
                Bytes::new(),
            ),
        ),
        ("get-have", FrameKind::Message, encode_request(&Request::GetHave { revision_id }, Bytes::new())),
        ("poll", FrameKind::Message, encode_request(&Request::Poll(poll), Bytes::new())),
        ("report", FrameKind::Message, encode_request(&Request::Report(Vec::new()), Bytes::new())),
        ("ack", FrameKind::Message, encode_response(&Response::Ack, Bytes::new())),
        (
            "piece",
            FrameKind::Message,
            encode_response(&Response::Piece { have: "ff01".into() }, Bytes::from_static(b"chunk bytes")),
        ),
        ("not-leader", FrameKind::Message, encode_response(&Response::NotLeader { leader: None }, Bytes::new())),
        ("error", FrameKind::Message, encode_response(&Response::Error("no such revision".into()), Bytes::new())),
        ("transport-error", FrameKind::TransportError, Message::new(&b"peer speaks wire version 9"[..])),
    ];
    for (name, kind, message) in messages {
        fs::write(out.join(format!("seed-{name}")), encode(kind, &message)).expect("write seed");
    }
}

const APPSPEC_FULL: &str = r#"version: 0.0
os: linux
files:
  - source: /
    destination: /srv/app
permissions:
  - object: /srv/app
    pattern: "*.sh"
    except: [skip.sh]
    owner: app
    mode: 755
    type: [file]
    acls: [u:alice:rw, d:g:web:rx]
    context: {user: system_u, type: httpd_sys_content_t, range: s0}
hooks:
  AfterInstall:
    - location: scripts/install.sh
      timeout: "300"
      runas: app
  ApplicationStart: &start
    - location: scripts/start.sh
      timeout: 60
  ValidateService: *start
file_exists_behavior: OVERWRITE
"#;

fn appspec_seeds(out: &Path) {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-app/appspec.yml");
    fs::copy(sample, out.join("seed-sample-app.yml")).expect("copy sample appspec");
    fs::write(out.join("seed-minimal.yml"), "version: 0.0\nos: linux\n").expect("write seed");
    fs::write(out.join("seed-full.yml"), APPSPEC_FULL).expect("write seed");
    let merge = "base: &base\n  location: a.sh\n  timeout: 10\nversion: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - <<: *base\n      runas: root\n";
    fs::write(out.join("seed-merge-keys.yml"), merge).expect("write seed");
}

fn platform_appspec_seeds(out: &Path) {
    let lambda = "version: 0.0\nResources:\n  - fn:\n      Type: AWS::Lambda::Function\n      Properties:\n        \
                  Name: fn\n        Alias: live\n        CurrentVersion: \"1\"\n        TargetVersion: \"2\"\n\
                  Hooks:\n  - BeforeAllowTraffic: check\n";
    let ecs = r#"{"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
  "TaskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/web:3",
  "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080},
  "NetworkConfiguration": {"AwsvpcConfiguration": {"Subnets": ["subnet-1"], "SecurityGroups": ["sg-1"], "AssignPublicIp": "DISABLED"}},
  "CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Base": 1, "Weight": 1}]}}}],
  "Hooks": [{"AfterAllowTestTraffic": "probe"}]}"#;
    fs::write(out.join("seed-lambda.yml"), lambda).expect("write seed");
    fs::write(out.join("seed-ecs.json"), ecs).expect("write seed");
}

#[test]
#[ignore = "writes the seed files into fuzz/corpus; run by hand after changing an encoder"]
fn write_seed_corpus() {
    // Writes each target's seeds (named seed-*) with the real encoders and bundle writers.
    type Writer = fn(&Path);
    let writers: [(&str, Writer); 5] = [
        ("appspec", appspec_seeds),
        ("platform_appspec", platform_appspec_seeds),
        ("frame", frame_seeds),
        ("manifest", manifest_seeds),
        ("archive", archive_seeds),
    ];
    for (target, write) in writers {
        let out = corpus_root().join(target);
        fs::create_dir_all(&out).expect("mkdir corpus");
        write(&out);
    }
}
