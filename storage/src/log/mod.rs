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
//! - [`NodeLog::open`] checks every CRC, truncates a torn tail of the newest segment
//!   and refuses to open on corruption anywhere else, naming file and offset.

use std::path::PathBuf;

use crate::disk::IoMode;

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

/// Where a record lives: the segment and the byte offset of its frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    pub segment_id: u64,
    pub offset: u64,
}
