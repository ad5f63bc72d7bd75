//! Fuzzes the manifest decoder: `fleetmesh_node::revision::fuzz::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetmesh_node::revision::fuzz::manifest(data));
