//! raft-rs [`Storage`] for one shard, over the shared node log.
//!
//! The entries themselves stay in the node log; this keeps, per shard, the position
//! and term of every entry from `first_index` to `last_index`, the hard state, the
//! membership and the metadata of the newest snapshot. Reads decode the record at the
//! entry's position (a zero-copy slice of a memory-mapped segment).
//!
//! Invariants: `positions` covers exactly `snapshot_index + 1 ..= last_index`, dense;
//! an append at index `i` first drops every entry at `i` and above (Raft overwrites a
//! conflicting suffix); terms never decrease along the index.

use std::collections::VecDeque;

use bytes::Bytes;
use hourglass_storage::log::NodeLog;
use hourglass_storage::records::{
    ConfStateRecord, HardStateRecord, RaftEntryRecord, RecordKind, RelocatedRecord, ShardId,
};
use hourglass_storage::{LogPosition, StorageError};
use protobuf::ProtobufEnum;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError as RaftStorageError};

/// Where one entry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntrySlot {
    pub term: u64,
    pub pos: LogPosition,
}

/// The per-shard index over the node log, and raft-rs's view of it.
pub struct ShardLog {
    shard: ShardId,
    log: NodeLog,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot_index: u64,
    snapshot_term: u64,
    /// Encoded shard-state snapshot for [`Storage::snapshot`], if one was taken.
    snapshot_data: Option<Bytes>,
    positions: VecDeque<EntrySlot>,
    /// Where the newest hard-state and conf-state records of this shard are.
    pub(crate) hard_state_pos: Option<LogPosition>,
    pub(crate) conf_state_pos: Option<LogPosition>,
}

impl ShardLog {
    pub fn new(shard: ShardId, log: NodeLog) -> Self {
        Self {
            shard,
            log,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            snapshot_index: 0,
            snapshot_term: 0,
            snapshot_data: None,
            positions: VecDeque::new(),
            hard_state_pos: None,
            conf_state_pos: None,
        }
    }

    pub fn shard(&self) -> ShardId {
        self.shard
    }
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }
    pub fn last_index_value(&self) -> u64 {
        self.snapshot_index + self.positions.len() as u64
    }

    /// Position of entry `index`, if it is still in the log.
    pub fn position(&self, index: u64) -> Option<LogPosition> {
        self.slot(index).map(|s| s.pos)
    }

    fn slot(&self, index: u64) -> Option<&EntrySlot> {
        let offset = index.checked_sub(self.snapshot_index + 1)?;
        self.positions.get(usize::try_from(offset).ok()?)
    }

    /// Records that entry `index` (term `term`) is durable at `pos`, dropping any
    /// previous entries at `index` and above.
    pub fn record_entry(&mut self, index: u64, term: u64, pos: LogPosition) -> Result<(), String> {
        if index <= self.snapshot_index {
            // Below a snapshot: already covered by it (can happen during recovery when
            // the log still holds entries the snapshot includes).
            return Ok(());
        }
        let next = self.last_index_value() + 1;
        if index > next {
            return Err(format!(
                "shard {}: entry {index} leaves a gap after last index {}",
                self.shard,
                next - 1
            ));
        }
        let keep = (index - self.snapshot_index - 1) as usize;
        self.positions.truncate(keep);
        if let Some(prev) = self.positions.back() {
            if prev.term > term {
                return Err(format!("shard {}: entry {index} has term {term} below the previous {}", self.shard, prev.term));
            }
        }
        self.positions.push_back(EntrySlot { term, pos });
        Ok(())
    }

    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Installs snapshot metadata (after a snapshot file is durable, or on recovery)
    /// and drops the entries it covers.
    pub fn apply_snapshot_meta(&mut self, index: u64, term: u64, data: Option<Bytes>) {
        assert!(index >= self.snapshot_index, "snapshot index must not go back: {index} < {}", self.snapshot_index);
        let covered = (index - self.snapshot_index).min(self.positions.len() as u64) as usize;
        self.positions.drain(..covered);
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.snapshot_data = data;
        if self.hard_state.commit < index {
            self.hard_state.commit = index;
        }
    }

    /// Every log position this shard's Raft state still needs (uncompacted entries,
    /// newest hard state and conf state).
    pub fn live_positions(&self) -> impl Iterator<Item = LogPosition> + '_ {
        self.positions.iter().map(|s| s.pos).chain(self.hard_state_pos).chain(self.conf_state_pos)
    }

    pub fn hard_state_record(&self) -> HardStateRecord {
        HardStateRecord {
            shard: self.shard,
            term: self.hard_state.term,
            vote: self.hard_state.vote,
            commit: self.hard_state.commit,
        }
    }

    pub fn conf_state_record(&self) -> ConfStateRecord {
        conf_state_to_record(self.shard, &self.conf_state)
    }

    /// Reads entry `index` back from the node log.
    pub fn read_entry(&self, index: u64) -> Result<Entry, StorageError> {
        let slot = *self.slot(index).ok_or_else(|| StorageError::NoRecord {
            pos: LogPosition { segment_id: 0, offset: 0 },
            detail: format!("shard {} has no entry {index}", self.shard),
        })?;
        let rec = read_raft_entry(&self.log, slot.pos)?;
        if rec.shard != self.shard || rec.index != index || rec.term != slot.term {
            return Err(StorageError::NoRecord {
                pos: slot.pos,
                detail: format!(
                    "expected shard {} entry {index} term {}, found shard {} entry {} term {}",
                    self.shard, slot.term, rec.shard, rec.index, rec.term
                ),
            });
        }
        Ok(record_to_entry(rec))
    }
}

/// Decodes the Raft entry at `pos`, following a relocation if space reclaim moved it.
pub fn read_raft_entry(log: &NodeLog, pos: LogPosition) -> Result<RaftEntryRecord, StorageError> {
    let (kind, payload) = log.read(pos)?;
    match kind {
        RecordKind::RaftEntry => RaftEntryRecord::decode(payload).map_err(StorageError::decode("raft entry")),
        RecordKind::Relocated => {
            let rel = RelocatedRecord::decode(payload).map_err(StorageError::decode("relocated record"))?;
            if rel.kind != RecordKind::RaftEntry {
                return Err(StorageError::NoRecord { pos, detail: format!("relocated {:?}, not a raft entry", rel.kind) });
            }
            RaftEntryRecord::decode(rel.payload).map_err(StorageError::decode("relocated raft entry"))
        }
        other => Err(StorageError::NoRecord { pos, detail: format!("{other:?} record, not a raft entry") }),
    }
}

pub fn record_to_entry(rec: RaftEntryRecord) -> Entry {
    let mut e = Entry::default();
    e.set_entry_type(EntryType::from_i32(rec.entry_type as i32).unwrap_or(EntryType::EntryNormal));
    e.term = rec.term;
    e.index = rec.index;
    e.data = rec.data;
    e.context = rec.context;
    e
}

pub fn entry_to_record(shard: ShardId, e: &Entry) -> RaftEntryRecord {
    RaftEntryRecord {
        shard,
        term: e.term,
        index: e.index,
        entry_type: e.get_entry_type() as i32 as u8,
        context: e.context.clone(),
        data: e.data.clone(),
    }
}

pub fn conf_state_to_record(shard: ShardId, cs: &ConfState) -> ConfStateRecord {
    ConfStateRecord {
        shard,
        voters: cs.voters.clone(),
        learners: cs.learners.clone(),
        voters_outgoing: cs.voters_outgoing.clone(),
        learners_next: cs.learners_next.clone(),
        auto_leave: cs.auto_leave,
    }
}

pub fn record_to_conf_state(rec: &ConfStateRecord) -> ConfState {
    let mut cs = ConfState::default();
    cs.voters = rec.voters.clone();
    cs.learners = rec.learners.clone();
    cs.voters_outgoing = rec.voters_outgoing.clone();
    cs.learners_next = rec.learners_next.clone();
    cs.auto_leave = rec.auto_leave;
    cs
}

fn unavailable() -> raft::Error {
    raft::Error::Store(RaftStorageError::Unavailable)
}

impl Storage for ShardLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into().unwrap_or(u64::MAX);
        if low <= self.snapshot_index {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        if high > self.last_index_value() + 1 {
            return Err(unavailable());
        }
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        for index in low..high {
            let entry = self.read_entry(index).map_err(|e| raft::Error::Store(RaftStorageError::Other(Box::new(e))))?;
            size += (entry.data.len() + entry.context.len() + 24) as u64;
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(entry);
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index {
            return Ok(self.snapshot_term);
        }
        if idx < self.snapshot_index {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        self.slot(idx).map(|s| s.term).ok_or_else(unavailable)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index_value())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let data = match &self.snapshot_data {
            Some(data) if self.snapshot_index >= request_index => data.clone(),
            _ => return Err(raft::Error::Store(RaftStorageError::SnapshotTemporarilyUnavailable)),
        };
        let mut meta = SnapshotMetadata::default();
        meta.index = self.snapshot_index;
        meta.term = self.snapshot_term;
        meta.set_conf_state(self.conf_state.clone());
        let mut snap = Snapshot::default();
        snap.set_metadata(meta);
        snap.data = data;
        Ok(snap)
    }
}
