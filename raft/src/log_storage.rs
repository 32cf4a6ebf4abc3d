//! raft-rs [`Storage`] for one shard, over the shared node log.
//!
//! The entries themselves stay in the node log; this keeps, per shard, the position
//! and term of every entry from `first_index` to `last_index`, the hard state, the
//! membership and the metadata of the newest snapshot. Reads decode the record at the
//! entry's position (a zero-copy slice of a memory-mapped segment).
//!
//! Entries this process appended and has not applied yet are also kept in memory
//! (`unapplied`, at most [`UNAPPLIED_BYTES_MAX`]): raft-rs drops entries from its
//! own unstable log once they are persisted and then fetches the committed ones back
//! through [`Storage::entries`] to apply them. Serving those from memory saves
//! reading (and mapping into the process) every page of the log just written. They
//! are the very `Entry` values whose records were appended, so either source gives
//! the same entry. Entries replayed after a restart, and entries a lagging follower
//! needs, are read from the log.
//!
//! The snapshot itself is not kept: [`Storage::snapshot`] (only needed to catch up
//! a follower) builds a follower snapshot ([`crate::follower_snapshot`]) of the
//! applied state when asked: the state and the history it refers to, at the applied
//! index (at or above the compacted index, so the entries after it are all here).
//!
//! Invariants: `positions` covers exactly `snapshot_index + 1 ..= last_index`, dense;
//! an append at index `i` first drops every entry at `i` and above (Raft overwrites a
//! conflicting suffix); terms never decrease along the index. `unapplied` holds
//! consecutive entries whose indexes are all in `positions`, each equal to the
//! record at its position.

use std::collections::VecDeque;
use std::sync::Arc;

use hourglass_storage::log::NodeLog;
use hourglass_storage::records::{ConfStateRecord, HardStateRecord, RaftEntryRecord, RecordKind, RelocatedRecord, ShardId};
use hourglass_storage::state::ShardState;
use hourglass_storage::{LogPosition, StorageError};
use parking_lot::RwLock;
use protobuf::ProtobufEnum;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError as RaftStorageError};

use crate::follower_snapshot;

/// Most bytes of entry data and context kept in memory per shard between append and
/// apply. Beyond it entries are read back from the log as before (correct, slower).
pub const UNAPPLIED_BYTES_MAX: usize = 8 << 20;

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
    /// The applied state, which [`Storage::snapshot`] snapshots for a follower.
    state: Arc<RwLock<ShardState>>,
    /// Largest follower snapshot built.
    snapshot_bytes_max: u64,
    /// The driver is between applying a batch's entries to the state and applying
    /// its membership changes here: the state is ahead of `conf_state`, so no
    /// follower snapshot may be built.
    pub(crate) conf_change_pending: bool,
    /// This shard's Raft records before this position are superseded by the
    /// snapshot (see [`crate::snapshot`]); written into every snapshot file.
    pub(crate) log_floor: LogPosition,
    positions: VecDeque<EntrySlot>,
    /// Entries appended by this process and not applied yet, consecutive.
    unapplied: VecDeque<Entry>,
    /// Data and context bytes held by `unapplied`.
    unapplied_bytes: usize,
    /// Where the newest hard-state and conf-state records of this shard are.
    pub(crate) hard_state_pos: Option<LogPosition>,
    pub(crate) conf_state_pos: Option<LogPosition>,
}

impl ShardLog {
    pub fn new(shard: ShardId, log: NodeLog, state: Arc<RwLock<ShardState>>, snapshot_bytes_max: u64) -> Self {
        Self {
            shard,
            log,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            snapshot_index: 0,
            snapshot_term: 0,
            state,
            snapshot_bytes_max,
            conf_change_pending: false,
            log_floor: LogPosition { segment_id: 0, offset: 0 },
            positions: VecDeque::new(),
            unapplied: VecDeque::new(),
            unapplied_bytes: 0,
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
            return Err(format!("shard {}: entry {index} leaves a gap after last index {}", self.shard, next - 1));
        }
        let keep = (index - self.snapshot_index - 1) as usize;
        self.positions.truncate(keep);
        while self.unapplied.back().is_some_and(|e| e.index >= index) {
            self.pop_unapplied_back();
        }
        if let Some(prev) = self.positions.back() {
            if prev.term > term {
                return Err(format!("shard {}: entry {index} has term {term} below the previous {}", self.shard, prev.term));
            }
        }
        self.positions.push_back(EntrySlot { term, pos });
        Ok(())
    }

    /// [`Self::record_entry`] for an entry this process just appended, keeping the
    /// entry in memory until it is applied (see the module docs).
    pub fn record_appended(&mut self, entry: Entry, pos: LogPosition) -> Result<(), String> {
        self.record_entry(entry.index, entry.term, pos)?;
        let follows = self.unapplied.back().is_none_or(|last| last.index + 1 == entry.index);
        let bytes = entry_bytes(&entry);
        if entry.index > self.snapshot_index && follows && self.unapplied_bytes + bytes <= UNAPPLIED_BYTES_MAX {
            self.unapplied_bytes += bytes;
            self.unapplied.push_back(entry);
        }
        Ok(())
    }

    /// Forgets the in-memory copies of entries up to `index` (they are applied).
    pub fn release_applied(&mut self, index: u64) {
        while self.unapplied.front().is_some_and(|e| e.index <= index) {
            if let Some(e) = self.unapplied.pop_front() {
                self.unapplied_bytes -= entry_bytes(&e);
            }
        }
    }

    fn pop_unapplied_back(&mut self) {
        if let Some(e) = self.unapplied.pop_back() {
            self.unapplied_bytes -= entry_bytes(&e);
        }
    }

    /// The in-memory copy of entry `index`, if this process appended it and has not
    /// applied it yet.
    fn unapplied_entry(&self, index: u64) -> Option<&Entry> {
        let first = self.unapplied.front()?.index;
        let entry = self.unapplied.get(usize::try_from(index.checked_sub(first)?).ok()?)?;
        debug_assert_eq!(entry.index, index, "unapplied entries are consecutive");
        Some(entry)
    }

    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Installs snapshot metadata (after a snapshot file is durable, or on recovery)
    /// and drops the entries it covers.
    pub fn apply_snapshot_meta(&mut self, index: u64, term: u64) {
        assert!(index >= self.snapshot_index, "snapshot index must not go back: {index} < {}", self.snapshot_index);
        let covered = (index - self.snapshot_index).min(self.positions.len() as u64) as usize;
        self.positions.drain(..covered);
        self.release_applied(index);
        self.snapshot_index = index;
        self.snapshot_term = term;
        if self.hard_state.commit < index {
            self.hard_state.commit = index;
        }
    }

    /// Replaces the whole Raft log by a leader's snapshot at `index` (raft-rs
    /// discards every entry the log held, including any above `index`). Records of
    /// this shard before `log_floor` no longer count (see [`crate::snapshot`]).
    pub fn install_snapshot(&mut self, index: u64, term: u64, conf_state: ConfState, log_floor: LogPosition) -> Result<(), String> {
        if index <= self.snapshot_index || log_floor < self.log_floor {
            return Err(format!(
                "shard {}: snapshot at {index} (floor {log_floor:?}) does not follow the one at {} (floor {:?})",
                self.shard, self.snapshot_index, self.log_floor
            ));
        }
        self.positions.clear();
        self.unapplied.clear();
        self.unapplied_bytes = 0;
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.conf_state = conf_state;
        self.log_floor = log_floor;
        if self.hard_state.commit < index {
            self.hard_state.commit = index;
        }
        assert_eq!(self.last_index_value(), index, "an installed snapshot is the whole log");
        Ok(())
    }

    /// The follower snapshot of the applied state (see the module docs).
    fn follower_snapshot(&self, request_index: u64) -> crate::error::Result<Snapshot> {
        let not_now = |detail: String| crate::error::RaftError::Config(format!("shard {}: {detail}", self.shard));
        if self.conf_change_pending {
            return Err(not_now("membership changes are being applied".into()));
        }
        let state = self.state.read();
        let index = state.applied_index();
        if index == 0 || index < request_index || index < self.snapshot_index {
            return Err(not_now(format!("applied {index}, requested {request_index}, compacted to {}", self.snapshot_index)));
        }
        let term = self.term(index).map_err(|e| not_now(format!("term of applied entry {index}: {e}")))?;
        let data = follower_snapshot::build(&self.log, &state, term, self.snapshot_bytes_max)?;
        drop(state);
        let mut meta = SnapshotMetadata { index, term, ..Default::default() };
        meta.set_conf_state(self.conf_state.clone());
        let mut snap = Snapshot::default();
        snap.set_metadata(meta);
        snap.data = data;
        Ok(snap)
    }

    /// Every log position this shard's Raft state still needs (uncompacted entries,
    /// newest hard state and conf state).
    pub fn live_positions(&self) -> impl Iterator<Item = LogPosition> + '_ {
        self.positions.iter().map(|s| s.pos).chain(self.hard_state_pos).chain(self.conf_state_pos)
    }

    pub fn hard_state_record(&self) -> HardStateRecord {
        HardStateRecord { shard: self.shard, term: self.hard_state.term, vote: self.hard_state.vote, commit: self.hard_state.commit }
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

/// What an entry costs in memory, as [`UNAPPLIED_BYTES_MAX`] counts it.
fn entry_bytes(e: &Entry) -> usize {
    e.data.len() + e.context.len()
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
    ConfState {
        voters: rec.voters.clone(),
        learners: rec.learners.clone(),
        voters_outgoing: rec.voters_outgoing.clone(),
        learners_next: rec.learners_next.clone(),
        auto_leave: rec.auto_leave,
        ..Default::default()
    }
}

fn unavailable() -> raft::Error {
    raft::Error::Store(RaftStorageError::Unavailable)
}

impl Storage for ShardLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(&self, low: u64, high: u64, max_size: impl Into<Option<u64>>, _context: GetEntriesContext) -> raft::Result<Vec<Entry>> {
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
            let entry = match self.unapplied_entry(index) {
                Some(entry) => entry.clone(),
                None => self.read_entry(index).map_err(|e| raft::Error::Store(RaftStorageError::Other(Box::new(e))))?,
            };
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

    /// Builds a follower snapshot of the applied state (blocking the driver while
    /// it copies the history out of the log; only to catch up a follower that fell
    /// behind the compacted log). Any failure is "temporarily unavailable": raft-rs
    /// tries again later, and treats any other error as fatal.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        match self.follower_snapshot(request_index) {
            Ok(snap) => {
                tracing::info!(
                    shard = self.shard,
                    to,
                    index = snap.get_metadata().index,
                    bytes = snap.data.len(),
                    "snapshot built for a follower"
                );
                Ok(snap)
            }
            Err(e) => {
                tracing::warn!(shard = self.shard, to, error = %e, "no snapshot for a follower now");
                Err(raft::Error::Store(RaftStorageError::SnapshotTemporarilyUnavailable))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hourglass_storage::disk::sim::SimDisk;
    use hourglass_storage::log::{LogConfig, Record};
    use hourglass_storage::state::ShardConfig;

    fn setup() -> (SimDisk, NodeLog, ShardLog) {
        let disk = SimDisk::new(3);
        let (log, _) = NodeLog::open(Arc::new(disk.clone()), LogConfig::new("/d/log"), &mut |_, _, _| Ok(())).unwrap();
        let state = Arc::new(RwLock::new(ShardState::new(2, ShardConfig::default())));
        let store = ShardLog::new(2, log.clone(), state, 1 << 20);
        (disk, log, store)
    }

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry { index, term, data: Bytes::copy_from_slice(data), context: Bytes::from_static(b"ctx"), ..Default::default() }
    }

    /// Appends `entries` to the log as the driver does and records them.
    fn append(log: &NodeLog, store: &mut ShardLog, entries: Vec<Entry>) {
        let records = entries.iter().map(|e| Record { kind: RecordKind::RaftEntry, payload: entry_to_record(2, e).encode() }).collect();
        let positions = log.append_blocking(records).unwrap();
        for (e, pos) in entries.into_iter().zip(positions) {
            store.record_appended(e, pos).unwrap();
        }
    }

    fn fetch(store: &ShardLog, low: u64, high: u64) -> Vec<(u64, u64, Bytes)> {
        let got = store.entries(low, high, None, GetEntriesContext::empty(false)).unwrap();
        got.into_iter().map(|e| (e.index, e.term, e.data)).collect()
    }

    #[test]
    fn unapplied_entries_come_from_memory_and_applied_ones_from_the_log() {
        let (_disk, log, mut store) = setup();
        append(&log, &mut store, (1..=5).map(|i| entry(i, 1, &[i as u8; 300])).collect());
        let want: Vec<_> = (1..=5).map(|i| (i, 1, Bytes::from(vec![i as u8; 300]))).collect();
        assert_eq!(fetch(&store, 1, 6), want);
        assert_eq!(log.stats().reads, 0, "entries not applied yet are served from memory");
        store.release_applied(3);
        assert_eq!(store.unapplied.len(), 2);
        assert_eq!(fetch(&store, 1, 6), want, "the log gives the same entries");
        assert_eq!(log.stats().reads, 3, "applied entries are read back from the log");
        store.release_applied(5);
        assert_eq!((store.unapplied.len(), store.unapplied_bytes), (0, 0));
    }

    #[test]
    fn a_conflicting_append_replaces_the_in_memory_suffix() {
        let (_disk, log, mut store) = setup();
        append(&log, &mut store, (1..=4).map(|i| entry(i, 1, b"old")).collect());
        append(&log, &mut store, vec![entry(3, 2, b"new3"), entry(4, 2, b"new4")]);
        assert_eq!(
            fetch(&store, 2, 5),
            vec![(2, 1, Bytes::from_static(b"old")), (3, 2, Bytes::from_static(b"new3")), (4, 2, Bytes::from_static(b"new4")),]
        );
        assert_eq!(log.stats().reads, 0);
        assert_eq!(store.unapplied_bytes, 2 * (3 + 3) + 2 * (4 + 3));
        store.apply_snapshot_meta(3, 2);
        assert_eq!(store.unapplied.iter().map(|e| e.index).collect::<Vec<_>>(), vec![4], "a snapshot covers 1..=3");
    }

    #[test]
    fn memory_is_bounded_and_the_rest_reads_from_the_log() {
        let (_disk, log, mut store) = setup();
        let big = vec![7u8; 1 << 20];
        // 12 entries of 1 MiB: the first 7 fit in 8 MiB (with their contexts), the rest do not.
        for i in 1..=12 {
            append(&log, &mut store, vec![entry(i, 1, &big)]);
        }
        assert!(store.unapplied_bytes <= UNAPPLIED_BYTES_MAX);
        let kept = store.unapplied.len() as u64;
        assert_eq!(kept, 7);
        assert_eq!(fetch(&store, 1, 13).len(), 12);
        assert_eq!(log.stats().reads, 12 - kept);
        // Once drained, the cache restarts with the next appended entry.
        store.release_applied(12);
        append(&log, &mut store, vec![entry(13, 1, b"x")]);
        assert_eq!(store.unapplied.len(), 1);
    }

    #[test]
    fn a_follower_snapshot_is_built_from_the_applied_state_when_asked() {
        let (_disk, log, mut store) = setup();
        let unavailable =
            |r: raft::Result<Snapshot>| matches!(r, Err(raft::Error::Store(RaftStorageError::SnapshotTemporarilyUnavailable)));
        assert!(unavailable(store.snapshot(0, 1)), "nothing applied yet");
        append(&log, &mut store, (1..=3).map(|i| entry(i, 1, b"")).chain((4..=6).map(|i| entry(i, 2, b""))).collect());
        for i in 1..=5 {
            store.state.write().skip(i).unwrap();
        }
        store.set_conf_state(ConfState { voters: vec![1, 2, 3], ..Default::default() });
        let snap = store.snapshot(4, 3).unwrap();
        let meta = snap.get_metadata();
        assert_eq!((meta.index, meta.term, meta.get_conf_state().voters.clone()), (5, 2, vec![1, 2, 3]), "at the applied index");
        let want = follower_snapshot::Expected { shard: 2, index: 5, term: 2, bytes_max: 1 << 20 };
        let decoded = follower_snapshot::decode(snap.data.clone(), want).unwrap();
        assert_eq!(decoded.state, store.state.read().snapshot());
        assert!(unavailable(store.snapshot(6, 3)), "the follower needs more than is applied");
        store.conf_change_pending = true;
        assert!(unavailable(store.snapshot(0, 3)), "not while membership changes are half applied");
        store.conf_change_pending = false;
        store.snapshot_bytes_max = 16;
        assert!(unavailable(store.snapshot(0, 3)), "too large is not fatal to raft-rs");
    }

    #[test]
    fn an_installed_snapshot_replaces_the_whole_log() {
        let (_disk, log, mut store) = setup();
        append(&log, &mut store, (1..=8).map(|i| entry(i, 1, b"old")).collect());
        let floor = LogPosition { segment_id: 1, offset: 4096 };
        let cs = ConfState { voters: vec![1, 2], ..Default::default() };
        store.install_snapshot(6, 3, cs.clone(), floor).unwrap();
        assert_eq!((store.first_index().unwrap(), store.last_index().unwrap(), store.term(6).unwrap()), (7, 6, 3));
        assert!(store.positions.is_empty() && store.unapplied.is_empty(), "entries above the snapshot are discarded too");
        assert_eq!((store.conf_state().clone(), store.hard_state().commit, store.log_floor), (cs.clone(), 6, floor));
        assert!(store.install_snapshot(6, 3, cs.clone(), floor).is_err(), "not the same index twice");
        assert!(store.install_snapshot(9, 3, cs, LogPosition { segment_id: 0, offset: 0 }).is_err(), "the floor never goes back");
    }
}
