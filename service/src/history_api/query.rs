//! Queries: `QueryWorkflow` end to end (ask, wait for a worker's answer, re-check
//! now and then, ask again once if the owner holding the query stops) and a
//! worker's answer to a legacy query task.
//!
//! A pending query lives only in its shard owner's memory. When that owner stops,
//! its pending queries are withdrawn (the caller's ticket resolves to nothing); the
//! query is then asked once more, on the next owner, within the caller's deadline.

use std::time::Duration;

use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::common::v1::Payloads;
use temporalio_protos::protos::temporal::api::enums::v1::WorkflowExecutionStatus;
use temporalio_protos::protos::temporal::api::query::v1::WorkflowQuery;
use temporalio_protos::protos::temporal::api::workflowservice::v1::RespondQueryTaskCompletedRequest;
use tokio::time::Instant;

use super::{Asked, HistoryApi, QueryTicket, ResolveRun};
use crate::core::token::TaskToken;
use crate::engine::query::{self, QueryOutcome};
use crate::error::{Result, ServiceError};

/// How often a waiting query re-checks whether it can go to a worker directly.
pub const QUERY_RECHECK: Duration = Duration::from_secs(1);

/// QueryWorkflow (empty `run_id`: the current run), answered by `deadline`.
#[derive(Debug, Clone)]
pub struct QueryWorkflow {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
    pub query: WorkflowQuery,
    /// `temporal.api.enums.v1.QueryRejectCondition`.
    pub reject_condition: i32,
    pub deadline: Instant,
}

/// How a query ended, short of an error.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryAnswer {
    /// Refused by the request's reject condition: the run's status.
    Rejected(WorkflowExecutionStatus),
    /// The worker's answer.
    Answered(Option<Payloads>),
}

/// Registers a query on `run` (sent to a worker at once when that is consistent).
#[derive(Debug, Clone)]
pub struct AskQuery {
    pub run: RunKey,
    pub query: WorkflowQuery,
    pub reject_condition: i32,
}

/// RespondQueryTaskCompleted: a worker's answer to the legacy query task `token` names.
#[derive(Debug, Clone)]
pub struct RespondQuery {
    pub token: TaskToken,
    pub request: RespondQueryTaskCompletedRequest,
}

impl HistoryApi<'_> {
    /// Asks, waits, and asks again once if the query is withdrawn (its owner
    /// stopped). A worker's failure is `QueryFailed`; no answer by the deadline is
    /// `DeadlineExceeded`; withdrawn twice is `Unavailable`.
    pub async fn query_workflow(&self, req: QueryWorkflow) -> Result<QueryAnswer> {
        let run = self.resolve_run(ResolveRun { namespace: req.namespace, workflow_id: req.workflow_id, run_id: req.run_id }).await?;
        let ask = AskQuery { run, query: req.query, reject_condition: req.reject_condition };
        let mut asked_again = false;
        loop {
            let asked = tokio::time::timeout_at(req.deadline, self.ask(&ask)).await.map_err(|_| deadline_exceeded())?;
            let ticket = match asked? {
                Asked::Rejected(status) => return Ok(QueryAnswer::Rejected(status)),
                Asked::Pending(ticket) => ticket,
            };
            match self.wait_for_answer(ticket, req.deadline).await? {
                Some(QueryOutcome::Answered(result)) => return Ok(QueryAnswer::Answered(result)),
                Some(QueryOutcome::Failed(message)) => return Err(ServiceError::QueryFailed(message)),
                None if !asked_again => {
                    tracing::debug!(run = ?ask.run, "a query was withdrawn by its stopping owner; asking again");
                    asked_again = true;
                }
                None => return Err(ServiceError::Unavailable("the query was withdrawn before it was answered; retry".into())),
            }
        }
    }

    pub async fn ask_query(&self, req: AskQuery) -> Result<Asked> {
        self.ask(&req).await
    }

    async fn ask(&self, r: &AskQuery) -> Result<Asked> {
        let engine = self.engine;
        self.retry(move || query::ask(engine, &r.run, r.query.clone(), r.reject_condition)).await
    }

    /// Re-evaluates a waiting query: dispatches it if the run closed or has no
    /// workflow task outstanding.
    pub async fn recheck_query(&self, ticket: &QueryTicket) -> Result<()> {
        let engine = self.engine;
        self.retry(move || query::recheck(engine, ticket)).await
    }

    pub async fn respond_query(&self, req: RespondQuery) -> Result<()> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || query::respond(engine, &r.token, r.request.clone())).await
    }

    /// The ticket's outcome; `None` when the query was withdrawn.
    async fn wait_for_answer(&self, mut ticket: QueryTicket, deadline: Instant) -> Result<Option<QueryOutcome>> {
        loop {
            tokio::select! {
                outcome = ticket.outcome() => return Ok(outcome),
                _ = tokio::time::sleep(QUERY_RECHECK) => {
                    // Bounded by the deadline: a re-check may wait for a new owner.
                    if let Ok(Err(e)) = tokio::time::timeout_at(deadline, self.recheck_query(&ticket)).await {
                        tracing::warn!(run = ?ticket.run(), error = %e, "re-checking a waiting query failed");
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Err(deadline_exceeded()),
            }
        }
    }
}

fn deadline_exceeded() -> ServiceError {
    ServiceError::DeadlineExceeded("query timed out before a worker answered it".into())
}
