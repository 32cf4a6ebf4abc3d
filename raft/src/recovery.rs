//! Rebuilding each shard's Raft view from one scan of the node log.
//!
//! The scan sees records in log order. For each shard it keeps the entries as the
//! log last wrote them (a later append at index `i` replaces everything from `i` on,
//! as Raft's conflicting-suffix rule demands), the newest hard state and the newest
//! membership. Snapshots are loaded before the scan; entries they cover are dropped,
//! and so are entries and membership records before a snapshot's log floor (see
//! [`crate::snapshot`]; `node::start_shard` applies both).

use bytes::Bytes;
use hourglass_storage::records::{ConfStateRecord, HardStateRecord, RaftEntryRecord, RecordKind, ShardId};
use hourglass_storage::{LogPosition, StorageError};

#[derive(Debug, Default, Clone)]
pub(crate) struct RecoveredShard {
    /// (index, term, position), ascending index.
    pub entries: Vec<(u64, u64, LogPosition)>,
    pub hard_state: Option<(HardStateRecord, LogPosition)>,
    pub conf_state: Option<(ConfStateRecord, LogPosition)>,
}

fn shard_slot(shards: &mut [RecoveredShard], shard: ShardId) -> Result<&mut RecoveredShard, StorageError> {
    let count = shards.len();
    shards.get_mut(shard as usize).ok_or_else(|| {
        StorageError::Config(format!("the log holds records of shard {shard}, but the node is configured with {count} shards"))
    })
}

/// Feeds one scanned record into the per-shard recovery state.
pub(crate) fn visit(shards: &mut [RecoveredShard], pos: LogPosition, kind: RecordKind, payload: Bytes) -> Result<(), StorageError> {
    match kind {
        RecordKind::RaftEntry => {
            let rec = RaftEntryRecord::decode(payload).map_err(StorageError::decode("raft entry"))?;
            let slot = shard_slot(shards, rec.shard)?;
            while slot.entries.last().is_some_and(|(index, _, _)| *index >= rec.index) {
                slot.entries.pop();
            }
            slot.entries.push((rec.index, rec.term, pos));
        }
        RecordKind::HardState => {
            let rec = HardStateRecord::decode(payload).map_err(StorageError::decode("hard state"))?;
            shard_slot(shards, rec.shard)?.hard_state = Some((rec, pos));
        }
        RecordKind::ConfState => {
            let rec = ConfStateRecord::decode(payload).map_err(StorageError::decode("conf state"))?;
            let shard = rec.shard;
            shard_slot(shards, shard)?.conf_state = Some((rec, pos));
        }
        // Copies made by space reclaim are found through the shard state's history
        // index (restored from a snapshot), not through the scan.
        RecordKind::Relocated => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(shard: ShardId, index: u64, term: u64) -> Bytes {
        RaftEntryRecord { shard, term, index, entry_type: 0, context: Bytes::new(), data: Bytes::new() }.encode()
    }

    fn pos(offset: u64) -> LogPosition {
        LogPosition { segment_id: 1, offset }
    }

    #[test]
    fn a_later_append_replaces_the_conflicting_suffix() {
        let mut shards = vec![RecoveredShard::default(); 2];
        for (i, (index, term)) in [(1, 1), (2, 1), (3, 1), (2, 2), (3, 2)].into_iter().enumerate() {
            visit(&mut shards, pos(i as u64), RecordKind::RaftEntry, entry(1, index, term)).unwrap();
        }
        let got: Vec<_> = shards[1].entries.iter().map(|(i, t, _)| (*i, *t)).collect();
        assert_eq!(got, vec![(1, 1), (2, 2), (3, 2)]);
        assert!(shards[0].entries.is_empty());
    }

    #[test]
    fn records_of_an_unknown_shard_are_an_error() {
        let mut shards = vec![RecoveredShard::default(); 2];
        assert!(visit(&mut shards, pos(0), RecordKind::RaftEntry, entry(5, 1, 1)).is_err());
    }

    #[test]
    fn garbage_payloads_are_errors_not_panics() {
        let mut shards = vec![RecoveredShard::default(); 1];
        for kind in [RecordKind::RaftEntry, RecordKind::HardState, RecordKind::ConfState] {
            assert!(visit(&mut shards, pos(0), kind, Bytes::from_static(&[1, 2, 3])).is_err());
        }
    }
}
