//! The typed payloads of node-log records. The frame (length, CRC, kind) is the
//! log's business (`log::frame`); this module owns what is inside a frame.
//! Byte layouts are documented in `docs/format.md`; keep them in sync.

use bytes::Bytes;

use crate::codec::{DecodeError, Decoder, Encoder};
use crate::log::LogPosition;

/// Identifies a shard (and its Raft group) within the cluster.
pub type ShardId = u32;

/// The kind byte of a log record frame. `0` is never written: a zeroed frame
/// header marks the end of the data in a preallocated segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// A Raft log entry of one shard; for normal entries `data` is an encoded
    /// [`crate::state::Transition`].
    RaftEntry = 1,
    /// A shard's Raft hard state (term, vote, commit).
    HardState = 2,
    /// A shard's Raft membership.
    ConfState = 3,
    /// A live record copied forward by space reclaim.
    Relocated = 4,
}

impl RecordKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::RaftEntry,
            2 => Self::HardState,
            3 => Self::ConfState,
            4 => Self::Relocated,
            _ => return None,
        })
    }
}

/// A Raft entry as stored. `entry_type` is raft-rs's `EntryType` as a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftEntryRecord {
    pub shard: ShardId,
    pub term: u64,
    pub index: u64,
    pub entry_type: u8,
    pub context: Bytes,
    pub data: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardStateRecord {
    pub shard: ShardId,
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfStateRecord {
    pub shard: ShardId,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub voters_outgoing: Vec<u64>,
    pub learners_next: Vec<u64>,
    pub auto_leave: bool,
}

/// A copy of a live record made by space reclaim: `kind`/`payload` are the original
/// record's, `from` is where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelocatedRecord {
    pub shard: ShardId,
    pub from: LogPosition,
    pub kind: RecordKind,
    pub payload: Bytes,
}

impl RaftEntryRecord {
    pub fn encode(&self) -> Bytes {
        let mut e = Encoder::with_capacity(29 + 8 + self.context.len() + self.data.len());
        e.u32(self.shard).u64(self.term).u64(self.index).u8(self.entry_type);
        e.bytes(&self.context).bytes(&self.data);
        e.finish()
    }
    pub fn decode(payload: Bytes) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(payload);
        let rec = Self { shard: d.u32()?, term: d.u64()?, index: d.u64()?, entry_type: d.u8()?, context: d.bytes()?, data: d.bytes()? };
        d.finish()?;
        Ok(rec)
    }
}

impl HardStateRecord {
    pub fn encode(&self) -> Bytes {
        let mut e = Encoder::with_capacity(28);
        e.u32(self.shard).u64(self.term).u64(self.vote).u64(self.commit);
        e.finish()
    }
    pub fn decode(payload: Bytes) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(payload);
        let rec = Self { shard: d.u32()?, term: d.u64()?, vote: d.u64()?, commit: d.u64()? };
        d.finish()?;
        Ok(rec)
    }
}

fn put_ids(e: &mut Encoder, ids: &[u64]) {
    e.count(ids.len());
    for id in ids {
        e.u64(*id);
    }
}

fn get_ids(d: &mut Decoder) -> Result<Vec<u64>, DecodeError> {
    let n = d.count(8)?;
    (0..n).map(|_| d.u64()).collect()
}

impl ConfStateRecord {
    pub fn encode(&self) -> Bytes {
        let mut e = Encoder::new();
        e.u32(self.shard);
        for ids in [&self.voters, &self.learners, &self.voters_outgoing, &self.learners_next] {
            put_ids(&mut e, ids);
        }
        e.bool(self.auto_leave);
        e.finish()
    }
    pub fn decode(payload: Bytes) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(payload);
        let rec = Self {
            shard: d.u32()?,
            voters: get_ids(&mut d)?,
            learners: get_ids(&mut d)?,
            voters_outgoing: get_ids(&mut d)?,
            learners_next: get_ids(&mut d)?,
            auto_leave: d.bool()?,
        };
        d.finish()?;
        Ok(rec)
    }
}

impl RelocatedRecord {
    pub fn encode(&self) -> Bytes {
        let mut e = Encoder::with_capacity(29 + self.payload.len());
        e.u32(self.shard).u64(self.from.segment_id).u64(self.from.offset).u8(self.kind as u8);
        e.bytes(&self.payload);
        e.finish()
    }
    pub fn decode(payload: Bytes) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(payload);
        let shard = d.u32()?;
        let from = LogPosition { segment_id: d.u64()?, offset: d.u64()? };
        let kind_byte = d.u8()?;
        let kind = RecordKind::from_u8(kind_byte)
            .filter(|k| *k != RecordKind::Relocated)
            .ok_or_else(|| d.invalid("relocated record kind", format!("{kind_byte}")))?;
        let rec = Self { shard, from, kind, payload: d.bytes()? };
        d.finish()?;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_round_trips() {
        let entry = RaftEntryRecord {
            shard: 3,
            term: 2,
            index: 99,
            entry_type: 0,
            context: Bytes::from_static(b"ctx"),
            data: Bytes::from_static(b"data"),
        };
        assert_eq!(RaftEntryRecord::decode(entry.encode()).unwrap(), entry);
        let hs = HardStateRecord { shard: 1, term: 5, vote: 1, commit: 42 };
        assert_eq!(HardStateRecord::decode(hs.encode()).unwrap(), hs);
        let cs = ConfStateRecord { shard: 1, voters: vec![1, 2, 3], auto_leave: true, ..Default::default() };
        assert_eq!(ConfStateRecord::decode(cs.encode()).unwrap(), cs);
        let rel = RelocatedRecord {
            shard: 1,
            from: LogPosition { segment_id: 4, offset: 64 },
            kind: RecordKind::RaftEntry,
            payload: entry.encode(),
        };
        assert_eq!(RelocatedRecord::decode(rel.encode()).unwrap(), rel);
    }

    #[test]
    fn truncations_and_trailing_bytes_are_errors() {
        let hs = HardStateRecord { shard: 1, term: 5, vote: 1, commit: 42 }.encode();
        for cut in 0..hs.len() {
            assert!(HardStateRecord::decode(hs.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut long = hs.to_vec();
        long.push(0);
        assert!(HardStateRecord::decode(Bytes::from(long)).is_err());
    }

    #[test]
    fn nested_relocation_is_rejected() {
        let rel = RelocatedRecord {
            shard: 1,
            from: LogPosition { segment_id: 4, offset: 64 },
            kind: RecordKind::HardState,
            payload: Bytes::new(),
        };
        let mut bytes = rel.encode().to_vec();
        bytes[20] = RecordKind::Relocated as u8;
        assert!(RelocatedRecord::decode(Bytes::from(bytes)).is_err());
    }
}
