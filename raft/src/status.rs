//! What a shard's driver publishes for callers: who leads in which term, whether this
//! node may serve as that leader yet, and whether the driver stopped.

use parking_lot::Mutex;
use tokio::sync::watch;

/// One shard's leadership as this node's driver sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leadership {
    /// The leader's node id; 0 when none is known.
    pub leader_id: u64,
    /// The Raft term this view belongs to.
    pub term: u64,
    /// This node leads `term` **and** has applied every entry committed before the
    /// term began (its own first entry of the term is applied), so state read from
    /// the shard is complete: work that only the leader may do can start.
    pub serving: bool,
}

pub struct ShardStatus {
    leadership: watch::Sender<Leadership>,
    stopped: Mutex<Option<String>>,
    /// (voters, learners) as last applied.
    members: Mutex<(Vec<u64>, Vec<u64>)>,
}

impl Default for ShardStatus {
    fn default() -> Self {
        Self {
            leadership: watch::Sender::new(Leadership::default()),
            stopped: Mutex::new(None),
            members: Mutex::new((Vec::new(), Vec::new())),
        }
    }
}

impl ShardStatus {
    /// The group's voters as last applied.
    pub fn voters(&self) -> Vec<u64> {
        self.members.lock().0.clone()
    }
    /// The group's learners as last applied.
    pub fn learners(&self) -> Vec<u64> {
        self.members.lock().1.clone()
    }
    pub(crate) fn set_members(&self, conf: &raft::eraftpb::ConfState) {
        *self.members.lock() = (conf.voters.clone(), conf.learners.clone());
    }
    pub fn leader(&self) -> Option<u64> {
        match self.leadership.borrow().leader_id {
            0 => None,
            id => Some(id),
        }
    }
    pub fn leadership(&self) -> Leadership {
        *self.leadership.borrow()
    }
    /// Sees every change of [`Leadership`] (the latest value, not every step).
    pub fn watch(&self) -> watch::Receiver<Leadership> {
        self.leadership.subscribe()
    }
    pub(crate) fn set_leadership(&self, now: Leadership) {
        self.leadership.send_if_modified(|seen| {
            let changed = *seen != now;
            *seen = now;
            changed
        });
    }
    pub fn stopped(&self) -> Option<String> {
        self.stopped.lock().clone()
    }
    pub(crate) fn set_stopped(&self, reason: String) {
        *self.stopped.lock() = Some(reason);
        self.leadership.send_modify(|l| {
            l.leader_id = 0;
            l.serving = false;
        });
    }
    /// Waits until a leader is known or the shard stopped.
    pub async fn wait_for_leader(&self) -> Option<u64> {
        let mut rx = self.leadership.subscribe();
        loop {
            if let Some(id) = self.leader() {
                return Some(id);
            }
            if self.stopped().is_some() {
                return None;
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    }
}
