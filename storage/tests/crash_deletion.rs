//! Segment deletion racing a power loss: whatever a crash leaves (a half-written
//! hollow file, an unsynced rename or unlink), recovery opens, never sees a gap,
//! and each segment's records are all there or (if it was being deleted) all gone.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hourglass_storage::disk::sim::SimDisk;
use hourglass_storage::log::{LogConfig, LogPosition, NodeLog, Record};
use hourglass_storage::records::RecordKind;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const SEEDS: u64 = 120;

fn config() -> LogConfig {
    let mut c = LogConfig::new("/log");
    c.segment_bytes = 2048;
    c.record_bytes_max = 512;
    c
}

fn open(disk: &SimDisk) -> (NodeLog, Vec<(LogPosition, Bytes)>) {
    let mut seen = Vec::new();
    let (log, _) = NodeLog::open(Arc::new(disk.clone()), config(), &mut |pos, _, p| {
        seen.push((pos, p));
        Ok(())
    })
    .unwrap_or_else(|e| panic!("recovery after a crash during deletion must succeed: {e}"));
    (log, seen)
}

/// Crash states reached, printed at the end (coverage, not asserted).
#[derive(Default, Debug)]
struct Coverage {
    hollow_files: u32,
    leftover_temp_files: u32,
    victims_kept: u32,
    victims_gone: u32,
}

fn run_seed(seed: u64, cov: &mut Coverage) {
    let mut rng = StdRng::seed_from_u64(seed);
    let disk = SimDisk::new(seed);
    let (log, _) = open(&disk);
    let mut written: BTreeMap<LogPosition, Bytes> = BTreeMap::new();
    while log.segments().len() < 6 {
        let p = Bytes::from(vec![(written.len() % 250) as u8 + 1; 300]);
        written.insert(log.append_blocking(vec![Record::new(RecordKind::RaftEntry, p.clone())]).unwrap()[0], p);
    }
    let mut victims: Vec<u64> = (1..=5).collect();
    victims.shuffle(&mut rng);
    victims.truncate(rng.gen_range(1..=5));
    match rng.gen_range(0..3) {
        0 => disk.fail_sync_after(rng.gen_range(0..4)),
        1 => disk.fail_write_after(rng.gen_range(0..4)),
        _ => {}
    }
    let deleter = {
        let (log, victims) = (log.clone(), victims.clone());
        std::thread::spawn(move || {
            for id in victims {
                if log.delete_segment(id).is_err() {
                    return;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_micros(rng.gen_range(0..300)));
    let after = disk.crash();
    deleter.join().unwrap();
    log.shutdown();

    for id in 1..=6u64 {
        let name = format!("/log/{id:020}");
        cov.hollow_files += after.contents(format!("{name}.seg").as_ref()).is_some_and(|c| c.len() == 64) as u32;
        cov.leftover_temp_files += after.contents(format!("{name}.hollow.tmp").as_ref()).is_some() as u32;
    }
    let (log, seen) = open(&after);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "seed {seed}: log order");
    let mut by_segment: BTreeMap<u64, usize> = BTreeMap::new();
    for (pos, p) in &seen {
        assert_eq!(written.get(pos), Some(p), "seed {seed}: {pos:?} is what was written");
        *by_segment.entry(pos.segment_id).or_default() += 1;
    }
    for id in 1..=6u64 {
        let total = written.keys().filter(|p| p.segment_id == id).count();
        let got = by_segment.get(&id).copied().unwrap_or(0);
        let victim = victims.contains(&id);
        assert!(got == total || (got == 0 && victim), "seed {seed}: segment {id} has {got} of {total} records");
        cov.victims_kept += (victim && got == total) as u32;
        cov.victims_gone += (victim && got == 0) as u32;
    }
    log.append_blocking(vec![Record::new(RecordKind::RaftEntry, vec![1u8; 9])]).unwrap();
    log.shutdown();
    open(&after.crash());
}

#[test]
fn deletions_interrupted_by_crashes_leave_a_valid_log() {
    let mut cov = Coverage::default();
    for seed in 0..SEEDS {
        run_seed(seed, &mut cov);
    }
    eprintln!("deletion crash coverage over {SEEDS} seeds: {cov:?}");
}
