//! Membership changes: a node added as a learner (it catches up, by snapshot if the
//! leader's log no longer reaches back far enough), promoted to voter once caught
//! up, or removed. Each is one Raft conf-change entry per shard, proposed by the
//! shard's leader and answered once applied; raft-rs allows one change in flight.

use raft::eraftpb::{ConfChange, ConfChangeType};
use raft::StateRole;
use tokio::sync::oneshot;

use crate::driver::Driver;
use crate::error::{RaftError, Result};

/// One membership change of one shard's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    /// Adds a node as a learner: it receives the log (or a snapshot) but does not vote.
    AddLearner(u64),
    /// Makes a learner a voter; refused until it has every committed entry.
    Promote(u64),
    /// Removes a node (voter or learner) from the group.
    Remove(u64),
}

impl MembershipChange {
    pub fn node_id(self) -> u64 {
        match self {
            Self::AddLearner(id) | Self::Promote(id) | Self::Remove(id) => id,
        }
    }
}

pub(crate) type MembershipReply = oneshot::Sender<Result<()>>;

impl Driver {
    /// Proposes `change`; `reply` is answered when it is applied (or refused now).
    pub(crate) fn change_membership(&mut self, change: MembershipChange, reply: MembershipReply) {
        if let Err(e) = self.check_membership_change(change) {
            let _ = reply.send(Err(e));
            return;
        }
        let change_type = match change {
            MembershipChange::AddLearner(_) => ConfChangeType::AddLearnerNode,
            MembershipChange::Promote(_) => ConfChangeType::AddNode,
            MembershipChange::Remove(_) => ConfChangeType::RemoveNode,
        };
        let cc = ConfChange { change_type, node_id: change.node_id(), ..Default::default() };
        let id = self.next_proposal;
        self.next_proposal += 1;
        match self.raw.propose_conf_change(self.proposal_context(id), cc) {
            Ok(()) => {
                self.membership_waiters.insert(id, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    fn check_membership_change(&self, change: MembershipChange) -> Result<()> {
        let raft = &self.raw.raft;
        let refuse = |why: String| Err(RaftError::Membership { shard: self.shard, detail: why });
        if raft.state != StateRole::Leader {
            return Err(RaftError::NotLeader { shard: self.shard, leader: (raft.leader_id != 0).then_some(raft.leader_id) });
        }
        if raft.has_pending_conf() {
            return refuse("another membership change is not applied yet".into());
        }
        let id = change.node_id();
        let conf = raft.prs().conf();
        let (is_voter, is_learner) = (conf.voters().contains(id), conf.learners().contains(&id));
        match change {
            MembershipChange::AddLearner(_) if is_voter || is_learner => refuse(format!("node {id} is already a member")),
            MembershipChange::Promote(_) if !is_learner => refuse(format!("node {id} is not a learner")),
            MembershipChange::Promote(_) => {
                let progress = raft.prs().get(id);
                let matched = progress.map_or(0, |p| p.matched);
                let committed = raft.raft_log.committed;
                if matched < committed {
                    // The leader's view of the learner, so a catch-up that never ends
                    // can be told from a slow one.
                    let seen = progress.map_or_else(String::new, |p| {
                        format!(
                            " (replication {:?}, next {}, paused {}, recently active {}, snapshot pending {})",
                            p.state, p.next_idx, p.paused, p.recent_active, p.pending_snapshot
                        )
                    });
                    return refuse(format!("node {id} has entries up to {matched} of {committed} committed; not caught up yet{seen}"));
                }
                Ok(())
            }
            MembershipChange::Remove(_) if !is_voter && !is_learner => refuse(format!("node {id} is not a member")),
            MembershipChange::Remove(_) if is_voter && conf.voters().ids().len() == 1 => {
                refuse(format!("node {id} is the group's only voter"))
            }
            _ => Ok(()),
        }
    }

    /// Answers the caller of an applied membership change (if it was proposed here).
    pub(crate) fn answer_membership(&mut self, context: &[u8], outcome: Result<()>) {
        if let Some(id) = self.own_proposal(context) {
            if let Some(w) = self.membership_waiters.remove(&id) {
                let _ = w.send(outcome);
            }
        }
    }
}
