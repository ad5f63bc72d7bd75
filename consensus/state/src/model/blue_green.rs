//! Blue/green deployments of servers (`codedeploy.md` §2.3, §5.3): the group's
//! `blueGreenDeploymentConfiguration` and the replicated progress of one deployment.
//!
//! A blue/green deployment installs the revision on a second fleet (green) while the
//! hosts on the group's routes (blue) keep serving, then moves the routes' traffic to
//! green and takes blue off. Every step is a committed [`BlueGreenPhase`] with the time
//! it began, so a new leader resumes from the record and timers are derived from
//! committed times, never from a leader's memory.
//!
//! ```text
//!  Installing ─all green Ready─▶ Ready ─continue (at once, or READY_WAIT)─▶ Rerouting
//!      │                          └─ wait over, STOP_DEPLOYMENT ─▶ deployment Stopped
//!  Rerouting (green: allow events) ─▶ [Shifting: green's share steps up, one committed
//!      step per interval, canary/linear configs only] ─▶ Blocking (blue: block events)
//!      ─▶ TerminationWait ─wait over or TERMINATION_WAIT─▶ Terminating (blue:
//!         ApplicationStop, TERMINATE only) ─▶ Succeeded
//! ```

use serde::{Deserialize, Serialize};

use super::deployment::IN_PLACE_TRAFFIC_EVENTS;
use super::ids::UnixMillis;
use super::traffic_routing::TrafficRouting;

/// Longest wait, in minutes, for `READY_WAIT` or before the original fleet is
/// terminated (AWS: 2880, two days).
pub const WAIT_MINUTES_MAX: u32 = 2880;

/// What happens when green is ready (`deploymentReadyOption.actionOnTimeout`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionOnTimeout {
    /// Reroute traffic as soon as green is installed.
    #[default]
    #[serde(rename = "CONTINUE_DEPLOYMENT")]
    ContinueDeployment,
    /// Wait for `continue-deployment --deployment-wait-type READY_WAIT`; when the wait
    /// ends first the deployment is `Stopped`.
    #[serde(rename = "STOP_DEPLOYMENT")]
    StopDeployment,
}

/// `deploymentReadyOption`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentReadyOption {
    /// Continue at once or wait.
    #[serde(default)]
    pub action_on_timeout: ActionOnTimeout,
    /// How long `STOP_DEPLOYMENT` waits, in minutes (AWS's field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_time_in_minutes: Option<u32>,
    /// The same in seconds (fleetmesh's extension, for short waits and tests); at most
    /// one of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_time_in_seconds: Option<u32>,
}

/// What becomes of the original fleet after success (`terminateBlueInstancesOnDeploymentSuccess.action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlueInstanceAction {
    /// Off the routes, kept running (fleetmesh cannot delete machines; this is the default).
    #[default]
    #[serde(rename = "KEEP_ALIVE")]
    KeepAlive,
    /// Off the routes, then its `ApplicationStop` runs (the last successful install's
    /// script); the node stays a member, in the group's standby pool.
    #[serde(rename = "TERMINATE")]
    Terminate,
}

/// `terminateBlueInstancesOnDeploymentSuccess`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlueInstanceTermination {
    /// Keep or stop.
    #[serde(default)]
    pub action: BlueInstanceAction,
    /// Wait after the reroute before the action, in minutes (AWS's field; during it a
    /// rollback is instant because blue still runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_wait_time_in_minutes: Option<u32>,
    /// The same in seconds (fleetmesh's extension); at most one of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_wait_time_in_seconds: Option<u32>,
}

/// How the green fleet is found (`greenFleetProvisioningOption.action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GreenFleetProvisioningAction {
    /// Hosts that exist: `create-deployment --target-instances`, or the group's hosts
    /// that do not serve its routes.
    #[default]
    #[serde(rename = "DISCOVER_EXISTING")]
    DiscoverExisting,
}

/// `greenFleetProvisioningOption`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GreenFleetProvisioningOption {
    /// Only `DISCOVER_EXISTING` (no Auto Scaling groups to copy).
    #[serde(default)]
    pub action: GreenFleetProvisioningAction,
}

/// `blueGreenDeploymentConfiguration` of a deployment group (§5.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenDeploymentConfiguration {
    /// After success.
    #[serde(default)]
    pub terminate_blue_instances_on_deployment_success: BlueInstanceTermination,
    /// When green is ready.
    #[serde(default)]
    pub deployment_ready_option: DeploymentReadyOption,
    /// Where green comes from.
    #[serde(default)]
    pub green_fleet_provisioning_option: GreenFleetProvisioningOption,
}

/// Why a blue/green wait is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWait {
    /// Minutes and seconds were both given.
    #[error("{field}: give minutes or seconds, not both")]
    BothUnits {
        /// The wait, as AWS names it.
        field: &'static str,
    },
    /// Longer than [`WAIT_MINUTES_MAX`].
    #[error("{field} is {seconds} s; at most {max} s ({WAIT_MINUTES_MAX} minutes)", max = u64::from(WAIT_MINUTES_MAX) * 60)]
    TooLong {
        /// The wait, as AWS names it.
        field: &'static str,
        /// What was asked, in seconds.
        seconds: u64,
    },
}

/// One duration given in minutes or seconds, in milliseconds (none: 0).
fn wait_ms(field: &'static str, minutes: Option<u32>, seconds: Option<u32>) -> Result<u64, InvalidWait> {
    let seconds = match (minutes, seconds) {
        (Some(_), Some(_)) => return Err(InvalidWait::BothUnits { field }),
        (Some(minutes), None) => u64::from(minutes) * 60,
        (None, Some(seconds)) => u64::from(seconds),
        (None, None) => 0,
    };
    if seconds > u64::from(WAIT_MINUTES_MAX) * 60 {
        return Err(InvalidWait::TooLong { field, seconds });
    }
    Ok(seconds * 1000)
}

impl BlueGreenDeploymentConfiguration {
    /// Checks the bounds; the message names the field.
    ///
    /// # Errors
    /// A wait given both in minutes and seconds, or longer than [`WAIT_MINUTES_MAX`].
    pub fn validate(&self) -> Result<(), InvalidWait> {
        self.ready_wait_ms()?;
        self.termination_wait_ms()?;
        Ok(())
    }

    /// How long `STOP_DEPLOYMENT` waits for `READY_WAIT`, in milliseconds.
    ///
    /// # Errors
    /// As [`Self::validate`].
    pub fn ready_wait_ms(&self) -> Result<u64, InvalidWait> {
        let option = &self.deployment_ready_option;
        wait_ms("deploymentReadyOption.waitTime", option.wait_time_in_minutes, option.wait_time_in_seconds)
    }

    /// How long blue waits after the reroute, in milliseconds.
    ///
    /// # Errors
    /// As [`Self::validate`].
    pub fn termination_wait_ms(&self) -> Result<u64, InvalidWait> {
        let option = &self.terminate_blue_instances_on_deployment_success;
        wait_ms(
            "terminateBlueInstancesOnDeploymentSuccess.terminationWaitTime",
            option.termination_wait_time_in_minutes,
            option.termination_wait_time_in_seconds,
        )
    }
}

/// Which fleet a target of a blue/green deployment belongs to (AWS's `TargetLabel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetLabel {
    /// The original fleet, serving when the deployment began.
    Blue,
    /// The replacement fleet the revision is installed on.
    Green,
}

/// Where a blue/green deployment is. Phases only move forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BlueGreenPhase {
    /// Green runs the install events, up to `ValidateService`.
    Installing,
    /// Every green target is installed; the deployment waits to reroute (status `Ready`).
    Ready,
    /// Green runs the allow events: it joins the routes (with a canary or linear
    /// configuration, at the first step's share of new connections).
    Rerouting,
    /// Canary or linear configurations: green is on the routes and its share of new
    /// connections ([`BlueGreenRun::green_percent`]) steps up, one committed
    /// [`BlueGreenStep::Shift`] after each interval, measured from `phase_since`.
    Shifting,
    /// Blue runs the block events: it leaves the routes.
    Blocking,
    /// Traffic has moved; blue still runs, so a rollback is instant (status `Baking`).
    TerminationWait,
    /// `TERMINATE`: blue runs `ApplicationStop`.
    Terminating,
}

/// A blue/green deployment's committed progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenRun {
    /// The group's configuration, copied at creation.
    pub configuration: BlueGreenDeploymentConfiguration,
    /// The current phase.
    pub phase: BlueGreenPhase,
    /// When it began.
    pub phase_since: UnixMillis,
    /// Set by `continue-deployment --deployment-wait-type READY_WAIT` while `Ready`.
    #[serde(default)]
    pub ready_continued: bool,
    /// Set by `continue-deployment --deployment-wait-type TERMINATION_WAIT`.
    #[serde(default)]
    pub termination_continued: bool,
    /// With a canary or linear configuration, from `Rerouting` until `TerminationWait`:
    /// the percentage of the routes' new connections that go to green, whatever the
    /// targets' weights (see `ClusterState::effective_weights`). `None`: by weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub green_percent: Option<u32>,
}

/// The lifecycle events of a green (replacement) target, in order (§2.3): the in-place
/// ones with traffic control, without the block events.
pub const GREEN_EVENTS: &[&str] = IN_PLACE_TRAFFIC_EVENTS.split_at(3).1;

/// The green event before which a green target waits (status `Ready`) until traffic moves.
pub const GREEN_HOLD: &str = "BeforeAllowTraffic";

/// The lifecycle events of a blue (original) target (§2.3); `TERMINATE` adds
/// [`BLUE_TERMINATE_EVENT`], held until the termination wait ends.
pub const BLUE_EVENTS: &[&str] = IN_PLACE_TRAFFIC_EVENTS.split_at(3).0;

/// The event a blue target runs after the termination wait under `TERMINATE`.
pub const BLUE_TERMINATE_EVENT: &str = "ApplicationStop";

/// `DeploymentWaitType` (§6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentWaitType {
    /// The wait for traffic after green is ready.
    #[serde(rename = "READY_WAIT")]
    ReadyWait,
    /// The wait before the original fleet is terminated.
    #[serde(rename = "TERMINATION_WAIT")]
    TerminationWait,
}

/// One move of a blue/green deployment, decided by the rollout engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlueGreenStep {
    /// Enter this phase: the targets it needs start (see `apply` in `blue_green.rs`).
    Enter(BlueGreenPhase),
    /// The ready wait ended with no `READY_WAIT` continue: the deployment is `Stopped`.
    ReadyWaitExpired,
    /// `Shifting`: green's share of new connections becomes this percentage (1–99,
    /// above the current one); the interval to the next step starts.
    Shift(u32),
}

impl BlueGreenStep {
    /// True for the steps of canary and linear configurations
    /// ([`crate::FeatureLevel::BLUE_GREEN_STEPS`]).
    pub fn is_stepped(&self) -> bool {
        matches!(self, Self::Shift(_) | Self::Enter(BlueGreenPhase::Shifting))
    }
}

/// The shares of new connections green gets in a blue/green deployment with `routing`:
/// the first step and the step to the one after `current`, or `None` without steps
/// (all at once). Every share is below 100: the last step (100 %) is blue leaving the
/// routes (`Blocking`).
pub fn green_steps(routing: Option<TrafficRouting>) -> Option<GreenSteps> {
    match routing? {
        TrafficRouting::TimeBasedCanary { percentage, interval_seconds } => {
            Some(GreenSteps { first: percentage, increment: 100, interval_ms: u64::from(interval_seconds) * 1000 })
        }
        TrafficRouting::TimeBasedLinear { percentage, interval_seconds } => Some(GreenSteps {
            first: percentage,
            increment: percentage,
            interval_ms: u64::from(interval_seconds) * 1000,
        }),
        TrafficRouting::AllAtOnce => None,
    }
}

/// How green's share moves in a canary or linear blue/green deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreenSteps {
    /// Green's share while its targets join the routes and during the first interval.
    pub first: u32,
    /// Added at each step.
    pub increment: u32,
    /// The bake between steps, in milliseconds.
    pub interval_ms: u64,
}

impl GreenSteps {
    /// The share after `current`; 100 or more means blue leaves the routes.
    pub fn after(&self, current: u32) -> u32 {
        current.saturating_add(self.increment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_take_minutes_or_seconds_within_two_days() {
        let mut config = BlueGreenDeploymentConfiguration::default();
        assert_eq!(config.ready_wait_ms(), Ok(0));
        config.deployment_ready_option.wait_time_in_minutes = Some(2);
        assert_eq!(config.ready_wait_ms(), Ok(120_000));
        config.deployment_ready_option.wait_time_in_seconds = Some(5);
        assert!(config.validate().unwrap_err().to_string().contains("not both"));
        config.deployment_ready_option.wait_time_in_minutes = None;
        assert_eq!(config.ready_wait_ms(), Ok(5000));
        config.terminate_blue_instances_on_deployment_success.termination_wait_time_in_minutes = Some(2881);
        assert!(config.validate().unwrap_err().to_string().contains("(2880 minutes)"));
    }

    #[test]
    fn the_aws_json_shape_reads_with_defaults() {
        let text = r#"{"terminateBlueInstancesOnDeploymentSuccess":{"action":"TERMINATE","terminationWaitTimeInMinutes":5},
            "deploymentReadyOption":{"actionOnTimeout":"STOP_DEPLOYMENT","waitTimeInMinutes":60}}"#;
        let config: BlueGreenDeploymentConfiguration = serde_json::from_str(text).expect("AWS shape");
        assert_eq!(config.terminate_blue_instances_on_deployment_success.action, BlueInstanceAction::Terminate);
        assert_eq!(config.termination_wait_ms(), Ok(300_000));
        assert_eq!(config.deployment_ready_option.action_on_timeout, ActionOnTimeout::StopDeployment);
        assert_eq!(config.green_fleet_provisioning_option.action, GreenFleetProvisioningAction::DiscoverExisting);
    }
}
