//! `RunTxn`: everything one state transition of one run does — new history events,
//! the new mutable state, tasks enqueued or acknowledged, timers added or removed —
//! gathered while a handler runs, then turned into exactly one storage `Transition`
//! (one Raft entry, one durable write).

use bytes::Bytes;
use hourglass_storage::state::{Op, QueueKey, QueueKind, RunKey, Transition};
use prost::Message;
use temporalio_protos::protos::temporal::api::enums::v1::EventType;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;

use super::state::ExecutionState;
use super::tasks::{TaskKind, TaskPayload, TimerPayload};
use super::RunView;

/// A task this transaction enqueues; after commit it is handed to matching with the id
/// the shard state machine assigned.
#[derive(Debug, Clone, PartialEq)]
pub struct EnqueuedTask {
    pub queue: QueueKey,
    pub payload: TaskPayload,
}

pub struct RunTxn {
    pub key: RunKey,
    pub now_ms: i64,
    /// The run's mutable state; handlers change it freely, it is written whole.
    pub state: ExecutionState,
    next_event_id: i64,
    /// The run's state version this transaction was built from: its state write is
    /// applied only if the run is still at that version (fencing at apply).
    expected_version: u64,
    create: bool,
    events: Vec<HistoryEvent>,
    ops: Vec<Op>,
    enqueued: Vec<EnqueuedTask>,
    timers_added: usize,
    close: bool,
    /// The run's durable timers as loaded (minus those this transaction removes).
    stored_timers: Vec<(u64, Bytes)>,
}

impl RunTxn {
    /// A transaction creating a new run (its first event gets id 1).
    pub fn create(key: RunKey, now_ms: i64, state: ExecutionState) -> Self {
        Self::new(key, now_ms, state, 1, true)
    }

    /// A transaction on the run `view` shows, at `now_ms`, fenced on its state version.
    pub fn from_view(view: RunView, now_ms: i64) -> Self {
        let mut txn = Self::existing(view.key, now_ms, view.state, view.next_event_id, view.state_version);
        txn.stored_timers = view.stored_timers;
        txn
    }

    /// A transaction on an existing run whose next event id is `next_event_id` and
    /// whose state is at `state_version`.
    pub fn existing(key: RunKey, now_ms: i64, state: ExecutionState, next_event_id: i64, state_version: u64) -> Self {
        let mut txn = Self::new(key, now_ms, state, next_event_id, false);
        txn.expected_version = state_version;
        txn
    }

    fn new(key: RunKey, now_ms: i64, state: ExecutionState, next_event_id: i64, create: bool) -> Self {
        assert!(next_event_id >= 1, "event ids start at 1");
        Self {
            key,
            now_ms,
            state,
            next_event_id,
            expected_version: 0,
            create,
            events: Vec::new(),
            ops: Vec::new(),
            enqueued: Vec::new(),
            timers_added: 0,
            close: false,
            stored_timers: Vec::new(),
        }
    }

    /// Id the next added event will get.
    pub fn next_event_id(&self) -> i64 {
        self.next_event_id
    }

    /// Events added so far in this transaction.
    pub fn events(&self) -> &[HistoryEvent] {
        &self.events
    }

    /// Appends an event now; returns its id. `event_time` is the transaction's time.
    pub fn add_event(&mut self, attributes: Attributes) -> i64 {
        let event = new_event(self.next_event_id, self.now_ms, attributes);
        self.state.history_size_bytes += event.encoded_len() as i64;
        self.next_event_id += 1;
        self.events.push(event);
        self.next_event_id - 1
    }

    /// Appends an already-built event (e.g. a buffered one), giving it the next id.
    pub fn add_built_event(&mut self, mut event: HistoryEvent) -> i64 {
        event.event_id = self.next_event_id;
        self.state.history_size_bytes += event.encoded_len() as i64;
        self.next_event_id += 1;
        self.events.push(event);
        self.next_event_id - 1
    }

    /// Keeps an event for after the in-flight workflow task (the buffering rule).
    pub fn buffer_event(&mut self, attributes: Attributes) {
        let event = new_event(0, self.now_ms, attributes);
        self.state.buffered_events.push(event.encode_to_vec());
    }

    /// Writes every buffered event into history; returns how many there were.
    pub fn flush_buffered_events(&mut self) -> usize {
        let buffered = std::mem::take(&mut self.state.buffered_events);
        let n = buffered.len();
        for raw in buffered {
            match HistoryEvent::decode(raw.as_slice()) {
                Ok(mut event) => {
                    // A buffered activity outcome follows its buffered Started event;
                    // link it now that the Started event has an id.
                    wire_started_event_id(&mut event, self.events.last());
                    self.add_built_event(event);
                }
                Err(e) => tracing::error!(run = ?self.key, error = %e, "dropping a buffered event that does not decode"),
            }
        }
        n
    }

    pub fn enqueue(&mut self, kind: TaskKind, task_queue: &str, scheduled_event_id: i64, attempt: i32) {
        let payload = TaskPayload { kind: kind as i32, scheduled_event_id, attempt, normal_queue: String::new() };
        self.enqueue_payload(task_queue, payload);
    }

    /// Enqueues `payload` on `task_queue` (its kind decides workflow or activity).
    pub fn enqueue_payload(&mut self, task_queue: &str, payload: TaskPayload) {
        let kind = TaskKind::try_from(payload.kind).unwrap_or(TaskKind::Unspecified);
        let queue = QueueKey {
            namespace: self.key.namespace.clone(),
            name: task_queue.to_string(),
            kind: match kind {
                TaskKind::ActivityTask => QueueKind::Activity,
                _ => QueueKind::Workflow,
            },
        };
        self.ops.push(Op::Enqueue { queue: queue.clone(), run: self.key.clone(), task: Bytes::from(payload.encode_to_vec()) });
        self.enqueued.push(EnqueuedTask { queue, payload });
    }

    pub fn ack(&mut self, queue: QueueKey, task_id: u64) {
        self.ops.push(Op::Ack { queue, task_id });
    }

    pub fn add_timer(&mut self, due_ms: i64, payload: TimerPayload) {
        self.timers_added += 1;
        self.ops.push(Op::AddTimer { run: self.key.clone(), due_ms, payload: Bytes::from(payload.encode_to_vec()) });
    }

    pub fn remove_timer(&mut self, timer_id: u64) {
        self.stored_timers.retain(|(id, _)| *id != timer_id);
        self.ops.push(Op::RemoveTimer { timer_id });
    }

    /// The run's durable timers that were stored when it was loaded and that this
    /// transaction does not remove (timers only change under the workflow lock).
    pub fn stored_timers(&self) -> impl Iterator<Item = (u64, TimerPayload)> + '_ {
        super::decode_timers(&self.stored_timers)
    }

    /// Closes the run in the storage index (after its close event is added).
    pub fn close_run(&mut self) {
        self.close = true;
    }

    pub fn is_noop(&self) -> bool {
        !self.create && self.events.is_empty() && self.ops.is_empty() && !self.close
    }

    /// The storage transition, plus what matching and the timer service must learn
    /// after it commits.
    pub fn into_transition(self) -> (Transition, TxnEffects) {
        let mut ops = Vec::with_capacity(self.ops.len() + 3);
        let state = Bytes::from(self.state.encode_to_vec());
        if self.create {
            ops.push(Op::CreateRun { run: self.key.clone(), state });
        } else {
            ops.push(Op::SetState { run: self.key.clone(), expected_version: self.expected_version, state });
        }
        let first_event_id = self.next_event_id - self.events.len() as i64;
        if !self.events.is_empty() {
            ops.push(Op::AppendEvents {
                run: self.key.clone(),
                first_event_id: first_event_id as u64,
                events: self.events.iter().map(|e| Bytes::from(e.encode_to_vec())).collect(),
            });
        }
        ops.extend(self.ops);
        if self.close {
            ops.push(Op::CloseRun { run: self.key.clone() });
        }
        let effects = TxnEffects { enqueued: self.enqueued, timers_added: self.timers_added, closed: self.close, events: self.events };
        (Transition { time_ms: self.now_ms, dedupe: None, ops }, effects)
    }
}

/// What happened, for the after-commit notifications.
#[derive(Debug, Default)]
pub struct TxnEffects {
    pub enqueued: Vec<EnqueuedTask>,
    pub timers_added: usize,
    pub closed: bool,
    pub events: Vec<HistoryEvent>,
}

pub fn new_event(event_id: i64, now_ms: i64, attributes: Attributes) -> HistoryEvent {
    HistoryEvent {
        event_id,
        event_time: Some(timestamp(now_ms)),
        event_type: event_type_of(&attributes) as i32,
        attributes: Some(attributes),
        ..Default::default()
    }
}

pub fn timestamp(ms: i64) -> prost_wkt_types::Timestamp {
    prost_wkt_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

pub fn duration(ms: i64) -> prost_wkt_types::Duration {
    prost_wkt_types::Duration { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 }
}

/// Milliseconds of a protobuf duration (negative and absurd values clamp to 0 / max).
pub fn duration_ms(d: Option<&prost_wkt_types::Duration>) -> i64 {
    d.map(|d| d.seconds.saturating_mul(1000).saturating_add(i64::from(d.nanos) / 1_000_000).max(0)).unwrap_or(0)
}

pub fn event_type_of(attributes: &Attributes) -> EventType {
    match attributes {
        Attributes::WorkflowExecutionStartedEventAttributes(_) => EventType::WorkflowExecutionStarted,
        Attributes::WorkflowExecutionCompletedEventAttributes(_) => EventType::WorkflowExecutionCompleted,
        Attributes::WorkflowExecutionFailedEventAttributes(_) => EventType::WorkflowExecutionFailed,
        Attributes::WorkflowExecutionTimedOutEventAttributes(_) => EventType::WorkflowExecutionTimedOut,
        Attributes::WorkflowTaskScheduledEventAttributes(_) => EventType::WorkflowTaskScheduled,
        Attributes::WorkflowTaskStartedEventAttributes(_) => EventType::WorkflowTaskStarted,
        Attributes::WorkflowTaskCompletedEventAttributes(_) => EventType::WorkflowTaskCompleted,
        Attributes::WorkflowTaskTimedOutEventAttributes(_) => EventType::WorkflowTaskTimedOut,
        Attributes::WorkflowTaskFailedEventAttributes(_) => EventType::WorkflowTaskFailed,
        Attributes::ActivityTaskScheduledEventAttributes(_) => EventType::ActivityTaskScheduled,
        Attributes::ActivityTaskStartedEventAttributes(_) => EventType::ActivityTaskStarted,
        Attributes::ActivityTaskCompletedEventAttributes(_) => EventType::ActivityTaskCompleted,
        Attributes::ActivityTaskFailedEventAttributes(_) => EventType::ActivityTaskFailed,
        Attributes::ActivityTaskTimedOutEventAttributes(_) => EventType::ActivityTaskTimedOut,
        Attributes::TimerStartedEventAttributes(_) => EventType::TimerStarted,
        Attributes::TimerFiredEventAttributes(_) => EventType::TimerFired,
        Attributes::ActivityTaskCancelRequestedEventAttributes(_) => EventType::ActivityTaskCancelRequested,
        Attributes::ActivityTaskCanceledEventAttributes(_) => EventType::ActivityTaskCanceled,
        Attributes::TimerCanceledEventAttributes(_) => EventType::TimerCanceled,
        Attributes::MarkerRecordedEventAttributes(_) => EventType::MarkerRecorded,
        Attributes::WorkflowExecutionSignaledEventAttributes(_) => EventType::WorkflowExecutionSignaled,
        Attributes::WorkflowExecutionTerminatedEventAttributes(_) => EventType::WorkflowExecutionTerminated,
        Attributes::WorkflowExecutionCancelRequestedEventAttributes(_) => EventType::WorkflowExecutionCancelRequested,
        Attributes::WorkflowExecutionCanceledEventAttributes(_) => EventType::WorkflowExecutionCanceled,
        Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(_) => {
            EventType::RequestCancelExternalWorkflowExecutionInitiated
        }
        Attributes::RequestCancelExternalWorkflowExecutionFailedEventAttributes(_) => {
            EventType::RequestCancelExternalWorkflowExecutionFailed
        }
        Attributes::ExternalWorkflowExecutionCancelRequestedEventAttributes(_) => EventType::ExternalWorkflowExecutionCancelRequested,
        Attributes::WorkflowExecutionContinuedAsNewEventAttributes(_) => EventType::WorkflowExecutionContinuedAsNew,
        Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(_) => EventType::StartChildWorkflowExecutionInitiated,
        Attributes::StartChildWorkflowExecutionFailedEventAttributes(_) => EventType::StartChildWorkflowExecutionFailed,
        Attributes::ChildWorkflowExecutionStartedEventAttributes(_) => EventType::ChildWorkflowExecutionStarted,
        Attributes::ChildWorkflowExecutionCompletedEventAttributes(_) => EventType::ChildWorkflowExecutionCompleted,
        Attributes::ChildWorkflowExecutionFailedEventAttributes(_) => EventType::ChildWorkflowExecutionFailed,
        Attributes::ChildWorkflowExecutionCanceledEventAttributes(_) => EventType::ChildWorkflowExecutionCanceled,
        Attributes::ChildWorkflowExecutionTimedOutEventAttributes(_) => EventType::ChildWorkflowExecutionTimedOut,
        Attributes::ChildWorkflowExecutionTerminatedEventAttributes(_) => EventType::ChildWorkflowExecutionTerminated,
        Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(_) => EventType::SignalExternalWorkflowExecutionInitiated,
        Attributes::SignalExternalWorkflowExecutionFailedEventAttributes(_) => EventType::SignalExternalWorkflowExecutionFailed,
        Attributes::ExternalWorkflowExecutionSignaledEventAttributes(_) => EventType::ExternalWorkflowExecutionSignaled,
        Attributes::UpsertWorkflowSearchAttributesEventAttributes(_) => EventType::UpsertWorkflowSearchAttributes,
        Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(_) => EventType::WorkflowExecutionUpdateAccepted,
        Attributes::WorkflowExecutionUpdateRejectedEventAttributes(_) => EventType::WorkflowExecutionUpdateRejected,
        Attributes::WorkflowExecutionUpdateCompletedEventAttributes(_) => EventType::WorkflowExecutionUpdateCompleted,
        Attributes::WorkflowPropertiesModifiedExternallyEventAttributes(_) => EventType::WorkflowPropertiesModifiedExternally,
        Attributes::ActivityPropertiesModifiedExternallyEventAttributes(_) => EventType::ActivityPropertiesModifiedExternally,
        Attributes::WorkflowPropertiesModifiedEventAttributes(_) => EventType::WorkflowPropertiesModified,
        Attributes::WorkflowExecutionUpdateAdmittedEventAttributes(_) => EventType::WorkflowExecutionUpdateAdmitted,
        Attributes::NexusOperationScheduledEventAttributes(_) => EventType::NexusOperationScheduled,
        Attributes::NexusOperationStartedEventAttributes(_) => EventType::NexusOperationStarted,
        Attributes::NexusOperationCompletedEventAttributes(_) => EventType::NexusOperationCompleted,
        Attributes::NexusOperationFailedEventAttributes(_) => EventType::NexusOperationFailed,
        Attributes::NexusOperationCanceledEventAttributes(_) => EventType::NexusOperationCanceled,
        Attributes::NexusOperationTimedOutEventAttributes(_) => EventType::NexusOperationTimedOut,
        Attributes::NexusOperationCancelRequestedEventAttributes(_) => EventType::NexusOperationCancelRequested,
        Attributes::WorkflowExecutionOptionsUpdatedEventAttributes(_) => EventType::WorkflowExecutionOptionsUpdated,
        Attributes::NexusOperationCancelRequestCompletedEventAttributes(_) => EventType::NexusOperationCancelRequestCompleted,
        Attributes::NexusOperationCancelRequestFailedEventAttributes(_) => EventType::NexusOperationCancelRequestFailed,
        Attributes::WorkflowExecutionPausedEventAttributes(_) => EventType::WorkflowExecutionPaused,
        Attributes::WorkflowExecutionUnpausedEventAttributes(_) => EventType::WorkflowExecutionUnpaused,
        Attributes::WorkflowExecutionTimeSkippingTransitionedEventAttributes(_) => EventType::WorkflowExecutionTimeSkippingTransitioned,
    }
}

/// Completes the wiring [`close`] leaves to the flush of buffered events: an activity
/// outcome buffered directly after its ActivityTaskStarted (with `started_event_id`
/// 0) gets the id that Started event received. `previous` is the event flushed just
/// before `event`, with its final id.
pub fn wire_started_event_id(event: &mut HistoryEvent, previous: Option<&HistoryEvent>) {
    let Some(previous) = previous else { return };
    let Some(Attributes::ActivityTaskStartedEventAttributes(started)) = previous.attributes.as_ref() else { return };
    let (scheduled_event_id, started_event_id) = match event.attributes.as_mut() {
        Some(Attributes::ActivityTaskCompletedEventAttributes(a)) => (a.scheduled_event_id, &mut a.started_event_id),
        Some(Attributes::ActivityTaskFailedEventAttributes(a)) => (a.scheduled_event_id, &mut a.started_event_id),
        Some(Attributes::ActivityTaskTimedOutEventAttributes(a)) => (a.scheduled_event_id, &mut a.started_event_id),
        Some(Attributes::ActivityTaskCanceledEventAttributes(a)) => (a.scheduled_event_id, &mut a.started_event_id),
        _ => return,
    };
    if scheduled_event_id == started.scheduled_event_id && *started_event_id == 0 {
        *started_event_id = previous.event_id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_protos::protos::temporal::api::history::v1::TimerFiredEventAttributes;

    fn key() -> RunKey {
        RunKey { namespace: "ns".into(), workflow_id: "wf".into(), run_id: "r".into() }
    }

    #[test]
    fn events_get_dense_ids_types_and_times() {
        let mut txn = RunTxn::existing(key(), 1_500, ExecutionState::default(), 7, 1);
        let id = txn.add_event(Attributes::TimerFiredEventAttributes(TimerFiredEventAttributes::default()));
        assert_eq!(id, 7);
        assert_eq!(txn.next_event_id(), 8);
        let e = &txn.events()[0];
        assert_eq!(e.event_type, EventType::TimerFired as i32);
        assert_eq!(e.event_time, Some(timestamp(1_500)));
        let (t, _) = txn.into_transition();
        assert!(matches!(&t.ops[1], Op::AppendEvents { first_event_id: 7, events, .. } if events.len() == 1));
    }

    #[test]
    fn buffered_events_are_numbered_when_flushed() {
        let mut txn = RunTxn::existing(key(), 0, ExecutionState::default(), 5, 1);
        txn.buffer_event(Attributes::TimerFiredEventAttributes(TimerFiredEventAttributes::default()));
        assert!(txn.events().is_empty());
        assert_eq!(txn.flush_buffered_events(), 1);
        assert_eq!(txn.events()[0].event_id, 5);
        assert!(txn.state.buffered_events.is_empty());
    }

    #[test]
    fn time_conversions() {
        assert_eq!(duration_ms(Some(&duration(1_500))), 1_500);
        assert_eq!(duration_ms(None), 0);
        assert_eq!(duration_ms(Some(&prost_wkt_types::Duration { seconds: -5, nanos: 0 })), 0);
        assert_eq!(timestamp(-1), prost_wkt_types::Timestamp { seconds: -1, nanos: 999_000_000 });
    }
}
