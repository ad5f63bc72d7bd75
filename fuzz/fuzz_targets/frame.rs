//! Fuzzes the frame decoder: `fleetmesh_node::revision::fuzz::frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetmesh_node::revision::fuzz::frame(data));
