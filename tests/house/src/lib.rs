//! House rules for the fleetmesh workspace. This crate has no code of its own: the rules
//! are the integration test `tests/house.rs`, a dependency-free scanner of the workspace's
//! Rust sources. Run them with `cargo test -p fleetmesh-house --test house`.
