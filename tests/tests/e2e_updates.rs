//! Workflow updates run end to end by the real Temporal Rust SDK against an
//! in-process Hourglass server: a validator that rejects without touching history,
//! accepted updates with their events, deduplication by update id, an update
//! accepted before a restart and completed after it, an async update waiting on a
//! signal, and updates on a closed workflow.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use hourglass_tests::TestServer;
use support::{full_history, unique, with_worker, within};
use temporalio_client::errors::WorkflowUpdateError;
use temporalio_client::errors::WorkflowUpdateWithStartError;
use temporalio_client::{
    Client, RpcOptions, WorkflowExecuteUpdateOptions, WorkflowGetResultOptions, WorkflowIdConflictPolicy, WorkflowSignalOptions,
    WorkflowStartOptions, WorkflowStartUpdateOptions, WorkflowUpdateWithStartOptions,
};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_protos::protos::temporal::api::enums::v1::EventType;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_sdk::{SyncWorkflowContext, WorkerOptions, WorkflowContext, WorkflowContextView, WorkflowResult};

#[workflow]
#[derive(Default)]
pub struct Tally {
    total: i64,
    released: bool,
}

#[workflow_methods]
impl Tally {
    /// Completes once the total reaches `target`; returns it.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, target: i64) -> WorkflowResult<i64> {
        ctx.wait_condition(move |s| s.total >= target).await?;
        Ok(ctx.state(|s| s.total))
    }

    #[update_validator(add)]
    fn no_negatives(&self, _ctx: &WorkflowContextView, amount: &i64) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if *amount < 0 {
            Err("I *HATE* negative numbers!".into())
        } else {
            Ok(())
        }
    }

    /// Adds `amount`; returns the new total.
    #[update]
    pub fn add(&mut self, _ctx: &mut SyncWorkflowContext<Self>, amount: i64) -> i64 {
        self.total += amount;
        self.total
    }

    /// Waits for the `release` signal, then adds `amount`.
    #[update]
    pub async fn add_when_released(ctx: &mut WorkflowContext<Self>, amount: i64) -> i64 {
        let _ = ctx.wait_condition(|s| s.released).await;
        ctx.state_mut(|s| {
            s.total += amount;
            s.total
        })
    }

    #[signal]
    pub fn release(&mut self, _ctx: &mut SyncWorkflowContext<Self>) {
        self.released = true;
    }
}

fn worker_options(task_queue: &str) -> WorkerOptions {
    WorkerOptions::new(task_queue).register_workflow::<Tally>().expect("workflow registers").build()
}

fn start(task_queue: &str) -> WorkflowStartOptions {
    WorkflowStartOptions::new(task_queue, unique("tally")).build()
}

fn update_id(id: &str) -> WorkflowExecuteUpdateOptions {
    WorkflowExecuteUpdateOptions::builder().update_id(id.to_string()).build()
}

fn count(events: &[temporalio_protos::protos::temporal::api::history::v1::HistoryEvent], kind: EventType) -> usize {
    events.iter().filter(|e| e.event_type() == kind).count()
}

async fn setup(name: &str) -> (TestServer, Client, String) {
    let server = TestServer::start().await.expect("server starts");
    let client = support::client(&server, "default").await;
    (server, client, unique(name))
}

#[tokio::test]
async fn a_validator_rejects_without_history_and_accepted_updates_complete_with_their_events() {
    let (_server, client, tq) = setup("upd-basic").await;
    let (handle, result) = with_worker(&client, worker_options(&tq), async {
        let handle = client.start_workflow(Tally::run, 5, start(&tq)).await.expect("start");
        for round in 1..=5i64 {
            let rejected = within("rejected update", handle.execute_update(Tally::add, -1, WorkflowExecuteUpdateOptions::default())).await;
            match rejected {
                Err(WorkflowUpdateError::Failed(failure)) => assert!(failure.message.contains("HATE"), "{failure:?}"),
                other => panic!("round {round}: a rejected update fails with the validator's failure, got {other:?}"),
            }
            let total = within("update", handle.execute_update(Tally::add, 1, WorkflowExecuteUpdateOptions::default())).await;
            assert_eq!(total.expect("accepted update"), round);
        }
        let result = within("result", handle.get_result(WorkflowGetResultOptions::default())).await.expect("completes");
        (handle, result)
    })
    .await;
    assert_eq!(result, 5);

    let events = full_history(&client, "default", &handle.info().workflow_id, "").await.expect("history");
    assert_eq!(count(&events, EventType::WorkflowExecutionUpdateAccepted), 5, "only the accepted updates are in history");
    assert_eq!(count(&events, EventType::WorkflowExecutionUpdateCompleted), 5);
    assert_eq!(count(&events, EventType::WorkflowExecutionUpdateRejected), 0);
    // The tasks that carried the rejected updates were speculative and left no trace:
    // the first task, and one per accepted update (the last also completes the run).
    assert_eq!(count(&events, EventType::WorkflowTaskScheduled), 6, "no workflow task of a rejected update is in history");
    assert_eq!(count(&events, EventType::WorkflowTaskCompleted), 6);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.event_id, i as i64 + 1, "history stays dense");
    }
    // Every Completed names its Accepted event, and the accepted request is the update.
    for e in &events {
        if let Some(Attributes::WorkflowExecutionUpdateCompletedEventAttributes(c)) = &e.attributes {
            let accepted = events.iter().find(|a| a.event_id == c.accepted_event_id).expect("the accepted event exists");
            let Some(Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(a)) = &accepted.attributes else {
                panic!("accepted_event_id {} names a {:?}", c.accepted_event_id, accepted.event_type())
            };
            let id = &c.meta.as_ref().unwrap().update_id;
            assert_eq!(&a.protocol_instance_id, id);
            assert_eq!(a.accepted_request_message_id, format!("{id}/request"));
            assert_eq!(a.accepted_request.as_ref().unwrap().input.as_ref().unwrap().name, "add");
        }
    }
}

#[tokio::test]
async fn an_update_id_is_applied_once_and_later_calls_get_its_outcome() {
    let (_server, client, tq) = setup("upd-dedupe").await;
    let handle = with_worker(&client, worker_options(&tq), async {
        let handle = client.start_workflow(Tally::run, 3, start(&tq)).await.expect("start");
        let first = within("first", handle.execute_update(Tally::add, 2, update_id("once"))).await.expect("first");
        let again = within("again", handle.execute_update(Tally::add, 2, update_id("once"))).await.expect("again");
        assert_eq!((first, again), (2, 2), "the same update id returns the first outcome and adds nothing");
        within("third", handle.execute_update(Tally::add, 1, WorkflowExecuteUpdateOptions::default())).await.expect("third");
        assert_eq!(within("result", handle.get_result(WorkflowGetResultOptions::default())).await.expect("completes"), 3);
        // On the closed run: the known id still answers its outcome, a new one is refused.
        let after = within("after close", handle.execute_update(Tally::add, 2, update_id("once"))).await.expect("known outcome");
        assert_eq!(after, 2);
        let refused = within("new on closed", handle.execute_update(Tally::add, 1, update_id("late"))).await;
        assert!(
            matches!(&refused, Err(WorkflowUpdateError::NotFound(s)) if s.message() == "workflow execution already completed"),
            "{refused:?}"
        );
        handle
    })
    .await;
    let events = full_history(&client, "default", &handle.info().workflow_id, "").await.expect("history");
    assert_eq!(count(&events, EventType::WorkflowExecutionUpdateAccepted), 2);
}

#[tokio::test]
async fn an_accepted_update_survives_a_restart_and_completes_after_it() {
    let (mut server, client, tq) = setup("upd-restart").await;
    let (workflow_id, update) = with_worker(&client, worker_options(&tq), async {
        let handle = client.start_workflow(Tally::run, 7, start(&tq)).await.expect("start");
        let options = WorkflowStartUpdateOptions::builder().update_id("slow".to_string()).build();
        let update = within("start update", handle.start_update(Tally::add_when_released, 7, options)).await.expect("accepted");
        (handle.info().workflow_id.clone(), update.id().to_string())
    })
    .await;
    assert_eq!(update, "slow");
    server.restart().await.expect("restart");
    let client = support::client(&server, "default").await;
    let result = with_worker(&client, worker_options(&tq), async {
        let handle = client.get_workflow_handle::<Tally>(&workflow_id);
        // Deduplicated against the accepted update in the run's state (the registry
        // forgot it with the restart); it waits for the outcome.
        let waiting = handle.execute_update(Tally::add_when_released, 7, update_id("slow"));
        let release = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            handle.signal(Tally::release, (), WorkflowSignalOptions::default()).await.expect("signal");
        };
        let (outcome, ()) = within("update after restart", async { tokio::join!(waiting, release) }).await;
        assert_eq!(outcome.expect("the accepted update completes"), 7);
        within("result", handle.get_result(WorkflowGetResultOptions::default())).await.expect("completes")
    })
    .await;
    assert_eq!(result, 7);
    let events = full_history(&client, "default", &workflow_id, "").await.expect("history");
    assert_eq!(count(&events, EventType::WorkflowExecutionUpdateAccepted), 1, "accepted once, across the restart");
    assert_eq!(count(&events, EventType::WorkflowExecutionUpdateCompleted), 1);
}

#[tokio::test]
async fn an_update_on_a_missing_workflow_is_not_found() {
    let (_server, client, _tq) = setup("upd-missing").await;
    let handle = client.get_workflow_handle::<Tally>("no-such-workflow");
    let options = WorkflowExecuteUpdateOptions::builder().rpc_options(RpcOptions::default()).build();
    let refused = within("update", handle.execute_update(Tally::add, 1, options)).await;
    assert!(
        matches!(&refused, Err(WorkflowUpdateError::NotFound(s)) if s.message() == "workflow not found for ID: no-such-workflow"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn update_with_start_starts_or_reuses_the_run_and_applies_the_update() {
    let (_server, client, tq) = setup("upd-with-start").await;
    let workflow_id = unique("uws");
    let options = |policy| WorkflowUpdateWithStartOptions::new(tq.clone(), workflow_id.clone(), policy).build();
    let result = with_worker(&client, worker_options(&tq), async {
        let first = client.execute_update_with_start_workflow(Tally::run, 3, Tally::add, 1, options(WorkflowIdConflictPolicy::UseExisting));
        assert_eq!(within("first update-with-start", first).await.expect("starts and updates"), 1);
        let second =
            client.execute_update_with_start_workflow(Tally::run, 3, Tally::add, 1, options(WorkflowIdConflictPolicy::UseExisting));
        assert_eq!(within("second update-with-start", second).await.expect("reuses the run"), 2, "the same run got both updates");
        // FAIL on a running workflow: the start fails, nothing is updated.
        let refused = client.execute_update_with_start_workflow(Tally::run, 3, Tally::add, 5, options(WorkflowIdConflictPolicy::Fail));
        match within("refused update-with-start", refused).await {
            Err(WorkflowUpdateWithStartError::Start(e)) => assert!(e.to_string().to_lowercase().contains("already"), "{e}"),
            other => panic!("a FAIL conflict policy on a running workflow fails the start, got {other:?}"),
        }
        let handle = client.get_workflow_handle::<Tally>(&workflow_id);
        within("last", handle.execute_update(Tally::add, 1, WorkflowExecuteUpdateOptions::default())).await.expect("last update");
        within("result", handle.get_result(WorkflowGetResultOptions::default())).await.expect("completes")
    })
    .await;
    assert_eq!(result, 3, "1 + 1 + 1: the refused update-with-start added nothing");
    let events = full_history(&client, "default", &workflow_id, "").await.expect("history");
    assert_eq!(count(&events, EventType::WorkflowExecutionStarted), 1);
    assert_eq!(count(&events, EventType::WorkflowExecutionUpdateAccepted), 3);
}
