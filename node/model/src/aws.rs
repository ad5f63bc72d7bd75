//! CodeDeploy's own protocol (AWS JSON 1.1) over this model: which operations it
//! serves, AWS's exception name for an error answer, and how a revision pushed to the
//! cluster looks there (an S3 object of the reserved bucket `fleetmesh`).
//!
//! ```text
//!  POST /  X-Amz-Target: CodeDeploy_20141006.GetDeployment  {"deploymentId": "d-…"}
//!    ──▶ Operation::parse("GetDeployment", body') ──▶ Output ──▶ {"deploymentInfo": {…}}
//!                                          └──▶ OperationError ──▶ {"__type": "DeploymentDoesNotExistException", "message": …}
//! ```
//! `body'` is the body with pushed revisions' S3 form read as fleetmesh's
//! ([`revisions_in`]); answers show them in the S3 form ([`revisions_out`]).

use serde_json::Value;

use crate::error::{ErrorKind, OperationError};

/// What `X-Amz-Target` starts with.
pub const TARGET_PREFIX: &str = "CodeDeploy_20141006.";
/// The bucket that names revisions pushed to the cluster: its keys are revision ids.
pub const PUSHED_BUCKET: &str = "fleetmesh";

/// CodeDeploy's operations this release answers on the wire; the rest of botocore's 47
/// are listed in the README with the reason each is left out.
pub const WIRE_OPERATIONS: &[&str] = &[
    "AddTagsToOnPremisesInstances",
    "BatchGetApplicationRevisions",
    "BatchGetApplications",
    "BatchGetDeploymentGroups",
    "BatchGetDeployments",
    "BatchGetDeploymentTargets",
    "BatchGetOnPremisesInstances",
    "ContinueDeployment",
    "CreateApplication",
    "CreateDeployment",
    "CreateDeploymentConfig",
    "CreateDeploymentGroup",
    "DeleteApplication",
    "DeleteDeploymentConfig",
    "DeleteDeploymentGroup",
    "DeregisterOnPremisesInstance",
    "GetApplication",
    "GetApplicationRevision",
    "GetDeployment",
    "GetDeploymentConfig",
    "GetDeploymentGroup",
    "GetDeploymentTarget",
    "GetOnPremisesInstance",
    "ListApplicationRevisions",
    "ListApplications",
    "ListDeploymentConfigs",
    "ListDeploymentGroups",
    "ListDeploymentTargets",
    "ListDeployments",
    "ListOnPremisesInstances",
    "ListTagsForResource",
    "PutLifecycleEventHookExecutionStatus",
    "RegisterApplicationRevision",
    "RegisterOnPremisesInstance",
    "RemoveTagsFromOnPremisesInstances",
    "StopDeployment",
    "TagResource",
    "UntagResource",
    "UpdateApplication",
    "UpdateDeploymentGroup",
];

/// The operation a request of the AWS protocol asks for: its `X-Amz-Target` and body.
///
/// # Errors
/// The target is not one of [`WIRE_OPERATIONS`] (`UnknownOperationException`), the body
/// is not JSON (`SerializationException`), or not the operation's input (the field named).
pub fn parse(target: &str, body: &[u8]) -> Result<crate::Operation, OperationError> {
    let unknown = |reason: String| {
        let mut error = OperationError::new(ErrorKind::BadRequest, reason);
        error.code = Some("UnknownOperationException".into());
        error
    };
    let name = target.strip_prefix(TARGET_PREFIX).ok_or_else(|| {
        unknown(format!("X-Amz-Target must be {TARGET_PREFIX}<Operation>, not {}", crate::bounds::echo(target)))
    })?;
    if !WIRE_OPERATIONS.contains(&name) {
        return Err(unknown(format!(
            "{} is not an operation fleetmesh serves (see the README)",
            crate::bounds::echo(name)
        )));
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    let mut value: Value = serde_json::from_slice(body).map_err(|error| {
        let mut refused = OperationError::new(ErrorKind::BadRequest, format!("the body is not JSON: {error}"));
        refused.code = Some("SerializationException".into());
        refused
    })?;
    revisions_in(&mut value);
    let body = serde_json::to_vec(&value).unwrap_or_default();
    // By name only: the push registration's older spelling is not part of the protocol.
    crate::Operation::parse_named(name, &body).map_err(OperationError::from)
}

/// The exception name AWS gives `error` of `operation`: the error's own code when it
/// has one, else by the field it names, else by what it is about.
pub fn exception(operation: &str, error: &OperationError) -> String {
    if let Some(code) = &error.code {
        return code.clone();
    }
    let message = error.message.as_str();
    let named = match error.kind {
        ErrorKind::BadRequest => error.field.as_deref().map(|field| by_field(field, message)),
        ErrorKind::NotFound => Some(missing(operation, message)),
        ErrorKind::Conflict => Some(conflict(operation, message)),
        // Only ListEvents answers Gone, and it is not on the wire.
        ErrorKind::Gone => None,
        ErrorKind::Unauthorized => Some("AccessDeniedException"),
        ErrorKind::Unavailable => Some("ThrottlingException"),
        ErrorKind::Internal => Some("InternalFailure"),
    };
    named.unwrap_or("InvalidInputException").to_string()
}

/// The HTTP status of `error` on the wire (AWS answers 400 for most client errors).
pub fn status(error: &OperationError) -> u16 {
    match error.kind {
        ErrorKind::Unauthorized => 403,
        ErrorKind::Internal => 500,
        ErrorKind::Unavailable => 503,
        ErrorKind::BadRequest | ErrorKind::NotFound | ErrorKind::Conflict | ErrorKind::Gone => 400,
    }
}

fn by_field(field: &str, message: &str) -> &'static str {
    let missing = message.contains("missing");
    let root = field.split(['.', '[']).next().unwrap_or(field);
    match root {
        "applicationName" | "applicationNames" if missing => "ApplicationNameRequiredException",
        "applicationName" | "applicationNames" | "newApplicationName" => "InvalidApplicationNameException",
        "deploymentGroupName" | "deploymentGroupNames" | "currentDeploymentGroupName" if missing => {
            "DeploymentGroupNameRequiredException"
        }
        "deploymentGroupName" | "deploymentGroupNames" | "currentDeploymentGroupName" | "newDeploymentGroupName" => {
            "InvalidDeploymentGroupNameException"
        }
        "deploymentConfigName" if missing => "DeploymentConfigNameRequiredException",
        "deploymentConfigName" => "InvalidDeploymentConfigNameException",
        "deploymentId" | "deploymentIds" if missing => "DeploymentIdRequiredException",
        "deploymentId" | "deploymentIds" => "InvalidDeploymentIdException",
        "targetId" | "targetIds" => "InvalidDeploymentTargetIdException",
        "revision" | "revisionId" | "revisions" if missing => "RevisionRequiredException",
        "revision" | "revisionId" | "revisions" => "InvalidRevisionException",
        "description" => "DescriptionTooLongException",
        "nextToken" => "InvalidNextTokenException",
        "onPremisesInstanceTagFilters" => "InvalidTagFilterException",
        "onPremisesTagSet" => "InvalidOnPremisesTagCombinationException",
        "autoRollbackConfiguration" => "InvalidAutoRollbackConfigException",
        "deploymentStyle" => "InvalidDeploymentStyleException",
        "loadBalancerInfo" => "InvalidLoadBalancerInfoException",
        "blueGreenDeploymentConfiguration" => "InvalidBlueGreenDeploymentConfigurationException",
        "targetInstances" => "InvalidTargetInstancesException",
        "computePlatform" => "InvalidComputePlatformException",
        "minimumHealthyHosts" => "InvalidMinimumHealthyHostValueException",
        "trafficRoutingConfig" => "InvalidTrafficRoutingConfigurationException",
        "includeOnlyStatuses" => "InvalidDeploymentStatusException",
        "createTimeRange" => "InvalidTimeRangeException",
        "serviceRoleArn" => "InvalidRoleException",
        "triggerConfigurations" => "InvalidTriggerConfigException",
        "alarmConfiguration" | "overrideAlarmConfiguration" => "InvalidAlarmConfigException",
        "fileExistsBehavior" => "InvalidFileExistsBehaviorException",
        "ecsServices" => "InvalidECSServiceException",
        "deploymentWaitType" => "InvalidDeploymentWaitTypeException",
        "lifecycleEventHookExecutionId" => "InvalidLifecycleEventHookExecutionIdException",
        "status" => "InvalidLifecycleEventHookExecutionStatusException",
        "outdatedInstancesStrategy" | "updateOutdatedInstancesOnly" => {
            "InvalidUpdateOutdatedInstancesOnlyValueException"
        }
        "ignoreApplicationStopFailures" => "InvalidIgnoreApplicationStopFailuresValueException",
        "instanceName" | "instanceNames" if missing => "InstanceNameRequiredException",
        "instanceName" | "instanceNames" => "InvalidInstanceNameException",
        "iamSessionArn" => "InvalidIamSessionArnException",
        "iamUserArn" => "InvalidIamUserArnException",
        "registrationStatus" => "InvalidRegistrationStatusException",
        "tagFilters" => "InvalidTagFilterException",
        "ResourceArn" if missing => "ResourceArnRequiredException",
        "ResourceArn" => "InvalidArnException",
        "TagKeys" | "Tags" if missing => "TagRequiredException",
        "TagKeys" => "InvalidTagException",
        "Tags" => "InvalidTagsToAddException",
        "NextToken" => "InvalidNextTokenException",
        "tags" if missing => "TagRequiredException",
        "tags" => "InvalidTagException",
        _ => "InvalidInputException",
    }
}

/// What `message` says does not exist.
fn missing(operation: &str, message: &str) -> &'static str {
    let subject = [
        ("application ", "ApplicationDoesNotExistException"),
        ("deployment group ", "DeploymentGroupDoesNotExistException"),
        ("the deployment group ", "DeploymentGroupDoesNotExistException"),
        ("deployment configuration ", "DeploymentConfigDoesNotExistException"),
        ("revision ", "RevisionDoesNotExistException"),
        ("deployment ", "DeploymentDoesNotExistException"),
        ("node ", "DeploymentTargetDoesNotExistException"),
        ("on-premises instance ", "InstanceNotRegisteredException"),
    ];
    if let Some((_, name)) = subject.iter().find(|(prefix, _)| message.starts_with(prefix)) {
        return name;
    }
    if message.contains("is not a target of") {
        return "DeploymentTargetDoesNotExistException";
    }
    match operation {
        "GetApplicationRevision" => "RevisionDoesNotExistException",
        "GetDeploymentTarget" | "BatchGetDeploymentTargets" => "DeploymentTargetDoesNotExistException",
        _ => "InvalidInputException",
    }
}

/// What `message` says conflicts.
fn conflict(operation: &str, message: &str) -> &'static str {
    let exists = message.contains("already exists") || message.contains("exists already");
    let subject = |prefix: &str| message.starts_with(prefix);
    match operation {
        "CreateApplication" if exists => "ApplicationAlreadyExistsException",
        "CreateDeploymentGroup" | "UpdateDeploymentGroup" if exists => "DeploymentGroupAlreadyExistsException",
        "UpdateApplication" if exists => "ApplicationAlreadyExistsException",
        "CreateDeploymentConfig" if exists => "DeploymentConfigAlreadyExistsException",
        "DeleteDeploymentConfig" => "DeploymentConfigInUseException",
        "StopDeployment" | "ContinueDeployment" if message.contains("finished") || message.contains("completed") => {
            "DeploymentAlreadyCompletedException"
        }
        "ContinueDeployment" => "DeploymentIsNotInReadyStateException",
        "CreateDeployment" if subject("deployment group") || message.contains("in progress") => {
            "DeploymentLimitExceededException"
        }
        "PutLifecycleEventHookExecutionStatus" => "LifecycleEventAlreadyCompletedException",
        "RegisterOnPremisesInstance" if message.contains("IAM session ARN") => {
            "IamSessionArnAlreadyRegisteredException"
        }
        "RegisterOnPremisesInstance" if message.contains("IAM user ARN") => "IamUserArnAlreadyRegisteredException",
        "RegisterOnPremisesInstance" if exists || message.contains("registered already") => {
            "InstanceNameAlreadyRegisteredException"
        }
        "RegisterOnPremisesInstance" => "InstanceLimitExceededException",
        _ if message.contains("feature level") => "UnsupportedActionForDeploymentTypeException",
        _ => "InvalidInputException",
    }
}

/// Reads revisions in the S3 form of pushed revisions (`{"revisionType": "S3",
/// "s3Location": {"bucket": "fleetmesh", "key": "<revision id>", …}}`) as fleetmesh's
/// (`{"revisionType": "fleetmesh", "revisionId": …}`), everywhere in `body`. Other S3
/// locations are left as they are: the node that answers fetches them.
pub fn revisions_in(body: &mut Value) {
    walk(body, &|object| {
        let is_s3 = object.get("revisionType").and_then(Value::as_str) == Some("S3");
        let location = object.get("s3Location").and_then(Value::as_object);
        let key = location
            .filter(|location| location.get("bucket").and_then(Value::as_str) == Some(PUSHED_BUCKET))
            .and_then(|location| location.get("key"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if let (true, Some(key)) = (is_s3, key) {
            object.clear();
            object.insert("revisionType".into(), Value::from("fleetmesh"));
            object.insert("revisionId".into(), Value::from(key));
        }
    });
}

/// Shows revisions pushed to the cluster in the S3 form, everywhere in `answer`; those
/// fetched from S3 show their object alone (without fleetmesh's `revisionId`).
pub fn revisions_out(answer: &mut Value) {
    walk(answer, &|object| {
        let kind = object.get("revisionType").and_then(Value::as_str).map(str::to_string);
        let kind = kind.as_deref();
        if (kind == Some("S3") && object.contains_key("s3Location"))
            || (kind == Some("GitHub") && object.contains_key("gitHubLocation"))
        {
            object.remove("revisionId");
        }
        if kind != Some("fleetmesh") {
            return;
        }
        let key = object.remove("revisionId").unwrap_or_default();
        object.insert("revisionType".into(), Value::from("S3"));
        let location = serde_json::json!({ "bucket": PUSHED_BUCKET, "key": key, "bundleType": "tar" });
        object.insert("s3Location".into(), location);
    });
}

/// Calls `visit` on every object in `value`, depth first (the tree is an API body:
/// nested a few levels).
fn walk(value: &mut Value, visit: &impl Fn(&mut serde_json::Map<String, Value>)) {
    match value {
        Value::Object(object) => {
            visit(object);
            object.values_mut().for_each(|child| walk(child, visit));
        }
        Value::Array(items) => items.iter_mut().for_each(|child| walk(child, visit)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
