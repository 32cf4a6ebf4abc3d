//! A transition: the one record that moves a shard from one state to the next.
//! It is the `data` of a Raft entry. Everything the state machine needs is inside it,
//! including the time (`time_ms`): the state machine reads no clock.

use bytes::Bytes;

/// Identifies one run of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunKey {
    pub namespace: String,
    pub workflow_id: String,
    pub run_id: String,
}

/// Identifies a workflow (all its runs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkflowKey {
    pub namespace: String,
    pub workflow_id: String,
}

impl RunKey {
    pub fn workflow(&self) -> WorkflowKey {
        WorkflowKey { namespace: self.namespace.clone(), workflow_id: self.workflow_id.clone() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum QueueKind {
    Workflow = 1,
    Activity = 2,
}

impl QueueKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Workflow),
            2 => Some(Self::Activity),
            _ => None,
        }
    }
}

/// A task queue backlog.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    pub namespace: String,
    pub name: String,
    pub kind: QueueKind,
}

/// Deduplicates retried requests: a transition carrying a key already applied
/// (within the dedupe retention) changes nothing and returns the first outcome's
/// `result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDedupe {
    pub namespace: String,
    pub request_id: String,
    /// What the first application answered (chosen by the proposer, e.g. a run id).
    pub result: Bytes,
}

/// One change inside a transition. All ops of a transition apply, or none does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Creates a run and makes it the workflow's current run. Fails if the workflow
    /// already has an open run, or the run exists.
    CreateRun { run: RunKey, state: Bytes },
    /// Appends history events; `first_event_id` must equal the run's next event id
    /// (event ids are dense from 1). `events` must not be empty.
    AppendEvents { run: RunKey, first_event_id: u64, events: Vec<Bytes> },
    /// Replaces the run's mutable state (opaque to storage), fenced: it applies only
    /// if the run's state version is still `expected_version` (the version the
    /// proposer read when it built `state`), and bumps the version by one. A writer
    /// holding stale state therefore fails with
    /// [`super::OpError::StateVersionMismatch`] instead of overwriting newer state.
    SetState { run: RunKey, expected_version: u64, state: Bytes },
    /// A `SetState` from a version-1 transition (written before fencing): replaces
    /// the state without a version check and leaves the version unchanged, exactly
    /// as it applied when it was committed. It is only ever decoded, never built:
    /// new writes are fenced [`Op::SetState`]s.
    LegacySetState(LegacySetState),
    /// Closes the run at the transition's time; it is dropped after the retention.
    CloseRun { run: RunKey },
    /// Adds a task to a backlog; the state machine assigns its id.
    Enqueue { queue: QueueKey, run: RunKey, task: Bytes },
    /// Removes a task from a backlog.
    Ack { queue: QueueKey, task_id: u64 },
    /// Adds a timer firing at `due_ms`; the state machine assigns its id.
    AddTimer { run: RunKey, due_ms: i64, payload: Bytes },
    /// Removes a timer.
    RemoveTimer { timer_id: u64 },
    /// Deletes a closed run now (`DeleteWorkflowExecution`), as retention would:
    /// the run, its tasks, its timers, its history batches (their log records become
    /// reclaimable) and the current-run entry if it points at it. It must be the
    /// last op of its transition (nothing after it can fail, so it needs no undo).
    DeleteRun { run: RunKey },
}

/// The fields of an [`Op::LegacySetState`]. Only [`Transition::decode`] makes one
/// (from tag 3), so no new proposal can write state without the version check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacySetState {
    pub(super) run: RunKey,
    pub(super) state: Bytes,
}

impl LegacySetState {
    pub fn run(&self) -> &RunKey {
        &self.run
    }
    pub fn state(&self) -> &Bytes {
        &self.state
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Proposer's wall-clock time in ms since the Unix epoch: the only time the state
    /// machine knows. Drives retention.
    pub time_ms: i64,
    pub dedupe: Option<RequestDedupe>,
    pub ops: Vec<Op>,
}
