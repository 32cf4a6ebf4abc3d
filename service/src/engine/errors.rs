//! The engine's errors outside the core's areas: history pages, queries, stored data
//! that is not what the rules wrote, and misuse of its own calls. Their
//! `Display` is the message clients see; `crate::error` maps them to gRPC statuses.

use hourglass_storage::state::RunKey;

/// GetWorkflowExecutionHistory(Reverse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("Invalid NextPageToken.")]
    InvalidPageToken,
    #[error("next_page_token belongs to another run")]
    PageTokenOfAnotherRun,
}

/// QueryWorkflow and RespondQueryTaskCompleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("Workflow task is not scheduled yet.")]
    NoWorkflowTaskYet,
    #[error("Unable to query workflow due to Workflow Task in failed state.")]
    WorkflowTaskFailing,
    #[error("too many queries ({max}) are already pending on this workflow execution")]
    TooManyPending { max: usize },
    #[error("query task not found, or already expired")]
    TaskNotFound,
    #[error("query task not found: it was answered already or its caller stopped waiting")]
    AlreadyAnswered,
    #[error("completed_type must be ANSWERED or FAILED")]
    BadCompletedType,
}

/// UpdateWorkflowExecution and PollWorkflowExecutionUpdate (Go's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("update {0:?} not found")]
    NotFound(String),
    #[error("limit on number of concurrent in-flight updates has been reached ({max})")]
    TooManyInFlight { max: usize },
    #[error("limit on number of total updates has been reached ({max})")]
    TooManyTotal { max: usize },
    #[error("UpdateWorkflowExecution issued asynchronously and waiting on update admitted is not supported.")]
    WaitForAdmitted,
    /// The wait for the stage asked for outlasted the caller's deadline.
    #[error("context deadline exceeded")]
    DeadlineExceeded,
    /// The owner holding the admitted update stopped, more often than it is retried.
    #[error("the update was admitted by a shard owner that stopped; retry")]
    OwnerStopped,
}

/// Stored data that is not what the rules wrote: corruption, or a bug. Answered
/// `Internal`; the run is left as it is.
#[derive(Debug, thiserror::Error)]
pub enum StoredDataError {
    #[error("event {event_id} of {run:?} is missing")]
    MissingEvent { run: RunKey, event_id: i64 },
    #[error("event {event_id} of {run:?} does not decode: {source}")]
    UndecodableEvent { run: RunKey, event_id: u64, source: prost::DecodeError },
    #[error("event {event_id} of {run:?} is not {expected}")]
    UnexpectedEvent { run: RunKey, event_id: i64, expected: &'static str },
    #[error("history of {run:?} is not dense: event {found} where {expected} was expected")]
    HistoryNotDense { run: RunKey, found: u64, expected: u64 },
    #[error("history of {run:?} has {found} events, {expected} expected")]
    HistoryTooShort { run: RunKey, found: usize, expected: usize },
    #[error("mutable state of {run:?} does not decode: {source}")]
    UndecodableState { run: RunKey, source: prost::DecodeError },
    #[error("{what} of {run:?} vanished from its state")]
    Vanished { run: RunKey, what: &'static str },
    #[error("{parent:?} has no ChildWorkflowExecutionStarted for initiated event {initiated_event_id}")]
    ChildStartedMissing { parent: RunKey, initiated_event_id: i64 },
    #[error("the dedupe record of {0} does not decode")]
    UndecodableDedupe(&'static str),
}

/// A call the engine's own code made wrongly (a bug): answered `Internal`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MisuseError {
    #[error("timer kind {0} is not a run timer")]
    NotARunTimer(i32),
    #[error("no shard {0}")]
    NoSuchShard(u32),
    #[error("commit of no transactions")]
    EmptyCommit,
    #[error("one transition for runs of two workflows: {0:?} and {1:?}")]
    TwoWorkflowsInOneCommit(RunKey, RunKey),
}
