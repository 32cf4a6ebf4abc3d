//! Workflow retries and cron schedules: whether a closing run goes on as a new run
//! of the same workflow id, after what backoff, and that new run (Temporal's
//! `GetRetryBackoffDuration`, `GetCronBackoffDuration`, `ContinueAsNewMinBackoff` and
//! `SetupNewWorkflowForRetryOrCron`).
//!
//! A run that fails (FailWorkflowExecution) or whose run timeout fires is retried
//! when its retry policy allows; otherwise, and when it completes, its cron schedule
//! (if any) starts the next run at the next schedule time. Termination, cancellation
//! and the execution timeout end the chain. The closing run's event names the new run
//! (`new_execution_run_id`); both are committed in one transition.

use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::common::v1::Payloads;
use temporalio_protos::protos::temporal::api::enums::v1::{ContinueAsNewInitiator, RetryState};
use temporalio_protos::protos::temporal::api::failure::v1::Failure;
use temporalio_protos::protos::temporal::api::history::v1::WorkflowExecutionStartedEventAttributes;

use super::retry::{self, RetryDecision};
use super::run::{self, Continuation, RunSpec, Timeouts};
use super::state::ExecutionState;
use super::txn::RunTxn;
use super::{cron, Ctx, EngineConfig};

/// The attributes of a run's WorkflowExecutionStarted event, which its retry or cron
/// successor starts from.
pub type Started = WorkflowExecutionStartedEventAttributes;

/// How a closing run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextRun {
    /// `RETRY` or `CRON_SCHEDULE`.
    pub initiator: ContinueAsNewInitiator,
    /// The new run's first workflow task backoff.
    pub backoff_ms: i64,
}

/// Whether a closing run may go on (it has a retry policy or a cron schedule): only
/// then does its closer need the run's Started attributes.
pub fn may_continue(state: &ExecutionState) -> bool {
    state.retry_policy.is_some() || !state.cron_schedule.is_empty()
}

/// A run failing with `failure` (a run timeout fails with its timeout failure): its
/// retry policy first, then its cron schedule. The retry state is the close event's.
pub fn after_failure(
    state: &ExecutionState,
    failure: Option<&Failure>,
    now_ms: i64,
    config: &EngineConfig,
) -> (RetryState, Option<NextRun>) {
    let decision = retry::workflow_backoff(state.retry_policy.as_ref(), state.attempt, failure, now_ms, state.execution_expiration_ms);
    match decision {
        RetryDecision::Retry { delay_ms } => {
            let next = NextRun { initiator: ContinueAsNewInitiator::Retry, backoff_ms: min_backoff(state, delay_ms, now_ms, config) };
            (RetryState::InProgress, Some(next))
        }
        RetryDecision::Final(retry_state) => (retry_state, after_completion(state, now_ms, config)),
    }
}

/// A run completing (or failing past its retries): its cron schedule, if any.
pub fn after_completion(state: &ExecutionState, now_ms: i64, config: &EngineConfig) -> Option<NextRun> {
    let backoff_ms = cron::backoff_ms(&state.cron_schedule, state.execution_time_ms, now_ms)?;
    Some(NextRun { initiator: ContinueAsNewInitiator::CronSchedule, backoff_ms: min_backoff(state, backoff_ms, now_ms, config) })
}

/// Temporal's `ContinueAsNewMinBackoff`: runs of one workflow id start at least
/// `chain_min_interval_ms` apart (counted from this run's execution time). A run that
/// began before its execution time (a cancellation request during its backoff
/// scheduled its first task) keeps its backoff: Temporal's server was seen to.
fn min_backoff(state: &ExecutionState, backoff_ms: i64, now_ms: i64, config: &EngineConfig) -> i64 {
    let lifetime_ms = now_ms.saturating_sub(state.execution_time_ms);
    if lifetime_ms >= 0 && lifetime_ms.saturating_add(backoff_ms) < config.chain_min_interval_ms {
        config.chain_min_interval_ms - lifetime_ms
    } else {
        backoff_ms
    }
}

/// What the closing run hands its successor.
#[derive(Debug, Clone, Default)]
pub struct Handover {
    pub continued_failure: Option<Failure>,
    pub last_completion_result: Option<Payloads>,
}

/// The run `new_run_id` that continues `txn`'s run (closed by the caller, its close
/// event naming `new_run_id`), started from `started` (the closing run's Started
/// attributes; `None` only if they could not be read, then from its state alone).
pub fn start_next_run(
    txn: &RunTxn,
    new_run_id: String,
    started: Option<&Started>,
    next: NextRun,
    handover: Handover,
    ctx: &mut Ctx,
) -> RunTxn {
    let s = &txn.state;
    if started.is_none() {
        tracing::error!(run = ?txn.key, "continuing a run without its Started attributes: input, header and memo are lost");
    }
    let fallback = Started::default();
    let started = started.unwrap_or(&fallback);
    let attempt = if next.initiator == ContinueAsNewInitiator::Retry { s.attempt.max(1) + 1 } else { 1 };
    let spec = RunSpec {
        workflow_type: s.workflow_type.clone(),
        task_queue: s.task_queue.clone(),
        input: started.input.clone(),
        timeouts: Timeouts { execution_ms: s.execution_timeout_ms, run_ms: s.run_timeout_ms, task_ms: s.workflow_task_timeout_ms },
        identity: String::new(),
        request_id: ctx.ids.new_id(),
        retry_policy: s.retry_policy.clone(),
        memo: started.memo.clone(),
        search_attributes: started.search_attributes.clone(),
        header: started.header.clone(),
        start_delay_ms: next.backoff_ms,
        priority: started.priority.clone(),
        parent: s.parent.clone(),
        root: started.root_workflow_execution.clone(),
        continuation: Some(Continuation {
            first_execution_run_id: s.first_execution_run_id.clone(),
            continued_execution_run_id: txn.key.run_id.clone(),
            initiator: next.initiator as i32,
            execution_expiration_ms: s.execution_expiration_ms,
            continued_failure: handover.continued_failure,
            last_completion_result: handover.last_completion_result,
            echoed_run_timeout: Some(started.workflow_run_timeout),
        }),
        cron_schedule: s.cron_schedule.clone(),
        attempt,
        // Temporal: a retry or cron run does not inherit the start's user metadata.
        user_metadata: None,
    };
    let key = RunKey { run_id: new_run_id, ..txn.key.clone() };
    let mut new_txn = run::new_run(key, txn.now_ms, &spec);
    run::begin_run(&mut new_txn);
    new_txn
}

#[cfg(test)]
mod tests;
