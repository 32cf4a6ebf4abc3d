//! Shard snapshot files: `snapshots/shard-SSSSS-IIIIIIIIIIIIIIIIIIII.snap`.
//!
//! Layout (little-endian), all covered by the trailing CRC32:
//! `magic "HGSNAP02" | shard u32 | index u64 | term u64 | log floor (segment u64,
//! offset u64) | conf state (len-prefixed ConfStateRecord payload) | data
//! (len-prefixed shard-state snapshot) | crc u32`. Version 1 (`HGSNAP01`, no log
//! floor) is still read, with the floor at the start of the log.
//!
//! The **log floor** is where this shard's Raft records in the node log start to
//! count: recovery ignores the shard's entries and conf-state records at earlier
//! positions. A snapshot installed from a leader replaces the whole Raft log,
//! including entries above its index that the old log held (Raft discards them);
//! its floor is a position written just before the install, so those entries stay
//! discarded after a restart whatever space reclaim deletes meanwhile. Later
//! snapshots carry the floor forward.
//!
//! Written as `*.snap.tmp`, synced, renamed, directory synced: a `.snap` file is
//! complete or absent. A `.snap` that fails its check is corruption (the log
//! entries it covered may be gone), so loading refuses it instead of falling back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hourglass_storage::codec::{Decoder, Encoder};
use hourglass_storage::disk::Disk;
use hourglass_storage::records::{ConfStateRecord, ShardId};
use hourglass_storage::LogPosition;

use crate::error::{RaftError, Result};

const MAGIC: &[u8; 8] = b"HGSNAP02";
/// Version 1: no log floor.
const MAGIC_V1: &[u8; 8] = b"HGSNAP01";

/// A decoded snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    pub shard: ShardId,
    pub index: u64,
    pub term: u64,
    /// Raft records of this shard before this position are superseded (module docs).
    pub log_floor: LogPosition,
    pub conf_state: ConfStateRecord,
    /// The shard state machine's snapshot (zero-copy slice of the file's mapping).
    pub data: Bytes,
}

pub fn file_name(shard: ShardId, index: u64) -> String {
    format!("shard-{shard:05}-{index:020}.snap")
}

fn parse_name(name: &str) -> Option<(ShardId, u64)> {
    let rest = name.strip_prefix("shard-")?.strip_suffix(".snap")?;
    let (shard, index) = rest.split_once('-')?;
    Some((shard.parse().ok()?, index.parse().ok()?))
}

/// The whole file's bytes (what [`SnapshotDir::write`] writes, in three pieces).
pub fn encode(snap: &SnapshotFile) -> Bytes {
    let (head, crc) = head_and_crc(snap).expect("snapshot data longer than u32::MAX bytes cannot be encoded");
    let mut out = Vec::with_capacity(head.len() + snap.data.len() + 4);
    out.extend_from_slice(&head);
    out.extend_from_slice(&snap.data);
    out.extend_from_slice(&crc);
    Bytes::from(out)
}

/// The bytes before the shard data (magic, ids, conf state, the data's length) and
/// the trailing CRC, so the data itself is never copied to write a file.
fn head_and_crc(snap: &SnapshotFile) -> std::result::Result<(Bytes, [u8; 4]), String> {
    let conf = snap.conf_state.encode();
    let data_len =
        u32::try_from(snap.data.len()).map_err(|_| format!("shard data of {} bytes is longer than u32::MAX", snap.data.len()))?;
    let mut e = Encoder::with_capacity(52 + conf.len());
    e.u64(u64::from_le_bytes(*MAGIC)).u32(snap.shard).u64(snap.index).u64(snap.term);
    e.u64(snap.log_floor.segment_id).u64(snap.log_floor.offset);
    e.bytes(&conf).u32(data_len);
    let head = e.finish();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head);
    crc.update(&snap.data);
    Ok((head, crc.finalize().to_le_bytes()))
}

pub fn decode(file: &str, bytes: Bytes) -> Result<SnapshotFile> {
    let bad = |detail: String| RaftError::Snapshot { file: file.to_string(), detail };
    if bytes.len() < 12 {
        return Err(bad(format!("{} bytes is too short", bytes.len())));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(crc.try_into().expect("split_at gave 4 bytes"));
    if crc32fast::hash(body) != stored {
        return Err(bad("checksum mismatch".into()));
    }
    let mut d = Decoder::new(bytes.slice(..body.len()));
    let decoded = (|| {
        let magic = d.u64()?.to_le_bytes();
        if magic != *MAGIC && magic != *MAGIC_V1 {
            return Err(d.invalid("magic", "not a snapshot file"));
        }
        let (shard, index, term) = (d.u32()?, d.u64()?, d.u64()?);
        let log_floor =
            if magic == *MAGIC { LogPosition { segment_id: d.u64()?, offset: d.u64()? } } else { LogPosition { segment_id: 0, offset: 0 } };
        let conf_state = ConfStateRecord::decode(d.bytes()?)?;
        let data = d.bytes()?;
        Ok(SnapshotFile { shard, index, term, log_floor, conf_state, data })
    })()
    .map_err(|e: hourglass_storage::codec::DecodeError| bad(e.to_string()))?;
    if d.remaining() != 0 {
        return Err(bad(format!("{} trailing bytes", d.remaining())));
    }
    Ok(decoded)
}

/// Reads and writes the snapshot directory through the disk seam.
pub struct SnapshotDir {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
}

impl SnapshotDir {
    pub fn open(disk: Arc<dyn Disk>, dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        disk.create_dir_all(&dir).map_err(|e| io_err(&dir, "create", e))?;
        Ok(Self { disk, dir })
    }

    /// Writes `snap` durably, then removes the shard's older snapshots. The shard
    /// data (tens of MiB at scale) is written from where it is, not copied into a
    /// file image first.
    pub fn write(&self, snap: &SnapshotFile) -> Result<()> {
        let name = file_name(snap.shard, snap.index);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let (head, crc) = head_and_crc(snap).map_err(|detail| RaftError::Snapshot { file: name.clone(), detail })?;
        let len = (head.len() + snap.data.len() + crc.len()) as u64;
        let _ = self.disk.remove(&tmp);
        let file = self.disk.create(&tmp, len).map_err(|e| io_err(&tmp, "create", e))?;
        let mut at = 0;
        for piece in [&head[..], &snap.data[..], &crc[..]] {
            file.write_at(at, &[piece]).map_err(|e| io_err(&tmp, "write", e))?;
            at += piece.len() as u64;
        }
        file.sync_data().map_err(|e| io_err(&tmp, "sync", e))?;
        drop(file);
        let path = self.dir.join(&name);
        self.disk.rename(&tmp, &path).map_err(|e| io_err(&path, "rename", e))?;
        self.disk.sync_dir(&self.dir).map_err(|e| io_err(&self.dir, "sync", e))?;
        for (shard, index, old) in self.list()? {
            if shard == snap.shard && index < snap.index {
                let _ = self.disk.remove(&self.dir.join(old));
            }
        }
        Ok(())
    }

    /// The newest snapshot of `shard`, if any.
    pub fn load_newest(&self, shard: ShardId) -> Result<Option<SnapshotFile>> {
        let newest = self.list()?.into_iter().filter(|(s, _, _)| *s == shard).max_by_key(|(_, index, _)| *index);
        let Some((_, index, name)) = newest else { return Ok(None) };
        let path = self.dir.join(&name);
        let file = self.disk.open(&path).map_err(|e| io_err(&path, "open", e))?;
        let len = file.len().map_err(|e| io_err(&path, "stat", e))?;
        let bytes = file.read(0, len as usize).map_err(|e| io_err(&path, "read", e))?;
        let snap = decode(&path.display().to_string(), bytes)?;
        if snap.shard != shard || snap.index != index {
            return Err(RaftError::Snapshot {
                file: path.display().to_string(),
                detail: format!("holds shard {} index {}, name says shard {shard} index {index}", snap.shard, snap.index),
            });
        }
        Ok(Some(snap))
    }

    fn list(&self) -> Result<Vec<(ShardId, u64, String)>> {
        let names = self.disk.list(&self.dir).map_err(|e| io_err(&self.dir, "list", e))?;
        Ok(names.into_iter().filter_map(|n| parse_name(&n).map(|(s, i)| (s, i, n))).collect())
    }
}

fn io_err(path: &Path, op: &str, e: std::io::Error) -> RaftError {
    RaftError::Snapshot { file: path.display().to_string(), detail: format!("{op}: {e}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SnapshotFile {
        SnapshotFile {
            shard: 7,
            index: 1234,
            term: 3,
            log_floor: LogPosition { segment_id: 2, offset: 640 },
            conf_state: ConfStateRecord { shard: 7, voters: vec![1], ..Default::default() },
            data: Bytes::from_static(b"state bytes"),
        }
    }

    #[test]
    fn round_trips() {
        let snap = sample();
        assert_eq!(decode("f", encode(&snap)).unwrap(), snap);
    }

    #[test]
    fn version_1_files_read_with_the_floor_at_the_start_of_the_log() {
        let snap = SnapshotFile { log_floor: LogPosition { segment_id: 0, offset: 0 }, ..sample() };
        let conf = snap.conf_state.encode();
        let mut e = Encoder::new();
        e.u64(u64::from_le_bytes(*MAGIC_V1)).u32(snap.shard).u64(snap.index).u64(snap.term);
        e.bytes(&conf).bytes(&snap.data);
        let mut bytes = e.finish().to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
        assert_eq!(decode("f", Bytes::from(bytes)).unwrap(), snap);
    }

    #[test]
    fn any_flipped_bit_or_truncation_is_rejected() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 0x10;
            assert!(decode("f", Bytes::from(b)).is_err(), "flip at {i} accepted");
            assert!(decode("f", bytes.slice(..i)).is_err(), "truncation at {i} accepted");
        }
    }

    #[test]
    fn written_files_are_the_encoding() {
        let disk = hourglass_storage::disk::sim::SimDisk::new(5);
        let dir = SnapshotDir::open(Arc::new(disk.clone()), "/s").unwrap();
        let snap = sample();
        dir.write(&snap).unwrap();
        let on_disk = disk.contents(&Path::new("/s").join(file_name(7, 1234))).unwrap();
        assert_eq!(on_disk, encode(&snap).to_vec());
        assert_eq!(dir.load_newest(7).unwrap(), Some(snap));
    }

    #[test]
    fn names_parse_back() {
        assert_eq!(parse_name(&file_name(3, 99)), Some((3, 99)));
        assert_eq!(parse_name("shard-x-1.snap"), None);
        assert_eq!(parse_name("shard-00003-00000000000000000099.snap.tmp"), None);
    }
}
