//! Why `fleetmesh sim` could not run: the crate's error at its boundary. A run whose
//! invariants failed is not an error (it is a report whose `passed` is false, and the
//! `FAILURE` exit code); these are runs that could not be set up.

use crate::scenarios::{ScenarioError, SCENARIOS};

/// A simulation that could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario could not run (its cluster failed, or a setup step was refused).
    /// Boxed: a scenario's error is large, and a run's result carries it.
    #[error(transparent)]
    Scenario(Box<ScenarioError>),
    /// The seeded runtime could not be built.
    #[error(transparent)]
    Runtime(#[from] std::io::Error),
    /// No scenario has that name.
    #[error("unknown scenario {name:?}; known: {}", SCENARIOS.join(", "))]
    UnknownScenario {
        /// The name asked for.
        name: String,
    },
    /// A cluster scenario was asked for no node at all.
    #[error("the {scenario} scenario needs at least 1 node")]
    NoNodes {
        /// The scenario.
        scenario: String,
    },
    /// `blue-green-chaos` was asked for one node: blue and green need a host each.
    #[error("the blue-green-chaos scenario needs at least 2 nodes (a blue host and a green one), not {nodes}")]
    NoGreenFleet {
        /// Nodes asked for.
        nodes: usize,
    },
    /// A swarm scenario needs a seed and at least one receiver.
    #[error("the swarm scenario needs at least 2 nodes (a seed and a receiver)")]
    SwarmTooSmall,
    /// `--seeds` is not a range of seeds.
    #[error(transparent)]
    Seeds(#[from] SeedRangeError),
}

impl From<ScenarioError> for SimError {
    fn from(error: ScenarioError) -> Self {
        Self::Scenario(Box::new(error))
    }
}

/// Why a `--seeds A..B` argument is not a range of seeds.
#[derive(Debug, thiserror::Error)]
pub enum SeedRangeError {
    /// It has no `..`.
    #[error("--seeds must look like 1..50, got {0:?}")]
    Shape(String),
    /// Its start is not a number.
    #[error("--seeds start {0:?} is not a number")]
    Start(String),
    /// Its end is not a number.
    #[error("--seeds end {0:?} is not a number")]
    End(String),
    /// Its end is not after its start.
    #[error("--seeds range {0:?} is empty")]
    Empty(String),
}
