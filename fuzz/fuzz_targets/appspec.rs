//! Fuzzes the appspec decoder: `fleetmesh_node::revision::fuzz::appspec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetmesh_node::revision::fuzz::appspec(data));
