//! Scenarios for `build_manifest` and `bundle_size` over generated bundles.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fleetmesh_state::model::revision::ChunkRef;
use tempfile::TempDir;

use super::*;
use crate::revision::testkit::{
    append_raw_tar, append_tar, random_bytes, sample_tree, write_dir, write_tar, write_zip, Node, Tree,
};

/// Every chunk a sink received, in order, with its bytes.
type Received = Vec<(ChunkRef, Vec<u8>)>;

/// Builds the manifest of `source`, collecting every chunk the sink receives.
fn build(source: &Path) -> Result<(BuiltRevision, Received), BundleError> {
    let mut received = Vec::new();
    let built = build_manifest(source, &mut |chunk, bytes: &[u8]| {
        received.push((chunk, bytes.to_vec()));
        Ok::<(), Infallible>(())
    })?;
    Ok((built, received))
}

fn dir_bundle(tree: &Tree) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_dir(tree, dir.path());
    dir
}

/// A tar holding the appspec plus the raw entries `add` appends.
fn hostile_tar(dir: &Path, add: impl FnOnce(&mut tar::Builder<fs::File>)) -> PathBuf {
    let path = dir.join("bundle.tar");
    let mut builder = tar::Builder::new(fs::File::create(&path).expect("create"));
    append_tar(&mut builder, "appspec.yml", 0o644, &Node::File(b"version: 0.0\n".to_vec()));
    add(&mut builder);
    builder.into_inner().expect("finish");
    path
}

/// Asserts both the size pass and the build refuse `source` with an error for which
/// `expected` holds, and that the message names `entry`.
fn assert_refused(source: &Path, entry: &str, expected: impl Fn(&BundleError) -> bool) {
    for (pass, outcome) in [("bundle_size", bundle_size(source).map(|_| ())), ("build", build(source).map(|_| ()))] {
        let error = outcome.expect_err(pass);
        assert!(expected(&error), "{pass}: unexpected error {error:?}");
        assert!(error.to_string().contains(entry), "{pass}: {error} does not name {entry}");
    }
}

#[test]
fn directory_tar_tgz_and_zip_of_one_tree_give_one_manifest() {
    // Writes the sample tree as a directory, a tar, a tar.gz and a zip; asserts all four
    // give the same manifest (so the same revision id), that it passes validate, that the
    // size pass agrees with it, and that the sink got every chunk occurrence with bytes
    // matching its hash and length.
    let tree = sample_tree();
    let dir = dir_bundle(&tree);
    let archives = tempfile::tempdir().expect("tempdir");
    let tar = archives.path().join("b.tar");
    let tgz = archives.path().join("b.tgz");
    let zip = archives.path().join("b.zip");
    write_tar(&tree, &tar, false, "");
    write_tar(&tree, &tgz, true, "");
    write_zip(&tree, &zip, "");

    let (reference, received) = build(dir.path()).expect("directory builds");
    reference.manifest.validate().expect("valid manifest");
    let paths: Vec<&str> = reference.manifest.entries.iter().map(|entry| entry.path.as_str()).collect();
    let tree_paths: Vec<&str> = tree.iter().map(|(path, _, _)| path.as_str()).collect();
    assert_eq!(paths, tree_paths, "every path, sorted, nothing added");
    let occurrences: usize = reference.manifest.files().map(|(_, _, chunks)| chunks.len()).sum();
    assert_eq!(received.len(), occurrences);
    for (chunk, bytes) in &received {
        assert_eq!(chunk.hash(), fleetmesh_state::model::ids::ChunkHash::of(bytes));
        assert_eq!(chunk.len() as usize, bytes.len());
    }
    // big.bin and copy.bin share their chunks: unique bytes count them once.
    let big = 700 * 1024;
    assert_eq!(reference.total_bytes - reference.unique_bytes, big);
    assert_eq!(bundle_size(dir.path()).expect("size"), reference.total_bytes);

    for archive in [&tar, &tgz, &zip] {
        let (built, _) = build(archive).unwrap_or_else(|error| panic!("{}: {error}", archive.display()));
        assert_eq!(built.manifest, reference.manifest, "{}", archive.display());
        assert_eq!(built.manifest.revision_id(), reference.manifest.revision_id());
        assert_eq!(bundle_size(archive).expect("size"), reference.total_bytes);
    }
}

#[test]
fn a_single_top_directory_is_stripped_in_every_format() {
    // Wraps the sample tree in "myapp-1.2/" as a tar.gz and a zip (the GitHub tarball
    // shape), and copies it into a directory under "myapp-1.2"; asserts each gives the
    // manifest of the unwrapped directory (codedeploy.md §1.1).
    let tree = sample_tree();
    let (reference, _) = build(dir_bundle(&tree).path()).expect("builds");
    let work = tempfile::tempdir().expect("tempdir");
    let tgz = work.path().join("wrapped.tar.gz");
    let zip = work.path().join("wrapped.zip");
    write_tar(&tree, &tgz, true, "myapp-1.2/");
    write_zip(&tree, &zip, "myapp-1.2/");
    let wrapped_dir = work.path().join("src");
    fs::create_dir_all(wrapped_dir.join("myapp-1.2")).expect("mkdir");
    write_dir(&tree, &wrapped_dir.join("myapp-1.2"));
    for source in [&tgz, &zip, &wrapped_dir] {
        let (built, _) = build(source).expect("builds");
        assert_eq!(built.manifest, reference.manifest, "{}", source.display());
    }
}

#[test]
fn archives_without_a_known_extension_are_sniffed() {
    // Writes the sample tree as a tar.gz and a zip named without extension; asserts both
    // build to the reference manifest, and that a text file is refused as not a bundle.
    let tree = sample_tree();
    let (reference, _) = build(dir_bundle(&tree).path()).expect("builds");
    let work = tempfile::tempdir().expect("tempdir");
    let tgz = work.path().join("upload-1");
    let zip = work.path().join("upload-2");
    write_tar(&tree, &tgz, true, "");
    write_zip(&tree, &zip, "");
    assert_eq!(build(&tgz).expect("tgz").0.manifest, reference.manifest);
    assert_eq!(build(&zip).expect("zip").0.manifest, reference.manifest);
    let text = work.path().join("notes");
    fs::write(&text, "hello").expect("write");
    assert!(matches!(build(&text), Err(BundleError::Format { .. })));
}

#[test]
fn hostile_tar_entries_are_refused_by_name() {
    // Builds one tar per hostile entry (absolute path, `..`, escaping symlink, hard link,
    // device, duplicate, write through a symlink); asserts each is refused by both passes
    // with the right error naming the entry.
    let work = tempfile::tempdir().expect("tempdir");
    let regular = tar::EntryType::Regular;
    let absolute = hostile_tar(work.path(), |b| append_raw_tar(b, "/etc/cron.d/evil", regular, 0o644, "", b"x"));
    assert_refused(&absolute, "/etc/cron.d/evil", |e| matches!(e, BundleError::AbsolutePath { .. }));
    let dotdot = hostile_tar(work.path(), |b| append_raw_tar(b, "www/../../evil", regular, 0o644, "", b"x"));
    assert_refused(&dotdot, "www/../../evil", |e| matches!(e, BundleError::ParentComponent { .. }));
    let escape =
        hostile_tar(work.path(), |b| append_raw_tar(b, "www/etc", tar::EntryType::Symlink, 0o644, "../../etc", b""));
    assert_refused(&escape, "www/etc", |e| matches!(e, BundleError::SymlinkEscape { .. }));
    let hard =
        hostile_tar(work.path(), |b| append_raw_tar(b, "passwd", tar::EntryType::Link, 0o644, "/etc/passwd", b""));
    assert_refused(&hard, "passwd", |e| matches!(e, BundleError::HardLink { .. }));
    let device = hostile_tar(work.path(), |b| append_raw_tar(b, "dev/sda", tar::EntryType::Block, 0o644, "", b""));
    assert_refused(&device, "dev/sda", |e| matches!(e, BundleError::SpecialFile { kind: "block device", .. }));
    let twice = hostile_tar(work.path(), |b| append_raw_tar(b, "./appspec.yml", regular, 0o644, "", b"again"));
    assert_refused(&twice, "appspec.yml", |e| matches!(e, BundleError::Duplicate { .. }));
    let through = hostile_tar(work.path(), |b| {
        append_raw_tar(b, "cfg", tar::EntryType::Symlink, 0o644, "conf", b"");
        append_raw_tar(b, "cfg/app.conf", regular, 0o644, "", b"x");
    });
    assert_refused(&through, "cfg/app.conf", |e| matches!(e, BundleError::ParentNotDirectory { .. }));
}

#[test]
fn hostile_zip_entries_are_refused_by_name() {
    // Writes zips with a `..` path, an absolute path and an escaping symlink; asserts each
    // is refused by both passes, naming the entry.
    let work = tempfile::tempdir().expect("tempdir");
    type Expected = fn(&BundleError) -> bool;
    let cases: [(&str, Tree, &str, Expected); 3] = [
        ("dotdot.zip", vec![("../evil.sh".into(), 0o755, Node::File(b"x".to_vec()))], "../evil.sh", |e| {
            matches!(e, BundleError::ParentComponent { .. })
        }),
        ("absolute.zip", vec![("/tmp/evil".into(), 0o644, Node::File(b"x".to_vec()))], "/tmp/evil", |e| {
            matches!(e, BundleError::AbsolutePath { .. })
        }),
        ("escape.zip", vec![("root".into(), 0o777, Node::Symlink("../../".into()))], "root", |e| {
            matches!(e, BundleError::SymlinkEscape { .. })
        }),
    ];
    for (name, extra, entry, expected) in cases {
        let mut tree = vec![("appspec.yml".to_string(), 0o644, Node::File(b"version: 0.0\n".to_vec()))];
        tree.extend(extra);
        let zip = work.path().join(name);
        write_zip(&tree, &zip, "");
        assert_refused(&zip, entry, expected);
    }
}

#[test]
fn directory_symlink_escapes_are_refused_and_never_followed() {
    // Puts a symlink to the parent of the bundle, and one to /etc, in a directory
    // bundle; asserts each is refused naming the link, and that an inside symlink to a
    // directory is kept as a link (its content is not walked twice).
    let tree = sample_tree();
    for (name, target) in [("up", "../.."), ("etc", "/etc")] {
        let dir = dir_bundle(&tree);
        std::os::unix::fs::symlink(target, dir.path().join("www").join(name)).expect("symlink");
        let entry = format!("www/{name}");
        assert_refused(dir.path(), &entry, |e| matches!(e, BundleError::SymlinkEscape { .. }));
    }
    let (built, _) = build(dir_bundle(&tree).path()).expect("builds");
    let link = built.manifest.entries.iter().find(|entry| entry.path == "scripts/www").expect("link kept");
    assert_eq!(link.kind, EntryKind::Symlink { target: "../www".into() });
    assert!(!built.manifest.entries.iter().any(|entry| entry.path.starts_with("scripts/www/")));
}

#[test]
fn missing_source_missing_appspec_and_unreadable_file_are_named() {
    // Points at a path that does not exist, then a tree without appspec, then (unless
    // running as root, which reads anything) a file with mode 000; asserts each error
    // names the path or says what is missing.
    let work = tempfile::tempdir().expect("tempdir");
    let absent = work.path().join("no-such-bundle");
    assert_refused(&absent, "no-such-bundle", |e| matches!(e, BundleError::Missing { .. }));
    let no_appspec = dir_bundle(&vec![("index.html".into(), 0o644, Node::File(b"x".to_vec()))]);
    assert_refused(no_appspec.path(), "appspec.yml", |e| matches!(e, BundleError::NoAppSpec));
    if nix::unistd::geteuid().is_root() {
        eprintln!("skipping the unreadable-file check: root reads files with mode 000");
        return;
    }
    let dir = dir_bundle(&sample_tree());
    let locked = dir.path().join("secret.txt");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).expect("chmod");
    assert_refused(dir.path(), "secret.txt", |e| matches!(e, BundleError::Io { .. }));
}

#[test]
fn truncated_archive_is_refused() {
    // Cuts a tar.gz of the sample tree in half; asserts the build fails instead of
    // producing a manifest of part of the bundle.
    let work = tempfile::tempdir().expect("tempdir");
    let tgz = work.path().join("b.tgz");
    write_tar(&sample_tree(), &tgz, true, "");
    let bytes = fs::read(&tgz).expect("read");
    fs::File::create(&tgz).and_then(|mut file| file.write_all(&bytes[..bytes.len() / 2])).expect("truncate");
    assert!(build(&tgz).is_err());
}

#[test]
fn a_failing_sink_stops_the_build() {
    // Gives a sink that refuses the third chunk; asserts the build returns that error as
    // BundleError::Sink and the sink was not called again after refusing.
    let dir = dir_bundle(&sample_tree());
    let mut calls = 0;
    let outcome = build_manifest(dir.path(), &mut |_, _| {
        calls += 1;
        if calls == 3 {
            return Err(std::io::Error::other("store full"));
        }
        Ok(())
    });
    assert!(matches!(&outcome, Err(BundleError::Sink(error)) if error.to_string() == "store full"), "{outcome:?}");
    assert_eq!(calls, 3);
}

#[test]
fn one_byte_edit_in_a_five_mib_file_changes_few_chunks() {
    // Builds a bundle with a 5 MiB random file, then the same bundle with one byte of
    // that file changed; asserts the new revision has at most 2 chunks the old one lacks
    // (of ~80), so a redeploy moves ~1% of the bytes.
    let mut tree = vec![("appspec.yml".to_string(), 0o644, Node::File(b"version: 0.0\n".to_vec()))];
    let mut blob = random_bytes(5, 5 * 1024 * 1024);
    tree.push(("blob".into(), 0o644, Node::File(blob.clone())));
    let (before, _) = build(dir_bundle(&tree).path()).expect("builds");
    blob[3_000_000] ^= 1;
    tree[1].2 = Node::File(blob);
    let (after, _) = build(dir_bundle(&tree).path()).expect("builds");
    let old: BTreeSet<ChunkRef> = before.manifest.unique_chunks().into_iter().collect();
    let new = after.manifest.unique_chunks();
    let changed = new.iter().filter(|chunk| !old.contains(chunk)).count();
    assert!(new.len() > 40, "{} chunks", new.len());
    assert!((1..=2).contains(&changed), "{changed} of {} chunks changed", new.len());
    assert_ne!(before.manifest.revision_id(), after.manifest.revision_id());
}

#[test]
fn dot_slash_prefixes_and_pax_global_headers_are_transparent() {
    // Writes the sample tree as `tar -C dir -cf b.tar .` does ("./" root entry and "./"
    // prefixes) after a pax global header as `git archive` writes; asserts the manifest
    // is the directory's, with no entry for the root or the header.
    let tree = sample_tree();
    let (reference, _) = build(dir_bundle(&tree).path()).expect("builds");
    let work = tempfile::tempdir().expect("tempdir");
    let path = work.path().join("b.tar");
    let mut builder = tar::Builder::new(fs::File::create(&path).expect("create"));
    let comment = b"52 comment=0123456789012345678901234567890123456789\n";
    append_raw_tar(&mut builder, "pax_global_header", tar::EntryType::XGlobalHeader, 0o644, "", comment);
    append_raw_tar(&mut builder, "./", tar::EntryType::Directory, 0o644, "", b"");
    for (entry_path, mode, node) in &tree {
        let name = format!("./{entry_path}");
        match node {
            Node::Dir => append_raw_tar(&mut builder, &name, tar::EntryType::Directory, *mode, "", b""),
            Node::File(bytes) => append_raw_tar(&mut builder, &name, tar::EntryType::Regular, *mode, "", bytes),
            Node::Symlink(to) => append_raw_tar(&mut builder, &name, tar::EntryType::Symlink, *mode, to, b""),
        }
    }
    builder.into_inner().expect("finish");
    assert_eq!(build(&path).expect("builds").0.manifest, reference.manifest);
}
