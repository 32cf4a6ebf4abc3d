//! The in-memory registry of queries waiting for an answer.
//!
//! A query is never durable: it lives as long as the `QueryWorkflow` call that asked
//! it (its [`QueryTicket`]). It reaches a worker one of two ways (as in Temporal):
//! - *attached* to a workflow task that starts after the query arrived (the poll
//!   response's `queries`), answered in that task's completion (`query_results`);
//! - as a *legacy query task* (the poll response's `query`) when no workflow task is
//!   outstanding or the run is closed, answered by `RespondQueryTaskCompleted`.
//!
//! Legacy query tasks are handed to workflow pollers through a dispatcher of their own
//! (a second [`Matching`]: cancellation-safe, per task queue), which the poll handler
//! waits on next to the durable backlog.
//!
//! Phases: `Waiting` (a workflow task is outstanding: the next one to start takes it)
//! → `Attached` (sent on a started workflow task) or `Dispatched` (a legacy task is
//! queued or with a worker). When an attached task ends unanswered, the query goes
//! back to `Waiting`, or straight to `Dispatched` if no workflow task follows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hourglass_storage::records::ShardId;
use hourglass_storage::state::{QueueKey, RunKey};
use parking_lot::Mutex;
use temporalio_protos::protos::temporal::api::common::v1::Payloads;
use temporalio_protos::protos::temporal::api::enums::v1::QueryResultType;
use temporalio_protos::protos::temporal::api::query::v1::{WorkflowQuery, WorkflowQueryResult};
use tokio::sync::oneshot;

use crate::core::tasks::TaskPayload;
use crate::matching::{Matching, TaskRef};

mod sticky;

/// Most queries pending on one run; more are refused (Go: `MaxBufferedQueryCount`).
pub const QUERIES_PER_RUN_MAX: usize = 64;

/// How a query ended on the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryOutcome {
    Answered(Option<Payloads>),
    Failed(String),
}

impl QueryOutcome {
    /// The outcome a worker reported (`WorkflowQueryResult` or the fields of
    /// `RespondQueryTaskCompleted`). `None` when the result type is not a final one.
    pub fn from_result(result_type: i32, answer: Option<Payloads>, error_message: &str, failure_message: Option<&str>) -> Option<Self> {
        match QueryResultType::try_from(result_type) {
            Ok(QueryResultType::Answered) => Some(Self::Answered(answer)),
            Ok(QueryResultType::Failed) => {
                let message = if error_message.is_empty() { failure_message.unwrap_or_default() } else { error_message };
                Some(Self::Failed(message.to_string()))
            }
            _ => None,
        }
    }

    pub fn from_query_result(result: &WorkflowQueryResult) -> Option<Self> {
        Self::from_result(
            result.result_type,
            result.answer.clone(),
            &result.error_message,
            result.failure.as_ref().map(|f| f.message.as_str()),
        )
    }
}

/// A legacy query task taken by a poller.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryTask {
    pub run: RunKey,
    pub query_id: String,
    pub query: WorkflowQuery,
    /// The dispatcher's handle, to put the task back if it cannot be delivered.
    pub task: TaskRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Dispatched,
    Attached { started_event_id: i64 },
}

struct Pending {
    seq: u64,
    query: WorkflowQuery,
    /// The run's normal queue.
    queue: QueueKey,
    /// While dispatched to the run's sticky queue first ([`sticky`]): that queue.
    sticky: Option<QueueKey>,
    /// A poller took the legacy task (it is not in the dispatcher).
    with_worker: bool,
    phase: Phase,
    reply: Option<oneshot::Sender<QueryOutcome>>,
}

impl Pending {
    /// The queue its legacy task is dispatched on.
    fn dispatch_queue(&self) -> &QueueKey {
        self.sticky.as_ref().unwrap_or(&self.queue)
    }
}

#[derive(Default)]
struct Registry {
    next_seq: u64,
    runs: HashMap<RunKey, HashMap<String, Pending>>,
    by_seq: HashMap<u64, (RunKey, String)>,
}

impl Registry {
    fn pending_mut(&mut self, run: &RunKey, id: &str) -> Option<&mut Pending> {
        self.runs.get_mut(run).and_then(|qs| qs.get_mut(id))
    }

    fn remove(&mut self, run: &RunKey, id: &str) -> Option<Pending> {
        let queries = self.runs.get_mut(run)?;
        let pending = queries.remove(id)?;
        if queries.is_empty() {
            self.runs.remove(run);
        }
        self.by_seq.remove(&pending.seq);
        Some(pending)
    }
}

/// The registry of pending queries of one shard owner, plus the legacy query-task
/// dispatcher it feeds (shared by every owner on the node: a poll on a task queue
/// takes query tasks of every shard). Its tasks carry the owner's shard and term, so
/// they leave the dispatcher when the owner stops.
#[derive(Clone)]
pub struct QueryRegistry {
    inner: Arc<Mutex<Registry>>,
    dispatch: Matching,
    shard: ShardId,
    term: u64,
}

/// Why a query could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    TooManyPending { max: usize },
}

impl QueryRegistry {
    pub fn new(shard: ShardId, term: u64, dispatch: Matching) -> Self {
        Self { inner: Arc::default(), dispatch, shard, term }
    }

    /// Registers a query on `run`; `dispatch_now` sends it as a legacy query task on
    /// `queue` at once, otherwise it waits for the next workflow task. Call under the
    /// workflow's lock, after deciding from the run's state.
    pub fn register(&self, run: &RunKey, query: WorkflowQuery, queue: QueueKey, dispatch_now: bool) -> Result<QueryTicket, RegisterError> {
        self.register_routed(run, query, queue, None, dispatch_now)
    }

    /// [`Self::register`]; `sticky`: dispatched now to that queue first.
    fn register_routed(
        &self,
        run: &RunKey,
        query: WorkflowQuery,
        queue: QueueKey,
        sticky: Option<QueueKey>,
        dispatch_now: bool,
    ) -> Result<QueryTicket, RegisterError> {
        let (tx, rx) = oneshot::channel();
        let id = uuid::Uuid::new_v4().to_string();
        let mut reg = self.inner.lock();
        let count = reg.runs.get(run).map_or(0, HashMap::len);
        if count >= QUERIES_PER_RUN_MAX {
            return Err(RegisterError::TooManyPending { max: QUERIES_PER_RUN_MAX });
        }
        let seq = reg.next_seq;
        reg.next_seq += 1;
        let phase = if dispatch_now { Phase::Dispatched } else { Phase::Waiting };
        let sticky = sticky.filter(|_| dispatch_now);
        let pending = Pending { seq, query, queue, sticky, with_worker: false, phase, reply: Some(tx) };
        let (dispatch_queue, task) = (pending.dispatch_queue().clone(), self.task_ref(run, &pending));
        reg.runs.entry(run.clone()).or_default().insert(id.clone(), pending);
        reg.by_seq.insert(seq, (run.clone(), id.clone()));
        drop(reg);
        if dispatch_now {
            self.dispatch.add(dispatch_queue, task);
        }
        Ok(QueryTicket { registry: self.clone(), run: run.clone(), id, rx })
    }

    /// Waits up to `wait` for a legacy query task on `queue`; skips tasks whose query
    /// is gone (answered, or its caller left). Cancellation-safe.
    pub async fn poll(&self, queue: &QueueKey, wait: Duration) -> Option<QueryTask> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let task = self.dispatch.poll(queue, left).await?;
            if let Some(task) = self.claim(task) {
                return Some(task);
            }
        }
    }

    /// The query a dispatched task names, if it is still this registry's and still
    /// waiting for a worker; `None` for a task to skip.
    pub fn claim(&self, task: TaskRef) -> Option<QueryTask> {
        if (task.shard, task.term) != (self.shard, self.term) {
            return None;
        }
        let mut reg = self.inner.lock();
        let (run, id) = reg.by_seq.get(&task.task_id).cloned()?;
        let pending = reg.pending_mut(&run, &id)?;
        if pending.phase != Phase::Dispatched {
            return None;
        }
        pending.with_worker = true;
        Some(QueryTask { query: pending.query.clone(), run, query_id: id, task })
    }

    /// The owner stopped: every pending query is withdrawn (its caller sees the
    /// query withdrawn and may ask again, reaching the next owner).
    pub fn retire(&self) {
        {
            let mut reg = self.inner.lock();
            reg.runs.clear();
            reg.by_seq.clear();
        }
        self.dispatch.retire_shard(self.shard, self.term);
    }

    /// Puts back a legacy query task that could not be delivered (the poller left).
    pub fn requeue(&self, task: QueryTask) {
        let mut reg = self.inner.lock();
        let live = reg.pending_mut(&task.run, &task.query_id).filter(|p| p.phase == Phase::Dispatched && p.seq == task.task.task_id);
        if let Some(pending) = live {
            pending.with_worker = false;
            let queue = pending.dispatch_queue().clone();
            drop(reg);
            self.dispatch.requeue(queue, task.task);
        }
    }

    /// Delivers a worker's answer; `false` if no such query is waiting.
    pub fn answer(&self, run: &RunKey, query_id: &str, outcome: QueryOutcome) -> bool {
        let Some(mut pending) = self.inner.lock().remove(run, query_id) else { return false };
        pending.reply.take().is_some_and(|tx| tx.send(outcome).is_ok())
    }

    /// Answers the queries attached to the workflow task started at
    /// `started_event_id` from its completion's `query_results`.
    pub fn answer_attached(&self, run: &RunKey, started_event_id: i64, results: &HashMap<String, WorkflowQueryResult>) {
        for (id, result) in results {
            let attached = {
                let mut reg = self.inner.lock();
                reg.pending_mut(run, id).is_some_and(|p| p.phase == Phase::Attached { started_event_id })
            };
            if !attached {
                continue;
            }
            match QueryOutcome::from_query_result(result) {
                Some(outcome) => {
                    self.answer(run, id, outcome);
                }
                None => tracing::warn!(?run, query_id = %id, "query result without a final result type; the query stays pending"),
            }
        }
    }

    /// Attaches every waiting query of `run` to the workflow task just started at
    /// `started_event_id`; returns them for the poll response's `queries`.
    pub fn attach(&self, run: &RunKey, started_event_id: i64) -> HashMap<String, WorkflowQuery> {
        let mut reg = self.inner.lock();
        let Some(queries) = reg.runs.get_mut(run) else { return HashMap::new() };
        queries
            .iter_mut()
            .filter(|(_, p)| p.phase == Phase::Waiting)
            .map(|(id, p)| {
                p.phase = Phase::Attached { started_event_id };
                (id.clone(), p.query.clone())
            })
            .collect()
    }

    /// A workflow task of `run` ended (completed, failed, timed out) or the run
    /// changed so that queries may move on. Unanswered attached queries wait again;
    /// if no workflow task is outstanding (`workflow_task_outstanding` false: none
    /// scheduled, or the run closed), waiting queries become legacy query tasks.
    /// Call under the workflow's lock, after the commit.
    pub fn on_workflow_task_closed(&self, run: &RunKey, workflow_task_outstanding: bool) {
        let mut to_dispatch = Vec::new();
        {
            let mut reg = self.inner.lock();
            let Some(queries) = reg.runs.get_mut(run) else { return };
            for pending in queries.values_mut() {
                if matches!(pending.phase, Phase::Attached { .. }) {
                    pending.phase = Phase::Waiting;
                }
                if !workflow_task_outstanding && pending.phase == Phase::Waiting {
                    pending.phase = Phase::Dispatched;
                    (pending.sticky, pending.with_worker) = (None, false);
                    to_dispatch.push((pending.queue.clone(), self.task_ref(run, pending)));
                }
            }
        }
        for (queue, task) in to_dispatch {
            self.dispatch.add(queue, task);
        }
    }

    /// Number of queries pending on `run` (tests, metrics).
    pub fn pending_count(&self, run: &RunKey) -> usize {
        self.inner.lock().runs.get(run).map_or(0, HashMap::len)
    }

    fn forget(&self, run: &RunKey, id: &str) {
        self.inner.lock().remove(run, id);
    }
}

impl QueryRegistry {
    /// Hands the legacy query task of every dispatched query whose queue `pick`
    /// selects to the dispatcher again (its queue's home moved to another node).
    pub fn redispatch(&self, pick: impl Fn(&QueueKey) -> bool) {
        let tasks: Vec<(QueueKey, TaskRef)> = {
            let reg = self.inner.lock();
            reg.runs
                .iter()
                .flat_map(|(run, qs)| qs.values().map(move |p| (run, p)))
                .filter(|(_, p)| p.phase == Phase::Dispatched && pick(p.dispatch_queue()))
                .map(|(run, p)| (p.dispatch_queue().clone(), self.task_ref(run, p)))
                .collect()
        };
        for (queue, task) in tasks {
            self.dispatch.add(queue, task);
        }
    }

    /// The dispatcher's handle on `pending`'s legacy task. One dispatched to a sticky
    /// queue names the normal queue, as a sticky workflow task does: matching sends it
    /// there at once when the sticky worker has not polled lately.
    fn task_ref(&self, run: &RunKey, pending: &Pending) -> TaskRef {
        let normal_queue = pending.sticky.as_ref().map(|_| pending.queue.name.clone()).unwrap_or_default();
        let payload = TaskPayload { normal_queue, ..Default::default() };
        TaskRef { shard: self.shard, term: self.term, task_id: pending.seq, run: run.clone(), payload }
    }
}

/// A registered query; dropping it withdraws the query.
pub struct QueryTicket {
    registry: QueryRegistry,
    run: RunKey,
    id: String,
    rx: oneshot::Receiver<QueryOutcome>,
}

impl QueryTicket {
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn run(&self) -> &RunKey {
        &self.run
    }

    /// Waits for the answer (cancellation-safe; poll it again after a timeout).
    pub async fn outcome(&mut self) -> Option<QueryOutcome> {
        (&mut self.rx).await.ok()
    }
}

impl Drop for QueryTicket {
    fn drop(&mut self) {
        self.registry.forget(&self.run, &self.id);
    }
}

#[cfg(test)]
mod tests {
    //! No test waits on a sleep or a short budget. Everything here is synchronous: a
    //! query becomes a legacy task in the call that decides it (`register`,
    //! `on_workflow_task_closed`), and an answer or a withdrawal settles the ticket in
    //! the call that makes it. So whether a legacy task exists is read from the
    //! registry's dispatcher ([`ready`]), and polls and outcomes are polled once by
    //! hand ([`now`]): what is not ready then is not coming.

    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use hourglass_storage::state::QueueKind;

    /// A poll's budget the tests never reach.
    const NEVER: Duration = Duration::from_secs(3_600);

    fn run() -> RunKey {
        RunKey { namespace: "ns".into(), workflow_id: "wf".into(), run_id: "r1".into() }
    }
    fn queue() -> QueueKey {
        QueueKey { namespace: "ns".into(), name: "tq".into(), kind: QueueKind::Workflow }
    }
    fn query(t: &str) -> WorkflowQuery {
        WorkflowQuery { query_type: t.into(), ..Default::default() }
    }

    /// The registry of shard 0's owner in term 1, with its own dispatcher.
    fn registry() -> QueryRegistry {
        let dispatch = Matching::default();
        dispatch.activate_shard(0, 1);
        QueryRegistry::new(0, 1, dispatch)
    }

    /// Legacy query tasks in `reg`'s dispatcher waiting for a poller, now.
    fn ready(reg: &QueryRegistry) -> usize {
        reg.dispatch.ready_len(&queue())
    }

    /// `fut` polled once, now (no time passes).
    fn now<F: Future>(fut: F) -> Poll<F::Output> {
        pin!(fut).poll(&mut Context::from_waker(Waker::noop()))
    }

    /// The legacy task a poll takes at once; `None` if the poll would wait.
    fn take(reg: &QueryRegistry) -> Option<QueryTask> {
        match now(reg.poll(&queue(), NEVER)) {
            Poll::Ready(task) => Some(task.expect("a poll with a NEVER budget answers only with a task")),
            Poll::Pending => None,
        }
    }

    /// The outcome `ticket` holds now; fails the test if it is still unsettled.
    fn settled(ticket: &mut QueryTicket) -> Option<QueryOutcome> {
        match now(ticket.outcome()) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => panic!("the ticket is still waiting"),
        }
    }

    fn sticky_queue() -> QueueKey {
        QueueKey { name: "sticky-1".into(), ..queue() }
    }

    #[tokio::test]
    async fn a_sticky_query_waits_on_the_sticky_queue_then_falls_back_to_the_normal_one() {
        let reg = registry();
        let mut ticket = reg.register_sticky(&run(), query("q"), queue(), sticky_queue()).unwrap();
        assert_eq!((ready(&reg), reg.dispatch.ready_len(&sticky_queue())), (0, 1), "on the sticky queue only");
        assert!(reg.waits_on_sticky(&run(), ticket.id()));
        assert!(reg.fall_back(&run(), ticket.id()));
        assert!(!reg.waits_on_sticky(&run(), ticket.id()));
        assert_eq!(ready(&reg), 1, "moved to the normal queue");
        assert!(now(reg.poll(&sticky_queue(), NEVER)).is_pending(), "the task left on the sticky queue is skipped");
        let task = take(&reg).expect("the normal queue's task");
        assert!(!reg.fall_back(&run(), ticket.id()), "nothing to move any more");
        assert!(reg.answer(&task.run, &task.query_id, QueryOutcome::Answered(None)));
        assert_eq!(settled(&mut ticket), Some(QueryOutcome::Answered(None)));
    }

    #[tokio::test]
    async fn a_sticky_query_a_worker_holds_does_not_fall_back() {
        let reg = registry();
        let ticket = reg.register_sticky(&run(), query("q"), queue(), sticky_queue()).unwrap();
        let Poll::Ready(Some(task)) = now(reg.poll(&sticky_queue(), NEVER)) else { panic!("the sticky worker takes it") };
        assert!(!reg.waits_on_sticky(&run(), ticket.id()) && !reg.fall_back(&run(), ticket.id()), "a worker has it");
        reg.requeue(task); // that poller went away
        assert_eq!(reg.dispatch.ready_len(&sticky_queue()), 1, "back on the sticky queue");
        assert!(reg.fall_back(&run(), ticket.id()), "nobody holds it again: it moves");
        assert_eq!(ready(&reg), 1);
    }

    #[tokio::test]
    async fn a_sticky_query_goes_to_the_normal_queue_at_once_when_the_sticky_worker_is_gone() {
        let reg = registry();
        reg.dispatch.set_polled_lately(Arc::new(|_| false));
        let _ticket = reg.register_sticky(&run(), query("q"), queue(), sticky_queue()).unwrap();
        assert_eq!((ready(&reg), reg.dispatch.ready_len(&sticky_queue())), (1, 0));
    }

    #[tokio::test]
    async fn a_retired_registry_withdraws_everything() {
        let reg = registry();
        let mut ticket = reg.register(&run(), query("q"), queue(), true).unwrap();
        assert_eq!(ready(&reg), 1, "dispatched");
        reg.retire();
        assert_eq!(settled(&mut ticket), None, "the caller sees the query withdrawn");
        assert_eq!(ready(&reg), 0, "its legacy task left the dispatcher");
        assert_eq!(reg.pending_count(&run()), 0);
    }

    #[tokio::test]
    async fn legacy_task_round_trip() {
        let reg = registry();
        let mut ticket = reg.register(&run(), query("q"), queue(), true).unwrap();
        assert!(now(ticket.outcome()).is_pending(), "not answered yet");
        let task = take(&reg).expect("dispatched as it registered");
        assert_eq!((task.run.clone(), task.query_id.as_str(), task.query.query_type.as_str()), (run(), ticket.id(), "q"));
        assert!(reg.answer(&run(), &task.query_id, QueryOutcome::Answered(None)));
        assert_eq!(settled(&mut ticket), Some(QueryOutcome::Answered(None)));
        assert!(!reg.answer(&run(), &task.query_id, QueryOutcome::Answered(None)), "answered once");
        assert_eq!(reg.pending_count(&run()), 0);
    }

    #[tokio::test]
    async fn waiting_queries_attach_then_fall_back_to_legacy_tasks() {
        let reg = registry();
        let ticket = reg.register(&run(), query("q"), queue(), false).unwrap();
        assert_eq!(ready(&reg), 0, "waits for the workflow task");
        let attached = reg.attach(&run(), 3);
        assert_eq!(attached.keys().collect::<Vec<_>>(), vec![ticket.id()]);
        assert!(reg.attach(&run(), 3).is_empty(), "attached once");
        // The task ended unanswered and another one is outstanding: wait again.
        reg.on_workflow_task_closed(&run(), true);
        assert_eq!(ready(&reg), 0, "waits for the next workflow task");
        assert_eq!(reg.attach(&run(), 7).len(), 1);
        // Ended unanswered with nothing outstanding: a legacy task.
        reg.on_workflow_task_closed(&run(), false);
        assert_eq!(ready(&reg), 1, "dispatched as the task closed");
        assert_eq!(take(&reg).expect("a legacy task").query_id, ticket.id());
    }

    #[tokio::test]
    async fn attached_answers_come_from_the_completion() {
        let reg = registry();
        let mut ticket = reg.register(&run(), query("q"), queue(), false).unwrap();
        reg.attach(&run(), 3);
        let failed =
            WorkflowQueryResult { result_type: QueryResultType::Failed as i32, error_message: "boom".into(), ..Default::default() };
        let results = HashMap::from([(ticket.id().to_string(), failed.clone())]);
        reg.answer_attached(&run(), 99, &results);
        assert_eq!(reg.pending_count(&run()), 1, "an answer for another task is ignored");
        assert!(now(ticket.outcome()).is_pending(), "not answered by it");
        reg.answer_attached(&run(), 3, &results);
        assert_eq!(settled(&mut ticket), Some(QueryOutcome::Failed("boom".into())));
    }

    #[tokio::test]
    async fn a_withdrawn_query_is_never_handed_out() {
        let reg = registry();
        let ticket = reg.register(&run(), query("q"), queue(), true).unwrap();
        drop(ticket);
        assert_eq!(reg.pending_count(&run()), 0);
        assert_eq!(ready(&reg), 1, "its task is still in the dispatcher");
        assert!(take(&reg).is_none(), "a poll skips it and waits");
        assert_eq!(ready(&reg), 0, "the poll took it out of the dispatcher");
    }

    #[tokio::test]
    async fn a_requeued_task_is_handed_out_again() {
        let reg = registry();
        let ticket = reg.register(&run(), query("q"), queue(), true).unwrap();
        let task = take(&reg).expect("dispatched");
        assert_eq!(ready(&reg), 0);
        reg.requeue(task);
        assert_eq!(ready(&reg), 1, "back in the dispatcher");
        assert_eq!(take(&reg).expect("handed out again").query_id, ticket.id());
    }

    #[test]
    fn too_many_pending_queries_are_refused() {
        let reg = registry();
        let tickets: Vec<_> = (0..QUERIES_PER_RUN_MAX).map(|_| reg.register(&run(), query("q"), queue(), false).unwrap()).collect();
        assert!(matches!(reg.register(&run(), query("q"), queue(), false), Err(RegisterError::TooManyPending { .. })));
        drop(tickets);
        assert!(reg.register(&run(), query("q"), queue(), false).is_ok());
    }

    #[test]
    fn outcomes_from_worker_results() {
        assert_eq!(
            QueryOutcome::from_result(QueryResultType::Failed as i32, None, "", Some("from failure")),
            Some(QueryOutcome::Failed("from failure".into()))
        );
        assert_eq!(
            QueryOutcome::from_result(QueryResultType::Failed as i32, None, "msg", Some("other")),
            Some(QueryOutcome::Failed("msg".into()))
        );
        assert_eq!(QueryOutcome::from_result(0, None, "", None), None);
    }
}
