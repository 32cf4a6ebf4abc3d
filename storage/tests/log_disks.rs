//! The same node log scenarios on the real disks: `pwrite` and io_uring.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hourglass_storage::disk::{open_disk, IoMode};
use hourglass_storage::log::{LogConfig, LogPosition, NodeLog, Record};
use hourglass_storage::records::RecordKind;

const TASKS: usize = 64;
const APPENDS_PER_TASK: usize = 12;

fn config(dir: &Path, mode: IoMode) -> LogConfig {
    let mut c = LogConfig::new(dir);
    c.segment_bytes = 64 << 10;
    c.record_bytes_max = 4096;
    c.io_mode = mode;
    c
}

fn payload(task: usize, i: usize) -> Bytes {
    let len = 1 + (task * 131 + i * 17) % 900;
    Bytes::from((0..len).map(|j| (task ^ i ^ j) as u8).collect::<Vec<_>>())
}

/// Skips (with a note) when the kernel refuses io_uring.
fn available(mode: IoMode) -> bool {
    match open_disk(mode) {
        Ok(disk) => {
            assert_eq!(disk.kind(), if mode == IoMode::Uring { "io_uring" } else { "pwrite" });
            true
        }
        Err(e) => {
            eprintln!("note: skipping {mode:?}: {e}");
            false
        }
    }
}

fn collect_open(config: LogConfig) -> (NodeLog, BTreeMap<LogPosition, Bytes>) {
    let mut seen = BTreeMap::new();
    let mut last = None;
    let (log, _) = NodeLog::open_dir(config, &mut |pos, kind, payload| {
        assert_eq!(kind, RecordKind::RaftEntry);
        assert!(last < Some(pos), "visit runs in log order");
        last = Some(pos);
        seen.insert(pos, payload);
        Ok(())
    })
    .expect("open");
    (log, seen)
}

fn concurrent_appenders_then_reopen(mode: IoMode) {
    if !available(mode) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (log, seen) = collect_open(config(dir.path(), mode));
    assert!(seen.is_empty());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let written: Vec<(LogPosition, Bytes)> = rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for i in 0..APPENDS_PER_TASK {
                        let p = payload(task, i);
                        let pos = log.append(vec![Record::new(RecordKind::RaftEntry, p.clone())]).await.unwrap();
                        mine.push((pos[0], p));
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let distinct: HashSet<_> = written.iter().map(|(p, _)| *p).collect();
    assert_eq!(distinct.len(), TASKS * APPENDS_PER_TASK, "every append got its own position");
    for (pos, p) in &written {
        assert_eq!(&log.read(*pos).unwrap().1, p);
    }
    let stats = log.stats();
    assert_eq!(stats.records as usize, written.len());
    assert!(stats.batches <= stats.records && stats.syncs >= stats.batches);
    assert!(log.segments().len() > 1, "64 KiB segments roll over");
    log.shutdown();

    let (log, seen) = collect_open(config(dir.path(), mode));
    assert_eq!(seen.len(), written.len());
    for (pos, p) in &written {
        assert_eq!(seen.get(pos), Some(p), "{pos:?} survives reopen");
    }
    let oldest = log.segments()[0].id;
    log.delete_segment(oldest).unwrap();
    assert!(!dir.path().join(format!("{oldest:020}.seg")).exists());
    let extra = log.append_blocking(vec![Record::new(RecordKind::RaftEntry, payload(0, 99))]).unwrap();
    log.shutdown();
    let (_, seen) = collect_open(config(dir.path(), mode));
    assert!(seen.contains_key(&extra[0]));
    assert!(seen.keys().all(|p| p.segment_id > oldest));
}

fn blocking_appenders_from_threads(mode: IoMode) {
    if !available(mode) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = collect_open(config(dir.path(), mode));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..20)
                    .map(|i| {
                        let recs =
                            vec![Record::new(RecordKind::RaftEntry, payload(t, i)), Record::new(RecordKind::RaftEntry, payload(t + 10, i))];
                        let pos = log.append_blocking(recs).unwrap();
                        assert_eq!(pos.len(), 2);
                        assert!(pos[0] < pos[1]);
                        (pos, t, i)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for th in threads {
        for (pos, t, i) in th.join().unwrap() {
            assert_eq!(log.read(pos[0]).unwrap().1, payload(t, i));
            assert_eq!(log.read(pos[1]).unwrap().1, payload(t + 10, i));
        }
    }
}

#[test]
fn pwrite_concurrent_appenders_then_reopen() {
    concurrent_appenders_then_reopen(IoMode::Pwrite);
}

#[test]
fn uring_concurrent_appenders_then_reopen() {
    concurrent_appenders_then_reopen(IoMode::Uring);
}

#[test]
fn pwrite_blocking_appenders() {
    blocking_appenders_from_threads(IoMode::Pwrite);
}

#[test]
fn uring_blocking_appenders() {
    blocking_appenders_from_threads(IoMode::Uring);
}

#[test]
fn auto_mode_picks_a_real_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = collect_open(config(dir.path(), IoMode::Auto));
    assert!(["io_uring", "pwrite"].contains(&log.disk_kind()));
    let disk: Arc<_> = open_disk(IoMode::Auto).unwrap();
    assert_eq!(disk.kind(), log.disk_kind());
}
