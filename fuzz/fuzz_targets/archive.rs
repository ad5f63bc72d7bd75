//! Fuzzes the bundle readers (tar, tar.gz, zip): `fleetmesh_node::revision::fuzz::archive`.
//! Each input is written as the one bundle file of a temporary directory of this process.
#![no_main]

use std::sync::OnceLock;

static SCRATCH: OnceLock<tempfile::TempDir> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let scratch = SCRATCH.get_or_init(|| tempfile::tempdir().expect("scratch directory"));
    fleetmesh_node::revision::fuzz::archive(scratch.path(), data).expect("write the bundle file");
});
