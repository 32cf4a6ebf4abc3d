//! Queries end to end against a real one-shard node: legacy query tasks, queries
//! attached to workflow tasks, and the fallback between the two.
//!
//! No test waits on a sleep or a short budget. A legacy query task the test expects
//! it takes with a poll whose budget is far past the hang guard ([`legacy_task`]);
//! one it expects NOT to exist it checks for in the dispatcher itself
//! ([`legacy_ready`]): a query becomes a legacy task only synchronously, under the
//! workflow's lock, in the call that decides it ([`ask`], [`recheck`], or a handler
//! ending a workflow task), so once that call returned there is nothing later to wait
//! for.

use std::collections::HashMap;

use temporalio_protos::protos::temporal::api::common::v1::{Payload, Payloads};
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, QueryResultType};
use temporalio_protos::protos::temporal::api::query::v1::WorkflowQueryResult;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{PollWorkflowTaskQueueResponse, RespondWorkflowTaskCompletedRequest};

use super::*;
use crate::engine::commands::complete_workflow_task;
use crate::engine::workflow_task::testkit::*;
use crate::error::code_of;
use tonic::Code;

/// The next legacy query task of the test's task queue, with its owner; fails the
/// test (as `what`) if none comes within the hang guard.
async fn legacy_task(e: &Engine, what: &str) -> (Arc<ShardOwner>, QueryTask) {
    match guarded(what, poll_task(e, &queue(), NEVER)).await {
        Some(PolledQuery::Here(owner, task)) => (owner, task),
        Some(PolledQuery::Elsewhere { node, .. }) => panic!("{what}: a one-node engine's query task belongs to node {node}"),
        None => panic!("{what}: the poll's budget ran out"),
    }
}

/// Legacy query tasks of the test's task queue waiting for a poller, now.
fn legacy_ready(e: &Engine) -> usize {
    e.query_dispatch().ready_len(&queue())
}

/// The answer `ticket`'s caller gets; fails the test if none comes within the hang guard.
async fn outcome(ticket: &mut QueryTicket) -> Option<QueryOutcome> {
    guarded("the query's caller gets its outcome", ticket.outcome()).await
}

fn q(t: &str) -> WorkflowQuery {
    WorkflowQuery { query_type: t.into(), ..Default::default() }
}

fn answer(data: &str) -> Payloads {
    Payloads { payloads: vec![Payload { data: data.as_bytes().to_vec(), ..Default::default() }] }
}

fn pending(asked: Asked) -> QueryTicket {
    match asked {
        Asked::Pending(ticket) => ticket,
        Asked::Rejected(status) => panic!("rejected: {status:?}"),
    }
}

async fn complete_idle(e: &Engine, resp: &PollWorkflowTaskQueueResponse, query_results: HashMap<String, WorkflowQueryResult>) {
    let req = RespondWorkflowTaskCompletedRequest { task_token: resp.task_token.clone(), query_results, ..Default::default() };
    complete_workflow_task(e, &token_of(resp), req).await.expect("completes");
}

fn respond_request(task_token: Vec<u8>, result: QueryResultType, data: &str) -> RespondQueryTaskCompletedRequest {
    RespondQueryTaskCompletedRequest {
        task_token,
        completed_type: result as i32,
        query_result: (result == QueryResultType::Answered).then(|| answer(data)),
        error_message: if result == QueryResultType::Failed { data.into() } else { String::new() },
        ..Default::default()
    }
}

#[tokio::test]
async fn an_idle_run_is_queried_through_a_legacy_query_task() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-q").await;
    let resp = poll(e).await;
    complete_idle(e, &resp, HashMap::new()).await;

    let mut ticket = pending(ask(e, &run, q("count"), 0).await.unwrap());
    assert_eq!(legacy_ready(e), 1, "dispatched at once");
    let (owner, task) = legacy_task(e, "the legacy query task").await;
    let resp = legacy_task_response(&owner, &task, &queue()).unwrap().unwrap();
    assert_eq!((resp.started_event_id, resp.previous_started_event_id, resp.attempt), (0, 3, 1));
    assert_eq!(resp.query.as_ref().unwrap().query_type, "count");
    assert!(resp.queries.is_empty(), "never both query and queries");
    assert_eq!(types(&resp.history.as_ref().unwrap().events).last(), Some(&EventType::WorkflowTaskCompleted));
    assert_eq!(resp.workflow_execution_task_queue.as_ref().unwrap().name, TQ);
    let token = token_of(&resp);
    assert_eq!(token.query_id, ticket.id());

    respond(e, &token, respond_request(resp.task_token.clone(), QueryResultType::Answered, "2")).await.unwrap();
    assert_eq!(outcome(&mut ticket).await, Some(QueryOutcome::Answered(Some(answer("2")))));
    let again = respond(e, &token, respond_request(resp.task_token, QueryResultType::Answered, "2")).await;
    assert!(code_of(&again) == Some(Code::NotFound));
}

#[tokio::test]
async fn a_query_waits_for_the_next_workflow_task_and_is_answered_by_its_completion() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-attach").await;
    // No workflow task has started yet: nothing a worker could replay.
    let mut first = pending(ask(e, &run, q("first"), 0).await.unwrap());
    assert_eq!(legacy_ready(e), 0, "no legacy task before any workflow task started");
    let resp = poll(e).await;
    assert_eq!(resp.queries.keys().collect::<Vec<_>>(), [first.id()]);
    let result = WorkflowQueryResult { result_type: QueryResultType::Answered as i32, answer: Some(answer("ok")), ..Default::default() };
    complete_idle(e, &resp, HashMap::from([(first.id().to_string(), result)])).await;
    assert_eq!(outcome(&mut first).await, Some(QueryOutcome::Answered(Some(answer("ok")))));

    // A task has completed, and a signal schedules the next: the query waits for it.
    signal(e, &run, "s").await;
    let mut second = pending(ask(e, &run, q("second"), 0).await.unwrap());
    assert_eq!(legacy_ready(e), 0, "no legacy task while a workflow task is pending");
    let resp = poll(e).await;
    assert_eq!(resp.queries.keys().collect::<Vec<_>>(), [second.id()]);
    let result = WorkflowQueryResult { result_type: QueryResultType::Answered as i32, answer: Some(answer("ok 2")), ..Default::default() };
    complete_idle(e, &resp, HashMap::from([(second.id().to_string(), result)])).await;
    assert_eq!(outcome(&mut second).await, Some(QueryOutcome::Answered(Some(answer("ok 2")))));
    assert_eq!(e.owner_now(&run).queries().pending_count(&run), 0);
    assert_eq!(legacy_ready(e), 0, "answered: nothing left to dispatch");
}

#[tokio::test]
async fn an_unanswered_attached_query_falls_back_to_a_legacy_task() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-fallback").await;
    let mut ticket = pending(ask(e, &run, q("state"), 0).await.unwrap());
    let resp = poll(e).await;
    assert_eq!(resp.queries.len(), 1);
    complete_idle(e, &resp, HashMap::new()).await;
    let (owner, task) = legacy_task(e, "a legacy task after the task completed unanswered").await;
    assert_eq!(task.query_id, ticket.id());
    let legacy = legacy_task_response(&owner, &task, &queue()).unwrap().unwrap();
    respond(e, &token_of(&legacy), respond_request(legacy.task_token.clone(), QueryResultType::Failed, "no handler")).await.unwrap();
    assert_eq!(outcome(&mut ticket).await, Some(QueryOutcome::Failed("no handler".into())));
}

#[tokio::test]
async fn closed_runs_are_queried_with_their_full_history_or_rejected() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-closed-q").await;
    let resp = poll(e).await;
    let mut ticket = pending(ask(e, &run, q("early"), 0).await.unwrap());
    terminate(e, &run).await;
    assert_eq!(e.owner_now(&run).queries().pending_count(&run), 1);
    assert_eq!(legacy_ready(e), 0, "nothing dispatched it yet: the re-check does");
    recheck(e, &ticket).await.unwrap();
    let (owner, task) = legacy_task(e, "closed: dispatched by the re-check").await;
    let legacy = legacy_task_response(&owner, &task, &queue()).unwrap().unwrap();
    let events = &legacy.history.as_ref().unwrap().events;
    assert_eq!(types(events).last(), Some(&EventType::WorkflowExecutionTerminated), "full history with the close event");
    respond(e, &token_of(&legacy), respond_request(legacy.task_token.clone(), QueryResultType::Answered, "x")).await.unwrap();
    assert_eq!(outcome(&mut ticket).await, Some(QueryOutcome::Answered(Some(answer("x")))));
    drop(resp);

    let rejected = ask(e, &run, q("q"), QueryRejectCondition::NotOpen as i32).await.unwrap();
    assert!(matches!(rejected, Asked::Rejected(WorkflowExecutionStatus::Terminated)));
}

#[tokio::test]
async fn queries_fail_fast_on_failing_or_unscheduled_tasks() {
    let kit = kit().await;
    let e = &kit.engine;
    let run = start_run(e, "wf-failing").await;
    for attempt in 1..=2 {
        poll(e).await;
        crate::engine::workflow_task::on_workflow_task_timeout(e, &run, 2 + 3 * (attempt - 1), attempt as i32).await.unwrap();
    }
    assert_eq!(state(e, &run).workflow_task_attempt, 3);
    assert!(code_of(&ask(e, &run, q("q"), 0).await) == Some(Code::FailedPrecondition));
}

/// Terminates the run as the terminate RPC does.
async fn terminate(e: &Engine, run: &RunKey) {
    let lock = e.lock_workflow(&run.namespace, &run.workflow_id).await.unwrap();
    let mut txn = e.txn(lock.load_existing(run).unwrap());
    crate::core::lifecycle::terminate(&mut txn, "test".into(), None, IDENTITY.into());
    lock.commit(txn).await.unwrap();
}
