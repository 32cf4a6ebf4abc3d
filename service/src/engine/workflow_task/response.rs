//! The poll response of a started workflow task (§3.2 of the contract): token,
//! execution, type, task queue, event ids, attempt, times and the history through the
//! task's WorkflowTaskStarted: from event 1 for a task started from the normal queue,
//! from the event after `previous_started_event_id` for one started from the run's
//! sticky queue (its worker caches the rest, `crate::core::sticky`). A very long
//! history is sent as a first page plus a `next_page_token` the worker follows with
//! GetWorkflowExecutionHistory, bounded at the task's last event.

use std::collections::HashMap;

use hourglass_storage::state::RunKey;
use prost::Message;
use temporalio_protos::protos::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::TaskQueueKind;
use temporalio_protos::protos::temporal::api::history::v1::{History, HistoryEvent};
use temporalio_protos::protos::temporal::api::query::v1::WorkflowQuery;
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::PollWorkflowTaskQueueResponse;

use crate::core::state::{ExecutionState, WorkflowTaskInfo};
use crate::core::sticky;
use crate::core::tasks::TaskKind;
use crate::core::token::TaskToken;
use crate::core::txn::timestamp;
use crate::engine::errors::StoredDataError;
use crate::engine::history::PageToken;
use crate::engine::ShardOwner;
use crate::error::Result;

/// Most events in a task's first history page.
pub const FIRST_PAGE_EVENTS_MAX: usize = 1000;
/// A task's first history page stops growing past this many bytes (at least one event).
pub const FIRST_PAGE_BYTES_MAX: usize = 8 << 20;

/// Events 1..=`last_event_id` of `run`, decoded and checked dense. They are committed
/// (`last_event_id` comes from a state the caller loaded or committed), so they are
/// read even if the owner stopped meanwhile: a task whose start committed must reach
/// its poller (`ShardOwner::read_committed_history`).
pub fn read_history(owner: &ShardOwner, run: &RunKey, last_event_id: i64) -> Result<History> {
    read_range(owner, run, 1, last_event_id)
}

/// Events `first_event_id..=last_event_id` of `run`, as [`read_history`] reads them.
pub fn read_range(owner: &ShardOwner, run: &RunKey, first_event_id: i64, last_event_id: i64) -> Result<History> {
    assert!(first_event_id >= 1, "event ids start at 1, asked from {first_event_id}");
    let count = usize::try_from(last_event_id - first_event_id + 1).unwrap_or(0);
    if count == 0 {
        return Ok(History::default());
    }
    let raw = owner.read_committed_history(run, first_event_id as u64, count)?;
    let mut events = Vec::with_capacity(raw.len());
    for (expected, (id, bytes)) in (first_event_id as u64..).zip(raw) {
        if id != expected {
            return Err(StoredDataError::HistoryNotDense { run: run.clone(), found: id, expected }.into());
        }
        let event = HistoryEvent::decode(bytes.as_ref()).map_err(|source| StoredDataError::UndecodableEvent {
            run: run.clone(),
            event_id: id,
            source,
        })?;
        events.push(event);
    }
    if events.len() != count {
        return Err(StoredDataError::HistoryTooShort { run: run.clone(), found: events.len(), expected: count }.into());
    }
    Ok(History { events })
}

/// The first page of events 1..=`last_event_id` of `run` (at most `max_events`,
/// about `max_bytes`), and the token of the rest (empty when it is all there).
pub fn first_page(owner: &ShardOwner, run: &RunKey, last_event_id: i64, max_events: usize, max_bytes: usize) -> Result<(History, Vec<u8>)> {
    page_from(owner, run, (1, last_event_id), max_events, max_bytes)
}

/// [`first_page`] of events `first..=last` (a sticky task's new events).
pub fn page_from(
    owner: &ShardOwner,
    run: &RunKey,
    (first, last): (i64, i64),
    max_events: usize,
    max_bytes: usize,
) -> Result<(History, Vec<u8>)> {
    let max_events = i64::try_from(max_events.max(1)).unwrap_or(i64::MAX);
    let want_last = first.saturating_add(max_events - 1).min(last);
    let mut history = read_range(owner, run, first, want_last)?;
    let mut bytes = 0;
    let keep = history.events.iter().position(|e| {
        bytes += e.encoded_len();
        bytes > max_bytes
    });
    if let Some(keep) = keep {
        history.events.truncate(keep.max(1));
    }
    let next_event_id = first + history.events.len() as i64;
    let token = if next_event_id <= last {
        PageToken { run_id: run.run_id.clone(), next_event_id, end_event_id: last + 1, reverse: false }.encode_token()
    } else {
        Vec::new()
    };
    Ok((history, token))
}

/// The first event a started task's poll response carries: the one after the
/// previous started workflow task for a sticky task (its worker has the rest cached;
/// Go's RecordWorkflowTaskStarted with `StickyExecutionEnabled`), else event 1.
pub fn first_event_for(state: &ExecutionState) -> i64 {
    if sticky::sticky_queue(state).is_some() {
        state.last_completed_wft_started_id.max(0) + 1
    } else {
        1
    }
}

/// The first page of the task's history: [`first_event_for`]..=its WorkflowTaskStarted.
/// A speculative task's own events are held in the state, not written: they end the
/// last page (the first, or the one `GetWorkflowExecutionHistory` serves last for
/// the page token, which is bounded at the task's Started event).
fn task_history(owner: &ShardOwner, run: &RunKey, state: &ExecutionState, wt: &WorkflowTaskInfo) -> Result<(History, Vec<u8>)> {
    let held = &state.speculative_events;
    let written_last = wt.started_event_id - held.len() as i64;
    let range = (first_event_for(state), written_last);
    let (mut history, token) = page_from(owner, run, range, FIRST_PAGE_EVENTS_MAX, FIRST_PAGE_BYTES_MAX)?;
    if held.is_empty() {
        return Ok((history, token));
    }
    if token.is_empty() {
        history.events.extend(held.iter().cloned());
        return Ok((history, token));
    }
    let mut page = PageToken::decode_token(&token)?;
    page.end_event_id = wt.started_event_id + 1;
    Ok((history, page.encode_token()))
}

pub fn execution_of(run: &RunKey) -> WorkflowExecution {
    WorkflowExecution { workflow_id: run.workflow_id.clone(), run_id: run.run_id.clone() }
}

pub fn normal_queue(state: &ExecutionState) -> TaskQueue {
    TaskQueue { name: state.task_queue.clone(), kind: TaskQueueKind::Normal as i32, normal_name: String::new() }
}

/// The response for the started task `wt` of `run` (state as committed).
pub fn workflow_task_response(
    owner: &ShardOwner,
    run: &RunKey,
    state: &ExecutionState,
    wt: &WorkflowTaskInfo,
    queries: HashMap<String, WorkflowQuery>,
) -> Result<PollWorkflowTaskQueueResponse> {
    let token = TaskToken {
        kind: TaskKind::WorkflowTask as i32,
        namespace: run.namespace.clone(),
        workflow_id: run.workflow_id.clone(),
        run_id: run.run_id.clone(),
        scheduled_event_id: wt.scheduled_event_id,
        attempt: wt.attempt,
        started_event_id: wt.started_event_id,
        started_time_ms: wt.started_time_ms,
        ..Default::default()
    };
    let (history, next_page_token) = task_history(owner, run, state, wt)?;
    Ok(PollWorkflowTaskQueueResponse {
        task_token: token.encode_token(),
        workflow_execution: Some(execution_of(run)),
        workflow_type: Some(WorkflowType { name: state.workflow_type.clone() }),
        previous_started_event_id: state.last_completed_wft_started_id,
        started_event_id: wt.started_event_id,
        attempt: wt.attempt,
        history: Some(history),
        next_page_token,
        workflow_execution_task_queue: Some(normal_queue(state)),
        scheduled_time: Some(timestamp(wt.scheduled_time_ms)),
        started_time: Some(timestamp(wt.started_time_ms)),
        queries,
        ..Default::default()
    })
}
