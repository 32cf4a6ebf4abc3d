//! Long-poll waiters on histories, per shard owner: a commit that appends to (or
//! closes) a run wakes every waiter of that run; an owner that stops wakes them all,
//! so they re-route to the next owner.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use hourglass_storage::state::RunKey;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Watched runs kept before dead entries are swept.
const WATCHERS_SWEEP_AT: usize = 1024;

/// Long-poll waiters by run.
#[derive(Default)]
pub struct HistoryWatchers {
    runs: Mutex<HashMap<RunKey, Weak<Notify>>>,
}

impl HistoryWatchers {
    /// The wake-up handle for `run`; keep it while waiting.
    pub fn watch(&self, run: &RunKey) -> Arc<Notify> {
        let mut runs = self.runs.lock();
        if runs.len() >= WATCHERS_SWEEP_AT {
            runs.retain(|_, w| w.strong_count() > 0);
        }
        if let Some(live) = runs.get(run).and_then(Weak::upgrade) {
            return live;
        }
        let notify = Arc::new(Notify::new());
        runs.insert(run.clone(), Arc::downgrade(&notify));
        notify
    }

    /// Wakes the waiters of `run` (after a commit to it).
    pub fn notify(&self, run: &RunKey) {
        let live = self.runs.lock().get(run).and_then(Weak::upgrade);
        if let Some(notify) = live {
            notify.notify_waiters();
        }
    }

    /// Wakes every waiter (the owner stopped: they must look again elsewhere).
    pub fn notify_all(&self) {
        let live: Vec<Arc<Notify>> = self.runs.lock().values().filter_map(Weak::upgrade).collect();
        for notify in live {
            notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::futures::Notified;

    use super::*;

    /// Polls `notified` once, now: whether it has been notified. No time passes, so
    /// "not woken" means not woken by anything done so far, not "not within a while".
    fn woken(notified: Pin<&mut Notified<'_>>) -> bool {
        notified.poll(&mut Context::from_waker(std::task::Waker::noop())) == Poll::Ready(())
    }

    #[test]
    fn watchers_wake_waiters_of_their_run_only() {
        let w = HistoryWatchers::default();
        let a = RunKey { namespace: "n".into(), workflow_id: "a".into(), run_id: "1".into() };
        let b = RunKey { workflow_id: "b".into(), ..a.clone() };
        let na = w.watch(&a);
        let notified = na.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        assert!(!woken(notified.as_mut()), "not woken before any notification");
        w.notify(&b);
        assert!(!woken(notified.as_mut()), "another run's notification does not wake it");
        w.notify(&a);
        assert!(woken(notified.as_mut()), "its run's notification wakes it");
        assert!(Arc::ptr_eq(&na, &w.watch(&a)));
    }

    #[test]
    fn dead_watch_entries_are_harmless() {
        let w = HistoryWatchers::default();
        let a = RunKey { namespace: "n".into(), workflow_id: "a".into(), run_id: "1".into() };
        drop(w.watch(&a));
        w.notify(&a);
        let again = w.watch(&a);
        assert_eq!(Arc::strong_count(&again), 1);
    }

    #[test]
    fn notify_all_wakes_every_run() {
        let w = HistoryWatchers::default();
        let a = RunKey { namespace: "n".into(), workflow_id: "a".into(), run_id: "1".into() };
        let b = RunKey { workflow_id: "b".into(), ..a.clone() };
        let (na, nb) = (w.watch(&a), w.watch(&b));
        let (on_a, on_b) = (na.notified(), nb.notified());
        tokio::pin!(on_a, on_b);
        on_a.as_mut().enable();
        on_b.as_mut().enable();
        assert!(!woken(on_a.as_mut()) && !woken(on_b.as_mut()), "not woken before any notification");
        w.notify_all();
        assert!(woken(on_a.as_mut()), "run a's waiter is woken");
        assert!(woken(on_b.as_mut()), "run b's waiter is woken");
    }
}
