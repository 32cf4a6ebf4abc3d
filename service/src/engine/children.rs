//! Child workflows.
//!
//! The parent's StartChildWorkflowExecution command writes
//! StartChildWorkflowExecutionInitiated and arms a `StartChild` timer due at once: a
//! durable outbox, so the cross-shard work survives a crash. When it fires the child
//! run is created on its own shard (deduplicated by a request id derived from the
//! parent run and the initiated event, so a repeated fire finds the same child) and
//! the parent gets ChildWorkflowExecutionStarted or StartChildWorkflowExecutionFailed.
//!
//! When any run closes, [`crate::core::lifecycle::on_run_closed`] arms a `NotifyParent`
//! timer (the closed-run outbox) if it has a parent to tell, or children its parent
//! close policy must reach. [`on_closed_run`] does both, each step idempotent.
//!
//! Workflow locks are never nested: each step takes one workflow's lock at a time.

use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{
    ParentClosePolicy, StartChildWorkflowExecutionFailedCause, WorkflowIdConflictPolicy,
};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::*;
use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;

use super::{history, start, Engine, RunView, ShardOwner, WorkflowGuard};
use crate::core::children::{child_closed, child_started, execution_of};
use crate::core::error::StartError;
use crate::core::external::{Delivery, ExternalRequest};
use crate::core::run::{self, Decision, Policies, RunSpec, Timeouts, SERVER_IDENTITY};
use crate::core::signals::add_cancel_request;
use crate::core::state::{ChildInfo, ParentInfo};
use crate::core::tasks::TimerKind;
use crate::core::txn::duration_ms;
use crate::core::{lifecycle, wft};
use crate::engine::errors::StoredDataError;
use crate::error::{Result, ServiceError};

/// How long a parent notification waits when the parent has a workflow task in flight
/// and the child's Started event is still buffered (its event id is not known yet).
const NOTIFY_RETRY_MS: i64 = 200;

/// What starting a child came to.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildStart {
    Started { run_id: String },
    AlreadyExists,
}

/// The StartChild outbox timer of `parent` fired for the child initiated at
/// `initiated_event_id`.
pub async fn start_child(engine: &Engine, parent: &RunKey, initiated_event_id: i64) -> Result<()> {
    let parent_owner = engine.owner_of_run(parent).await?;
    let Some(loaded) = parent_owner.load(parent)? else { return Ok(()) };
    let pending = loaded.state.child(initiated_event_id).is_some_and(|c| c.run_id.is_empty());
    if !loaded.state.is_open() || !pending {
        return Ok(());
    }
    let initiated_event = history::read_event(&parent_owner, parent, initiated_event_id)?;
    // Temporal: the child's Started event carries the user metadata of the parent's command.
    let user_metadata = initiated_event.user_metadata;
    let initiated = match initiated_event.attributes {
        Some(Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a)) => a,
        _ => {
            let expected = "StartChildWorkflowExecutionInitiated";
            return Err(StoredDataError::UnexpectedEvent { run: parent.clone(), event_id: initiated_event_id, expected }.into());
        }
    };
    let parent_started = history::started_attributes(&parent_owner, parent)?;
    drop(parent_owner);
    let root = parent_started.root_workflow_execution.unwrap_or_else(|| execution_of(parent));
    let here = create_child_run(engine, parent, initiated_event_id, &initiated, user_metadata.as_ref(), &root).await;
    let outcome = match elsewhere(engine, &here) {
        Some((node, remote)) => {
            let parent_info = ParentInfo {
                namespace: parent.namespace.clone(),
                workflow_id: parent.workflow_id.clone(),
                run_id: parent.run_id.clone(),
                initiated_event_id,
            };
            remote.create_child_run(node, &parent_info, &initiated, user_metadata.as_ref(), &root).await?
        }
        None => here?,
    };

    let lock = engine.lock_workflow(&parent.namespace, &parent.workflow_id).await?;
    let Some(loaded) = lock.load(parent)? else { return Ok(()) };
    if !loaded.state.is_open() {
        // The parent closed while its child was starting: its close policy could not
        // see this child, so apply it here.
        drop(lock);
        if let (ChildStart::Started { .. }, Some(child)) = (&outcome, loaded.state.child(initiated_event_id)) {
            apply_parent_close_policy_anywhere(engine, parent, child).await?;
        }
        return Ok(());
    }
    let Some(child) = loaded.state.child(initiated_event_id).cloned() else { return Ok(()) };
    if !child.run_id.is_empty() {
        return Ok(());
    }
    let mut txn = engine.txn(loaded);
    match outcome {
        ChildStart::Started { run_id } => {
            let buffered = txn.state.workflow_task_started();
            let started_event_id = txn.next_event_id();
            wft::add_external_event(&mut txn, child_started(&child, &run_id, initiated.header.clone()));
            if let Some(c) = txn.state.child_mut(initiated_event_id) {
                c.run_id = run_id;
                c.started_event_id = if buffered { 0 } else { started_event_id };
            }
        }
        ChildStart::AlreadyExists => {
            let failed = StartChildWorkflowExecutionFailedEventAttributes {
                namespace: child.namespace.clone(),
                workflow_id: child.workflow_id.clone(),
                workflow_type: Some(WorkflowType { name: child.workflow_type.clone() }),
                cause: StartChildWorkflowExecutionFailedCause::WorkflowAlreadyExists as i32,
                initiated_event_id,
                workflow_task_completed_event_id: initiated.workflow_task_completed_event_id,
                ..Default::default()
            };
            wft::add_external_event(&mut txn, Attributes::StartChildWorkflowExecutionFailedEventAttributes(failed));
            txn.state.remove_child(initiated_event_id);
        }
    }
    lock.commit(txn).await?;
    Ok(())
}

/// Creates the child run on its shard, under the child workflow's lock (this node
/// must lead the child's shard: `NotLeader` otherwise). `user_metadata`: the
/// initiated event's, for the child's Started event.
pub async fn create_child_run(
    engine: &Engine,
    parent: &RunKey,
    initiated_event_id: i64,
    initiated: &StartChildWorkflowExecutionInitiatedEventAttributes,
    user_metadata: Option<&UserMetadata>,
    root: &WorkflowExecution,
) -> Result<ChildStart> {
    let namespace = parent.namespace.as_str();
    let workflow_id = initiated.workflow_id.as_str();
    let lock = engine.lock_workflow(namespace, workflow_id).await?;
    let dedupe_id = format!("child:{}:{}:{initiated_event_id}", parent.workflow_id, parent.run_id);
    if let Some(first) = start::dedupe_result(&lock, namespace, &dedupe_id)? {
        return Ok(ChildStart::Started { run_id: String::from_utf8_lossy(&first).into_owned() });
    }
    let policies = Policies::resolve(initiated.workflow_id_reuse_policy, 0, WorkflowIdConflictPolicy::Fail)?;
    let existing = match start::decide(&lock, namespace, workflow_id, "", policies) {
        Ok(Decision::Create) => None,
        Ok(Decision::TerminateExisting(run)) => Some(run),
        Ok(Decision::SameRequest(_) | Decision::UseExisting(_)) | Err(ServiceError::Start(StartError::AlreadyStarted { .. })) => {
            return Ok(ChildStart::AlreadyExists)
        }
        Err(e) => return Err(e),
    };
    let spec = RunSpec {
        workflow_type: initiated.workflow_type.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
        task_queue: initiated.task_queue.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
        input: initiated.input.clone(),
        timeouts: Timeouts::normalize(
            duration_ms(initiated.workflow_execution_timeout.as_ref()),
            duration_ms(initiated.workflow_run_timeout.as_ref()),
            duration_ms(initiated.workflow_task_timeout.as_ref()),
            engine.config(),
        ),
        identity: String::new(),
        request_id: start::new_run_id(),
        retry_policy: initiated.retry_policy.clone(),
        memo: initiated.memo.clone(),
        search_attributes: initiated.search_attributes.clone(),
        header: initiated.header.clone(),
        start_delay_ms: 0,
        priority: initiated.priority.clone(),
        parent: Some(ParentInfo {
            namespace: parent.namespace.clone(),
            workflow_id: parent.workflow_id.clone(),
            run_id: parent.run_id.clone(),
            initiated_event_id,
        }),
        root: Some(root.clone()),
        continuation: None,
        cron_schedule: initiated.cron_schedule.clone(),
        attempt: 1,
        user_metadata: user_metadata.cloned(),
    };
    let now_ms = engine.now_ms();
    let key = RunKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string(), run_id: start::new_run_id() };
    let run_id = key.run_id.clone();
    let mut txns = Vec::with_capacity(2);
    if let Some(run) = existing {
        txns.push(lifecycle::terminate_for_conflict(run, now_ms, SERVER_IDENTITY));
    }
    let mut txn = run::new_run(key, now_ms, &spec);
    run::begin_run(&mut txn);
    txns.push(txn);
    let record = run::dedupe(namespace, dedupe_id, bytes::Bytes::from(run_id.clone()));
    let (_, duplicate) = lock.commit_many(txns, Some(record)).await?;
    let run_id = duplicate.map(|first| String::from_utf8_lossy(&first).into_owned()).unwrap_or(run_id);
    Ok(ChildStart::Started { run_id })
}

/// The closed-run outbox of `run` fired: tell its parent how it ended, and apply its
/// parent close policy to its open children.
pub async fn on_closed_run(engine: &Engine, run: &RunKey) -> Result<()> {
    let Some(loaded) = engine.load(run).await? else { return Ok(()) };
    if loaded.state.is_open() {
        return Ok(());
    }
    // A run continued by another (continue-as-new, retry, cron) leaves the report to
    // the last run of its chain.
    if loaded.state.parent.is_some() && loaded.state.new_execution_run_id.is_empty() {
        notify_parent(engine, &loaded).await?;
    }
    for child in loaded.state.children.iter().filter(|c| !c.run_id.is_empty()) {
        apply_parent_close_policy_anywhere(engine, run, child).await?;
    }
    Ok(())
}

/// What the parent must do about a child's close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    Done,
    /// The child's Started event is still buffered in the parent; try again shortly.
    RetryLater,
}

/// A closed child run, as its parent needs to hear of it.
#[derive(Debug, Clone)]
pub struct ClosedChild {
    pub key: RunKey,
    pub first_execution_run_id: String,
    pub close_event_id: i64,
    pub close: HistoryEvent,
}

async fn notify_parent(engine: &Engine, child: &RunView) -> Result<()> {
    let Some(parent) = child.state.parent.clone() else { return Ok(()) };
    let close_event_id = history::close_event_id(child);
    let close = history::read_event(&*engine.owner_of_run(&child.key).await?, &child.key, close_event_id)?;
    let closed =
        ClosedChild { key: child.key.clone(), first_execution_run_id: child.state.first_execution_run_id.clone(), close_event_id, close };
    let here = record_in_parent(engine, &parent, &closed).await;
    let notify = match elsewhere(engine, &here) {
        Some((node, remote)) => remote.record_child_closed(node, &parent, &closed).await?,
        None => here?,
    };
    if let Notify::RetryLater = notify {
        let lock = engine.lock_workflow(&child.key.namespace, &child.key.workflow_id).await?;
        let Some(again) = lock.load(&child.key)? else { return Ok(()) };
        let mut txn = engine.txn(again);
        let due_ms = txn.now_ms + NOTIFY_RETRY_MS;
        txn.add_timer(due_ms, run::timer(TimerKind::NotifyParent));
        lock.commit(txn).await?;
    }
    Ok(())
}

/// Records `child`'s close in its parent `parent`, under the parent's lock (this node
/// must lead the parent's shard: `NotLeader` otherwise).
pub async fn record_in_parent(engine: &Engine, parent: &ParentInfo, child: &ClosedChild) -> Result<Notify> {
    let lock = engine.lock_workflow(&parent.namespace, &parent.workflow_id).await?;
    let parent_key = RunKey { namespace: parent.namespace.clone(), workflow_id: parent.workflow_id.clone(), run_id: parent.run_id.clone() };
    record_child_closed(engine, &lock, &parent_key, parent.initiated_event_id, child).await
}

/// In the parent (its lock held): ChildWorkflowExecution{Completed,...} for the child
/// initiated at `initiated_event_id`, unless already recorded.
async fn record_child_closed(
    engine: &Engine,
    lock: &WorkflowGuard,
    parent: &RunKey,
    initiated_event_id: i64,
    child: &ClosedChild,
) -> Result<Notify> {
    let Some(loaded) = lock.load(parent)? else { return Ok(Notify::Done) };
    if !loaded.state.is_open() {
        return Ok(Notify::Done);
    }
    let Some(info) = loaded.state.child(initiated_event_id).cloned() else { return Ok(Notify::Done) };
    if info.workflow_id != child.key.workflow_id {
        tracing::warn!(?parent, initiated_event_id, child = ?child.key, "child record names another workflow id; not notified");
        return Ok(Notify::Done);
    }
    let mut txn = engine.txn(loaded);
    let started_event_id = if info.started_event_id > 0 {
        info.started_event_id
    } else if txn.state.workflow_task_started() {
        // Started is buffered (or would be): its id is only known once written.
        return Ok(Notify::RetryLater);
    } else if info.run_id.is_empty() {
        // The start was never recorded (the StartChild outbox has not run its second
        // step yet): record it now, before the outcome.
        let id = txn.next_event_id();
        wft::add_external_event(&mut txn, child_started(&info, &child.first_execution_run_id, None));
        id
    } else {
        find_child_started(lock, parent, initiated_event_id)?
    };
    let execution = WorkflowExecution { workflow_id: child.key.workflow_id.clone(), run_id: child.key.run_id.clone() };
    let Some(attrs) = child_closed(&child.close, &info, execution, initiated_event_id, started_event_id) else {
        let close_event_id = child.close_event_id;
        return Err(StoredDataError::UnexpectedEvent { run: child.key.clone(), event_id: close_event_id, expected: "a close event" }.into());
    };
    wft::add_external_event(&mut txn, attrs);
    txn.state.remove_child(initiated_event_id);
    lock.commit(txn).await?;
    Ok(Notify::Done)
}

/// The id of the ChildWorkflowExecutionStarted event for `initiated_event_id`, found
/// in the parent's history (it was buffered when written, so its id is not recorded).
fn find_child_started(owner: &ShardOwner, parent: &RunKey, initiated_event_id: i64) -> Result<i64> {
    let mut from = initiated_event_id + 1;
    loop {
        let page = history::read_events(owner, parent, from, 256)?;
        let Some(last) = page.last().map(|e| e.event_id) else { break };
        let found = page.iter().find(|e| match &e.attributes {
            Some(Attributes::ChildWorkflowExecutionStartedEventAttributes(a)) => a.initiated_event_id == initiated_event_id,
            _ => false,
        });
        if let Some(e) = found {
            return Ok(e.event_id);
        }
        from = last + 1;
    }
    Err(StoredDataError::ChildStartedMissing { parent: parent.clone(), initiated_event_id }.into())
}

/// [`apply_parent_close_policy`] here, or on the node leading the child's shard.
async fn apply_parent_close_policy_anywhere(engine: &Engine, parent: &RunKey, child: &ChildInfo) -> Result<()> {
    let here = apply_parent_close_policy(engine, parent, child).await;
    match elsewhere(engine, &here) {
        Some((node, remote)) => remote.apply_parent_close_policy(node, parent, child).await,
        None => here,
    }
}

/// The node to run a step on, and how, when running it here met `NotLeader` naming
/// another node (the other workflow's shard is led there).
pub(super) fn elsewhere<T>(engine: &Engine, here: &Result<T>) -> Option<(u64, std::sync::Arc<dyn RemoteShards>)> {
    match here {
        Err(ServiceError::NotLeader { leader_hint: Some(node), .. }) if *node != engine.node().node_id() => {
            Some((*node, engine.remote_shards()?.clone()))
        }
        _ => None,
    }
}

/// Work of the child-workflow (and external request) outboxes on a shard another node leads (a cluster
/// node's peers; installed with [`Engine::set_remote_shards`]). Each runs the
/// function of the same name on that node.
#[tonic::async_trait]
pub trait RemoteShards: Send + Sync {
    async fn create_child_run(
        &self,
        node: u64,
        parent: &ParentInfo,
        initiated: &StartChildWorkflowExecutionInitiatedEventAttributes,
        user_metadata: Option<&UserMetadata>,
        root: &WorkflowExecution,
    ) -> Result<ChildStart>;
    async fn record_child_closed(&self, node: u64, parent: &ParentInfo, child: &ClosedChild) -> Result<Notify>;
    async fn apply_parent_close_policy(&self, node: u64, parent: &RunKey, child: &ChildInfo) -> Result<()>;
    /// [`super::external_steps::deliver`] of a signal, on `node`.
    async fn signal_external(&self, node: u64, request: &ExternalRequest) -> Result<Delivery>;
    /// [`super::external_steps::deliver`] of a cancellation request, on `node`.
    async fn cancel_external(&self, node: u64, request: &ExternalRequest) -> Result<Delivery>;
}

/// Applies `child`'s parent close policy after its parent `parent` closed: terminate
/// or request cancellation of the child's open run, if it is still this parent's child.
/// This node must lead the child's shard (`NotLeader` otherwise).
pub async fn apply_parent_close_policy(engine: &Engine, parent: &RunKey, child: &ChildInfo) -> Result<()> {
    let policy = ParentClosePolicy::try_from(child.parent_close_policy).unwrap_or(ParentClosePolicy::Terminate);
    if policy == ParentClosePolicy::Abandon {
        return Ok(());
    }
    let lock = engine.lock_workflow(&child.namespace, &child.workflow_id).await?;
    let Some((run_id, true)) = lock.current_run(&child.namespace, &child.workflow_id)? else { return Ok(()) };
    let key = RunKey { namespace: child.namespace.clone(), workflow_id: child.workflow_id.clone(), run_id };
    let Some(run) = lock.load(&key)? else { return Ok(()) };
    let ours = run.state.parent.as_ref().is_some_and(|p| {
        p.workflow_id == parent.workflow_id && p.run_id == parent.run_id && p.initiated_event_id == child.initiated_event_id
    });
    if !ours || !run.state.is_open() {
        return Ok(());
    }
    let mut txn = engine.txn(run);
    const REASON: &str = "by parent close policy";
    if policy == ParentClosePolicy::RequestCancel {
        if !add_cancel_request(&mut txn, REASON.into(), SERVER_IDENTITY.into()) {
            return Ok(());
        }
    } else {
        lifecycle::terminate(&mut txn, REASON.into(), None, SERVER_IDENTITY.into());
    }
    lock.commit(txn).await?;
    Ok(())
}
