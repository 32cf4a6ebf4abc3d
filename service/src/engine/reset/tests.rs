//! Reset and delete over a real node: the new run is committed with the current
//! run's termination, becomes the current run, gets a workflow task, and a retried
//! request answers the same run; delete terminates, then removes the run.

use tonic::Code;

use temporalio_protos::protos::temporal::api::enums::v1::{EventType, WorkflowExecutionStatus};

use super::{reset_workflow, Reset};
use crate::core::reset::ResetSpec;
use crate::engine::delete::delete_workflow;
use crate::engine::describe;
use crate::engine::workflow_task::testkit::{history, kit, next_task, signal, start_run, state, types, NS};
use crate::error::code_of;

fn reset_of(workflow_id: &str, request_id: &str, finish_event_id: i64) -> Reset {
    Reset {
        namespace: NS.into(),
        workflow_id: workflow_id.into(),
        run_id: String::new(),
        request_id: request_id.into(),
        spec: ResetSpec { finish_event_id, reason: "test".into(), reapply_signals: true, reapply_updates: false },
    }
}

#[tokio::test]
async fn reset_commits_a_new_current_run_and_terminates_the_old() {
    let k = kit().await;
    let e = &k.engine;
    let base = start_run(e, "wf-reset").await;
    signal(e, &base, "a").await;
    signal(e, &base, "b").await;
    next_task(e).await; // the base's workflow task leaves matching (it goes stale)
    let new_run_id = reset_workflow(e, &reset_of("wf-reset", "req-1", 3)).await.expect("reset");
    let again = reset_workflow(e, &reset_of("wf-reset", "req-1", 3)).await.expect("retried reset");
    assert_eq!(again, new_run_id, "a retried request answers the first reset's run");

    assert_eq!(state(e, &base).status, WorkflowExecutionStatus::Terminated as i32);
    let new_run = hourglass_storage::state::RunKey { run_id: new_run_id.clone(), ..base.clone() };
    use EventType as E;
    assert_eq!(
        types(&history(e, &new_run)),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskFailed,
            E::WorkflowExecutionSignaled,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
        ]
    );
    assert_eq!(e.current_run_now(NS, "wf-reset").unwrap(), Some((new_run_id.clone(), true)));
    let task = next_task(e).await;
    assert_eq!((task.run.run_id.as_str(), task.payload.scheduled_event_id), (new_run_id.as_str(), 7), "the new run's task is dispatched");

    let bad = reset_workflow(e, &reset_of("wf-reset", "req-2", 6)).await;
    assert_eq!(code_of(&bad), Some(Code::InvalidArgument), "{bad:?}");
    let missing = reset_workflow(e, &reset_of("nope", "req-3", 3)).await;
    assert_eq!(code_of(&missing), Some(Code::NotFound), "{missing:?}");
}

#[tokio::test]
async fn delete_terminates_then_forgets_the_run() {
    let k = kit().await;
    let e = &k.engine;
    let run = start_run(e, "wf-delete").await;
    delete_workflow(e, NS, "wf-delete", "").await.expect("delete");
    assert!(e.load_existing(&run).is_err(), "the run is gone");
    assert_eq!(e.current_run_now(NS, "wf-delete").unwrap(), None);
    let described = describe::describe(e, NS, "wf-delete", "").await;
    assert_eq!(code_of(&described), Some(Code::NotFound), "{:?}", described.err());
    let again = delete_workflow(e, NS, "wf-delete", &run.run_id).await;
    assert_eq!(code_of(&again), Some(Code::NotFound), "{again:?}");
}
