//! Activity tasks: starting an attempt a poll took from matching, and the worker's
//! outcomes (complete, fail, cancel, heartbeat), by task token or by activity id.

use hourglass_storage::state::{QueueKey, RunKey};

use super::{Canceled, Completed, Dispatched, Failed, Heartbeat, HistoryApi};
use crate::core::activity::{ActivitySelector, ActivityTarget};
use crate::engine::activity::dispatch;
use crate::engine::activity::outcome;
use crate::engine::Engine;
use crate::error::Result;
use crate::matching::TaskRef;

/// The activity an outcome is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityRef {
    /// A task token's attempt: it must be the activity's current attempt, started.
    Attempt { run: RunKey, scheduled_event_id: i64, attempt: i32 },
    /// The `…ById` RPCs: the pending activity with this id, whatever its attempt, in
    /// the named run (empty `run_id`: the workflow's current run).
    Id { namespace: String, workflow_id: String, run_id: String, activity_id: String },
}

/// Starts the attempt `task` names for the worker `identity`;
/// [`Dispatched::Stale`] for a task that is no longer current.
#[derive(Debug, Clone)]
pub struct StartActivityTask<'a> {
    pub queue: &'a QueueKey,
    pub task: &'a TaskRef,
    pub identity: &'a str,
}

/// RespondActivityTaskCompleted(ById).
#[derive(Debug, Clone)]
pub struct CompleteActivity {
    pub activity: ActivityRef,
    pub completed: Completed,
}

/// RespondActivityTaskFailed(ById).
#[derive(Debug, Clone)]
pub struct FailActivity {
    pub activity: ActivityRef,
    pub failed: Failed,
}

/// RespondActivityTaskCanceled(ById).
#[derive(Debug, Clone)]
pub struct CancelActivity {
    pub activity: ActivityRef,
    pub canceled: Canceled,
}

/// RecordActivityTaskHeartbeat(ById).
#[derive(Debug, Clone)]
pub struct HeartbeatActivity {
    pub activity: ActivityRef,
    pub heartbeat: Heartbeat,
}

/// The handlers' target for `activity`: a by-id reference is resolved to its run
/// here, in the same attempt as the outcome, so a retry resolves it again.
async fn target(engine: &Engine, activity: &ActivityRef) -> Result<ActivityTarget> {
    Ok(match activity {
        ActivityRef::Attempt { run, scheduled_event_id, attempt } => ActivityTarget {
            run: run.clone(),
            selector: ActivitySelector::Attempt { scheduled_event_id: *scheduled_event_id, attempt: *attempt },
        },
        ActivityRef::Id { namespace, workflow_id, run_id, activity_id } => ActivityTarget {
            run: engine.resolve_run(namespace, workflow_id, run_id).await?,
            selector: ActivitySelector::ActivityId(activity_id.clone()),
        },
    })
}

impl HistoryApi<'_> {
    /// Starts the task here, or, when another node leads its shard, there. The
    /// caller holds the task until this decides ([`crate::matching::Held`]).
    pub async fn start_activity_task(&self, req: StartActivityTask<'_>) -> Result<Dispatched> {
        let here = self.start_activity_task_here(req.clone()).await;
        match self.elsewhere(&here) {
            Some((node, remote)) => remote.start_activity_task(node, req.queue, req.task, req.identity).await,
            None => here,
        }
    }

    /// Starts the task on this node only (for a poll here, or a peer's).
    pub async fn start_activity_task_here(&self, req: StartActivityTask<'_>) -> Result<Dispatched> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || dispatch::start_polled_task(engine, r.queue, r.task, r.identity)).await
    }

    pub async fn complete_activity(&self, req: CompleteActivity) -> Result<()> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || async move { outcome::complete(engine, &target(engine, &r.activity).await?, r.completed.clone()).await }).await
    }

    pub async fn fail_activity(&self, req: FailActivity) -> Result<()> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || async move { outcome::fail(engine, &target(engine, &r.activity).await?, r.failed.clone()).await }).await
    }

    pub async fn cancel_activity(&self, req: CancelActivity) -> Result<()> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || async move { outcome::cancel(engine, &target(engine, &r.activity).await?, r.canceled.clone()).await }).await
    }

    /// Returns whether the workflow asked to cancel the activity.
    pub async fn heartbeat_activity(&self, req: HeartbeatActivity) -> Result<bool> {
        let (engine, r) = (self.engine, &req);
        self.retry(move || async move { outcome::heartbeat(engine, &target(engine, &r.activity).await?, r.heartbeat.clone()).await }).await
    }
}
