//! The seeded builder of a simulated cluster, in the spirit of turmoil's: every knob of
//! the network, the nodes' timing and the simulated hosts, then `start`.

use std::time::Duration;

use fleetmesh_core::rollout::PlannerSettings;
use fleetmesh_node::runtime::Timing;

use super::{ClusterError, SimCluster};
use crate::host::HostTiming;
use crate::net::LinkModel;
use crate::planted::PlantedBug;

/// How a simulated cluster is built.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of everything.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Voters to keep.
    pub voters: u32,
    /// Network behaviour.
    pub link: LinkModel,
    /// Node timing.
    pub timing: Timing,
    /// Simulated host timing (hooks, downloads).
    pub host: HostTiming,
    /// The rollout planner's settings (deadlines).
    pub planner: PlannerSettings,
    /// The leaders plan with this planted bug ([`crate::planted`]) instead of CodeDeploy's
    /// rules (`--planted-bug`), to prove the invariants catch a wrong planner.
    pub planted_bug: Option<PlantedBug>,
    /// Probability that a call to the simulated Lambda is throttled or answered 5xx.
    pub lambda_fault_rate: f64,
}

impl SimConfig {
    /// Defaults for `nodes` nodes: production timing and planner, a LAN-like network.
    pub fn new(seed: u64, nodes: usize) -> Self {
        Self {
            seed,
            nodes,
            voters: 3,
            link: LinkModel::default(),
            timing: Timing::default(),
            host: HostTiming::default(),
            planner: PlannerSettings::default(),
            planted_bug: None,
            lambda_fault_rate: 0.0,
        }
    }
}

/// Entry point of the builder.
#[derive(Debug)]
pub struct Sim;

impl Sim {
    /// A builder with seed 1, 5 nodes and the defaults of [`SimConfig::new`].
    pub fn builder() -> SimBuilder {
        SimBuilder { config: SimConfig::new(1, 5) }
    }
}

/// Builds a [`SimConfig`] and starts the cluster.
#[derive(Clone, Debug)]
pub struct SimBuilder {
    config: SimConfig,
}

impl SimBuilder {
    /// The seed that decides every latency, loss, fault, hook outcome and timer.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// How many nodes.
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.config.nodes = nodes;
        self
    }

    /// How many voters the autopilot keeps.
    pub fn voters(mut self, voters: u32) -> Self {
        self.config.voters = voters;
        self
    }

    /// One-way latency, uniform in `[min, max]`.
    pub fn latency(mut self, min: Duration, max: Duration) -> Self {
        self.config.link.latency_min = min;
        self.config.link.latency_max = max.max(min);
        self
    }

    /// Probability that a message is lost.
    pub fn loss(mut self, probability: f64) -> Self {
        self.config.link.loss = probability;
        self
    }

    /// Probability that a request is delivered twice.
    pub fn duplication(mut self, probability: f64) -> Self {
        self.config.link.duplication = probability;
        self
    }

    /// Probability that a message is held back by up to `delay_max`, so that later
    /// ones overtake it.
    pub fn reorder(mut self, probability: f64, delay_max: Duration) -> Self {
        self.config.link.reorder = probability;
        self.config.link.reorder_delay_max = delay_max;
        self
    }

    /// Bytes per second of every directed link.
    pub fn bandwidth(mut self, bytes_per_sec: u64) -> Self {
        self.config.link.bandwidth_bytes_per_sec = Some(bytes_per_sec);
        self
    }

    /// The nodes' timing.
    pub fn timing(mut self, timing: Timing) -> Self {
        self.config.timing = timing;
        self
    }

    /// The simulated hosts' timing.
    pub fn host_timing(mut self, host: HostTiming) -> Self {
        self.config.host = host;
        self
    }

    /// The rollout planner's settings.
    pub fn planner(mut self, planner: PlannerSettings) -> Self {
        self.config.planner = planner;
        self
    }

    /// The configuration built so far.
    pub fn config(self) -> SimConfig {
        self.config
    }

    /// Starts the cluster.
    ///
    /// # Errors
    /// As [`SimCluster::start`].
    pub async fn start(self) -> Result<SimCluster, ClusterError> {
        SimCluster::start(self.config).await
    }
}
