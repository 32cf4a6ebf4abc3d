//! Node log API behaviour on the simulated disk: round trips, rollover, reopen,
//! deletion, limits, shutdown.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hourglass_storage::disk::sim::SimDisk;
use hourglass_storage::log::{LogConfig, LogPosition, NodeLog, Record, RecoveryReport};
use hourglass_storage::records::RecordKind;
use hourglass_storage::StorageError;

fn config() -> LogConfig {
    let mut c = LogConfig::new("/log");
    c.segment_bytes = 4096;
    c.record_bytes_max = 1024;
    c
}

type Seen = Vec<(LogPosition, RecordKind, Bytes)>;

fn open(disk: &SimDisk, config: LogConfig) -> (NodeLog, RecoveryReport, Seen) {
    let mut seen = Vec::new();
    let (log, report) = NodeLog::open(Arc::new(disk.clone()), config, &mut |pos, kind, payload| {
        seen.push((pos, kind, payload));
        Ok(())
    })
    .expect("open");
    (log, report, seen)
}

fn rec(kind: RecordKind, payload: &[u8]) -> Record {
    Record::new(kind, Bytes::copy_from_slice(payload))
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

#[test]
fn append_read_round_trip() {
    let disk = SimDisk::new(1);
    let (log, report, seen) = open(&disk, config());
    assert_eq!((report.segments, report.records, report.torn_tail), (1, 0, None));
    assert!(seen.is_empty());
    assert_eq!(log.disk_kind(), "sim");
    let records = vec![rec(RecordKind::RaftEntry, b"first"), rec(RecordKind::HardState, b""), rec(RecordKind::ConfState, &payload(3, 700))];
    let positions = log.append_blocking(records.clone()).unwrap();
    assert_eq!(positions.len(), 3);
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "records of one call are in order");
    for (pos, r) in positions.iter().zip(&records) {
        assert_eq!(log.read(*pos).unwrap(), (r.kind, r.payload.clone()));
    }
    let stats = log.stats();
    assert_eq!((stats.batches, stats.records), (1, 3));
    assert_eq!(log.append_blocking(vec![]).unwrap(), vec![], "an empty append is a no-op");
}

#[test]
fn async_append_round_trip() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let disk = SimDisk::new(2);
    let (log, _, _) = open(&disk, config());
    let pos = rt.block_on(log.append(vec![rec(RecordKind::RaftEntry, b"async")])).unwrap();
    assert_eq!(log.read(pos[0]).unwrap().1, Bytes::from_static(b"async"));
}

#[test]
fn segments_roll_over_and_every_record_stays_readable() {
    let disk = SimDisk::new(3);
    let (log, _, _) = open(&disk, config());
    let mut all = Vec::new();
    for i in 0..40 {
        let r = rec(RecordKind::RaftEntry, &payload(i, 300));
        let pos = log.append_blocking(vec![r.clone()]).unwrap()[0];
        all.push((pos, r));
    }
    let segs = log.segments();
    assert!(segs.len() >= 3, "40 x 316 bytes span several 4 KiB segments: {segs:?}");
    assert_eq!(segs.iter().filter(|s| s.active).count(), 1);
    assert!(segs.last().unwrap().active, "the newest segment is active");
    assert!(segs.windows(2).all(|w| w[1].id == w[0].id + 1));
    assert!(segs.iter().all(|s| s.bytes_used <= 4096));
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "positions grow across segments");
    for (pos, r) in &all {
        assert_eq!(log.read(*pos).unwrap().1, r.payload);
    }
}

#[test]
fn reopen_sees_everything_in_order_and_appends_continue() {
    let disk = SimDisk::new(4);
    let (log, _, _) = open(&disk, config());
    let mut expected = Vec::new();
    for i in 0..30 {
        let batch: Vec<Record> = (0..1 + i % 3).map(|j| rec(RecordKind::RaftEntry, &payload(i * 3 + j, 100 + j))).collect();
        let pos = log.append_blocking(batch.clone()).unwrap();
        expected.extend(pos.into_iter().zip(batch));
    }
    log.shutdown();
    let (log, report, seen) = open(&disk, config());
    assert_eq!(report.records as usize, expected.len());
    assert_eq!(report.torn_tail, None);
    let got: Vec<_> = seen.iter().map(|(p, k, b)| (*p, *k, b.clone())).collect();
    let want: Vec<_> = expected.iter().map(|(p, r)| (*p, r.kind, r.payload.clone())).collect();
    assert_eq!(got, want);
    let next = log.append_blocking(vec![rec(RecordKind::HardState, b"after")]).unwrap()[0];
    assert!(next > expected.last().unwrap().0, "appends resume after the last record");
    log.shutdown();
    let (_, report, _) = open(&disk, config());
    assert_eq!(report.records as usize, expected.len() + 1);
}

/// Appends 500-byte records until there are `n` segments; returns their positions.
fn fill_segments(log: &NodeLog, n: usize) -> Vec<LogPosition> {
    let mut written = Vec::new();
    while log.segments().len() < n {
        written.push(log.append_blocking(vec![rec(RecordKind::RaftEntry, &payload(written.len(), 500))]).unwrap()[0]);
    }
    written
}

#[test]
fn deleting_sealed_segments_hollows_or_unlinks_them() {
    let disk = SimDisk::new(5);
    let (log, _, _) = open(&disk, config());
    let written = fill_segments(&log, 5);
    let path = |id| log.segments().iter().find(|s| s.id == id).unwrap().path.clone();
    let (seg1, seg3) = (path(1), path(3));
    assert!(matches!(log.delete_segment(5), Err(StorageError::Config(_))), "the active segment is refused");
    assert!(matches!(log.delete_segment(999), Err(StorageError::NoRecord { .. })));

    log.delete_segment(3).unwrap();
    assert_eq!(disk.contents(&seg3).map(|c| c.len()), Some(64), "a younger segment is hollowed, not unlinked");
    assert!(matches!(log.delete_segment(3), Err(StorageError::NoRecord { .. })), "already deleted");
    assert_eq!(log.segments().iter().map(|s| s.id).collect::<Vec<_>>(), vec![1, 2, 4, 5]);
    for pos in written.iter().filter(|p| p.segment_id == 3) {
        assert!(matches!(log.read(*pos), Err(StorageError::NoRecord { .. })));
    }
    log.delete_segment(1).unwrap();
    assert!(disk.contents(&seg1).is_none(), "the oldest segment is unlinked");
    log.delete_segment(2).unwrap();
    assert!(disk.contents(&seg3).is_none(), "a hollow segment that becomes oldest is unlinked");
    assert_eq!(log.segments().iter().map(|s| s.id).collect::<Vec<_>>(), vec![4, 5]);
    log.shutdown();

    let (log, report, seen) = open(&disk, config());
    assert_eq!(report.segments, 2);
    let want: Vec<_> = written.iter().filter(|p| p.segment_id >= 4).copied().collect();
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), want);
    log.append_blocking(vec![rec(RecordKind::RaftEntry, b"x")]).unwrap();
}

#[test]
fn hollow_segments_keep_the_chain_across_reopen() {
    let disk = SimDisk::new(12);
    let (log, _, _) = open(&disk, config());
    let written = fill_segments(&log, 6);
    for id in [4, 2, 3] {
        log.delete_segment(id).unwrap();
    }
    log.shutdown();
    let (log, report, seen) = open(&disk, config());
    assert_eq!(report.segments, 3, "segments 1, 5 and 6 are live");
    let want: Vec<_> = written.iter().filter(|p| ![2, 3, 4].contains(&p.segment_id)).copied().collect();
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), want);
    while log.segments().len() < 5 {
        log.append_blocking(vec![rec(RecordKind::RaftEntry, &payload(1, 500))]).unwrap();
    }
    log.delete_segment(1).unwrap();
    assert!(disk.contents(Path::new("/log/00000000000000000004.seg")).is_none(), "leading hollow files are unlinked");
    log.shutdown();
    let (_, report, _) = open(&disk, config());
    assert_eq!(report.segments, 4);
}

#[test]
fn oversized_records_and_calls_are_refused() {
    let disk = SimDisk::new(6);
    let (log, _, _) = open(&disk, config());
    let err = log.append_blocking(vec![rec(RecordKind::RaftEntry, &[0; 1025])]).unwrap_err();
    assert!(matches!(err, StorageError::RecordTooLarge { bytes: 1025, max: 1024 }), "{err}");
    let many: Vec<Record> = (0..5).map(|i| rec(RecordKind::RaftEntry, &payload(i, 1000))).collect();
    let err = log.append_blocking(many).unwrap_err();
    assert!(matches!(err, StorageError::RecordTooLarge { max: 4032, .. }), "a call must fit one segment: {err}");
    let exact = rec(RecordKind::RaftEntry, &payload(0, 1024));
    log.append_blocking(vec![exact]).expect("a record of exactly record_bytes_max fits");
}

#[test]
fn shutdown_is_idempotent_and_later_appends_are_closed() {
    let disk = SimDisk::new(7);
    let (log, _, _) = open(&disk, config());
    let pos = log.append_blocking(vec![rec(RecordKind::RaftEntry, b"kept")]).unwrap()[0];
    let clone = log.clone();
    log.shutdown();
    clone.shutdown();
    assert!(matches!(clone.append_blocking(vec![rec(RecordKind::RaftEntry, b"x")]), Err(StorageError::Closed)));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert!(matches!(rt.block_on(log.append(vec![])), Err(StorageError::Closed)));
    assert_eq!(log.read(pos).unwrap().1, Bytes::from_static(b"kept"), "reads still work after shutdown");
    assert_eq!(log.failure(), None);
}

#[test]
fn dropping_every_handle_stops_the_writer() {
    let disk = SimDisk::new(8);
    let (log, _, _) = open(&disk, config());
    let clone = log.clone();
    clone.append_blocking(vec![rec(RecordKind::RaftEntry, b"x")]).unwrap();
    drop(log);
    drop(clone);
    let (_, report, _) = open(&disk, config());
    assert_eq!(report.records, 1);
}

#[test]
fn reads_of_bad_positions_are_errors() {
    let disk = SimDisk::new(9);
    let (log, _, _) = open(&disk, config());
    let pos = log.append_blocking(vec![rec(RecordKind::RaftEntry, &payload(1, 200))]).unwrap()[0];
    let bad = [
        LogPosition { segment_id: 77, offset: pos.offset },
        LogPosition { segment_id: pos.segment_id, offset: 0 },
        LogPosition { segment_id: pos.segment_id, offset: pos.offset + 300 },
        LogPosition { segment_id: pos.segment_id, offset: u64::MAX - 3 },
    ];
    for p in bad {
        assert!(matches!(log.read(p), Err(StorageError::NoRecord { .. })), "{p:?}");
    }
    for delta in 1..40 {
        let p = LogPosition { segment_id: pos.segment_id, offset: pos.offset + delta };
        assert!(log.read(p).is_err(), "offset {delta} inside a frame is not a record");
    }
}

#[test]
fn open_validates_config_and_visit_errors_abort() {
    let disk = SimDisk::new(10);
    let mut bad = config();
    bad.segment_bytes = 100;
    let res = NodeLog::open(Arc::new(disk.clone()), bad, &mut |_, _, _| Ok(()));
    assert!(matches!(res, Err(StorageError::Config(_))));
    let (log, _, _) = open(&disk, config());
    log.append_blocking(vec![rec(RecordKind::RaftEntry, b"x")]).unwrap();
    log.shutdown();
    let res = NodeLog::open(Arc::new(disk.clone()), config(), &mut |_, _, _| Err(StorageError::Closed));
    assert!(matches!(res, Err(StorageError::Closed)), "the visitor's error is returned");
}

#[test]
fn segment_files_are_named_by_id() {
    let disk = SimDisk::new(11);
    let (log, _, _) = open(&disk, config());
    let segs = log.segments();
    assert_eq!(segs[0].path, PathBuf::from("/log/00000000000000000001.seg"));
    let image = disk.contents(Path::new("/log/00000000000000000001.seg")).unwrap();
    assert_eq!(image.len(), 4096, "preallocated to segment_bytes");
    assert_eq!(&image[..8], b"HGLASSEG");
}
