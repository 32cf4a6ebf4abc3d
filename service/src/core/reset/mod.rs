//! `ResetWorkflowExecution`: the rules (Temporal's `ndc/workflow_resetter.go`).
//!
//! A reset builds a new run of the workflow from the base run's history up to a
//! workflow task: the events before the reset point (`finish_event_id - 1`, which
//! must leave a workflow task outstanding) are copied as they are, the state is
//! [`rebuild`]t from them, and then, at the reset time:
//! 1. the outstanding workflow task is started (if it was only scheduled, by
//!    `history-service`) and failed with cause `RESET_WORKFLOW`, naming the base and
//!    the new run (the task attempt counter starts again at 1);
//! 2. the signals and updates the base run received after the reset point are
//!    written again, in their order (unless `reset_reapply_exclude_types` /
//!    `reset_reapply_type` exclude them), then those the current run's termination
//!    flushed, when the base is the current run. An update comes back durably
//!    admitted (WorkflowExecutionUpdateAdmitted, origin REAPPLY): the worker reads its
//!    request from that event and accepts it again;
//! 3. a workflow task is scheduled, pending activities are enqueued afresh, timers,
//!    requests to other workflows and the run's timeouts are armed again.
//!
//! The workflow's current run, if still open, is terminated first (reason: the
//! reset's, identity `history-resetter`). Both go in one transition: the new run
//! becomes the current one. The new run starts now (Describe's start time is the
//! reset's), and keeps the base's Started event, first run id and start request id.
//!
//! Not built (refused, never faked): pending children at the reset point (Temporal's
//! answer with `history.allowResetWithPendingChildren` off), walking a continue-as-new
//! chain from an older base run to the current one (only the base's signals and
//! updates are reapplied).

pub mod rebuild;
#[cfg(test)]
mod tests;

use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::enums::v1::{UpdateAdmittedEventOrigin, WorkflowTaskFailedCause};
use temporalio_protos::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_protos::protos::temporal::api::failure::v1::{Failure, ResetWorkflowFailureInfo};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    HistoryEvent, WorkflowTaskFailedEventAttributes, WorkflowTaskStartedEventAttributes,
};

use super::run::{self, SERVER_IDENTITY};
use super::state::ExecutionState;
use super::tasks::{TimerKind, TimerPayload};
use super::txn::RunTxn;
use super::{activity, external, lifecycle, updates, Ctx, RunView};
pub use rebuild::{rebuild, RebuildError};
use temporalio_protos::protos::temporal::api::update::v1::Request;

/// Identity Temporal writes on the termination of the run a reset replaces.
pub const RESETTER_IDENTITY: &str = "history-resetter";
/// Request id Temporal writes on the WorkflowTaskStarted a reset adds itself.
pub const EMPTY_REQUEST_ID: &str = "emptyUuid";

/// Why a reset is refused (the `Display` is the message clients see).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResetError {
    #[error("Workflow task finish ID must be > 1 && <= workflow last event ID.")]
    FinishIdOutOfRange,
    #[error("Can only reset workflow to event ID in range [WorkflowTaskScheduled +1, WorkflowTaskStarted + 1]: {0}")]
    NotAWorkflowTaskPoint(i64),
    #[error("WorkflowResetter encountered pending child workflows.")]
    PendingChildren,
    /// The base run's stored history does not fold into a state (stored data is bad).
    #[error("the base run's history cannot be rebuilt: {0}")]
    Corrupt(#[from] RebuildError),
}

impl From<ResetError> for crate::error::ServiceError {
    fn from(e: ResetError) -> Self {
        use crate::error::ServiceError as S;
        match e {
            ResetError::Corrupt(_) => S::Internal(e.to_string()),
            _ => S::InvalidArgument(e.to_string()),
        }
    }
}

/// What the request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetSpec {
    /// The reset point: the new run keeps the events before it.
    pub finish_event_id: i64,
    pub reason: String,
    pub reapply_signals: bool,
    pub reapply_updates: bool,
}

/// The run a reset starts from: its key, state and whole history.
pub struct BaseRun<'a> {
    pub key: &'a RunKey,
    pub state: &'a ExecutionState,
    pub events: &'a [HistoryEvent],
}

/// The transitions a reset commits together: the current run's termination (if it
/// was open), then the new run.
pub struct ResetPlan {
    pub terminated: Option<RunTxn>,
    pub new_run: RunTxn,
}

/// Builds the reset of `base` into a new run with id `new_run_id`; `current`: the
/// workflow's current run when it is open (it is terminated). `base` and `current`
/// are the same run when the base is the open current run.
pub fn reset(
    base: &BaseRun,
    current: Option<RunView>,
    new_run_id: String,
    spec: &ResetSpec,
    ctx: &mut Ctx,
) -> Result<ResetPlan, ResetError> {
    let next_event_id = base.events.len() as i64 + 1;
    if spec.finish_event_id <= 1 || spec.finish_event_id >= next_event_id {
        return Err(ResetError::FinishIdOutOfRange);
    }
    let keep = (spec.finish_event_id - 1) as usize;
    let mut state = rebuild(&base.events[..keep])?;
    if state.workflow_task.is_none() {
        return Err(ResetError::NotAWorkflowTaskPoint(spec.finish_event_id));
    }
    if !state.children.is_empty() {
        return Err(ResetError::PendingChildren);
    }
    let mut reapply: Vec<HistoryEvent> = base.events[keep..].to_vec();
    let terminated = current.filter(|c| c.state.is_open()).map(|c| {
        let same = c.key == *base.key;
        let mut txn = RunTxn::from_view(c, ctx.now_ms);
        lifecycle::terminate(&mut txn, spec.reason.clone(), None, RESETTER_IDENTITY.to_string());
        if same {
            reapply.extend(txn.events().iter().cloned());
        }
        txn
    });
    let reapply = reapplied(&reapply, spec);
    state.start_request_id = base.state.start_request_id.clone();
    state.start_time_ms = ctx.now_ms;
    state.execution_time_ms = ctx.now_ms;
    let new_key = RunKey { run_id: new_run_id, ..base.key.clone() };
    let mut txn = RunTxn::create(new_key, ctx.now_ms, state);
    copy_events(&mut txn, &base.events[..keep]);
    fail_workflow_task(&mut txn, &base.key.run_id, &spec.reason);
    for event in reapply {
        match event {
            Reapplied::Signal(signal) => {
                txn.add_event(*signal);
            }
            Reapplied::Update(request, origin) => {
                updates::admit_durably(&mut txn, *request, origin);
            }
        }
    }
    rearm(&mut txn, ctx);
    run::begin_run(&mut txn);
    Ok(ResetPlan { terminated, new_run: txn })
}

/// What a reset writes again in the new run, in the base run's order.
enum Reapplied {
    /// Boxed, as the update: both are large.
    Signal(Box<Attributes>),
    /// An update, durably admitted in the new run.
    Update(Box<Request>, UpdateAdmittedEventOrigin),
}

/// The events to write again in the new run, per the reapply settings (Go's
/// `reapplyEvents`): signals as they were; updates as durably admitted ones — an
/// Admitted event again as it was, an Accepted event that carries its request as
/// admitted with origin REAPPLY (one without a request follows an Admitted event,
/// which already reapplies it).
fn reapplied(events: &[HistoryEvent], spec: &ResetSpec) -> Vec<Reapplied> {
    let mut out = Vec::new();
    for e in events {
        match e.attributes.as_ref() {
            Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) if spec.reapply_signals => {
                out.push(Reapplied::Signal(Box::new(Attributes::WorkflowExecutionSignaledEventAttributes(a.clone()))));
            }
            Some(Attributes::WorkflowExecutionUpdateAdmittedEventAttributes(a)) if spec.reapply_updates => {
                if let Some(request) = &a.request {
                    let origin = UpdateAdmittedEventOrigin::try_from(a.origin).unwrap_or(UpdateAdmittedEventOrigin::Unspecified);
                    out.push(Reapplied::Update(Box::new(request.clone()), origin));
                }
            }
            Some(Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(a)) if spec.reapply_updates => {
                if let Some(request) = &a.accepted_request {
                    out.push(Reapplied::Update(Box::new(request.clone()), UpdateAdmittedEventOrigin::Reapply));
                }
            }
            _ => {}
        }
    }
    out
}

/// Copies the base's events into the new run as they are (ids, times, attributes).
fn copy_events(txn: &mut RunTxn, events: &[HistoryEvent]) {
    let size_bytes = txn.state.history_size_bytes;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(txn.next_event_id(), i as i64 + 1, "copied events keep their ids");
        txn.add_built_event(e.clone());
    }
    // The rebuilt state counted them already.
    txn.state.history_size_bytes = size_bytes;
}

/// Starts (if need be) and fails the outstanding workflow task with RESET_WORKFLOW.
fn fail_workflow_task(txn: &mut RunTxn, base_run_id: &str, reason: &str) {
    let task = txn.state.workflow_task.take().expect("reset checked a workflow task is outstanding");
    let started_event_id = if task.started_event_id > 0 {
        task.started_event_id
    } else {
        let history_size_bytes = txn.state.history_size_bytes;
        txn.add_event(Attributes::WorkflowTaskStartedEventAttributes(WorkflowTaskStartedEventAttributes {
            scheduled_event_id: task.scheduled_event_id,
            identity: SERVER_IDENTITY.to_string(),
            request_id: EMPTY_REQUEST_ID.to_string(),
            history_size_bytes,
            ..Default::default()
        }))
    };
    let new_run_id = txn.key.run_id.clone();
    txn.add_event(Attributes::WorkflowTaskFailedEventAttributes(WorkflowTaskFailedEventAttributes {
        scheduled_event_id: task.scheduled_event_id,
        started_event_id,
        cause: WorkflowTaskFailedCause::ResetWorkflow as i32,
        failure: Some(reset_failure(reason)),
        identity: SERVER_IDENTITY.to_string(),
        base_run_id: base_run_id.to_string(),
        new_run_id,
        ..Default::default()
    }));
    txn.state.workflow_task_attempt = 1;
}

/// Go's `failure.NewResetWorkflowFailure(reason, nil)`.
pub fn reset_failure(reason: &str) -> Failure {
    Failure {
        message: reason.to_string(),
        failure_info: Some(FailureInfo::ResetWorkflowFailureInfo(ResetWorkflowFailureInfo { last_heartbeat_details: None })),
        ..Default::default()
    }
}

/// Enqueues the pending activities afresh (scheduled now, as Temporal's
/// `failInflightActivity` does for activities not started) and arms the user timers
/// and the outboxes of requests to other workflows again.
fn rearm(txn: &mut RunTxn, ctx: &mut Ctx) {
    let now_ms = txn.now_ms;
    let activities: Vec<i64> = txn.state.activities.iter().map(|a| a.scheduled_event_id).collect();
    for scheduled_event_id in activities {
        activity::transitions::reschedule_for_reset(txn, scheduled_event_id, now_ms);
    }
    let timers: Vec<_> = txn.state.timers.iter().map(|t| (t.fire_time_ms, t.started_event_id, t.timer_id.clone())).collect();
    for (fire_time_ms, event_id, timer_id) in timers {
        txn.add_timer(fire_time_ms, TimerPayload { kind: TimerKind::UserTimer as i32, event_id, attempt: 0, timer_id });
    }
    let requests = std::mem::take(&mut txn.state.external_requests);
    for r in requests {
        external::rearm(txn, r.initiated_event_id, r.kind, ctx.ids.new_id());
    }
}
