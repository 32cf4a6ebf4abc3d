//! State shared by the log handles and the writer thread: the segment table, the
//! failed state, counters, and the read and delete paths.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use super::frame::{decode_frame_at, frame_len, payload_len, FRAME_HEADER_BYTES};
use super::segment::{SegmentHeader, SEGMENT_HEADER_BYTES};
use super::{LogConfig, LogPosition, LogStats, SegmentInfo};
use crate::disk::{Disk, DiskFile};
use crate::error::{Result, StorageError};
use crate::records::RecordKind;

/// One open segment.
#[derive(Clone)]
pub(super) struct SegmentEntry {
    pub(super) header: SegmentHeader,
    pub(super) path: PathBuf,
    pub(super) file: Arc<dyn DiskFile>,
    /// End of durable data: reads beyond it are refused.
    pub(super) bytes_used: u64,
    pub(super) active: bool,
}

pub(super) struct Shared {
    pub(super) disk: Arc<dyn Disk>,
    pub(super) config: LogConfig,
    /// Live segments (hollow ones are not readable and not listed).
    pub(super) segments: RwLock<BTreeMap<u64, SegmentEntry>>,
    /// Hollow segments on disk, by id. Its lock also serializes deletions.
    pub(super) hollow: Mutex<BTreeMap<u64, SegmentHeader>>,
    failure: OnceLock<String>,
    batches: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    syncs: AtomicU64,
    reads: AtomicU64,
    read_bytes: AtomicU64,
}

impl Shared {
    pub(super) fn new(
        disk: Arc<dyn Disk>,
        config: LogConfig,
        segments: BTreeMap<u64, SegmentEntry>,
        hollow: BTreeMap<u64, SegmentHeader>,
    ) -> Self {
        assert_eq!(segments.values().filter(|s| s.active).count(), 1, "exactly one active segment after recovery");
        assert!(segments.values().next_back().is_some_and(|s| s.active), "the newest segment is the active one");
        assert!(hollow.keys().all(|id| !segments.contains_key(id)), "a segment is live or hollow, not both");
        Self {
            disk,
            config,
            segments: RwLock::new(segments),
            hollow: Mutex::new(hollow),
            failure: OnceLock::new(),
            batches: AtomicU64::new(0),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
        }
    }

    /// Moves the log to the failed state (the first reason sticks); returns the
    /// stored reason.
    pub(super) fn fail(&self, reason: String) -> String {
        self.failure
            .get_or_init(|| {
                tracing::error!(%reason, "node log failed; no further appends are accepted");
                reason
            })
            .clone()
    }

    pub(super) fn failure(&self) -> Option<String> {
        self.failure.get().cloned()
    }

    /// Records that the active segment `id` now holds durable data up to `end`.
    pub(super) fn publish_end(&self, id: u64, end: u64) {
        let mut segs = self.segments.write();
        let entry = segs.get_mut(&id).expect("the writer publishes only to a segment in the table");
        assert!(entry.active, "segment {id} receives appends but is not active");
        assert!(end >= entry.bytes_used, "segment {id} end moves backwards: {} -> {end}", entry.bytes_used);
        entry.bytes_used = end;
    }

    /// Adds a freshly created segment as the active one; the previous one is sealed.
    pub(super) fn install_active(&self, id: u64, entry: SegmentEntry) {
        assert!(entry.active, "a newly installed segment is active");
        let mut segs = self.segments.write();
        let prev = segs.values_mut().next_back().expect("a log always has a segment");
        assert!(prev.active, "only the active segment is followed by a new one");
        prev.active = false;
        let last = *segs.keys().next_back().expect("non-empty");
        assert_eq!(id, last + 1, "segment ids grow by one");
        segs.insert(id, entry);
    }

    pub(super) fn count_batch(&self, records: u64, bytes: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn count_sync(&self) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn stats(&self) -> LogStats {
        LogStats {
            batches: self.batches.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            read_bytes: self.read_bytes.load(Ordering::Relaxed),
        }
    }

    pub(super) fn segments(&self) -> Vec<SegmentInfo> {
        let segs = self.segments.read();
        segs.iter().map(|(id, s)| SegmentInfo { id: *id, path: s.path.clone(), bytes_used: s.bytes_used, active: s.active }).collect()
    }

    /// Drops the mapped pages of every sealed segment (`sealed_only`) or of every
    /// segment from this process's memory map (see `DiskFile::release_pages`; the
    /// page cache keeps them and reads fault them back in). Advisory: a failure is
    /// logged, never returned. Returns how many segments were asked.
    pub(super) fn release_pages(&self, sealed_only: bool) -> usize {
        let files: Vec<(u64, Arc<dyn DiskFile>, u64)> = {
            let segs = self.segments.read();
            segs.iter().filter(|(_, s)| !(sealed_only && s.active)).map(|(id, s)| (*id, s.file.clone(), s.bytes_used)).collect()
        };
        for (id, file, used) in &files {
            if let Err(e) = file.release_pages(0, *used) {
                tracing::warn!(segment = id, error = %e, "could not release mapped pages of a log segment");
            }
        }
        files.len()
    }

    /// The record at `pos`, its CRC checked, as a zero-copy slice.
    pub(super) fn read(&self, pos: LogPosition) -> Result<(RecordKind, Bytes)> {
        let no_record = |detail: String| StorageError::NoRecord { pos, detail };
        let (path, file, used) = {
            let segs = self.segments.read();
            let s = segs.get(&pos.segment_id).ok_or_else(|| no_record("no such segment".into()))?;
            (s.path.clone(), s.file.clone(), s.bytes_used)
        };
        let header_end = pos.offset.checked_add(FRAME_HEADER_BYTES as u64);
        if pos.offset < SEGMENT_HEADER_BYTES as u64 || header_end.is_none_or(|end| end > used) {
            return Err(no_record(format!("offset outside the segment's data (0..{used})")));
        }
        let io = |e| StorageError::io("read log record", path.clone(), e);
        let header = file.read(pos.offset, FRAME_HEADER_BYTES).map_err(io)?;
        let len = payload_len(&header).expect("read returned a whole frame header") as usize;
        if pos.offset + frame_len(len) as u64 > used {
            return Err(no_record(format!("no frame starts here (length {len} runs past the data end {used})")));
        }
        let buf = file.read(pos.offset, frame_len(len)).map_err(io)?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.read_bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        let frame = decode_frame_at(&buf, 0).map_err(|e| StorageError::Corrupt {
            file: path.clone(),
            offset: pos.offset,
            detail: format!("record read back: {e}"),
        })?;
        Ok((frame.kind, frame.payload))
    }
}
