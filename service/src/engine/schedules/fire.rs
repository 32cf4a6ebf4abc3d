//! A schedule's wake-up timer fired: refresh its running workflows, ask the rules
//! what is due, start those workflows (each on its own shard, perhaps on another
//! node), then record the outcome and arm the next wake-up in one transition.
//!
//! Starting comes before recording and takes no lock of the schedule (workflow locks
//! are never nested). A crash or error in between only makes the timer fire again:
//! every start carries a request id made from the schedule (its creation time and
//! id) and the nominal time, so the second attempt finds the same run.

use std::collections::HashMap;

use hourglass_storage::state::{Op, RunKey};
use temporalio_protos::protos::temporal::api::common::v1::{Payload, SearchAttributes, WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{WorkflowExecutionStatus, WorkflowIdConflictPolicy};
use temporalio_protos::protos::temporal::api::schedule::v1::schedule_action::Action;
use temporalio_protos::protos::temporal::api::workflow::v1::NewWorkflowExecutionInfo;
use temporalio_protos::protos::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;

use super::{decode, write, Engine, RemoteWorkflows};
use crate::core::run::{Policies, RunSpec, Timeouts};
use crate::core::schedule::calendar::rfc3339_seconds;
use crate::core::schedule::record::{self, DueStart, Started};
use crate::core::schedule::{CompiledSpec, StoredSchedule};
use crate::core::tasks::TimerPayload;
use crate::core::txn::duration_ms;
use crate::engine::start;
use crate::engine::timers::firing_timer_id;
use crate::error::{Result, ServiceError};

/// The wake-up timer of the schedule stored at `run` fired.
pub async fn on_wake(engine: &Engine, run: &RunKey, timer: &TimerPayload) -> Result<()> {
    let owner = engine.owner_of_run(run).await?;
    let Some(bytes) = owner.read(|s| s.run(run).map(|r| r.state().clone()))? else { return Ok(()) };
    drop(owner);
    let record = decode(&bytes)?;
    if record.deleted || i64::try_from(record.timer_generation).ok() != Some(timer.event_id) {
        return Ok(()); // stale: the schedule changed since this timer was armed
    }
    let running = still_running(engine, &record).await;
    let now_ms = engine.now_ms();
    let spec = CompiledSpec::new(&record.schedule.as_ref().and_then(|s| s.spec.clone()).unwrap_or_default());
    let due = record::due(&record, &spec, now_ms, running.len());
    let mut started = Vec::with_capacity(due.starts.len());
    for action in &due.starts {
        match start_action(engine, &record, action).await {
            Ok(execution) => started.push(Started { nominal_ms: action.nominal_ms, manual: action.manual, actual_ms: now_ms, execution }),
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => tracing::warn!(
                namespace = %record.namespace, schedule_id = %record.schedule_id, nominal_ms = action.nominal_ms, error = %e,
                "a scheduled workflow could not be started"
            ),
        }
    }

    let lock = engine.lock_workflow(&run.namespace, &run.workflow_id).await?;
    let Some((mut fresh, version)) = super::load_locked(&lock, run)? else { return Ok(()) };
    if fresh.deleted {
        return Ok(());
    }
    fresh.running_workflows.retain(|w| running.iter().any(|r| r.workflow_id == w.workflow_id && r.run_id == w.run_id));
    record::record_firing(&mut fresh, &due, &started);
    let remove = firing_timer_id().map(|timer_id| Op::RemoveTimer { timer_id }).into_iter().collect();
    write(engine, &lock, run, Some(version), fresh, remove).await?;
    if !started.is_empty() {
        tracing::debug!(namespace = %record.namespace, schedule_id = %record.schedule_id, started = started.len(), "schedule fired");
    }
    Ok(())
}

/// The schedule's workflows that are still running (a run that cannot be looked at
/// now counts as running: SKIP then errs on the side of not overlapping).
pub async fn still_running(engine: &Engine, record: &StoredSchedule) -> Vec<WorkflowExecution> {
    let mut running = Vec::with_capacity(record.running_workflows.len());
    for w in &record.running_workflows {
        match status(engine, &record.namespace, &w.workflow_id, &w.run_id).await {
            Ok(Some(s)) if s != WorkflowExecutionStatus::Running as i32 => {}
            Ok(None) => {}
            _ => running.push(w.clone()),
        }
    }
    running
}

fn elsewhere<T>(engine: &Engine, here: &Result<T>) -> Option<(u64, std::sync::Arc<dyn RemoteWorkflows>)> {
    match here {
        Err(ServiceError::NotLeader { leader_hint: Some(node), .. }) if *node != engine.node().node_id() => {
            Some((*node, engine.remote_workflows()?.clone()))
        }
        _ => None,
    }
}

async fn status(engine: &Engine, namespace: &str, workflow_id: &str, run_id: &str) -> Result<Option<i32>> {
    let key = RunKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string(), run_id: run_id.to_string() };
    let here = match engine.owner_for_read(namespace, workflow_id).await {
        Ok(owner) => owner.load(&key).map(|view| view.map(|v| v.state.status)),
        Err(e) => Err(e),
    };
    match elsewhere(engine, &here) {
        Some((node, remote)) => remote.workflow_status(node, namespace, workflow_id, run_id).await,
        None => here,
    }
}

/// The search attributes Temporal adds to a scheduled run.
fn scheduled_attributes(base: Option<SearchAttributes>, schedule_id: &str, nominal_ms: i64) -> SearchAttributes {
    let json = |kind: &str, value: &str| Payload {
        metadata: HashMap::from([("encoding".to_string(), b"json/plain".to_vec()), ("type".to_string(), kind.as_bytes().to_vec())]),
        data: format!("{value:?}").into_bytes(),
        ..Default::default()
    };
    let mut attributes = base.unwrap_or_default();
    attributes.indexed_fields.insert("TemporalScheduledStartTime".into(), json("Datetime", &rfc3339_seconds(nominal_ms)));
    attributes.indexed_fields.insert("TemporalScheduledById".into(), json("Keyword", schedule_id));
    attributes
}

/// Starts the workflow of one due action; returns its execution.
async fn start_action(engine: &Engine, record: &StoredSchedule, action: &DueStart) -> Result<WorkflowExecution> {
    let info: NewWorkflowExecutionInfo = match record.schedule.as_ref().and_then(|s| s.action.as_ref()).and_then(|a| a.action.clone()) {
        Some(Action::StartWorkflow(info)) => info,
        None => return Err(ServiceError::InvalidArgument("the schedule has no action".into())),
    };
    let workflow_id = format!("{}-{}", info.workflow_id, rfc3339_seconds(action.nominal_ms));
    let request_id = format!("schedule:{}:{}:{}:{}", record.namespace, record.schedule_id, record.create_time_ms, action.nominal_ms);
    let identity = format!("temporal-scheduler-{}-{}", record.namespace, record.schedule_id);
    let search_attributes = scheduled_attributes(info.search_attributes.clone(), &record.schedule_id, action.nominal_ms);
    let spec = RunSpec {
        workflow_type: info.workflow_type.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
        task_queue: info.task_queue.as_ref().map(|q| q.name.clone()).unwrap_or_default(),
        input: info.input.clone(),
        timeouts: Timeouts::normalize(
            duration_ms(info.workflow_execution_timeout.as_ref()),
            duration_ms(info.workflow_run_timeout.as_ref()),
            duration_ms(info.workflow_task_timeout.as_ref()),
            engine.config(),
        ),
        identity: identity.clone(),
        request_id: request_id.clone(),
        retry_policy: info.retry_policy.clone(),
        memo: info.memo.clone(),
        search_attributes: Some(search_attributes.clone()),
        header: info.header.clone(),
        priority: info.priority.clone(),
        user_metadata: info.user_metadata.clone(),
        ..Default::default()
    };
    let policies = Policies::resolve(info.workflow_id_reuse_policy, 0, WorkflowIdConflictPolicy::Fail)?;
    let here = start::start_workflow(engine, &record.namespace, &workflow_id, spec, policies).await.map(|o| o.run_id);
    let run_id = match elsewhere(engine, &here) {
        Some((node, remote)) => {
            let request = StartWorkflowExecutionRequest {
                namespace: record.namespace.clone(),
                workflow_id: workflow_id.clone(),
                workflow_type: Some(WorkflowType { name: info.workflow_type.map(|t| t.name).unwrap_or_default() }),
                task_queue: info.task_queue,
                input: info.input,
                workflow_execution_timeout: info.workflow_execution_timeout,
                workflow_run_timeout: info.workflow_run_timeout,
                workflow_task_timeout: info.workflow_task_timeout,
                identity,
                request_id,
                workflow_id_reuse_policy: info.workflow_id_reuse_policy,
                retry_policy: info.retry_policy,
                memo: info.memo,
                search_attributes: Some(search_attributes),
                header: info.header,
                priority: info.priority,
                user_metadata: info.user_metadata,
                ..Default::default()
            };
            remote.start_workflow(node, request).await?
        }
        None => here?,
    };
    Ok(WorkflowExecution { workflow_id, run_id })
}
