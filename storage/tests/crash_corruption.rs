//! Recovery's verdicts on damaged segments: torn tails are cut and reported,
//! corruption anywhere else refuses to open and names the file and offset, and no
//! bytes make recovery panic.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hourglass_storage::disk::sim::SimDisk;
use hourglass_storage::disk::Disk;
use hourglass_storage::log::segment::{segment_path, SegmentHeader, SEGMENT_HEADER_BYTES};
use hourglass_storage::log::{LogConfig, LogPosition, NodeLog, Record, RecoveryReport, TornTail};
use hourglass_storage::records::RecordKind;
use hourglass_storage::{Result, StorageError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIR: &str = "/log";

fn config() -> LogConfig {
    let mut c = LogConfig::new(DIR);
    c.segment_bytes = 2048;
    c.record_bytes_max = 512;
    c
}

fn seg(id: u64) -> PathBuf {
    segment_path(Path::new(DIR), id)
}

type Opened = (NodeLog, RecoveryReport, Vec<(LogPosition, Bytes)>);

fn try_open(disk: &SimDisk) -> Result<Opened> {
    let mut seen = Vec::new();
    let (log, report) = NodeLog::open(Arc::new(disk.clone()), config(), &mut |pos, _, p| {
        seen.push((pos, p));
        Ok(())
    })?;
    Ok((log, report, seen))
}

/// A log with `calls` single-record appends of 200 bytes (one batch each), shut down.
fn filled(seed: u64, calls: usize) -> (SimDisk, Vec<LogPosition>) {
    let disk = SimDisk::new(seed);
    let (log, _, _) = try_open(&disk).unwrap();
    let positions =
        (0..calls).map(|i| log.append_blocking(vec![Record::new(RecordKind::RaftEntry, vec![i as u8 | 1; 200])]).unwrap()[0]).collect();
    log.shutdown();
    (disk, positions)
}

fn assert_corrupt(res: Result<impl Sized>, file: &Path, offset: u64) {
    match res {
        Err(StorageError::Corrupt { file: f, offset: o, detail }) => {
            assert_eq!((f.as_path(), o), (file, offset), "{detail}");
        }
        Err(other) => panic!("expected Corrupt at {} {offset}, got {other}", file.display()),
        Ok(_) => panic!("expected Corrupt at {} {offset}, but the log opened", file.display()),
    }
}

#[test]
fn bit_flip_in_a_sealed_segment_is_corruption() {
    let (disk, pos) = filled(1, 20);
    assert!(pos.last().unwrap().segment_id >= 3);
    let victim = pos[1];
    assert_eq!(victim.segment_id, 1);
    disk.flip_bit(&seg(1), victim.offset + 40, 3).unwrap();
    assert_corrupt(try_open(&disk), &seg(1), victim.offset);
}

#[test]
fn bit_flip_before_a_later_batch_is_corruption() {
    let (disk, pos) = filled(2, 4);
    assert!(pos.iter().all(|p| p.segment_id == 1), "one segment only: it is the newest");
    disk.flip_bit(&seg(1), pos[2].offset + 100, 0).unwrap();
    assert_corrupt(try_open(&disk), &seg(1), pos[2].offset);
}

#[test]
fn bit_flip_in_the_last_batch_is_cut_as_a_torn_tail() {
    let (disk, pos) = filled(3, 4);
    disk.flip_bit(&seg(1), pos[3].offset + 100, 0).unwrap();
    let (log, report, seen) = try_open(&disk).unwrap();
    let tail = report.torn_tail.expect("torn tail reported");
    assert_eq!(tail, TornTail { segment_id: 1, offset: pos[3].offset, bytes_dropped: 216 });
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), pos[..3]);
    let image = disk.contents(&seg(1)).unwrap();
    assert!(image[pos[3].offset as usize..].iter().all(|b| *b == 0), "the torn tail is zeroed");
    let next = log.append_blocking(vec![Record::new(RecordKind::HardState, vec![7u8; 10])]).unwrap()[0];
    assert_eq!(next, pos[3], "appending resumes where the torn batch began");
    log.shutdown();
    let (_, report, seen) = try_open(&disk).unwrap();
    assert_eq!((report.torn_tail, seen.len()), (None, 4));
}

#[test]
fn torn_partial_write_after_the_data_is_cut() {
    let (disk, pos) = filled(4, 2);
    let end = pos[1].offset + 216;
    let file = disk.open(&seg(1)).unwrap();
    let mut half = Vec::new();
    hourglass_storage::log::frame::encode_frame(&mut half, 3, RecordKind::RaftEntry, true, &[5u8; 100]);
    file.write_at(end, &[&half[..60]]).unwrap();
    file.sync_data().unwrap();
    let (_, report, seen) = try_open(&disk).unwrap();
    assert_eq!(report.torn_tail, Some(TornTail { segment_id: 1, offset: end, bytes_dropped: 60 }));
    assert_eq!(seen.len(), 2);
}

#[test]
fn interrupted_segment_creation_is_undone() {
    let (disk, pos) = filled(5, 3);
    disk.put_file(&seg(2), &[0u8; 30]).unwrap();
    let (log, report, seen) = try_open(&disk).unwrap();
    assert_eq!((report.segments, seen.len()), (1, 3));
    assert!(disk.contents(&seg(2)).is_none(), "the half-created segment is removed");
    assert_eq!(log.segments().last().unwrap().id, 1);
    let next = log.append_blocking(vec![Record::new(RecordKind::RaftEntry, vec![1u8; 10])]).unwrap()[0];
    assert!(next > pos[2]);
}

#[test]
fn bad_header_with_frames_after_it_is_corruption() {
    let (disk, _) = filled(6, 3);
    disk.flip_bit(&seg(1), 20, 1).unwrap();
    assert_corrupt(try_open(&disk), &seg(1), 0);
}

#[test]
fn missing_segment_in_the_middle_is_corruption() {
    let (disk, pos) = filled(7, 20);
    assert!(pos.last().unwrap().segment_id >= 3);
    disk.remove(&seg(2)).unwrap();
    disk.sync_dir(Path::new(DIR)).unwrap();
    assert_corrupt(try_open(&disk), &seg(3), 0);
}

#[test]
fn lost_tail_of_a_sealed_segment_is_corruption() {
    let (disk, pos) = filled(8, 20);
    let last_in_1 = *pos.iter().rev().find(|p| p.segment_id == 1).unwrap();
    let file = disk.open(&seg(1)).unwrap();
    file.write_at(last_in_1.offset, &[&[0u8; 216]]).unwrap();
    file.sync_data().unwrap();
    assert_corrupt(try_open(&disk), &seg(1), last_in_1.offset);
}

#[test]
fn header_naming_another_segment_is_corruption() {
    let (disk, _) = filled(9, 1);
    let image = disk.contents(&seg(1)).unwrap();
    disk.put_file(&seg(2), &image).unwrap();
    assert_corrupt(try_open(&disk), &seg(2), 16);
}

#[test]
fn random_damage_never_panics() {
    for seed in 0..200u64 {
        let (disk, _) = filled(seed, 1 + seed as usize % 12);
        let mut rng = StdRng::seed_from_u64(seed);
        let ids: Vec<u64> = (1..).take_while(|id| disk.contents(&seg(*id)).is_some()).collect();
        for _ in 0..rng.gen_range(1..6) {
            let id = ids[rng.gen_range(0..ids.len())];
            disk.flip_bit(&seg(id), rng.gen_range(0..2048), rng.gen_range(0..8)).unwrap();
        }
        if let Ok((log, _, seen)) = try_open(&disk) {
            for (pos, p) in seen {
                assert_eq!(log.read(pos).unwrap().1, p);
            }
        }
    }
}

#[test]
fn arbitrary_files_never_panic() {
    for seed in 0..300u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let disk = SimDisk::new(seed);
        for id in 1..=rng.gen_range(1..4u64) {
            let len = rng.gen_range(0..2100);
            let mut bytes: Vec<u8> = (0..len).map(|_| if rng.gen_bool(0.6) { 0 } else { rng.gen() }).collect();
            if rng.gen_bool(0.7) && len >= SEGMENT_HEADER_BYTES {
                let h = SegmentHeader { segment_id: id, first_batch_seq: rng.gen_range(0..3), prev_segment_end: 0 };
                bytes[..SEGMENT_HEADER_BYTES].copy_from_slice(&h.encode());
            }
            disk.put_file(&seg(id), &bytes).unwrap();
        }
        let _ = try_open(&disk);
    }
}

#[test]
fn crash_during_segment_deletion_leaves_a_valid_log() {
    let (mut kept, mut gone) = (0, 0);
    for seed in 0..40 {
        let (disk, pos) = filled(100 + seed, 20);
        let (log, _, _) = try_open(&disk).unwrap();
        log.delete_segment(1).unwrap();
        // Unlink 2 without its directory sync: a crash may or may not keep it.
        disk.remove(&seg(2)).unwrap();
        let after = disk.crash();
        drop(log);
        let (log, report, seen) = try_open(&after).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(seen.iter().all(|(p, _)| p.segment_id >= 2), "seed {seed}: a synced deletion stays deleted");
        let first = log.segments()[0].id;
        assert!(first == 2 || first == 3, "seed {seed}");
        if first == 2 {
            kept += 1
        } else {
            gone += 1
        }
        assert_eq!(seen.last().map(|s| s.0), pos.last().copied(), "seed {seed}: the newest data is intact");
        assert_eq!(report.segments, log.segments().len());
    }
    assert!(kept > 0 && gone > 0, "both outcomes of an unsynced unlink occur ({kept} kept, {gone} gone)");
}
