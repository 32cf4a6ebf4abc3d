//! What is compared: per event type, the attributes that carry meaning — links to
//! other events, names, timeouts, attempts, retry states, causes, payloads, failure
//! messages — extracted from our prost events by hand and looked up in the reference
//! JSON by the same camelCase path, both normalised to proto3-JSON text ("" for a
//! default value; payloads as `encoding data`). The event's `userMetadata` is compared
//! whole (`compare`). Not compared, by design: event ids beyond position, times,
//! identities, request ids, run ids, history sizes, worker versions, SDK metadata.

use serde_json::Value;
use temporalio_protos::protos::temporal::api::common::v1::Payloads;
use temporalio_protos::protos::temporal::api::enums::v1::{
    CancelExternalWorkflowExecutionFailedCause, ContinueAsNewInitiator, ParentClosePolicy, RetryState,
    SignalExternalWorkflowExecutionFailedCause, TaskQueueKind, TimeoutType, WorkflowIdReusePolicy, WorkflowTaskFailedCause,
};
use temporalio_protos::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_protos::protos::temporal::api::failure::v1::Failure;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes as A;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;

use super::json::{payloads_text, FromJson};
use super::reference::{self, RefEvent};

/// One compared attribute of one of our events.
pub enum Val {
    /// Already in proto3-JSON text; "" is the default.
    Text(String),
    /// A duration in ms (compared at ms precision: Hourglass's clock counts ms).
    Dur(Option<i64>),
    /// Payloads, compared as `encoding data` text.
    Payloads(String),
    /// The keys of a map (search attributes, memo fields), sorted and joined by `,`.
    Keys(String),
}

fn s(v: &str) -> Val {
    Val::Text(v.to_string())
}

fn n(v: i64) -> Val {
    Val::Text(if v == 0 { String::new() } else { v.to_string() })
}

fn b(v: bool) -> Val {
    Val::Text(if v { "true".into() } else { String::new() })
}

fn f(v: f64) -> Val {
    Val::Text(if v == 0.0 { String::new() } else { format!("{v}") })
}

fn en<E: TryFrom<i32>>(v: i32, name: fn(&E) -> &'static str) -> Val {
    Val::Text(match E::try_from(v) {
        _ if v == 0 => String::new(),
        Ok(e) => name(&e).to_string(),
        Err(_) => v.to_string(),
    })
}

fn d(v: &Option<prost_wkt_types::Duration>) -> Val {
    Val::Dur(v.as_ref().map(|d| d.seconds * 1000 + i64::from(d.nanos) / 1_000_000))
}

fn wid(v: &Option<temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution>) -> Val {
    s(v.as_ref().map(|w| w.workflow_id.as_str()).unwrap_or_default())
}

/// The keys of a payload map, sorted, as the reference's JSON object prints them.
fn keys(v: Option<&std::collections::HashMap<String, temporalio_protos::protos::temporal::api::common::v1::Payload>>) -> String {
    let mut keys: Vec<&str> = v.map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    keys.join(",")
}

fn p(v: &Option<Payloads>) -> Val {
    Val::Payloads(payloads_text(v.as_ref()))
}

fn msg(v: &Option<Failure>) -> Val {
    s(v.as_ref().map(|f| f.message.as_str()).unwrap_or_default())
}

fn source(v: Option<&Failure>) -> Val {
    s(v.map(|f| f.source.as_str()).unwrap_or_default())
}

/// A timeout failure's timeout type.
fn timeout_type(v: Option<&Failure>) -> Val {
    let t = v.and_then(|f| match &f.failure_info {
        Some(FailureInfo::TimeoutFailureInfo(t)) => Some(t.timeout_type),
        _ => None,
    });
    en(t.unwrap_or(0), TimeoutType::as_str_name)
}

/// The compared attributes of our event `e`, by reference JSON path.
#[allow(deprecated)] // `use_workflow_build_id`, `inherit_build_id`: deprecated, still in history
pub fn fields(e: &HistoryEvent) -> Vec<(&'static str, Val)> {
    let Some(attrs) = &e.attributes else { return Vec::new() };
    let name = |t: &Option<temporalio_protos::protos::temporal::api::common::v1::WorkflowType>| {
        s(t.as_ref().map(|t| t.name.as_str()).unwrap_or_default())
    };
    let queue = |q: &Option<temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue>| {
        s(q.as_ref().map(|q| q.name.as_str()).unwrap_or_default())
    };
    match attrs {
        A::WorkflowExecutionStartedEventAttributes(a) => vec![
            ("workflowType.name", name(&a.workflow_type)),
            ("taskQueue.name", queue(&a.task_queue)),
            ("input", p(&a.input)),
            ("workflowExecutionTimeout", d(&a.workflow_execution_timeout)),
            ("workflowRunTimeout", d(&a.workflow_run_timeout)),
            ("workflowTaskTimeout", d(&a.workflow_task_timeout)),
            ("initiator", en(a.initiator, ContinueAsNewInitiator::as_str_name)),
            ("attempt", n(i64::from(a.attempt))),
            ("firstWorkflowTaskBackoff", d(&a.first_workflow_task_backoff)),
            ("parentInitiatedEventId", n(a.parent_initiated_event_id)),
            ("parentWorkflowNamespace", s(&a.parent_workflow_namespace)),
            (
                "parentWorkflowExecution.workflowId",
                s(a.parent_workflow_execution.as_ref().map(|w| w.workflow_id.as_str()).unwrap_or_default()),
            ),
            ("rootWorkflowExecution.workflowId", s(a.root_workflow_execution.as_ref().map(|w| w.workflow_id.as_str()).unwrap_or_default())),
            ("workflowId", s(&a.workflow_id)),
        ],
        // The task queue as Temporal records it: the worker's sticky queue (kind STICKY,
        // the normal name) once a completion named one.
        A::WorkflowTaskScheduledEventAttributes(a) => vec![
            ("taskQueue.name", queue(&a.task_queue)),
            ("taskQueue.kind", en(a.task_queue.as_ref().map_or(0, |q| q.kind), TaskQueueKind::as_str_name)),
            ("taskQueue.normalName", s(a.task_queue.as_ref().map(|q| q.normal_name.as_str()).unwrap_or_default())),
            ("startToCloseTimeout", d(&a.start_to_close_timeout)),
            ("attempt", n(i64::from(a.attempt))),
        ],
        A::WorkflowTaskStartedEventAttributes(a) => {
            vec![("scheduledEventId", n(a.scheduled_event_id)), ("suggestContinueAsNew", b(a.suggest_continue_as_new))]
        }
        A::WorkflowTaskCompletedEventAttributes(a) => {
            vec![("scheduledEventId", n(a.scheduled_event_id)), ("startedEventId", n(a.started_event_id))]
        }
        A::WorkflowTaskFailedEventAttributes(a) => vec![
            ("scheduledEventId", n(a.scheduled_event_id)),
            ("startedEventId", n(a.started_event_id)),
            ("cause", en(a.cause, WorkflowTaskFailedCause::as_str_name)),
            ("failure.message", msg(&a.failure)),
        ],
        A::WorkflowTaskTimedOutEventAttributes(a) => vec![
            ("scheduledEventId", n(a.scheduled_event_id)),
            ("startedEventId", n(a.started_event_id)),
            ("timeoutType", en(a.timeout_type, TimeoutType::as_str_name)),
        ],
        A::ActivityTaskScheduledEventAttributes(a) => {
            let r = a.retry_policy.clone().unwrap_or_default();
            vec![
                ("activityId", s(&a.activity_id)),
                ("activityType.name", s(a.activity_type.as_ref().map(|t| t.name.as_str()).unwrap_or_default())),
                ("taskQueue.name", queue(&a.task_queue)),
                ("input", p(&a.input)),
                ("scheduleToCloseTimeout", d(&a.schedule_to_close_timeout)),
                ("scheduleToStartTimeout", d(&a.schedule_to_start_timeout)),
                ("startToCloseTimeout", d(&a.start_to_close_timeout)),
                ("heartbeatTimeout", d(&a.heartbeat_timeout)),
                ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)),
                ("retryPolicy.initialInterval", d(&r.initial_interval)),
                ("retryPolicy.backoffCoefficient", f(r.backoff_coefficient)),
                ("retryPolicy.maximumInterval", d(&r.maximum_interval)),
                ("retryPolicy.maximumAttempts", n(i64::from(r.maximum_attempts))),
                ("useWorkflowBuildId", b(a.use_workflow_build_id)),
            ]
        }
        A::ActivityTaskStartedEventAttributes(a) => vec![
            ("scheduledEventId", n(a.scheduled_event_id)),
            ("attempt", n(i64::from(a.attempt))),
            ("lastFailure.message", msg(&a.last_failure)),
            ("lastFailure.source", source(a.last_failure.as_ref())),
            ("lastFailure.timeoutFailureInfo.timeoutType", timeout_type(a.last_failure.as_ref())),
        ],
        A::ActivityTaskCompletedEventAttributes(a) => {
            vec![("scheduledEventId", n(a.scheduled_event_id)), ("startedEventId", n(a.started_event_id)), ("result", p(&a.result))]
        }
        A::ActivityTaskFailedEventAttributes(a) => vec![
            ("scheduledEventId", n(a.scheduled_event_id)),
            ("startedEventId", n(a.started_event_id)),
            ("retryState", en(a.retry_state, RetryState::as_str_name)),
            ("failure.message", msg(&a.failure)),
        ],
        A::ActivityTaskTimedOutEventAttributes(a) => {
            let cause = a.failure.as_ref().and_then(|f| f.cause.as_deref());
            vec![
                ("scheduledEventId", n(a.scheduled_event_id)),
                ("startedEventId", n(a.started_event_id)),
                ("retryState", en(a.retry_state, RetryState::as_str_name)),
                ("failure.message", msg(&a.failure)),
                ("failure.source", source(a.failure.as_ref())),
                ("failure.timeoutFailureInfo.timeoutType", timeout_type(a.failure.as_ref())),
                ("failure.cause.message", s(cause.map(|c| c.message.as_str()).unwrap_or_default())),
                ("failure.cause.source", source(cause)),
                ("failure.cause.timeoutFailureInfo.timeoutType", timeout_type(cause)),
            ]
        }
        A::ActivityTaskCancelRequestedEventAttributes(a) => {
            vec![("scheduledEventId", n(a.scheduled_event_id)), ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id))]
        }
        A::ActivityTaskCanceledEventAttributes(a) => vec![
            ("scheduledEventId", n(a.scheduled_event_id)),
            ("startedEventId", n(a.started_event_id)),
            ("latestCancelRequestedEventId", n(a.latest_cancel_requested_event_id)),
            ("details", p(&a.details)),
        ],
        A::TimerStartedEventAttributes(a) => vec![
            ("timerId", s(&a.timer_id)),
            ("startToFireTimeout", d(&a.start_to_fire_timeout)),
            ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)),
        ],
        A::TimerFiredEventAttributes(a) => vec![("timerId", s(&a.timer_id)), ("startedEventId", n(a.started_event_id))],
        A::TimerCanceledEventAttributes(a) => vec![
            ("timerId", s(&a.timer_id)),
            ("startedEventId", n(a.started_event_id)),
            ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)),
        ],
        A::MarkerRecordedEventAttributes(a) => {
            vec![("markerName", s(&a.marker_name)), ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id))]
        }
        A::WorkflowExecutionSignaledEventAttributes(a) => vec![
            ("signalName", s(&a.signal_name)),
            ("input", p(&a.input)),
            ("externalWorkflowExecution.workflowId", wid(&a.external_workflow_execution)),
        ],
        A::WorkflowExecutionUpdateAcceptedEventAttributes(a) => {
            let request = a.accepted_request.as_ref();
            let input = request.and_then(|r| r.input.as_ref());
            vec![
                ("protocolInstanceId", s(&a.protocol_instance_id)),
                ("acceptedRequestMessageId", s(&a.accepted_request_message_id)),
                ("acceptedRequestSequencingEventId", n(a.accepted_request_sequencing_event_id)),
                (
                    "acceptedRequest.meta.updateId",
                    s(request.and_then(|r| r.meta.as_ref()).map(|m| m.update_id.as_str()).unwrap_or_default()),
                ),
                ("acceptedRequest.input.name", s(input.map(|i| i.name.as_str()).unwrap_or_default())),
                ("acceptedRequest.input.args", p(&input.and_then(|i| i.args.clone()))),
            ]
        }
        A::WorkflowExecutionUpdateCompletedEventAttributes(a) => {
            use temporalio_protos::protos::temporal::api::update::v1::outcome::Value as Outcome;
            let value = a.outcome.as_ref().and_then(|o| o.value.as_ref());
            let success = match value {
                Some(Outcome::Success(p)) => Some(p.clone()),
                _ => None,
            };
            let failure = match value {
                Some(Outcome::Failure(f)) => Some(f.clone()),
                _ => None,
            };
            vec![
                ("meta.updateId", s(a.meta.as_ref().map(|m| m.update_id.as_str()).unwrap_or_default())),
                ("acceptedEventId", n(a.accepted_event_id)),
                ("outcome.success", p(&success)),
                ("outcome.failure.message", msg(&failure)),
            ]
        }
        A::WorkflowExecutionCancelRequestedEventAttributes(a) => vec![
            ("cause", s(&a.cause)),
            ("externalInitiatedEventId", n(a.external_initiated_event_id)),
            ("externalWorkflowExecution.workflowId", wid(&a.external_workflow_execution)),
        ],
        A::WorkflowExecutionCanceledEventAttributes(a) => {
            vec![("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)), ("details", p(&a.details))]
        }
        A::WorkflowExecutionCompletedEventAttributes(a) => {
            vec![("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)), ("result", p(&a.result))]
        }
        A::WorkflowExecutionFailedEventAttributes(a) => vec![
            ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)),
            ("retryState", en(a.retry_state, RetryState::as_str_name)),
            ("failure.message", msg(&a.failure)),
        ],
        A::WorkflowExecutionTimedOutEventAttributes(a) => vec![("retryState", en(a.retry_state, RetryState::as_str_name))],
        A::WorkflowExecutionTerminatedEventAttributes(a) => vec![("reason", s(&a.reason)), ("details", p(&a.details))],
        A::WorkflowExecutionContinuedAsNewEventAttributes(a) => vec![
            ("workflowType.name", name(&a.workflow_type)),
            ("taskQueue.name", queue(&a.task_queue)),
            ("workflowRunTimeout", d(&a.workflow_run_timeout)),
            ("workflowTaskTimeout", d(&a.workflow_task_timeout)),
            ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)),
            ("backoffStartInterval", d(&a.backoff_start_interval)),
            ("initiator", en(a.initiator, ContinueAsNewInitiator::as_str_name)),
        ],
        A::StartChildWorkflowExecutionInitiatedEventAttributes(a) => vec![
            ("namespace", s(&a.namespace)),
            ("workflowId", s(&a.workflow_id)),
            ("workflowType.name", name(&a.workflow_type)),
            ("taskQueue.name", queue(&a.task_queue)),
            ("workflowExecutionTimeout", d(&a.workflow_execution_timeout)),
            ("workflowRunTimeout", d(&a.workflow_run_timeout)),
            ("workflowTaskTimeout", d(&a.workflow_task_timeout)),
            ("parentClosePolicy", en(a.parent_close_policy, ParentClosePolicy::as_str_name)),
            ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)),
            ("workflowIdReusePolicy", en(a.workflow_id_reuse_policy, WorkflowIdReusePolicy::as_str_name)),
            ("inheritBuildId", b(a.inherit_build_id)),
        ],
        A::ChildWorkflowExecutionStartedEventAttributes(a) => vec![
            ("namespace", s(&a.namespace)),
            ("initiatedEventId", n(a.initiated_event_id)),
            ("workflowExecution.workflowId", s(a.workflow_execution.as_ref().map(|w| w.workflow_id.as_str()).unwrap_or_default())),
            ("workflowType.name", name(&a.workflow_type)),
        ],
        A::ChildWorkflowExecutionCompletedEventAttributes(a) => vec![
            ("namespace", s(&a.namespace)),
            ("workflowExecution.workflowId", s(a.workflow_execution.as_ref().map(|w| w.workflow_id.as_str()).unwrap_or_default())),
            ("workflowType.name", name(&a.workflow_type)),
            ("initiatedEventId", n(a.initiated_event_id)),
            ("startedEventId", n(a.started_event_id)),
            ("result", p(&a.result)),
        ],
        A::SignalExternalWorkflowExecutionInitiatedEventAttributes(a) => vec![
            ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)),
            ("namespace", s(&a.namespace)),
            ("workflowExecution.workflowId", wid(&a.workflow_execution)),
            ("signalName", s(&a.signal_name)),
            ("input", p(&a.input)),
            ("control", s(&a.control)),
            ("childWorkflowOnly", b(a.child_workflow_only)),
        ],
        A::ExternalWorkflowExecutionSignaledEventAttributes(a) => vec![
            ("initiatedEventId", n(a.initiated_event_id)),
            ("namespace", s(&a.namespace)),
            ("workflowExecution.workflowId", wid(&a.workflow_execution)),
            ("control", s(&a.control)),
        ],
        A::SignalExternalWorkflowExecutionFailedEventAttributes(a) => vec![
            ("cause", en(a.cause, SignalExternalWorkflowExecutionFailedCause::as_str_name)),
            ("initiatedEventId", n(a.initiated_event_id)),
            ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)),
            ("namespace", s(&a.namespace)),
            ("workflowExecution.workflowId", wid(&a.workflow_execution)),
            ("control", s(&a.control)),
        ],
        A::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(a) => vec![
            ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)),
            ("namespace", s(&a.namespace)),
            ("workflowExecution.workflowId", wid(&a.workflow_execution)),
            ("childWorkflowOnly", b(a.child_workflow_only)),
            ("reason", s(&a.reason)),
        ],
        A::ExternalWorkflowExecutionCancelRequestedEventAttributes(a) => vec![
            ("initiatedEventId", n(a.initiated_event_id)),
            ("namespace", s(&a.namespace)),
            ("workflowExecution.workflowId", wid(&a.workflow_execution)),
        ],
        A::RequestCancelExternalWorkflowExecutionFailedEventAttributes(a) => vec![
            ("cause", en(a.cause, CancelExternalWorkflowExecutionFailedCause::as_str_name)),
            ("initiatedEventId", n(a.initiated_event_id)),
            ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)),
            ("namespace", s(&a.namespace)),
            ("workflowExecution.workflowId", wid(&a.workflow_execution)),
        ],
        A::ChildWorkflowExecutionCanceledEventAttributes(a) => vec![
            ("namespace", s(&a.namespace)),
            ("workflowExecution.workflowId", wid(&a.workflow_execution)),
            ("workflowType.name", name(&a.workflow_type)),
            ("initiatedEventId", n(a.initiated_event_id)),
            ("startedEventId", n(a.started_event_id)),
            ("details", p(&a.details)),
        ],
        A::UpsertWorkflowSearchAttributesEventAttributes(a) => vec![
            ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)),
            ("searchAttributes.indexedFields", Val::Keys(keys(a.search_attributes.as_ref().map(|x| &x.indexed_fields)))),
        ],
        A::WorkflowPropertiesModifiedEventAttributes(a) => vec![
            ("workflowTaskCompletedEventId", n(a.workflow_task_completed_event_id)),
            ("upsertedMemo.fields", Val::Keys(keys(a.upserted_memo.as_ref().map(|x| &x.fields)))),
        ],
        // Types no reference history has: only their position and type are compared.
        _ => Vec::new(),
    }
}

/// The reference's value at `path`, normalised like `ours`.
pub fn expected(r: &RefEvent, path: &str, ours: &Val) -> String {
    let v = reference::lookup(&r.attrs, path);
    match ours {
        Val::Text(_) => match v {
            None | Some(Value::Null) | Some(Value::Bool(false)) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(x)) => x.as_i64().map(|i| i.to_string()).unwrap_or_else(|| format!("{}", x.as_f64().unwrap_or(f64::NAN))),
            Some(other) => other.to_string(),
        },
        Val::Dur(_) => duration_text(v.and_then(Value::as_str).and_then(reference::duration_ms)),
        Val::Keys(_) => {
            let mut keys: Vec<&str> = match v {
                Some(Value::Object(m)) => m.keys().map(String::as_str).collect(),
                _ => Vec::new(),
            };
            keys.sort_unstable();
            keys.join(",")
        }
        Val::Payloads(_) => match v.map(Payloads::from_json).transpose() {
            Ok(p) => payloads_text(p.as_ref()),
            Err(e) => format!("(does not convert: {e})"),
        },
    }
}

/// Our value, as text.
pub fn got(ours: &Val) -> String {
    match ours {
        Val::Text(t) => t.clone(),
        Val::Dur(ms) => duration_text(*ms),
        Val::Payloads(t) | Val::Keys(t) => t.clone(),
    }
}

/// A duration in ms as proto3 JSON (`"10s"`, `"0.500s"`); "" when unset.
fn duration_text(ms: Option<i64>) -> String {
    match ms {
        None => String::new(),
        Some(ms) if ms % 1000 == 0 => format!("{}s", ms / 1000),
        Some(ms) => format!("{}.{:03}s", ms / 1000, ms % 1000),
    }
}
