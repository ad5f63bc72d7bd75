//! Fuzzes the SigV4 verifier: `fleetmesh_node::revision::fuzz::sigv4`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetmesh_node::revision::fuzz::sigv4(data));
