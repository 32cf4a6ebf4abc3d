//! What the engine stores in the shard state machine's generic backlogs and timers.
//! Both are hints validated against the run's mutable state when they come due: a task
//! or timer whose work is gone (activity completed, timer cancelled, run closed) is
//! simply dropped. That keeps every transition one record, with no index to update on
//! cancellation.

/// Payload of a backlog task (`Op::Enqueue`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskPayload {
    /// [`TaskKind`].
    #[prost(int32, tag = "1")]
    pub kind: i32,
    /// Workflow task or activity scheduled event id.
    #[prost(int64, tag = "2")]
    pub scheduled_event_id: i64,
    /// Attempt the task was enqueued for.
    #[prost(int32, tag = "3")]
    pub attempt: i32,
    /// Set on a workflow task enqueued on a sticky queue: the run's normal queue,
    /// where matching sends the task when the sticky worker is gone.
    #[prost(string, tag = "4")]
    pub normal_queue: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum TaskKind {
    Unspecified = 0,
    WorkflowTask = 1,
    ActivityTask = 2,
}

/// Payload of a durable timer (`Op::AddTimer`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimerPayload {
    /// [`TimerKind`].
    #[prost(int32, tag = "1")]
    pub kind: i32,
    /// Workflow task / activity scheduled event id, or the TimerStarted event id.
    #[prost(int64, tag = "2")]
    pub event_id: i64,
    /// Attempt the timer belongs to (workflow task or activity).
    #[prost(int32, tag = "3")]
    pub attempt: i32,
    /// The user timer id (`StartTimer.timer_id`).
    #[prost(string, tag = "4")]
    pub timer_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum TimerKind {
    Unspecified = 0,
    UserTimer = 1,
    WorkflowTaskStartToClose = 2,
    ActivityScheduleToStart = 3,
    ActivityScheduleToClose = 4,
    ActivityStartToClose = 5,
    ActivityHeartbeat = 6,
    /// Retry backoff over: enqueue the next attempt.
    ActivityRetry = 7,
    WorkflowRunTimeout = 8,
    WorkflowExecutionTimeout = 9,
    /// Start delay / retry or cron backoff over: schedule the first workflow task.
    WorkflowStartBackoff = 10,
    /// Durable outbox: start the child initiated at `event_id` (due immediately).
    StartChild = 11,
    /// Durable outbox: tell the parent this (closed) run's outcome (due immediately).
    NotifyParent = 12,
    /// Durable outbox: deliver the signal initiated at `event_id` (due immediately).
    SignalExternal = 40,
    /// Durable outbox: deliver the cancellation request initiated at `event_id`.
    CancelExternal = 41,
    /// A schedule's next wake-up (`event_id`: the record's timer generation).
    ScheduleWake = 60,
    /// A workflow task scheduled on a sticky queue was not started in time: back to
    /// the normal queue (`event_id`: its scheduled event, `attempt`: its attempt).
    WorkflowTaskScheduleToStart = 70,
}
