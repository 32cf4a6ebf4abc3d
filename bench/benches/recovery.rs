//! Recovery time per GB: write a log of 100 B and 4 KiB records, shut it down, and
//! time `NodeLog::open`, which checks every frame's CRC and hands every record to
//! the visitor. Timed with the segments in the page cache (just written: CPU cost)
//! and after dropping them from the page cache (`posix_fadvise(DONTNEED)`: device
//! read + CPU), next to a raw sequential read of the same files in the same state.
//! Custom harness; prints a markdown table.
//!
//! Environment: `HG_BENCH_RECOVERY_MIB` (MiB of payload per record size, default
//! 1024), `HG_BENCH_DIR`. Run by `cargo test --benches` it writes a few MiB only.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hourglass_bench::{load_average, mb_per_s, quick_mode, raw, temp_dir, Table};
use hourglass_storage::disk::IoMode;
use hourglass_storage::log::{NodeLog, Record};
use hourglass_storage::records::RecordKind;
use hourglass_storage::LogConfig;

fn config(dir: &Path) -> LogConfig {
    let mut c = LogConfig::new(dir);
    c.io_mode = IoMode::Pwrite;
    c
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

fn drop_cache(dir: &Path) {
    for f in segment_files(dir) {
        if let Err(e) = raw::drop_file_cache(&f) {
            eprintln!("posix_fadvise({}): {e}", f.display());
        }
    }
}

/// Reads every file of `dir` with 1 MiB reads; returns (bytes, time).
fn raw_read(dir: &Path) -> (u64, Duration) {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let start = Instant::now();
    for f in segment_files(dir) {
        let mut file = std::fs::File::open(f).unwrap();
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    (total, start.elapsed())
}

struct Recovered {
    records: u64,
    payload_bytes: u64,
    elapsed: Duration,
}

fn recover(dir: &Path) -> Recovered {
    let mut records = 0u64;
    let mut payload_bytes = 0u64;
    let start = Instant::now();
    let (log, _report) = NodeLog::open_dir(config(dir), &mut |_pos, _kind, payload| {
        records += 1;
        payload_bytes += payload.len() as u64;
        Ok(())
    })
    .expect("recovery");
    let elapsed = start.elapsed();
    log.shutdown();
    Recovered { records, payload_bytes, elapsed }
}

fn main() {
    let quick = quick_mode();
    let mib: u64 = std::env::var("HG_BENCH_RECOVERY_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(if quick { 4 } else { 1024 });
    println!(
        "# recovery ({} mode, {mib} MiB of payload per case, load average {})\n",
        if quick { "quick smoke" } else { "measurement" },
        load_average().unwrap_or_default()
    );
    let mut t = Table::new(&[
        "record",
        "records",
        "segment bytes on disk",
        "write (MB/s)",
        "page cache",
        "open time",
        "s per GB (segment bytes)",
        "recovery MB/s",
        "raw read MB/s (same state)",
    ]);
    for record_bytes in [100usize, 4096] {
        let dir = temp_dir("recovery-");
        let (log, _) = NodeLog::open_dir(config(dir.path()), &mut |_, _, _| Ok(())).expect("open");
        let payload = Bytes::from(vec![0xC3u8; record_bytes]);
        let count = (mib << 20) / record_bytes as u64;
        let per_batch = ((1usize << 20) / record_bytes) as u64;
        let start = Instant::now();
        let mut written = 0u64;
        while written < count {
            let n = per_batch.min(count - written);
            let batch = (0..n).map(|_| Record { kind: RecordKind::RaftEntry, payload: payload.clone() }).collect();
            log.append_blocking(batch).expect("append");
            written += n;
        }
        let write_time = start.elapsed();
        log.shutdown();
        drop(log);
        // What recovery must scan: the used part of every segment. Segments are
        // preallocated; the newest one's zero tail ends the scan.
        let on_disk: u64 = segment_files(dir.path()).iter().map(|f| f.metadata().unwrap().len()).sum();
        let used_bytes = count * (record_bytes as u64 + 16);
        let write_mbps = mb_per_s(count * record_bytes as u64, write_time);

        for cold in [false, true] {
            if cold {
                drop_cache(dir.path());
            } else {
                let _ = recover(dir.path()); // warm the cache
            }
            let r = recover(dir.path());
            assert_eq!(r.records, count, "recovery found every record");
            assert_eq!(r.payload_bytes, count * record_bytes as u64);
            if cold {
                drop_cache(dir.path());
            }
            let (raw_bytes, raw_time) = raw_read(dir.path());
            t.row(vec![
                if record_bytes >= 1024 { format!("{} KiB", record_bytes / 1024) } else { format!("{record_bytes} B") },
                count.to_string(),
                format!("{:.0} MiB used / {:.0} MiB files", used_bytes as f64 / (1 << 20) as f64, on_disk as f64 / (1 << 20) as f64),
                format!("{write_mbps:.0}"),
                if cold { "dropped" } else { "warm" }.into(),
                format!("{:.3} s", r.elapsed.as_secs_f64()),
                format!("{:.2}", r.elapsed.as_secs_f64() / (used_bytes as f64 / 1e9)),
                format!("{:.0}", mb_per_s(used_bytes, r.elapsed)),
                format!("{:.0}", mb_per_s(raw_bytes, raw_time)),
            ]);
        }
        eprintln!("done {record_bytes} B");
    }
    println!("{}", t.render());
}
