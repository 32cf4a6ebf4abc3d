//! The worker side: workflow-task and activity-task poll loops.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use temporalio_protos::protos::temporal::api::command::v1::{
    command, Command, CompleteWorkflowExecutionCommandAttributes, ScheduleActivityTaskCommandAttributes, StartTimerCommandAttributes,
};
use temporalio_protos::protos::temporal::api::common::v1::ActivityType;
use temporalio_protos::protos::temporal::api::enums::v1::CommandType;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{
    GetWorkflowExecutionHistoryRequest, PollActivityTaskQueueRequest, PollWorkflowTaskQueueRequest, PollWorkflowTaskQueueResponse,
    RespondActivityTaskCompletedRequest, RespondWorkflowTaskCompletedRequest,
};

use super::scenario::{decide, finishes, Decision};
use super::stats::Counters;
use super::{code_name, request, Shared, CALL_TIMEOUT};

/// Long polls answer empty after about a minute; allow more.
const POLL_TIMEOUT: Duration = Duration::from_secs(90);

fn duration(secs: i64) -> Option<prost_wkt_types::Duration> {
    Some(prost_wkt_types::Duration { seconds: secs, nanos: 0 })
}

fn task_queue(shared: &Shared) -> Option<TaskQueue> {
    Some(TaskQueue { name: shared.task_queue.clone(), ..Default::default() })
}

/// The commands of one decision.
pub fn commands(decision: &Decision, shared_task_queue: &str) -> Vec<Command> {
    let tq = Some(TaskQueue { name: shared_task_queue.to_string(), ..Default::default() });
    match decision {
        Decision::Complete => vec![Command {
            command_type: CommandType::CompleteWorkflowExecution as i32,
            attributes: Some(command::Attributes::CompleteWorkflowExecutionCommandAttributes(
                CompleteWorkflowExecutionCommandAttributes::default(),
            )),
            ..Default::default()
        }],
        Decision::ScheduleActivity(seq) => vec![Command {
            command_type: CommandType::ScheduleActivityTask as i32,
            attributes: Some(command::Attributes::ScheduleActivityTaskCommandAttributes(ScheduleActivityTaskCommandAttributes {
                activity_id: format!("a{seq}"),
                activity_type: Some(ActivityType { name: "hgbench-activity".into() }),
                task_queue: tq,
                schedule_to_close_timeout: duration(60),
                start_to_close_timeout: duration(30),
                ..Default::default()
            })),
            ..Default::default()
        }],
        Decision::StartTimer(id, secs) => vec![Command {
            command_type: CommandType::StartTimer as i32,
            attributes: Some(command::Attributes::StartTimerCommandAttributes(StartTimerCommandAttributes {
                timer_id: id.clone(),
                start_to_fire_timeout: duration(*secs),
            })),
            ..Default::default()
        }],
        Decision::Wait => Vec::new(),
    }
}

/// The task's full history: the poll's page plus any further pages.
async fn full_history(shared: &Shared, task: &mut PollWorkflowTaskQueueResponse) -> Result<Vec<HistoryEvent>, ()> {
    let mut events = task.history.take().map(|h| h.events).unwrap_or_default();
    let mut token = std::mem::take(&mut task.next_page_token);
    while !token.is_empty() {
        let req = GetWorkflowExecutionHistoryRequest {
            namespace: shared.args.namespace.clone(),
            execution: task.workflow_execution.clone(),
            next_page_token: token,
            ..Default::default()
        };
        match shared.client().get_workflow_execution_history(request(req, CALL_TIMEOUT)).await {
            Ok(r) => {
                let r = r.into_inner();
                events.extend(r.history.map(|h| h.events).unwrap_or_default());
                token = r.next_page_token;
            }
            Err(s) => {
                shared.counters.error("GetWorkflowExecutionHistory", &code_name(&s));
                return Err(());
            }
        }
    }
    Ok(events)
}

pub(crate) async fn workflow_poller(shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let req = PollWorkflowTaskQueueRequest {
            namespace: shared.args.namespace.clone(),
            task_queue: task_queue(&shared),
            identity: shared.identity.clone(),
            ..Default::default()
        };
        let mut task = match shared.client().poll_workflow_task_queue(request(req, POLL_TIMEOUT)).await {
            Ok(r) => r.into_inner(),
            Err(s) => {
                if !shared.stop.load(Ordering::Relaxed) {
                    shared.counters.error("PollWorkflowTaskQueue", &code_name(&s));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        if task.task_token.is_empty() {
            Counters::add(&shared.counters.empty_polls, 1);
            continue;
        }
        Counters::add(&shared.counters.wft_polled, 1);
        let Ok(events) = full_history(&shared, &mut task).await else { continue };
        let decision = decide(shared.args.scenario, &events);
        let req = RespondWorkflowTaskCompletedRequest {
            namespace: shared.args.namespace.clone(),
            task_token: task.task_token,
            commands: commands(&decision, &shared.task_queue),
            identity: shared.identity.clone(),
            ..Default::default()
        };
        match shared.client().respond_workflow_task_completed(request(req, CALL_TIMEOUT)).await {
            Ok(_) => {
                Counters::add(&shared.counters.transitions, 1);
                if finishes(shared.args.scenario, &decision) {
                    // The history so far: this task's events + WorkflowTaskCompleted
                    // + WorkflowExecutionCompleted (or TimerStarted when parked).
                    Counters::add(&shared.counters.events, events.len() as u64 + 2);
                    Counters::add(&shared.counters.completed, 1);
                    if let Some(wf) = &task.workflow_execution {
                        shared.completed(&wf.workflow_id);
                    }
                }
            }
            Err(s) => shared.counters.error("RespondWorkflowTaskCompleted", &code_name(&s)),
        }
    }
}

pub(crate) async fn activity_poller(shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let req = PollActivityTaskQueueRequest {
            namespace: shared.args.namespace.clone(),
            task_queue: task_queue(&shared),
            identity: shared.identity.clone(),
            ..Default::default()
        };
        let task = match shared.client().poll_activity_task_queue(request(req, POLL_TIMEOUT)).await {
            Ok(r) => r.into_inner(),
            Err(s) => {
                if !shared.stop.load(Ordering::Relaxed) {
                    shared.counters.error("PollActivityTaskQueue", &code_name(&s));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        if task.task_token.is_empty() {
            Counters::add(&shared.counters.empty_polls, 1);
            continue;
        }
        Counters::add(&shared.counters.act_polled, 1);
        let req = RespondActivityTaskCompletedRequest {
            namespace: shared.args.namespace.clone(),
            task_token: task.task_token,
            identity: shared.identity.clone(),
            ..Default::default()
        };
        match shared.client().respond_activity_task_completed(request(req, CALL_TIMEOUT)).await {
            Ok(_) => Counters::add(&shared.counters.transitions, 1),
            Err(s) => shared.counters.error("RespondActivityTaskCompleted", &code_name(&s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_match_decisions() {
        assert!(commands(&Decision::Wait, "q").is_empty());
        let c = commands(&Decision::ScheduleActivity(3), "q");
        assert_eq!(c[0].command_type, CommandType::ScheduleActivityTask as i32);
        match &c[0].attributes {
            Some(command::Attributes::ScheduleActivityTaskCommandAttributes(a)) => {
                assert_eq!(a.activity_id, "a3");
                assert_eq!(a.task_queue.as_ref().unwrap().name, "q");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(commands(&Decision::Complete, "q")[0].command_type, CommandType::CompleteWorkflowExecution as i32);
        assert_eq!(commands(&Decision::StartTimer("t0".into(), 1), "q")[0].command_type, CommandType::StartTimer as i32);
    }
}
