//! Matching: hands backlog tasks to long-polling workers.
//!
//! The durable part of a task queue is the backlog in each shard's state machine; this
//! is the in-memory dispatch in front of it, per (namespace, queue, kind), shared by
//! every shard owner on the node and fed by their commits and, when an owner starts,
//! by its shard's backlog ([`crate::shard::ShardOwner`]). A task leaves the backlog
//! only when the transition that starts it commits, so a task given to a poller that
//! vanished is put back, never lost.
//!
//! **Ownership.** Each task carries the shard and the owner's term it was handed over
//! in. A term this node has seen end is never accepted again: when an owner stops, its
//! tasks leave the queues ([`Matching::retire_shard`]) and tasks of its term offered
//! later are dropped; the next owner hands over the shard's backlog again. A task of
//! a shard led elsewhere (handed over by its owner on another node) is accepted unless
//! its term is older than one seen here. A task is held at most once per queue (by
//! shard and task id), so handing one over again is harmless.
//!
//! **Across nodes.** On a cluster node a [`Relay`] is installed: a task of a queue
//! whose home shard another node leads goes there instead (`crate::cluster::relay` is
//! the cluster's side of it), and a task put back here after the home moved is dropped (its owner
//! hands it to the new home).
//!
//! Besides dispatch: [`pollers`] remembers who polls each queue and ends a stopping
//! worker's polls; [`rates`] measures each queue's add and dispatch rates
//! (`DescribeTaskQueue`).

pub mod pollers;
pub mod rates;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hourglass_storage::records::ShardId;
use hourglass_storage::state::{QueueKey, RunKey};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::core::tasks::TaskPayload;
use rates::TaskRate;

/// A task as matching sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRef {
    pub shard: ShardId,
    /// The term of the shard owner that handed the task to matching.
    pub term: u64,
    pub task_id: u64,
    pub run: RunKey,
    pub payload: TaskPayload,
}

/// Which of a node's two dispatchers a task belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dispatcher {
    /// Workflow and activity tasks of the shards' durable backlogs.
    Backlog,
    /// Legacy query tasks (in the memory of the owner the query was asked on).
    Query,
}

/// Where a cluster node's matching sends the tasks of queues it is not the home of.
pub trait Relay: Send + Sync {
    /// This node leads `queue`'s home shard (its matching dispatches the queue).
    fn is_home(&self, queue: &QueueKey) -> bool;
    /// Hands `task` to the node leading `queue`'s home shard, now or once one is known.
    fn send(&self, dispatcher: Dispatcher, queue: QueueKey, task: TaskRef);
}

/// Whether a queue was polled lately (`crate::matching::pollers`): for a sticky
/// queue, whether its worker is still there.
pub type PolledLately = Arc<dyn Fn(&QueueKey) -> bool + Send + Sync>;

#[derive(Clone)]
pub struct Matching {
    inner: Arc<Mutex<Inner>>,
    dispatcher: Dispatcher,
    relay: Arc<OnceLock<Arc<dyn Relay>>>,
    polled_lately: Arc<OnceLock<PolledLately>>,
}

impl Default for Matching {
    fn default() -> Self {
        Self::new(Dispatcher::Backlog)
    }
}

#[derive(Default)]
struct Inner {
    queues: HashMap<QueueKey, Queue>,
    /// Per shard, the newest owner term seen on this node and whether it is live here.
    terms: HashMap<ShardId, SeenTerm>,
    /// The server is shutting down: polls answer "nothing" at once.
    closed: bool,
}

#[derive(Clone, Copy)]
struct SeenTerm {
    term: u64,
    live: bool,
}

impl Inner {
    /// A task is accepted unless its owner's term is one this node saw end or older.
    fn accepts(&self, task: &TaskRef) -> bool {
        match self.terms.get(&task.shard) {
            None => true,
            Some(seen) => task.term > seen.term || (task.term == seen.term && seen.live),
        }
    }
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<TaskRef>,
    /// The term of every ready task, by (shard, task id): each task is held once.
    held: HashMap<(ShardId, u64), u64>,
    waiters: VecDeque<(u64, oneshot::Sender<TaskRef>)>,
    next_waiter: u64,
    /// Tasks added (not put back) and handed to polls, for their rates.
    added: TaskRate,
    dispatched: TaskRate,
}

impl Queue {
    /// Hands `task` to the oldest waiter still listening; gives it back if none is.
    fn offer(&mut self, mut task: TaskRef) -> Option<TaskRef> {
        while let Some((_, tx)) = self.waiters.pop_front() {
            match tx.send(task) {
                Ok(()) => {
                    self.dispatched.record(tokio::time::Instant::now());
                    return None;
                }
                Err(back) => task = back,
            }
        }
        Some(task)
    }

    /// Keeps `task` ready (at the head or the tail); a task already held is kept once,
    /// under the newer of the two terms.
    fn keep(&mut self, task: TaskRef, at_head: bool) {
        let key = (task.shard, task.task_id);
        match self.held.get(&key).copied() {
            Some(term) if term >= task.term => {}
            Some(_) => {
                self.held.insert(key, task.term);
                if let Some(old) = self.ready.iter_mut().find(|t| (t.shard, t.task_id) == key) {
                    *old = task;
                }
            }
            None => {
                self.held.insert(key, task.term);
                if at_head {
                    self.ready.push_front(task);
                } else {
                    self.ready.push_back(task);
                }
            }
        }
    }

    /// Hands `task` to a waiter, or keeps it ready. A task not put back (`at_head`)
    /// and not held already counts as added.
    fn put(&mut self, task: TaskRef, at_head: bool) {
        if self.held.contains_key(&(task.shard, task.task_id)) {
            self.keep(task, at_head);
            return;
        }
        if !at_head {
            self.added.record(tokio::time::Instant::now());
        }
        if let Some(task) = self.offer(task) {
            self.keep(task, at_head);
        }
    }

    fn take(&mut self) -> Option<TaskRef> {
        let task = self.ready.pop_front()?;
        self.held.remove(&(task.shard, task.task_id));
        self.dispatched.record(tokio::time::Instant::now());
        Some(task)
    }

    fn retain(&mut self, keep: impl Fn(&TaskRef) -> bool) {
        let held = &mut self.held;
        self.ready.retain(|t| {
            let kept = keep(t);
            if !kept {
                held.remove(&(t.shard, t.task_id));
            }
            kept
        });
    }
}

impl Matching {
    pub fn new(dispatcher: Dispatcher) -> Self {
        Self { inner: Arc::default(), dispatcher, relay: Arc::default(), polled_lately: Arc::default() }
    }

    /// Installs the check of sticky queues' workers (once; later calls are ignored).
    /// Without it every sticky queue counts as polled.
    pub fn set_polled_lately(&self, polled_lately: PolledLately) {
        let _ = self.polled_lately.set(polled_lately);
    }

    /// Installs the cluster's relay (once; later calls are ignored).
    pub fn set_relay(&self, relay: Arc<dyn Relay>) {
        let _ = self.relay.set(relay);
    }

    /// The relay, when this node has peers and `queue`'s home is another node.
    fn relay_elsewhere(&self, queue: &QueueKey) -> Option<&Arc<dyn Relay>> {
        self.relay.get().filter(|r| !r.is_home(queue))
    }

    /// A new owner of `shard` serves `term`: from now on only its tasks are accepted.
    pub fn activate_shard(&self, shard: ShardId, term: u64) {
        let mut inner = self.inner.lock();
        inner.terms.insert(shard, SeenTerm { term, live: true });
        for q in inner.queues.values_mut() {
            q.retain(|t| t.shard != shard || t.term == term);
        }
    }

    /// The owner of `shard` for `term` stopped: its tasks leave every queue (they stay
    /// in the shard's durable backlog for the next owner).
    pub fn retire_shard(&self, shard: ShardId, term: u64) {
        let mut inner = self.inner.lock();
        let seen = inner.terms.entry(shard).or_insert(SeenTerm { term, live: false });
        if seen.term <= term {
            *seen = SeenTerm { term, live: false };
        }
        for q in inner.queues.values_mut() {
            q.retain(|t| t.shard != shard || t.term != term);
        }
    }

    /// Offers a task to the oldest live waiter, or keeps it ready (at the tail). On a
    /// cluster node a task of a queue homed elsewhere goes to its home instead. A task
    /// of a term this node saw end is dropped.
    pub fn add(&self, queue: QueueKey, task: TaskRef) {
        match self.relay_elsewhere(&queue) {
            Some(relay) => relay.send(self.dispatcher, queue, task),
            None => self.add_here(queue, task),
        }
    }

    /// [`Self::add`] on this node, whatever the queue's home (a task handed over by
    /// a peer, or by the relay once it found this node to be the home).
    ///
    /// A workflow task of a sticky queue nobody waits on nor polled lately goes to its
    /// run's normal queue instead (Go's matching answers `StickyWorkerUnavailable` and
    /// history pushes the task to the normal queue): its worker is gone.
    pub fn add_here(&self, queue: QueueKey, task: TaskRef) {
        let mut inner = self.inner.lock();
        if !inner.accepts(&task) {
            return;
        }
        let normal = &task.payload.normal_queue;
        if !normal.is_empty() && *normal != queue.name {
            let waited_on = inner.queues.get(&queue).is_some_and(|q| q.waiters.iter().any(|(_, tx)| !tx.is_closed()));
            let polled = waited_on || self.polled_lately.get().is_none_or(|polled_lately| polled_lately(&queue));
            if !polled {
                drop(inner);
                let normal = QueueKey { name: normal.clone(), ..queue };
                tracing::debug!(queue = ?normal, task_id = task.task_id, "sticky worker gone; workflow task sent to the normal queue");
                return self.add(normal, task);
            }
        }
        inner.queues.entry(queue).or_default().put(task, false);
    }

    /// Puts a task taken by a poll back: to a live waiter, or at the head of the queue
    /// (dropped if its owner's term ended meanwhile, or if the queue's home moved to
    /// another node: the task's owner hands it to the new home).
    pub fn requeue(&self, queue: QueueKey, task: TaskRef) {
        if self.relay_elsewhere(&queue).is_some() {
            return;
        }
        let mut inner = self.inner.lock();
        if !inner.accepts(&task) {
            return;
        }
        inner.queues.entry(queue).or_default().put(task, true);
    }

    /// Drops the ready tasks of every queue whose home is not this node (it stopped
    /// leading their home shard: the tasks' owners hand them to the new home).
    pub fn drop_foreign_queues(&self, is_home: impl Fn(&QueueKey) -> bool) {
        let mut inner = self.inner.lock();
        for (key, q) in inner.queues.iter_mut() {
            if !is_home(key) {
                q.retain(|_| false);
            }
        }
    }

    /// Waits up to `wait` for a task. Cancellation-safe: if the caller goes away, its
    /// waiter is removed, and a task already handed to it is put back.
    pub async fn poll(&self, queue: &QueueKey, wait: Duration) -> Option<TaskRef> {
        let (id, rx) = {
            let mut inner = self.inner.lock();
            if inner.closed {
                return None;
            }
            let q = inner.queues.entry(queue.clone()).or_default();
            if let Some(task) = q.take() {
                return Some(task);
            }
            let (tx, rx) = oneshot::channel();
            let id = q.next_waiter;
            q.next_waiter += 1;
            q.waiters.push_back((id, tx));
            (id, rx)
        };
        let mut guard = WaiterGuard { matching: self, queue, id, rx: Some(rx) };
        let rx = guard.rx.as_mut().expect("set above");
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(task)) => {
                guard.rx = None;
                Some(task)
            }
            _ => None,
        }
    }

    /// The server is shutting down: every waiting poll answers "nothing" now and every
    /// later poll at once, so long polls end and their connections drain within the
    /// shutdown's grace period (the tasks stay in their shards' durable backlogs).
    pub fn close(&self) {
        let mut inner = self.inner.lock();
        inner.closed = true;
        for q in inner.queues.values_mut() {
            q.waiters.clear();
        }
    }

    /// Holds `task`, taken from `queue` by a poll, until its fate is decided.
    pub fn hold<'a>(&'a self, queue: &'a QueueKey, task: TaskRef) -> Held<'a> {
        Held { matching: self, queue, task: Some(task) }
    }

    /// Tasks ready (not yet handed out) in `queue`.
    pub fn ready_len(&self, queue: &QueueKey) -> usize {
        self.inner.lock().queues.get(queue).map_or(0, |q| q.ready.len())
    }

    /// `queue`'s tasks added and handed to polls per second, over the last
    /// [`rates::WINDOW`] (zero for a queue this node never dispatched).
    pub fn rates(&self, queue: &QueueKey) -> QueueRates {
        self.rates_at(queue, tokio::time::Instant::now())
    }

    fn rates_at(&self, queue: &QueueKey, now: tokio::time::Instant) -> QueueRates {
        let mut inner = self.inner.lock();
        match inner.queues.get_mut(queue) {
            Some(q) => QueueRates { added_per_second: q.added.per_second(now), dispatched_per_second: q.dispatched.per_second(now) },
            None => QueueRates::default(),
        }
    }

    /// Closes `queue`: every poll waiting on it answers "nothing" now, and its ready
    /// tasks are returned (they must go elsewhere: they stay in their shards'
    /// backlogs, but matching forgets them). The hook for dropping a sticky queue
    /// whose worker shut down; a later poll opens the queue afresh.
    pub fn close_queue(&self, queue: &QueueKey) -> Vec<TaskRef> {
        let removed = self.inner.lock().queues.remove(queue);
        // Dropping the waiters' senders (outside the lock) wakes their polls empty.
        removed.map(|q| q.ready.into_iter().collect()).unwrap_or_default()
    }
}

/// A queue's rates ([`Matching::rates`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueRates {
    pub added_per_second: f32,
    pub dispatched_per_second: f32,
}

/// A task taken from matching for a poll: given back (to the head of its queue) if
/// dropped before its fate is decided ([`Held::release`]).
pub struct Held<'a> {
    matching: &'a Matching,
    queue: &'a QueueKey,
    task: Option<TaskRef>,
}

impl Held<'_> {
    /// The task's fate is decided (started, skipped as stale, or left aside).
    pub fn release(&mut self) {
        self.task = None;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.matching.requeue(self.queue.clone(), task);
        }
    }
}

struct WaiterGuard<'a> {
    matching: &'a Matching,
    queue: &'a QueueKey,
    id: u64,
    rx: Option<oneshot::Receiver<TaskRef>>,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        rx.close();
        if let Ok(task) = rx.try_recv() {
            self.matching.requeue(self.queue.clone(), task);
            return;
        }
        let mut inner = self.matching.inner.lock();
        if let Some(q) = inner.queues.get_mut(self.queue) {
            q.waiters.retain(|(id, _)| *id != self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    //! No test waits on a sleep or a short budget: a poll the test expects to wait is
    //! polled once by hand ([`first_poll`]), and whether it registered as a waiter, or
    //! was woken, is read from matching itself; dispatch is synchronous, so once `add`
    //! returned there is nothing later to wait for.

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;
    use hourglass_storage::state::QueueKind;

    /// A poll's budget the tests never reach: only a task (or the poll's cancellation)
    /// ends a poll.
    const NEVER: Duration = Duration::from_secs(3_600);

    fn queue() -> QueueKey {
        QueueKey { namespace: "ns".into(), name: "tq".into(), kind: QueueKind::Workflow }
    }

    fn task(id: u64) -> TaskRef {
        TaskRef {
            shard: 0,
            term: 1,
            task_id: id,
            run: RunKey { namespace: "ns".into(), workflow_id: "w".into(), run_id: "r".into() },
            payload: TaskPayload::default(),
        }
    }

    /// Matching with shard 0 served in term 1.
    fn live() -> Matching {
        let m = Matching::default();
        m.activate_shard(0, 1);
        m
    }

    /// Pollers waiting on the test's queue, now.
    fn waiters(m: &Matching) -> usize {
        m.inner.lock().queues.get(&queue()).map_or(0, |q| q.waiters.len())
    }

    /// A waker that records that it was woken.
    #[derive(Default)]
    struct WokenFlag(AtomicBool);

    impl Wake for WokenFlag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl WokenFlag {
        fn woken(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    type PollFuture<'a> = Pin<Box<dyn Future<Output = Option<TaskRef>> + 'a>>;

    /// A poll of the test's queue with a [`NEVER`] budget, polled once by hand (no time
    /// passes) with a waker that records its wake-up.
    fn first_poll(m: &Matching) -> (PollFuture<'_>, Poll<Option<TaskRef>>, Arc<WokenFlag>) {
        let mut fut: PollFuture<'_> = Box::pin(async move { m.poll(&queue(), NEVER).await });
        let flag = Arc::new(WokenFlag::default());
        let polled = fut.as_mut().poll(&mut Context::from_waker(&Waker::from(flag.clone())));
        (fut, polled, flag)
    }

    /// Polls `fut` once more, now.
    fn poll_again(fut: &mut PollFuture<'_>) -> Poll<Option<TaskRef>> {
        fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    /// The next ready task of the test's queue, taken without waiting.
    fn take(m: &Matching) -> u64 {
        match first_poll(m).1 {
            Poll::Ready(Some(task)) => task.task_id,
            other => panic!("a ready task is handed out at once, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn tasks_of_an_ended_term_leave_and_stay_out() {
        let m = live();
        m.add(queue(), task(1));
        m.retire_shard(0, 1);
        assert_eq!(m.ready_len(&queue()), 0, "the stopped owner's tasks left the queue");
        m.add(queue(), task(2));
        assert_eq!(m.ready_len(&queue()), 0, "a late task of the ended term is dropped");
        m.activate_shard(0, 2);
        m.requeue(queue(), task(3));
        assert_eq!(m.ready_len(&queue()), 0, "a term-1 task handed back after term 2 began is dropped");
        m.add(queue(), TaskRef { term: 2, ..task(4) });
        assert_eq!(take(&m), 4);
    }

    #[tokio::test]
    async fn closing_ends_waiting_polls_and_answers_later_ones_at_once() {
        let m = live();
        let (mut poll, first, flag) = first_poll(&m);
        assert!(first.is_pending(), "nothing ready: the poll waits");
        m.close();
        assert!(flag.woken(), "closing woke the waiting poll");
        assert_eq!(poll_again(&mut poll), Poll::Ready(None), "it answers nothing");
        assert_eq!(waiters(&m), 0);
        m.add(queue(), task(1));
        assert_eq!(first_poll(&m).1, Poll::Ready(None), "a poll after closing answers at once, even with a task ready");
    }

    #[tokio::test]
    async fn ready_tasks_go_first_in_order() {
        let m = live();
        m.add(queue(), task(1));
        m.add(queue(), task(2));
        assert_eq!(take(&m), 1);
        assert_eq!(take(&m), 2);
        assert_eq!(m.ready_len(&queue()), 0, "both handed out, nothing left");
    }

    #[tokio::test]
    async fn a_waiting_poller_gets_a_new_task() {
        let m = live();
        let (mut poll, first, flag) = first_poll(&m);
        assert!(first.is_pending(), "nothing ready: the poll waits");
        assert_eq!(waiters(&m), 1, "as a waiter of the queue");
        m.add(queue(), task(7));
        assert!(flag.woken(), "the new task woke the waiting poll");
        assert_eq!(m.ready_len(&queue()), 0, "handed to the waiter, not kept ready");
        assert_eq!(waiters(&m), 0);
        assert_eq!(poll_again(&mut poll), Poll::Ready(Some(task(7))));
    }

    #[tokio::test]
    async fn a_cancelled_poll_loses_no_task() {
        let m = live();
        // Cancelled while waiting: its waiter leaves the queue, a later task is kept.
        let (poll, first, _) = first_poll(&m);
        assert!(first.is_pending());
        assert_eq!(waiters(&m), 1);
        drop(poll);
        assert_eq!(waiters(&m), 0, "the dead waiter was removed");
        m.add(queue(), task(9));
        assert_eq!(m.ready_len(&queue()), 1, "the task is kept");
        assert_eq!(take(&m), 9);

        // Cancelled after a task was handed to it, before it took it: the task goes
        // back, at the head of the queue.
        let (poll, first, flag) = first_poll(&m);
        assert!(first.is_pending());
        m.add(queue(), task(10));
        assert!(flag.woken(), "the task went to the waiting poll");
        assert_eq!(m.ready_len(&queue()), 0);
        m.add(queue(), task(11));
        drop(poll);
        assert_eq!(m.ready_len(&queue()), 2, "the handed-over task is back");
        assert_eq!(take(&m), 10, "at the head");
        assert_eq!(take(&m), 11);
    }

    #[tokio::test]
    async fn a_task_is_held_once_under_its_newest_term() {
        let m = live();
        m.add(queue(), task(1));
        m.add(queue(), task(1));
        m.requeue(queue(), task(1));
        assert_eq!(m.ready_len(&queue()), 1, "handed over three times, held once");
        m.add(queue(), TaskRef { term: 2, ..task(1) });
        assert_eq!(m.ready_len(&queue()), 1);
        match first_poll(&m).1 {
            Poll::Ready(Some(t)) => assert_eq!((t.task_id, t.term), (1, 2), "kept under the newer term"),
            other => panic!("a ready task, got {other:?}"),
        }
        m.add(queue(), task(1));
        assert_eq!(take(&m), 1, "once taken, the task may be handed over again");
    }

    #[tokio::test]
    async fn tasks_of_shards_led_elsewhere_are_taken_unless_their_term_ended_here() {
        let m = Matching::default();
        m.add(queue(), TaskRef { shard: 5, term: 3, ..task(1) });
        assert_eq!(m.ready_len(&queue()), 1, "a shard never led here: its owner elsewhere handed the task over");
        m.activate_shard(5, 4);
        assert_eq!(m.ready_len(&queue()), 0, "a newer owner here: the older term's task left");
        m.retire_shard(5, 4);
        m.add(queue(), TaskRef { shard: 5, term: 4, ..task(2) });
        m.add(queue(), TaskRef { shard: 5, term: 3, ..task(3) });
        assert_eq!(m.ready_len(&queue()), 0, "terms that ended here are refused");
        m.add(queue(), TaskRef { shard: 5, term: 6, ..task(4) });
        assert_eq!(take(&m), 4, "a newer term, led elsewhere now, is taken");
    }

    #[tokio::test]
    async fn closing_a_queue_wakes_its_polls_empty_and_hands_back_its_tasks() {
        let m = live();
        let (mut poll, first, flag) = first_poll(&m);
        assert!(first.is_pending());
        assert!(m.close_queue(&queue()).is_empty(), "nothing was ready");
        assert!(flag.woken(), "the waiting poll was woken");
        assert_eq!(poll_again(&mut poll), Poll::Ready(None), "and answers nothing");
        m.add(queue(), task(1));
        m.add(queue(), task(2));
        let back: Vec<u64> = m.close_queue(&queue()).into_iter().map(|t| t.task_id).collect();
        assert_eq!(back, [1, 2], "the ready tasks come back in order");
        assert_eq!(m.ready_len(&queue()), 0);
        m.add(queue(), task(3));
        assert_eq!(take(&m), 3, "a closed queue opens again on use");
    }

    #[tokio::test]
    async fn adds_and_hand_outs_are_counted_for_the_rates() {
        let m = live();
        assert_eq!(m.rates(&queue()), QueueRates::default(), "a queue never used");
        m.add(queue(), task(1));
        m.add(queue(), task(1));
        m.add(queue(), task(2));
        m.requeue(queue(), task(3));
        assert_eq!(take(&m), 3, "the task put back went to the head");
        let rates = m.rates_at(&queue(), tokio::time::Instant::now() + Duration::from_secs(2));
        let near = |a: f32, b: f32| (a - b).abs() < 0.01;
        assert!(near(rates.added_per_second, 1.0), "two tasks added in 2 s (a repeat and a task put back are not adds): {rates:?}");
        assert!(near(rates.dispatched_per_second, 0.5), "one handed out in 2 s: {rates:?}");
    }

    /// A relay that records what it was sent; `home` says whether this node is home.
    #[derive(Default)]
    struct FakeRelay {
        home: AtomicBool,
        sent: parking_lot::Mutex<Vec<(Dispatcher, u64)>>,
    }

    impl Relay for FakeRelay {
        fn is_home(&self, _queue: &QueueKey) -> bool {
            self.home.load(Ordering::SeqCst)
        }
        fn send(&self, dispatcher: Dispatcher, _queue: QueueKey, task: TaskRef) {
            self.sent.lock().push((dispatcher, task.task_id));
        }
    }

    #[tokio::test]
    async fn tasks_of_queues_homed_elsewhere_go_to_the_relay_and_are_not_put_back_here() {
        let m = live();
        let relay = Arc::new(FakeRelay::default());
        m.set_relay(relay.clone());
        m.add(queue(), task(1));
        assert_eq!(*relay.sent.lock(), vec![(Dispatcher::Backlog, 1)], "sent to the home");
        assert_eq!(m.ready_len(&queue()), 0);
        m.add_here(queue(), task(2));
        assert_eq!(m.ready_len(&queue()), 1, "a task handed over by a peer is kept");
        m.requeue(queue(), task(3));
        assert_eq!(m.ready_len(&queue()), 1, "a task put back after the home moved is dropped");
        m.drop_foreign_queues(|_| false);
        assert_eq!(m.ready_len(&queue()), 0, "the home moved: its ready tasks left");
        relay.home.store(true, Ordering::SeqCst);
        m.add(queue(), task(4));
        assert_eq!(take(&m), 4, "home again: dispatched here");
    }
}
