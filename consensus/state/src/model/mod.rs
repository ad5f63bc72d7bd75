//! The replicated data model: plain serde types, no I/O.

pub mod alarms;
pub mod blue_green;
pub mod deployment;
pub mod ecs_group;
pub mod events;
pub mod ids;
pub mod instances;
pub mod members;
pub mod names;
pub mod node_id;
pub mod platform_configs;
pub mod resources;
pub mod retention;
pub mod revision;
pub mod routes;
pub mod shift;
pub mod traffic_routing;
pub mod triggers;
