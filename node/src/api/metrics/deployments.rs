//! Deployment metrics: outcomes and durations counted from the event log as a scrape
//! reads it ([`ClusterState::finished_after`]), and what is running now, read from the
//! state at each scrape.

use std::sync::Mutex;

use fleetmesh_state::model::deployment::TargetStatus;
use fleetmesh_state::{platform_of, ClusterState, Finished};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label sets of one, two and three labels.
type Labels1 = [(&'static str, String); 1];
type Labels2 = [(&'static str, String); 2];
type Labels3 = [(&'static str, String); 3];

/// A histogram family with fixed buckets.
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Deployments take seconds to hours.
const DEPLOYMENT_BUCKETS: [f64; 13] =
    [1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0];

/// Lifecycle events take milliseconds (a file copy) to an hour (a hook's longest timeout).
const LIFECYCLE_BUCKETS: [f64; 15] =
    [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0];

fn deployment_histogram() -> Histogram {
    Histogram::new(DEPLOYMENT_BUCKETS)
}

fn lifecycle_histogram() -> Histogram {
    Histogram::new(LIFECYCLE_BUCKETS)
}

/// The outcomes counted so far, and the event read through.
#[derive(Debug)]
pub(in crate::api) struct DeploymentTally {
    through: Mutex<u64>,
    completed: Family<Labels2, Counter>,
    durations: Histograms<Labels2>,
    lifecycle_durations: Histograms<Labels3>,
}

impl Default for DeploymentTally {
    fn default() -> Self {
        Self {
            through: Mutex::new(0),
            completed: Family::default(),
            durations: Family::new_with_constructor(deployment_histogram),
            lifecycle_durations: Family::new_with_constructor(lifecycle_histogram),
        }
    }
}

impl DeploymentTally {
    /// Counts what finished since the last scrape.
    fn catch_up(&self, state: &ClusterState) {
        let mut through = self.through.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (finished, now) = state.finished_after(*through);
        *through = now;
        for outcome in finished {
            match outcome {
                Finished::Deployment { platform, status, seconds } => {
                    let labels = [("platform", platform.to_string()), ("status", status.to_string())];
                    self.completed.get_or_create(&labels).inc();
                    if let Some(seconds) = seconds {
                        self.durations.get_or_create(&labels).observe(seconds);
                    }
                }
                Finished::LifecycleEvent { platform, lifecycle_event_name, status, seconds } => {
                    let Some(seconds) = seconds else { continue };
                    let labels = [
                        ("platform", platform.to_string()),
                        ("lifecycle_event", lifecycle_event_name.to_string()),
                        ("status", status.to_string()),
                    ];
                    self.lifecycle_durations.get_or_create(&labels).observe(seconds);
                }
            }
        }
    }

    /// Registers the deployment metrics, caught up with `state`.
    pub(in crate::api) fn register(&self, registry: &mut Registry, state: &ClusterState) {
        self.catch_up(state);
        registry.register(
            "fleetmesh_deployments_completed",
            "Deployments that ended, by compute platform and final status (Succeeded, Failed, Stopped)",
            self.completed.clone(),
        );
        registry.register(
            "fleetmesh_deployment_duration_seconds",
            "Time from a deployment's start to its end, by compute platform and final status",
            self.durations.clone(),
        );
        registry.register(
            "fleetmesh_lifecycle_event_duration_seconds",
            "Time a lifecycle event took on a target, by compute platform, event and final status",
            self.lifecycle_durations.clone(),
        );
        register_running(registry, state);
    }
}

/// What runs now: targets in flight, route weights and the traffic share of deployments
/// that shift traffic.
fn register_running(registry: &mut Registry, state: &ClusterState) {
    let in_flight = Family::<Labels1, Gauge>::default();
    for platform in ["Server", "Lambda", "ECS"] {
        in_flight.get_or_create(&[("platform", platform.to_string())]).set(0);
    }
    let shares = Family::<Labels2, Gauge>::default();
    for deployment in state.active_deployments() {
        let platform = platform_of(deployment);
        let running = deployment.targets.values().filter(|target| target.status == TargetStatus::InProgress).count()
            + usize::from(deployment.shift.as_ref().is_some_and(|run| run.status == TargetStatus::InProgress));
        in_flight.get_or_create(&[("platform", platform.to_string())]).inc_by(i64::try_from(running).unwrap_or(0));
        let share = deployment.blue_green.as_ref().and_then(|run| run.green_percent).or_else(|| {
            let run = deployment.shift.as_ref()?;
            let applied = usize::try_from(run.applied_steps).ok()?.checked_sub(1)?;
            run.weights.get(applied).copied()
        });
        if let Some(share) = share {
            let labels = [("deployment_id", deployment.deployment_id.to_string()), ("platform", platform.to_string())];
            shares.get_or_create(&labels).set(i64::from(share));
        }
    }
    let weights = Family::<Labels2, Gauge>::default();
    for (name, route) in &state.routes {
        for target in &route.targets {
            let labels = [("route", name.clone()), ("target", target.target_id.to_string())];
            weights.get_or_create(&labels).set(i64::from(target.weight));
        }
    }
    registry.register(
        "fleetmesh_targets_in_flight",
        "Targets running lifecycle events now, by compute platform",
        in_flight,
    );
    registry.register(
        "fleetmesh_deployment_new_traffic_percent",
        "Share of traffic on the new version of a running blue/green, Lambda or ECS deployment, in percent",
        shares,
    );
    registry.register(
        "fleetmesh_route_target_weight",
        "Weight of a target in a traffic route (relative share of new connections; 0 drains it)",
        weights,
    );
}
