//! `NodeLog::open` on a simulated disk holding segment files built from arbitrary
//! bytes must return Ok or Err, never panic. When it opens:
//! - every record it visited reads back (same kind, same payload) at its position;
//! - positions are strictly increasing;
//! - an append succeeds and reads back;
//! - a second open of the same disk succeeds and visits exactly the same records
//!   plus the appended one (recovery is idempotent once it has cut a torn tail).
//!
//! Input layout (every read past the end gives zeros):
//! - byte 0: bits 0-1 number of segments (0-3), bits 2-3 first segment id - 1,
//!   bit 6 leave a gap in the ids, bit 7 add a stray non-segment file;
//! - per segment, a flags byte: bit 0 valid header (else the raw bytes start at 0,
//!   so the magic check fails unless the input forges it), bit 1 structured frames
//!   (else raw bytes), bit 2 header names the wrong id, bit 3 header breaks the
//!   chain (wrong first batch / previous end), bits 4-7 zero tail in 64-byte units;
//! - structured frames: count, then per frame kind/length/flags bytes and payload;
//!   then up to 3 (offset, xor) corruptions;
//! - raw: a length byte pair, then that many bytes.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hourglass_storage::disk::sim::SimDisk;
use hourglass_storage::log::frame::encode_frame;
use hourglass_storage::log::segment::{segment_file_name, SegmentHeader};
use hourglass_storage::log::{NodeLog, Record};
use hourglass_storage::records::RecordKind;
use hourglass_storage::{LogConfig, LogPosition};
use libfuzzer_sys::fuzz_target;

struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn take(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

const DIR: &str = "/log";

fn config() -> LogConfig {
    let mut c = LogConfig::new(DIR);
    c.segment_bytes = 4096;
    c.record_bytes_max = 1024;
    c.queue_depth_max = 16;
    c
}

/// Chain state carried from one built segment to the next.
struct Chain {
    next_seq: u32,
    prev_end: u64,
}

fn build_segment(input: &mut Input, id: u64, chain: &mut Chain) -> Vec<u8> {
    let flags = input.byte();
    let mut out = Vec::new();
    if flags & 1 != 0 {
        let broken = flags & 8 != 0;
        let header = SegmentHeader {
            segment_id: if flags & 4 != 0 { id ^ 1 } else { id },
            first_batch_seq: if broken { input.u32() } else { chain.next_seq },
            prev_segment_end: if broken { u64::from(input.u16()) } else { chain.prev_end },
        };
        out.extend_from_slice(&header.encode());
    }
    if flags & 2 != 0 {
        for _ in 0..input.byte() % 12 {
            let kind = RecordKind::from_u8(input.byte() % 4 + 1).expect("kinds 1..=4");
            let len = usize::from(input.byte() % 48);
            let f = input.byte();
            let batch_end = f & 1 == 0 || f & 2 != 0;
            let seq = match f >> 5 {
                0 => chain.next_seq.wrapping_add(1),
                1 => chain.next_seq.wrapping_sub(1),
                _ => chain.next_seq,
            };
            let payload = input.take(len);
            encode_frame(&mut out, seq, kind, batch_end, &payload);
            if batch_end && seq == chain.next_seq {
                chain.next_seq = seq.wrapping_add(1);
            }
        }
        for _ in 0..input.byte() % 4 {
            let at = usize::from(input.u16());
            let x = input.byte();
            if !out.is_empty() {
                let at = at % out.len();
                out[at] ^= x;
            }
        }
    } else {
        let n = usize::from(input.u16() % 2048);
        out.extend(input.take(n));
    }
    chain.prev_end = out.len() as u64;
    out.resize(out.len() + usize::from(flags >> 4) * 64, 0);
    out
}

type Visited = Vec<(LogPosition, RecordKind, Bytes)>;

fn open(disk: &SimDisk) -> hourglass_storage::Result<(NodeLog, Visited, u64)> {
    let mut visited = Visited::new();
    let (log, report) = NodeLog::open(Arc::new(disk.clone()), config(), &mut |pos, kind, payload| {
        visited.push((pos, kind, payload));
        Ok(())
    })?;
    Ok((log, visited, report.records))
}

/// `HG_FUZZ_TRACE=1` prints each input's outcome (to check what the corpus reaches).
fn trace(what: std::fmt::Arguments) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("HG_FUZZ_TRACE").is_some()) {
        eprintln!("outcome: {what}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data, at: 0 };
    let head = input.byte();
    let segments = u64::from(head & 3);
    let first_id = 1 + u64::from((head >> 2) & 3);
    let disk = SimDisk::new(u64::from(head));
    let dir = Path::new(DIR);
    let mut chain = Chain { next_seq: 1, prev_end: 0 };
    for i in 0..segments {
        let id = first_id + i + u64::from(head & 0x40 != 0 && i == segments - 1);
        let bytes = build_segment(&mut input, id, &mut chain);
        disk.put_file(&dir.join(segment_file_name(id)), &bytes).expect("put segment");
    }
    if head & 0x80 != 0 {
        disk.put_file(&PathBuf::from(DIR).join("stray.tmp"), b"not a segment").expect("put stray");
    }

    let (log, visited, reported) = match open(&disk) {
        Ok(opened) => opened,
        Err(e) => {
            let kind = match e {
                hourglass_storage::StorageError::Corrupt { .. } => "corrupt",
                hourglass_storage::StorageError::Io { .. } => "io",
                _ => "other",
            };
            trace(format_args!("err {kind}: {e}"));
            return;
        }
    };
    trace(format_args!("ok records={} segments={}", visited.len(), log.segments().len()));
    assert_eq!(reported, visited.len() as u64, "report counts every visited record");
    for w in visited.windows(2) {
        assert!(w[0].0 < w[1].0, "positions increase: {:?} then {:?}", w[0].0, w[1].0);
    }
    for (pos, kind, payload) in &visited {
        let (k, p) = log.read(*pos).unwrap_or_else(|e| panic!("visited record at {pos:?} must read back: {e}"));
        assert_eq!((&k, &p), (kind, payload), "read back at {pos:?}");
    }
    let len = usize::from(input.byte());
    let payload = Bytes::from(input.take(len));
    let appended = log
        .append_blocking(vec![Record::new(RecordKind::HardState, payload.clone())])
        .unwrap_or_else(|e| panic!("append after a successful open failed: {e}"));
    assert_eq!(appended.len(), 1);
    let (k, p) = log.read(appended[0]).expect("appended record reads back");
    assert_eq!((k, &p), (RecordKind::HardState, &payload));
    log.shutdown();

    let (log, again, _) = open(&disk).unwrap_or_else(|e| panic!("reopen after a successful open failed: {e}"));
    log.shutdown();
    let mut expected = visited;
    expected.push((appended[0], RecordKind::HardState, payload));
    assert_eq!(again, expected, "a reopen sees the same records plus the appended one");
});
