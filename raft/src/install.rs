//! Installing a leader's snapshot on a follower (a raft-rs `Ready` carrying a
//! snapshot): the follower snapshot ([`crate::follower_snapshot`]) becomes this
//! node's shard state, with its history copied into this node's log.
//!
//! Order, crash-safe at every step:
//! 1. Append to the node log a `HardState` record (the current hard state; its
//!    position is the new **log floor**) followed by a copy of every history
//!    record, as `Relocated` records (`from` = the leader's position). Durable when
//!    the appends return.
//! 2. Restore the shard state from the snapshot's state bytes, each history
//!    position mapped to its copy.
//! 3. Write the snapshot file (temp file, fsync, rename, directory fsync: the
//!    commit point) with the new floor and the snapshot's membership.
//! 4. Install in memory: the Raft log becomes the snapshot alone, the state and
//!    membership are replaced; then a `ConfState` record is appended.
//!
//! A crash before step 3 leaves the old snapshot file and the old log: the copies
//! are records no state refers to (space reclaim drops them as dead) and the hard
//! state record repeats one already durable. A crash after it finds the new file:
//! recovery ignores this shard's entries and conf-state records before its floor,
//! which are exactly what raft-rs discarded, and takes the membership from the file.

use std::collections::HashMap;

use hourglass_storage::log::frame::frame_len;
use hourglass_storage::log::Record;
use hourglass_storage::records::{RecordKind, RelocatedRecord};
use hourglass_storage::state::ShardState;
use hourglass_storage::LogPosition;
use raft::eraftpb::Snapshot;

use crate::driver::Driver;
use crate::error::{RaftError, Result};
use crate::follower_snapshot::{self, Expected, FollowerSnapshot};
use crate::log_storage::conf_state_to_record;
use crate::snapshot::SnapshotFile;

/// Bytes a `Relocated` record adds to the payload it wraps.
const RELOCATED_OVERHEAD_BYTES: usize = 4 + 8 + 8 + 1 + 4;

/// A leader's snapshot, checked when its message arrived.
pub(crate) struct PendingInstall {
    index: u64,
    term: u64,
    snapshot: FollowerSnapshot,
}

/// Where this node wrote its copy of each of the leader's history records.
type Copies = HashMap<LogPosition, LogPosition>;

impl Driver {
    /// Checks a leader's snapshot completely before raft-rs sees it: its bytes
    /// ([`follower_snapshot::decode`]), that its state restores and is at the
    /// announced index, that every history position of the state has its record in
    /// the snapshot, and that every record fits this node's log once wrapped.
    pub(crate) fn check_snapshot(&self, snap: &Snapshot) -> Result<PendingInstall> {
        let meta = snap.get_metadata();
        let (shard, index, term) = (self.shard, meta.index, meta.term);
        let invalid = |detail: String| RaftError::SnapshotInvalid { shard, detail };
        let want = Expected { shard, index, term, bytes_max: self.config.snapshot_bytes_max };
        let snapshot = follower_snapshot::decode(snap.data.clone(), want)?;
        let config = self.state.read().config().clone();
        let state = ShardState::restore(shard, config, snapshot.state.clone()).map_err(|e| invalid(format!("state: {e}")))?;
        if state.applied_index() != index {
            return Err(invalid(format!("state applied up to {}, snapshot at {index}", state.applied_index())));
        }
        if let Some(pos) = state.live_positions().find(|p| snapshot.records.binary_search_by_key(p, |r| r.from).is_err()) {
            return Err(invalid(format!("the state refers to history at {pos:?}, which the snapshot lacks")));
        }
        let record_bytes_max = self.log.config().record_bytes_max as usize;
        if let Some(r) = snapshot.records.iter().find(|r| r.entry.len() + RELOCATED_OVERHEAD_BYTES > record_bytes_max) {
            return Err(invalid(format!("record from {:?} of {} bytes exceeds this log's records", r.from, r.entry.len())));
        }
        Ok(PendingInstall { index, term, snapshot })
    }

    /// Installs the snapshot raft-rs accepted (see the module docs for the order).
    pub(crate) async fn install_snapshot(&mut self, snap: &Snapshot) -> Result<()> {
        let meta = snap.get_metadata();
        let (shard, index, term) = (self.shard, meta.index, meta.term);
        let snapshot = match self.pending_install.take() {
            Some(p) if (p.index, p.term) == (index, term) => p.snapshot,
            _ => self.check_snapshot(snap)?.snapshot,
        };
        let (log_floor, copies) = self.write_history(&snapshot).await?;
        let config = self.state.read().config().clone();
        let state = ShardState::restore_mapped(shard, config, snapshot.state.clone(), &|p| copies.get(&p).copied())
            .map_err(|e| RaftError::SnapshotInvalid { shard, detail: format!("state with this node's positions: {e}") })?;
        assert_eq!(state.applied_index(), index, "check_snapshot saw the same state at the same index");
        let conf_state = meta.get_conf_state().clone();
        let conf_record = conf_state_to_record(shard, &conf_state);
        let file = SnapshotFile { shard, index, term, log_floor, conf_state: conf_record, data: state.snapshot() };
        self.write_snapshot_file(file).await?;

        self.raw.mut_store().install_snapshot(index, term, conf_state.clone(), log_floor).map_err(RaftError::Config)?;
        *self.state.write() = state;
        self.status.set_members(&conf_state);
        self.single_member = conf_state.voters == [self.raw.raft.id] && conf_state.learners.is_empty();
        self.replay_to = None;
        self.abandon_waiters();
        self.persist_conf_state().await?;
        tracing::info!(shard, index, term, records = copies.len(), "snapshot from the leader installed");
        Ok(())
    }

    /// Step 1: the hard-state record that marks the floor, then the history copies,
    /// in appends that each fit a segment. Returns the floor and the copies' places.
    async fn write_history(&mut self, snapshot: &FollowerSnapshot) -> Result<(LogPosition, Copies)> {
        let hard_state = Record { kind: RecordKind::HardState, payload: self.raw.store().hard_state_record().encode() };
        let mut pending = vec![(None, hard_state)];
        for r in &snapshot.records {
            let rel = RelocatedRecord { shard: self.shard, from: r.from, kind: RecordKind::RaftEntry, payload: r.entry.clone() };
            pending.push((Some(r.from), Record { kind: RecordKind::Relocated, payload: rel.encode() }));
        }
        let append_bytes_max = self.log.config().append_bytes_max() / 2;
        let mut copies = Copies::with_capacity(snapshot.records.len());
        let mut log_floor = None;
        let mut items = pending.into_iter().peekable();
        while items.peek().is_some() {
            let (froms, records) = next_chunk(&mut items, append_bytes_max);
            let positions = self.log.append(records).await?;
            assert_eq!(positions.len(), froms.len(), "one position per appended record");
            log_floor = log_floor.or(positions.first().copied());
            for (from, to) in froms.into_iter().zip(positions) {
                match from {
                    Some(from) => assert!(copies.insert(from, to).is_none(), "each record is copied once: {from:?}"),
                    None => self.raw.mut_store().hard_state_pos = Some(to),
                }
            }
        }
        let log_floor = log_floor.expect("the hard-state record is always appended");
        Ok((log_floor, copies))
    }

    /// Proposals waiting for entries the snapshot replaced cannot learn their
    /// outcome here: answered `NotLeader` (callers retry, deduplicated).
    /// Proposals still waiting when a snapshot replaces the log: their entries may
    /// or may not be in the snapshot, so their outcome is unknown.
    fn abandon_waiters(&mut self) {
        self.waiting_at_index.clear();
        for (_, reply) in self.waiters.drain() {
            let _ = reply.send(Err(RaftError::OutcomeUnknown { shard: self.shard }));
        }
    }
}

/// Takes records while their frames fit `bytes_max` (always at least one).
fn next_chunk(
    items: &mut std::iter::Peekable<impl Iterator<Item = (Option<LogPosition>, Record)>>,
    bytes_max: u64,
) -> (Vec<Option<LogPosition>>, Vec<Record>) {
    let (mut froms, mut records, mut bytes) = (Vec::new(), Vec::new(), 0u64);
    while let Some((_, record)) = items.peek() {
        let frame = frame_len(record.payload.len()) as u64;
        if !records.is_empty() && bytes + frame > bytes_max {
            break;
        }
        let (from, record) = items.next().expect("peeked");
        bytes += frame;
        froms.push(from);
        records.push(record);
    }
    (froms, records)
}
