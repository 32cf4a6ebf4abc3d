//! Starting an attempt for an activity task that matching handed to a poller.

use hourglass_storage::state::{QueueKey, RunKey};
use prost::Message;
use temporalio_protos::protos::temporal::api::common::v1::{ActivityType, WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{ActivityTaskScheduledEventAttributes, HistoryEvent};
use temporalio_protos::protos::temporal::api::workflowservice::v1::PollActivityTaskQueueResponse;

use crate::core::activity::{cleanup, transitions};
use crate::core::state::{ActivityInfo, ExecutionState};
use crate::core::tasks::{TaskKind, TaskPayload};
use crate::core::token::TaskToken;
use crate::core::txn::{duration, timestamp};
use crate::engine::errors::StoredDataError;
use crate::engine::{Engine, ShardOwner};
use crate::error::Result;
use crate::matching::TaskRef;

/// What became of a polled task.
#[derive(Debug)]
pub enum Dispatched {
    /// The attempt is started; hand this to the worker.
    Started(Box<PollActivityTaskQueueResponse>),
    /// The task was no longer current (activity gone, other attempt, run closed): it
    /// was acknowledged (if still in the backlog) and must be skipped.
    Stale,
}

/// Starts the attempt `task` names for the worker `identity`, in one transition:
/// the task leaves the backlog, the attempt is recorded as started and its
/// start-to-close and heartbeat timers are armed. No history event is written.
pub async fn start_polled_task(engine: &Engine, queue: &QueueKey, task: &TaskRef, identity: &str) -> Result<Dispatched> {
    let run = &task.run;
    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    // A task of an ended owner term is the current owner's now (from its backlog); a
    // task acknowledged meanwhile (or dropped with its run) is already done.
    if lock.term() != task.term || !lock.read(|s| s.task(queue, task.task_id).is_some())? {
        return Ok(Dispatched::Stale);
    }
    let Some(loaded) = lock.load(run)? else { return Ok(Dispatched::Stale) };
    let current = is_current(&loaded.state, &task.payload);
    let mut txn = engine.txn(loaded);
    txn.ack(queue.clone(), task.task_id);
    if !current {
        lock.commit(txn).await?;
        return Ok(Dispatched::Stale);
    }
    let scheduled_event_id = task.payload.scheduled_event_id;
    let scheduled = read_scheduled_event(&lock, run, scheduled_event_id)?;
    let request_id = uuid::Uuid::new_v4().to_string();
    transitions::start_attempt(&mut txn, scheduled_event_id, identity, &request_id);
    let ai = txn
        .state
        .activity(scheduled_event_id)
        .ok_or_else(|| StoredDataError::Vanished { run: run.clone(), what: "the activity being started" })?;
    let response = response(run, &txn.state, ai, scheduled);
    cleanup::drop_obsolete_timers(&mut txn, None);
    lock.commit(txn).await?;
    Ok(Dispatched::Started(Box::new(response)))
}

/// The task names the current, not yet started attempt of a pending activity of an
/// open run.
fn is_current(state: &ExecutionState, payload: &TaskPayload) -> bool {
    payload.kind == TaskKind::ActivityTask as i32
        && state.is_open()
        && state.activity(payload.scheduled_event_id).is_some_and(|a| a.attempt == payload.attempt && a.started_time_ms <= 0)
}

/// The activity's ActivityTaskScheduled event and its time.
pub(crate) struct ScheduledEvent {
    pub(crate) time: Option<prost_wkt_types::Timestamp>,
    pub(crate) attributes: ActivityTaskScheduledEventAttributes,
}

fn read_scheduled_event(owner: &ShardOwner, run: &RunKey, scheduled_event_id: i64) -> Result<ScheduledEvent> {
    let id =
        u64::try_from(scheduled_event_id).map_err(|_| StoredDataError::MissingEvent { run: run.clone(), event_id: scheduled_event_id })?;
    let events = owner.read_history(run, id, 1)?;
    let missing = || StoredDataError::MissingEvent { run: run.clone(), event_id: scheduled_event_id };
    let (_, raw) = events.into_iter().find(|(event_id, _)| *event_id == id).ok_or_else(missing)?;
    let event = HistoryEvent::decode(raw.as_ref()).map_err(|source| StoredDataError::UndecodableEvent {
        run: run.clone(),
        event_id: id,
        source,
    })?;
    match event.attributes {
        Some(Attributes::ActivityTaskScheduledEventAttributes(attributes)) => Ok(ScheduledEvent { time: event.event_time, attributes }),
        _ => {
            Err(StoredDataError::UnexpectedEvent { run: run.clone(), event_id: scheduled_event_id, expected: "ActivityTaskScheduled" }
                .into())
        }
    }
}

/// The poll response for the just-started attempt (`ai`).
pub(crate) fn response(
    run: &RunKey,
    state: &ExecutionState,
    ai: &ActivityInfo,
    scheduled: ScheduledEvent,
) -> PollActivityTaskQueueResponse {
    let token = TaskToken {
        kind: TaskKind::ActivityTask as i32,
        namespace: run.namespace.clone(),
        workflow_id: run.workflow_id.clone(),
        run_id: run.run_id.clone(),
        scheduled_event_id: ai.scheduled_event_id,
        attempt: ai.attempt,
        activity_id: ai.activity_id.clone(),
        ..Default::default()
    };
    let a = scheduled.attributes;
    PollActivityTaskQueueResponse {
        task_token: token.encode_token(),
        workflow_namespace: run.namespace.clone(),
        workflow_type: Some(WorkflowType { name: state.workflow_type.clone() }),
        workflow_execution: Some(WorkflowExecution { workflow_id: run.workflow_id.clone(), run_id: run.run_id.clone() }),
        activity_type: Some(a.activity_type.unwrap_or_else(|| ActivityType { name: ai.activity_type.clone() })),
        activity_id: a.activity_id,
        header: a.header,
        input: a.input,
        heartbeat_details: ai.heartbeat_details.clone(),
        scheduled_time: scheduled.time.or_else(|| Some(timestamp(ai.scheduled_time_ms))),
        current_attempt_scheduled_time: Some(timestamp(ai.attempt_scheduled_time_ms)),
        started_time: Some(timestamp(ai.started_time_ms)),
        attempt: ai.attempt,
        schedule_to_close_timeout: Some(a.schedule_to_close_timeout.unwrap_or_else(|| duration(ai.schedule_to_close_ms))),
        start_to_close_timeout: Some(a.start_to_close_timeout.unwrap_or_else(|| duration(ai.start_to_close_ms))),
        heartbeat_timeout: Some(a.heartbeat_timeout.unwrap_or_else(|| duration(ai.heartbeat_ms))),
        retry_policy: ai.retry_policy.clone(),
        priority: Some(a.priority.unwrap_or_default()),
        ..Default::default()
    }
}
