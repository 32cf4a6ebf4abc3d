//! Sticky task queues end to end against an in-process Hourglass server, as Temporal's
//! server runs them: a raw worker (plain gRPC, so every poll response is observed)
//! completes with sticky attributes and then receives only the new events on its
//! sticky queue; the schedule-to-start timeout moves a task nobody takes to the
//! normal queue with full history (WorkflowTaskTimedOut, SCHEDULE_TO_START); a sticky
//! queue nobody polls sends its tasks to the normal queue at once;
//! `ResetStickyTaskQueue` and `ShutdownWorker` end stickiness; a legacy query goes to
//! the sticky worker first, with no history, and to the normal queue when that worker
//! does not take it in time. Then a real Rust SDK
//! worker runs a many-task workflow on its sticky queue and answers queries.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use hourglass_tests::TestServer;
use support::{full_history, unique, with_worker, within};
use temporalio_client::tonic::transport::Channel;
use temporalio_client::tonic::{Code, Request};
use temporalio_client::{WorkflowGetResultOptions, WorkflowQueryOptions, WorkflowSignalOptions, WorkflowStartOptions};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_protos::protos::temporal::api::common::v1::{Payload, Payloads, WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, QueryResultType, TaskQueueKind, TimeoutType};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::query::v1::WorkflowQuery;
use temporalio_protos::protos::temporal::api::taskqueue::v1::{StickyExecutionAttributes, TaskQueue};
use temporalio_protos::protos::temporal::api::workflowservice::v1::workflow_service_client::WorkflowServiceClient;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use temporalio_sdk::{SyncWorkflowContext, WorkerOptions, WorkflowContext, WorkflowContextView, WorkflowResult};

type Svc = WorkflowServiceClient<Channel>;

const NS: &str = "default";

async fn connect(server: &TestServer) -> Svc {
    WorkflowServiceClient::new(Channel::from_shared(server.url()).unwrap().connect().await.unwrap())
}

fn normal(name: &str) -> TaskQueue {
    TaskQueue { name: name.into(), kind: TaskQueueKind::Normal as i32, normal_name: String::new() }
}

fn sticky(name: &str, normal_name: &str) -> TaskQueue {
    TaskQueue { name: name.into(), kind: TaskQueueKind::Sticky as i32, normal_name: normal_name.into() }
}

/// One raw workflow run: its queues and the raw client driving it.
struct Run {
    svc: Svc,
    queue: String,
    sticky: String,
    workflow_id: String,
}

impl Run {
    async fn start(server: &TestServer) -> Run {
        let mut svc = connect(server).await;
        let (queue, sticky) = (unique("normal"), unique("sticky"));
        let workflow_id = unique("sticky-wf");
        let request = StartWorkflowExecutionRequest {
            namespace: NS.into(),
            workflow_id: workflow_id.clone(),
            workflow_type: Some(WorkflowType { name: "Raw".into() }),
            task_queue: Some(normal(&queue)),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        svc.start_workflow_execution(request).await.unwrap();
        Run { svc, queue, sticky, workflow_id }
    }

    fn execution(&self) -> Option<WorkflowExecution> {
        Some(WorkflowExecution { workflow_id: self.workflow_id.clone(), run_id: String::new() })
    }

    /// Polls `queue` for up to `wait` (the poll's deadline); the default response when
    /// nothing came.
    async fn poll(&self, queue: TaskQueue, wait: Duration) -> PollWorkflowTaskQueueResponse {
        let request = PollWorkflowTaskQueueRequest {
            namespace: NS.into(),
            task_queue: Some(queue),
            identity: "raw-worker".into(),
            worker_instance_key: "raw-key".into(),
            ..Default::default()
        };
        let mut request = Request::new(request);
        request.set_timeout(wait);
        self.svc.clone().poll_workflow_task_queue(request).await.unwrap().into_inner()
    }

    async fn poll_normal(&self, wait: Duration) -> PollWorkflowTaskQueueResponse {
        self.poll(normal(&self.queue), wait).await
    }

    async fn poll_sticky(&self, wait: Duration) -> PollWorkflowTaskQueueResponse {
        self.poll(sticky(&self.sticky, &self.queue), wait).await
    }

    /// Completes `task` with no commands, naming the sticky queue (timeout
    /// `schedule_to_start`) or none.
    async fn complete(&mut self, task: &PollWorkflowTaskQueueResponse, schedule_to_start: Option<Duration>) {
        let sticky_attributes = schedule_to_start.map(|timeout| StickyExecutionAttributes {
            worker_task_queue: Some(sticky(&self.sticky, &self.queue)),
            schedule_to_start_timeout: Some(prost_wkt_types::Duration { seconds: timeout.as_secs() as i64, nanos: 0 }),
        });
        let request = RespondWorkflowTaskCompletedRequest {
            namespace: NS.into(),
            task_token: task.task_token.clone(),
            identity: "raw-worker".into(),
            sticky_attributes,
            ..Default::default()
        };
        self.svc.respond_workflow_task_completed(request).await.unwrap();
    }

    async fn signal(&mut self) {
        let request = SignalWorkflowExecutionRequest {
            namespace: NS.into(),
            workflow_execution: self.execution(),
            signal_name: "poke".into(),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        self.svc.signal_workflow_execution(request).await.unwrap();
    }

    async fn reset_sticky(&mut self) -> Result<(), temporalio_client::tonic::Status> {
        let request = ResetStickyTaskQueueRequest { namespace: NS.into(), execution: self.execution() };
        self.svc.reset_sticky_task_queue(request).await.map(|_| ())
    }

    async fn shutdown_worker(&mut self) {
        let request = ShutdownWorkerRequest {
            namespace: NS.into(),
            sticky_task_queue: self.sticky.clone(),
            identity: "raw-worker".into(),
            worker_instance_key: "raw-key".into(),
            task_queue: self.queue.clone(),
            ..Default::default()
        };
        self.svc.shutdown_worker(request).await.unwrap();
    }

    async fn history(&mut self) -> Vec<HistoryEvent> {
        let request = GetWorkflowExecutionHistoryRequest { namespace: NS.into(), execution: self.execution(), ..Default::default() };
        self.svc.get_workflow_execution_history(request).await.unwrap().into_inner().history.unwrap().events
    }

    /// Asks query `state` (as a client does), answered whenever a worker answers it.
    fn query(&self) -> tokio::task::JoinHandle<Result<QueryWorkflowResponse, temporalio_client::tonic::Status>> {
        let (mut svc, execution) = (self.svc.clone(), self.execution());
        tokio::spawn(async move {
            let query = Some(WorkflowQuery { query_type: "state".into(), ..Default::default() });
            svc.query_workflow(QueryWorkflowRequest { namespace: NS.into(), execution, query, ..Default::default() })
                .await
                .map(|r| r.into_inner())
        })
    }

    /// Answers the legacy query task `task` with `answer`.
    async fn answer(&mut self, task: &PollWorkflowTaskQueueResponse, answer: &str) {
        assert!(task.query.is_some(), "a legacy query task: {task:?}");
        let request = RespondQueryTaskCompletedRequest {
            namespace: NS.into(),
            task_token: task.task_token.clone(),
            completed_type: QueryResultType::Answered as i32,
            query_result: Some(Payloads { payloads: vec![Payload { data: answer.as_bytes().to_vec(), ..Default::default() }] }),
            ..Default::default()
        };
        self.svc.respond_query_task_completed(request).await.unwrap();
    }

    /// The first task, from the normal queue (full history), completed sticky.
    async fn first_task_sticky(&mut self, schedule_to_start: Duration) -> PollWorkflowTaskQueueResponse {
        let first = within("the first task", self.poll_normal(Duration::from_secs(30))).await;
        assert_eq!(ids(&first), (1..=3).collect::<Vec<_>>(), "the first task has the full history");
        self.complete(&first, Some(schedule_to_start)).await;
        first
    }
}

fn ids(task: &PollWorkflowTaskQueueResponse) -> Vec<i64> {
    task.history.as_ref().map(|h| h.events.iter().map(|e| e.event_id).collect()).unwrap_or_default()
}

/// The task queue of WorkflowTaskScheduled event `id`.
fn scheduled_queue(events: &[HistoryEvent], id: i64) -> TaskQueue {
    match events.iter().find(|e| e.event_id == id).and_then(|e| e.attributes.clone()) {
        Some(Attributes::WorkflowTaskScheduledEventAttributes(a)) => a.task_queue.unwrap(),
        other => panic!("event {id} is not WorkflowTaskScheduled: {other:?}"),
    }
}

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_worker_receives_only_the_new_events() {
    let server = TestServer::start().await.unwrap();
    let mut run = Run::start(&server).await;
    run.first_task_sticky(LONG).await;
    // The sticky worker polls (so matching knows it is there), then a signal arrives.
    let polling = {
        let run = Run { svc: run.svc.clone(), queue: run.queue.clone(), sticky: run.sticky.clone(), workflow_id: run.workflow_id.clone() };
        tokio::spawn(async move { run.poll_sticky(Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.signal().await;
    let task = within("the sticky task", polling).await.unwrap();
    // Events 4 (WorkflowTaskCompleted), 5 (signal), 6 (scheduled), 7 (started): what
    // came after the previous started task (3).
    assert_eq!(ids(&task), vec![4, 5, 6, 7], "a sticky task carries only the new events");
    assert_eq!((task.previous_started_event_id, task.started_event_id), (3, 7));
    assert!(task.next_page_token.is_empty());
    assert_eq!(task.workflow_execution_task_queue, Some(normal(&run.queue)), "the run's own queue stays the normal one");
    let events = run.history().await;
    assert_eq!(scheduled_queue(&events, 6), sticky(&run.sticky, &run.queue), "the event names the sticky queue, as Temporal's");

    // Completed sticky again: the next task goes to the sticky queue again.
    run.complete(&task, Some(LONG)).await;
    run.signal().await;
    let next = within("the next sticky task", run.poll_sticky(Duration::from_secs(30))).await;
    assert_eq!(ids(&next), vec![8, 9, 10, 11]);
    assert_eq!(next.previous_started_event_id, 7);

    // Completed without sticky attributes: the run is sticky no more.
    run.complete(&next, None).await;
    run.signal().await;
    let full = within("a normal task", run.poll_normal(Duration::from_secs(30))).await;
    assert_eq!(ids(&full), (1..=15).collect::<Vec<_>>(), "a task on the normal queue carries the full history");
    assert_eq!(scheduled_queue(&run.history().await, 14), normal(&run.queue));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_task_nobody_starts_times_out_to_the_normal_queue() {
    let server = TestServer::start().await.unwrap();
    let mut run = Run::start(&server).await;
    run.first_task_sticky(Duration::from_secs(2)).await;
    // The sticky worker was seen polling, so the task waits on its queue...
    let seen = run.poll_sticky(Duration::from_millis(200)).await;
    assert_eq!(seen, PollWorkflowTaskQueueResponse::default(), "nothing yet");
    run.signal().await;
    // ...until its schedule-to-start timeout: then the normal queue, full history.
    let task = within("the task after the timeout", run.poll_normal(Duration::from_secs(30))).await;
    let events = task.history.as_ref().unwrap().events.clone();
    assert_eq!(events.first().map(|e| e.event_id), Some(1), "full history");
    let kinds: Vec<EventType> = events.iter().map(|e| EventType::try_from(e.event_type).unwrap()).collect();
    assert_eq!(
        kinds[3..],
        [
            EventType::WorkflowTaskCompleted,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskTimedOut,
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskStarted
        ]
    );
    match events[6].attributes.clone() {
        Some(Attributes::WorkflowTaskTimedOutEventAttributes(a)) => {
            assert_eq!((a.scheduled_event_id, a.started_event_id), (6, 0));
            assert_eq!(a.timeout_type, TimeoutType::ScheduleToStart as i32);
        }
        other => panic!("not timed out: {other:?}"),
    }
    assert_eq!(scheduled_queue(&events, 6), sticky(&run.sticky, &run.queue));
    assert_eq!(scheduled_queue(&events, 8), normal(&run.queue), "the task again, on the normal queue");
    match events[7].attributes.clone() {
        Some(Attributes::WorkflowTaskScheduledEventAttributes(a)) => assert_eq!(a.attempt, 1, "not a failed attempt"),
        other => panic!("not scheduled: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_queue_nobody_polls_sends_its_task_to_the_normal_queue_at_once() {
    let server = TestServer::start().await.unwrap();
    let mut run = Run::start(&server).await;
    // A schedule-to-start timeout far beyond the poll below: only the "no poller" rule
    // can bring the task to the normal queue in time.
    run.first_task_sticky(Duration::from_secs(3600)).await;
    run.signal().await;
    let task = within("the task on the normal queue", run.poll_normal(Duration::from_secs(30))).await;
    assert_eq!(ids(&task), (1..=7).collect::<Vec<_>>(), "full history: the poller has no cached state");
    let events = run.history().await;
    assert_eq!(scheduled_queue(&events, 6), sticky(&run.sticky, &run.queue), "scheduled sticky, as Temporal records it");
    // Started from the normal queue: stickiness ended, the next task goes there too.
    run.complete(&task, None).await;
    run.signal().await;
    let next = within("the next task", run.poll_normal(Duration::from_secs(30))).await;
    assert_eq!(scheduled_queue(&run.history().await, 10), normal(&run.queue));
    assert_eq!(ids(&next).first(), Some(&1));
}

fn answered(response: QueryWorkflowResponse) -> String {
    String::from_utf8(response.query_result.unwrap().payloads[0].data.clone()).unwrap()
}

/// A legacy query on a sticky run goes to the sticky worker first, with no history
/// (it has the run cached), as Temporal's server sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_query_goes_to_the_sticky_worker_with_no_history() {
    let server = TestServer::start().await.unwrap();
    let mut run = Run::start(&server).await;
    run.first_task_sticky(LONG).await;
    // The sticky worker polled lately (an empty poll), and polls again.
    run.poll_sticky(Duration::from_millis(200)).await;
    let asked = run.query();
    let task = within("the query on the sticky queue", run.poll_sticky(Duration::from_secs(30))).await;
    assert_eq!(task.query.as_ref().map(|q| q.query_type.as_str()), Some("state"));
    assert!(ids(&task).is_empty(), "no history for the sticky worker: {:?}", ids(&task));
    assert_eq!((task.started_event_id, task.previous_started_event_id), (0, 3));
    run.answer(&task, "sticky").await;
    assert_eq!(answered(within("the answer", asked).await.unwrap().unwrap()), "sticky");
}

/// A legacy query the sticky worker does not take within the sticky schedule-to-start
/// timeout goes to the normal queue, with the full history, and the run's stickiness
/// ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_query_the_sticky_worker_does_not_take_falls_back_to_the_normal_queue() {
    let server = TestServer::start().await.unwrap();
    let mut run = Run::start(&server).await;
    run.first_task_sticky(Duration::from_secs(1)).await;
    run.poll_sticky(Duration::from_millis(200)).await; // polled lately, then gone quiet
    let asked = run.query();
    let task = within("the query on the normal queue", run.poll_normal(Duration::from_secs(30))).await;
    assert_eq!(ids(&task), (1..=4).collect::<Vec<_>>(), "the normal queue's poller gets the full history");
    run.answer(&task, "normal").await;
    assert_eq!(answered(within("the answer", asked).await.unwrap().unwrap()), "normal");
    // As on Temporal's server, the run is no longer sticky: its next task goes to the
    // normal queue at once.
    run.signal().await;
    let next = within("the next task", run.poll_normal(Duration::from_secs(30))).await;
    assert_eq!(scheduled_queue(&run.history().await, 6), normal(&run.queue));
    assert_eq!(ids(&next).first(), Some(&1), "full history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_sticky_task_queue_sends_the_next_task_to_the_normal_queue() {
    let server = TestServer::start().await.unwrap();
    let mut run = Run::start(&server).await;
    run.first_task_sticky(LONG).await;
    run.reset_sticky().await.unwrap();
    run.signal().await;
    let task = within("the task on the normal queue", run.poll_normal(Duration::from_secs(30))).await;
    assert_eq!(ids(&task), (1..=7).collect::<Vec<_>>());
    assert_eq!(scheduled_queue(&run.history().await, 6), normal(&run.queue), "not sticky after the reset");
    // Twice is fine; an unknown workflow and a closed run are NotFound (Temporal's codes).
    run.reset_sticky().await.unwrap();
    let unknown = Run { workflow_id: unique("nobody"), ..run };
    let mut unknown = unknown;
    assert_eq!(unknown.reset_sticky().await.unwrap_err().code(), Code::NotFound);
    let terminate = TerminateWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_execution: Some(WorkflowExecution { workflow_id: task.workflow_execution.unwrap().workflow_id, run_id: String::new() }),
        ..Default::default()
    };
    let closed_id = terminate.workflow_execution.clone().unwrap().workflow_id;
    unknown.svc.terminate_workflow_execution(terminate).await.unwrap();
    let mut closed = Run { workflow_id: closed_id, ..unknown };
    let err = closed.reset_sticky().await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::NotFound, "workflow execution already completed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_worker_moves_its_sticky_tasks_to_the_normal_queue() {
    let server = TestServer::start().await.unwrap();
    let mut run = Run::start(&server).await;
    run.first_task_sticky(Duration::from_secs(3600)).await;
    // The worker is seen polling its sticky queue, so the task waits there...
    let seen = run.poll_sticky(Duration::from_millis(200)).await;
    assert_eq!(seen, PollWorkflowTaskQueueResponse::default());
    run.signal().await;
    let early = run.poll_normal(Duration::from_millis(500)).await;
    assert_eq!(early, PollWorkflowTaskQueueResponse::default(), "the task waits on the sticky queue");
    // ...until the worker shuts down: then the normal queue, long before the timeout.
    run.shutdown_worker().await;
    let other = Run { svc: run.svc.clone(), queue: run.queue.clone(), sticky: run.sticky.clone(), workflow_id: run.workflow_id.clone() };
    let request = PollWorkflowTaskQueueRequest {
        namespace: NS.into(),
        task_queue: Some(normal(&other.queue)),
        identity: "other-worker".into(),
        worker_instance_key: "other-key".into(),
        ..Default::default()
    };
    let mut request = Request::new(request);
    request.set_timeout(Duration::from_secs(30));
    let task = within("the moved task", other.svc.clone().poll_workflow_task_queue(request)).await.unwrap().into_inner();
    assert_eq!(ids(&task), (1..=7).collect::<Vec<_>>(), "full history for the new worker");
}

// A real SDK worker on its sticky queue.

#[workflow]
#[derive(Default)]
pub struct Counter {
    count: u32,
}

#[workflow_methods]
impl Counter {
    /// Sleeps `rounds` times (one workflow task each), then waits for `done`.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, rounds: u32) -> WorkflowResult<u32> {
        for _ in 0..rounds {
            ctx.timer(Duration::from_millis(10)).await;
            ctx.state_mut(|s| s.count += 1);
        }
        ctx.wait_condition(|s| s.count > rounds).await?;
        Ok(ctx.state(|s| s.count))
    }

    #[signal]
    pub fn done(&mut self, _ctx: &mut SyncWorkflowContext<Self>) {
        self.count += 1;
    }

    #[query]
    pub fn count(&self, _ctx: &WorkflowContextView) -> u32 {
        self.count
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_worker_runs_on_its_sticky_queue_and_answers_queries() {
    let server = TestServer::start().await.unwrap();
    let client = support::client(&server, NS).await;
    let queue = unique("sdk-sticky");
    let options = WorkerOptions::new(&queue).register_workflow::<Counter>().expect("workflow registers").build();
    let handle = client.start_workflow(Counter::run, 5u32, WorkflowStartOptions::new(&queue, unique("counter")).build()).await.unwrap();
    let (workflow_id, run_id) = (handle.info().workflow_id.clone(), handle.info().run_id.clone().unwrap_or_default());
    let result = with_worker(&client, options, async {
        // Wait for the timers to be done, querying on the way (the query goes through
        // a sticky run's worker).
        within("the rounds", async {
            loop {
                let count: u32 = handle.query(Counter::count, (), WorkflowQueryOptions::default()).await.unwrap();
                if count >= 5 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        handle.signal(Counter::done, (), WorkflowSignalOptions::default()).await.unwrap();
        within("the result", handle.get_result(WorkflowGetResultOptions::default())).await
    })
    .await;
    assert_eq!(result.unwrap(), 6);
    let events = full_history(&client, NS, &workflow_id, &run_id).await.unwrap();
    let queues: Vec<TaskQueue> = events
        .iter()
        .filter_map(|e| match e.attributes.clone() {
            Some(Attributes::WorkflowTaskScheduledEventAttributes(a)) => a.task_queue,
            _ => None,
        })
        .collect();
    assert!(queues.len() >= 7, "a task per timer and the signal: {queues:?}");
    assert_eq!(queues[0], normal(&queue), "the first task goes to the normal queue");
    assert!(
        queues[1..].iter().all(|q| q.kind == TaskQueueKind::Sticky as i32 && q.normal_name == queue),
        "every later task went to the worker's sticky queue: {queues:?}"
    );
    let timed_out = events.iter().any(|e| e.event_type == EventType::WorkflowTaskTimedOut as i32);
    assert!(!timed_out, "no task waited out its sticky timeout");
}
