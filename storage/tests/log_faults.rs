//! Failed state and back-pressure on the simulated disk.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hourglass_storage::disk::sim::SimDisk;
use hourglass_storage::log::{LogConfig, LogPosition, NodeLog, Record};
use hourglass_storage::records::RecordKind;
use hourglass_storage::{Result, StorageError};

fn config() -> LogConfig {
    let mut c = LogConfig::new("/log");
    c.segment_bytes = 8192;
    c.record_bytes_max = 1024;
    c
}

fn open(disk: &SimDisk, config: LogConfig) -> NodeLog {
    NodeLog::open(Arc::new(disk.clone()), config, &mut |_, _, _| Ok(())).expect("open").0
}

fn rec(payload: &'static [u8]) -> Vec<Record> {
    vec![Record::new(RecordKind::RaftEntry, Bytes::from_static(payload))]
}

fn assert_failed(res: Result<Vec<LogPosition>>) {
    assert!(matches!(res, Err(StorageError::LogFailed { .. })), "expected LogFailed, got {res:?}");
}

#[test]
fn failed_sync_fails_the_log_and_is_never_retried() {
    let disk = SimDisk::new(1);
    let log = open(&disk, config());
    let kept = log.append_blocking(rec(b"durable")).unwrap()[0];
    disk.fail_next_sync();
    assert_failed(log.append_blocking(rec(b"lost")));
    let syncs = disk.stats().syncs;
    assert_eq!(disk.stats().failed_syncs, 1);
    let reason = log.failure().expect("failed state");
    assert!(reason.contains("fdatasync"), "{reason}");
    for _ in 0..5 {
        assert_failed(log.append_blocking(rec(b"later")));
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_failed(rt.block_on(log.append(rec(b"async"))));
    assert_eq!(disk.stats().syncs, syncs, "no sync after the failed one");
    assert_eq!(log.read(kept).unwrap().1, Bytes::from_static(b"durable"), "reads still work");
    log.shutdown();
}

#[test]
fn failed_write_fails_the_log_without_syncing() {
    let disk = SimDisk::new(2);
    let log = open(&disk, config());
    let syncs = disk.stats().syncs;
    disk.fail_next_write();
    assert_failed(log.append_blocking(rec(b"torn")));
    assert_failed(log.append_blocking(rec(b"later")));
    assert_eq!(disk.stats().syncs, syncs, "a failed write is not followed by a sync");
    assert!(log.failure().unwrap().contains("write"));
    log.shutdown();
    let (log, report) = NodeLog::open(Arc::new(disk.crash()), config(), &mut |_, _, _| Ok(())).unwrap();
    assert_eq!(report.records, 0, "the failed write was never acknowledged");
    log.append_blocking(rec(b"after restart")).unwrap();
}

#[test]
fn failed_roll_fails_the_log() {
    let disk = SimDisk::new(3);
    let mut cfg = config();
    cfg.segment_bytes = 1024 + 80;
    let log = open(&disk, cfg);
    log.append_blocking(vec![Record::new(RecordKind::RaftEntry, vec![1u8; 1000])]).unwrap();
    disk.fail_next_sync();
    assert_failed(log.append_blocking(rec(b"needs a new segment")));
    assert!(log.failure().unwrap().contains("segment"));
}

fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

type Append = Pin<Box<dyn Future<Output = Result<Vec<LogPosition>>> + Send>>;

#[test]
fn full_queue_is_overloaded_and_queued_appends_complete() {
    let disk = SimDisk::new(4);
    let mut cfg = config();
    cfg.queue_depth_max = 4;
    cfg.batch_records_max = 1;
    let log = open(&disk, cfg);
    disk.hold_syncs(true);
    // The writer holds at most one append (stuck in sync) and the queue four more:
    // of six appends at least one finds the queue full. Enqueueing happens on the
    // first poll, so no timing is involved.
    let mut pending: Vec<Append> = Vec::new();
    let mut overloaded = 0;
    for i in 0..6u8 {
        let log = log.clone();
        let mut fut: Append = Box::pin(async move { log.append(vec![Record::new(RecordKind::RaftEntry, vec![i])]).await });
        match poll_once(fut.as_mut()) {
            Poll::Ready(Err(StorageError::Overloaded { queue_depth_max: 4 })) => overloaded += 1,
            Poll::Ready(other) => panic!("append {i} finished while syncs are held: {other:?}"),
            Poll::Pending => pending.push(fut),
        }
    }
    assert!((1..=2).contains(&overloaded), "{overloaded} of 6 appends overloaded");
    disk.hold_syncs(false);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for fut in pending {
        let pos = rt.block_on(fut).expect("queued appends complete once syncs flow");
        assert_eq!(pos.len(), 1);
    }
}

#[test]
fn shutdown_completes_queued_appends() {
    let disk = SimDisk::new(5);
    let log = open(&disk, config());
    disk.hold_syncs(true);
    let mut pending: Vec<Append> = Vec::new();
    for i in 0..10u8 {
        let log = log.clone();
        let mut fut: Append = Box::pin(async move { log.append(vec![Record::new(RecordKind::RaftEntry, vec![i])]).await });
        assert!(poll_once(fut.as_mut()).is_pending());
        pending.push(fut);
    }
    let stopper = {
        let log = log.clone();
        std::thread::spawn(move || log.shutdown())
    };
    disk.hold_syncs(false);
    stopper.join().unwrap();
    for mut fut in pending {
        match poll_once(fut.as_mut()) {
            Poll::Ready(Ok(pos)) => assert_eq!(log.read(pos[0]).unwrap().0, RecordKind::RaftEntry),
            other => panic!("queued append not completed by shutdown: {other:?}"),
        }
    }
    assert!(matches!(log.append_blocking(rec(b"x")), Err(StorageError::Closed)));
}

#[test]
fn dropped_append_future_still_lands_and_log_continues() {
    let disk = SimDisk::new(6);
    let log = open(&disk, config());
    let mut fut: Append = {
        let log = log.clone();
        Box::pin(async move { log.append(rec(b"abandoned")).await })
    };
    let _ = poll_once(fut.as_mut());
    drop(fut);
    log.append_blocking(rec(b"next")).unwrap();
    log.shutdown();
    let mut seen = Vec::new();
    NodeLog::open(Arc::new(disk), config(), &mut |_, _, p| {
        seen.push(p);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, vec![Bytes::from_static(b"abandoned"), Bytes::from_static(b"next")]);
}
