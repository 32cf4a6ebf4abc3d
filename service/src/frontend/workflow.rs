//! Client-side workflow RPCs: start, signal, signal-with-start, cancel, terminate,
//! describe, history. Here: request validation (precise `InvalidArgument`s, Temporal's
//! messages where clients may show them) and the mapping to and from the history API.

use std::time::Duration;

use prost::Message;
use temporalio_protos::protos::temporal::api::common::v1::link::workflow_event::{EventReference, Reference};
use temporalio_protos::protos::temporal::api::common::v1::link::{Variant, WorkflowEvent};
use temporalio_protos::protos::temporal::api::common::v1::{
    Header, Link, Memo, Payloads, Priority, RetryPolicy, SearchAttributes, WorkflowExecution, WorkflowType,
};
use temporalio_protos::protos::temporal::api::enums::v1::{
    EventType, HistoryEventFilterType, WorkflowExecutionStatus, WorkflowIdConflictPolicy,
};
use temporalio_protos::protos::temporal::api::history::v1::History;
use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response};

use super::deadline::grpc_timeout;
use super::{Frontend, RpcResult};
use crate::core::lifecycle::ID_BYTES_MAX;
use crate::core::run::Timeouts;
use crate::core::txn::duration_ms;
use crate::core::{cron, retry};
use crate::engine::start::{new_run_id, StartAnswer};
use crate::engine::EngineConfig;
use crate::error::{Result, ServiceError};
use crate::history_api::{
    Describe, GetHistory, GetHistoryReverse, Policies, RequestCancel, RunSpec, SignalSpec, SignalWithStart, SignalWorkflow, StartWorkflow,
    Terminate,
};

/// Longest a history long poll blocks (Temporal's `history.longPollExpirationInterval`).
const LONG_POLL_MAX: Duration = Duration::from_secs(20);
/// The reason Temporal records when a terminate request gives none.
const DEFAULT_TERMINATE_REASON: &str = "terminated by user via frontend";
/// A long poll answers this long before the caller's deadline.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(1);

/// How long a long poll may block: until a second before the caller's deadline, and
/// at most [`LONG_POLL_MAX`].
pub(super) fn long_poll_budget(metadata: &MetadataMap) -> Duration {
    match grpc_timeout(metadata) {
        Some(deadline) => deadline.saturating_sub(LONG_POLL_MARGIN).min(LONG_POLL_MAX),
        None => LONG_POLL_MAX,
    }
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument(message.into())
}

/// `what` is set and at most [`ID_BYTES_MAX`] bytes long.
fn check_id(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(invalid(format!("{what} is not set on request.")));
    }
    if value.len() > ID_BYTES_MAX {
        return Err(invalid(format!("{what} length exceeds limit.")));
    }
    Ok(())
}

/// A non-negative duration in ms (0 when unset).
fn non_negative_ms(what: &str, d: Option<&prost_wkt_types::Duration>) -> Result<i64> {
    if d.is_some_and(|d| d.seconds < 0 || d.nanos < 0) {
        return Err(invalid(format!("An invalid {what} is set on request. cause: negative duration")));
    }
    Ok(duration_ms(d))
}

/// The workflow execution a request names: (workflow id, run id).
pub(super) fn execution(e: Option<&WorkflowExecution>) -> Result<(String, String)> {
    let e = e.ok_or_else(|| invalid("Execution is not set on request."))?;
    check_id("WorkflowId", &e.workflow_id)?;
    if !e.run_id.is_empty() && uuid::Uuid::parse_str(&e.run_id).is_err() {
        return Err(invalid("Invalid RunId."));
    }
    Ok((e.workflow_id.clone(), e.run_id.clone()))
}

/// Temporal's `ValidateRetryPolicy`: unset fields get the defaults (they are what the
/// run keeps and its Started event shows), then the policy is checked.
fn retry_policy(p: Option<RetryPolicy>) -> Result<Option<RetryPolicy>> {
    let Some(p) = p else { return Ok(None) };
    let p = retry::with_defaults(Some(p));
    retry::validate(&p).map_err(invalid)?;
    Ok(Some(p))
}

/// Temporal's `ValidateWorkflowStartDelay` and `ValidateSchedule`.
fn check_cron(cron_schedule: &str, start_delay: Option<&prost_wkt_types::Duration>, now_ms: i64) -> Result<()> {
    if cron_schedule.is_empty() {
        return Ok(());
    }
    if start_delay.is_some() {
        return Err(invalid("CronSchedule and WorkflowStartDelay may not be used together."));
    }
    cron::validate(cron_schedule, now_ms)?;
    Ok(())
}

/// The fields StartWorkflowExecution and SignalWithStartWorkflowExecution share.
struct StartFields {
    workflow_id: String,
    workflow_type: Option<WorkflowType>,
    task_queue: Option<TaskQueue>,
    input: Option<Payloads>,
    execution_timeout: Option<prost_wkt_types::Duration>,
    run_timeout: Option<prost_wkt_types::Duration>,
    task_timeout: Option<prost_wkt_types::Duration>,
    identity: String,
    request_id: String,
    retry_policy: Option<RetryPolicy>,
    cron_schedule: String,
    memo: Option<Memo>,
    search_attributes: Option<SearchAttributes>,
    header: Option<Header>,
    start_delay: Option<prost_wkt_types::Duration>,
    priority: Option<Priority>,
    user_metadata: Option<UserMetadata>,
}

/// `InvalidArgument` if a payload-bearing field is over the blob limit.
fn check_blob<M: Message>(config: &EngineConfig, what: &str, value: Option<&M>) -> Result<()> {
    let max = config.blob_bytes_max;
    match value.map(Message::encoded_len) {
        Some(n) if n > max => Err(invalid(format!("Blob data size exceeds limit: {what} is {n} bytes, the limit is {max}."))),
        _ => Ok(()),
    }
}

/// Validates a start's fields and fills Temporal's defaults (in Temporal's order).
fn run_spec(config: &EngineConfig, now_ms: i64, f: StartFields) -> Result<RunSpec> {
    check_id("WorkflowId", &f.workflow_id)?;
    let retry_policy = retry_policy(f.retry_policy)?;
    check_cron(&f.cron_schedule, f.start_delay.as_ref(), now_ms)?;
    let workflow_type = f.workflow_type.map(|t| t.name).unwrap_or_default();
    check_id("WorkflowType", &workflow_type)?;
    let task_queue = f.task_queue.map(|t| t.name).unwrap_or_default();
    if task_queue.is_empty() {
        return Err(invalid("missing task queue name"));
    }
    check_id("TaskQueue", &task_queue)?;
    if f.request_id.len() > ID_BYTES_MAX {
        return Err(invalid("RequestId length exceeds limit."));
    }
    let execution_ms = non_negative_ms("WorkflowExecutionTimeoutSeconds", f.execution_timeout.as_ref())?;
    let run_ms = non_negative_ms("WorkflowRunTimeoutSeconds", f.run_timeout.as_ref())?;
    let task_ms = non_negative_ms("WorkflowTaskTimeoutSeconds", f.task_timeout.as_ref())?;
    let start_delay_ms = non_negative_ms("WorkflowStartDelay", f.start_delay.as_ref())?;
    check_blob(config, "input", f.input.as_ref())?;
    check_blob(config, "memo", f.memo.as_ref())?;
    check_blob(config, "search_attributes", f.search_attributes.as_ref())?;
    check_blob(config, "header", f.header.as_ref())?;
    check_blob(config, "user_metadata", f.user_metadata.as_ref())?;
    let request_id = if f.request_id.is_empty() { new_run_id() } else { f.request_id };
    Ok(RunSpec {
        workflow_type,
        task_queue,
        input: f.input,
        timeouts: Timeouts::normalize(execution_ms, run_ms, task_ms, config),
        identity: f.identity,
        request_id,
        retry_policy,
        memo: f.memo,
        search_attributes: f.search_attributes,
        header: f.header,
        start_delay_ms,
        priority: f.priority,
        cron_schedule: f.cron_schedule,
        user_metadata: f.user_metadata,
        ..Default::default()
    })
}

/// Validates a signal's own fields.
fn signal_spec(
    config: &EngineConfig,
    signal_name: String,
    input: Option<Payloads>,
    identity: String,
    header: Option<Header>,
    request_id: String,
) -> Result<SignalSpec> {
    check_id("SignalName", &signal_name)?;
    if request_id.len() > ID_BYTES_MAX {
        return Err(invalid("RequestId length exceeds limit."));
    }
    check_blob(config, "input", input.as_ref())?;
    check_blob(config, "header", header.as_ref())?;
    Ok(SignalSpec { signal_name, input, identity, header, request_id, external: None })
}

impl Frontend {
    pub(super) async fn start_workflow_execution_rpc(
        &self,
        request: Request<StartWorkflowExecutionRequest>,
    ) -> RpcResult<StartWorkflowExecutionResponse> {
        let r = request.into_inner();
        self.namespaces.require(&r.namespace)?;
        let policies = Policies::resolve(r.workflow_id_reuse_policy, r.workflow_id_conflict_policy, WorkflowIdConflictPolicy::Fail)
            .map_err(ServiceError::from)?;
        let workflow_id = r.workflow_id.clone();
        let spec = run_spec(
            self.history().config(),
            self.engine.now_ms(),
            StartFields {
                workflow_id: r.workflow_id,
                workflow_type: r.workflow_type,
                task_queue: r.task_queue,
                input: r.input,
                execution_timeout: r.workflow_execution_timeout,
                run_timeout: r.workflow_run_timeout,
                task_timeout: r.workflow_task_timeout,
                identity: r.identity,
                request_id: r.request_id,
                retry_policy: r.retry_policy,
                cron_schedule: r.cron_schedule,
                memo: r.memo,
                search_attributes: r.search_attributes,
                header: r.header,
                start_delay: r.workflow_start_delay,
                priority: r.priority,
                user_metadata: r.user_metadata,
            },
        )?;
        let eager = r.request_eager_execution;
        let start = StartWorkflow { namespace: r.namespace.clone(), workflow_id: workflow_id.clone(), spec, policies, eager };
        let StartAnswer { outcome, eager_task } = self.history().start_workflow(start).await?;
        let link = Link {
            variant: Some(Variant::WorkflowEvent(WorkflowEvent {
                namespace: r.namespace,
                workflow_id,
                run_id: outcome.run_id.clone(),
                reference: Some(Reference::EventRef(EventReference {
                    event_id: 1,
                    event_type: EventType::WorkflowExecutionStarted as i32,
                })),
            })),
        };
        Ok(Response::new(StartWorkflowExecutionResponse {
            first_execution_run_id: if outcome.started { outcome.run_id.clone() } else { String::new() },
            run_id: outcome.run_id,
            started: outcome.started,
            status: WorkflowExecutionStatus::Running as i32,
            link: Some(link),
            eager_workflow_task: eager_task.map(|task| *task),
        }))
    }

    pub(super) async fn signal_workflow_execution_rpc(
        &self,
        request: Request<SignalWorkflowExecutionRequest>,
    ) -> RpcResult<SignalWorkflowExecutionResponse> {
        let r = request.into_inner();
        self.namespaces.require(&r.namespace)?;
        let (workflow_id, run_id) = execution(r.workflow_execution.as_ref())?;
        let signal = signal_spec(self.history().config(), r.signal_name, r.input, r.identity, r.header, r.request_id)?;
        self.history().signal_workflow(SignalWorkflow { namespace: r.namespace, workflow_id, run_id, signal }).await?;
        Ok(Response::new(SignalWorkflowExecutionResponse::default()))
    }

    pub(super) async fn signal_with_start_workflow_execution_rpc(
        &self,
        request: Request<SignalWithStartWorkflowExecutionRequest>,
    ) -> RpcResult<SignalWithStartWorkflowExecutionResponse> {
        let r = request.into_inner();
        self.namespaces.require(&r.namespace)?;
        if r.workflow_id_conflict_policy == WorkflowIdConflictPolicy::Fail as i32 {
            return Err(
                invalid("Invalid WorkflowIDConflictPolicy: WORKFLOW_ID_CONFLICT_POLICY_FAIL is not supported for this operation.").into()
            );
        }
        let policies = Policies::resolve(r.workflow_id_reuse_policy, r.workflow_id_conflict_policy, WorkflowIdConflictPolicy::UseExisting)
            .map_err(ServiceError::from)?;
        let workflow_id = r.workflow_id.clone();
        let spec = run_spec(
            self.history().config(),
            self.engine.now_ms(),
            StartFields {
                workflow_id: r.workflow_id,
                workflow_type: r.workflow_type,
                task_queue: r.task_queue,
                input: r.input,
                execution_timeout: r.workflow_execution_timeout,
                run_timeout: r.workflow_run_timeout,
                task_timeout: r.workflow_task_timeout,
                identity: r.identity.clone(),
                request_id: r.request_id,
                retry_policy: r.retry_policy,
                cron_schedule: r.cron_schedule,
                memo: r.memo,
                search_attributes: r.search_attributes,
                header: r.header.clone(),
                start_delay: r.workflow_start_delay,
                priority: r.priority,
                user_metadata: r.user_metadata,
            },
        )?;
        let signal = signal_spec(self.history().config(), r.signal_name, r.signal_input, r.identity, r.header, spec.request_id.clone())?;
        let outcome =
            self.history().signal_with_start(SignalWithStart { namespace: r.namespace, workflow_id, spec, policies, signal }).await?;
        Ok(Response::new(SignalWithStartWorkflowExecutionResponse {
            first_execution_run_id: if outcome.started { outcome.run_id.clone() } else { String::new() },
            run_id: outcome.run_id,
            started: outcome.started,
            ..Default::default()
        }))
    }

    pub(super) async fn get_workflow_execution_history_rpc(
        &self,
        request: Request<GetWorkflowExecutionHistoryRequest>,
    ) -> RpcResult<GetWorkflowExecutionHistoryResponse> {
        let deadline = Instant::now() + long_poll_budget(request.metadata());
        let r = request.into_inner();
        self.namespaces.require(&r.namespace)?;
        let (workflow_id, run_id) = execution(r.execution.as_ref())?;
        let page = self
            .history()
            .get_history(GetHistory {
                namespace: r.namespace,
                workflow_id,
                run_id,
                page_size: usize::try_from(r.maximum_page_size).unwrap_or(0),
                next_page_token: r.next_page_token,
                wait_new_event: r.wait_new_event,
                close_event_only: r.history_event_filter_type == HistoryEventFilterType::CloseEvent as i32,
                deadline,
            })
            .await?;
        Ok(Response::new(GetWorkflowExecutionHistoryResponse {
            history: Some(History { events: page.events }),
            next_page_token: page.next_page_token,
            ..Default::default()
        }))
    }

    pub(super) async fn get_workflow_execution_history_reverse_rpc(
        &self,
        request: Request<GetWorkflowExecutionHistoryReverseRequest>,
    ) -> RpcResult<GetWorkflowExecutionHistoryReverseResponse> {
        let r = request.into_inner();
        self.namespaces.require(&r.namespace)?;
        let (workflow_id, run_id) = execution(r.execution.as_ref())?;
        let page_size = usize::try_from(r.maximum_page_size).unwrap_or(0);
        let reverse = GetHistoryReverse { namespace: r.namespace, workflow_id, run_id, page_size, next_page_token: r.next_page_token };
        let page = self.history().get_history_reverse(reverse).await?;
        Ok(Response::new(GetWorkflowExecutionHistoryReverseResponse {
            history: Some(History { events: page.events }),
            next_page_token: page.next_page_token,
        }))
    }

    pub(super) async fn describe_workflow_execution_rpc(
        &self,
        request: Request<DescribeWorkflowExecutionRequest>,
    ) -> RpcResult<DescribeWorkflowExecutionResponse> {
        let r = request.into_inner();
        self.namespaces.require(&r.namespace)?;
        let (workflow_id, run_id) = execution(r.execution.as_ref())?;
        Ok(Response::new(self.history().describe(Describe { namespace: r.namespace, workflow_id, run_id }).await?))
    }

    /// ListWorkflowExecutions, for the one query Hourglass answers: `WorkflowId = '...'`
    /// (all of that workflow's runs, newest first, in one page).
    pub(super) async fn list_workflow_executions_rpc(
        &self,
        request: Request<ListWorkflowExecutionsRequest>,
    ) -> RpcResult<ListWorkflowExecutionsResponse> {
        let r = request.into_inner();
        self.namespaces.require(&r.namespace)?;
        let Some(workflow_id) = workflow_id_query(&r.query) else {
            let message = format!("Hourglass lists workflows only by WorkflowId = '...'; query {:?} is not supported", r.query);
            return Err(ServiceError::Unimplemented(message).into());
        };
        check_id("WorkflowId", &workflow_id)?;
        let executions = self.history().list_runs(&r.namespace, &workflow_id).await?;
        Ok(Response::new(ListWorkflowExecutionsResponse { executions, next_page_token: Vec::new() }))
    }

    pub(super) async fn request_cancel_workflow_execution_rpc(
        &self,
        request: Request<RequestCancelWorkflowExecutionRequest>,
    ) -> RpcResult<RequestCancelWorkflowExecutionResponse> {
        let r = request.into_inner();
        self.namespaces.require(&r.namespace)?;
        let (workflow_id, run_id) = execution(r.workflow_execution.as_ref())?;
        let cancel = RequestCancel {
            namespace: r.namespace,
            workflow_id,
            run_id,
            first_execution_run_id: r.first_execution_run_id,
            reason: r.reason,
            identity: r.identity,
        };
        self.history().request_cancel(cancel).await?;
        Ok(Response::new(RequestCancelWorkflowExecutionResponse::default()))
    }

    pub(super) async fn terminate_workflow_execution_rpc(
        &self,
        request: Request<TerminateWorkflowExecutionRequest>,
    ) -> RpcResult<TerminateWorkflowExecutionResponse> {
        let r = request.into_inner();
        self.namespaces.require(&r.namespace)?;
        let (workflow_id, run_id) = execution(r.workflow_execution.as_ref())?;
        check_blob(self.history().config(), "details", r.details.as_ref())?;
        let reason = if r.reason.is_empty() { DEFAULT_TERMINATE_REASON.to_string() } else { r.reason };
        let terminate = Terminate {
            namespace: r.namespace,
            workflow_id,
            run_id,
            first_execution_run_id: r.first_execution_run_id,
            reason,
            details: r.details,
            identity: r.identity,
        };
        self.history().terminate(terminate).await?;
        Ok(Response::new(TerminateWorkflowExecutionResponse::default()))
    }
}

/// The workflow id of a `WorkflowId = 'id'` (or `"id"`) visibility query.
fn workflow_id_query(query: &str) -> Option<String> {
    let rest = query.trim().strip_prefix("WorkflowId")?.trim_start().strip_prefix('=')?.trim();
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = rest.strip_prefix(quote)?.strip_suffix(quote)?;
    (!inner.contains(quote)).then(|| inner.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_id_queries() {
        assert_eq!(workflow_id_query("WorkflowId = 'abc'"), Some("abc".into()));
        assert_eq!(workflow_id_query("  WorkflowId=\"a b\" "), Some("a b".into()));
        assert_eq!(workflow_id_query("WorkflowId = 'a' AND x = 'b'"), None);
        assert_eq!(workflow_id_query(""), None);
        assert_eq!(workflow_id_query("WorkflowType = 'x'"), None);
    }

    fn meta(timeout: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("grpc-timeout", timeout.parse().unwrap());
        m
    }

    #[test]
    fn long_polls_answer_a_second_early_and_at_most_after_20s() {
        assert_eq!(long_poll_budget(&meta("70S")), Duration::from_secs(20));
        assert_eq!(long_poll_budget(&meta("5S")), Duration::from_secs(4));
        assert_eq!(long_poll_budget(&meta("500m")), Duration::ZERO);
        assert_eq!(long_poll_budget(&MetadataMap::new()), Duration::from_secs(20));
    }

    #[test]
    fn executions_are_validated() {
        assert!(execution(None).is_err());
        let e = |w: &str, r: &str| WorkflowExecution { workflow_id: w.into(), run_id: r.into() };
        assert!(execution(Some(&e("", ""))).is_err());
        assert!(matches!(execution(Some(&e("w", "notauuid"))), Err(ServiceError::InvalidArgument(m)) if m == "Invalid RunId."));
        assert_eq!(execution(Some(&e("w", ""))).unwrap(), ("w".into(), String::new()));
        let id = uuid::Uuid::new_v4().to_string();
        assert_eq!(execution(Some(&e("w", &id))).unwrap().1, id);
        assert!(execution(Some(&e(&"x".repeat(1001), ""))).is_err());
    }

    #[test]
    fn retry_policies_are_defaulted_then_validated() {
        let d = |s| Some(prost_wkt_types::Duration { seconds: s, nanos: 0 });
        let message = |p: RetryPolicy| match retry_policy(Some(p)) {
            Err(ServiceError::InvalidArgument(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(retry_policy(None).unwrap(), None);
        let defaulted = retry_policy(Some(RetryPolicy::default())).unwrap().unwrap();
        assert_eq!((defaulted.initial_interval, defaulted.maximum_interval, defaulted.backoff_coefficient), (d(1), d(100), 2.0));
        // Messages recorded from Temporal's server.
        assert_eq!(
            message(RetryPolicy { backoff_coefficient: 0.5, ..Default::default() }),
            "BackoffCoefficient cannot be less than 1 on retry policy."
        );
        assert_eq!(
            message(RetryPolicy { maximum_attempts: -1, ..Default::default() }),
            "MaximumAttempts cannot be negative on retry policy."
        );
        let inverted = RetryPolicy { initial_interval: d(10), maximum_interval: d(5), ..Default::default() };
        assert_eq!(message(inverted), "MaximumInterval cannot be less than InitialInterval on retry policy.");
        let below_default =
            RetryPolicy { maximum_interval: Some(prost_wkt_types::Duration { seconds: 0, nanos: 500_000_000 }), ..Default::default() };
        assert_eq!(message(below_default), "MaximumInterval cannot be less than InitialInterval on retry policy.");
        assert_eq!(
            message(RetryPolicy { initial_interval: d(-1), ..Default::default() }),
            "invalid InitialInterval set on retry policy: negative duration"
        );
        assert!(retry_policy(Some(RetryPolicy { backoff_coefficient: 0.5, maximum_attempts: 1, ..Default::default() })).is_ok());
    }

    #[test]
    fn cron_schedules_are_validated() {
        let zero = prost_wkt_types::Duration::default();
        assert!(check_cron("", Some(&zero), 0).is_ok());
        assert!(check_cron("@every 2s", None, 0).is_ok());
        let both = check_cron("@every 2s", Some(&zero), 0);
        assert!(
            matches!(both, Err(ServiceError::InvalidArgument(m)) if m == "CronSchedule and WorkflowStartDelay may not be used together.")
        );
        let bad = check_cron("* * *", None, 0).unwrap_err();
        assert_eq!((bad.code(), bad.to_string()), (tonic::Code::InvalidArgument, "invalid CronSchedule.".to_string()));
    }
}
