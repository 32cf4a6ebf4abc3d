//! Randomized crash tests on the simulated disk. For each seed: concurrent
//! appenders run against a log whose disk may fail a write or a sync; at a random
//! moment the machine "loses power"; recovery must then find every acknowledged
//! append intact at its position, each unacknowledged call whole or absent, every
//! appender's calls as a prefix, and the log must accept appends again.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hourglass_storage::disk::sim::SimDisk;
use hourglass_storage::log::{LogConfig, LogPosition, NodeLog, Record, RecoveryReport};
use hourglass_storage::records::RecordKind;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SEEDS: u64 = 300;
const APPENDERS: u32 = 6;
const CALLS_MAX: u32 = 40;

fn config() -> LogConfig {
    let mut c = LogConfig::new("/node/log");
    c.segment_bytes = 2048;
    c.record_bytes_max = 400;
    c.batch_records_max = 8;
    c
}

/// Deterministic content of record `idx` of call `call` of appender `who`.
fn payload(who: u32, call: u32, idx: u32) -> Bytes {
    let h = (who as u64 * 1_000_003 + call as u64 * 7_919 + idx as u64 * 31).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let len = 9 + (h >> 40) as usize % 300;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&who.to_le_bytes()[..2]);
    out.extend_from_slice(&call.to_le_bytes()[..2]);
    out.push(idx as u8);
    out.extend((0..len - 5).map(|j| (h >> (j % 56)) as u8 ^ j as u8));
    Bytes::from(out)
}

fn records_in_call(who: u32, call: u32) -> u32 {
    1 + (who * 7 + call * 3) % 3
}

fn parse(p: &Bytes) -> (u32, u32, u32) {
    let who = u16::from_le_bytes([p[0], p[1]]) as u32;
    let call = u16::from_le_bytes([p[2], p[3]]) as u32;
    (who, call, p[4] as u32)
}

type Acks = Arc<Mutex<Vec<(u32, u32, Vec<LogPosition>)>>>;

async fn appender(log: NodeLog, who: u32, acks: Acks) {
    for call in 0..CALLS_MAX {
        let recs = (0..records_in_call(who, call)).map(|i| Record::new(RecordKind::RaftEntry, payload(who, call, i))).collect();
        match log.append(recs).await {
            Ok(pos) => acks.lock().push((who, call, pos)),
            Err(_) => return,
        }
        if call % 4 == who % 4 {
            tokio::task::yield_now().await;
        }
    }
}

/// What the seeds exercised, printed at the end (coverage, not asserted).
#[derive(Default, Debug)]
struct Coverage {
    torn_tails: u32,
    failed_before_crash: u32,
    unacked_recovered: u32,
    multi_segment: u32,
}

fn recover(disk: SimDisk) -> (NodeLog, Vec<(LogPosition, Bytes)>, RecoveryReport) {
    let mut seen = Vec::new();
    let (log, report) = NodeLog::open(Arc::new(disk), config(), &mut |pos, kind, p| {
        assert_eq!(kind, RecordKind::RaftEntry);
        seen.push((pos, p));
        Ok(())
    })
    .unwrap_or_else(|e| panic!("recovery after a crash must succeed: {e}"));
    (log, seen, report)
}

/// Checks the recovered records against what was appended and acknowledged.
fn check(seed: u64, seen: &[(LogPosition, Bytes)], acked: &[(u32, u32, Vec<LogPosition>)]) {
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "seed {seed}: records out of log order");
    let mut calls: BTreeMap<(u32, u32), Vec<(u32, LogPosition)>> = BTreeMap::new();
    for (pos, p) in seen {
        let (who, call, idx) = parse(p);
        assert_eq!(p, &payload(who, call, idx), "seed {seed}: record at {pos:?} is not what was written");
        calls.entry((who, call)).or_default().push((idx, *pos));
    }
    for ((who, call), recs) in &calls {
        let idxs: Vec<u32> = recs.iter().map(|(i, _)| *i).collect();
        let want: Vec<u32> = (0..records_in_call(*who, *call)).collect();
        assert_eq!(idxs, want, "seed {seed}: call {call} of appender {who} is partially present");
        if *call > 0 {
            assert!(calls.contains_key(&(*who, call - 1)), "seed {seed}: appender {who} has call {call} without {}", call - 1);
        }
    }
    for (who, call, positions) in acked {
        let recs = calls.get(&(*who, *call)).unwrap_or_else(|| panic!("seed {seed}: acked call {call} of {who} lost"));
        let got: Vec<LogPosition> = recs.iter().map(|(_, p)| *p).collect();
        assert_eq!(&got, positions, "seed {seed}: acked call {call} of {who} moved");
    }
}

async fn run_seed(seed: u64, cov: &mut Coverage) {
    let mut rng = StdRng::seed_from_u64(seed);
    let disk = SimDisk::new(seed);
    let (log, seen, _) = recover(disk.clone());
    assert!(seen.is_empty());
    match rng.gen_range(0..4) {
        0 => disk.fail_sync_after(rng.gen_range(0..40)),
        1 => disk.fail_write_after(rng.gen_range(0..40)),
        _ => {}
    }
    let acks: Acks = Arc::default();
    let tasks: Vec<_> = (0..APPENDERS).map(|who| tokio::spawn(appender(log.clone(), who, acks.clone()))).collect();
    let crash_after = rng.gen_range(0..(APPENDERS * CALLS_MAX) as usize);
    while acks.lock().len() < crash_after && !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_micros(50)).await;
    }
    let acked = acks.lock().clone();
    cov.failed_before_crash += log.failure().is_some() as u32;
    let after = disk.crash();
    for t in tasks {
        t.await.unwrap();
    }
    log.shutdown();

    let (log, seen, report) = recover(after.clone());
    check(seed, &seen, &acked);
    cov.torn_tails += report.torn_tail.is_some() as u32;
    cov.unacked_recovered += (seen.len() > acked.iter().map(|a| a.2.len()).sum::<usize>()) as u32;
    cov.multi_segment += (report.segments > 1) as u32;
    let extra = log.append_blocking(vec![Record::new(RecordKind::RaftEntry, payload(99, 0, 0))]);
    let extra = extra.unwrap_or_else(|e| panic!("seed {seed}: append after recovery: {e}"))[0];
    assert!(seen.last().is_none_or(|(p, _)| *p < extra), "seed {seed}: new append lands after recovered data");
    log.shutdown();

    let (_, again, _) = recover(after.crash());
    assert_eq!(again.len(), seen.len() + 1, "seed {seed}: synced data survives a second crash");
    assert_eq!(again.last().unwrap().0, extra);
}

#[test]
fn acknowledged_appends_survive_random_crashes() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut cov = Coverage::default();
    for seed in 0..SEEDS {
        rt.block_on(run_seed(seed, &mut cov));
    }
    eprintln!("crash coverage over {SEEDS} seeds: {cov:?}");
}
