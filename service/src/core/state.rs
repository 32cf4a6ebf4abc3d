//! The mutable state of one workflow run, as the history engine keeps it. It is the
//! opaque `state` bytes of the run in the shard state machine (prost-encoded), written
//! in the same transition as the events it reflects. Times are ms since the Unix epoch;
//! durations are ms; 0 means "not set" unless said otherwise.

use temporalio_protos::protos::temporal::api::common::v1::{Header, Memo, Payloads, RetryPolicy, SearchAttributes};
use temporalio_protos::protos::temporal::api::failure::v1::Failure;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecutionState {
    #[prost(string, tag = "1")]
    pub workflow_type: String,
    #[prost(string, tag = "2")]
    pub task_queue: String,
    /// `temporal.api.enums.v1.WorkflowExecutionStatus`.
    #[prost(int32, tag = "3")]
    pub status: i32,
    #[prost(int64, tag = "4")]
    pub start_time_ms: i64,
    #[prost(int64, tag = "5")]
    pub close_time_ms: i64,
    /// When the first workflow task may run (start + start delay / backoff).
    #[prost(int64, tag = "6")]
    pub execution_time_ms: i64,
    #[prost(int64, tag = "7")]
    pub workflow_task_timeout_ms: i64,
    #[prost(int64, tag = "8")]
    pub run_timeout_ms: i64,
    #[prost(int64, tag = "9")]
    pub execution_timeout_ms: i64,
    /// Absolute deadline of the whole chain of runs (0 = none).
    #[prost(int64, tag = "10")]
    pub execution_expiration_ms: i64,
    #[prost(string, tag = "11")]
    pub first_execution_run_id: String,
    #[prost(message, optional, tag = "12")]
    pub retry_policy: Option<RetryPolicy>,
    #[prost(int32, tag = "13")]
    pub attempt: i32,
    #[prost(message, optional, tag = "14")]
    pub memo: Option<Memo>,
    #[prost(message, optional, tag = "15")]
    pub search_attributes: Option<SearchAttributes>,
    #[prost(message, optional, tag = "16")]
    pub parent: Option<ParentInfo>,
    /// The start request's id (for dedupe answers and `AlreadyExists` details).
    #[prost(string, tag = "17")]
    pub start_request_id: String,
    /// Started event id of the last *completed* workflow task (`previous_started_event_id`).
    #[prost(int64, tag = "18")]
    pub last_completed_wft_started_id: i64,
    /// The outstanding workflow task (scheduled or started), at most one.
    #[prost(message, optional, tag = "19")]
    pub workflow_task: Option<WorkflowTaskInfo>,
    /// Encoded `HistoryEvent`s that arrived while a workflow task was started; written
    /// to history after that task ends (the buffering rule). Their ids are assigned then.
    #[prost(bytes = "vec", repeated, tag = "20")]
    pub buffered_events: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "21")]
    pub activities: Vec<ActivityInfo>,
    #[prost(message, repeated, tag = "22")]
    pub timers: Vec<TimerInfo>,
    #[prost(message, repeated, tag = "23")]
    pub children: Vec<ChildInfo>,
    #[prost(bool, tag = "24")]
    pub cancel_requested: bool,
    #[prost(int64, tag = "25")]
    pub history_size_bytes: i64,
    /// Run that continues this one (continue-as-new, retry, cron), once closed.
    #[prost(string, tag = "26")]
    pub new_execution_run_id: String,
    /// Consecutive failed/timed-out workflow task attempts (1 when none failed).
    #[prost(int32, tag = "27")]
    pub workflow_task_attempt: i32,
    #[prost(message, optional, tag = "28")]
    pub header: Option<Header>,
    /// Event id of the close event, once closed.
    #[prost(int64, tag = "29")]
    pub close_event_id: i64,
    /// Time the current run started its first workflow task dispatch chain (for
    /// continue-as-new inheritance of the execution deadline).
    #[prost(string, tag = "30")]
    pub original_execution_run_id: String,
    /// Updates the workflow accepted, in acceptance order (durable: dedupe by update
    /// id and `PollWorkflowExecutionUpdate` survive a restart and a new owner).
    /// Admitted updates not yet accepted live only in the shard owner's registry.
    #[prost(message, repeated, tag = "40")]
    pub updates: Vec<UpdateInfo>,
    /// Signals and cancellation requests this run sent to other workflows that are not
    /// delivered yet (the SignalExternal / CancelExternal outboxes carry them out).
    #[prost(message, repeated, tag = "45")]
    pub external_requests: Vec<ExternalRequestInfo>,
    /// The run's cron schedule (empty: none); each run that closes chains to the next.
    #[prost(string, tag = "50")]
    pub cron_schedule: String,
    /// The worker's sticky queue the run's workflow tasks go to (none: the normal
    /// queue), from the last completion's `sticky_attributes` ([`super::sticky`]).
    #[prost(message, optional, tag = "70")]
    pub sticky: Option<super::sticky::StickyInfo>,
    /// The events of a speculative workflow task (scheduled to carry an update; Go's
    /// speculative workflow task), held out of history: WorkflowTaskScheduled, and
    /// WorkflowTaskStarted once it started, with the ids they take when written. The
    /// next event the run writes writes them first ([`super::txn::RunTxn::add_event`]);
    /// a task that completes having done nothing (it only rejected updates) drops
    /// them, and history never shows it.
    #[prost(message, repeated, tag = "77")]
    pub speculative_events: Vec<temporalio_protos::protos::temporal::api::history::v1::HistoryEvent>,
}

/// One update of a run that history holds: accepted, or durably admitted (a reset
/// reapplied it as a WorkflowExecutionUpdateAdmitted event) and not answered yet.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateInfo {
    #[prost(string, tag = "1")]
    pub update_id: String,
    /// Its WorkflowExecutionUpdateAccepted event; 0 while only durably admitted.
    #[prost(int64, tag = "2")]
    pub accepted_event_id: i64,
    /// Its WorkflowExecutionUpdateCompleted event (the outcome); 0 while in flight.
    #[prost(int64, tag = "3")]
    pub completed_event_id: i64,
    /// Its WorkflowExecutionUpdateAdmitted event (the request travels to the worker
    /// in it, not in a message); 0 for an update admitted in memory.
    #[prost(int64, tag = "4")]
    pub admitted_event_id: i64,
}

impl UpdateInfo {
    /// Durably admitted, and the workflow has not accepted it yet.
    pub fn awaits_acceptance(&self) -> bool {
        self.accepted_event_id == 0
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ParentInfo {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(string, tag = "2")]
    pub workflow_id: String,
    #[prost(string, tag = "3")]
    pub run_id: String,
    #[prost(int64, tag = "4")]
    pub initiated_event_id: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkflowTaskInfo {
    #[prost(int64, tag = "1")]
    pub scheduled_event_id: i64,
    /// 0 while scheduled but not started.
    #[prost(int64, tag = "2")]
    pub started_event_id: i64,
    #[prost(int32, tag = "3")]
    pub attempt: i32,
    #[prost(int64, tag = "4")]
    pub scheduled_time_ms: i64,
    #[prost(int64, tag = "5")]
    pub started_time_ms: i64,
    #[prost(string, tag = "6")]
    pub task_queue: String,
    /// Poll request id that started it (a retried poll gets the same task back).
    #[prost(string, tag = "7")]
    pub request_id: String,
    #[prost(string, tag = "8")]
    pub identity: String,
    #[prost(int64, tag = "9")]
    pub timeout_ms: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ActivityInfo {
    #[prost(int64, tag = "1")]
    pub scheduled_event_id: i64,
    #[prost(string, tag = "2")]
    pub activity_id: String,
    #[prost(string, tag = "3")]
    pub activity_type: String,
    #[prost(string, tag = "4")]
    pub task_queue: String,
    #[prost(int64, tag = "5")]
    pub schedule_to_close_ms: i64,
    #[prost(int64, tag = "6")]
    pub schedule_to_start_ms: i64,
    #[prost(int64, tag = "7")]
    pub start_to_close_ms: i64,
    #[prost(int64, tag = "8")]
    pub heartbeat_ms: i64,
    #[prost(message, optional, tag = "9")]
    pub retry_policy: Option<RetryPolicy>,
    #[prost(int32, tag = "10")]
    pub attempt: i32,
    /// When the activity was first scheduled (schedule-to-close runs from here).
    #[prost(int64, tag = "11")]
    pub scheduled_time_ms: i64,
    /// When the current attempt was scheduled (after any retry backoff).
    #[prost(int64, tag = "12")]
    pub attempt_scheduled_time_ms: i64,
    /// 0 while the current attempt is not started.
    #[prost(int64, tag = "13")]
    pub started_time_ms: i64,
    #[prost(string, tag = "14")]
    pub started_identity: String,
    #[prost(string, tag = "15")]
    pub started_request_id: String,
    #[prost(message, optional, tag = "16")]
    pub last_failure: Option<Failure>,
    #[prost(message, optional, tag = "17")]
    pub heartbeat_details: Option<Payloads>,
    #[prost(int64, tag = "18")]
    pub last_heartbeat_ms: i64,
    #[prost(bool, tag = "19")]
    pub cancel_requested: bool,
    #[prost(int64, tag = "20")]
    pub cancel_requested_event_id: i64,
    /// Identity of the worker that last failed an attempt.
    #[prost(string, tag = "21")]
    pub last_worker_identity: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimerInfo {
    #[prost(string, tag = "1")]
    pub timer_id: String,
    #[prost(int64, tag = "2")]
    pub started_event_id: i64,
    #[prost(int64, tag = "3")]
    pub fire_time_ms: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChildInfo {
    #[prost(int64, tag = "1")]
    pub initiated_event_id: i64,
    /// 0 until the child has started.
    #[prost(int64, tag = "2")]
    pub started_event_id: i64,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(string, tag = "4")]
    pub workflow_id: String,
    #[prost(string, tag = "5")]
    pub run_id: String,
    #[prost(string, tag = "6")]
    pub workflow_type: String,
    /// `temporal.api.enums.v1.ParentClosePolicy`.
    #[prost(int32, tag = "7")]
    pub parent_close_policy: i32,
}

/// A SignalExternalWorkflowExecution or RequestCancelExternalWorkflowExecution
/// command whose outcome is not recorded yet. The target, the signal and its payloads
/// are in the initiated event.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExternalRequestInfo {
    #[prost(int64, tag = "1")]
    pub initiated_event_id: i64,
    /// [`ExternalRequestKind`].
    #[prost(int32, tag = "2")]
    pub kind: i32,
    /// Deduplicates the delivery (the target's signal request id), so a step retried
    /// after a crash does not signal twice.
    #[prost(string, tag = "3")]
    pub request_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum ExternalRequestKind {
    Unspecified = 0,
    Signal = 1,
    Cancel = 2,
}

impl ExecutionState {
    pub fn is_open(&self) -> bool {
        self.close_time_ms == 0
    }
    pub fn activity(&self, scheduled_event_id: i64) -> Option<&ActivityInfo> {
        self.activities.iter().find(|a| a.scheduled_event_id == scheduled_event_id)
    }
    pub fn activity_mut(&mut self, scheduled_event_id: i64) -> Option<&mut ActivityInfo> {
        self.activities.iter_mut().find(|a| a.scheduled_event_id == scheduled_event_id)
    }
    pub fn remove_activity(&mut self, scheduled_event_id: i64) -> Option<ActivityInfo> {
        let i = self.activities.iter().position(|a| a.scheduled_event_id == scheduled_event_id)?;
        Some(self.activities.remove(i))
    }
    pub fn timer(&self, timer_id: &str) -> Option<&TimerInfo> {
        self.timers.iter().find(|t| t.timer_id == timer_id)
    }
    pub fn remove_timer(&mut self, timer_id: &str) -> Option<TimerInfo> {
        let i = self.timers.iter().position(|t| t.timer_id == timer_id)?;
        Some(self.timers.remove(i))
    }
    pub fn child(&self, initiated_event_id: i64) -> Option<&ChildInfo> {
        self.children.iter().find(|c| c.initiated_event_id == initiated_event_id)
    }
    pub fn child_mut(&mut self, initiated_event_id: i64) -> Option<&mut ChildInfo> {
        self.children.iter_mut().find(|c| c.initiated_event_id == initiated_event_id)
    }
    pub fn remove_child(&mut self, initiated_event_id: i64) -> Option<ChildInfo> {
        let i = self.children.iter().position(|c| c.initiated_event_id == initiated_event_id)?;
        Some(self.children.remove(i))
    }
    pub fn update(&self, update_id: &str) -> Option<&UpdateInfo> {
        self.updates.iter().find(|u| u.update_id == update_id)
    }
    pub fn external_request(&self, initiated_event_id: i64) -> Option<&ExternalRequestInfo> {
        self.external_requests.iter().find(|r| r.initiated_event_id == initiated_event_id)
    }
    pub fn remove_external_request(&mut self, initiated_event_id: i64) -> Option<ExternalRequestInfo> {
        let i = self.external_requests.iter().position(|r| r.initiated_event_id == initiated_event_id)?;
        Some(self.external_requests.remove(i))
    }
    /// A workflow task is scheduled or started.
    pub fn has_workflow_task(&self) -> bool {
        self.workflow_task.is_some()
    }
    /// A workflow task is started (in flight on a worker): new events must be buffered.
    pub fn workflow_task_started(&self) -> bool {
        self.workflow_task.as_ref().is_some_and(|t| t.started_event_id > 0)
    }
    /// The outstanding workflow task is speculative: its events are held out of
    /// history ([`Self::speculative_events`]).
    pub fn workflow_task_speculative(&self) -> bool {
        !self.speculative_events.is_empty()
    }
}
