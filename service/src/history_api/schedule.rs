//! Schedules: create, describe, patch, update, delete (each on the shard holding the
//! schedule's record, retried there) and list (from this node's replicas).

use temporalio_protos::protos::temporal::api::schedule::v1::{Schedule, ScheduleListEntry, SchedulePatch};
use temporalio_protos::protos::temporal::api::workflowservice::v1::DescribeScheduleResponse;

use super::HistoryApi;
use crate::engine::schedules;
pub use crate::engine::schedules::CreateSchedule;
use crate::error::Result;

/// A schedule a call names.
#[derive(Debug, Clone)]
pub struct ScheduleRef {
    pub namespace: String,
    pub schedule_id: String,
}

impl HistoryApi<'_> {
    /// Returns the conflict token.
    pub async fn create_schedule(&self, req: CreateSchedule) -> Result<Vec<u8>> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || schedules::create(engine, r)).await
    }

    pub async fn describe_schedule(&self, s: ScheduleRef) -> Result<DescribeScheduleResponse> {
        let (engine, s) = (self.engine, &s);
        self.retry(move || schedules::describe(engine, &s.namespace, &s.schedule_id)).await
    }

    pub async fn patch_schedule(&self, s: ScheduleRef, patch: SchedulePatch) -> Result<()> {
        let (engine, s, p) = (self.engine, &s, &patch);
        self.retry(move || schedules::patch(engine, &s.namespace, &s.schedule_id, p)).await
    }

    pub async fn update_schedule(&self, s: ScheduleRef, schedule: Schedule, conflict_token: Vec<u8>) -> Result<()> {
        let (engine, s, schedule, token) = (self.engine, &s, &schedule, &conflict_token);
        self.retry(move || schedules::update(engine, &s.namespace, &s.schedule_id, schedule.clone(), token)).await
    }

    pub async fn delete_schedule(&self, s: ScheduleRef) -> Result<()> {
        let (engine, s) = (self.engine, &s);
        self.retry(move || schedules::delete(engine, &s.namespace, &s.schedule_id)).await
    }

    /// One page (entries, next page token).
    pub fn list_schedules(&self, namespace: &str, page_size: usize, after: &str) -> Result<(Vec<ScheduleListEntry>, String)> {
        schedules::list(self.engine, namespace, page_size, after)
    }
}

impl HistoryApi<'_> {
    /// The spec's times in `[start_ms, end_ms]`.
    pub async fn schedule_matching_times(&self, s: ScheduleRef, start_ms: i64, end_ms: i64) -> Result<Vec<i64>> {
        let (engine, s) = (self.engine, &s);
        self.retry(move || schedules::matching_times(engine, &s.namespace, &s.schedule_id, start_ms, end_ms)).await
    }
}
