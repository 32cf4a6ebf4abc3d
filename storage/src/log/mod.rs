//! The node log: one append-only sequence of segment files shared by every shard
//! hosted on a node. It is both the Raft log of every shard group and the store of
//! workflow histories (see `docs/format.md` for the bytes, `docs/architecture.md`
//! for the paths).
//!
//! Contract:
//! - [`NodeLog::append`] completes only when its records are durable (written and
//!   `fdatasync`ed). Records of one call are contiguous and in order; calls complete
//!   in the order the writer took them.
//! - Many concurrent appenders feed one writer thread (group commit): whatever is
//!   queued when the writer is free becomes one write and one `fdatasync`, bounded by
//!   `batch_bytes_max` / `batch_records_max`, waiting at most `batch_wait_us` for more.
//! - After any failed write or sync the log is *failed*: that batch and every later
//!   append get [`StorageError::LogFailed`]. A sync is never retried.
//! - [`NodeLog::read`] returns a record written by a completed append as a zero-copy
//!   slice of the segment's memory map.
//! - Mapped pages do not pile up in the process: recovery releases each segment's
//!   pages after scanning it, and the writer releases every sealed segment's pages
//!   when it rolls to a new one ([`crate::disk::DiskFile::release_pages`]). Reads
//!   fault what they need back in from the page cache.
//! - [`NodeLog::open`] checks every CRC, truncates a torn tail of the newest segment
//!   and refuses to open on corruption anywhere else, naming file and offset.
//!
//! Layout: [`frame`] (record framing) and [`segment`] (file header, names) are pure
//! codecs; [`scan`] is recovery's pure core (chain of batches, torn tail vs
//! corruption); `recover` applies it to the files at open; `writer` is the group
//! commit thread; `shared` holds the segment table and read path; `delete` removes
//! segments without leaving id gaps; `node` is the [`NodeLog`] handle.

use std::path::PathBuf;

use bytes::Bytes;

use crate::disk::IoMode;
use crate::error::{Result, StorageError};
use crate::records::RecordKind;

mod delete;
pub mod frame;
mod node;
mod recover;
pub mod scan;
pub mod segment;
mod shared;
mod writer;

pub use node::NodeLog;

use frame::{FRAME_HEADER_BYTES, FRAME_PAYLOAD_MAX};
use segment::SEGMENT_HEADER_BYTES;

/// Largest segment file accepted (64 GiB).
pub const SEGMENT_BYTES_MAX: u64 = 64 << 30;
/// Longest a writer waits for more appenders (1 s).
pub const BATCH_WAIT_US_MAX: u64 = 1_000_000;

/// Node log tunables. Every limit is explicit.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Directory holding the segment files.
    pub dir: PathBuf,
    /// Size each segment file is preallocated to.
    pub segment_bytes: u64,
    /// Largest record payload accepted; must fit in one segment with its framing.
    pub record_bytes_max: u32,
    /// Most bytes the writer puts in one write + fdatasync.
    pub batch_bytes_max: usize,
    /// Most records the writer puts in one batch.
    pub batch_records_max: usize,
    /// How long the writer waits for more appenders once it has one (0 = no waiting:
    /// it takes whatever queued while the previous sync ran).
    pub batch_wait_us: u64,
    /// Most append calls queued for the writer; beyond it `append` fails with
    /// [`StorageError::Overloaded`].
    pub queue_depth_max: usize,
    /// Write path for the real disk (ignored when a disk is passed explicitly).
    pub io_mode: IoMode,
}

impl LogConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            record_bytes_max: 4 << 20,
            batch_bytes_max: 8 << 20,
            batch_records_max: 16 * 1024,
            batch_wait_us: 0,
            queue_depth_max: 64 * 1024,
            io_mode: IoMode::Auto,
        }
    }
}

impl LogConfig {
    /// Checks every limit; [`NodeLog::open`] calls it.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(StorageError::Config(msg));
        if self.dir.as_os_str().is_empty() {
            return bad("log dir is empty".into());
        }
        if self.record_bytes_max == 0 || self.record_bytes_max > FRAME_PAYLOAD_MAX {
            return bad(format!("record_bytes_max {} not in 1..={FRAME_PAYLOAD_MAX}", self.record_bytes_max));
        }
        let needed = (SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES) as u64 + self.record_bytes_max as u64;
        if self.segment_bytes < needed || self.segment_bytes > SEGMENT_BYTES_MAX {
            return bad(format!(
                "segment_bytes {} not in {needed}..={SEGMENT_BYTES_MAX} (header + one frame of record_bytes_max)",
                self.segment_bytes
            ));
        }
        for (name, value) in [
            ("batch_bytes_max", self.batch_bytes_max),
            ("batch_records_max", self.batch_records_max),
            ("queue_depth_max", self.queue_depth_max),
        ] {
            if value == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if self.batch_wait_us > BATCH_WAIT_US_MAX {
            return bad(format!("batch_wait_us {} above {BATCH_WAIT_US_MAX}", self.batch_wait_us));
        }
        Ok(())
    }

    /// Frame bytes one append call may carry: what fits in an empty segment.
    pub fn append_bytes_max(&self) -> u64 {
        self.segment_bytes.saturating_sub(SEGMENT_HEADER_BYTES as u64)
    }
}

/// Where a record lives: the segment and the byte offset of its frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    pub segment_id: u64,
    pub offset: u64,
}

/// One record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordKind,
    pub payload: Bytes,
}

impl Record {
    pub fn new(kind: RecordKind, payload: impl Into<Bytes>) -> Self {
        Self { kind, payload: payload.into() }
    }
}

/// What [`NodeLog::open`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// Segment files after recovery.
    pub segments: usize,
    /// Valid records found (each passed to `visit`).
    pub records: u64,
    /// Bytes of those records' frames (headers + payloads).
    pub bytes: u64,
    /// The torn tail cut from the newest segment, if any.
    pub torn_tail: Option<TornTail>,
}

/// A torn write at the end of the newest segment, zeroed by recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    pub segment_id: u64,
    /// Where the data now ends (the start of the unfinished write batch).
    pub offset: u64,
    /// Non-zero bytes zeroed from `offset` on.
    pub bytes_dropped: u64,
}

/// One segment file as [`NodeLog::segments`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: u64,
    pub path: PathBuf,
    /// End offset of the durable data (header included).
    pub bytes_used: u64,
    /// The segment appends go to; it cannot be deleted.
    pub active: bool,
}

/// Writer counters since open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    /// Write batches made durable.
    pub batches: u64,
    /// Records in them.
    pub records: u64,
    /// Frame bytes in them.
    pub bytes: u64,
    /// `fdatasync` calls issued by the writer (batches and new segment headers).
    pub syncs: u64,
    /// Records read back with [`NodeLog::read`] (every one touches the segment's
    /// memory map), and their frame bytes.
    pub reads: u64,
    pub read_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_pages_are_released_at_recovery_and_roll_and_reads_are_counted() {
        use crate::disk::sim::SimDisk;
        use std::sync::Arc;

        let disk = SimDisk::new(7);
        let mut config = LogConfig::new("/log");
        config.segment_bytes = 4096;
        config.record_bytes_max = 1024;
        let open = |disk: &SimDisk| NodeLog::open(Arc::new(disk.clone()), config.clone(), &mut |_, _, _| Ok(())).unwrap();
        let (log, _) = open(&disk);
        assert_eq!(disk.stats().page_releases, 0, "a new log has nothing mapped");
        let mut written = Vec::new();
        for i in 0..12u8 {
            let payload = Bytes::from(vec![i; 700]);
            let pos = log.append_blocking(vec![Record::new(RecordKind::RaftEntry, payload.clone())]).unwrap();
            written.push((pos[0], payload));
        }
        let segments = log.segments().len() as u64;
        assert!(segments >= 3, "700-byte records roll 4 KiB segments");
        // Roll k (to segment k + 1) releases the k sealed segments: 1 + 2 + ... .
        let rolls = segments - 1;
        assert_eq!(disk.stats().page_releases, rolls * (rolls + 1) / 2);
        assert_eq!((log.stats().reads, log.stats().read_bytes), (0, 0), "appending reads nothing back");
        for (pos, payload) in &written {
            assert_eq!(&log.read(*pos).unwrap().1, payload, "released segments still read");
        }
        assert_eq!(log.stats().reads, written.len() as u64);
        assert_eq!(log.stats().read_bytes, written.len() as u64 * (16 + 700));
        let before = disk.stats().page_releases;
        log.release_mapped_pages();
        assert_eq!(disk.stats().page_releases, before + segments, "every segment, the active one too");
        log.shutdown();

        let before = disk.stats().page_releases;
        let (log, report) = open(&disk);
        assert_eq!(report.records, written.len() as u64);
        assert_eq!(disk.stats().page_releases, before + segments, "recovery releases each segment it scanned");
        for (pos, payload) in &written {
            assert_eq!(&log.read(*pos).unwrap().1, payload);
        }
    }

    #[test]
    fn default_config_is_valid() {
        LogConfig::new("/tmp/x").validate().unwrap();
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let base = LogConfig::new("/tmp/x");
        type Edit = fn(&mut LogConfig);
        let cases: [(&str, Edit); 8] = [
            ("empty dir", |c| c.dir = PathBuf::new()),
            ("zero record max", |c| c.record_bytes_max = 0),
            ("record does not fit", |c| c.segment_bytes = c.record_bytes_max as u64 + 79),
            ("huge segment", |c| c.segment_bytes = SEGMENT_BYTES_MAX + 1),
            ("zero batch bytes", |c| c.batch_bytes_max = 0),
            ("zero batch records", |c| c.batch_records_max = 0),
            ("zero queue", |c| c.queue_depth_max = 0),
            ("long wait", |c| c.batch_wait_us = BATCH_WAIT_US_MAX + 1),
        ];
        for (name, edit) in cases {
            let mut c = base.clone();
            edit(&mut c);
            assert!(matches!(c.validate(), Err(StorageError::Config(_))), "{name} accepted");
        }
        let mut tight = base.clone();
        tight.segment_bytes = tight.record_bytes_max as u64 + 80;
        tight.validate().expect("exactly header + one max frame fits");
    }
}
