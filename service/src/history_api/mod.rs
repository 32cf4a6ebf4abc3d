//! The history API: the one seam between the frontend and the history handlers.
//!
//! One request type per operation the frontend performs, and one method on
//! [`HistoryApi`] per request type. Each method calls the history handler that
//! implements it (`crate::engine::*`) inside [`Router::retry`], so a call that meets
//! a shard owner that just stopped is run again on the next owner; the frontend
//! validates and maps errors, and never names a shard or a handler.
//!
//! - [`workflow`]: start, signal, signal-with-start, cancel, terminate, describe,
//!   history (forward and reverse), resolving a run.
//! - [`workflow_task`]: starting a polled workflow task, its completion and failure,
//!   legacy query tasks handed to workflow pollers.
//! - [`activity`]: starting a polled activity task; complete, fail, cancel and
//!   heartbeat, by task token or by activity id.
//! - [`update`]: `UpdateWorkflowExecution` and `PollWorkflowExecutionUpdate`.
//! - [`query`]: `QueryWorkflow` (ask, wait, re-check; asked again once when the
//!   owner holding it stops) and a worker's answer to a legacy query task.
//! - [`task_queue`]: a task queue's pollers, rates and backlog; a worker's shutdown.

pub mod activity;
pub mod query;
pub mod reset;
pub mod schedule;
pub mod task_queue;
pub mod update;
pub mod workflow;
pub mod workflow_task;

#[cfg(test)]
mod tests;

use std::future::Future;

use crate::engine::{Engine, EngineConfig};
use crate::error::Result;
use crate::matching::{Matching, TaskRef};
use crate::shard::Router;
use hourglass_storage::state::QueueKey;

pub use crate::engine::update::UpdateTarget;
pub use activity::{ActivityRef, CancelActivity, CompleteActivity, FailActivity, HeartbeatActivity, StartActivityTask};
pub use query::{AskQuery, QueryAnswer, QueryWorkflow, RespondQuery};
pub use task_queue::ShutDownWorker;
pub use update::{PollUpdate, UpdateAnswer, UpdateWorkflow};
pub use workflow::{
    Describe, GetHistory, GetHistoryReverse, RequestCancel, ResolveRun, SignalWithStart, SignalWorkflow, StartWorkflow, Terminate,
};
pub use workflow_task::{CompleteWorkflowTask, FailWorkflowTask, LegacyQueryTask, PollQueryTask, StartQueryTask, StartWorkflowTask};

// What the requests carry and the calls answer (defined by the handlers for now).
pub use crate::core::activity::outcome::{Canceled, Completed, Failed, Heartbeat};
pub use crate::core::run::{Policies, RunSpec, StartOutcome};
pub use crate::core::signals::SignalSpec;
pub use crate::engine::activity::dispatch::Dispatched;
pub use crate::engine::history::HistoryPage;
pub use crate::engine::query::{Asked, QueryTicket};
pub use crate::engine::workflow_task::{Poller, Started};

/// Starting a task of a shard another node leads, on that node (a cluster node's
/// peers; installed with [`Engine::set_remote_tasks`]). A poll takes tasks of every
/// shard at the node that dispatches its queue; the task is started where its
/// shard's owner runs.
#[tonic::async_trait]
pub trait RemoteTasks: Send + Sync {
    async fn start_workflow_task(&self, node: u64, queue: &QueueKey, task: &TaskRef, poller: &Poller) -> Result<Started>;
    async fn start_activity_task(&self, node: u64, queue: &QueueKey, task: &TaskRef, identity: &str) -> Result<Dispatched>;
    async fn start_query_task(
        &self,
        node: u64,
        queue: &QueueKey,
        task: &TaskRef,
    ) -> Result<Option<temporalio_protos::protos::temporal::api::workflowservice::v1::PollWorkflowTaskQueueResponse>>;
}

/// Where a task queue's polls are served ([`HistoryApi::queue_home`]).
pub enum QueueHome {
    /// This node leads the queue's home shard, for as long as this owner lives.
    Here(std::sync::Arc<crate::shard::ShardOwner>),
    /// Another node (`leader`) leads the home shard.
    Elsewhere { shard: hourglass_storage::records::ShardId, leader: u64 },
}

impl QueueHome {
    /// Resolves when this node stops being the queue's home (never for `Elsewhere`):
    /// a poll waiting here must then end, so its client polls the new home.
    pub async fn lost(&self) {
        match self {
            QueueHome::Here(owner) => owner.stopped().await,
            QueueHome::Elsewhere { .. } => std::future::pending().await,
        }
    }
}

/// The history operations of one node, each routed and retried.
///
/// **What is retried.** [`Router::retry`] repeats a call only when it fails with
/// [`ServiceError::NotLeader`](crate::error::ServiceError::NotLeader) naming no leader or this node (the shard's owner on
/// this node changed under the call, and this node is to own it again), at most
/// [`crate::shard::RETRIES_MAX`] times, each once the shard's next owner is live
/// (waiting for it at most [`ROUTE_WAIT`](crate::shard::ROUTE_WAIT), counted from that failure: a long poll
/// that waited long before its owner stopped is routed again like a short call).
/// Every other error (including `Unavailable` from a stopped Raft group,
/// `ResourceExhausted`, a transition rejected for another reason) and a `NotLeader`
/// naming another node go back to the caller, who sees `Unavailable` (with the
/// leader's id when known). A withdrawn query is asked again once
/// ([`Self::query_workflow`]).
///
/// **Why repeating is safe, also for calls that are not idempotent.** A `NotLeader`
/// only ever means that no write of the call was applied:
/// - routing found no live owner, or the owner had stopped before or while the call
///   waited for the workflow's lock or read its state (`ShardOwner::check_live`):
///   nothing was proposed;
/// - `Node::propose_in_term` refused the proposal because the owner's term is over
///   (or Raft dropped it): it was never appended to the log;
/// - the transition reached the state machine but a `SetState` was built from a state
///   version another owner had moved on from (`StateVersionMismatch`, turned into
///   `NotLeader` by `ServiceError::from_raft`): the whole transition, dedupe record
///   included, was rejected and changed nothing.
///
/// A proposal once appended is answered from apply only (for a one-member group it
/// commits in the next term), never with `NotLeader`. Every state-changing handler
/// commits as its last fallible step, and each attempt routes, locks and loads
/// afresh, so a repeat decides on the new owner's state. The start of a polled
/// workflow task reads its poll response from history after WorkflowTaskStarted is
/// committed; that read is of committed events and does not depend on the owner
/// still leading (`ShardOwner::read_committed_history`), so a step-down at that
/// moment cannot lose the started task (only corrupt data could fail it there; a
/// repeat would then meet a task of an ended term and answer [`Started::Stale`], so
/// the task is never started twice). Starts, signal-with-starts and signals that carry a
/// request id are deduplicated durably besides.
///
/// **Cost.** A handler that takes its input by value gets a clone of it per attempt
/// (normally one); inputs that are only read are passed by reference.
#[derive(Clone, Copy)]
pub struct HistoryApi<'a> {
    engine: &'a Engine,
}

impl<'a> HistoryApi<'a> {
    pub fn new(engine: &'a Engine) -> Self {
        Self { engine }
    }

    /// Limits and defaults the frontend validates against.
    pub fn config(&self) -> &'a EngineConfig {
        self.engine.config()
    }

    /// Workflow and activity tasks ready for pollers (every shard's, by task queue).
    pub fn matching(&self) -> &'a Matching {
        self.engine.matching()
    }

    /// Where `queue`'s tasks are dispatched: here, or on the node leading the
    /// queue's home shard (waiting for a leader while an election is under way).
    pub async fn queue_home(&self, namespace: &str, queue: &str) -> Result<QueueHome> {
        let shard = self.router().queue_home(namespace, queue);
        match self.router().owner(shard).await {
            Ok(owner) => Ok(QueueHome::Here(owner)),
            Err(crate::error::ServiceError::NotLeader { leader_hint: Some(leader), .. }) => Ok(QueueHome::Elsewhere { shard, leader }),
            Err(e) => Err(e),
        }
    }

    /// The node to start a task on, and how, when starting it here met `NotLeader`
    /// naming another node.
    fn elsewhere<T>(&self, here: &Result<T>) -> Option<(u64, &'a std::sync::Arc<dyn RemoteTasks>)> {
        match here {
            Err(crate::error::ServiceError::NotLeader { leader_hint: Some(node), .. }) if *node != self.engine.node().node_id() => {
                Some((*node, self.engine.remote_tasks()?))
            }
            _ => None,
        }
    }

    fn router(&self) -> &'a Router {
        self.engine.router()
    }

    /// Runs `call` through [`Router::retry`].
    async fn retry<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.router().retry(call).await
    }
}
