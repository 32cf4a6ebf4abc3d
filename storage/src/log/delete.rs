//! Deleting segments without ever leaving a gap in segment ids.
//!
//! Recovery treats a missing segment id as corruption (a lost file must not go
//! unnoticed), yet space reclaim deletes whichever sealed segments hold nothing
//! live. So:
//! - the oldest segment on disk is unlinked (then the directory synced);
//! - any other sealed segment is *hollowed*: atomically replaced by its header
//!   alone, which still records where its data ended and its last batch number,
//!   so the chain checks across it keep working;
//! - hollow segments that end up oldest are unlinked, oldest first, each unlink
//!   synced before the next, so a crash never leaves a gap.

use std::collections::BTreeMap;
use std::path::Path;

use super::segment::{hollow_out, segment_path, HollowEnd, SegmentHeader};
use super::shared::{SegmentEntry, Shared};
use super::LogPosition;
use crate::disk::Disk;
use crate::error::{Result, StorageError};

/// Deletes sealed segment `id` (see the module docs).
pub(super) fn delete_segment(shared: &Shared, id: u64) -> Result<()> {
    let mut hollow = shared.hollow.lock();
    let (entry, next_batch_seq, oldest) = victim(shared, &hollow, id)?;
    let dir = &shared.config.dir;
    if id == oldest {
        shared.disk.remove(&entry.path).map_err(|e| StorageError::io("remove segment", &entry.path, e))?;
        shared.segments.write().remove(&id);
        sync_dir(&*shared.disk, dir)?;
        let oldest_live = *shared.segments.read().keys().next().expect("the active segment stays");
        return unlink_leading_hollow(&*shared.disk, dir, oldest_live, &mut hollow);
    }
    let end = HollowEnd { data_end: entry.bytes_used, next_batch_seq };
    hollow_out(&*shared.disk, dir, entry.header, end)?;
    shared.segments.write().remove(&id);
    hollow.insert(id, entry.header);
    Ok(())
}

/// The live, sealed segment `id`, the batch number after its last batch, and the
/// oldest segment id on disk.
fn victim(shared: &Shared, hollow: &BTreeMap<u64, SegmentHeader>, id: u64) -> Result<(SegmentEntry, u32, u64)> {
    let segs = shared.segments.read();
    let entry = segs.get(&id).ok_or_else(|| StorageError::NoRecord {
        pos: LogPosition { segment_id: id, offset: 0 },
        detail: "no such segment to delete".into(),
    })?;
    if entry.active {
        return Err(StorageError::Config(format!("cannot delete segment {id}: it is the active segment")));
    }
    let successor = id.checked_add(1).and_then(|next| segs.get(&next).map(|e| e.header).or(hollow.get(&next).copied()));
    let successor = successor.expect("a sealed segment has a successor on disk (ids are contiguous)");
    let oldest_live = *segs.keys().next().expect("a log always has a segment");
    let oldest = hollow.keys().next().map_or(oldest_live, |h| oldest_live.min(*h));
    Ok((entry.clone(), successor.first_batch_seq, oldest))
}

/// Unlinks hollow segments older than every live one, oldest first.
pub(super) fn unlink_leading_hollow(
    disk: &dyn Disk,
    dir: &Path,
    oldest_live: u64,
    hollow: &mut BTreeMap<u64, SegmentHeader>,
) -> Result<()> {
    while let Some((&id, _)) = hollow.first_key_value().filter(|(id, _)| **id < oldest_live) {
        let path = segment_path(dir, id);
        disk.remove(&path).map_err(|e| StorageError::io("remove hollow segment", &path, e))?;
        hollow.remove(&id);
        sync_dir(disk, dir)?;
    }
    Ok(())
}

fn sync_dir(disk: &dyn Disk, dir: &Path) -> Result<()> {
    disk.sync_dir(dir).map_err(|e| StorageError::io("sync log directory", dir, e))
}
