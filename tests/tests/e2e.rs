//! End-to-end tests: real `fleetmesh` processes on loopback, real QUIC and mutual TLS,
//! real files and hooks. One test binary; each test builds its own cluster.

mod e2e {
    mod alarms;
    mod alarms_cloudwatch;
    mod api;
    mod aws_credentials;
    mod aws_ecs;
    mod aws_elbv2;
    mod aws_instances;
    mod aws_lambda;
    mod aws_protocol;
    mod aws_sources;
    mod blue_green;
    mod blue_green_steps;
    mod bounds;
    mod canary;
    mod cluster;
    mod dashboard;
    mod deploy;
    mod ecs;
    mod events;
    mod git_http;
    mod honest;
    mod lambda;
    mod members;
    mod netns;
    mod operations;
    mod recovery;
    mod security;
    mod server_target_groups;
    mod swarm;
    mod traffic;
    mod traffic_command;
    mod traffic_control;
    mod triggers;
    mod upgrade;
    mod voters;
}
