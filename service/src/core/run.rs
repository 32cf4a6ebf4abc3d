//! Starting runs: the rules.
//!
//! [`RunSpec`] is everything a new run's WorkflowExecutionStarted event carries.
//! [`new_run`] builds the transaction creating the run (state + Started event) and
//! [`begin_run`] schedules its first workflow task (or arms the start backoff) and
//! its timeout timers; between the two a caller may add events that must precede the
//! first workflow task (signal-with-start's Signaled). Start, signal-with-start, child
//! starts and continue-as-new all build runs this way. [`Policies`] and [`decide`]:
//! the workflow id reuse and conflict policies against the workflow's current run.

use bytes::Bytes;
use hourglass_storage::state::{RequestDedupe, RunKey};
use temporalio_protos::protos::temporal::api::common::v1::{
    Header, Memo, Payloads, Priority, RetryPolicy, SearchAttributes, WorkflowExecution, WorkflowType,
};
use temporalio_protos::protos::temporal::api::enums::v1::{
    ContinueAsNewInitiator, TaskQueueKind, WorkflowExecutionStatus, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
};
use temporalio_protos::protos::temporal::api::failure::v1::Failure;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::WorkflowExecutionStartedEventAttributes;
use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;

use super::error::StartError;
use super::state::{ExecutionState, ParentInfo};
use super::tasks::{TimerKind, TimerPayload};
use super::txn::{duration, timestamp, RunTxn};
use super::{cron, wft, EngineConfig, RunView};

type Result<T, E = StartError> = std::result::Result<T, E>;

/// Identity Temporal's server writes on events it causes itself.
pub const SERVER_IDENTITY: &str = "history-service";

/// The three workflow timeouts, normalised the way Temporal's server does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Whole chain of runs (continue-as-new, retries); 0 = unlimited.
    pub execution_ms: i64,
    /// One run; 0 = unlimited.
    pub run_ms: i64,
    /// One workflow task; never 0.
    pub task_ms: i64,
}

impl Timeouts {
    /// Inputs are non-negative ms (0 = unset). The run timeout defaults to, and is
    /// capped by, the execution timeout; the workflow task timeout defaults to the
    /// configured default, is capped by the configured maximum and by the run timeout.
    pub fn normalize(execution_ms: i64, run_ms: i64, task_ms: i64, config: &EngineConfig) -> Self {
        let run_ms = match (run_ms, execution_ms) {
            (0, e) => e,
            (r, 0) => r,
            (r, e) => r.min(e),
        };
        let mut task_ms = if task_ms == 0 { config.default_workflow_task_timeout_ms } else { task_ms };
        task_ms = task_ms.min(config.workflow_task_timeout_max_ms);
        if run_ms > 0 {
            task_ms = task_ms.min(run_ms);
        }
        Self { execution_ms, run_ms, task_ms }
    }
}

/// Where a run sits in a chain of runs (continue-as-new). `None` in [`RunSpec`] means
/// the run starts a new chain.
#[derive(Debug, Clone, Default)]
pub struct Continuation {
    pub first_execution_run_id: String,
    pub continued_execution_run_id: String,
    /// `temporal.api.enums.v1.ContinueAsNewInitiator`.
    pub initiator: i32,
    /// Absolute deadline of the chain (0 = none), inherited.
    pub execution_expiration_ms: i64,
    pub continued_failure: Option<Failure>,
    pub last_completion_result: Option<Payloads>,
    /// Retry and cron runs: the Started event's `workflow_run_timeout`, echoed from the
    /// previous run's (`None`: the rule for runs the server starts, an explicit value).
    pub echoed_run_timeout: Option<Option<prost_wkt_types::Duration>>,
}

/// What a new run starts with (the attributes of its WorkflowExecutionStarted).
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub workflow_type: String,
    pub task_queue: String,
    pub input: Option<Payloads>,
    pub timeouts: Timeouts,
    pub identity: String,
    /// Start request id (kept for dedupe answers and `AlreadyExists` details).
    pub request_id: String,
    pub retry_policy: Option<RetryPolicy>,
    pub memo: Option<Memo>,
    pub search_attributes: Option<SearchAttributes>,
    pub header: Option<Header>,
    /// Delay before the first workflow task (start delay or continue-as-new backoff).
    pub start_delay_ms: i64,
    pub priority: Option<Priority>,
    pub parent: Option<ParentInfo>,
    pub root: Option<WorkflowExecution>,
    pub continuation: Option<Continuation>,
    /// Cron schedule (empty: none). A new chain's first run waits for its first time.
    pub cron_schedule: String,
    /// The retry attempt this run is (0 is read as 1).
    pub attempt: i32,
    /// The start's summary and details for user interfaces, kept on the Started event
    /// (Describe shows them as `execution_config.user_metadata`). Runs a chain starts
    /// itself (continue-as-new, retry, cron) have none, as in Temporal.
    pub user_metadata: Option<UserMetadata>,
}

/// The transaction creating run `key` from `spec`: its state and its Started event.
pub fn new_run(key: RunKey, now_ms: i64, spec: &RunSpec) -> RunTxn {
    let mut chain = spec.continuation.clone().unwrap_or_default();
    let mut start_delay_ms = spec.start_delay_ms;
    if spec.continuation.is_none() && !spec.cron_schedule.is_empty() {
        // Temporal: a cron chain's first run waits for the schedule's next time.
        chain.initiator = ContinueAsNewInitiator::CronSchedule as i32;
        start_delay_ms = cron::backoff_ms(&spec.cron_schedule, now_ms, now_ms).unwrap_or(0).max(0);
    }
    let attempt = spec.attempt.max(1);
    let first_execution_run_id =
        if chain.first_execution_run_id.is_empty() { key.run_id.clone() } else { chain.first_execution_run_id.clone() };
    let execution_expiration_ms = if chain.execution_expiration_ms > 0 {
        chain.execution_expiration_ms
    } else if spec.timeouts.execution_ms > 0 {
        now_ms.saturating_add(spec.timeouts.execution_ms)
    } else {
        0
    };
    let state = ExecutionState {
        workflow_type: spec.workflow_type.clone(),
        task_queue: spec.task_queue.clone(),
        status: WorkflowExecutionStatus::Running as i32,
        start_time_ms: now_ms,
        execution_time_ms: now_ms.saturating_add(start_delay_ms),
        workflow_task_timeout_ms: spec.timeouts.task_ms,
        run_timeout_ms: spec.timeouts.run_ms,
        execution_timeout_ms: spec.timeouts.execution_ms,
        execution_expiration_ms,
        first_execution_run_id: first_execution_run_id.clone(),
        retry_policy: spec.retry_policy.clone(),
        attempt,
        memo: spec.memo.clone(),
        search_attributes: spec.search_attributes.clone(),
        parent: spec.parent.clone(),
        start_request_id: spec.request_id.clone(),
        workflow_task_attempt: 1,
        header: spec.header.clone(),
        original_execution_run_id: key.run_id.clone(),
        cron_schedule: spec.cron_schedule.clone(),
        ..Default::default()
    };
    let positive = |ms: i64| (ms > 0).then(|| duration(ms));
    let parent = spec.parent.as_ref();
    let started = WorkflowExecutionStartedEventAttributes {
        workflow_type: Some(WorkflowType { name: spec.workflow_type.clone() }),
        parent_workflow_namespace: parent.map(|p| p.namespace.clone()).unwrap_or_default(),
        parent_workflow_execution: parent.map(|p| WorkflowExecution { workflow_id: p.workflow_id.clone(), run_id: p.run_id.clone() }),
        parent_initiated_event_id: parent.map(|p| p.initiated_event_id).unwrap_or_default(),
        task_queue: Some(normal_task_queue(&spec.task_queue)),
        input: spec.input.clone(),
        workflow_execution_timeout: positive(spec.timeouts.execution_ms),
        // Temporal writes an explicit 0s for runs it starts itself (children, continue-as-new);
        // retries and cron runs echo the previous run's.
        workflow_run_timeout: match chain.echoed_run_timeout {
            Some(echoed) => echoed,
            None if parent.is_some() || spec.continuation.is_some() => Some(duration(spec.timeouts.run_ms)),
            None => positive(spec.timeouts.run_ms),
        },
        workflow_task_timeout: Some(duration(spec.timeouts.task_ms)),
        continued_execution_run_id: chain.continued_execution_run_id.clone(),
        initiator: chain.initiator,
        continued_failure: chain.continued_failure.clone(),
        last_completion_result: chain.last_completion_result.clone(),
        original_execution_run_id: key.run_id.clone(),
        identity: spec.identity.clone(),
        first_execution_run_id,
        retry_policy: spec.retry_policy.clone(),
        attempt,
        cron_schedule: spec.cron_schedule.clone(),
        workflow_execution_expiration_time: (execution_expiration_ms > 0).then(|| timestamp(execution_expiration_ms)),
        first_workflow_task_backoff: Some(duration(start_delay_ms)),
        memo: spec.memo.clone(),
        search_attributes: spec.search_attributes.clone(),
        header: spec.header.clone(),
        workflow_id: key.workflow_id.clone(),
        root_workflow_execution: spec.root.clone(),
        priority: Some(spec.priority.clone().unwrap_or_default()),
        ..Default::default()
    };
    let mut txn = RunTxn::create(key, now_ms, state);
    let started_event_id = txn.add_event(Attributes::WorkflowExecutionStartedEventAttributes(started));
    if let Some(metadata) = spec.user_metadata.clone() {
        txn.set_user_metadata(started_event_id, metadata);
    }
    txn
}

/// Schedules the first workflow task of a run built by [`new_run`] (or, with a start
/// delay, arms the backoff timer that will) and arms the run's timeout timers.
pub fn begin_run(txn: &mut RunTxn) {
    let execution_time_ms = txn.state.execution_time_ms;
    if execution_time_ms > txn.now_ms {
        txn.add_timer(execution_time_ms, timer(TimerKind::WorkflowStartBackoff));
    } else {
        wft::schedule_workflow_task(txn, 1);
    }
    let expiration_ms = txn.state.execution_expiration_ms;
    let run_deadline_ms = if txn.state.run_timeout_ms > 0 { execution_time_ms.saturating_add(txn.state.run_timeout_ms) } else { 0 };
    if run_deadline_ms > 0 && (expiration_ms == 0 || run_deadline_ms < expiration_ms) {
        txn.add_timer(run_deadline_ms, timer(TimerKind::WorkflowRunTimeout));
    }
    if expiration_ms > 0 {
        txn.add_timer(expiration_ms, timer(TimerKind::WorkflowExecutionTimeout));
    }
}

pub(crate) fn timer(kind: TimerKind) -> TimerPayload {
    TimerPayload { kind: kind as i32, ..Default::default() }
}

pub(crate) fn normal_task_queue(name: &str) -> TaskQueue {
    TaskQueue { name: name.to_string(), kind: TaskQueueKind::Normal as i32, normal_name: String::new() }
}

/// The workflow id reuse policy (closed runs) and conflict policy (an open run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    pub reuse: WorkflowIdReusePolicy,
    pub conflict: WorkflowIdConflictPolicy,
}

impl Policies {
    /// Resolves a request's raw policies. `default_conflict` applies when none is set
    /// (FAIL for a start, USE_EXISTING for signal-with-start). The deprecated
    /// TERMINATE_IF_RUNNING reuse policy means "allow duplicate, terminate existing".
    #[allow(deprecated)] // TERMINATE_IF_RUNNING: deprecated, still sent by clients
    pub fn resolve(reuse: i32, conflict: i32, default_conflict: WorkflowIdConflictPolicy) -> Result<Self> {
        let reuse = WorkflowIdReusePolicy::try_from(reuse).map_err(|_| StartError::UnknownReusePolicy(reuse))?;
        let conflict = WorkflowIdConflictPolicy::try_from(conflict).map_err(|_| StartError::UnknownConflictPolicy(conflict))?;
        match (reuse, conflict) {
            (WorkflowIdReusePolicy::TerminateIfRunning, WorkflowIdConflictPolicy::Unspecified) => {
                Ok(Self { reuse: WorkflowIdReusePolicy::AllowDuplicate, conflict: WorkflowIdConflictPolicy::TerminateExisting })
            }
            (WorkflowIdReusePolicy::TerminateIfRunning, _) => Err(StartError::TerminateIfRunningWithConflictPolicy),
            (reuse, conflict) => Ok(Self {
                reuse: if reuse == WorkflowIdReusePolicy::Unspecified { WorkflowIdReusePolicy::AllowDuplicate } else { reuse },
                conflict: if conflict == WorkflowIdConflictPolicy::Unspecified { default_conflict } else { conflict },
            }),
        }
    }
}

/// What to do about the workflow id's current run before starting.
pub enum Decision {
    /// No run is open (and the reuse policy allows a new one).
    Create,
    /// The open run was started by this same request id.
    SameRequest(RunView),
    /// The conflict policy says: use the open run.
    UseExisting(RunView),
    /// The conflict policy says: terminate the open run and start a new one.
    TerminateExisting(RunView),
}

/// Applies the policies to the workflow's current run (`None`: it has none), loaded
/// under the workflow's lock; `open`: whether that run is open.
pub fn decide(current: Option<(RunView, bool)>, request_id: &str, policies: Policies) -> Result<Decision> {
    let Some((current, open)) = current else { return Ok(Decision::Create) };
    let already =
        |run: &RunView| StartError::AlreadyStarted { start_request_id: run.state.start_request_id.clone(), run_id: run.key.run_id.clone() };
    if open {
        if !request_id.is_empty() && current.state.start_request_id == request_id {
            return Ok(Decision::SameRequest(current));
        }
        return match policies.conflict {
            WorkflowIdConflictPolicy::UseExisting => Ok(Decision::UseExisting(current)),
            WorkflowIdConflictPolicy::TerminateExisting => Ok(Decision::TerminateExisting(current)),
            _ => Err(already(&current)),
        };
    }
    let failed = [
        WorkflowExecutionStatus::Failed,
        WorkflowExecutionStatus::Canceled,
        WorkflowExecutionStatus::Terminated,
        WorkflowExecutionStatus::TimedOut,
    ]
    .iter()
    .any(|s| *s as i32 == current.state.status);
    match policies.reuse {
        WorkflowIdReusePolicy::RejectDuplicate => Err(already(&current)),
        WorkflowIdReusePolicy::AllowDuplicateFailedOnly if !failed => Err(already(&current)),
        _ => Ok(Decision::Create),
    }
}

/// The dedupe key of a client request of `kind` ("start", "signal", ...) to
/// `workflow_id`. It names the workflow (length-prefixed, so no two pairs collide): a
/// request id is the client's, and a shard's dedupe records are shared by all its
/// workflows, while Temporal deduplicates a request id per workflow.
pub fn workflow_dedupe_id(kind: &str, workflow_id: &str, request_id: &str) -> String {
    format!("{kind}:{}:{workflow_id}:{request_id}", workflow_id.len())
}

/// The record that deduplicates a request: its id and its first answer.
pub fn dedupe(namespace: &str, dedupe_id: String, result: Bytes) -> RequestDedupe {
    RequestDedupe { namespace: namespace.to_string(), request_id: dedupe_id, result }
}

/// Outcome of a start: the run and whether this request started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartOutcome {
    pub run_id: String,
    pub started: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::tasks::TaskKind;
    use temporalio_protos::protos::temporal::api::enums::v1::EventType;

    fn key() -> RunKey {
        RunKey { namespace: "ns".into(), workflow_id: "wf".into(), run_id: "run-1".into() }
    }

    fn spec() -> RunSpec {
        RunSpec {
            workflow_type: "Wf".into(),
            task_queue: "tq".into(),
            timeouts: Timeouts::normalize(0, 0, 0, &EngineConfig::default()),
            identity: "me".into(),
            request_id: "req".into(),
            ..Default::default()
        }
    }

    fn started(txn: &RunTxn) -> WorkflowExecutionStartedEventAttributes {
        match txn.events()[0].attributes.clone() {
            Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a,
            other => panic!("not a Started event: {other:?}"),
        }
    }

    #[test]
    fn timeouts_follow_temporal_defaults() {
        let c = EngineConfig::default();
        assert_eq!(Timeouts::normalize(0, 0, 0, &c), Timeouts { execution_ms: 0, run_ms: 0, task_ms: 10_000 });
        assert_eq!(Timeouts::normalize(2_000, 0, 0, &c), Timeouts { execution_ms: 2_000, run_ms: 2_000, task_ms: 2_000 });
        assert_eq!(Timeouts::normalize(5_000, 9_000, 0, &c).run_ms, 5_000);
        assert_eq!(Timeouts::normalize(0, 9_000, 0, &c).run_ms, 9_000);
        assert_eq!(Timeouts::normalize(0, 0, 600_000, &c).task_ms, 120_000);
    }

    #[test]
    fn started_event_carries_what_core_reads() {
        let mut txn = new_run(key(), 5_000, &spec());
        begin_run(&mut txn);
        let a = started(&txn);
        assert_eq!(a.original_execution_run_id, "run-1");
        assert_eq!(a.first_execution_run_id, "run-1");
        assert_eq!(a.attempt, 1);
        assert_eq!(a.workflow_task_timeout, Some(duration(10_000)));
        assert_eq!(a.first_workflow_task_backoff, Some(duration(0)));
        assert_eq!(a.workflow_id, "wf");
        assert_eq!(a.identity, "me");
        assert_eq!(a.task_queue.unwrap().kind, TaskQueueKind::Normal as i32);
        assert!(a.workflow_execution_expiration_time.is_none());
        let types: Vec<i32> = txn.events().iter().map(|e| e.event_type).collect();
        assert_eq!(types, vec![EventType::WorkflowExecutionStarted as i32, EventType::WorkflowTaskScheduled as i32]);
        assert_eq!(txn.state.workflow_task.as_ref().unwrap().scheduled_event_id, 2);
        assert_eq!(txn.state.status, WorkflowExecutionStatus::Running as i32);
        let (_, effects) = txn.into_transition();
        assert_eq!(effects.enqueued.len(), 1);
        assert_eq!(effects.enqueued[0].payload.kind, TaskKind::WorkflowTask as i32);
        assert_eq!(effects.timers_added, 0);
    }

    #[test]
    fn the_started_event_keeps_the_starts_user_metadata() {
        use temporalio_protos::protos::temporal::api::common::v1::Payload;
        assert_eq!(new_run(key(), 0, &spec()).events()[0].user_metadata, None);
        let metadata = UserMetadata {
            summary: Some(Payload { data: b"\"s\"".to_vec(), ..Default::default() }),
            details: Some(Payload { data: b"\"d\"".to_vec(), ..Default::default() }),
        };
        let txn = new_run(key(), 0, &RunSpec { user_metadata: Some(metadata.clone()), ..spec() });
        assert_eq!(txn.events()[0].user_metadata, Some(metadata));
        assert_eq!(txn.state.history_size_bytes, prost::Message::encoded_len(&txn.events()[0]) as i64);
    }

    #[test]
    fn start_delay_arms_backoff_instead_of_a_task() {
        let mut s = spec();
        s.start_delay_ms = 3_000;
        s.timeouts = Timeouts::normalize(10_000, 0, 0, &EngineConfig::default());
        let mut txn = new_run(key(), 1_000, &s);
        begin_run(&mut txn);
        let a = started(&txn);
        assert_eq!(a.first_workflow_task_backoff, Some(duration(3_000)));
        // The execution deadline counts from the start, not from the end of the delay.
        assert_eq!(a.workflow_execution_expiration_time, Some(timestamp(11_000)));
        assert_eq!(txn.events().len(), 1);
        assert!(txn.state.workflow_task.is_none());
        let (t, effects) = txn.into_transition();
        assert!(effects.enqueued.is_empty());
        // Backoff + execution timeout (the run deadline is past the execution deadline).
        assert_eq!(effects.timers_added, 2);
        let dues: Vec<i64> = t
            .ops
            .iter()
            .filter_map(|op| match op {
                hourglass_storage::state::Op::AddTimer { due_ms, .. } => Some(*due_ms),
                _ => None,
            })
            .collect();
        assert_eq!(dues, vec![4_000, 11_000]);
    }

    #[test]
    fn continuation_keeps_the_chain() {
        let mut s = spec();
        s.continuation = Some(Continuation {
            first_execution_run_id: "first".into(),
            continued_execution_run_id: "prev".into(),
            initiator: 1,
            execution_expiration_ms: 99_000,
            ..Default::default()
        });
        let txn = new_run(key(), 1_000, &s);
        let a = started(&txn);
        assert_eq!(a.first_execution_run_id, "first");
        assert_eq!(a.original_execution_run_id, "run-1");
        assert_eq!(a.continued_execution_run_id, "prev");
        assert_eq!(a.workflow_execution_expiration_time, Some(timestamp(99_000)));
        assert_eq!(txn.state.first_execution_run_id, "first");
    }

    #[test]
    fn policies_resolve_like_temporal() {
        use WorkflowIdConflictPolicy as C;
        use WorkflowIdReusePolicy as R;
        let p = Policies::resolve(0, 0, C::Fail).unwrap();
        assert_eq!(p, Policies { reuse: R::AllowDuplicate, conflict: C::Fail });
        #[allow(deprecated)]
        let p = Policies::resolve(R::TerminateIfRunning as i32, 0, C::Fail).unwrap();
        assert_eq!(p, Policies { reuse: R::AllowDuplicate, conflict: C::TerminateExisting });
        #[allow(deprecated)]
        let both = Policies::resolve(R::TerminateIfRunning as i32, C::Fail as i32, C::Fail);
        assert!(both.is_err());
        assert!(Policies::resolve(77, 0, C::Fail).is_err());
        assert_eq!(Policies::resolve(0, 0, C::UseExisting).unwrap().conflict, C::UseExisting);
    }
}
