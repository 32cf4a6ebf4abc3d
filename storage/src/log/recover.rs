//! Recovery at open: find the segments, check every header and frame, cut a torn
//! tail of the newest segment, refuse corruption anywhere else, and hand the
//! writer the place where appending resumes.
//!
//! Rules (see `docs/format.md`):
//! - Segment ids must be contiguous; a gap is corruption.
//! - A bad header is corruption, except on the newest segment when no valid frame
//!   follows it: a crash while the segment was being created. That file is removed.
//! - A hollow segment (deleted, see `delete.rs`) has no records but still carries
//!   the chain; it is never the newest. Hollow segments older than every live one
//!   are unlinked; leftover temporary files of an interrupted hollowing removed.
//! - Each header must agree with its predecessor: first batch number follows the
//!   predecessor's last batch, and the predecessor's data ends where the header
//!   says it did when the segment was created (a lost tail of a sealed segment).
//! - Frame damage: [`Verdict`] decides torn tail (newest segment, no later batch)
//!   or corruption.
//!
//! The scan reads every page of every segment through its memory map; each
//! segment's pages are released from the map once it is scanned, so recovering a
//! large log does not leave the whole log resident in the process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::delete::unlink_leading_hollow;
use super::scan::{find_any_frame, scan_segment, Verdict};
use super::segment::{
    create_segment, is_hollow_temp_name, parse_segment_file_name, segment_path, HollowEnd, SegmentHeader, SEGMENT_HEADER_BYTES,
};
use super::shared::SegmentEntry;
use super::writer::Active;
use super::{LogConfig, LogPosition, RecoveryReport, TornTail};
use crate::disk::{Disk, DiskFile};
use crate::error::{Result, StorageError};
use crate::records::RecordKind;

/// Batch number of the first batch of a brand-new log.
const FIRST_BATCH_SEQ: u32 = 1;
/// Zeros written per call when cutting a torn tail.
const ZERO_CHUNK: usize = 1 << 20;

pub(super) type Visit<'a> = &'a mut dyn FnMut(LogPosition, RecordKind, Bytes) -> Result<()>;

pub(super) struct Recovered {
    pub(super) segments: BTreeMap<u64, SegmentEntry>,
    pub(super) hollow: BTreeMap<u64, SegmentHeader>,
    pub(super) active: Active,
    pub(super) next_batch_seq: u32,
    pub(super) report: RecoveryReport,
}

/// What the previous (older) segment left for the next one to check against.
struct Prev {
    id: u64,
    path: PathBuf,
    end: u64,
    next_seq: u32,
    capacity: u64,
}

fn corrupt(file: &Path, offset: u64, detail: String) -> StorageError {
    StorageError::Corrupt { file: file.to_path_buf(), offset, detail }
}

pub(super) fn recover(disk: &dyn Disk, config: &LogConfig, visit: Visit<'_>) -> Result<Recovered> {
    let dir = &config.dir;
    disk.create_dir_all(dir).map_err(|e| StorageError::io("create log directory", dir, e))?;
    let mut ids = list_segment_ids(disk, dir)?;
    let removed = drop_torn_creation(disk, config, &mut ids)?;
    let mut segments = BTreeMap::new();
    let mut hollow = BTreeMap::new();
    let mut report = RecoveryReport::default();
    let mut prev: Option<Prev> = None;
    for (i, id) in ids.iter().enumerate() {
        let newest = i + 1 == ids.len();
        let (next, header, found) = recover_segment(disk, config, *id, newest, prev.as_ref(), &mut report, visit)?;
        match found {
            Some(file) => {
                let entry = SegmentEntry { header, path: next.path.clone(), file, bytes_used: next.end, active: false };
                segments.insert(*id, entry);
            }
            None => {
                hollow.insert(*id, header);
            }
        }
        prev = Some(next);
    }
    let (active, next_batch_seq) = match prev {
        Some(p) => {
            let file = segments.get(&p.id).expect("the newest segment is live").file.clone();
            (Active { id: p.id, file, end: p.end, capacity: p.capacity }, p.next_seq)
        }
        None => create_first(disk, config, removed.unwrap_or(1), &mut segments)?,
    };
    segments.get_mut(&active.id).expect("active segment is in the table").active = true;
    let oldest_live = *segments.keys().next().expect("the active segment is live");
    unlink_leading_hollow(disk, dir, oldest_live, &mut hollow)?;
    report.segments = segments.len();
    Ok(Recovered { segments, hollow, active, next_batch_seq, report })
}

fn list_segment_ids(disk: &dyn Disk, dir: &Path) -> Result<Vec<u64>> {
    let names = disk.list(dir).map_err(|e| StorageError::io("list log directory", dir, e))?;
    let mut ids = Vec::with_capacity(names.len());
    let mut strays = 0;
    for name in &names {
        if let Some(id) = parse_segment_file_name(name) {
            ids.push(id);
        } else if is_hollow_temp_name(name) {
            let path = dir.join(name);
            disk.remove(&path).map_err(|e| StorageError::io("remove leftover hollow segment", &path, e))?;
            strays += 1;
        } else {
            tracing::warn!(dir = %dir.display(), %name, "ignoring a file that is not a log segment");
        }
    }
    if strays > 0 {
        disk.sync_dir(dir).map_err(|e| StorageError::io("sync log directory", dir, e))?;
    }
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[1] != w[0] + 1) {
        let detail = format!("segment ids jump from {} to {}: segments are missing", w[0], w[1]);
        return Err(corrupt(&segment_path(dir, w[1]), 0, detail));
    }
    Ok(ids)
}

/// Reads a whole segment file (a zero-copy map on real disks).
fn load(disk: &dyn Disk, path: &Path) -> Result<(Arc<dyn DiskFile>, Bytes)> {
    let file = disk.open(path).map_err(|e| StorageError::io("open segment", path, e))?;
    let io = |e| StorageError::io("read segment", path, e);
    let len = file.len().map_err(io)?;
    let len = usize::try_from(len).map_err(|_| corrupt(path, 0, format!("segment length {len} not addressable")))?;
    let bytes = file.read(0, len).map_err(io)?;
    Ok((file, bytes))
}

/// Removes the newest segment if its creation never completed (bad header, no
/// frames); returns its id.
fn drop_torn_creation(disk: &dyn Disk, config: &LogConfig, ids: &mut Vec<u64>) -> Result<Option<u64>> {
    let Some(&newest) = ids.last() else { return Ok(None) };
    let path = segment_path(&config.dir, newest);
    let (_, bytes) = load(disk, &path)?;
    let Err(why) = SegmentHeader::decode_any(&bytes) else { return Ok(None) };
    if let Some(offset) = find_any_frame(&bytes, SEGMENT_HEADER_BYTES) {
        return Err(corrupt(&path, 0, format!("{why}, yet a valid frame follows at offset {offset}")));
    }
    tracing::warn!(path = %path.display(), %why, "removing a segment whose creation did not complete");
    disk.remove(&path).map_err(|e| StorageError::io("remove torn segment", &path, e))?;
    disk.sync_dir(&config.dir).map_err(|e| StorageError::io("sync log directory", &config.dir, e))?;
    ids.pop();
    Ok(Some(newest))
}

/// What recovering one segment yields: what its successor is checked against, its
/// header, and its file (`None` if hollow).
type SegmentFound = (Prev, SegmentHeader, Option<Arc<dyn DiskFile>>);

/// Checks segment `id` and hands its records to `visit`.
fn recover_segment(
    disk: &dyn Disk,
    config: &LogConfig,
    id: u64,
    newest: bool,
    prev: Option<&Prev>,
    report: &mut RecoveryReport,
    visit: Visit<'_>,
) -> Result<SegmentFound> {
    let path = segment_path(&config.dir, id);
    let (file, bytes) = load(disk, &path)?;
    let (header, hollow) = SegmentHeader::decode_any(&bytes).map_err(|e| corrupt(&path, 0, e.to_string()))?;
    if header.segment_id != id {
        return Err(corrupt(&path, 16, format!("header names segment {}, file name {id}", header.segment_id)));
    }
    if let Some(prev) = prev {
        check_follows(prev, &header, &path)?;
    }
    if let Some(end) = hollow {
        let prev = check_hollow(id, path, end, bytes.len(), newest)?;
        return Ok((prev, header, None));
    }
    let scan = scan_segment(&bytes, SEGMENT_HEADER_BYTES, header.first_batch_seq, &mut |offset, frame| {
        visit(LogPosition { segment_id: id, offset }, frame.kind, frame.payload)
    })?;
    match scan.verdict(newest) {
        Verdict::Clean => {}
        Verdict::Corrupt { offset, detail } => return Err(corrupt(&path, offset, detail)),
        Verdict::TornTail { offset, bytes_dropped } => {
            cut_tail(&*file, &path, offset, bytes_dropped)?;
            report.torn_tail = Some(TornTail { segment_id: id, offset, bytes_dropped });
        }
    }
    report.records += scan.records;
    report.bytes += scan.bytes;
    // The scan touched every page of the file; nothing needs them mapped now.
    if let Err(e) = file.release_pages(0, bytes.len() as u64) {
        tracing::warn!(path = %path.display(), error = %e, "could not release the scanned segment's mapped pages");
    }
    let prev = Prev { id, path, end: scan.end, next_seq: scan.next_batch_seq, capacity: bytes.len() as u64 };
    Ok((prev, header, Some(file)))
}

/// A hollow segment is exactly its header, never the newest, and ends past its header.
fn check_hollow(id: u64, path: PathBuf, end: HollowEnd, len: usize, newest: bool) -> Result<Prev> {
    if newest {
        return Err(corrupt(&path, 32, "the newest segment is hollow (deleted): its successor is missing".into()));
    }
    if len != SEGMENT_HEADER_BYTES {
        return Err(corrupt(&path, SEGMENT_HEADER_BYTES as u64, format!("hollow segment is {len} bytes long")));
    }
    if end.data_end < SEGMENT_HEADER_BYTES as u64 {
        return Err(corrupt(&path, 40, format!("hollow segment data end {} inside the header", end.data_end)));
    }
    Ok(Prev { id, path, end: end.data_end, next_seq: end.next_batch_seq, capacity: SEGMENT_HEADER_BYTES as u64 })
}

/// Checks that segment `header` continues `prev` exactly.
fn check_follows(prev: &Prev, header: &SegmentHeader, path: &Path) -> Result<()> {
    if header.prev_segment_end != 0 && header.prev_segment_end != prev.end {
        let detail = format!(
            "data ends at {} but segment {} was created after it ended at {}: the tail is lost",
            prev.end, header.segment_id, header.prev_segment_end
        );
        return Err(corrupt(&prev.path, prev.end.min(header.prev_segment_end), detail));
    }
    if header.first_batch_seq != prev.next_seq {
        let detail = format!(
            "first write batch {} does not follow batch {} of segment {}",
            header.first_batch_seq,
            prev.next_seq.wrapping_sub(1),
            prev.id
        );
        return Err(corrupt(path, 12, detail));
    }
    Ok(())
}

/// Zeroes `[offset, offset + len)` and syncs, so the torn bytes can never be
/// mistaken for data by a later recovery.
fn cut_tail(file: &dyn DiskFile, path: &Path, offset: u64, len: u64) -> Result<()> {
    tracing::warn!(path = %path.display(), offset, bytes = len, "cutting a torn tail from the newest segment");
    let zeros = vec![0u8; (len as usize).min(ZERO_CHUNK)];
    let mut at = offset;
    while at < offset + len {
        let n = (offset + len - at).min(zeros.len() as u64) as usize;
        file.write_at(at, &[&zeros[..n]]).map_err(|e| StorageError::io("zero torn tail", path, e))?;
        at += n as u64;
    }
    file.sync_data().map_err(|e| StorageError::io("sync torn tail cut", path, e))
}

/// Creates the first segment of an empty log (or re-creates a torn one).
fn create_first(disk: &dyn Disk, config: &LogConfig, id: u64, segments: &mut BTreeMap<u64, SegmentEntry>) -> Result<(Active, u32)> {
    assert!(segments.is_empty(), "a first segment is created only in an empty log");
    let header = SegmentHeader { segment_id: id, first_batch_seq: FIRST_BATCH_SEQ, prev_segment_end: 0 };
    let file = create_segment(disk, &config.dir, header, config.segment_bytes)?;
    let end = SEGMENT_HEADER_BYTES as u64;
    let path = segment_path(&config.dir, id);
    let entry = SegmentEntry { header, path, file: file.clone(), bytes_used: end, active: false };
    segments.insert(id, entry);
    Ok((Active { id, file, end, capacity: config.segment_bytes }, FIRST_BATCH_SEQ))
}
