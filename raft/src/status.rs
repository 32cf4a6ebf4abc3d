//! What a shard's driver publishes for callers: who leads, and whether it stopped.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

#[derive(Default)]
pub struct ShardStatus {
    leader: AtomicU64,
    stopped: Mutex<Option<String>>,
    leader_changed: tokio::sync::Notify,
}

impl ShardStatus {
    pub fn leader(&self) -> Option<u64> {
        match self.leader.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }
    pub(crate) fn set_leader(&self, id: u64) {
        if self.leader.swap(id, Ordering::AcqRel) != id {
            self.leader_changed.notify_waiters();
        }
    }
    pub fn stopped(&self) -> Option<String> {
        self.stopped.lock().clone()
    }
    pub(crate) fn set_stopped(&self, reason: String) {
        *self.stopped.lock() = Some(reason);
        self.leader.store(0, Ordering::Release);
        self.leader_changed.notify_waiters();
    }
    /// Waits until a leader is known or the shard stopped.
    pub async fn wait_for_leader(&self) -> Option<u64> {
        loop {
            let notified = self.leader_changed.notified();
            if let Some(id) = self.leader() {
                return Some(id);
            }
            if self.stopped().is_some() {
                return None;
            }
            notified.await;
        }
    }
}
