//! Scanning a segment's frames and judging damage: pure functions over bytes, so
//! fuzz targets can run recovery's core on anything.
//!
//! A segment's data is a chain of *write batches*. Every frame of a batch carries
//! the batch's sequence number; the last one has the batch-end flag; the next batch
//! carries the next number (wrapping). [`scan_segment`] follows the chain from the
//! header and reports records of complete batches only. Where the chain stops, the
//! rest of the segment must be zeros (the preallocated tail); anything else is
//! [`Damage`], and the scan searches the damaged region for a valid frame of a
//! *later* batch than the one in progress. Such a frame proves the damaged batch
//! was acknowledged (a batch is written only after the previous one was synced):
//! damage plus a later batch is corruption, never a torn write.

use std::fmt;

use bytes::Bytes;

use super::frame::{decode_frame_at, plausible_kind, Frame, FrameError, KIND_OFFSET};

/// What scanning one segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    /// Offset just past the last complete write batch (where appending resumes).
    pub end: u64,
    /// Complete batches, their records and frame bytes, before `end`.
    pub batches: u64,
    pub records: u64,
    pub bytes: u64,
    /// Sequence number the next batch written after `end` carries.
    pub next_batch_seq: u32,
    /// Set when the bytes from `end` on are not a clean zeroed tail.
    pub damage: Option<Damage>,
}

/// A place where the frame chain breaks before the zeroed tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// First offset that does not continue the chain.
    pub offset: u64,
    pub reason: DamageReason,
    /// A valid frame past the damage that belongs to another batch than the one
    /// in progress at `end`: acknowledged data follows the damage.
    pub later_batch: Option<LaterBatch>,
    /// One past the last non-zero byte of the segment.
    pub nonzero_end: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaterBatch {
    pub offset: u64,
    pub batch_seq: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DamageReason {
    /// The bytes at the damage offset are not a valid frame.
    Frame(FrameError),
    /// A valid frame with the wrong batch sequence number.
    BatchSeq { expected: u32, found: u32 },
    /// The chain ends (zeros follow) in the middle of a batch: its last frame is missing.
    UnfinishedBatch { batch_seq: u32 },
}

impl fmt::Display for DamageReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(e) => write!(f, "{e}"),
            Self::BatchSeq { expected, found } => write!(f, "frame of batch {found} where batch {expected} belongs"),
            Self::UnfinishedBatch { batch_seq } => write!(f, "write batch {batch_seq} has no end frame"),
        }
    }
}

/// What recovery does with a scanned segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// Cut the segment at `offset` (zero `bytes_dropped` bytes from there).
    TornTail {
        offset: u64,
        bytes_dropped: u64,
    },
    Corrupt {
        offset: u64,
        detail: String,
    },
}

impl SegmentScan {
    /// Torn tail only in the newest segment and only when no later batch follows.
    pub fn verdict(&self, newest: bool) -> Verdict {
        let Some(d) = &self.damage else { return Verdict::Clean };
        match (d.later_batch, newest) {
            (Some(later), _) => Verdict::Corrupt {
                offset: d.offset,
                detail: format!("{}; write batch {} follows at offset {}", d.reason, later.batch_seq, later.offset),
            },
            (None, false) => Verdict::Corrupt { offset: d.offset, detail: format!("{} in a sealed segment", d.reason) },
            (None, true) => {
                assert!(d.nonzero_end > self.end, "damage implies non-zero bytes past the end of data");
                Verdict::TornTail { offset: self.end, bytes_dropped: d.nonzero_end - self.end }
            }
        }
    }
}

/// Scans the frames of a segment image from `start` (just past the header),
/// expecting the first batch to carry `first_batch_seq`. Calls `visit` for every
/// record of every complete batch, in order; an error from `visit` stops the scan.
pub fn scan_segment<E>(
    bytes: &Bytes,
    start: usize,
    first_batch_seq: u32,
    visit: &mut dyn FnMut(u64, Frame) -> Result<(), E>,
) -> Result<SegmentScan, E> {
    let mut scan = SegmentScan { end: start as u64, batches: 0, records: 0, bytes: 0, next_batch_seq: first_batch_seq, damage: None };
    let mut pending: Vec<(u64, Frame)> = Vec::new();
    let mut at = start;
    let reason = loop {
        let frame = match decode_frame_at(bytes, at) {
            Ok(frame) => frame,
            Err(e) => break DamageReason::Frame(e),
        };
        if frame.batch_seq != scan.next_batch_seq {
            break DamageReason::BatchSeq { expected: scan.next_batch_seq, found: frame.batch_seq };
        }
        let (offset, batch_end) = (at as u64, frame.batch_end);
        at += frame.encoded_len();
        pending.push((offset, frame));
        if batch_end {
            finish_batch(&mut scan, &mut pending, at as u64, visit)?;
        }
    };
    debug_assert!(scan.end as usize <= at, "end of complete batches never passes the chain");
    let nonzero_end = last_nonzero(bytes, scan.end as usize);
    if nonzero_end <= scan.end && pending.is_empty() {
        return Ok(scan);
    }
    let reason = if !pending.is_empty() && last_nonzero(bytes, at) <= at as u64 {
        DamageReason::UnfinishedBatch { batch_seq: scan.next_batch_seq }
    } else {
        reason
    };
    let later_batch = find_later_batch(bytes, at, nonzero_end as usize, scan.next_batch_seq);
    scan.damage = Some(Damage { offset: at as u64, reason, later_batch, nonzero_end });
    Ok(scan)
}

fn finish_batch<E>(
    scan: &mut SegmentScan,
    pending: &mut Vec<(u64, Frame)>,
    end: u64,
    visit: &mut dyn FnMut(u64, Frame) -> Result<(), E>,
) -> Result<(), E> {
    assert!(!pending.is_empty(), "a batch ends with at least one frame");
    let first = pending[0].0;
    for (offset, frame) in pending.drain(..) {
        visit(offset, frame)?;
        scan.records += 1;
    }
    scan.bytes += end - first;
    scan.batches += 1;
    scan.end = end;
    scan.next_batch_seq = scan.next_batch_seq.wrapping_add(1);
    Ok(())
}

/// One past the last non-zero byte at or after `from` (or `from` if none).
fn last_nonzero(bytes: &[u8], from: usize) -> u64 {
    let from = from.min(bytes.len());
    bytes[from..].iter().rposition(|b| *b != 0).map_or(from, |i| from + i + 1) as u64
}

/// Searches `[from, limit)` for a valid frame whose batch is not `in_progress`,
/// skipping over valid frames of `in_progress` (the torn batch's survivors).
fn find_later_batch(bytes: &Bytes, from: usize, limit: usize, in_progress: u32) -> Option<LaterBatch> {
    let mut at = from;
    while let Some(candidate) = next_candidate(bytes, at, limit) {
        match decode_frame_at(bytes, candidate) {
            Ok(f) if f.batch_seq == in_progress => at = candidate + f.encoded_len(),
            Ok(f) => return Some(LaterBatch { offset: candidate as u64, batch_seq: f.batch_seq }),
            Err(_) => at = candidate + 1,
        }
    }
    None
}

/// Offset of the first valid frame (of any batch) at or after `from`.
pub fn find_any_frame(bytes: &Bytes, from: usize) -> Option<u64> {
    let mut at = from;
    while let Some(candidate) = next_candidate(bytes, at, bytes.len()) {
        if decode_frame_at(bytes, candidate).is_ok() {
            return Some(candidate as u64);
        }
        at = candidate + 1;
    }
    None
}

/// The first offset `>= from` whose kind byte (before `limit`) could start a frame.
fn next_candidate(bytes: &[u8], from: usize, limit: usize) -> Option<usize> {
    let lo = from.checked_add(KIND_OFFSET)?;
    let hi = limit.min(bytes.len());
    if lo >= hi {
        return None;
    }
    bytes[lo..hi].iter().position(|b| plausible_kind(*b)).map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use super::super::frame::encode_frame;
    use super::*;
    use crate::records::RecordKind;

    /// A segment image: `start` zero bytes, then batches of the given payload sizes.
    fn image(start: usize, first_seq: u32, batches: &[&[usize]], total: usize) -> (Vec<u8>, Vec<usize>) {
        let mut out = vec![0u8; start];
        let mut offsets = Vec::new();
        for (i, batch) in batches.iter().enumerate() {
            for (j, len) in batch.iter().enumerate() {
                offsets.push(out.len());
                let payload = vec![(i * 16 + j) as u8 | 1; *len];
                encode_frame(&mut out, first_seq.wrapping_add(i as u32), RecordKind::RaftEntry, j + 1 == batch.len(), &payload);
            }
        }
        out.resize(total, 0);
        (out, offsets)
    }

    fn scan(bytes: Vec<u8>, first_seq: u32) -> (SegmentScan, Vec<u64>) {
        let mut seen = Vec::new();
        let s = scan_segment::<()>(&Bytes::from(bytes), 8, first_seq, &mut |off, _| {
            seen.push(off);
            Ok(())
        })
        .unwrap();
        (s, seen)
    }

    #[test]
    fn clean_segment_reports_every_record() {
        let (img, offsets) = image(8, u32::MAX, &[&[3, 0], &[10], &[1, 2, 3]], 400);
        let (s, seen) = scan(img, u32::MAX);
        assert_eq!(seen, offsets.iter().map(|o| *o as u64).collect::<Vec<_>>());
        assert_eq!((s.batches, s.records, s.next_batch_seq, s.damage.clone()), (3, 6, 2, None));
        assert_eq!(s.verdict(false), Verdict::Clean);
    }

    #[test]
    fn unfinished_last_batch_is_a_torn_tail() {
        let (img, offsets) = image(8, 5, &[&[4], &[4, 4]], 300);
        let mut img = img;
        let cut = offsets[2];
        img[cut..].fill(0);
        let (s, seen) = scan(img, 5);
        assert_eq!(seen.len(), 1, "records of the unfinished batch are not reported");
        assert_eq!(s.end, offsets[1] as u64);
        assert!(matches!(s.verdict(true), Verdict::TornTail { offset, .. } if offset == offsets[1] as u64));
        assert!(matches!(s.verdict(false), Verdict::Corrupt { .. }), "a sealed segment has no torn tail");
    }

    #[test]
    fn damage_followed_by_a_later_batch_is_corruption() {
        let (mut img, offsets) = image(8, 1, &[&[4], &[4, 4], &[4]], 300);
        img[offsets[1] + 17] ^= 0x10;
        let (s, _) = scan(img, 1);
        let d = s.damage.clone().unwrap();
        assert_eq!(d.offset, offsets[1] as u64);
        assert_eq!(d.later_batch, Some(LaterBatch { offset: offsets[3] as u64, batch_seq: 3 }));
        assert!(matches!(s.verdict(true), Verdict::Corrupt { offset, .. } if offset == offsets[1] as u64));
    }

    #[test]
    fn damage_followed_only_by_the_same_batch_is_torn() {
        let (mut img, offsets) = image(8, 1, &[&[4], &[4, 4, 4]], 300);
        img[offsets[2] + 3] ^= 1;
        let (s, _) = scan(img, 1);
        assert_eq!(s.damage.as_ref().unwrap().later_batch, None);
        assert!(matches!(s.verdict(true), Verdict::TornTail { offset, .. } if offset == offsets[1] as u64));
    }

    #[test]
    fn sequence_jump_is_damage() {
        let (img, _) = image(8, 1, &[&[4], &[4]], 200);
        let (s, seen) = scan(img, 7);
        assert!(seen.is_empty());
        assert!(matches!(s.damage.unwrap().reason, DamageReason::BatchSeq { expected: 7, found: 1 }));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x = 0x1234_5678_u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    match x % 3 {
                        0 => 0,
                        _ => (x % 5) as u8,
                    }
                })
                .collect();
            let s = scan_segment::<()>(&Bytes::from(bytes), 8.min(len), 0, &mut |_, _| Ok(())).unwrap();
            let _ = s.verdict(true);
        }
    }
}
