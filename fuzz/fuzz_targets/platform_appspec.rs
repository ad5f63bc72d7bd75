//! Fuzzes the Lambda and ECS AppSpec parsers: `fleetmesh_node::revision::fuzz::platform_appspec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetmesh_node::revision::fuzz::platform_appspec(data));
