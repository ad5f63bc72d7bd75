//! Which node answers an operation, and getting it there.
//!
//! ```text
//!  operation ─┬─ write, leader read, or read with ?consistent=true ──▶ the leader
//!             └─ read ──▶ this node when it is a voter that follows a known leader,
//!                         else the leader (agents hold no state)
//! ```
//!
//! Between nodes an operation travels typed (`Request::Operation`) once the cluster runs
//! at feature level 3. Below it (an upgrade in progress: the leader may run a release
//! that does not know typed operations) the HTTP request is relayed to the leader as it
//! came, and its answer back as it went (`legacy.rs`).
//!
//! How stale a read can be: a voter answers from what it has applied, which trails the
//! leader's commits by the replication in flight (milliseconds on a healthy network). A
//! voter cut off from the leader keeps answering from its last applied state until its
//! election timeout fires and it stops following that leader; from then on it forwards.
//! A leader cut off from its voters answers from its own state until it steps down
//! (about an election timeout), while a new leader may already commit writes it does
//! not see. `?consistent=true` (CLI `--consistent`) closes both windows: the read goes to
//! the leader, which first confirms with a quorum that it still leads and has applied
//! everything committed (a Raft read index), or refuses with 503.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_model::{Access, Operation, Output};
use fleetmesh_state::model::members::Actor;
use fleetmesh_state::FeatureLevel;
use fleetmesh_transport::{Caller, TransportError};

use super::error::{LEADERSHIP_UNCONFIRMED, LEADER_UNREACHABLE, NO_LEADER};
use super::{cluster, deploy, traffic, Api, ApiError};
use crate::runtime::protocol::{OperationRequest, Request as NodeRequest, Response as NodeResponse, RpcError};

/// Clients' operations by where they were answered.
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// Answered by this node.
    pub(super) here: AtomicU64,
    /// Forwarded, typed, to the leader.
    pub(super) forwarded: AtomicU64,
    /// Relayed as HTTP to a leader of an older release.
    pub(super) relayed: AtomicU64,
}

/// How long a forwarded operation may take (a write waits for its commit).
pub(super) const FORWARD_TIMEOUT: Duration = Duration::from_secs(120);

impl Api {
    /// True when this node answers `operation` itself.
    pub(super) fn answers(&self, operation: &Operation, consistent: bool) -> bool {
        match operation.access() {
            Access::Read if !consistent => self.node.is_leader() || self.node.answers_reads(),
            Access::Read | Access::LeaderRead | Access::Write => self.node.is_leader(),
        }
    }

    /// Runs `operation` on this node (see [`Api::answers`]).
    ///
    /// # Errors
    /// The operation's error answer, or 503 when a consistent read cannot confirm this
    /// node still leads.
    ///
    /// A write is made for `by` (recorded on what it creates or changes) and logged
    /// with its caller and outcome under the `fleetmesh::audit` target.
    pub(super) async fn answer_here(
        &self,
        operation: Operation,
        consistent: bool,
        by: Option<&Actor>,
    ) -> Result<Output, ApiError> {
        if operation.access() != Access::Write {
            return self.answer_here_as(operation, consistent, by).await;
        }
        let name = operation.name();
        let answer = self.answer_here_as(operation, consistent, by).await;
        let caller = by.map_or_else(|| "unknown".to_string(), ToString::to_string);
        match &answer {
            Ok(_) => {
                tracing::info!(target: "fleetmesh::audit", operation = name, by = %caller, "audit: write accepted")
            }
            Err(error) => {
                tracing::info!(target: "fleetmesh::audit", operation = name, by = %caller, status = error.status.as_u16(), "audit: write refused")
            }
        }
        answer
    }

    async fn answer_here_as(
        &self,
        operation: Operation,
        consistent: bool,
        by: Option<&Actor>,
    ) -> Result<Output, ApiError> {
        if consistent && operation.access() == Access::Read {
            self.node
                .raft()
                .ensure_linearizable()
                .await
                .map_err(|error| ApiError::unavailable(format!("{LEADERSHIP_UNCONFIRMED}: {error}")))?;
        }
        match operation {
            Operation::GetCluster(_) => cluster::get_cluster(self).await.map(Output::GetCluster),
            Operation::CreateJoinToken(input) => {
                cluster::create_join_token(self, input, by).await.map(Output::CreateJoinToken)
            }
            Operation::ListJoinTokens(_) => cluster::list_join_tokens(self).map(Output::ListJoinTokens),
            Operation::DeleteJoinToken(input) => {
                cluster::delete_join_token(self, input, by).await.map(Output::DeleteJoinToken)
            }
            Operation::RotateApiToken(input) => {
                cluster::rotate_api_token(self, input, by).await.map(Output::RotateApiToken)
            }
            Operation::RemoveNode(input) => cluster::remove_node(self, input).await.map(Output::RemoveNode),
            Operation::SetDeploymentRetention(input) => {
                cluster::set_deployment_retention(self, input, by).await.map(Output::SetDeploymentRetention)
            }
            Operation::CreateRoute(input) => traffic::create_route(self, input, by).await.map(Output::CreateRoute),
            Operation::GetRoute(input) => traffic::get_route(self, &input.route_name).map(Output::GetRoute),
            Operation::ListRoutes(_) => Ok(Output::ListRoutes(traffic::list_routes(self))),
            Operation::DeleteRoute(input) => traffic::delete_route(self, input, by).await.map(Output::DeleteRoute),
            Operation::SetRouteTargets(input) => {
                traffic::set_route_targets(self, input, by).await.map(Output::SetRouteTargets)
            }
            Operation::CreateAccessKey(_) => super::aws::create_access_key(self, by).await.map(Output::CreateAccessKey),
            Operation::DeleteAccessKey(input) => {
                super::aws::delete_access_key(self, input, by).await.map(Output::DeleteAccessKey)
            }
            other => deploy::handle(self, other, by).await,
        }
    }

    /// Sends `operation` to the leader as a typed request and returns its answer
    /// (feature level 3 and above).
    ///
    /// # Errors
    /// The operation's error answer, or 503 when no leader can be reached.
    pub(super) async fn forward(
        &self,
        operation: Operation,
        consistent: bool,
        token: &str,
    ) -> Result<Output, ApiError> {
        self.forward_as(operation, consistent, token, None).await
    }

    /// [`Api::forward`] for a client that signed its request (the AWS protocol).
    ///
    /// # Errors
    /// The operation's error answer, or 503 when no leader can be reached.
    pub(super) async fn forward_as(
        &self,
        operation: Operation,
        consistent: bool,
        token: &str,
        signed: Option<Box<fleetmesh_model::sigv4::SignedRequest>>,
    ) -> Result<Output, ApiError> {
        let request = OperationRequest { operation, consistent, token: token.to_string(), signed };
        let make = || NodeRequest::Operation(request.clone());
        let answer = call_leader(&self.node, make, |response| match response {
            NodeResponse::Operation(answer) => Ok(answer),
            other => Err(Box::new(other)),
        })
        .await?;
        (*answer).map_err(ApiError::from)
    }

    /// Answers an operation another node forwarded: the client's token is checked again,
    /// and a node that cannot answer says where the leader is.
    pub(super) async fn answer_forwarded(&self, caller: Caller, request: OperationRequest) -> NodeResponse {
        if !matches!(caller, Caller::Node(_)) {
            return NodeResponse::Operation(Box::new(Err(
                ApiError::unavailable("only members forward operations").into()
            )));
        }
        let by = match &request.signed {
            Some(signed) => match super::aws::check_forwarded(self, signed, &request.operation) {
                Ok(actor) => Some(actor),
                Err(refused) => return NodeResponse::Operation(Box::new(Err(refused.into()))),
            },
            None => {
                let kind = self.node.token_kind(&request.token);
                if let Err(refused) = super::may_call(kind, request.operation.access() != Access::Write) {
                    return NodeResponse::Operation(Box::new(Err(refused.into())));
                }
                self.node.actor(&request.token)
            }
        };
        // A member of an older release may not have checked the bounds.
        if let Err(refused) = request.operation.check() {
            return NodeResponse::Operation(Box::new(Err(refused)));
        }
        if !self.answers(&request.operation, request.consistent) {
            return crate::runtime::dispatch::not_leader(&self.node).0;
        }
        NodeResponse::Operation(Box::new(
            self.answer_here(request.operation, request.consistent, by.as_ref()).await.map_err(Into::into),
        ))
    }
}

/// Refuses an operation the cluster's feature level does not allow yet (the leader may
/// run a release that does not know it), and, below the join-token level, gives a
/// `CreateJoinToken` the meaning every release agrees on: an older leader reads no
/// `ttlSeconds` as "never expires" and 0 as "expires at once", so the default lifetime
/// is written out and 0 is refused.
///
/// # Errors
/// 409 naming the level needed and the cluster's; 400 for a value out of bounds.
pub(super) fn for_cluster_level(api: &Api, operation: Operation) -> Result<Operation, ApiError> {
    let cluster = api.node.cluster_feature_level();
    let needed = operation.feature_level();
    let too_low = |what: &str| {
        ApiError::new(
            axum::http::StatusCode::CONFLICT,
            format!(
                "{what} needs cluster feature level {needed}, and the cluster runs at level {cluster}: upgrade \
                 every voter to this release first (the leader raises the level once they all run it)"
            ),
        )
    };
    if needed > cluster {
        return Err(too_low(operation.name()));
    }
    match operation {
        Operation::CreateJoinToken(mut input) if cluster < FeatureLevel::JOIN_TOKEN_LIFECYCLE => {
            input.check()?;
            match input.lifetime_seconds() {
                Some(ttl) => input.ttl_seconds = Some(ttl),
                None => {
                    let needed = FeatureLevel::JOIN_TOKEN_LIFECYCLE;
                    return Err(ApiError::new(
                        axum::http::StatusCode::CONFLICT,
                        format!(
                            "ttlSeconds: 0 (never expires) needs cluster feature level {needed}, and the cluster \
                             runs at level {cluster}: upgrade every voter to this release first"
                        ),
                    ));
                }
            }
            Ok(Operation::CreateJoinToken(input))
        }
        other => Ok(other),
    }
}

/// Answers `operation` for a client that presented `token`: here when this node can,
/// else typed on the leader, through changes of leader (see [`through_leader_changes`]).
/// `None` when the cluster is below feature level 3 and the operation must go to the
/// leader: the caller relays its HTTP request instead.
pub(super) async fn answer(
    api: &Arc<Api>,
    operation: Operation,
    consistent: bool,
    token: &str,
) -> Option<Result<Output, ApiError>> {
    if !api.answers(&operation, consistent) && api.node.cluster_feature_level() < FeatureLevel::TYPED_OPERATIONS {
        api.counts.relayed.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    // Boxed: the operation futures are deep, and nesting them in the retry loop's
    // closure passes the compiler's layout depth limit.
    Some(through_leader_changes(|| Box::pin(answer_typed(api, operation.clone(), consistent, token))).await)
}

/// One try of [`answer`] at feature level 3 and above.
async fn answer_typed(api: &Arc<Api>, operation: Operation, consistent: bool, token: &str) -> Result<Output, ApiError> {
    if api.answers(&operation, consistent) {
        api.counts.here.fetch_add(1, Ordering::Relaxed);
        let by = api.node.actor(token);
        return api.answer_here(operation, consistent, by.as_ref()).await;
    }
    api.counts.forwarded.fetch_add(1, Ordering::Relaxed);
    api.forward(operation, consistent, token).await
}

/// How long a client's operation waits out an election before its 503 goes back: a
/// few election rounds on a loaded machine (timeouts are 200-400 ms).
const LEADER_CHANGE_WAIT: Duration = Duration::from_secs(5);

/// The pause between tries while leadership moves.
const LEADER_CHANGE_PAUSE: Duration = Duration::from_millis(100);

/// Runs `attempt` again while its answer says only that leadership was moving and
/// nothing was applied ([`ApiError::is_leader_change`]), for up to
/// [`LEADER_CHANGE_WAIT`]. A client then sees an election as a slower answer, not a
/// 503 it has to retry itself. Answers that may have been applied (a leader that could
/// not be reached mid-request, a commit that timed out) are never tried again.
pub(super) async fn through_leader_changes<T, F, Fut>(mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let deadline = tokio::time::Instant::now() + LEADER_CHANGE_WAIT;
    loop {
        match attempt().await {
            Err(error) if error.is_leader_change() && tokio::time::Instant::now() < deadline => {
                tracing::debug!(%error.message, "leadership is moving; trying the operation again");
                tokio::time::sleep(LEADER_CHANGE_PAUSE).await;
            }
            answer => return answer,
        }
    }
}

/// Sends the request `make` builds to the leader and gives its answer to `accept`, following one "not the
/// leader" hint. `accept` hands back an answer of another kind, which is an error.
///
/// # Errors
/// 503 when no leader is known or reachable, or it answered something unexpected.
pub(super) async fn call_leader<T>(
    node: &crate::runtime::Node,
    make: impl Fn() -> NodeRequest,
    accept: impl Fn(NodeResponse) -> Result<T, Box<NodeResponse>>,
) -> Result<T, ApiError> {
    // Bounded: one retry after a NotLeader hint.
    let mut hint = node.leader_hint().filter(|hint| hint.id != node.id());
    for _ in 0..2 {
        let Some(leader) = hint else { break };
        match node.call(leader.peer(), make(), FORWARD_TIMEOUT).await {
            Ok((NodeResponse::NotLeader { leader }, _)) => hint = leader.filter(|next| next.id != node.id()),
            Ok((response, _)) => {
                return accept(response)
                    .map_err(|other| ApiError::unavailable(format!("the leader answered {other:?}")))
            }
            // No connection could be made: nothing was sent, so the operation may go again.
            Err(RpcError::Transport(error @ TransportError::Unreachable { .. })) => {
                return Err(ApiError::unavailable(format!("{LEADER_UNREACHABLE} (node {}): {error}", leader.id)))
            }
            Err(error) => {
                return Err(ApiError::unavailable(format!("cannot reach the leader (node {}): {error}", leader.id)))
            }
        }
    }
    Err(ApiError::unavailable(NO_LEADER))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::api::error::LEADERSHIP_CHANGED;

    #[tokio::test(start_paused = true)]
    async fn an_election_is_waited_out_and_anything_else_answers_at_once() {
        let tries = Cell::new(0);
        let answer = through_leader_changes(|| {
            tries.set(tries.get() + 1);
            let now = tries.get();
            async move {
                match now {
                    1 => Err(ApiError::unavailable(LEADERSHIP_CHANGED)),
                    2 => Err(ApiError::unavailable(NO_LEADER)),
                    _ => Ok(now),
                }
            }
        })
        .await;
        assert_eq!((answer.ok(), tries.get()), (Some(3), 3));

        // A 503 that may have been applied (a commit that timed out) goes back as it is.
        tries.set(0);
        let answer: Result<(), ApiError> = through_leader_changes(|| {
            tries.set(tries.get() + 1);
            async { Err(ApiError::unavailable("no quorum: the write was not committed within 10s")) }
        })
        .await;
        assert_eq!((answer.map_err(|error| error.status.as_u16()), tries.get()), (Err(503), 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_leaderless_cluster_answers_503_after_the_wait() {
        let started = tokio::time::Instant::now();
        let answer: Result<(), ApiError> =
            through_leader_changes(|| async { Err(ApiError::unavailable(NO_LEADER)) }).await;
        let waited = started.elapsed();
        assert!(answer.is_err_and(|error| error.is_leader_change()));
        assert!(waited >= LEADER_CHANGE_WAIT && waited < LEADER_CHANGE_WAIT + 2 * LEADER_CHANGE_PAUSE, "{waited:?}");
    }
}
