//! Driving a test cluster through the `fleetmesh` CLI, as a user would: status, pushes,
//! deployments and revision distribution.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use fleetmesh_model::{GetDeploymentOutput, GetDeploymentTargetOutput, GetRevisionDistributionOutput};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{binary, wait_until, TestCluster};

impl TestCluster {
    /// Runs the CLI against node `via`'s API with the admin token.
    pub fn cli(&self, via: u32, args: &[&str]) -> Output {
        Command::new(binary())
            .args(args)
            .env("FLEETMESH_API", self.api_url(via))
            .env("FLEETMESH_CA_BUNDLE", self.ca_bundle(via))
            .env("FLEETMESH_TOKEN", &self.admin_token)
            .output()
            .expect("run fleetmesh")
    }

    /// Runs the CLI and parses its stdout as JSON, `None` if it failed.
    pub fn cli_json(&self, via: u32, args: &[&str]) -> Option<Value> {
        let output = self.cli(via, args);
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// Runs a CLI command that must succeed and reads its `--json` output as `T` (the
    /// model's output of the operation the verb calls).
    ///
    /// # Panics
    /// If the command fails or prints something else.
    pub fn ok_as<T: DeserializeOwned>(&self, via: u32, args: &[&str]) -> T {
        let out = self.ok(via, args);
        serde_json::from_str(&out).unwrap_or_else(|error| panic!("fleetmesh {}: {error}: {out}", args.join(" ")))
    }

    /// Creates a deployment of `revision` to app/`group` through node `via` without
    /// waiting for it; returns its id.
    pub fn start_deployment(&self, via: u32, group: &str, revision: &str) -> String {
        let args = ["--application-name", "app", "--deployment-group-name", group, "--revision", revision, "--json"];
        let mut command = vec!["deploy", "create-deployment"];
        command.extend(args);
        let created: fleetmesh_model::CreateDeploymentOutput = self.ok_as(via, &command);
        created.deployment_id.to_string()
    }

    /// `cluster status --json` through node `via`.
    pub fn status(&self, via: u32) -> Option<Value> {
        self.cli_json(via, &["cluster", "status", "--json"])
    }

    /// Runs a CLI command that must succeed; returns stdout.
    ///
    /// # Panics
    /// If the command fails (its stderr in the message).
    pub fn ok(&self, via: u32, args: &[&str]) -> String {
        let output = self.cli(via, args);
        assert!(
            output.status.success(),
            "fleetmesh {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Pushes a bundle and returns the revision id.
    pub fn push(&self, via: u32, application: &str, source: &Path) -> String {
        let out =
            self.ok(via, &["deploy", "push", "--application-name", application, "--source", &source.to_string_lossy()]);
        out.trim().lines().last().expect("revision id").trim().to_string()
    }

    /// Creates a deployment, waits for it to end, and returns `get-deployment --json`.
    ///
    /// # Panics
    /// If the CLI prints no `GetDeploymentOutput`.
    pub fn deploy_and_wait(
        &self,
        via: u32,
        application: &str,
        group: &str,
        revision: &str,
        extra: &[&str],
    ) -> GetDeploymentOutput {
        let mut args = vec![
            "deploy",
            "create-deployment",
            "--application-name",
            application,
            "--deployment-group-name",
            group,
            "--revision",
            revision,
            "--wait",
            "--json",
        ];
        args.extend_from_slice(extra);
        let output = self.cli(via, &args);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "create-deployment --wait printed no deployment ({error}): {}{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// `get-deployment --json` of a deployment, `None` if the CLI failed.
    pub fn deployment(&self, via: u32, id: &str) -> Option<GetDeploymentOutput> {
        let answer = self.cli_json(via, &["deploy", "get-deployment", "--deployment-id", id, "--json"])?;
        serde_json::from_value(answer).ok()
    }

    /// `get-deployment-target --json` of one target through node `via`.
    ///
    /// # Panics
    /// If the command fails.
    pub fn deployment_target(&self, via: u32, deployment_id: &str, target_id: &str) -> GetDeploymentTargetOutput {
        let args =
            ["deploy", "get-deployment-target", "--deployment-id", deployment_id, "--target-id", target_id, "--json"];
        self.ok_as(via, &args)
    }

    /// Waits until a deployment has ended; returns its `get-deployment --json`.
    pub fn wait_deployment(&self, id: &str, timeout: Duration) -> GetDeploymentOutput {
        wait_until(&format!("deployment {id} to end"), timeout, || {
            self.live_indices().into_iter().find_map(|via| {
                let answer = self.deployment(via, id)?;
                answer.deployment_info.status.is_terminal().then_some(answer)
            })
        })
    }

    /// Waits until `count` nodes are alive (as node 1 or any live node reports).
    pub fn wait_alive(&self, count: usize, timeout: Duration) -> Value {
        wait_until(&format!("{count} alive nodes"), timeout, || {
            self.live_indices().into_iter().find_map(|via| {
                let status = self.status(via)?;
                let alive = status["nodes"].as_array()?.iter().filter(|node| node["health"] == "alive").count();
                (alive == count && !status["leader"].is_null()).then_some(status)
            })
        })
    }

    /// The index of the current leader as seen through node `via`.
    pub fn leader_index(&self, via: u32) -> Option<u32> {
        let status = self.status(via)?;
        let leader = status["leader"].as_u64()?;
        let node = status["nodes"].as_array()?.iter().find(|node| node["id"].as_u64() == Some(leader))?;
        self.index_of_address(node["address"].as_str()?)
    }

    /// The id node `index` was given (from `cluster status`).
    pub fn node_id(&self, index: u32) -> u64 {
        let address = self.nodes[&index].listen.to_string();
        let status = self.status(self.live_indices()[0]).expect("status");
        status["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|node| node["address"] == address.as_str())
            .and_then(|node| node["id"].as_u64())
            .expect("node id")
    }

    /// Waits until node 1 reports 3 voters, then returns a voter other than the leader:
    /// its index and its QUIC address.
    pub fn follower_voter(&self) -> (u32, String) {
        let status = wait_until("3 voters", Duration::from_secs(60), || {
            self.status(1).filter(|status| {
                status["nodes"]
                    .as_array()
                    .is_some_and(|nodes| nodes.iter().filter(|n| n["role"] == "voter").count() == 3)
            })
        });
        let victim = status["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|node| node["role"] == "voter" && node["id"] != status["leader"])
            .cloned()
            .expect("a non-leader voter");
        let address = victim["address"].as_str().expect("address").to_string();
        (self.index_of_address(&address).expect("index"), address)
    }

    /// Creates deployment group `group` of application `app` through node 1, with
    /// `args` after the names (tags, configuration, rollback flags).
    pub fn create_group(&self, group: &str, args: &[&str]) {
        let mut command =
            vec!["deploy", "create-deployment-group", "--application-name", "app", "--deployment-group-name", group];
        command.extend_from_slice(args);
        self.ok(1, &command);
    }

    /// Creates traffic route `name` through node 1: routers are the nodes tagged
    /// `router=yes`, connections drain for `drain_seconds`; `extra` flags follow.
    pub fn create_route(&self, name: &str, listen_port: u16, target_port: u16, drain_seconds: u32, extra: &[&str]) {
        let (listen, target, drain) = (listen_port.to_string(), target_port.to_string(), drain_seconds.to_string());
        let mut command = vec![
            "traffic",
            "create-route",
            "--route-name",
            name,
            "--listen-port",
            &listen,
            "--target-port",
            &target,
            "--router-tag",
            "router=yes",
            "--drain-seconds",
            &drain,
        ];
        command.extend_from_slice(extra);
        self.ok(1, &command);
    }

    /// Asks every node to fetch `revision` (`deploy prefetch --all-nodes`, no wait).
    pub fn prefetch_all(&self, via: u32, revision: &str) {
        self.ok(via, &["deploy", "prefetch", "--revision", revision, "--all-nodes"]);
    }

    /// Waits until `get-revision-distribution` lists every node in `indices` as
    /// complete for `revision`.
    pub fn wait_distributed(&self, revision: &str, indices: &[u32], timeout: Duration) {
        let ids: Vec<u64> = indices.iter().map(|index| self.node_id(*index)).collect();
        wait_until(&format!("revision {revision} complete on nodes {indices:?}"), timeout, || {
            let answer = self.cli_json(
                self.live_indices()[0],
                &["deploy", "get-revision-distribution", "--revision", revision, "--json"],
            )?;
            let answer: GetRevisionDistributionOutput = serde_json::from_value(answer).ok()?;
            ids.iter().all(|id| answer.nodes.iter().any(|node| node.id.0 == *id && node.complete)).then_some(())
        });
    }
}
