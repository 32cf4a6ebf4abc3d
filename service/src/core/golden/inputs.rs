//! The inputs of a reference history — what the client, the worker and the timers
//! did — derived from its events and put in time order. Events the server writes as
//! a consequence (WorkflowTaskScheduled, command events, ActivityTaskStarted's
//! companions...) are not inputs: the core must write them itself.

use temporalio_protos::protos::temporal::api::common::v1::{Payloads, WorkflowExecution};
use temporalio_protos::protos::temporal::api::enums::v1::{TaskQueueKind, TimeoutType, WorkflowTaskFailedCause};
use temporalio_protos::protos::temporal::api::failure::v1::Failure;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::taskqueue::v1::{StickyExecutionAttributes, TaskQueue};
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    RespondWorkflowTaskCompletedRequest, RespondWorkflowTaskFailedRequest,
};

use temporalio_protos::protos::temporal::api::command::v1::command::Attributes as Cmd;
use temporalio_protos::protos::temporal::api::command::v1::{Command, ProtocolMessageCommandAttributes};
use temporalio_protos::protos::temporal::api::enums::v1::CommandType;
use temporalio_protos::protos::temporal::api::protocol::v1::Message;
use temporalio_protos::protos::temporal::api::update::v1::{Acceptance, Request, Response};

use super::commands::{commands_of, is_command_event};
use super::reference::RefEvent;
use super::requests::{child_close_event, signal, spec};
use crate::core::activity::outcome::{Canceled, Completed, Failed};
use crate::core::activity::timeouts::NOT_ENOUGH_TIME_MESSAGE;
use crate::core::run::RunSpec;
use crate::core::signals::SignalSpec;
use crate::core::updates::to_any;
use crate::core::workflow_task::Poller;
use crate::core::EngineConfig;

/// One input: an RPC, or a durable timer coming due.
#[derive(Debug)]
pub enum Input {
    /// StartWorkflowExecution; with `signal`, SignalWithStartWorkflowExecution.
    Start {
        workflow_id: String,
        spec: Box<RunSpec>,
        signal: Option<SignalSpec>,
    },
    /// The start backoff (continue-as-new / start delay) timer fired.
    StartBackoff,
    PollWorkflowTask(Poller),
    CompleteWorkflowTask(Box<RespondWorkflowTaskCompletedRequest>),
    FailWorkflowTask(Box<RespondWorkflowTaskFailedRequest>),
    /// The started workflow task's start-to-close timer fired.
    WorkflowTaskTimeout,
    /// A poller took attempt `attempt` of the activity; attempts before it failed
    /// with `last_failure` (a worker failure, or a server timeout).
    StartActivity {
        scheduled: i64,
        attempt: i32,
        identity: String,
        last_failure: Option<Failure>,
    },
    ActivityCompleted {
        scheduled: i64,
        attempt: i32,
        outcome: Completed,
    },
    ActivityFailed {
        scheduled: i64,
        attempt: i32,
        outcome: Failed,
    },
    ActivityCanceled {
        scheduled: i64,
        attempt: i32,
        outcome: Canceled,
    },
    /// An activity timer fired; `gave_up`: the server's "not enough time to retry"
    /// (any of the attempt's timeouts may have fired).
    ActivityTimedOut {
        scheduled: i64,
        timeout_type: TimeoutType,
        gave_up: bool,
    },
    TimerFired {
        timer_id: String,
        started_event_id: i64,
    },
    Signal(SignalSpec),
    CancelRequest {
        cause: String,
        identity: String,
        /// Requested by another workflow's command: its initiated event and run.
        external_initiated: i64,
        external: Option<WorkflowExecution>,
    },
    /// The SignalExternal / CancelExternal outbox of the request initiated at
    /// `initiated` ran: the target took it (`delivered`) or was not found.
    ExternalOutcome {
        initiated: i64,
        delivered: bool,
    },
    Terminate {
        reason: String,
        details: Option<Payloads>,
        identity: String,
    },
    /// The run or execution timeout fired.
    RunTimedOut,
    /// The child initiated at `initiated` started (the StartChild outbox ran).
    ChildStarted {
        initiated: i64,
        run_id: String,
    },
    /// The child closed with `close` (the closed-run outbox ran).
    ChildClosed {
        initiated: i64,
        close: Box<HistoryEvent>,
        execution: WorkflowExecution,
    },
    /// UpdateWorkflowExecution admitted this update (the request its Accepted event
    /// records) when the workflow task it was sequenced at was scheduled.
    AdmitUpdate(Box<Request>),
}

/// An input at the time of the reference event it comes from.
#[derive(Debug)]
pub struct Step {
    pub event_id: i64,
    pub kind: String,
    pub time_ns: i128,
    pub ms: i64,
    pub input: Input,
}

/// The inputs of `events`, in time order (an ActivityTaskStarted is written with the
/// outcome but happened at its own time; buffered events keep their arrival time).
pub fn inputs(events: &[RefEvent], config: &EngineConfig) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let backoff = events.first().map(|e| e.ms_of("firstWorkflowTaskBackoff")).unwrap_or(0);
    let mut first_task = true;
    for (i, e) in events.iter().enumerate() {
        for request in admitted_at(events, e) {
            steps.push(Step {
                event_id: e.id,
                kind: e.kind.clone(),
                time_ns: e.time_ns,
                ms: e.ms(),
                input: Input::AdmitUpdate(Box::new(request)),
            });
        }
        let input = match e.kind.trim_start_matches("EVENT_TYPE_") {
            "WORKFLOW_EXECUTION_STARTED" if i == 0 => {
                let signal = events.get(1).filter(|s| s.kind == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED").map(signal);
                Some(Input::Start { workflow_id: e.str("workflowId"), spec: Box::new(spec(e, config)), signal })
            }
            "WORKFLOW_EXECUTION_SIGNALED" if i == 1 => None, // part of signal-with-start
            "WORKFLOW_EXECUTION_SIGNALED" => Some(Input::Signal(signal(e))),
            "WORKFLOW_TASK_SCHEDULED" => {
                let delayed = std::mem::take(&mut first_task) && backoff > 0;
                delayed.then_some(Input::StartBackoff)
            }
            "WORKFLOW_TASK_STARTED" => {
                Some(Input::PollWorkflowTask(Poller { identity: e.str("identity"), build_id: e.str("workerVersion.buildId") }))
            }
            "WORKFLOW_TASK_COMPLETED" => Some(Input::CompleteWorkflowTask(Box::new(completion(events, e)?))),
            "WORKFLOW_TASK_FAILED" => workflow_task_failed(e)?,
            "WORKFLOW_TASK_TIMED_OUT" => Some(Input::WorkflowTaskTimeout),
            "ACTIVITY_TASK_STARTED" => Some(Input::StartActivity {
                scheduled: e.int("scheduledEventId"),
                attempt: e.int("attempt") as i32,
                identity: e.str("identity"),
                last_failure: e.pb("lastFailure"),
            }),
            "ACTIVITY_TASK_COMPLETED" => Some(Input::ActivityCompleted {
                scheduled: e.int("scheduledEventId"),
                attempt: attempt_of(events, e),
                outcome: Completed {
                    result: e.pb("result"),
                    identity: e.str("identity"),
                    worker_version: started(events, e)?.pb("workerVersion"),
                },
            }),
            "ACTIVITY_TASK_FAILED" => Some(Input::ActivityFailed {
                scheduled: e.int("scheduledEventId"),
                attempt: attempt_of(events, e),
                outcome: Failed {
                    failure: e.pb("failure"),
                    identity: e.str("identity"),
                    last_heartbeat_details: None,
                    worker_version: started(events, e)?.pb("workerVersion"),
                },
            }),
            // Canceled before it started: the RequestCancelActivityTask command wrote it.
            "ACTIVITY_TASK_CANCELED" if e.int("startedEventId") == 0 => None,
            "ACTIVITY_TASK_CANCELED" => Some(Input::ActivityCanceled {
                scheduled: e.int("scheduledEventId"),
                attempt: attempt_of(events, e),
                outcome: Canceled { details: e.pb("details"), identity: e.str("identity") },
            }),
            "ACTIVITY_TASK_TIMED_OUT" => Some(Input::ActivityTimedOut {
                scheduled: e.int("scheduledEventId"),
                timeout_type: TimeoutType::from_str_name(&e.str("failure.timeoutFailureInfo.timeoutType"))
                    .unwrap_or(TimeoutType::Unspecified),
                gave_up: e.str("failure.message") == NOT_ENOUGH_TIME_MESSAGE,
            }),
            "TIMER_FIRED" => Some(Input::TimerFired { timer_id: e.str("timerId"), started_event_id: e.int("startedEventId") }),
            "WORKFLOW_EXECUTION_CANCEL_REQUESTED" => Some(Input::CancelRequest {
                cause: e.str("cause"),
                identity: e.str("identity"),
                external_initiated: e.int("externalInitiatedEventId"),
                external: e.pb("externalWorkflowExecution"),
            }),
            "EXTERNAL_WORKFLOW_EXECUTION_SIGNALED" | "EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED" => {
                Some(Input::ExternalOutcome { initiated: e.int("initiatedEventId"), delivered: true })
            }
            "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED" | "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED" => {
                Some(Input::ExternalOutcome { initiated: e.int("initiatedEventId"), delivered: false })
            }
            "WORKFLOW_EXECUTION_TERMINATED" => {
                Some(Input::Terminate { reason: e.str("reason"), details: e.pb("details"), identity: e.str("identity") })
            }
            "WORKFLOW_EXECUTION_TIMED_OUT" => Some(Input::RunTimedOut),
            "CHILD_WORKFLOW_EXECUTION_STARTED" => {
                Some(Input::ChildStarted { initiated: e.int("initiatedEventId"), run_id: e.str("workflowExecution.runId") })
            }
            k if k.starts_with("CHILD_WORKFLOW_EXECUTION_") => Some(Input::ChildClosed {
                initiated: e.int("initiatedEventId"),
                close: Box::new(child_close_event(e)?),
                execution: e.pb("workflowExecution").unwrap_or_default(),
            }),
            // The completion's messages write them ([`completion`]).
            "WORKFLOW_EXECUTION_UPDATE_ACCEPTED" | "WORKFLOW_EXECUTION_UPDATE_COMPLETED" => None,
            _ if is_command_event(&e.kind) => None,
            other => return Err(format!("event {} {other}: the golden driver has no input for it", e.id)),
        };
        if let Some(input) = input {
            steps.push(Step { event_id: e.id, kind: e.kind.clone(), time_ns: e.time_ns, ms: e.ms(), input });
        }
    }
    steps.sort_by_key(|s| (s.time_ns, s.event_id));
    Ok(steps)
}

/// The updates admitted when workflow task `e` was scheduled: those whose Accepted
/// event names it as the sequencing event (the update arrived while the run was idle
/// and a speculative task was scheduled to carry it).
fn admitted_at(events: &[RefEvent], e: &RefEvent) -> Vec<Request> {
    if e.kind != "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED" {
        return Vec::new();
    }
    events
        .iter()
        .filter(|a| a.kind == "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED" && a.int("acceptedRequestSequencingEventId") == e.id)
        .filter_map(|a| a.pb::<Request>("acceptedRequest"))
        .collect()
}

/// The update messages of completion `e` — an Acceptance per UpdateAccepted and a
/// Response per UpdateCompleted written right after it — each with the
/// ProtocolMessage command that places it among the commands, as sdk-core sends them.
fn update_messages(events: &[RefEvent], e: &RefEvent) -> (Vec<Message>, Vec<(i64, Command)>) {
    let mut messages = Vec::new();
    let mut commands = Vec::new();
    let after = events.iter().filter(|n| n.id > e.id);
    let batch = after.take_while(|n| is_command_event(&n.kind) || n.kind.starts_with("EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_"));
    for n in batch {
        let ((update_id, message_id), body) = match n.kind.as_str() {
            "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED" => {
                let update_id = n.str("protocolInstanceId");
                let acceptance = Acceptance {
                    accepted_request_message_id: n.str("acceptedRequestMessageId"),
                    accepted_request_sequencing_event_id: n.int("acceptedRequestSequencingEventId"),
                    accepted_request: n.pb("acceptedRequest"),
                };
                ((update_id.clone(), format!("{update_id}/accept")), to_any(&acceptance))
            }
            "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED" => {
                let update_id = n.str("meta.updateId");
                let response = Response { meta: n.pb("meta"), outcome: n.pb("outcome") };
                ((update_id.clone(), format!("{update_id}/complete")), to_any(&response))
            }
            _ => continue,
        };
        let command = Command {
            command_type: CommandType::ProtocolMessage as i32,
            attributes: Some(Cmd::ProtocolMessageCommandAttributes(ProtocolMessageCommandAttributes { message_id: message_id.clone() })),
            ..Default::default()
        };
        commands.push((n.id, command));
        messages.push(Message { id: message_id, protocol_instance_id: update_id, body: Some(body), sequencing_id: None });
    }
    (messages, commands)
}

/// The worker's commands of completion `e`, in the order of the events they wrote.
fn commands_in_order(events: &[RefEvent], e: &RefEvent, protocol: Vec<(i64, Command)>) -> Result<Vec<Command>, String> {
    let plain = commands_of(events, e.id)?;
    let ids = events.iter().filter(|n| n.id > e.id && is_command_event(&n.kind) && n.int("workflowTaskCompletedEventId") == e.id);
    let mut all: Vec<(i64, Command)> = ids.map(|n| n.id).zip(plain).chain(protocol).collect();
    all.sort_by_key(|(id, _)| *id);
    Ok(all.into_iter().map(|(_, c)| c).collect())
}

#[allow(deprecated)] // `binary_checksum`: deprecated, still sent
fn completion(events: &[RefEvent], e: &RefEvent) -> Result<RespondWorkflowTaskCompletedRequest, String> {
    let (messages, protocol) = update_messages(events, e);
    Ok(RespondWorkflowTaskCompletedRequest {
        commands: commands_in_order(events, e, protocol)?,
        messages,
        identity: e.str("identity"),
        binary_checksum: e.str("binaryChecksum"),
        worker_version_stamp: e.pb("workerVersion"),
        sticky_attributes: sticky_attributes(events, e),
        ..Default::default()
    })
}

/// The sticky queue the worker named in completion `e`: the one the next workflow
/// task after it was scheduled on, if sticky (the Python SDK's schedule-to-start
/// timeout; the reference histories never time one out).
fn sticky_attributes(events: &[RefEvent], e: &RefEvent) -> Option<StickyExecutionAttributes> {
    let next = events.iter().find(|n| n.id > e.id && n.kind == "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED")?;
    (next.str("taskQueue.kind") == "TASK_QUEUE_KIND_STICKY").then(|| StickyExecutionAttributes {
        worker_task_queue: Some(TaskQueue {
            name: next.str("taskQueue.name"),
            kind: TaskQueueKind::Sticky as i32,
            normal_name: next.str("taskQueue.normalName"),
        }),
        schedule_to_start_timeout: Some(crate::core::txn::duration(10_000)),
    })
}

/// A worker's RespondWorkflowTaskFailed; causes the server writes itself (closing
/// the run under a started task) are not inputs.
#[allow(deprecated)] // `binary_checksum`: deprecated, still sent
fn workflow_task_failed(e: &RefEvent) -> Result<Option<Input>, String> {
    let cause = WorkflowTaskFailedCause::from_str_name(&e.str("cause")).unwrap_or(WorkflowTaskFailedCause::Unspecified);
    match cause {
        WorkflowTaskFailedCause::ForceCloseCommand => Ok(None),
        WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure | WorkflowTaskFailedCause::NonDeterministicError => {
            Ok(Some(Input::FailWorkflowTask(Box::new(RespondWorkflowTaskFailedRequest {
                cause: cause as i32,
                failure: e.pb("failure"),
                identity: e.str("identity"),
                binary_checksum: e.str("binaryChecksum"),
                worker_version: e.pb("workerVersion"),
                ..Default::default()
            }))))
        }
        other => {
            Err(format!("event {} WorkflowTaskFailed with cause {}: not an input the golden driver rebuilds", e.id, other.as_str_name()))
        }
    }
}

/// The ActivityTaskStarted an outcome event links to.
fn started<'a>(events: &'a [RefEvent], e: &RefEvent) -> Result<&'a RefEvent, String> {
    let id = e.int("startedEventId");
    events.iter().find(|s| s.id == id).ok_or_else(|| format!("event {} links to a missing Started event {id}", e.id))
}

fn attempt_of(events: &[RefEvent], e: &RefEvent) -> i32 {
    started(events, e).map(|s| s.int("attempt") as i32).unwrap_or(1)
}
