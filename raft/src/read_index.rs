//! Linearizable reads (Raft ReadIndex): before a leader answers a read that must see
//! every acknowledged write, it confirms with a quorum that it still leads, takes the
//! commit index at that moment as the read index, and waits until it has applied up
//! to it. A leader cut off from its peers cannot confirm, so it never serves a stale
//! read; a one-member group confirms at once.

use std::collections::HashMap;

use raft::StateRole;
use tokio::sync::oneshot;

use crate::driver::Driver;
use crate::error::{RaftError, Result};

pub(crate) type ReadReply = oneshot::Sender<Result<()>>;

/// Reads waiting for a quorum's confirmation, then for the apply of their index.
#[derive(Default)]
pub(crate) struct PendingReads {
    next_id: u64,
    /// Asked of raft-rs, not confirmed yet (by request context).
    confirming: HashMap<u64, ReadReply>,
    /// Confirmed at a read index not applied yet.
    applying: Vec<(u64, ReadReply)>,
}

impl Driver {
    /// Starts a read-index round for `reply` (answered by [`Driver::finish_reads`]).
    pub(crate) fn read_index(&mut self, reply: ReadReply) {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader {
            let _ = reply.send(Err(RaftError::NotLeader { shard: self.shard, leader: (raft.leader_id != 0).then_some(raft.leader_id) }));
            return;
        }
        let id = self.reads.next_id;
        self.reads.next_id += 1;
        self.reads.confirming.insert(id, reply);
        self.raw.read_index(id.to_le_bytes().to_vec());
    }

    /// Takes the read states of a `Ready`: each confirmed read waits for its index.
    pub(crate) fn confirm_reads(&mut self, states: &[raft::ReadState]) {
        for state in states {
            let Ok(bytes) = <[u8; 8]>::try_from(state.request_ctx.as_slice()) else { continue };
            if let Some(reply) = self.reads.confirming.remove(&u64::from_le_bytes(bytes)) {
                self.reads.applying.push((state.index, reply));
            }
        }
    }

    /// Answers the reads whose index is applied; when this node no longer leads,
    /// every read still waiting for confirmation is refused (reads change nothing,
    /// so the caller may ask the new leader).
    pub(crate) fn finish_reads(&mut self) {
        let applied = self.raw.raft.raft_log.applied;
        if !self.reads.applying.is_empty() {
            let (ready, waiting): (Vec<_>, Vec<_>) = self.reads.applying.drain(..).partition(|(index, _)| *index <= applied);
            self.reads.applying = waiting;
            for (_, reply) in ready {
                let _ = reply.send(Ok(()));
            }
        }
        if self.raw.raft.state != StateRole::Leader && !self.reads.confirming.is_empty() {
            let leader = self.raw.raft.leader_id;
            for (_, reply) in self.reads.confirming.drain() {
                let _ = reply.send(Err(RaftError::NotLeader { shard: self.shard, leader: (leader != 0).then_some(leader) }));
            }
        }
    }
}
