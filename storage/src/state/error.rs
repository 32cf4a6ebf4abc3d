//! Outcomes of applying a transition.

use bytes::Bytes;

/// What a successful [`super::ShardState::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Every op applied. Ids assigned by `Enqueue` and `AddTimer` ops, in op order.
    Done { task_ids: Vec<u64>, timer_ids: Vec<u64> },
    /// The dedupe key was applied before (within the retention): nothing changed,
    /// and `result` is what the first application carried.
    Duplicate { result: Bytes },
}

/// Why a transition was not applied. Apart from [`ApplyError::IndexNotIncreasing`]
/// (a caller bug), every error is a deterministic rejection: every replica rejects
/// the same transition the same way, and nothing but the applied index changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("raft index {index} is not after the applied index {applied_index}")]
    IndexNotIncreasing { index: u64, applied_index: u64 },
    /// Op number `op` (0-based) of the transition failed; no op was applied.
    #[error("op {op} rejected: {reason}")]
    Rejected { op: usize, reason: OpError },
}

impl ApplyError {
    /// The op failure, if this is a rejection.
    pub fn op_error(&self) -> Option<&OpError> {
        match self {
            Self::Rejected { reason, .. } => Some(reason),
            Self::IndexNotIncreasing { .. } => None,
        }
    }
}

/// Why one op could not apply to the state as left by the ops before it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The workflow's current run is open (`run_id` names it).
    #[error("workflow already has open run {run_id}")]
    RunAlreadyOpen { run_id: String },
    #[error("run already exists")]
    RunExists,
    #[error("run not found")]
    RunNotFound,
    #[error("run is closed")]
    RunClosed,
    /// `DeleteRun` of a run that is still open.
    #[error("run is open")]
    RunOpen,
    /// `DeleteRun` followed by another op in its transition.
    #[error("DeleteRun must be the last op of its transition")]
    DeleteNotLast,
    #[error("append of no events")]
    EmptyAppend,
    #[error("first event id {got} is not the next event id {expected}")]
    EventIdMismatch { expected: u64, got: u64 },
    #[error("history would exceed {max} events")]
    HistoryTooLong { max: u64 },
    #[error("backlog is full ({max} tasks)")]
    BacklogFull { max: usize },
    #[error("task {task_id} not found in the queue")]
    TaskNotFound { task_id: u64 },
    #[error("run has the maximum of {max} timers")]
    TooManyTimers { max: usize },
    #[error("timer {timer_id} not found")]
    TimerNotFound { timer_id: u64 },
    /// A `SetState` built from state version `expected`, but the run is at
    /// `actual`: another write committed since the proposer read the run (a stale
    /// writer is fenced off).
    #[error("state version mismatch: built from version {expected}, the run is at version {actual}")]
    StateVersionMismatch { expected: u64, actual: u64 },
    /// The shard-wide task or timer id counter, or a run's state version, reached
    /// `u64::MAX`.
    #[error("id space exhausted")]
    IdsExhausted,
}

/// The state breaks one of its invariants: a bug, or a snapshot that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard state invariant violated: {0}")]
pub struct InvariantError(pub String);
