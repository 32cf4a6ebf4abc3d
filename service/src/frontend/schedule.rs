//! The Schedules API: CreateSchedule, DescribeSchedule, PatchSchedule,
//! UpdateSchedule, DeleteSchedule, ListSchedules, ListScheduleMatchingTimes. Here:
//! validation with Temporal's messages, the canonical spec and Temporal's defaults
//! (overlap policy SKIP, a one-year catch-up window, a normal task queue).

use temporalio_protos::protos::temporal::api::enums::v1::{ScheduleOverlapPolicy, TaskQueueKind};
use temporalio_protos::protos::temporal::api::schedule::v1::schedule_action::Action;
use temporalio_protos::protos::temporal::api::schedule::v1::{Schedule, SchedulePolicies};
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tonic::{Request, Response};

use super::{Frontend, RpcResult};
use crate::core::lifecycle::ID_BYTES_MAX;
use crate::core::schedule::canonicalize;
use crate::core::schedule::record::{timestamp, DEFAULT_CATCHUP_WINDOW_MS};
use crate::engine::start::new_run_id;
use crate::error::{Result, ServiceError};
use crate::history_api::schedule::{CreateSchedule, ScheduleRef};

/// Default and largest ListSchedules page.
const LIST_PAGE_DEFAULT: usize = 1000;

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument(message.into())
}

impl Frontend {
    /// The namespace must exist; the schedule id must be set.
    fn schedule_ref(&self, namespace: String, schedule_id: String) -> Result<ScheduleRef> {
        if namespace.is_empty() {
            return Err(invalid("Namespace is empty."));
        }
        self.namespaces.require(&namespace)?;
        if schedule_id.is_empty() {
            return Err(invalid("Can't load workflow execution.  WorkflowId not set."));
        }
        if schedule_id.len() > ID_BYTES_MAX {
            return Err(invalid("ScheduleId length exceeds limit."));
        }
        Ok(ScheduleRef { namespace, schedule_id })
    }

    pub(super) async fn create_schedule_rpc(&self, request: Request<CreateScheduleRequest>) -> RpcResult<CreateScheduleResponse> {
        let r = request.into_inner();
        let s = self.schedule_ref(r.namespace, r.schedule_id)?;
        let schedule = checked_schedule(r.schedule.unwrap_or_default())?;
        let request_id = if r.request_id.is_empty() { new_run_id() } else { r.request_id };
        let create = CreateSchedule {
            namespace: s.namespace,
            schedule_id: s.schedule_id,
            schedule,
            initial_patch: r.initial_patch,
            memo: r.memo,
            search_attributes: r.search_attributes,
            identity: r.identity,
            request_id,
        };
        let conflict_token = self.history().create_schedule(create).await?;
        Ok(Response::new(CreateScheduleResponse { conflict_token }))
    }

    pub(super) async fn describe_schedule_rpc(&self, request: Request<DescribeScheduleRequest>) -> RpcResult<DescribeScheduleResponse> {
        let r = request.into_inner();
        let s = self.schedule_ref(r.namespace, r.schedule_id)?;
        Ok(Response::new(self.history().describe_schedule(s).await?))
    }

    pub(super) async fn patch_schedule_rpc(&self, request: Request<PatchScheduleRequest>) -> RpcResult<PatchScheduleResponse> {
        let r = request.into_inner();
        let s = self.schedule_ref(r.namespace, r.schedule_id)?;
        let patch = r.patch.ok_or_else(|| invalid("Patch is not set on request."))?;
        self.history().patch_schedule(s, patch).await?;
        Ok(Response::new(PatchScheduleResponse {}))
    }

    pub(super) async fn update_schedule_rpc(&self, request: Request<UpdateScheduleRequest>) -> RpcResult<UpdateScheduleResponse> {
        let r = request.into_inner();
        let s = self.schedule_ref(r.namespace, r.schedule_id)?;
        let schedule = checked_schedule(r.schedule.unwrap_or_default())?;
        self.history().update_schedule(s, schedule, r.conflict_token).await?;
        Ok(Response::new(UpdateScheduleResponse {}))
    }

    pub(super) async fn delete_schedule_rpc(&self, request: Request<DeleteScheduleRequest>) -> RpcResult<DeleteScheduleResponse> {
        let r = request.into_inner();
        let s = self.schedule_ref(r.namespace, r.schedule_id)?;
        self.history().delete_schedule(s).await?;
        Ok(Response::new(DeleteScheduleResponse {}))
    }

    pub(super) async fn list_schedules_rpc(&self, request: Request<ListSchedulesRequest>) -> RpcResult<ListSchedulesResponse> {
        let r = request.into_inner();
        if r.namespace.is_empty() {
            return Err(invalid("Namespace is empty.").into());
        }
        self.namespaces.require(&r.namespace)?;
        if !r.query.is_empty() {
            return Err(ServiceError::Unimplemented("Hourglass does not filter schedules by a query".into()).into());
        }
        let page_size = usize::try_from(r.maximum_page_size).ok().filter(|&n| n > 0).unwrap_or(LIST_PAGE_DEFAULT).min(LIST_PAGE_DEFAULT);
        let after = String::from_utf8(r.next_page_token).map_err(|_| invalid("invalid next page token"))?;
        let (schedules, next) = self.history().list_schedules(&r.namespace, page_size, &after)?;
        Ok(Response::new(ListSchedulesResponse { schedules, next_page_token: next.into_bytes() }))
    }

    pub(super) async fn list_schedule_matching_times_rpc(
        &self,
        request: Request<ListScheduleMatchingTimesRequest>,
    ) -> RpcResult<ListScheduleMatchingTimesResponse> {
        let r = request.into_inner();
        let s = self.schedule_ref(r.namespace, r.schedule_id)?;
        let ms = |t: &prost_wkt_types::Timestamp| t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000);
        let (Some(start), Some(end)) = (r.start_time.as_ref(), r.end_time.as_ref()) else {
            return Err(invalid("missing or invalid query").into());
        };
        let times = self.history().schedule_matching_times(s, ms(start), ms(end)).await?;
        Ok(Response::new(ListScheduleMatchingTimesResponse { start_time: times.into_iter().map(timestamp).collect() }))
    }
}

/// Checks a schedule and fills Temporal's defaults; its spec in canonical form.
fn checked_schedule(mut schedule: Schedule) -> Result<Schedule> {
    let spec = canonicalize(&schedule.spec.clone().unwrap_or_default()).map_err(|e| invalid(e.to_string()))?;
    schedule.spec = Some(spec);
    if let Some(Action::StartWorkflow(info)) = schedule.action.as_mut().and_then(|a| a.action.as_mut()) {
        let queue = info.task_queue.as_mut().filter(|q| !q.name.is_empty()).ok_or_else(|| invalid("taskQueue is not set"))?;
        if queue.kind == TaskQueueKind::Unspecified as i32 {
            queue.kind = TaskQueueKind::Normal as i32;
        }
        if info.workflow_type.as_ref().is_none_or(|t| t.name.is_empty()) {
            return Err(invalid("WorkflowType is not set on request."));
        }
        if info.workflow_id.len() > ID_BYTES_MAX {
            return Err(invalid("WorkflowId length exceeds limit."));
        }
        if !info.cron_schedule.is_empty() {
            return Err(invalid("CronSchedule is not allowed in a schedule's action"));
        }
    }
    let policies = schedule.policies.get_or_insert_with(SchedulePolicies::default);
    if policies.overlap_policy == ScheduleOverlapPolicy::Unspecified as i32 {
        policies.overlap_policy = ScheduleOverlapPolicy::Skip as i32;
    }
    if policies.catchup_window.as_ref().is_none_or(|d| d.seconds <= 0 && d.nanos <= 0) {
        policies.catchup_window = Some(prost_wkt_types::Duration { seconds: DEFAULT_CATCHUP_WINDOW_MS / 1000, nanos: 0 });
    }
    schedule.state.get_or_insert_with(Default::default);
    Ok(schedule)
}
