//! Scenarios for `materialize`: bundles pushed into a store and written back out.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use fleetmesh_state::model::revision::Manifest;
use tempfile::TempDir;

use super::*;
use crate::revision::build_manifest;
use crate::revision::testkit::{sample_tree, snapshot, write_dir, Node, Tree};

/// Pushes `tree` into a fresh store; returns (work dir, source dir, store, manifest).
fn pushed(tree: &Tree) -> (TempDir, std::path::PathBuf, ChunkStore, Manifest) {
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("source");
    fs::create_dir(&source).expect("mkdir");
    write_dir(tree, &source);
    let store = ChunkStore::open(&work.path().join("chunks")).expect("store");
    let built = build_manifest(&source, &mut |chunk, bytes| store.put(chunk.hash(), bytes).map(|_| ())).expect("push");
    (work, source, store, built.manifest)
}

#[test]
fn a_bundle_round_trips_byte_for_byte_with_modes_and_symlinks() {
    // Pushes the sample tree (executable, private and shared-chunk files, an empty file,
    // an empty directory with mode 0750, file and directory symlinks) plus a read-only
    // directory; materializes it; asserts the written tree equals the source in paths,
    // content, modes and link targets, and that no staging directory is left.
    let mut tree = sample_tree();
    tree.push(("zz-readonly".into(), 0o555, Node::Dir));
    tree.push(("zz-readonly/inside".into(), 0o444, Node::File(b"frozen".to_vec())));
    let (work, source, store, manifest) = pushed(&tree);
    let dest = work.path().join("deployment-archive");
    materialize(&manifest, &store, &dest).expect("materialize");
    assert_eq!(snapshot(&dest), snapshot(&source));
    assert_eq!(fs::metadata(&dest).expect("dest").permissions().mode() & 0o7777, ROOT_DIR_MODE);
    assert!(!work.path().join(".deployment-archive.partial").exists());
}

#[test]
fn an_existing_destination_is_never_touched() {
    // Materializes into a path that already holds a file; asserts DestinationExists and
    // that the file is unchanged.
    let (work, _source, store, manifest) = pushed(&sample_tree());
    let dest = work.path().join("dest");
    fs::create_dir(&dest).expect("mkdir");
    fs::write(dest.join("keep"), b"mine").expect("write");
    assert!(matches!(materialize(&manifest, &store, &dest), Err(MaterializeError::DestinationExists { .. })));
    assert_eq!(fs::read(dest.join("keep")).expect("read"), b"mine");
}

#[test]
fn a_missing_or_corrupt_chunk_leaves_nothing_behind() {
    // Corrupts one chunk file of a pushed bundle; asserts materialize fails naming the
    // file whose chunk is bad, creates no destination, removes its staging directory, and
    // that the corrupt chunk is now reported missing by the store.
    let (work, _source, store, manifest) = pushed(&sample_tree());
    let (path, _, chunks) = manifest.files().find(|(path, _, _)| *path == "www/index.html").expect("file");
    let hex = chunks[0].hash().to_hex();
    fs::write(store.dir().join(&hex[..2]).join(&hex), b"tampered").expect("tamper");
    let dest = work.path().join("dest");
    let error = materialize(&manifest, &store, &dest).expect_err("corrupt chunk");
    assert!(
        matches!(&error, MaterializeError::Chunk { entry, source: StoreError::Missing(_) } if entry == path),
        "{error}"
    );
    assert!(!dest.exists());
    assert!(!work.path().join(".dest.partial").exists());
    assert_eq!(store.missing(chunks), chunks.to_vec());
}

#[test]
fn a_staging_tree_left_by_a_crash_is_replaced() {
    // Leaves a staging directory with a read-only subdirectory, as a crash after the mode
    // pass would; asserts materialize removes it and writes the full tree.
    let (work, source, store, manifest) = pushed(&sample_tree());
    let staging = work.path().join(".dest.partial");
    fs::create_dir_all(staging.join("stale/locked")).expect("mkdir");
    fs::write(staging.join("stale/locked/file"), b"old").expect("write");
    fs::set_permissions(staging.join("stale/locked"), fs::Permissions::from_mode(0o500)).expect("chmod");
    fs::set_permissions(staging.join("stale"), fs::Permissions::from_mode(0o500)).expect("chmod");
    let dest = work.path().join("dest");
    materialize(&manifest, &store, &dest).expect("materialize");
    assert_eq!(snapshot(&dest), snapshot(&source));
    assert!(!staging.exists());
}

#[test]
fn an_invalid_manifest_is_refused_before_writing() {
    // Tampers a pushed manifest so a file sits under a symlink (a write-through-link
    // attempt); asserts materialize refuses it with the manifest error and writes nothing.
    let (work, _source, store, mut manifest) = pushed(&sample_tree());
    let mut sneaky = manifest.entries.iter().find(|entry| entry.path == "www/index.html").expect("file").clone();
    sneaky.path = "scripts/www/evil".into();
    manifest.entries.push(sneaky);
    manifest.entries.sort_by(|a, b| a.path.cmp(&b.path));
    let dest = work.path().join("dest");
    assert!(matches!(materialize(&manifest, &store, &dest), Err(MaterializeError::Manifest(_))));
    assert!(!dest.exists() && !work.path().join(".dest.partial").exists());
}
