//! The snapshot a leader sends a follower (`Snapshot.data` of a raft-rs
//! `MsgSnapshot`): the shard state *and the history it refers to*.
//!
//! A shard state's history index names log positions of the node that built it,
//! which mean nothing on another node. So the leader sends, with the state bytes, a
//! copy of every history record the state refers to, keyed by the leader's
//! position; the follower writes the copies into its own node log and restores the
//! state with each position mapped to its copy ([`ShardState::restore_mapped`]).
//!
//! A history record is the whole Raft entry record that appended the events (the
//! payload of a `RaftEntry` record, unwrapped if reclaim relocated it): a record
//! several runs refer to travels once, and the follower reads its copy exactly as
//! the leader reads the original ([`crate::log_storage::read_raft_entry`],
//! `events_of`). The cost is that the entry's other ops travel too.
//!
//! Layout (little-endian; `docs/format.md`, "Follower snapshots"):
//! `magic "HGFSNP01" | shard u32 | index u64 | term u64 | state (u32-length
//! prefixed) | record count u32 | per record: from.segment_id u64, from.offset u64,
//! entry (u32-length prefixed RaftEntry payload) | crc u32` — the CRC-32 covers
//! every byte before it. Records are in strictly ascending `from` order.

use bytes::Bytes;
use hourglass_storage::codec::{DecodeError, Decoder, Encoder};
use hourglass_storage::log::NodeLog;
use hourglass_storage::records::{RaftEntryRecord, RecordKind, RelocatedRecord, ShardId};
use hourglass_storage::state::ShardState;
use hourglass_storage::{LogPosition, StorageError};

use crate::error::{RaftError, Result};

const MAGIC: &[u8; 8] = b"HGFSNP01";
/// Magic, shard, index, term, state length, record count, CRC.
const FIXED_BYTES: u64 = 8 + 4 + 8 + 8 + 4 + 4 + 4;
/// Position and entry length of one record.
const RECORD_FIXED_BYTES: u64 = 8 + 8 + 4;

/// One history record, as the leader holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRecord {
    /// Where the record is in the leader's log (what the state bytes name).
    pub from: LogPosition,
    /// A `RaftEntry` record payload of the shard, whose index is at most the
    /// snapshot's.
    pub entry: Bytes,
}

/// A decoded follower snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerSnapshot {
    pub shard: ShardId,
    /// The Raft index (and its term) of the last entry the state has applied.
    pub index: u64,
    pub term: u64,
    /// [`ShardState::snapshot`] bytes; their history positions name the leader's log.
    pub state: Bytes,
    /// Every record the state's history refers to, ascending by `from`, each once.
    pub records: Vec<HistoryRecord>,
}

/// Builds the follower snapshot of `state` (applied up to its applied index, whose
/// entry has term `term`), reading each history record from `log`.
///
/// Every byte is copied into the returned buffer while `state` is borrowed, so
/// nothing in the log needs pinning while the snapshot is sent: once built, space
/// reclaim may move or delete any record it was built from. The caller holds the
/// state's read lock for the duration, so the positions read are live ones.
///
/// Fails with [`RaftError::SnapshotTooLarge`] as soon as the snapshot would exceed
/// `bytes_max`, before copying anything.
pub fn build(log: &NodeLog, state: &ShardState, term: u64, bytes_max: u64) -> Result<Bytes> {
    let shard = state.shard();
    let too_large = |bytes: u64| RaftError::SnapshotTooLarge { shard, bytes, bytes_max };
    let state_bytes = state.snapshot();
    let mut total = FIXED_BYTES + state_bytes.len() as u64;
    if total > bytes_max {
        return Err(too_large(total));
    }
    let mut records = Vec::new();
    for from in state.live_positions() {
        let entry = read_history_entry(log, from)?;
        total += RECORD_FIXED_BYTES + entry.len() as u64;
        if total > bytes_max {
            return Err(too_large(total));
        }
        records.push(HistoryRecord { from, entry });
    }
    let snapshot = FollowerSnapshot { shard, index: state.applied_index(), term, state: state_bytes, records };
    let bytes = encode(&snapshot);
    assert_eq!(bytes.len() as u64, total, "the follower snapshot's length is computed exactly");
    Ok(bytes)
}

/// The `RaftEntry` payload at `pos`, unwrapping a reclaim relocation.
fn read_history_entry(log: &NodeLog, pos: LogPosition) -> Result<Bytes> {
    let (kind, payload) = log.read(pos)?;
    let (kind, payload) = match kind {
        RecordKind::Relocated => {
            let rel = RelocatedRecord::decode(payload).map_err(StorageError::decode("relocated record"))?;
            (rel.kind, rel.payload)
        }
        other => (other, payload),
    };
    if kind != RecordKind::RaftEntry {
        return Err(StorageError::NoRecord { pos, detail: format!("history refers to a {kind:?} record") }.into());
    }
    Ok(payload)
}

/// The snapshot's bytes, CRC included. Lengths must fit `u32` (the size limit,
/// at most `u32::MAX`, sees to it).
pub fn encode(s: &FollowerSnapshot) -> Bytes {
    let records: u64 = s.records.iter().map(|r| RECORD_FIXED_BYTES + r.entry.len() as u64).sum();
    let mut e = Encoder::with_capacity((FIXED_BYTES + s.state.len() as u64 + records) as usize);
    e.u64(u64::from_le_bytes(*MAGIC)).u32(s.shard).u64(s.index).u64(s.term);
    e.bytes(&s.state).count(s.records.len());
    for r in &s.records {
        e.u64(r.from.segment_id).u64(r.from.offset).bytes(&r.entry);
    }
    let mut body = e.finish().to_vec();
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    Bytes::from(body)
}

/// What the receiver expects: the raft-rs snapshot metadata and its own limit.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub shard: ShardId,
    pub index: u64,
    pub term: u64,
    pub bytes_max: u64,
}

/// Decodes and checks a follower snapshot: size, CRC, layout, that it is the one
/// the metadata announces, record order, and that every record is an entry of the
/// shard at or below the snapshot's index. Never panics.
pub fn decode(bytes: Bytes, want: Expected) -> Result<FollowerSnapshot> {
    let shard = want.shard;
    if bytes.len() as u64 > want.bytes_max {
        return Err(RaftError::SnapshotTooLarge { shard, bytes: bytes.len() as u64, bytes_max: want.bytes_max });
    }
    let invalid = |detail: String| RaftError::SnapshotInvalid { shard, detail };
    if bytes.len() < 4 {
        return Err(invalid(format!("{} bytes is too short", bytes.len())));
    }
    let body_len = bytes.len() - 4;
    let stored = u32::from_le_bytes(bytes[body_len..].try_into().expect("4-byte tail"));
    if crc32fast::hash(&bytes[..body_len]) != stored {
        return Err(invalid("checksum mismatch".into()));
    }
    let snapshot = decode_body(bytes.slice(..body_len)).map_err(|e| invalid(e.to_string()))?;
    let found = (snapshot.shard, snapshot.index, snapshot.term);
    if found != (want.shard, want.index, want.term) {
        return Err(invalid(format!("holds (shard, index, term) {found:?}, expected {:?}", (want.shard, want.index, want.term))));
    }
    check_records(&snapshot).map_err(invalid)?;
    Ok(snapshot)
}

fn decode_body(body: Bytes) -> std::result::Result<FollowerSnapshot, DecodeError> {
    let mut d = Decoder::new(body);
    if d.u64()?.to_le_bytes() != *MAGIC {
        return Err(d.invalid("magic", "not a follower snapshot"));
    }
    let (shard, index, term) = (d.u32()?, d.u64()?, d.u64()?);
    let state = d.bytes()?;
    let n = d.count(RECORD_FIXED_BYTES as usize)?;
    let mut records = Vec::with_capacity(n);
    for _ in 0..n {
        let from = LogPosition { segment_id: d.u64()?, offset: d.u64()? };
        records.push(HistoryRecord { from, entry: d.bytes()? });
    }
    d.finish()?;
    Ok(FollowerSnapshot { shard, index, term, state, records })
}

fn check_records(s: &FollowerSnapshot) -> std::result::Result<(), String> {
    for pair in s.records.windows(2) {
        if pair[0].from >= pair[1].from {
            return Err(format!("records out of order: {:?} then {:?}", pair[0].from, pair[1].from));
        }
    }
    for r in &s.records {
        let entry = RaftEntryRecord::decode(r.entry.clone()).map_err(|e| format!("record from {:?}: {e}", r.from))?;
        if entry.shard != s.shard || entry.index > s.index {
            return Err(format!("record from {:?} is entry {} of shard {}", r.from, entry.index, entry.shard));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, data: &'static [u8]) -> Bytes {
        RaftEntryRecord { shard: 3, term: 2, index, entry_type: 0, context: Bytes::new(), data: Bytes::from_static(data) }.encode()
    }

    fn sample() -> FollowerSnapshot {
        let at = |segment_id, offset| LogPosition { segment_id, offset };
        FollowerSnapshot {
            shard: 3,
            index: 40,
            term: 2,
            state: Bytes::from_static(b"state bytes"),
            records: vec![
                HistoryRecord { from: at(1, 64), entry: entry(5, b"five") },
                HistoryRecord { from: at(2, 64), entry: entry(40, b"forty") },
            ],
        }
    }

    fn expected() -> Expected {
        Expected { shard: 3, index: 40, term: 2, bytes_max: 1 << 20 }
    }

    #[test]
    fn round_trips() {
        let s = sample();
        assert_eq!(decode(encode(&s), expected()).unwrap(), s);
    }

    #[test]
    fn any_flipped_bit_or_truncation_is_an_error() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 0x04;
            assert!(decode(Bytes::from(b), expected()).is_err(), "flip at {i} accepted");
            assert!(decode(bytes.slice(..i), expected()).is_err(), "truncation at {i} accepted");
        }
    }

    #[test]
    fn a_snapshot_other_than_announced_or_with_bad_records_is_refused() {
        let bytes = encode(&sample());
        for want in [Expected { index: 41, ..expected() }, Expected { term: 3, ..expected() }, Expected { shard: 4, ..expected() }] {
            assert!(matches!(decode(bytes.clone(), want), Err(RaftError::SnapshotInvalid { .. })), "{want:?}");
        }
        let mut s = sample();
        s.records.swap(0, 1);
        assert!(matches!(decode(encode(&s), expected()), Err(RaftError::SnapshotInvalid { .. })), "out of order");
        let mut s = sample();
        s.records[1].entry = entry(41, b"after the snapshot");
        assert!(matches!(decode(encode(&s), expected()), Err(RaftError::SnapshotInvalid { .. })), "entry above the index");
        let mut s = sample();
        s.records[0].entry = Bytes::from_static(b"garbage");
        assert!(matches!(decode(encode(&s), expected()), Err(RaftError::SnapshotInvalid { .. })), "not an entry");
    }

    /// Built from a log and a state: the records are the entries the history names
    /// (relocated ones unwrapped), and the size limit is a typed error.
    #[test]
    fn build_copies_the_history_records_and_respects_the_limit() {
        use hourglass_storage::disk::sim::SimDisk;
        use hourglass_storage::log::{LogConfig, Record};
        use hourglass_storage::state::{Op, RunKey, ShardConfig, Transition};
        use std::sync::Arc;

        let disk = SimDisk::new(9);
        let (log, _) = NodeLog::open(Arc::new(disk), LogConfig::new("/d/log"), &mut |_, _, _| Ok(())).unwrap();
        let mut state = ShardState::new(3, ShardConfig::default());
        let run = RunKey { namespace: "ns".into(), workflow_id: "wf".into(), run_id: "r".into() };
        let ops = |first| vec![Op::AppendEvents { run: run.clone(), first_event_id: first, events: vec![Bytes::from(vec![7; 100])] }];
        let transitions = [
            Transition { time_ms: 1, dedupe: None, ops: [vec![Op::CreateRun { run: run.clone(), state: Bytes::new() }], ops(1)].concat() },
            Transition { time_ms: 2, dedupe: None, ops: ops(2) },
        ];
        let mut entries = Vec::new();
        for (i, t) in transitions.iter().enumerate() {
            let index = i as u64 + 1;
            let rec = RaftEntryRecord { shard: 3, term: 1, index, entry_type: 0, context: Bytes::new(), data: t.encode() };
            let mut pos = log.append_blocking(vec![Record { kind: RecordKind::RaftEntry, payload: rec.encode() }]).unwrap()[0];
            if index == 2 {
                let rel = RelocatedRecord { shard: 3, from: pos, kind: RecordKind::RaftEntry, payload: rec.encode() };
                pos = log.append_blocking(vec![Record { kind: RecordKind::Relocated, payload: rel.encode() }]).unwrap()[0];
            }
            state.apply(index, pos, t).unwrap();
            entries.push((pos, rec.encode()));
        }
        let bytes = build(&log, &state, 1, 1 << 20).unwrap();
        let got = decode(bytes.clone(), Expected { shard: 3, index: 2, term: 1, bytes_max: 1 << 20 }).unwrap();
        assert_eq!(got.state, state.snapshot());
        let want: Vec<_> = entries.into_iter().map(|(from, entry)| HistoryRecord { from, entry }).collect();
        assert_eq!(got.records, want);

        let err = build(&log, &state, 1, bytes.len() as u64 - 1).unwrap_err();
        assert!(matches!(err, RaftError::SnapshotTooLarge { shard: 3, bytes_max, .. } if bytes_max == bytes.len() as u64 - 1), "{err}");
        assert_eq!(build(&log, &state, 1, bytes.len() as u64).unwrap(), bytes);
    }

    #[test]
    fn the_receiver_refuses_more_than_its_limit() {
        let bytes = encode(&sample());
        let want = Expected { bytes_max: bytes.len() as u64 - 1, ..expected() };
        let err = decode(bytes.clone(), want).unwrap_err();
        assert!(matches!(err, RaftError::SnapshotTooLarge { shard: 3, .. }), "{err}");
        assert!(decode(bytes.clone(), Expected { bytes_max: bytes.len() as u64, ..expected() }).is_ok());
    }
}
