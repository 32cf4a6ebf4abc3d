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
use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;

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

/// Where a transaction's events stood ([`RunTxn::event_mark`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventMark {
    events: usize,
    next_event_id: i64,
    history_size_bytes: i64,
    /// The run's last completed workflow task's Started event id, then.
    pub last_completed_started_id: i64,
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
    /// Deletes the (closed) run once everything else applied (`DeleteWorkflowExecution`).
    delete: bool,
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
            delete: false,
            stored_timers: Vec::new(),
        }
    }

    /// Id the next added event will get (after a speculative workflow task's held
    /// events, which are written first).
    pub fn next_event_id(&self) -> i64 {
        self.next_event_id + self.state.speculative_events.len() as i64
    }

    /// Id the next event written to history gets: held events not counted.
    pub(super) fn next_written_event_id(&self) -> i64 {
        self.next_event_id
    }

    /// Events added so far in this transaction.
    pub fn events(&self) -> &[HistoryEvent] {
        &self.events
    }

    /// Appends an event now; returns its id. `event_time` is the transaction's time.
    /// A speculative workflow task's held events are written first: they took
    /// their ids when held.
    pub fn add_event(&mut self, attributes: Attributes) -> i64 {
        self.write_speculative_events();
        let event = new_event(self.next_event_id, self.now_ms, attributes);
        self.push_event(event)
    }

    /// Appends an already-built event (e.g. a buffered one), giving it the next id.
    pub fn add_built_event(&mut self, mut event: HistoryEvent) -> i64 {
        self.write_speculative_events();
        event.event_id = self.next_event_id;
        self.push_event(event)
    }

    fn push_event(&mut self, event: HistoryEvent) -> i64 {
        assert_eq!(event.event_id, self.next_event_id, "run {:?}: events are written densely", self.key);
        self.state.history_size_bytes += event.encoded_len() as i64;
        self.next_event_id += 1;
        self.events.push(event);
        self.next_event_id - 1
    }

    /// Holds an event of a speculative workflow task out of history (see
    /// [`ExecutionState::speculative_events`]); returns the id it takes when written.
    pub fn hold_speculative_event(&mut self, attributes: Attributes) -> i64 {
        let event_id = self.next_event_id + self.state.speculative_events.len() as i64;
        self.state.speculative_events.push(new_event(event_id, self.now_ms, attributes));
        event_id
    }

    /// Writes the held events of a speculative workflow task (it becomes a normal one:
    /// something else happened to the run).
    fn write_speculative_events(&mut self) {
        for event in std::mem::take(&mut self.state.speculative_events) {
            self.push_event(event);
        }
    }

    /// Where this transaction's events stand, to [`Self::roll_back_events`] to.
    pub fn event_mark(&self) -> EventMark {
        EventMark {
            events: self.events.len(),
            next_event_id: self.next_event_id,
            history_size_bytes: self.state.history_size_bytes,
            last_completed_started_id: self.state.last_completed_wft_started_id,
        }
    }

    /// How many events were added since `mark`.
    pub fn events_since(&self, mark: EventMark) -> usize {
        self.events.len().saturating_sub(mark.events)
    }

    /// Forgets the events added since `mark` (a speculative workflow task that did
    /// nothing leaves no trace in history).
    pub fn roll_back_events(&mut self, mark: EventMark) {
        assert!(mark.events <= self.events.len(), "run {:?}: a mark of this transaction", self.key);
        self.events.truncate(mark.events);
        self.next_event_id = mark.next_event_id;
        self.state.history_size_bytes = mark.history_size_bytes;
    }

    /// Attaches `metadata` (a summary and details for user interfaces) to the event
    /// `event_id` this transaction added, counting it in the history size; false (and
    /// nothing changed) if this transaction added no such event.
    pub fn set_user_metadata(&mut self, event_id: i64, metadata: UserMetadata) -> bool {
        let Some(event) = self.events.iter_mut().find(|e| e.event_id == event_id) else { return false };
        let before = event.encoded_len() as i64;
        event.user_metadata = Some(metadata);
        self.state.history_size_bytes += event.encoded_len() as i64 - before;
        true
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

    /// Takes back the enqueue of (`kind`, `scheduled_event_id`, `attempt`) this
    /// transaction made, for a task started in the same transition (eager dispatch:
    /// it never reaches matching). Returns whether there was one.
    pub fn retract_enqueue(&mut self, kind: TaskKind, scheduled_event_id: i64, attempt: i32) -> bool {
        let names = |p: &TaskPayload| p.kind == kind as i32 && p.scheduled_event_id == scheduled_event_id && p.attempt == attempt;
        let Some(at) = self.enqueued.iter().position(|t| names(&t.payload)) else { return false };
        let EnqueuedTask { queue, payload } = self.enqueued.remove(at);
        let encoded = payload.encode_to_vec();
        let op = self.ops.iter().position(|op| matches!(op, Op::Enqueue { queue: q, task, .. } if *q == queue && task[..] == encoded[..]));
        assert!(op.is_some(), "an enqueued task of {:?} has no Enqueue op", self.key);
        if let Some(op) = op {
            self.ops.remove(op);
        }
        true
    }

    /// Takes back a timer this transaction added with exactly `payload` (one made
    /// moot in the same transition). Returns whether there was one.
    pub fn retract_timer(&mut self, payload: &TimerPayload) -> bool {
        let encoded = payload.encode_to_vec();
        let Some(at) = self.ops.iter().position(|op| matches!(op, Op::AddTimer { payload: p, .. } if p[..] == encoded[..])) else {
            return false;
        };
        self.ops.remove(at);
        self.timers_added -= 1;
        true
    }

    /// Changes event `event_id` this transaction added (history size kept exact);
    /// false if the transaction added no such event.
    pub fn amend_event(&mut self, event_id: i64, amend: impl FnOnce(&mut HistoryEvent)) -> bool {
        let Some(event) = self.events.iter_mut().find(|e| e.event_id == event_id) else { return false };
        let before = event.encoded_len() as i64;
        amend(event);
        assert_eq!(event.event_id, event_id, "amending an event must keep its id");
        self.state.history_size_bytes += event.encoded_len() as i64 - before;
        true
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

    /// Deletes the run from storage at the end of this transaction (it must be
    /// closed by then): `DeleteWorkflowExecution`.
    pub fn delete_run(&mut self) {
        self.delete = true;
    }

    pub fn is_noop(&self) -> bool {
        !self.create && self.events.is_empty() && self.ops.is_empty() && !self.close && !self.delete
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
        if self.delete {
            ops.push(Op::DeleteRun { run: self.key.clone() });
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
    fn held_events_of_a_speculative_task_are_written_first_or_rolled_back() {
        use temporalio_protos::protos::temporal::api::history::v1::{
            WorkflowTaskScheduledEventAttributes, WorkflowTaskStartedEventAttributes,
        };
        let scheduled = || Attributes::WorkflowTaskScheduledEventAttributes(WorkflowTaskScheduledEventAttributes::default());
        let started = || Attributes::WorkflowTaskStartedEventAttributes(WorkflowTaskStartedEventAttributes::default());
        let fired = || Attributes::TimerFiredEventAttributes(TimerFiredEventAttributes::default());

        // Held: ids taken, nothing written.
        let mut txn = RunTxn::existing(key(), 0, ExecutionState::default(), 5, 1);
        assert_eq!(txn.hold_speculative_event(scheduled()), 5);
        assert_eq!(txn.hold_speculative_event(started()), 6);
        assert!(txn.events().is_empty() && txn.state.workflow_task_speculative());
        assert_eq!(txn.next_event_id(), 7, "the next event follows the held ones");
        // Something else happens: the held events are written first, densely.
        let mark = txn.event_mark();
        assert_eq!(txn.add_event(fired()), 7);
        let ids: Vec<i64> = txn.events().iter().map(|e| e.event_id).collect();
        assert_eq!(ids, [5, 6, 7]);
        assert!(!txn.state.workflow_task_speculative());
        let size = txn.state.history_size_bytes;
        assert!(size > 0);
        // Rolled back: as if none was ever written.
        assert_eq!(txn.events_since(mark), 3);
        txn.roll_back_events(mark);
        assert!(txn.events().is_empty());
        assert_eq!((txn.next_event_id(), txn.state.history_size_bytes), (5, 0));
        assert_eq!(txn.add_event(fired()), 5);
    }

    #[test]
    fn user_metadata_goes_on_an_added_event_and_counts_in_the_history_size() {
        use temporalio_protos::protos::temporal::api::common::v1::Payload;
        let mut txn = RunTxn::existing(key(), 0, ExecutionState::default(), 3, 1);
        let id = txn.add_event(Attributes::TimerFiredEventAttributes(TimerFiredEventAttributes::default()));
        let size = txn.state.history_size_bytes;
        let metadata = UserMetadata { summary: Some(Payload { data: b"nap".to_vec(), ..Default::default() }), details: None };
        assert!(!txn.set_user_metadata(id + 1, metadata.clone()), "no such event in this transaction");
        assert_eq!(txn.state.history_size_bytes, size);
        assert!(txn.set_user_metadata(id, metadata.clone()));
        assert_eq!(txn.events()[0].user_metadata, Some(metadata));
        assert_eq!(txn.state.history_size_bytes, txn.events()[0].encoded_len() as i64, "the size counts the event as written");
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
