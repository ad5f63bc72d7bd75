//! Fuzzes the AWS JSON 1.1 request parser: `fleetmesh_node::revision::fuzz::aws_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetmesh_node::revision::fuzz::aws_request(data));
