//! Who polls: per task queue, the pollers seen lately (what `DescribeTaskQueue`
//! reports), and each worker's outstanding polls (what `ShutdownWorker` ends).
//!
//! As Temporal's matching does: a poller is remembered by identity, per task queue and
//! kind, with the time its latest poll began, the rate limit it asked for and the
//! versioning it declared, and forgotten [`POLLER_HISTORY_TTL_MS`] after that poll
//! (or when its worker shuts down). A poll that carries a worker instance key can be
//! ended by that worker's shutdown: it answers empty at once, and so does every poll
//! of that worker for [`SHUT_DOWN_WORKER_TTL_MS`] afterwards (a poll already on its way
//! must not take a task the stopping worker will never run).
//!
//! Time is the engine's clock (ms since the epoch), passed in by the callers.

use std::collections::HashMap;
use std::sync::Arc;

use hourglass_storage::state::QueueKey;
use parking_lot::Mutex;
use temporalio_protos::protos::temporal::api::common::v1::WorkerVersionCapabilities;
use temporalio_protos::protos::temporal::api::deployment::v1::WorkerDeploymentOptions;
use tokio::sync::oneshot;

/// How long a poller is remembered after its latest poll began (Temporal's
/// `matching.pollerHistoryTTL`).
pub const POLLER_HISTORY_TTL_MS: i64 = 5 * 60 * 1000;
/// Most pollers remembered per task queue and kind (the oldest go first).
pub const POLLERS_PER_QUEUE_MAX: usize = 1000;
/// How long polls of a worker that shut down answer empty at once (Temporal's
/// `shutdownWorkersCacheTTL`).
pub const SHUT_DOWN_WORKER_TTL_MS: i64 = 30_000;
/// The rate a poller reports when it set none (Temporal's `defaultTaskDispatchRPS`).
pub const DEFAULT_POLLER_RATE_PER_SECOND: f64 = 100_000.0;
/// Expired entries are swept at most this often (besides when a queue is read).
const SWEEP_INTERVAL_MS: i64 = 60_000;

/// What a poll says about its poller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollerMeta {
    pub identity: String,
    /// The worker instance the poll belongs to (empty: it cannot be ended by a
    /// shutdown).
    pub worker_instance_key: String,
    /// `max_tasks_per_second` of an activity poll, when set.
    pub rate_per_second: Option<f64>,
    pub worker_version_capabilities: Option<WorkerVersionCapabilities>,
    pub deployment_options: Option<WorkerDeploymentOptions>,
}

/// A poller as `DescribeTaskQueue` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PollerSeen {
    pub identity: String,
    /// When its latest poll began (ms since the epoch).
    pub last_access_ms: i64,
    pub rate_per_second: f64,
    pub worker_version_capabilities: Option<WorkerVersionCapabilities>,
    pub deployment_options: Option<WorkerDeploymentOptions>,
}

/// The pollers of a node's task queues and their outstanding polls (cheap to clone).
#[derive(Clone, Default)]
pub struct Pollers {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// Per queue, per identity.
    seen: HashMap<QueueKey, HashMap<String, PollerSeen>>,
    /// Per worker instance key, its outstanding polls: ending one drops its sender.
    outstanding: HashMap<String, HashMap<u64, oneshot::Sender<()>>>,
    /// Worker instance keys that shut down, until when their polls answer empty.
    shut_down: HashMap<String, i64>,
    next_poll: u64,
    last_sweep_ms: i64,
}

impl Inner {
    fn sweep(&mut self, now_ms: i64) {
        self.last_sweep_ms = now_ms;
        let oldest = now_ms - POLLER_HISTORY_TTL_MS;
        self.seen.retain(|_, pollers| {
            pollers.retain(|_, p| p.last_access_ms > oldest);
            !pollers.is_empty()
        });
        self.shut_down.retain(|_, until| *until > now_ms);
    }

    fn is_shut_down(&self, worker_instance_key: &str, now_ms: i64) -> bool {
        !worker_instance_key.is_empty() && self.shut_down.get(worker_instance_key).is_some_and(|until| *until > now_ms)
    }
}

impl Pollers {
    /// A poll of `queue` begins at `now_ms`: its poller is remembered, and the poll
    /// registered under its worker. `None` when that worker shut down lately: the poll
    /// must answer empty at once.
    pub fn begin(&self, queue: &QueueKey, meta: PollerMeta, now_ms: i64) -> Option<PollTicket> {
        let mut inner = self.inner.lock();
        if now_ms - inner.last_sweep_ms >= SWEEP_INTERVAL_MS {
            inner.sweep(now_ms);
        }
        if inner.is_shut_down(&meta.worker_instance_key, now_ms) {
            return None;
        }
        let pollers = inner.seen.entry(queue.clone()).or_default();
        if pollers.len() >= POLLERS_PER_QUEUE_MAX && !pollers.contains_key(&meta.identity) {
            if let Some(oldest) = pollers.values().min_by_key(|p| p.last_access_ms).map(|p| p.identity.clone()) {
                pollers.remove(&oldest);
            }
        }
        pollers.insert(
            meta.identity.clone(),
            PollerSeen {
                identity: meta.identity,
                last_access_ms: now_ms,
                rate_per_second: meta.rate_per_second.unwrap_or(DEFAULT_POLLER_RATE_PER_SECOND),
                worker_version_capabilities: meta.worker_version_capabilities,
                deployment_options: meta.deployment_options,
            },
        );
        if meta.worker_instance_key.is_empty() {
            return Some(PollTicket { pollers: self.clone(), worker_instance_key: String::new(), id: 0, ended: None });
        }
        let id = inner.next_poll;
        inner.next_poll += 1;
        let (tx, rx) = oneshot::channel();
        inner.outstanding.entry(meta.worker_instance_key.clone()).or_default().insert(id, tx);
        Some(PollTicket { pollers: self.clone(), worker_instance_key: meta.worker_instance_key, id, ended: Some(rx) })
    }

    /// Worker `worker_instance_key` (identity `identity`) shuts down at `now_ms`: its
    /// outstanding polls end, its later polls answer empty for a while, and `identity`
    /// is forgotten as a poller of `queues`. Returns how many polls it ended.
    pub fn shut_down_worker(&self, worker_instance_key: &str, identity: &str, queues: &[QueueKey], now_ms: i64) -> usize {
        let mut inner = self.inner.lock();
        if !identity.is_empty() {
            for queue in queues {
                if let Some(pollers) = inner.seen.get_mut(queue) {
                    pollers.remove(identity);
                    if pollers.is_empty() {
                        inner.seen.remove(queue);
                    }
                }
            }
        }
        if worker_instance_key.is_empty() {
            return 0;
        }
        inner.shut_down.insert(worker_instance_key.to_string(), now_ms + SHUT_DOWN_WORKER_TTL_MS);
        // Dropping the senders ends the polls.
        inner.outstanding.remove(worker_instance_key).map_or(0, |polls| polls.len())
    }

    /// Forgets every poller of `queue` (a sticky queue dropped with its worker).
    pub fn forget_queue(&self, queue: &QueueKey) {
        self.inner.lock().seen.remove(queue);
    }

    /// The pollers of `queue` seen in the last [`POLLER_HISTORY_TTL_MS`], the most
    /// recent first.
    pub fn seen(&self, queue: &QueueKey, now_ms: i64) -> Vec<PollerSeen> {
        let oldest = now_ms - POLLER_HISTORY_TTL_MS;
        let mut inner = self.inner.lock();
        let Some(pollers) = inner.seen.get_mut(queue) else { return Vec::new() };
        pollers.retain(|_, p| p.last_access_ms > oldest);
        let mut seen: Vec<PollerSeen> = pollers.values().cloned().collect();
        if seen.is_empty() {
            inner.seen.remove(queue);
        }
        seen.sort_by(|a, b| b.last_access_ms.cmp(&a.last_access_ms).then_with(|| a.identity.cmp(&b.identity)));
        seen
    }

    /// Some poll of `queue` began after `since_ms` (for sticky dispatch: is the
    /// sticky worker still there?).
    pub fn polled_since(&self, queue: &QueueKey, since_ms: i64) -> bool {
        self.inner.lock().seen.get(queue).is_some_and(|pollers| pollers.values().any(|p| p.last_access_ms > since_ms))
    }

    /// Polls outstanding for `worker_instance_key`, now.
    pub fn outstanding(&self, worker_instance_key: &str) -> usize {
        self.inner.lock().outstanding.get(worker_instance_key).map_or(0, HashMap::len)
    }
}

/// An outstanding poll, registered under its worker until dropped.
pub struct PollTicket {
    pollers: Pollers,
    worker_instance_key: String,
    id: u64,
    /// Resolves when the worker shuts down (`None`: the poll named no worker).
    ended: Option<oneshot::Receiver<()>>,
}

impl PollTicket {
    /// Resolves when the poll's worker shuts down (never for a poll that named none).
    /// Cancellation-safe: awaiting it again after a cancelled await is fine.
    pub async fn ended(&mut self) {
        match self.ended.as_mut() {
            // The sender is only ever dropped (never used): either way the worker shut down.
            Some(rx) => {
                let _ = rx.await;
                self.ended = None;
            }
            None if self.worker_instance_key.is_empty() => std::future::pending().await,
            // Already ended once.
            None => {}
        }
    }
}

impl Drop for PollTicket {
    fn drop(&mut self) {
        if self.worker_instance_key.is_empty() {
            return;
        }
        let mut inner = self.pollers.inner.lock();
        if let Some(polls) = inner.outstanding.get_mut(&self.worker_instance_key) {
            polls.remove(&self.id);
            if polls.is_empty() {
                inner.outstanding.remove(&self.worker_instance_key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    use super::*;
    use hourglass_storage::state::QueueKind;

    fn queue(kind: QueueKind) -> QueueKey {
        QueueKey { namespace: "ns".into(), name: "tq".into(), kind }
    }

    fn meta(identity: &str, worker: &str) -> PollerMeta {
        PollerMeta { identity: identity.into(), worker_instance_key: worker.into(), ..Default::default() }
    }

    fn is_ready(fut: impl Future<Output = ()>) -> bool {
        let mut fut = pin!(fut);
        fut.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_ready()
    }

    #[test]
    fn pollers_are_remembered_per_queue_and_kind_by_identity_until_they_expire() {
        let p = Pollers::default();
        let wf = queue(QueueKind::Workflow);
        let act = queue(QueueKind::Activity);
        drop(p.begin(&wf, meta("a", ""), 1_000));
        drop(p.begin(&wf, PollerMeta { rate_per_second: Some(5.0), ..meta("b", "") }, 2_000));
        drop(p.begin(&wf, meta("a", ""), 3_000));
        drop(p.begin(&act, meta("c", ""), 3_000));
        let seen = p.seen(&wf, 4_000);
        assert_eq!(seen.iter().map(|s| (s.identity.as_str(), s.last_access_ms)).collect::<Vec<_>>(), [("a", 3_000), ("b", 2_000)]);
        assert_eq!(seen[0].rate_per_second, DEFAULT_POLLER_RATE_PER_SECOND, "no rate set: Temporal's default");
        assert_eq!(seen[1].rate_per_second, 5.0);
        assert_eq!(p.seen(&act, 4_000).len(), 1, "each kind has its own pollers");
        assert_eq!(p.seen(&wf, 2_000 + POLLER_HISTORY_TTL_MS).len(), 1, "b expired, a polled later");
        assert!(p.seen(&wf, 3_000 + POLLER_HISTORY_TTL_MS).is_empty(), "both expired");
        assert!(p.polled_since(&act, 2_999) && !p.polled_since(&act, 3_000));
    }

    #[test]
    fn a_shut_down_worker_ends_its_polls_and_later_ones_and_is_forgotten() {
        let p = Pollers::default();
        let wf = queue(QueueKind::Workflow);
        let mut one = p.begin(&wf, meta("w1", "key-1"), 1_000).expect("registered");
        let mut other = p.begin(&wf, meta("w2", "key-2"), 1_000).expect("registered");
        assert!(!is_ready(one.ended()), "nothing ended yet");
        assert_eq!(p.outstanding("key-1"), 1);
        assert_eq!(p.shut_down_worker("key-1", "w1", std::slice::from_ref(&wf), 2_000), 1, "one poll ended");
        assert!(is_ready(one.ended()), "the worker's poll ended");
        assert!(!is_ready(other.ended()), "another worker's poll did not");
        assert_eq!(p.seen(&wf, 2_000).iter().map(|s| s.identity.as_str()).collect::<Vec<_>>(), ["w2"], "w1 was forgotten");
        assert!(p.begin(&wf, meta("w1", "key-1"), 2_500).is_none(), "a later poll of the worker answers at once");
        assert!(p.begin(&wf, meta("w1", "key-1"), 2_000 + SHUT_DOWN_WORKER_TTL_MS).is_some(), "until the mark expires");
        drop(other);
        assert_eq!(p.outstanding("key-2"), 0, "a finished poll leaves its worker");
    }

    #[test]
    fn a_poll_without_a_worker_key_is_never_ended() {
        let p = Pollers::default();
        let mut t = p.begin(&queue(QueueKind::Activity), meta("x", ""), 0).expect("registered");
        assert_eq!(p.shut_down_worker("", "x", &[], 1), 0);
        assert!(!is_ready(t.ended()));
    }

    #[test]
    fn a_queue_remembers_at_most_its_limit_of_pollers() {
        let p = Pollers::default();
        let wf = queue(QueueKind::Workflow);
        for i in 0..=POLLERS_PER_QUEUE_MAX as i64 {
            drop(p.begin(&wf, meta(&format!("p{i}"), ""), 1_000 + i));
        }
        let seen = p.seen(&wf, 5_000);
        assert_eq!(seen.len(), POLLERS_PER_QUEUE_MAX);
        assert!(seen.iter().all(|s| s.identity != "p0"), "the oldest went");
        p.forget_queue(&wf);
        assert!(p.seen(&wf, 5_000).is_empty());
    }
}
