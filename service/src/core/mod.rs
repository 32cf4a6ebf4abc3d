//! The pure workflow core: Temporal's rules as functions from a run's view and an
//! input to a [`txn::RunTxn`] (new events, the new mutable state, tasks and timers).
//!
//! **May touch:** protobuf types, `hourglass_storage::state` value types (keys, ops),
//! and [`crate::error`] for answers. **Never:** tokio, a `Node`, a shard owner, a lock,
//! the clock or a random source. Time arrives as `now_ms` (in [`Ctx`] and on every
//! `RunTxn`), new ids through [`IdSource`], and everything a rule reads about a run is
//! in its [`RunView`] (state, next event id, state version, stored timers) or passed
//! explicitly (the Started attributes continue-as-new needs). The engine
//! (`crate::engine`) is the runtime around it: route → lock → load view → decide →
//! commit → effects.
//!
//! - [`state`], [`verify`]: the run's mutable state and its invariants.
//! - [`txn`]: one transition of one run, built by the rules, committed by the engine.
//! - [`run`]: new runs (Started event, first workflow task, timeout timers), id
//!   reuse/conflict policies.
//! - [`lifecycle`]: closing runs (terminate, time out, continue-as-new).
//! - [`wft`], [`workflow_task`]: the workflow task lifecycle; [`commands`]: a completed
//!   task's commands become events.
//! - [`activity`]: activities and user timers; [`retry`]: retry policies.
//! - [`chain`]: workflow retries and cron schedules (a closing run's successor);
//!   [`cron`]: the cron grammar.
//! - [`children`]: child workflows on the parent's side.
//! - [`reset`]: ResetWorkflowExecution (a new run from a prefix of another's history).
//! - [`eager`]: eager workflow start and eager activity dispatch.

pub mod activity;
pub mod chain;
pub mod children;
pub mod commands;
pub mod cron;
pub mod eager;
pub mod error;
pub mod external;
#[cfg(test)]
mod golden;
pub mod lifecycle;
pub mod reset;
pub mod retry;
pub mod run;
pub mod schedule;
pub mod signals;
pub mod state;
pub mod sticky;
pub mod tasks;
pub mod token;
pub mod txn;
pub mod updates;
pub mod verify;
pub mod wft;
pub mod workflow_task;

use bytes::Bytes;
use hourglass_storage::state::RunKey;
use prost::Message;
use temporalio_protos::protos::temporal::api::enums::v1::WorkflowTaskFailedCause;

use state::ExecutionState;
use tasks::TimerPayload;

/// Limits and defaults the rules apply. Every limit is explicit.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Largest payload-bearing field accepted (input, result, details...), bytes.
    pub blob_bytes_max: usize,
    /// Default workflow task timeout when the start request sets none.
    pub default_workflow_task_timeout_ms: i64,
    /// Upper bound of a workflow task timeout.
    pub workflow_task_timeout_max_ms: i64,
    /// Shortest time between the starts of two runs of a retry or cron chain
    /// (Temporal's `WorkflowIdReuseMinimalInterval`).
    pub chain_min_interval_ms: i64,
    /// History length (events) from which WorkflowTaskStarted suggests continue-as-new
    /// (Temporal's `limit.historyCount.suggestContinueAsNew`).
    pub suggest_continue_as_new_history_events: i64,
    /// History size (bytes) from which WorkflowTaskStarted suggests continue-as-new
    /// (Temporal's `limit.historySize.suggestContinueAsNew`).
    pub suggest_continue_as_new_history_bytes: i64,
    /// Eager workflow start ([`eager`]; Temporal's `system.enableEagerWorkflowStart`).
    pub eager_workflow_start: bool,
    /// Eager activity dispatch ([`eager`]; `system.enableActivityEagerExecution`).
    pub eager_activity_dispatch: bool,
}

/// Temporal's default of `limit.historyCount.suggestContinueAsNew`.
pub const SUGGEST_CAN_HISTORY_EVENTS_DEFAULT: i64 = 4 * 1024;
/// Temporal's default of `limit.historySize.suggestContinueAsNew`.
pub const SUGGEST_CAN_HISTORY_BYTES_DEFAULT: i64 = 4 * 1024 * 1024;

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            blob_bytes_max: 2 << 20,
            default_workflow_task_timeout_ms: 10_000,
            workflow_task_timeout_max_ms: 120_000,
            chain_min_interval_ms: 1_000,
            suggest_continue_as_new_history_events: SUGGEST_CAN_HISTORY_EVENTS_DEFAULT,
            suggest_continue_as_new_history_bytes: SUGGEST_CAN_HISTORY_BYTES_DEFAULT,
            eager_workflow_start: true,
            eager_activity_dispatch: true,
        }
    }
}

/// Why a command in a workflow task completion is refused: the workflow task fails
/// with `cause` (`temporal.api.enums.v1.WorkflowTaskFailedCause`) and nothing of that
/// completion is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFailure {
    pub cause: i32,
    pub message: String,
}

/// Go's name of a workflow task failed cause (`UnhandledCommand`), or its number.
pub fn cause_name(cause: i32) -> String {
    match WorkflowTaskFailedCause::try_from(cause) {
        Ok(c) => format!("{c:?}"),
        Err(_) => cause.to_string(),
    }
}

/// What a failed workflow task reports, in the WorkflowTaskFailed event and the RPC
/// answer: `Cause` or `Cause: message` (Go's `workflowTaskFailedCause.Message()`).
pub fn failed_cause_message(cause: i32, message: &str) -> String {
    if message.is_empty() {
        cause_name(cause)
    } else {
        format!("{}: {message}", cause_name(cause))
    }
}

/// Where new ids come from (run ids, request ids of runs the server starts itself).
/// The engine draws random UUIDs; tests and golden runs count.
pub trait IdSource {
    fn new_id(&mut self) -> String;
}

/// Ids `prefix-1`, `prefix-2`, ... (deterministic, for tests and golden runs).
#[derive(Debug, Clone)]
pub struct SequentialIds {
    prefix: String,
    next: u64,
}

impl SequentialIds {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_string(), next: 1 }
    }
}

impl IdSource for SequentialIds {
    fn new_id(&mut self) -> String {
        let id = format!("{}-{}", self.prefix, self.next);
        self.next += 1;
        id
    }
}

/// What a decision may use besides the run: the time, the limits, a source of ids.
pub struct Ctx<'a> {
    pub now_ms: i64,
    pub config: &'a EngineConfig,
    pub ids: &'a mut dyn IdSource,
}

/// One run as the rules see it: everything they read, loaded by the caller.
#[derive(Debug, Clone)]
pub struct RunView {
    pub key: RunKey,
    pub state: ExecutionState,
    pub next_event_id: i64,
    /// The run's state version: a transition built from this view is applied only if
    /// the run is still at this version (fencing at apply).
    pub state_version: u64,
    /// The run's durable timers: (storage timer id, encoded [`TimerPayload`]).
    pub stored_timers: Vec<(u64, Bytes)>,
}

impl RunView {
    /// Whether the durable timer `timer_id` is still stored for this run.
    pub fn has_timer(&self, timer_id: u64) -> bool {
        self.stored_timers.iter().any(|(id, _)| *id == timer_id)
    }
}

/// Decodes stored timers, skipping (and logging) any that do not decode.
pub(crate) fn decode_timers(stored: &[(u64, Bytes)]) -> impl Iterator<Item = (u64, TimerPayload)> + '_ {
    stored.iter().filter_map(|(id, raw)| match TimerPayload::decode(raw.as_ref()) {
        Ok(payload) => Some((*id, payload)),
        Err(e) => {
            tracing::error!(timer_id = id, error = %e, "a stored timer payload does not decode");
            None
        }
    })
}
