//! CloudWatch alarms by name: one `DescribeAlarms` per poll round for all of a
//! deployment's CloudWatch alarms (CloudWatch's call quota is per account and region, so
//! the calls do not multiply with the alarms). `ALARM` fires; `OK` and
//! `INSUFFICIENT_DATA` do not; a name CloudWatch does not know, or a call that fails, is
//! a poll failure (which `ignorePollAlarmFailure` decides about).
//!
//! The calls run as the group's `serviceRoleArn` when set (assumed through STS), else
//! with the node's own credentials (the standard chain), in the chain's region, to
//! `AWS_ENDPOINT_URL_CLOUDWATCH` / `AWS_ENDPOINT_URL` when set
//! ([`fleetmesh_aws::CloudWatchAlarms`]); one client per role, kept.

use crate::leader::clients::ClientCache;
use fleetmesh_aws::{AlarmState, AlarmStateValue, AwsSettings, CloudWatchAlarms};
use fleetmesh_state::model::alarms::Alarm;
use fleetmesh_transport::BoxFuture;

use super::{AlarmProbe, PollError, Reading, Role};

/// Most characters of an alarm's `StateReason` quoted in a reading (CloudWatch allows
/// 1023; the reading ends up in the deployment's error message).
const REASON_CHARS_MAX: usize = 200;

/// What CloudWatch's answer says of each of `names`, in their order: a reading per alarm
/// it knows, a poll failure naming the alarm (and `region`, where it looked) for one it
/// does not.
pub fn readings(names: &[String], states: &[AlarmState], region: &str) -> Vec<Result<Reading, PollError>> {
    let reading = |name: &String| match states.iter().find(|state| &state.name == name) {
        Some(state) => reading(state),
        None => Err(PollError(format!("CloudWatch has no alarm named {name} in {region}"))),
    };
    names.iter().map(reading).collect()
}

/// One alarm's reading: on in `ALARM`.
fn reading(state: &AlarmState) -> Result<Reading, PollError> {
    let reason: String = state.reason.chars().take(REASON_CHARS_MAX).collect();
    let detail = if reason.is_empty() {
        format!("CloudWatch state {}", state.state)
    } else {
        format!("CloudWatch state {} ({reason})", state.state)
    };
    match &state.state {
        AlarmStateValue::Alarm => Ok(Reading { firing: true, detail }),
        AlarmStateValue::Ok | AlarmStateValue::InsufficientData => Ok(Reading { firing: false, detail }),
        AlarmStateValue::Unknown(value) => {
            Err(PollError(format!("CloudWatch reports state {value:?}, none of OK, ALARM and INSUFFICIENT_DATA")))
        }
    }
}

/// Reads CloudWatch alarms with a client per role.
#[derive(Default)]
pub struct CloudWatchProbe {
    clients: ClientCache<Role, CloudWatchAlarms>,
}

/// The client of `role`, made on first use (the configuration loaded the AWS way, the
/// role assumed through STS).
async fn client(clients: &ClientCache<Role, CloudWatchAlarms>, role: Role) -> CloudWatchAlarms {
    let make = |role: Role| async move {
        let settings = AwsSettings { role_arn: role, ..AwsSettings::default() };
        CloudWatchAlarms::new(&settings.load().await, &settings)
    };
    clients.get_or_make(role, make).await
}

impl AlarmProbe for CloudWatchProbe {
    fn read(&self, alarms: Vec<Alarm>, role: Role) -> BoxFuture<'static, Vec<Result<Reading, PollError>>> {
        let clients = self.clients.clone();
        Box::pin(async move {
            let names: Vec<String> = alarms.into_iter().map(|alarm| alarm.name).collect();
            if names.is_empty() {
                return Vec::new();
            }
            let client = client(&clients, role).await;
            match client.describe_alarms(&names).await {
                Ok(states) => readings(&names, &states, client.region()),
                Err(error) => names.iter().map(|_| Err(PollError(format!("CloudWatch {error}")))).collect(),
            }
        })
    }
}
