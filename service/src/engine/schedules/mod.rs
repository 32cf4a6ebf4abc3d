//! Schedules (Temporal's Schedules API), durable in the shards.
//!
//! **Where a schedule lives.** Temporal keeps a schedule as the workflow
//! `temporal-sys-scheduler:<schedule id>` of its namespace. Hourglass keeps it as a
//! record of that name — the mutable state of the run
//! `(SYSTEM_NAMESPACE, "schedule/<namespace>/temporal-sys-scheduler:<id>", "schedule")`
//! ([`record_key`]), a [`StoredSchedule`] — so it is replicated, snapshotted and
//! recovered like any run, and changed only by its shard's owner under that run's
//! workflow lock. It has no history events. A deleted schedule stays as a tombstone
//! (the id may be created again).
//!
//! **Firing.** Each write arms at most one durable timer ([`TimerKind::ScheduleWake`])
//! for the schedule's next wake-up, tagged with the record's timer generation; every
//! write bumps the generation, so an older timer is stale and dropped. When it fires
//! ([`fire::on_wake`]) the pure rules (`core::schedule`) say what is due, the
//! workflows are started through the engine's start path on their own shards (on
//! another node through [`RemoteWorkflows`]), deduplicated by a request id made from
//! the schedule and the nominal time, and the outcome plus the next timer are written
//! in one transition.

pub mod fire;

use bytes::Bytes;
use hourglass_storage::state::{Op, RunKey, Transition};
use prost::Message;
use temporalio_protos::protos::temporal::api::common::v1::{Memo, SearchAttributes};
use temporalio_protos::protos::temporal::api::schedule::v1::{
    Schedule, ScheduleInfo, ScheduleListEntry, ScheduleListInfo, SchedulePatch, TriggerImmediatelyRequest,
};
use temporalio_protos::protos::temporal::api::workflowservice::v1::{DescribeScheduleResponse, StartWorkflowExecutionRequest};

use super::{Engine, WorkflowGuard};
use crate::core::schedule::record::{self, conflict_token_bytes, timestamp, FUTURE_TIMES_DESCRIBE, FUTURE_TIMES_LIST};
use crate::core::schedule::{CompiledSpec, PendingTrigger, StoredSchedule};
use crate::core::tasks::{TimerKind, TimerPayload};
use crate::error::{Result, ServiceError};
use crate::namespaces::SYSTEM_NAMESPACE;

/// The workflow id prefix Temporal gives a schedule's own workflow.
pub const SCHEDULER_ID_PREFIX: &str = "temporal-sys-scheduler:";
const RECORD_RUN_ID: &str = "schedule";
/// Most backfill times one patch may add.
const BACKFILL_MAX: usize = 1000;

fn record_prefix(namespace: &str) -> String {
    format!("schedule/{namespace}/{SCHEDULER_ID_PREFIX}")
}

/// Where the schedule `schedule_id` of `namespace` is stored.
pub fn record_key(namespace: &str, schedule_id: &str) -> RunKey {
    RunKey {
        namespace: SYSTEM_NAMESPACE.to_string(),
        workflow_id: format!("{}{schedule_id}", record_prefix(namespace)),
        run_id: RECORD_RUN_ID.to_string(),
    }
}

fn decode(bytes: &[u8]) -> Result<StoredSchedule> {
    StoredSchedule::decode(bytes).map_err(|e| ServiceError::Internal(format!("a stored schedule does not decode: {e}")))
}

fn not_found(schedule_id: &str) -> ServiceError {
    ServiceError::NotFound(format!("workflow not found for ID: {SCHEDULER_ID_PREFIX}{schedule_id}"))
}

fn already_deleted() -> ServiceError {
    ServiceError::NotFound("workflow execution already completed".into())
}

/// Starts and reads workflows on shards other nodes lead (a cluster node's peers;
/// installed with [`Engine::set_remote_workflows`]).
#[tonic::async_trait]
pub trait RemoteWorkflows: Send + Sync {
    /// StartWorkflowExecution on `node`; the started (or deduplicated) run id.
    async fn start_workflow(&self, node: u64, request: StartWorkflowExecutionRequest) -> Result<String>;
    /// The status of a run on `node` (`None`: no such run).
    async fn workflow_status(&self, node: u64, namespace: &str, workflow_id: &str, run_id: &str) -> Result<Option<i32>>;
}

/// The committed record and its state version, read on the record's owner.
async fn read(engine: &Engine, key: &RunKey) -> Result<Option<(StoredSchedule, u64)>> {
    let owner = engine.owner_for_read(&key.namespace, &key.workflow_id).await?;
    let found = owner.read(|s| s.run(key).map(|r| (r.state().clone(), r.state_version())))?;
    found.map(|(bytes, version)| Ok((decode(&bytes)?, version))).transpose()
}

/// Loads under the lock (the replica holds every committed change there).
fn load_locked(lock: &WorkflowGuard, key: &RunKey) -> Result<Option<(StoredSchedule, u64)>> {
    let found = lock.owner().read(|s| s.run(key).map(|r| (r.state().clone(), r.state_version())))?;
    found.map(|(bytes, version)| Ok((decode(&bytes)?, version))).transpose()
}

/// Writes `record` (new generation) and arms its next wake-up, in one transition;
/// `extra` ops ride along (the fired timer's removal).
async fn write(
    engine: &Engine,
    lock: &WorkflowGuard,
    key: &RunKey,
    version: Option<u64>,
    mut record: StoredSchedule,
    extra: Vec<Op>,
) -> Result<StoredSchedule> {
    let now_ms = engine.now_ms();
    record.timer_generation += 1;
    let spec = CompiledSpec::new(&record.schedule.as_ref().and_then(|s| s.spec.clone()).unwrap_or_default());
    let wake = record::next_wake_ms(&record, &spec, now_ms);
    let state = Bytes::from(record.encode_to_vec());
    let mut ops = vec![match version {
        None => Op::CreateRun { run: key.clone(), state },
        Some(expected_version) => Op::SetState { run: key.clone(), expected_version, state },
    }];
    if let Some(due_ms) = wake {
        let payload = TimerPayload {
            kind: TimerKind::ScheduleWake as i32,
            event_id: i64::try_from(record.timer_generation).unwrap_or(i64::MAX),
            ..Default::default()
        };
        ops.push(Op::AddTimer { run: key.clone(), due_ms, payload: Bytes::from(payload.encode_to_vec()) });
    }
    ops.extend(extra);
    lock.owner().propose(&Transition { time_ms: now_ms, dedupe: None, ops }).await?;
    if wake.is_some() {
        lock.owner().timer_wakeup().notify_one();
    }
    Ok(record)
}

/// CreateSchedule, its schedule already checked and canonical.
#[derive(Debug, Clone)]
pub struct CreateSchedule {
    pub namespace: String,
    pub schedule_id: String,
    pub schedule: Schedule,
    pub initial_patch: Option<SchedulePatch>,
    pub memo: Option<Memo>,
    pub search_attributes: Option<SearchAttributes>,
    pub identity: String,
    pub request_id: String,
}

/// Creates a schedule; returns its conflict token. A retried request (same request
/// id) gets the first answer; another create of a live id is `AlreadyExists`.
pub async fn create(engine: &Engine, req: &CreateSchedule) -> Result<Vec<u8>> {
    let key = record_key(&req.namespace, &req.schedule_id);
    let lock = engine.lock_workflow(&key.namespace, &key.workflow_id).await?;
    let current = load_locked(&lock, &key)?;
    let (generation, version) = match &current {
        Some((existing, _)) if !existing.deleted => {
            if !req.request_id.is_empty() && existing.request_id == req.request_id {
                return Ok(conflict_token_bytes(existing.conflict_token));
            }
            return Err(ServiceError::ScheduleAlreadyRegistered {
                schedule_id: req.schedule_id.clone(),
                request_id: existing.request_id.clone(),
            });
        }
        Some((tombstone, version)) => (tombstone.timer_generation, Some(*version)),
        None => (0, None),
    };
    let now_ms = engine.now_ms();
    let mut record = StoredSchedule {
        namespace: req.namespace.clone(),
        schedule_id: req.schedule_id.clone(),
        schedule: Some(req.schedule.clone()),
        memo: req.memo.clone(),
        search_attributes: req.search_attributes.clone(),
        create_time_ms: now_ms,
        conflict_token: 1,
        request_id: req.request_id.clone(),
        processed_until_ms: now_ms,
        timer_generation: generation,
        identity: req.identity.clone(),
        ..Default::default()
    };
    if let Some(patch) = &req.initial_patch {
        apply_patch(&mut record, patch, now_ms)?;
    }
    let record = write(engine, &lock, &key, version, record, Vec::new()).await?;
    tracing::info!(namespace = %req.namespace, schedule_id = %req.schedule_id, "schedule created");
    Ok(conflict_token_bytes(record.conflict_token))
}

/// Pause/unpause (notes), trigger immediately, backfill.
fn apply_patch(record: &mut StoredSchedule, patch: &SchedulePatch, now_ms: i64) -> Result<()> {
    if !patch.pause.is_empty() {
        record.set_paused(true, &patch.pause, now_ms);
    }
    if !patch.unpause.is_empty() {
        record.set_paused(false, &patch.unpause, now_ms);
    }
    if let Some(TriggerImmediatelyRequest { overlap_policy, scheduled_time }) = &patch.trigger_immediately {
        let mut nominal_ms = scheduled_time.as_ref().map_or(now_ms, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
        while record.pending_triggers.iter().any(|t| t.nominal_ms == nominal_ms) {
            nominal_ms += 1;
        }
        record.pending_triggers.push(PendingTrigger { nominal_ms, overlap_policy: *overlap_policy });
    }
    if !patch.backfill_request.is_empty() {
        let spec = CompiledSpec::new(&record.schedule.as_ref().and_then(|s| s.spec.clone()).unwrap_or_default());
        for backfill in &patch.backfill_request {
            let ms = |t: Option<&prost_wkt_types::Timestamp>| t.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
            let (start, end) = (ms(backfill.start_time.as_ref()), ms(backfill.end_time.as_ref()));
            for nominal_ms in spec.upcoming(start - 1, BACKFILL_MAX).into_iter().take_while(|&t| t <= end) {
                if record.pending_triggers.len() >= BACKFILL_MAX {
                    return Err(ServiceError::InvalidArgument(format!("a backfill may start at most {BACKFILL_MAX} actions")));
                }
                if !record.pending_triggers.iter().any(|t| t.nominal_ms == nominal_ms) {
                    record.pending_triggers.push(PendingTrigger { nominal_ms, overlap_policy: backfill.overlap_policy });
                }
            }
        }
    }
    Ok(())
}

/// Reads the live record of a client call under its lock (`NotFound` otherwise).
async fn lock_live(engine: &Engine, namespace: &str, schedule_id: &str) -> Result<(WorkflowGuard, RunKey, StoredSchedule, u64)> {
    let key = record_key(namespace, schedule_id);
    let lock = engine.lock_workflow(&key.namespace, &key.workflow_id).await?;
    match load_locked(&lock, &key)? {
        None => Err(not_found(schedule_id)),
        Some((record, _)) if record.deleted => Err(already_deleted()),
        Some((record, version)) => Ok((lock, key, record, version)),
    }
}

pub async fn patch(engine: &Engine, namespace: &str, schedule_id: &str, patch: &SchedulePatch) -> Result<()> {
    let (lock, key, mut record, version) = lock_live(engine, namespace, schedule_id).await?;
    let now_ms = engine.now_ms();
    apply_patch(&mut record, patch, now_ms)?;
    record.conflict_token += 1;
    record.update_time_ms = now_ms;
    write(engine, &lock, &key, Some(version), record, Vec::new()).await?;
    Ok(())
}

/// UpdateSchedule: replaces the schedule (a conflict token of 8 bytes must match).
/// Times before the update are not acted on by the new spec.
pub async fn update(engine: &Engine, namespace: &str, schedule_id: &str, schedule: Schedule, conflict_token: &[u8]) -> Result<()> {
    let (lock, key, mut record, version) = lock_live(engine, namespace, schedule_id).await?;
    if let Ok(token) = <[u8; 8]>::try_from(conflict_token) {
        if u64::from_be_bytes(token) != record.conflict_token {
            return Err(ServiceError::FailedPrecondition("mismatched conflict token".into()));
        }
    }
    let now_ms = engine.now_ms();
    record.schedule = Some(schedule);
    record.conflict_token += 1;
    record.update_time_ms = now_ms;
    record.processed_until_ms = record.processed_until_ms.max(now_ms);
    write(engine, &lock, &key, Some(version), record, Vec::new()).await?;
    Ok(())
}

pub async fn delete(engine: &Engine, namespace: &str, schedule_id: &str) -> Result<()> {
    let (lock, key, mut record, version) = lock_live(engine, namespace, schedule_id).await?;
    record.deleted = true;
    record.pending_triggers.clear();
    write(engine, &lock, &key, Some(version), record, Vec::new()).await?;
    tracing::info!(%namespace, %schedule_id, "schedule deleted");
    Ok(())
}

pub async fn describe(engine: &Engine, namespace: &str, schedule_id: &str) -> Result<DescribeScheduleResponse> {
    let key = record_key(namespace, schedule_id);
    let record = match read(engine, &key).await? {
        None => return Err(not_found(schedule_id)),
        Some((record, _)) if record.deleted => return Err(ServiceError::NotFound("schedule not found".into())),
        Some((record, _)) => record,
    };
    let running = fire::still_running(engine, &record).await;
    let now_ms = engine.now_ms();
    let spec = CompiledSpec::new(&record.schedule.as_ref().and_then(|s| s.spec.clone()).unwrap_or_default());
    let info = ScheduleInfo {
        action_count: record.action_count,
        missed_catchup_window: record.missed_catchup_window,
        overlap_skipped: record.overlap_skipped,
        running_workflows: running,
        recent_actions: record.recent_actions.clone(),
        future_action_times: record::future_times(&record, &spec, now_ms, FUTURE_TIMES_DESCRIBE).into_iter().map(timestamp).collect(),
        create_time: Some(timestamp(record.create_time_ms)),
        update_time: (record.update_time_ms > 0).then(|| timestamp(record.update_time_ms)),
        ..Default::default()
    };
    Ok(DescribeScheduleResponse {
        schedule: record.schedule.clone(),
        info: Some(info),
        memo: record.memo.clone(),
        search_attributes: record.search_attributes.clone(),
        conflict_token: conflict_token_bytes(record.conflict_token),
    })
}

/// One page of ListSchedules: every live schedule of `namespace` this node's replicas
/// hold (eventually consistent, like Temporal's visibility), ordered by id, after the
/// id in `next_page_token`.
pub fn list(engine: &Engine, namespace: &str, page_size: usize, after: &str) -> Result<(Vec<ScheduleListEntry>, String)> {
    let prefix = record_prefix(namespace);
    let mut records = Vec::new();
    for shard in 0..engine.router().shard_count() {
        let found: Vec<Bytes> = engine.node().read(shard, |s| {
            s.runs()
                .filter(|(k, _)| k.namespace == SYSTEM_NAMESPACE && k.workflow_id.starts_with(&prefix))
                .map(|(_, r)| r.state().clone())
                .collect()
        })?;
        for bytes in found {
            let record = decode(&bytes)?;
            if !record.deleted && record.schedule_id.as_str() > after {
                records.push(record);
            }
        }
    }
    records.sort_by(|a, b| a.schedule_id.cmp(&b.schedule_id));
    let more = records.len() > page_size;
    records.truncate(page_size);
    let next = if more { records.last().map(|r| r.schedule_id.clone()).unwrap_or_default() } else { String::new() };
    let now_ms = engine.now_ms();
    let entries = records.into_iter().map(|r| list_entry(r, now_ms)).collect();
    Ok((entries, next))
}

fn list_entry(record: StoredSchedule, now_ms: i64) -> ScheduleListEntry {
    let schedule = record.schedule.clone().unwrap_or_default();
    let spec = schedule.spec.clone().unwrap_or_default();
    let compiled = CompiledSpec::new(&spec);
    let state = record.state();
    let workflow_type = match schedule.action.and_then(|a| a.action) {
        Some(temporalio_protos::protos::temporal::api::schedule::v1::schedule_action::Action::StartWorkflow(w)) => w.workflow_type,
        None => None,
    };
    let recent = record.recent_actions.len().saturating_sub(1);
    ScheduleListEntry {
        schedule_id: record.schedule_id.clone(),
        memo: Some(record.memo.clone().unwrap_or_default()),
        search_attributes: record.search_attributes.clone(),
        info: Some(ScheduleListInfo {
            spec: Some(spec),
            workflow_type,
            notes: state.notes,
            paused: state.paused,
            recent_actions: record.recent_actions[recent..].to_vec(),
            future_action_times: record::future_times(&record, &compiled, now_ms, FUTURE_TIMES_LIST).into_iter().map(timestamp).collect(),
            ..Default::default()
        }),
    }
}

/// Most times ListScheduleMatchingTimes answers.
const MATCHING_TIMES_MAX: usize = 1000;

/// ListScheduleMatchingTimes: the spec's times in `[start_ms, end_ms]`.
pub async fn matching_times(engine: &Engine, namespace: &str, schedule_id: &str, start_ms: i64, end_ms: i64) -> Result<Vec<i64>> {
    let key = record_key(namespace, schedule_id);
    let record = match read(engine, &key).await? {
        Some((record, _)) if !record.deleted => record,
        _ => return Err(not_found(schedule_id)),
    };
    let spec = CompiledSpec::new(&record.schedule.as_ref().and_then(|s| s.spec.clone()).unwrap_or_default());
    Ok(spec.upcoming(start_ms.saturating_sub(1), MATCHING_TIMES_MAX).into_iter().take_while(|&t| t <= end_ms).collect())
}
