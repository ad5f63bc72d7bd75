//! Test bundles generated on the spot: one tree written as a directory, tar, tar.gz or
//! zip, plus hand-made tar headers for hostile archives. No fixtures from the network.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rand::{RngCore, SeedableRng};

/// One path of a test tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

/// A test tree: (path, mode, node), parents before children.
pub(crate) type Tree = Vec<(String, u32, Node)>;

pub(crate) fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// A bundle with every kind of entry: nested and empty directories, executable,
/// private and multi-chunk files, a repeated file, an empty file, and file and
/// directory symlinks that stay inside.
pub(crate) fn sample_tree() -> Tree {
    let big = random_bytes(11, 700 * 1024);
    vec![
        ("appspec.yml".into(), 0o644, Node::File(b"version: 0.0\nos: linux\n".to_vec())),
        ("logs".into(), 0o750, Node::Dir),
        ("scripts".into(), 0o755, Node::Dir),
        ("scripts/start.sh".into(), 0o755, Node::File(b"#!/bin/sh\necho started\n".to_vec())),
        ("scripts/www".into(), 0o777, Node::Symlink("../www".into())),
        ("secret.txt".into(), 0o600, Node::File(b"hunter2".to_vec())),
        ("www".into(), 0o755, Node::Dir),
        ("www/big.bin".into(), 0o644, Node::File(big.clone())),
        ("www/copy.bin".into(), 0o644, Node::File(big)),
        ("www/current".into(), 0o777, Node::Symlink("index.html".into())),
        ("www/empty".into(), 0o644, Node::File(Vec::new())),
        ("www/index.html".into(), 0o644, Node::File(b"<h1>hello</h1>".to_vec())),
    ]
}

/// Writes `tree` under `root` (which must exist), with exact modes.
pub(crate) fn write_dir(tree: &Tree, root: &Path) {
    for (path, _, node) in tree {
        let target = root.join(path);
        match node {
            Node::Dir => fs::create_dir_all(&target).expect("mkdir"),
            Node::File(bytes) => fs::write(&target, bytes).expect("write"),
            Node::Symlink(to) => std::os::unix::fs::symlink(to, &target).expect("symlink"),
        }
    }
    // Modes after content, deepest first, so restrictive modes do not block writes.
    for (path, mode, node) in tree.iter().rev() {
        if !matches!(node, Node::Symlink(_)) {
            fs::set_permissions(root.join(path), fs::Permissions::from_mode(*mode)).expect("chmod");
        }
    }
}

/// Writes `tree` as a tar (gzip-compressed when `gzip`), every path under `prefix`
/// (empty, or a top directory name ending in `/`).
pub(crate) fn write_tar(tree: &Tree, archive: &Path, gzip: bool, prefix: &str) {
    let file = File::create(archive).expect("create archive");
    let writer: Box<dyn Write> =
        if gzip { Box::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast())) } else { Box::new(file) };
    let mut builder = tar::Builder::new(writer);
    if let Some(top) = prefix.strip_suffix('/') {
        append_tar(&mut builder, top, 0o755, &Node::Dir);
    }
    for (path, mode, node) in tree {
        append_tar(&mut builder, &format!("{prefix}{path}"), *mode, node);
    }
    builder.into_inner().expect("finish tar").flush().expect("flush");
}

/// Appends one well-formed entry.
pub(crate) fn append_tar<W: Write>(builder: &mut tar::Builder<W>, path: &str, mode: u32, node: &Node) {
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode);
    let data: &[u8] = match node {
        Node::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            &[]
        }
        Node::File(bytes) => {
            header.set_entry_type(tar::EntryType::Regular);
            bytes
        }
        Node::Symlink(to) => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_link_name(to).expect("link name");
            &[]
        }
    };
    header.set_size(data.len() as u64);
    header.set_path(path).expect("path");
    header.set_cksum();
    builder.append(&header, data).expect("append");
}

/// Appends an entry with a raw name and type, bypassing the tar crate's own path checks
/// (to build hostile archives).
pub(crate) fn append_raw_tar<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    entry_type: tar::EntryType,
    mode: u32,
    link: &str,
    data: &[u8],
) {
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode);
    header.set_entry_type(entry_type);
    header.set_size(data.len() as u64);
    let field = &mut header.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
    if !link.is_empty() {
        header.set_link_name_literal(link).expect("link name");
    }
    header.set_cksum();
    builder.append(&header, data).expect("append");
}

/// Writes `tree` as a deflated zip, every path under `prefix`.
pub(crate) fn write_zip(tree: &Tree, archive: &Path, prefix: &str) {
    let mut zip = zip::ZipWriter::new(File::create(archive).expect("create zip"));
    let options = |mode: u32| {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode)
    };
    if !prefix.is_empty() {
        zip.add_directory(prefix, options(0o755)).expect("zip dir");
    }
    for (path, mode, node) in tree {
        let name = format!("{prefix}{path}");
        match node {
            Node::Dir => zip.add_directory(format!("{name}/"), options(*mode)).expect("zip dir"),
            Node::File(bytes) => {
                zip.start_file(name, options(*mode)).expect("zip file");
                zip.write_all(bytes).expect("zip write");
            }
            Node::Symlink(to) => zip.add_symlink(name, to, options(*mode)).expect("zip symlink"),
        }
    }
    zip.finish().expect("finish zip");
}

/// Everything observable about a tree on disk: path → (mode, node). Symlink modes are
/// left out (Linux ignores them).
pub(crate) fn snapshot(root: &Path) -> BTreeMap<String, (u32, Node)> {
    let mut found = BTreeMap::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        for child in fs::read_dir(&dir).expect("list") {
            let child = child.expect("entry");
            let name = child.file_name().into_string().expect("utf-8 name");
            let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let metadata = fs::symlink_metadata(child.path()).expect("stat");
            let mode = metadata.permissions().mode() & 0o7777;
            let node = if metadata.file_type().is_symlink() {
                let target = fs::read_link(child.path()).expect("readlink");
                (0o777, Node::Symlink(target.to_str().expect("utf-8").to_string()))
            } else if metadata.is_dir() {
                pending.push((child.path(), path.clone()));
                (mode, Node::Dir)
            } else {
                (mode, Node::File(fs::read(child.path()).expect("read")))
            };
            found.insert(path, node);
        }
    }
    found
}

/// Runs the `#[ignore]`d test `test` (its path in this crate) in a child process of this
/// test binary, with `env` set to `value`, under `ulimit -f 64` (32 KiB in /bin/sh's
/// 512-byte blocks) and with SIGXFSZ ignored, so that a write past the limit fails part
/// way with EFBIG, as on a full disk. Returns the child's stdout after asserting it
/// passed.
pub(crate) fn run_under_file_size_limit(test: &str, env: &str, value: &Path) -> String {
    let script =
        format!("trap '' XFSZ; ulimit -f 64 && exec \"$0\" --exact {test} --ignored --nocapture --test-threads 1");
    let output = std::process::Command::new("/bin/sh")
        .args(["-c", &script])
        .arg(std::env::current_exe().expect("test binary"))
        .env(env, value)
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
