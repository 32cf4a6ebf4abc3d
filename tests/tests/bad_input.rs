//! Bad input to every implemented `WorkflowService` RPC, sent with a raw generated
//! client (no SDK retries, no client-side validation) to an in-process Hourglass
//! server. Each case checks the EXACT status code, and that nothing changed: the
//! involved run's history and description are identical before and after, no
//! workflow was created, and the server still serves (no panic on a server thread,
//! the connection and a fresh one still answer).
//!
//! Expected codes are those of Temporal's reference server (CLI 1.9.1 / server
//! 1.32.0, `temporal server start-dev`), probed with the same requests. Where
//! Hourglass deliberately differs, the case says so.
//!
//! Run with `--nocapture` to see each test's case table.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[macro_use]
#[path = "bad_input/harness.rs"]
mod harness;

use harness::*;
use temporalio_client::tonic::Code;
use temporalio_protos::protos::temporal::api::command::v1::{
    command, CancelTimerCommandAttributes, Command, CompleteWorkflowExecutionCommandAttributes, RequestCancelActivityTaskCommandAttributes,
    RequestCancelExternalWorkflowExecutionCommandAttributes, SignalExternalWorkflowExecutionCommandAttributes,
};
use temporalio_protos::protos::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::UpdateWorkflowExecutionLifecycleStage;
use temporalio_protos::protos::temporal::api::enums::v1::{
    CommandType, EventType, QueryRejectCondition, QueryResultType, WorkflowTaskFailedCause,
};
use temporalio_protos::protos::temporal::api::failure::v1::{failure::FailureInfo, ApplicationFailureInfo, Failure};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::query::v1::WorkflowQuery;
use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;
use temporalio_protos::protos::temporal::api::update::v1::{
    Input as UpdateInput, Meta as UpdateMeta, Request as UpdateRequest, UpdateRef, WaitPolicy,
};
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;

const INVALID: Code = Code::InvalidArgument;
const NOT_FOUND: Code = Code::NotFound;

fn query(query_type: &str) -> Option<WorkflowQuery> {
    Some(WorkflowQuery { query_type: query_type.into(), ..Default::default() })
}

/// A failure as SDKs send it for an activity attempt.
fn app_failure(message: &str) -> Option<Failure> {
    Some(Failure {
        message: message.into(),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo { r#type: "E".into(), ..Default::default() })),
        ..Default::default()
    })
}

fn update(update_id: &str) -> Option<UpdateRequest> {
    Some(UpdateRequest {
        meta: Some(UpdateMeta { update_id: update_id.into(), identity: "bad-input".into() }),
        input: Some(UpdateInput { name: "upd".into(), ..Default::default() }),
        ..Default::default()
    })
}

fn update_ref(workflow_id: &str, run_id: &str, update_id: &str) -> Option<UpdateRef> {
    Some(UpdateRef { workflow_execution: exec(workflow_id, run_id), update_id: update_id.into() })
}

fn wait(stage: UpdateWorkflowExecutionLifecycleStage) -> Option<WaitPolicy> {
    Some(WaitPolicy { lifecycle_stage: stage as i32 })
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unknown_namespace_is_refused_by_every_rpc() {
    let mut env = Env::start().await;
    let act = env.started_activity().await;
    let wid = act.workflow_id.clone();
    let before = env.snapshot(&wid, &act.run_id).await;

    for (ns, input, code) in [("", "missing namespace", INVALID), (UNKNOWN_NS, "unknown namespace", NOT_FOUND)] {
        let new_id = unique("never");
        let ns = ns.to_string();
        call!(env, describe_namespace, input, code, DescribeNamespaceRequest { namespace: ns.clone(), ..Default::default() });
        call!(
            env,
            start_workflow_execution,
            input,
            code,
            StartWorkflowExecutionRequest { namespace: ns.clone(), ..start_request(&new_id, "tq") }
        );
        call!(
            env,
            signal_workflow_execution,
            input,
            code,
            SignalWorkflowExecutionRequest {
                namespace: ns.clone(),
                workflow_execution: exec(&wid, ""),
                signal_name: "sig".into(),
                ..Default::default()
            }
        );
        call!(
            env,
            signal_with_start_workflow_execution,
            input,
            code,
            SignalWithStartWorkflowExecutionRequest { namespace: ns.clone(), ..signal_with_start_request(&new_id, "tq") }
        );
        call!(
            env,
            poll_workflow_task_queue,
            input,
            code,
            PollWorkflowTaskQueueRequest { namespace: ns.clone(), task_queue: tq("tq"), ..Default::default() }
        );
        call!(
            env,
            poll_activity_task_queue,
            input,
            code,
            PollActivityTaskQueueRequest { namespace: ns.clone(), task_queue: tq("tq"), ..Default::default() }
        );
        call!(
            env,
            respond_activity_task_completed_by_id,
            input,
            code,
            RespondActivityTaskCompletedByIdRequest {
                namespace: ns.clone(),
                workflow_id: wid.clone(),
                activity_id: ACTIVITY_ID.into(),
                ..Default::default()
            }
        );
        call!(
            env,
            respond_activity_task_failed_by_id,
            input,
            code,
            RespondActivityTaskFailedByIdRequest {
                namespace: ns.clone(),
                workflow_id: wid.clone(),
                activity_id: ACTIVITY_ID.into(),
                ..Default::default()
            }
        );
        call!(
            env,
            respond_activity_task_canceled_by_id,
            input,
            code,
            RespondActivityTaskCanceledByIdRequest {
                namespace: ns.clone(),
                workflow_id: wid.clone(),
                activity_id: ACTIVITY_ID.into(),
                ..Default::default()
            }
        );
        call!(
            env,
            record_activity_task_heartbeat_by_id,
            input,
            code,
            RecordActivityTaskHeartbeatByIdRequest {
                namespace: ns.clone(),
                workflow_id: wid.clone(),
                activity_id: ACTIVITY_ID.into(),
                ..Default::default()
            }
        );
        call!(
            env,
            get_workflow_execution_history,
            input,
            code,
            GetWorkflowExecutionHistoryRequest { namespace: ns.clone(), execution: exec(&wid, ""), ..Default::default() }
        );
        call!(
            env,
            get_workflow_execution_history_reverse,
            input,
            code,
            GetWorkflowExecutionHistoryReverseRequest { namespace: ns.clone(), execution: exec(&wid, ""), ..Default::default() }
        );
        call!(
            env,
            describe_workflow_execution,
            input,
            code,
            DescribeWorkflowExecutionRequest { namespace: ns.clone(), execution: exec(&wid, "") }
        );
        call!(
            env,
            request_cancel_workflow_execution,
            input,
            code,
            RequestCancelWorkflowExecutionRequest { namespace: ns.clone(), workflow_execution: exec(&wid, ""), ..Default::default() }
        );
        call!(
            env,
            terminate_workflow_execution,
            input,
            code,
            TerminateWorkflowExecutionRequest { namespace: ns.clone(), workflow_execution: exec(&wid, ""), ..Default::default() }
        );
        call!(env, reset_sticky_task_queue, input, code, ResetStickyTaskQueueRequest { namespace: ns.clone(), execution: exec(&wid, "") });
        call!(
            env,
            reset_workflow_execution,
            input,
            code,
            ResetWorkflowExecutionRequest {
                namespace: ns.clone(),
                workflow_execution: exec(&wid, ""),
                workflow_task_finish_event_id: 4,
                request_id: uuid(),
                ..Default::default()
            }
        );
        call!(
            env,
            delete_workflow_execution,
            input,
            code,
            DeleteWorkflowExecutionRequest { namespace: ns.clone(), workflow_execution: exec(&wid, "") }
        );
        call!(
            env,
            query_workflow,
            input,
            code,
            QueryWorkflowRequest { namespace: ns.clone(), execution: exec(&wid, ""), query: query("q"), ..Default::default() }
        );
        call!(
            env,
            update_workflow_execution,
            input,
            code,
            UpdateWorkflowExecutionRequest {
                namespace: ns.clone(),
                workflow_execution: exec(&wid, ""),
                request: update("u"),
                ..Default::default()
            }
        );
        call!(
            env,
            poll_workflow_execution_update,
            input,
            code,
            PollWorkflowExecutionUpdateRequest { namespace: ns.clone(), update_ref: update_ref(&wid, "", "u"), ..Default::default() }
        );
        call!(
            env,
            shutdown_worker,
            input,
            code,
            ShutdownWorkerRequest { namespace: ns.clone(), sticky_task_queue: "sticky".into(), ..Default::default() }
        );
        env.assert_no_workflow(&new_id).await;
    }

    // Task-token RPCs take the namespace from the token; a request namespace, when
    // set, must exist (NotFound) and be the token's (InvalidArgument).
    let other_ns = "bad-input-other";
    let register = RegisterNamespaceRequest {
        namespace: other_ns.into(),
        workflow_execution_retention_period: Some(prost_wkt_types::Duration { seconds: 86_400, nanos: 0 }),
        ..Default::default()
    };
    env.svc().register_namespace(req(register)).await.expect("registers a second namespace");
    let wft = env.started_workflow_task().await;
    let wft_before = env.snapshot(&wft.workflow_id, &wft.run_id).await;
    let unknown_in_token = |t: &[u8]| forge(t, |t| t.namespace = UNKNOWN_NS.into());
    for (input, request_ns, wft_token, act_token, code) in [
        ("token names an unknown namespace", "", unknown_in_token(&wft.token), unknown_in_token(&act.token), NOT_FOUND),
        ("request names an unknown namespace", UNKNOWN_NS, wft.token.clone(), act.token.clone(), NOT_FOUND),
        ("request names another namespace than the token", other_ns, wft.token.clone(), act.token.clone(), INVALID),
    ] {
        let ns = request_ns.to_string();
        call!(
            env,
            respond_workflow_task_completed,
            input,
            code,
            RespondWorkflowTaskCompletedRequest { namespace: ns.clone(), task_token: wft_token.clone(), ..Default::default() }
        );
        call!(
            env,
            respond_workflow_task_failed,
            input,
            code,
            RespondWorkflowTaskFailedRequest { namespace: ns.clone(), task_token: wft_token.clone(), ..Default::default() }
        );
        call!(
            env,
            respond_query_task_completed,
            input,
            code,
            RespondQueryTaskCompletedRequest {
                namespace: ns.clone(),
                task_token: forge(&wft_token, |t| t.query_id = "q-1".into()),
                completed_type: QueryResultType::Answered as i32,
                ..Default::default()
            }
        );
        call!(
            env,
            respond_activity_task_completed,
            input,
            code,
            RespondActivityTaskCompletedRequest { namespace: ns.clone(), task_token: act_token.clone(), ..Default::default() }
        );
        call!(
            env,
            respond_activity_task_failed,
            input,
            code,
            RespondActivityTaskFailedRequest {
                namespace: ns.clone(),
                task_token: act_token.clone(),
                failure: app_failure("boom"),
                ..Default::default()
            }
        );
        call!(
            env,
            respond_activity_task_canceled,
            input,
            code,
            RespondActivityTaskCanceledRequest { namespace: ns.clone(), task_token: act_token.clone(), ..Default::default() }
        );
        call!(
            env,
            record_activity_task_heartbeat,
            input,
            code,
            RecordActivityTaskHeartbeatRequest { namespace: ns.clone(), task_token: act_token.clone(), ..Default::default() }
        );
    }

    // Namespace RPCs themselves.
    call!(env, register_namespace, "empty name", INVALID, RegisterNamespaceRequest::default());
    call!(
        env,
        register_namespace,
        "name taken",
        Code::AlreadyExists,
        RegisterNamespaceRequest {
            namespace: NS.into(),
            workflow_execution_retention_period: Some(prost_wkt_types::Duration { seconds: 86_400, nanos: 0 }),
            ..Default::default()
        }
    );
    // Temporal's dev server (sqlite) ignores a garbled token and answers the first page.
    call!(
        env,
        list_namespaces,
        "garbled next_page_token (Temporal: OK)",
        INVALID,
        ListNamespacesRequest { next_page_token: vec![0xff, 0xfe, 0x00], ..Default::default() }
    );
    call!(env, get_system_info, "no fields (nothing to get wrong)", Code::Ok, GetSystemInfoRequest::default());
    call!(env, shutdown_worker, "no sticky queue", Code::Ok, ShutdownWorkerRequest { namespace: NS.into(), ..Default::default() });

    env.assert_unchanged("the activity's run is unchanged", &wid, &act.run_id, &before).await;
    env.assert_unchanged("the workflow task's run is unchanged", &wft.workflow_id, &wft.run_id, &wft_before).await;
    // The tokens still work.
    call!(
        env,
        record_activity_task_heartbeat,
        "the real token, afterwards",
        Code::Ok,
        RecordActivityTaskHeartbeatRequest { task_token: act.token.clone(), ..Default::default() }
    );
    call!(
        env,
        respond_workflow_task_completed,
        "the real token, afterwards",
        Code::Ok,
        RespondWorkflowTaskCompletedRequest { task_token: wft.token.clone(), ..Default::default() }
    );
    env.finish("namespaces").await;
}

// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_fields_and_malformed_ids_are_invalid_arguments() {
    let mut env = Env::start().await;
    let act = env.started_activity().await;
    let wid = act.workflow_id.clone();
    let before = env.snapshot(&wid, &act.run_id).await;

    // Start and signal-with-start: each with a new id that must not come to exist.
    let starts: Vec<(&str, Edit<StartWorkflowExecutionRequest>)> = vec![
        ("empty workflow_id", Box::new(|r| r.workflow_id.clear())),
        ("workflow_id over 1000 bytes", Box::new(|r| r.workflow_id = "w".repeat(1001))),
        ("empty workflow_type", Box::new(|r| r.workflow_type = Some(WorkflowType { name: String::new() }))),
        ("no workflow_type", Box::new(|r| r.workflow_type = None)),
        ("empty task_queue", Box::new(|r| r.task_queue = tq(""))),
        ("no task_queue", Box::new(|r| r.task_queue = None)),
        ("task_queue over 1000 bytes", Box::new(|r| r.task_queue = tq(&"q".repeat(1001)))),
    ];
    for (input, change) in &starts {
        let id = unique("never");
        let mut r = start_request(&id, "tq");
        change(&mut r);
        call!(env, start_workflow_execution, *input, INVALID, r);
        env.assert_no_workflow(&id).await;
    }
    let sws: Vec<(&str, Edit<SignalWithStartWorkflowExecutionRequest>)> = vec![
        ("empty workflow_id", Box::new(|r| r.workflow_id.clear())),
        ("empty workflow_type", Box::new(|r| r.workflow_type = Some(WorkflowType { name: String::new() }))),
        ("empty task_queue", Box::new(|r| r.task_queue = tq(""))),
        ("empty signal_name", Box::new(|r| r.signal_name.clear())),
    ];
    for (input, change) in &sws {
        let id = unique("never");
        let mut r = signal_with_start_request(&id, "tq");
        change(&mut r);
        call!(env, signal_with_start_workflow_execution, *input, INVALID, r);
        env.assert_no_workflow(&id).await;
    }
    call!(
        env,
        signal_with_start_workflow_execution,
        "running workflow, empty signal_name",
        INVALID,
        SignalWithStartWorkflowExecutionRequest { signal_name: String::new(), ..signal_with_start_request(&wid, "tq") }
    );

    let signal = |execution, name: &str| SignalWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_execution: execution,
        signal_name: name.into(),
        ..Default::default()
    };
    call!(env, signal_workflow_execution, "no execution", INVALID, signal(None, "sig"));
    call!(env, signal_workflow_execution, "empty workflow_id", INVALID, signal(exec("", ""), "sig"));
    call!(env, signal_workflow_execution, "run_id not a UUID", INVALID, signal(exec(&wid, "not-a-uuid"), "sig"));
    call!(env, signal_workflow_execution, "empty signal_name", INVALID, signal(exec(&wid, ""), ""));
    call!(env, signal_workflow_execution, "signal_name over 1000 bytes", INVALID, signal(exec(&wid, ""), &"s".repeat(2000)));

    for (input, queue) in [("empty task_queue", tq("")), ("no task_queue", None), ("task_queue over 1000 bytes", tq(&"q".repeat(1001)))] {
        call!(
            env,
            poll_workflow_task_queue,
            input,
            INVALID,
            PollWorkflowTaskQueueRequest { namespace: NS.into(), task_queue: queue.clone(), ..Default::default() }
        );
        call!(
            env,
            poll_activity_task_queue,
            input,
            INVALID,
            PollActivityTaskQueueRequest { namespace: NS.into(), task_queue: queue, ..Default::default() }
        );
    }

    // The …ById RPCs. Temporal 1.32 reads an empty workflow id as a standalone
    // activity's, so it is NotFound there, not InvalidArgument.
    let unknown_wf = unique("never");
    let run = uuid();
    for (input, workflow_id, run_id, activity_id, code) in [
        ("empty activity_id", wid.as_str(), "", "", INVALID),
        ("empty workflow_id", "", "", ACTIVITY_ID, NOT_FOUND),
        ("run_id not a UUID", wid.as_str(), "zzz", ACTIVITY_ID, INVALID),
        ("unknown workflow", unknown_wf.as_str(), "", ACTIVITY_ID, NOT_FOUND),
        ("unknown run", wid.as_str(), run.as_str(), ACTIVITY_ID, NOT_FOUND),
        ("unknown activity_id", wid.as_str(), "", "no-such-activity", NOT_FOUND),
    ] {
        let (w, r, a) = (workflow_id.to_string(), run_id.to_string(), activity_id.to_string());
        call!(
            env,
            respond_activity_task_completed_by_id,
            input,
            code,
            RespondActivityTaskCompletedByIdRequest {
                namespace: NS.into(),
                workflow_id: w.clone(),
                run_id: r.clone(),
                activity_id: a.clone(),
                ..Default::default()
            }
        );
        call!(
            env,
            respond_activity_task_failed_by_id,
            input,
            code,
            RespondActivityTaskFailedByIdRequest {
                namespace: NS.into(),
                workflow_id: w.clone(),
                run_id: r.clone(),
                activity_id: a.clone(),
                failure: app_failure("boom"),
                ..Default::default()
            }
        );
        call!(
            env,
            respond_activity_task_canceled_by_id,
            input,
            code,
            RespondActivityTaskCanceledByIdRequest {
                namespace: NS.into(),
                workflow_id: w.clone(),
                run_id: r.clone(),
                activity_id: a.clone(),
                ..Default::default()
            }
        );
        call!(
            env,
            record_activity_task_heartbeat_by_id,
            input,
            code,
            RecordActivityTaskHeartbeatByIdRequest {
                namespace: NS.into(),
                workflow_id: w,
                run_id: r,
                activity_id: a,
                ..Default::default()
            }
        );
    }
    // A worker's failure must be an application failure (Temporal's frontend check).
    call!(
        env,
        respond_activity_task_failed,
        "failure without ApplicationFailureInfo",
        INVALID,
        RespondActivityTaskFailedRequest {
            task_token: act.token.clone(),
            failure: Some(Failure { message: "boom".into(), ..Default::default() }),
            ..Default::default()
        }
    );
    // Canceling an attempt nobody asked to cancel.
    call!(
        env,
        respond_activity_task_canceled,
        "no cancel was requested",
        INVALID,
        RespondActivityTaskCanceledRequest { task_token: act.token.clone(), ..Default::default() }
    );

    for (input, execution) in [("no execution", None), ("empty workflow_id", exec("", "")), ("run_id not a UUID", exec(&wid, "zzz"))] {
        call!(
            env,
            get_workflow_execution_history,
            input,
            INVALID,
            GetWorkflowExecutionHistoryRequest { namespace: NS.into(), execution: execution.clone(), ..Default::default() }
        );
        call!(
            env,
            get_workflow_execution_history_reverse,
            input,
            INVALID,
            GetWorkflowExecutionHistoryReverseRequest { namespace: NS.into(), execution: execution.clone(), ..Default::default() }
        );
        call!(
            env,
            describe_workflow_execution,
            input,
            INVALID,
            DescribeWorkflowExecutionRequest { namespace: NS.into(), execution: execution.clone() }
        );
        call!(
            env,
            request_cancel_workflow_execution,
            input,
            INVALID,
            RequestCancelWorkflowExecutionRequest { namespace: NS.into(), workflow_execution: execution.clone(), ..Default::default() }
        );
        call!(
            env,
            terminate_workflow_execution,
            input,
            INVALID,
            TerminateWorkflowExecutionRequest { namespace: NS.into(), workflow_execution: execution.clone(), ..Default::default() }
        );
        call!(
            env,
            reset_sticky_task_queue,
            input,
            INVALID,
            ResetStickyTaskQueueRequest { namespace: NS.into(), execution: execution.clone() }
        );
        call!(
            env,
            query_workflow,
            input,
            INVALID,
            QueryWorkflowRequest { namespace: NS.into(), execution, query: query("q"), ..Default::default() }
        );
    }
    call!(
        env,
        query_workflow,
        "no query",
        INVALID,
        QueryWorkflowRequest { namespace: NS.into(), execution: exec(&wid, ""), ..Default::default() }
    );
    call!(
        env,
        query_workflow,
        "empty query_type",
        INVALID,
        QueryWorkflowRequest { namespace: NS.into(), execution: exec(&wid, ""), query: query(""), ..Default::default() }
    );

    env.assert_unchanged("the run is unchanged", &wid, &act.run_id, &before).await;
    call!(
        env,
        respond_activity_task_completed,
        "the real token, afterwards",
        Code::Ok,
        RespondActivityTaskCompletedRequest { task_token: act.token.clone(), result: Some(small()), ..Default::default() }
    );
    env.finish("required fields and ids").await;
}

// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_over_the_blob_limit_are_invalid_arguments() {
    let mut env = Env::start().await;
    let act = env.started_activity().await;
    let wid = act.workflow_id.clone();
    let before = env.snapshot(&wid, &act.run_id).await;
    let big = oversized();
    assert!(prost::Message::encoded_len(&big) > blob_max());

    let id = unique("never");
    call!(
        env,
        start_workflow_execution,
        "input > 2 MiB",
        INVALID,
        StartWorkflowExecutionRequest { input: Some(big.clone()), ..start_request(&id, "tq") }
    );
    call!(
        env,
        signal_with_start_workflow_execution,
        "new workflow, input > 2 MiB",
        INVALID,
        SignalWithStartWorkflowExecutionRequest { input: Some(big.clone()), ..signal_with_start_request(&id, "tq") }
    );
    call!(
        env,
        signal_with_start_workflow_execution,
        "new workflow, signal_input > 2 MiB",
        INVALID,
        SignalWithStartWorkflowExecutionRequest { signal_input: Some(big.clone()), ..signal_with_start_request(&id, "tq") }
    );
    // Temporal checks no size of a start's user metadata (only the gRPC message limit);
    // Hourglass holds it to the blob limit every other payload has.
    let big_metadata = Some(UserMetadata { summary: big.payloads.first().cloned(), details: None });
    call!(
        env,
        start_workflow_execution,
        "user_metadata > 2 MiB (Temporal: OK)",
        INVALID,
        StartWorkflowExecutionRequest { user_metadata: big_metadata.clone(), ..start_request(&id, "tq") }
    );
    call!(
        env,
        signal_with_start_workflow_execution,
        "new workflow, user_metadata > 2 MiB (Temporal: OK)",
        INVALID,
        SignalWithStartWorkflowExecutionRequest { user_metadata: big_metadata, ..signal_with_start_request(&id, "tq") }
    );
    env.assert_no_workflow(&id).await;
    call!(
        env,
        signal_with_start_workflow_execution,
        "running workflow, signal_input > 2 MiB",
        INVALID,
        SignalWithStartWorkflowExecutionRequest { signal_input: Some(big.clone()), ..signal_with_start_request(&wid, "tq") }
    );
    call!(
        env,
        signal_workflow_execution,
        "input > 2 MiB",
        INVALID,
        SignalWorkflowExecutionRequest {
            namespace: NS.into(),
            workflow_execution: exec(&wid, ""),
            signal_name: "sig".into(),
            input: Some(big.clone()),
            ..Default::default()
        }
    );
    call!(
        env,
        query_workflow,
        "query_args > 2 MiB",
        INVALID,
        QueryWorkflowRequest {
            namespace: NS.into(),
            execution: exec(&wid, ""),
            query: Some(WorkflowQuery { query_type: "q".into(), query_args: Some(big.clone()), ..Default::default() }),
            ..Default::default()
        }
    );
    // Temporal accepts (and records) oversized terminate details; Hourglass refuses them.
    call!(
        env,
        terminate_workflow_execution,
        "details > 2 MiB (Temporal: OK)",
        INVALID,
        TerminateWorkflowExecutionRequest {
            namespace: NS.into(),
            workflow_execution: exec(&wid, ""),
            details: Some(big.clone()),
            ..Default::default()
        }
    );

    // Activity outcomes. Temporal answers OK to an oversized result or heartbeat and
    // fails the activity instead; Hourglass refuses the call and keeps the attempt.
    let big_failure = Some(Failure {
        message: "x".repeat(blob_max() + 1),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo::default())),
        ..Default::default()
    });
    call!(
        env,
        respond_activity_task_completed,
        "result > 2 MiB (Temporal: OK, activity failed)",
        INVALID,
        RespondActivityTaskCompletedRequest { task_token: act.token.clone(), result: Some(big.clone()), ..Default::default() }
    );
    call!(
        env,
        respond_activity_task_failed,
        "failure > 2 MiB",
        INVALID,
        RespondActivityTaskFailedRequest { task_token: act.token.clone(), failure: big_failure.clone(), ..Default::default() }
    );
    call!(
        env,
        respond_activity_task_failed,
        "last_heartbeat_details > 2 MiB",
        INVALID,
        RespondActivityTaskFailedRequest {
            task_token: act.token.clone(),
            failure: app_failure("boom"),
            last_heartbeat_details: Some(big.clone()),
            ..Default::default()
        }
    );
    call!(
        env,
        respond_activity_task_canceled,
        "details > 2 MiB",
        INVALID,
        RespondActivityTaskCanceledRequest { task_token: act.token.clone(), details: Some(big.clone()), ..Default::default() }
    );
    call!(
        env,
        record_activity_task_heartbeat,
        "details > 2 MiB (Temporal: OK, activity failed)",
        INVALID,
        RecordActivityTaskHeartbeatRequest { task_token: act.token.clone(), details: Some(big.clone()), ..Default::default() }
    );
    call!(
        env,
        respond_activity_task_completed_by_id,
        "result > 2 MiB",
        INVALID,
        RespondActivityTaskCompletedByIdRequest {
            namespace: NS.into(),
            workflow_id: wid.clone(),
            activity_id: ACTIVITY_ID.into(),
            result: Some(big.clone()),
            ..Default::default()
        }
    );
    call!(
        env,
        respond_activity_task_failed_by_id,
        "failure > 2 MiB",
        INVALID,
        RespondActivityTaskFailedByIdRequest {
            namespace: NS.into(),
            workflow_id: wid.clone(),
            activity_id: ACTIVITY_ID.into(),
            failure: big_failure,
            ..Default::default()
        }
    );
    call!(
        env,
        respond_activity_task_canceled_by_id,
        "details > 2 MiB",
        INVALID,
        RespondActivityTaskCanceledByIdRequest {
            namespace: NS.into(),
            workflow_id: wid.clone(),
            activity_id: ACTIVITY_ID.into(),
            details: Some(big.clone()),
            ..Default::default()
        }
    );
    call!(
        env,
        record_activity_task_heartbeat_by_id,
        "details > 2 MiB",
        INVALID,
        RecordActivityTaskHeartbeatByIdRequest {
            namespace: NS.into(),
            workflow_id: wid.clone(),
            activity_id: ACTIVITY_ID.into(),
            details: Some(big.clone()),
            ..Default::default()
        }
    );
    env.assert_unchanged("the run is unchanged", &wid, &act.run_id, &before).await;
    call!(
        env,
        respond_activity_task_completed,
        "the real token, afterwards",
        Code::Ok,
        RespondActivityTaskCompletedRequest { task_token: act.token.clone(), result: Some(small()), ..Default::default() }
    );

    // A worker's workflow task failure is recorded whatever its size (Temporal: OK).
    let wft = env.started_workflow_task().await;
    call!(
        env,
        respond_workflow_task_failed,
        "failure > 2 MiB (Temporal: OK)",
        Code::Ok,
        RespondWorkflowTaskFailedRequest {
            task_token: wft.token.clone(),
            failure: Some(Failure { message: "x".repeat(blob_max() + 1), ..Default::default() }),
            ..Default::default()
        }
    );

    // A workflow completing with an oversized result: the task fails and the run is
    // terminated (as Temporal does; its cause there is BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
    // a Go quirk; Hourglass names the command's own cause).
    let wft = env.started_workflow_task().await;
    let complete = Command {
        command_type: CommandType::CompleteWorkflowExecution as i32,
        attributes: Some(command::Attributes::CompleteWorkflowExecutionCommandAttributes(CompleteWorkflowExecutionCommandAttributes {
            result: Some(big.clone()),
        })),
        ..Default::default()
    };
    call!(
        env,
        respond_workflow_task_completed,
        "CompleteWorkflowExecution result > 2 MiB",
        INVALID,
        RespondWorkflowTaskCompletedRequest { task_token: wft.token.clone(), commands: vec![complete], ..Default::default() }
    );
    let events = env.history(&wft.workflow_id, &wft.run_id).await;
    let types: Vec<EventType> = events.iter().map(|e| EventType::try_from(e.event_type).unwrap()).collect();
    assert_eq!(
        types,
        [
            EventType::WorkflowExecutionStarted,
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskFailed,
            EventType::WorkflowExecutionTerminated,
        ]
    );
    match &events[3].attributes {
        Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => {
            assert_eq!(a.cause, WorkflowTaskFailedCause::BadCompleteWorkflowExecutionAttributes as i32)
        }
        other => panic!("WorkflowTaskFailed attributes expected, got {other:?}"),
    }
    env.finish("oversized payloads").await;
}

// ---------------------------------------------------------------------------------

/// Sends `token` to the two workflow-task RPCs and the four activity-task RPCs for
/// which `input` is bad, expecting `code` from each.
async fn every_token_rpc(env: &mut Env, input: &str, token: &[u8], workflow_code: Code, activity_code: Code) {
    call!(
        env,
        respond_workflow_task_completed,
        input,
        workflow_code,
        RespondWorkflowTaskCompletedRequest { task_token: token.to_vec(), ..Default::default() }
    );
    call!(
        env,
        respond_workflow_task_failed,
        input,
        workflow_code,
        RespondWorkflowTaskFailedRequest { task_token: token.to_vec(), ..Default::default() }
    );
    call!(
        env,
        respond_activity_task_completed,
        input,
        activity_code,
        RespondActivityTaskCompletedRequest { task_token: token.to_vec(), ..Default::default() }
    );
    call!(
        env,
        respond_activity_task_failed,
        input,
        activity_code,
        RespondActivityTaskFailedRequest { task_token: token.to_vec(), failure: app_failure("boom"), ..Default::default() }
    );
    call!(
        env,
        respond_activity_task_canceled,
        input,
        activity_code,
        RespondActivityTaskCanceledRequest { task_token: token.to_vec(), ..Default::default() }
    );
    call!(
        env,
        record_activity_task_heartbeat,
        input,
        activity_code,
        RecordActivityTaskHeartbeatRequest { task_token: token.to_vec(), ..Default::default() }
    );
}

/// Every strict prefix of a real token is refused as malformed (one table row).
async fn every_prefix(env: &mut Env, rpc_input: &str, token: &[u8]) {
    let mut wrong = Vec::new();
    for n in 0..token.len() {
        let prefix = token[..n].to_vec();
        let mut svc = env.svc();
        let answers = [
            svc.respond_workflow_task_completed(req(RespondWorkflowTaskCompletedRequest {
                task_token: prefix.clone(),
                ..Default::default()
            }))
            .await
            .map(|_| ()),
            svc.respond_workflow_task_failed(req(RespondWorkflowTaskFailedRequest { task_token: prefix.clone(), ..Default::default() }))
                .await
                .map(|_| ()),
            svc.respond_activity_task_completed(req(RespondActivityTaskCompletedRequest {
                task_token: prefix.clone(),
                ..Default::default()
            }))
            .await
            .map(|_| ()),
            svc.record_activity_task_heartbeat(req(RecordActivityTaskHeartbeatRequest {
                task_token: prefix.clone(),
                ..Default::default()
            }))
            .await
            .map(|_| ()),
            svc.respond_query_task_completed(req(RespondQueryTaskCompletedRequest {
                task_token: prefix.clone(),
                completed_type: QueryResultType::Answered as i32,
                ..Default::default()
            }))
            .await
            .map(|_| ()),
        ];
        for (i, a) in answers.into_iter().enumerate() {
            let code = a.err().map_or(Code::Ok, |s| s.code());
            if code != INVALID {
                wrong.push(format!("prefix of {n} bytes, rpc #{i}: {code:?}"));
            }
        }
    }
    let input = format!("{rpc_input}: each of its {} strict prefixes, to the 5 token RPCs", token.len());
    let result = if wrong.is_empty() {
        Err(temporalio_client::tonic::Status::invalid_argument("all malformed"))
    } else {
        Err(temporalio_client::tonic::Status::unknown(wrong.join("; ")))
    };
    env.check::<()>("every_token_rpc", &input, INVALID, result).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_tokens_are_invalid_and_forged_tokens_not_found() {
    let mut env = Env::start().await;
    let wft = env.started_workflow_task().await;
    let act = env.started_activity().await;
    let wft_before = env.snapshot(&wft.workflow_id, &wft.run_id).await;
    let act_before = env.snapshot(&act.workflow_id, &act.run_id).await;
    let (queried, query_token, query_call) = env.pending_query().await;
    let queried_before = env.snapshot(&queried.workflow_id, &queried.run_id).await;

    for (input, token) in garbled_tokens() {
        every_token_rpc(&mut env, input, &token, INVALID, INVALID).await;
        call!(
            env,
            respond_query_task_completed,
            input,
            INVALID,
            RespondQueryTaskCompletedRequest { task_token: token, completed_type: QueryResultType::Answered as i32, ..Default::default() }
        );
    }
    every_prefix(&mut env, "workflow task token", &wft.token).await;
    every_prefix(&mut env, "activity task token", &act.token).await;
    every_prefix(&mut env, "query task token", &query_token).await;

    // Well-formed tokens naming something that does not exist.
    let w = &wft.token;
    for (input, token) in [
        ("workflow token, unknown run", forge(w, |t| t.run_id = uuid())),
        ("workflow token, unknown workflow", forge(w, |t| t.workflow_id = unique("never"))),
        ("workflow token, wrong attempt", forge(w, |t| t.attempt = 2)),
        ("workflow token, wrong scheduled event", forge(w, |t| t.scheduled_event_id = 99)),
        ("workflow token, wrong started event", forge(w, |t| t.started_event_id = 99)),
    ] {
        // The activity RPCs find no activity there either.
        every_token_rpc(&mut env, input, &token, NOT_FOUND, NOT_FOUND).await;
    }
    let a = &act.token;
    for (input, token) in [
        ("activity token, unknown run", forge(a, |t| t.run_id = uuid())),
        ("activity token, unknown workflow", forge(a, |t| t.workflow_id = unique("never"))),
        ("activity token, wrong attempt", forge(a, |t| t.attempt = 2)),
        ("activity token, wrong scheduled event", forge(a, |t| t.scheduled_event_id = 99)),
        ("activity token, scheduled event of a workflow task", forge(a, |t| t.scheduled_event_id = 2)),
    ] {
        every_token_rpc(&mut env, input, &token, NOT_FOUND, NOT_FOUND).await;
    }
    // A real token of one kind sent to the RPCs of the other kind (Temporal: NotFound).
    let input = "a real activity token";
    call!(
        env,
        respond_workflow_task_completed,
        input,
        NOT_FOUND,
        RespondWorkflowTaskCompletedRequest { task_token: act.token.clone(), ..Default::default() }
    );
    call!(
        env,
        respond_workflow_task_failed,
        input,
        NOT_FOUND,
        RespondWorkflowTaskFailedRequest { task_token: act.token.clone(), ..Default::default() }
    );
    call!(
        env,
        respond_query_task_completed,
        input,
        NOT_FOUND,
        RespondQueryTaskCompletedRequest {
            task_token: act.token.clone(),
            completed_type: QueryResultType::Answered as i32,
            ..Default::default()
        }
    );
    let input = "a real workflow task token";
    call!(
        env,
        respond_activity_task_completed,
        input,
        NOT_FOUND,
        RespondActivityTaskCompletedRequest { task_token: wft.token.clone(), ..Default::default() }
    );
    call!(
        env,
        respond_activity_task_failed,
        input,
        NOT_FOUND,
        RespondActivityTaskFailedRequest { task_token: wft.token.clone(), failure: app_failure("boom"), ..Default::default() }
    );
    call!(
        env,
        respond_activity_task_canceled,
        input,
        NOT_FOUND,
        RespondActivityTaskCanceledRequest { task_token: wft.token.clone(), ..Default::default() }
    );
    call!(
        env,
        record_activity_task_heartbeat,
        input,
        NOT_FOUND,
        RecordActivityTaskHeartbeatRequest { task_token: wft.token.clone(), ..Default::default() }
    );
    call!(
        env,
        respond_query_task_completed,
        input,
        NOT_FOUND,
        RespondQueryTaskCompletedRequest {
            task_token: wft.token.clone(),
            completed_type: QueryResultType::Answered as i32,
            ..Default::default()
        }
    );
    for (input, token) in [
        ("query token, unknown query id", forge(&query_token, |t| t.query_id = "no-such-query".into())),
        ("query token, unknown run", forge(&query_token, |t| t.run_id = uuid())),
    ] {
        call!(
            env,
            respond_query_task_completed,
            input,
            NOT_FOUND,
            RespondQueryTaskCompletedRequest { task_token: token, completed_type: QueryResultType::Answered as i32, ..Default::default() }
        );
    }
    // A real query token is no workflow or activity task.
    every_token_rpc(&mut env, "a real query task token", &query_token, NOT_FOUND, NOT_FOUND).await;

    env.assert_unchanged("the workflow task's run is unchanged", &wft.workflow_id, &wft.run_id, &wft_before).await;
    env.assert_unchanged("the activity's run is unchanged", &act.workflow_id, &act.run_id, &act_before).await;
    env.assert_unchanged("the queried run is unchanged", &queried.workflow_id, &queried.run_id, &queried_before).await;
    // The real tokens still work, and the query caller gets the answer.
    call!(
        env,
        respond_query_task_completed,
        "the real token, afterwards",
        Code::Ok,
        RespondQueryTaskCompletedRequest {
            task_token: query_token.clone(),
            completed_type: QueryResultType::Answered as i32,
            query_result: Some(small()),
            ..Default::default()
        }
    );
    let answer = query_call.await.expect("the query call task").expect("QueryWorkflow is answered").into_inner();
    assert_eq!(answer.query_result, Some(small()));
    call!(
        env,
        record_activity_task_heartbeat,
        "the real token, afterwards",
        Code::Ok,
        RecordActivityTaskHeartbeatRequest { task_token: act.token.clone(), ..Default::default() }
    );
    call!(
        env,
        respond_activity_task_completed,
        "the real token, afterwards",
        Code::Ok,
        RespondActivityTaskCompletedRequest { task_token: act.token.clone(), ..Default::default() }
    );
    call!(
        env,
        respond_workflow_task_completed,
        "the real token, afterwards",
        Code::Ok,
        RespondWorkflowTaskCompletedRequest { task_token: wft.token.clone(), ..Default::default() }
    );
    env.finish("task tokens").await;
}

// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_tokens_are_not_found() {
    let mut env = Env::start().await;

    // A workflow task completed twice.
    let wft = env.started_workflow_task().await;
    env.complete_workflow_task(&wft.token, Vec::new()).await;
    let before = env.snapshot(&wft.workflow_id, &wft.run_id).await;
    call!(
        env,
        respond_workflow_task_completed,
        "token of a task already completed",
        NOT_FOUND,
        RespondWorkflowTaskCompletedRequest { task_token: wft.token.clone(), ..Default::default() }
    );
    call!(
        env,
        respond_workflow_task_failed,
        "token of a task already completed",
        NOT_FOUND,
        RespondWorkflowTaskFailedRequest { task_token: wft.token.clone(), ..Default::default() }
    );
    env.assert_unchanged("the run", &wft.workflow_id, &wft.run_id, &before).await;

    // An activity completed twice.
    let act = env.started_activity().await;
    call!(
        env,
        respond_activity_task_completed,
        "first completion",
        Code::Ok,
        RespondActivityTaskCompletedRequest { task_token: act.token.clone(), result: Some(small()), ..Default::default() }
    );
    let before = env.snapshot(&act.workflow_id, &act.run_id).await;
    every_activity_rpc(&mut env, "token of an activity already completed", &act.token, &act.workflow_id, NOT_FOUND).await;
    env.assert_unchanged("the run", &act.workflow_id, &act.run_id, &before).await;

    // Tokens of a closed run.
    let act = env.started_activity().await;
    env.terminate(&act.workflow_id).await;
    let before = env.snapshot(&act.workflow_id, &act.run_id).await;
    every_activity_rpc(&mut env, "activity token of a closed run", &act.token, &act.workflow_id, NOT_FOUND).await;
    env.assert_unchanged("the run", &act.workflow_id, &act.run_id, &before).await;

    let wft = env.started_workflow_task().await;
    env.terminate(&wft.workflow_id).await;
    let before = env.snapshot(&wft.workflow_id, &wft.run_id).await;
    call!(
        env,
        respond_workflow_task_completed,
        "started task of a run closed since",
        NOT_FOUND,
        RespondWorkflowTaskCompletedRequest { task_token: wft.token.clone(), ..Default::default() }
    );
    call!(
        env,
        respond_workflow_task_failed,
        "started task of a run closed since",
        NOT_FOUND,
        RespondWorkflowTaskFailedRequest { task_token: wft.token.clone(), ..Default::default() }
    );
    env.assert_unchanged("the run", &wft.workflow_id, &wft.run_id, &before).await;
    env.finish("stale tokens").await;
}

/// The four token RPCs and the four …ById RPCs of one activity.
async fn every_activity_rpc(env: &mut Env, input: &str, token: &[u8], workflow_id: &str, code: Code) {
    call!(
        env,
        respond_activity_task_completed,
        input,
        code,
        RespondActivityTaskCompletedRequest { task_token: token.to_vec(), ..Default::default() }
    );
    call!(
        env,
        respond_activity_task_failed,
        input,
        code,
        RespondActivityTaskFailedRequest { task_token: token.to_vec(), failure: app_failure("boom"), ..Default::default() }
    );
    call!(
        env,
        respond_activity_task_canceled,
        input,
        code,
        RespondActivityTaskCanceledRequest { task_token: token.to_vec(), ..Default::default() }
    );
    call!(
        env,
        record_activity_task_heartbeat,
        input,
        code,
        RecordActivityTaskHeartbeatRequest { task_token: token.to_vec(), ..Default::default() }
    );
    let by_id = format!("{input} (by id)");
    call!(
        env,
        respond_activity_task_completed_by_id,
        by_id,
        code,
        RespondActivityTaskCompletedByIdRequest {
            namespace: NS.into(),
            workflow_id: workflow_id.into(),
            activity_id: ACTIVITY_ID.into(),
            ..Default::default()
        }
    );
    call!(
        env,
        respond_activity_task_failed_by_id,
        by_id,
        code,
        RespondActivityTaskFailedByIdRequest {
            namespace: NS.into(),
            workflow_id: workflow_id.into(),
            activity_id: ACTIVITY_ID.into(),
            failure: app_failure("boom"),
            ..Default::default()
        }
    );
    call!(
        env,
        respond_activity_task_canceled_by_id,
        by_id,
        code,
        RespondActivityTaskCanceledByIdRequest {
            namespace: NS.into(),
            workflow_id: workflow_id.into(),
            activity_id: ACTIVITY_ID.into(),
            ..Default::default()
        }
    );
    call!(
        env,
        record_activity_task_heartbeat_by_id,
        by_id,
        code,
        RecordActivityTaskHeartbeatByIdRequest {
            namespace: NS.into(),
            workflow_id: workflow_id.into(),
            activity_id: ACTIVITY_ID.into(),
            ..Default::default()
        }
    );
}

// ---------------------------------------------------------------------------------

fn cancel_activity(scheduled_event_id: i64) -> Command {
    Command {
        command_type: CommandType::RequestCancelActivityTask as i32,
        attributes: Some(command::Attributes::RequestCancelActivityTaskCommandAttributes(RequestCancelActivityTaskCommandAttributes {
            scheduled_event_id,
        })),
        ..Default::default()
    }
}

#[allow(deprecated)] // the command's `namespace`
fn signal_external(execution: Option<WorkflowExecution>, signal_name: &str, namespace: &str) -> Command {
    Command {
        command_type: CommandType::SignalExternalWorkflowExecution as i32,
        attributes: Some(command::Attributes::SignalExternalWorkflowExecutionCommandAttributes(
            SignalExternalWorkflowExecutionCommandAttributes {
                namespace: namespace.into(),
                execution,
                signal_name: signal_name.into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn cancel_external(workflow_id: &str, run_id: &str) -> Command {
    Command {
        command_type: CommandType::RequestCancelExternalWorkflowExecution as i32,
        attributes: Some(command::Attributes::RequestCancelExternalWorkflowExecutionCommandAttributes(
            RequestCancelExternalWorkflowExecutionCommandAttributes {
                workflow_id: workflow_id.into(),
                run_id: run_id.into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn cancel_timer(timer_id: &str) -> Command {
    Command {
        command_type: CommandType::CancelTimer as i32,
        attributes: Some(command::Attributes::CancelTimerCommandAttributes(CancelTimerCommandAttributes { timer_id: timer_id.into() })),
        ..Default::default()
    }
}

/// The last WorkflowTaskFailed event's cause.
fn failed_cause(events: &[temporalio_protos::protos::temporal::api::history::v1::HistoryEvent]) -> Option<WorkflowTaskFailedCause> {
    events.iter().rev().find_map(|e| match &e.attributes {
        Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => WorkflowTaskFailedCause::try_from(a.cause).ok(),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_naming_unknown_activities_or_timers_fail_the_workflow_task() {
    let mut env = Env::start().await;
    use EventType as E;
    let refused =
        [E::WorkflowExecutionStarted, E::WorkflowTaskScheduled, E::WorkflowTaskStarted, E::WorkflowTaskFailed, E::WorkflowTaskScheduled];

    // Temporal: INVALID_ARGUMENT "<Cause>: ...", WorkflowTaskFailed{cause} and a new
    // attempt; nothing of the completion is applied; the token is then stale.
    for (input, command, cause) in [
        (
            "RequestCancelActivityTask, unknown scheduled_event_id",
            cancel_activity(999),
            WorkflowTaskFailedCause::BadRequestCancelActivityAttributes,
        ),
        (
            "RequestCancelActivityTask, scheduled_event_id of a non-activity event",
            cancel_activity(2),
            WorkflowTaskFailedCause::BadRequestCancelActivityAttributes,
        ),
        ("CancelTimer, unknown timer_id", cancel_timer("no-such-timer"), WorkflowTaskFailedCause::BadCancelTimerAttributes),
        (
            "SignalExternalWorkflowExecution, no execution",
            signal_external(None, "sig", ""),
            WorkflowTaskFailedCause::BadSignalWorkflowExecutionAttributes,
        ),
        (
            "SignalExternalWorkflowExecution, a run id that is not a UUID",
            signal_external(exec("target", "not-a-uuid"), "sig", ""),
            WorkflowTaskFailedCause::BadSignalWorkflowExecutionAttributes,
        ),
        (
            "SignalExternalWorkflowExecution, no signal name",
            signal_external(exec("target", ""), "", ""),
            WorkflowTaskFailedCause::BadSignalWorkflowExecutionAttributes,
        ),
        (
            "RequestCancelExternalWorkflowExecution, no workflow id",
            cancel_external("", ""),
            WorkflowTaskFailedCause::BadRequestCancelExternalWorkflowExecutionAttributes,
        ),
        (
            "RequestCancelExternalWorkflowExecution, a run id that is not a UUID",
            cancel_external("target", "run-1"),
            WorkflowTaskFailedCause::BadRequestCancelExternalWorkflowExecutionAttributes,
        ),
    ] {
        let wft = env.started_workflow_task().await;
        call!(
            env,
            respond_workflow_task_completed,
            input,
            INVALID,
            RespondWorkflowTaskCompletedRequest { task_token: wft.token.clone(), commands: vec![command.clone()], ..Default::default() }
        );
        let events = env.history(&wft.workflow_id, &wft.run_id).await;
        let types: Vec<E> = events.iter().map(|e| E::try_from(e.event_type).unwrap()).collect();
        assert_eq!(types, refused, "{input}: the task failed and was scheduled again, nothing else");
        assert_eq!(failed_cause(&events), Some(cause), "{input}");
        let before = env.snapshot(&wft.workflow_id, &wft.run_id).await;
        call!(
            env,
            respond_workflow_task_completed,
            format!("{input}: the same token again"),
            NOT_FOUND,
            RespondWorkflowTaskCompletedRequest { task_token: wft.token.clone(), ..Default::default() }
        );
        env.assert_unchanged("the run", &wft.workflow_id, &wft.run_id, &before).await;

        // The retry (attempt 2) refused again: Temporal answers the same but writes
        // nothing (the task stays started, its timeout retries it), so the token
        // still completes.
        let retry = env.poll_workflow_task(&wft.task_queue).await;
        assert_eq!(retry.attempt, 2);
        let before = env.snapshot(&wft.workflow_id, &wft.run_id).await;
        let again = command;
        call!(
            env,
            respond_workflow_task_completed,
            format!("{input}: on attempt 2"),
            INVALID,
            RespondWorkflowTaskCompletedRequest { task_token: retry.task_token.clone(), commands: vec![again], ..Default::default() }
        );
        env.assert_unchanged(&format!("{input}: attempt 2 refused without events"), &wft.workflow_id, &wft.run_id, &before).await;
        call!(
            env,
            respond_workflow_task_completed,
            format!("{input}: attempt 2 token, no commands"),
            Code::Ok,
            RespondWorkflowTaskCompletedRequest { task_token: retry.task_token, ..Default::default() }
        );
    }

    // A command type that does not exist: refused before anything is written.
    let wft = env.started_workflow_task().await;
    let before = env.snapshot(&wft.workflow_id, &wft.run_id).await;
    call!(
        env,
        respond_workflow_task_completed,
        "unknown command type 999",
        INVALID,
        RespondWorkflowTaskCompletedRequest {
            task_token: wft.token.clone(),
            commands: vec![Command { command_type: 999, ..Default::default() }],
            ..Default::default()
        }
    );
    env.assert_unchanged("the run", &wft.workflow_id, &wft.run_id, &before).await;
    call!(
        env,
        respond_workflow_task_completed,
        "the same token, valid commands",
        Code::Ok,
        RespondWorkflowTaskCompletedRequest { task_token: wft.token.clone(), ..Default::default() }
    );
    env.finish("commands").await;
}

/// Temporal resolves the namespace an external signal or cancellation names first:
/// an unregistered one answers NOT_FOUND "Namespace X is not found." and records
/// nothing (the task stays started).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_command_naming_an_unknown_namespace_is_not_found() {
    let mut env = Env::start().await;
    let wft = env.started_workflow_task().await;
    let before = env.snapshot(&wft.workflow_id, &wft.run_id).await;
    for command in [signal_external(exec("target", ""), "sig", "no-such-namespace"), {
        let mut c = cancel_external("target", "");
        if let Some(command::Attributes::RequestCancelExternalWorkflowExecutionCommandAttributes(a)) = &mut c.attributes {
            #[allow(deprecated)]
            {
                a.namespace = "no-such-namespace".into();
            }
        }
        c
    }] {
        call!(
            env,
            respond_workflow_task_completed,
            "an external command naming an unregistered namespace",
            NOT_FOUND,
            RespondWorkflowTaskCompletedRequest { task_token: wft.token.clone(), commands: vec![command], ..Default::default() }
        );
        env.assert_unchanged("the run", &wft.workflow_id, &wft.run_id, &before).await;
    }
    env.finish("external commands").await;
}

// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_closed_workflows_and_garbled_history_tokens() {
    let mut env = Env::start().await;
    let running_id = unique("running");
    let running_run = env.start_workflow(&running_id, &unique("tq")).await;
    let closed_id = unique("closed");
    let closed_run = env.start_workflow(&closed_id, &unique("tq")).await;
    env.terminate(&closed_id).await;
    let running_before = env.snapshot(&running_id, &running_run).await;
    let closed_before = env.snapshot(&closed_id, &closed_run).await;

    let unknown_id = unique("never");
    let unknown_run = uuid();
    for (input, execution) in
        [("unknown workflow", exec(&unknown_id, "")), ("unknown run of a known workflow", exec(&running_id, &unknown_run))]
    {
        call!(
            env,
            signal_workflow_execution,
            input,
            NOT_FOUND,
            SignalWorkflowExecutionRequest {
                namespace: NS.into(),
                workflow_execution: execution.clone(),
                signal_name: "sig".into(),
                ..Default::default()
            }
        );
        call!(
            env,
            terminate_workflow_execution,
            input,
            NOT_FOUND,
            TerminateWorkflowExecutionRequest { namespace: NS.into(), workflow_execution: execution.clone(), ..Default::default() }
        );
        // Temporal: a closed run is "workflow execution already completed" (NotFound).
        call!(
            env,
            reset_sticky_task_queue,
            input,
            NOT_FOUND,
            ResetStickyTaskQueueRequest { namespace: NS.into(), execution: execution.clone() }
        );
        call!(
            env,
            request_cancel_workflow_execution,
            input,
            NOT_FOUND,
            RequestCancelWorkflowExecutionRequest { namespace: NS.into(), workflow_execution: execution.clone(), ..Default::default() }
        );
        call!(
            env,
            describe_workflow_execution,
            input,
            NOT_FOUND,
            DescribeWorkflowExecutionRequest { namespace: NS.into(), execution: execution.clone() }
        );
        call!(
            env,
            get_workflow_execution_history,
            input,
            NOT_FOUND,
            GetWorkflowExecutionHistoryRequest { namespace: NS.into(), execution: execution.clone(), ..Default::default() }
        );
        call!(
            env,
            get_workflow_execution_history_reverse,
            input,
            NOT_FOUND,
            GetWorkflowExecutionHistoryReverseRequest { namespace: NS.into(), execution: execution.clone(), ..Default::default() }
        );
        call!(
            env,
            query_workflow,
            input,
            NOT_FOUND,
            QueryWorkflowRequest { namespace: NS.into(), execution, query: query("q"), ..Default::default() }
        );
    }
    // Temporal checks no id length here: a long workflow id is simply not found.
    call!(
        env,
        reset_sticky_task_queue,
        "workflow id over the id limit",
        NOT_FOUND,
        ResetStickyTaskQueueRequest { namespace: NS.into(), execution: exec(&"x".repeat(1001), "") }
    );
    env.assert_no_workflow(&unknown_id).await;

    for (input, execution) in [("closed workflow", exec(&closed_id, "")), ("closed run by id", exec(&closed_id, &closed_run))] {
        call!(
            env,
            signal_workflow_execution,
            input,
            NOT_FOUND,
            SignalWorkflowExecutionRequest {
                namespace: NS.into(),
                workflow_execution: execution.clone(),
                signal_name: "sig".into(),
                ..Default::default()
            }
        );
        call!(
            env,
            terminate_workflow_execution,
            input,
            NOT_FOUND,
            TerminateWorkflowExecutionRequest { namespace: NS.into(), workflow_execution: execution.clone(), ..Default::default() }
        );
        // Temporal: a closed run is "workflow execution already completed" (NotFound).
        call!(
            env,
            reset_sticky_task_queue,
            input,
            NOT_FOUND,
            ResetStickyTaskQueueRequest { namespace: NS.into(), execution: execution.clone() }
        );
        // Temporal: cancelling a closed run succeeds and changes nothing.
        call!(
            env,
            request_cancel_workflow_execution,
            input,
            Code::Ok,
            RequestCancelWorkflowExecutionRequest { namespace: NS.into(), workflow_execution: execution.clone(), ..Default::default() }
        );
        call!(
            env,
            describe_workflow_execution,
            input,
            Code::Ok,
            DescribeWorkflowExecutionRequest { namespace: NS.into(), execution: execution.clone() }
        );
        call!(
            env,
            get_workflow_execution_history,
            input,
            Code::Ok,
            GetWorkflowExecutionHistoryRequest { namespace: NS.into(), execution: execution.clone(), ..Default::default() }
        );
        let rejected = call!(
            env,
            query_workflow,
            format!("{input}, reject if not open"),
            Code::Ok,
            QueryWorkflowRequest {
                namespace: NS.into(),
                execution: execution.clone(),
                query: query("q"),
                query_reject_condition: QueryRejectCondition::NotOpen as i32,
            }
        );
        assert!(rejected.is_some_and(|r| r.query_rejected.is_some()), "the query is rejected, not answered");
        // Closed before any workflow task started: no worker can answer (Temporal's
        // "Workflow execution closed before WorkflowTaskStarted event").
        call!(
            env,
            query_workflow,
            format!("{input}, never ran a workflow task"),
            Code::FailedPrecondition,
            QueryWorkflowRequest { namespace: NS.into(), execution, query: query("q"), ..Default::default() }
        );
    }

    // History page tokens.
    let page = GetWorkflowExecutionHistoryRequest {
        namespace: NS.into(),
        execution: exec(&running_id, ""),
        maximum_page_size: 1,
        ..Default::default()
    };
    let forward = env.svc().get_workflow_execution_history(req(page)).await.expect("first page").into_inner().next_page_token;
    assert!(!forward.is_empty(), "a one-event page of a two-event history has a next page");
    let page = GetWorkflowExecutionHistoryReverseRequest {
        namespace: NS.into(),
        execution: exec(&running_id, ""),
        maximum_page_size: 1,
        ..Default::default()
    };
    let reverse = env.svc().get_workflow_execution_history_reverse(req(page)).await.expect("last page").into_inner().next_page_token;
    assert!(!reverse.is_empty(), "a one-event page of a two-event history has a next page");
    let garbled = vec![0xde, 0xad, 0xbe, 0xef];
    call!(
        env,
        get_workflow_execution_history,
        "garbled next_page_token",
        INVALID,
        GetWorkflowExecutionHistoryRequest {
            namespace: NS.into(),
            execution: exec(&running_id, ""),
            next_page_token: garbled.clone(),
            ..Default::default()
        }
    );
    call!(
        env,
        get_workflow_execution_history_reverse,
        "garbled next_page_token",
        INVALID,
        GetWorkflowExecutionHistoryReverseRequest {
            namespace: NS.into(),
            execution: exec(&running_id, ""),
            next_page_token: garbled,
            ..Default::default()
        }
    );
    // Every strict prefix of a real token (the empty one means "first page": skipped).
    let mut wrong = Vec::new();
    for n in 1..forward.len() {
        let r = GetWorkflowExecutionHistoryRequest {
            namespace: NS.into(),
            execution: exec(&running_id, ""),
            next_page_token: forward[..n].to_vec(),
            ..Default::default()
        };
        match env.svc().get_workflow_execution_history(req(r)).await {
            Err(e) if e.code() == INVALID => {}
            other => wrong.push(format!("forward prefix of {n} bytes: {:?}", other.map(|_| ()).map_err(|e| e.code()))),
        }
    }
    for n in 1..reverse.len() {
        let r = GetWorkflowExecutionHistoryReverseRequest {
            namespace: NS.into(),
            execution: exec(&running_id, ""),
            next_page_token: reverse[..n].to_vec(),
            ..Default::default()
        };
        match env.svc().get_workflow_execution_history_reverse(req(r)).await {
            Err(e) if e.code() == INVALID => {}
            other => wrong.push(format!("reverse prefix of {n} bytes: {:?}", other.map(|_| ()).map_err(|e| e.code()))),
        }
    }
    let input = format!("each strict prefix of a real next_page_token ({} and {} bytes)", forward.len(), reverse.len());
    let outcome = if wrong.is_empty() {
        Err(temporalio_client::tonic::Status::invalid_argument("all"))
    } else {
        Err(temporalio_client::tonic::Status::unknown(wrong.join("; ")))
    };
    env.check::<()>("get_workflow_execution_history(_reverse)", &input, INVALID, outcome).await;
    // A token names its run: with another workflow's id it names a run that workflow
    // does not have (Temporal: NotFound).
    let input = "next_page_token of another workflow's run";
    call!(
        env,
        get_workflow_execution_history,
        input,
        NOT_FOUND,
        GetWorkflowExecutionHistoryRequest {
            namespace: NS.into(),
            execution: exec(&closed_id, ""),
            next_page_token: forward,
            ..Default::default()
        }
    );
    call!(
        env,
        get_workflow_execution_history_reverse,
        input,
        NOT_FOUND,
        GetWorkflowExecutionHistoryReverseRequest {
            namespace: NS.into(),
            execution: exec(&closed_id, ""),
            next_page_token: reverse,
            ..Default::default()
        }
    );

    env.assert_unchanged("the running run is unchanged", &running_id, &running_run, &running_before).await;
    env.assert_unchanged("the closed run is unchanged", &closed_id, &closed_run, &closed_before).await;
    env.finish("unknown and closed workflows").await;
}

// ---------------------------------------------------------------------------------

/// A request over the gRPC message limit (128 MiB). Temporal answers
/// RESOURCE_EXHAUSTED "grpc: received message larger than max ..." (its limit is
/// 4 MiB), which core turns into a GRPC_MESSAGE_TOO_LARGE workflow task failure
/// instead of retrying. tonic's decoder answers OUT_OF_RANGE "Error, decoded message
/// length too large: ..." instead, which core retries as transient; the fix belongs
/// in the transport setup (`service/src/server.rs`), not in a handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_transport_limit_is_refused() {
    let mut env = Env::start().await;
    let limit = hourglass_service::server::GRPC_MESSAGE_BYTES_MAX;
    let id = unique("never");
    let mut huge = oversized();
    huge.payloads[0].data = vec![b'x'; limit + 1];
    let result =
        env.svc().start_workflow_execution(req(StartWorkflowExecutionRequest { input: Some(huge), ..start_request(&id, "tq") })).await;
    let message = result.as_ref().err().map(|s| s.message().to_string()).unwrap_or_default();
    env.check("start_workflow_execution", "request > 128 MiB", Code::ResourceExhausted, result).await;
    assert!(message.starts_with("grpc: received message larger than max"), "core matches this prefix: {message}");
    env.assert_no_workflow(&id).await;
    env.finish("transport limit").await;
}

/// A named change to a request, for the bad-input tables.
type Edit<R> = Box<dyn Fn(&mut R)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_updates_are_refused_before_anything_is_admitted() {
    let mut env = Env::start().await;
    let act = env.started_activity().await;
    let wid = act.workflow_id.clone();
    let before = env.snapshot(&wid, &act.run_id).await;
    let upd = |execution, request, wait_policy| UpdateWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_execution: execution,
        request,
        wait_policy,
        ..Default::default()
    };
    let completed = wait(UpdateWorkflowExecutionLifecycleStage::Completed);
    let cases: Vec<(&str, Code, UpdateWorkflowExecutionRequest)> = vec![
        ("no execution", INVALID, upd(None, update("u"), completed)),
        ("empty workflow id", INVALID, upd(exec("", ""), update("u"), completed)),
        ("run id not a UUID", INVALID, upd(exec(&wid, "nope"), update("u"), completed)),
        ("no request", INVALID, upd(exec(&wid, ""), None, completed)),
        (
            "no input",
            INVALID,
            upd(exec(&wid, ""), Some(UpdateRequest { meta: update("u").unwrap().meta, ..Default::default() }), completed),
        ),
        (
            "empty update name",
            INVALID,
            upd(exec(&wid, ""), Some(UpdateRequest { input: Some(UpdateInput::default()), ..update("u").unwrap() }), completed),
        ),
        // Temporal refuses to wait for ADMITTED only (PermissionDenied).
        (
            "wait for ADMITTED",
            Code::PermissionDenied,
            upd(exec(&wid, ""), update("u"), wait(UpdateWorkflowExecutionLifecycleStage::Admitted)),
        ),
        ("unknown workflow", NOT_FOUND, upd(exec("no-such-workflow", ""), update("u"), completed)),
        ("unknown run", NOT_FOUND, upd(exec(&wid, &uuid()), update("u"), completed)),
    ];
    for (input, code, request) in cases {
        call!(env, update_workflow_execution, input, code, request);
    }
    let poll = |update_ref| PollWorkflowExecutionUpdateRequest { namespace: NS.into(), update_ref, ..Default::default() };
    let polls: Vec<(&str, Code, PollWorkflowExecutionUpdateRequest)> = vec![
        ("no update ref", INVALID, poll(None)),
        ("no execution", INVALID, poll(Some(UpdateRef { update_id: "u".into(), ..Default::default() }))),
        ("run id not a UUID", INVALID, poll(update_ref(&wid, "zz", "u"))),
        ("unknown update", NOT_FOUND, poll(update_ref(&wid, "", "never-sent"))),
        ("unknown workflow", NOT_FOUND, poll(update_ref("no-such-workflow", "", "u"))),
    ];
    for (input, code, request) in polls {
        call!(env, poll_workflow_execution_update, input, code, request);
    }
    env.assert_unchanged("the run is unchanged", &wid, &act.run_id, &before).await;
    env.finish("updates").await;
}

// ---------------------------------------------------------------------------------

/// Retry policies and cron schedules on start and signal-with-start: the codes AND
/// the messages of Temporal's server (probed with the same requests; its retry policy
/// checks run after its defaults are filled in, so a maximum interval under the
/// default initial interval is refused too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_policies_and_cron_schedules_are_checked_as_temporal_does() {
    use temporalio_protos::protos::temporal::api::common::v1::RetryPolicy;
    let mut env = Env::start().await;
    let d = |seconds: i64, nanos: i32| Some(prost_wkt_types::Duration { seconds, nanos });
    let policy = |p: RetryPolicy| Some(p);
    let mut cases: Vec<(&str, Code, &str, Edit<StartWorkflowExecutionRequest>)> = vec![
        (
            "retry: maximum_interval < initial_interval",
            INVALID,
            "MaximumInterval cannot be less than InitialInterval on retry policy.",
            Box::new(move |r| {
                r.retry_policy = policy(RetryPolicy { initial_interval: d(10, 0), maximum_interval: d(5, 0), ..Default::default() })
            }),
        ),
        (
            "retry: maximum_interval < the default initial interval",
            INVALID,
            "MaximumInterval cannot be less than InitialInterval on retry policy.",
            Box::new(move |r| r.retry_policy = policy(RetryPolicy { maximum_interval: d(0, 500_000_000), ..Default::default() })),
        ),
        (
            "retry: backoff_coefficient 0.5",
            INVALID,
            "BackoffCoefficient cannot be less than 1 on retry policy.",
            Box::new(move |r| r.retry_policy = policy(RetryPolicy { backoff_coefficient: 0.5, ..Default::default() })),
        ),
        (
            "retry: maximum_attempts -1",
            INVALID,
            "MaximumAttempts cannot be negative on retry policy.",
            Box::new(move |r| r.retry_policy = policy(RetryPolicy { maximum_attempts: -1, ..Default::default() })),
        ),
        (
            "retry: negative initial_interval",
            INVALID,
            "invalid InitialInterval set on retry policy: negative duration",
            Box::new(move |r| r.retry_policy = policy(RetryPolicy { initial_interval: d(-1, 0), ..Default::default() })),
        ),
        (
            "retry: negative maximum_interval",
            INVALID,
            "invalid MaximumInterval set on retry policy: negative duration",
            Box::new(move |r| r.retry_policy = policy(RetryPolicy { maximum_interval: d(-1, 0), ..Default::default() })),
        ),
        (
            "retry: unknown TemporalTimeout type",
            INVALID,
            "Invalid timeout type value: Nope.",
            Box::new(move |r| {
                r.retry_policy =
                    policy(RetryPolicy { non_retryable_error_types: vec!["TemporalTimeout:Nope".into()], ..Default::default() })
            }),
        ),
        ("cron: not a cron", INVALID, "invalid CronSchedule.", Box::new(|r| r.cron_schedule = "not a cron".into())),
        ("cron: 6 fields", INVALID, "invalid CronSchedule.", Box::new(|r| r.cron_schedule = "* * * * * *".into())),
        ("cron: minute 60", INVALID, "invalid CronSchedule.", Box::new(|r| r.cron_schedule = "60 * * * *".into())),
        ("cron: day of week 7", INVALID, "invalid CronSchedule.", Box::new(|r| r.cron_schedule = "* * * * 7".into())),
        ("cron: step 0", INVALID, "invalid CronSchedule.", Box::new(|r| r.cron_schedule = "*/0 * * * *".into())),
        ("cron: @reboot", INVALID, "invalid CronSchedule.", Box::new(|r| r.cron_schedule = "@reboot".into())),
        ("cron: @every abc", INVALID, "invalid CronSchedule.", Box::new(|r| r.cron_schedule = "@every abc".into())),
        (
            "cron: February 30th",
            INVALID,
            "invalid CronSchedule, no time can be found to satisfy the schedule",
            Box::new(|r| r.cron_schedule = "0 0 30 2 *".into()),
        ),
        (
            "cron with a start delay (even 0 s)",
            INVALID,
            "CronSchedule and WorkflowStartDelay may not be used together.",
            Box::new(move |r| {
                r.cron_schedule = "@every 1m".into();
                r.workflow_start_delay = d(0, 0);
            }),
        ),
        (
            "cron: CRON_TZ=America/New_York (Temporal: OK; Hourglass has no time zone database)",
            Code::Unimplemented,
            "Hourglass evaluates cron schedules in UTC only; time zone \"America/New_York\" is not supported",
            Box::new(|r| r.cron_schedule = "CRON_TZ=America/New_York 0 9 * * *".into()),
        ),
    ];
    let mut wrong_messages = Vec::new();
    for (input, code, message, change) in cases.drain(..) {
        let id = unique("never");
        let mut r = start_request(&id, "tq");
        change(&mut r);
        let sws = SignalWithStartWorkflowExecutionRequest {
            retry_policy: r.retry_policy.clone(),
            cron_schedule: r.cron_schedule.clone(),
            workflow_start_delay: r.workflow_start_delay,
            ..signal_with_start_request(&id, "tq")
        };
        call!(env, start_workflow_execution, input, code, r);
        let got = env.rows.last().map(|r| r.message.clone()).unwrap_or_default();
        if got != message {
            wrong_messages.push(format!("StartWorkflowExecution [{input}]: {got:?}, Temporal says {message:?}"));
        }
        call!(env, signal_with_start_workflow_execution, input, code, sws);
        let got = env.rows.last().map(|r| r.message.clone()).unwrap_or_default();
        if got != message {
            wrong_messages.push(format!("SignalWithStartWorkflowExecution [{input}]: {got:?}, Temporal says {message:?}"));
        }
        env.assert_no_workflow(&id).await;
    }
    // What Temporal accepts.
    for (input, spec) in [
        ("cron: @every 0s", "@every 0s"),
        ("cron: names and ?", "0 9 ? JAN-mar Mon-fri"),
        ("cron: padded fields", " * * * * * "),
        ("cron: TZ=UTC", "TZ=UTC @hourly"),
    ] {
        let id = unique("cron-ok");
        let started = call!(
            env,
            start_workflow_execution,
            input,
            Code::Ok,
            StartWorkflowExecutionRequest { cron_schedule: spec.into(), ..start_request(&id, "tq") }
        );
        if started.is_some() {
            env.terminate(&id).await;
        }
    }
    let id = unique("retry-ok");
    let one_attempt = RetryPolicy { backoff_coefficient: 0.5, maximum_attempts: 1, ..Default::default() };
    call!(
        env,
        start_workflow_execution,
        "retry: one attempt skips the other checks",
        Code::Ok,
        StartWorkflowExecutionRequest { retry_policy: Some(one_attempt), ..start_request(&id, "tq") }
    );
    env.terminate(&id).await;
    assert!(wrong_messages.is_empty(), "messages differ from Temporal's:\n{}", wrong_messages.join("\n"));
    env.finish("retry policies and cron schedules").await;
}

// ---------------------------------------------------------------------------------

/// ResetWorkflowExecution and DeleteWorkflowExecution: codes and messages as Temporal's
/// server gives them (the reset-point and not-found ones probed with `temporal
/// workflow reset|delete` against `temporal server start-dev`, the request checks read
/// from its `WorkflowHandler`). Nothing changes: the run is as before, no run appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_delete_refuse_bad_input_as_temporal_does() {
    let mut env = Env::start().await;
    let id = unique("reset");
    let run = env.start_workflow(&id, &unique("tq")).await; // 1 Started, 2 WorkflowTaskScheduled
    let before = env.snapshot(&id, &run).await;
    let (unknown_id, unknown_run) = (unique("never"), uuid());
    let finish_range = "Workflow task finish ID must be > 1 && <= workflow last event ID.";
    let reset = |execution: Option<WorkflowExecution>, request_id: String, finish: i64| ResetWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_execution: execution,
        request_id,
        workflow_task_finish_event_id: finish,
        reason: "bad input".into(),
        ..Default::default()
    };
    #[allow(deprecated)] // `reset_reapply_type`: deprecated, still checked by Temporal
    let unknown_reapply_type = ResetWorkflowExecutionRequest { reset_reapply_type: 9, ..reset(exec(&id, ""), uuid(), 2) };
    let resets: Vec<(&str, Code, String, ResetWorkflowExecutionRequest)> = vec![
        ("no request_id", INVALID, "RequestId is not set on request.".into(), reset(exec(&id, ""), String::new(), 2)),
        ("request_id over 1000 bytes", INVALID, "RequestId length exceeds limit.".into(), reset(exec(&id, ""), "r".repeat(1001), 2)),
        ("no execution", INVALID, "Execution is not set on request.".into(), reset(None, uuid(), 2)),
        ("malformed run_id", INVALID, "Invalid RunId.".into(), reset(exec(&id, "not-a-uuid"), uuid(), 2)),
        // Temporal: Internal "unknown reset reapply type: 9"; Hourglass prefixes every Internal message.
        ("unknown reset_reapply_type", Code::Internal, "internal error: unknown reset reapply type: 9".into(), unknown_reapply_type),
        ("finish event id 1", INVALID, finish_range.into(), reset(exec(&id, ""), uuid(), 1)),
        ("finish event id past the last event", INVALID, finish_range.into(), reset(exec(&id, ""), uuid(), 3)),
        (
            "finish event id not after a workflow task event",
            INVALID,
            "Can only reset workflow to event ID in range [WorkflowTaskScheduled +1, WorkflowTaskStarted + 1]: 2".into(),
            reset(exec(&id, ""), uuid(), 2),
        ),
        ("unknown workflow", NOT_FOUND, format!("workflow not found for ID: {unknown_id}"), reset(exec(&unknown_id, ""), uuid(), 2)),
        (
            "unknown run of a known workflow",
            NOT_FOUND,
            format!("workflow execution not found for workflow ID \"{id}\" and run ID \"{unknown_run}\""),
            reset(exec(&id, &unknown_run), uuid(), 2),
        ),
    ];
    let mut wrong_messages = Vec::new();
    for (input, code, message, request) in resets {
        let result = env.svc().reset_workflow_execution(req(request)).await;
        let got = result.as_ref().err().map(|s| s.message().to_string()).unwrap_or_default();
        if got != message {
            wrong_messages.push(format!("ResetWorkflowExecution [{input}]: message {got:?}, Temporal's is {message:?}"));
        }
        env.check("reset_workflow_execution", input, code, result).await;
    }
    let delete = |execution| DeleteWorkflowExecutionRequest { namespace: NS.into(), workflow_execution: execution };
    let deletes: Vec<(&str, Code, String, DeleteWorkflowExecutionRequest)> = vec![
        ("no execution", INVALID, "Execution is not set on request.".into(), delete(None)),
        ("malformed run_id", INVALID, "Invalid RunId.".into(), delete(exec(&id, "not-a-uuid"))),
        ("unknown workflow", NOT_FOUND, format!("workflow not found for ID: {unknown_id}"), delete(exec(&unknown_id, ""))),
        (
            "unknown run of a known workflow",
            NOT_FOUND,
            format!("workflow execution not found for workflow ID \"{id}\" and run ID \"{unknown_run}\""),
            delete(exec(&id, &unknown_run)),
        ),
    ];
    for (input, code, message, request) in deletes {
        let result = env.svc().delete_workflow_execution(req(request)).await;
        let got = result.as_ref().err().map(|s| s.message().to_string()).unwrap_or_default();
        if got != message {
            wrong_messages.push(format!("DeleteWorkflowExecution [{input}]: message {got:?}, Temporal's is {message:?}"));
        }
        env.check("delete_workflow_execution", input, code, result).await;
    }
    env.assert_unchanged("the run is unchanged", &id, &run, &before).await;
    env.assert_no_workflow(&unknown_id).await;
    assert!(wrong_messages.is_empty(), "{}", wrong_messages.join("\n"));
    env.finish("reset and delete").await;
}

/// Update-with-start refuses the start options it cannot honour, as the reference:
/// InvalidArgument "Update-with-Start could not be executed.", the start's status
/// naming the option, the update `Aborted`; nothing starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_start_refuses_eager_delayed_and_cron_starts() {
    use execute_multi_operation_request::operation::Operation;
    let mut env = Env::start().await;
    let start = |workflow_id: &str| StartWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_id: workflow_id.into(),
        workflow_type: Some(WorkflowType { name: "Wf".into() }),
        task_queue: tq("uws-tq"),
        request_id: uuid(),
        ..Default::default()
    };
    let uws = |start: StartWorkflowExecutionRequest| {
        let update = UpdateWorkflowExecutionRequest {
            namespace: NS.into(),
            workflow_execution: exec(&start.workflow_id, ""),
            request: update("u"),
            ..Default::default()
        };
        let operations = vec![
            execute_multi_operation_request::Operation { operation: Some(Operation::StartWorkflow(start)) },
            execute_multi_operation_request::Operation { operation: Some(Operation::UpdateWorkflow(update)) },
        ];
        ExecuteMultiOperationRequest { namespace: NS.into(), operations, ..Default::default() }
    };
    let cases: Vec<(&str, Code, ExecuteMultiOperationRequest)> = vec![
        ("request_eager_execution", INVALID, uws(StartWorkflowExecutionRequest { request_eager_execution: true, ..start("uws-eager") })),
        (
            "workflow_start_delay",
            INVALID,
            uws(StartWorkflowExecutionRequest {
                workflow_start_delay: Some(prost_wkt_types::Duration { seconds: 5, nanos: 0 }),
                ..start("uws-delay")
            }),
        ),
        ("cron_schedule", INVALID, uws(StartWorkflowExecutionRequest { cron_schedule: "* * * * *".into(), ..start("uws-cron") })),
    ];
    for (input, code, request) in cases {
        call!(env, execute_multi_operation, input, code, request);
    }
    for workflow_id in ["uws-eager", "uws-delay", "uws-cron"] {
        let describe = DescribeWorkflowExecutionRequest { namespace: NS.into(), execution: exec(workflow_id, "") };
        let found = env.svc().describe_workflow_execution(describe).await;
        assert_eq!(found.map(|_| ()).map_err(|s| s.code()), Err(NOT_FOUND), "{workflow_id} was not started");
    }
    env.finish("update-with-start start options").await;
}
