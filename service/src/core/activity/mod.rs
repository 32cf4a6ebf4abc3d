//! Activities and user timers: the rules.
//!
//! - [`commands`]: the workflow-task commands `ScheduleActivityTask`,
//!   `RequestCancelActivityTask`, `StartTimer`, `CancelTimer` (applied by the
//!   workflow-task completion, inside its transaction).
//! - [`transitions`]: an attempt starts, is retried, the activity closes.
//! - [`outcome`]: what a worker reports (completed, failed, canceled, heartbeat).
//! - [`timeouts`]: durable timers firing (activity timeouts, retry backoff, user timers).
//! - [`cleanup`]: the stored timers a transition makes obsolete.
//!
//! **Model** (Temporal's, `go/service/history/workflow/retry.go`). An activity is an
//! [`ActivityInfo`](super::state::ActivityInfo) in the run's state from
//! ActivityTaskScheduled until its outcome event. Each attempt is enqueued on the
//! activity's task queue; the transition that hands it to a poller records it as
//! started and arms its start-to-close and heartbeat timers, without a history event.
//! A failed or timed-out attempt is retried per the retry policy (attempt + 1,
//! `last_failure` kept, again no event). Only the final outcome writes history:
//! ActivityTaskStarted (the last attempt, with `last_failure`, at its start time) and
//! then Completed / Failed / TimedOut / Canceled, followed by a workflow task.
//!
//! **Invariants.**
//! - Backlog tasks and durable timers are hints: each names `(scheduled_event_id,
//!   attempt)` and is checked against the state when it comes due; one that no
//!   longer matches is dropped. A transition that starts or ends an attempt also
//!   drops the run's timers it makes obsolete ([`cleanup`]).
//! - A timer's effect and its removal from storage are one transition.
//! - `started_time_ms > 0` exactly while the current attempt is running on a worker.

pub mod cleanup;
pub mod commands;
pub mod normalize;
pub mod outcome;
pub mod timeouts;
pub mod transitions;

pub use commands::{activity_canceled_before_start, cancel_timer, request_cancel_activity, schedule_activity, start_timer};

use hourglass_storage::state::RunKey;

/// How an activity RPC names its activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivitySelector {
    /// A task token: the named attempt must be the current one, and started.
    Attempt { scheduled_event_id: i64, attempt: i32 },
    /// The `…ById` RPCs: the pending activity with this id, whatever its attempt.
    ActivityId(String),
}

/// The activity an RPC is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityTarget {
    pub run: RunKey,
    pub selector: ActivitySelector,
}
