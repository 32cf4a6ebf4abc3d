//! Durable append throughput and latency of the node log at 1, 8 and 64 concurrent
//! appenders, for 100 B, 1 KiB and 16 KiB records (plus 256 KiB records at 64
//! appenders for the bandwidth goal), through io_uring and `pwrite`, next to the
//! disk's own limits measured in the same run:
//!
//! - raw small durable writes: one 100 B `pwrite` + one `fdatasync` per operation;
//! - raw sequential bandwidth: 1 MiB writes to 256 MiB then one `fdatasync`
//!   (and the same with an `fdatasync` after every 1 MiB, what a log doing ~1 MiB
//!   batches must pay).
//!
//! Each appender is a tokio task looping `log.append(vec![record]).await`; the log's
//! writer thread batches whatever is queued (group commit). Throughput counts records
//! completed between two `LogStats` snapshots after a warm-up; latency is the time of
//! each `append` call started in that window. Custom harness (`harness = false`):
//! prints markdown tables for `docs/benchmarks.md`.
//!
//! Environment: `HG_BENCH_SECS` (measured seconds per case, default 3),
//! `HG_BENCH_FILTER` (substring of the case name, e.g. `uring/100B/64`),
//! `HG_BENCH_DIR` (where files go; default `target/bench-data`, the real disk).
//! Run by `cargo test --benches` it does a tiny smoke pass and claims nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hourglass_bench::raw::{self, Prep};
use hourglass_bench::{env_secs, fmt_dur, load_average, mb_per_s, quick_mode, temp_dir, Histogram, Table};
use hourglass_storage::disk::IoMode;
use hourglass_storage::log::{NodeLog, Record};
use hourglass_storage::records::RecordKind;
use hourglass_storage::LogConfig;

struct Case {
    mode: IoMode,
    record_bytes: usize,
    appenders: usize,
}

impl Case {
    fn name(&self) -> String {
        format!("{}/{}/{}", mode_name(self.mode), size_name(self.record_bytes), self.appenders)
    }
}

fn mode_name(mode: IoMode) -> &'static str {
    match mode {
        IoMode::Uring => "uring",
        IoMode::Pwrite => "pwrite",
        IoMode::Auto => "auto",
    }
}

fn size_name(bytes: usize) -> String {
    if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{}KiB", bytes / 1024)
    } else {
        format!("{bytes}B")
    }
}

struct Outcome {
    disk_kind: &'static str,
    records: u64,
    payload_bytes: u64,
    elapsed: Duration,
    batches: u64,
    syncs: u64,
    latency: Histogram,
}

impl Outcome {
    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

fn run_case(case: &Case, warmup: Duration, measure: Duration) -> Result<Outcome, String> {
    let dir = temp_dir("log-append-");
    let mut config = LogConfig::new(dir.path());
    config.io_mode = case.mode;
    let (log, _report) =
        NodeLog::open_dir(config, &mut |_, _, _| Ok(())).map_err(|e| format!("open {}: {e}", case.name()))?;
    let disk_kind = log.disk_kind();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let payload = Bytes::from((0..case.record_bytes).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let window_start = start + warmup;
    let window_end = window_start + measure;

    let tasks: Vec<_> = (0..case.appenders)
        .map(|_| {
            let log = log.clone();
            let stop = stop.clone();
            let payload = payload.clone();
            runtime.spawn(async move {
                let mut latency = Histogram::with_capacity(1 << 14);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    log.append(vec![Record { kind: RecordKind::RaftEntry, payload: payload.clone() }])
                        .await
                        .map_err(|e| e.to_string())?;
                    if t >= window_start && t < window_end {
                        latency.record(t.elapsed());
                    }
                }
                Ok::<_, String>(latency)
            })
        })
        .collect();

    std::thread::sleep(window_start.saturating_duration_since(Instant::now()));
    let (s0, t0) = (log.stats(), Instant::now());
    std::thread::sleep(window_end.saturating_duration_since(Instant::now()));
    let (s1, t1) = (log.stats(), Instant::now());
    stop.store(true, Ordering::Relaxed);

    let mut latency = Histogram::new();
    let mut failure = None;
    runtime.block_on(async {
        for task in tasks {
            match task.await {
                Ok(Ok(h)) => latency.merge(h),
                Ok(Err(e)) => failure = Some(e),
                Err(e) => failure = Some(format!("appender task: {e}")),
            }
        }
    });
    log.shutdown();
    drop(runtime);
    if let Some(e) = failure {
        return Err(format!("{}: {e}", case.name()));
    }
    let records = s1.records - s0.records;
    Ok(Outcome {
        disk_kind,
        records,
        payload_bytes: records * case.record_bytes as u64,
        elapsed: t1 - t0,
        batches: s1.batches - s0.batches,
        syncs: s1.syncs - s0.syncs,
        latency,
    })
}

fn main() {
    let quick = quick_mode();
    let measure = env_secs(if quick { 0.05 } else { 3.0 });
    let warmup = if quick { Duration::from_millis(20) } else { Duration::from_millis(500) };
    let filter = std::env::var("HG_BENCH_FILTER").ok();
    let selected = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    println!(
        "# log_append ({} mode, {:.1} s per case, load average {})\n",
        if quick { "quick smoke" } else { "measurement" },
        measure.as_secs_f64(),
        load_average().unwrap_or_default()
    );

    // --- the disk's own limits -------------------------------------------------
    let raw_dir = temp_dir("raw-");
    let mut raw_small_best = 0.0f64;
    let mut raw_seq_best = 0.0f64;
    if selected("raw") {
        let mut t = Table::new(&["raw: 100 B pwrite + fdatasync", "ops/s", "MB/s", "p50", "p99"]);
        for prep in [Prep::Fallocated, Prep::Overwrite, Prep::Append] {
            let mut r = raw::small_write_fsync(raw_dir.path(), prep, 100, measure, u64::MAX).expect("raw small writes");
            raw_small_best = raw_small_best.max(r.ops_per_s());
            t.row(vec![
                format!("{} file", prep.name()),
                format!("{:.0}", r.ops_per_s()),
                format!("{:.3}", mb_per_s(r.bytes, r.elapsed)),
                fmt_dur(r.latency.percentile(50.0)),
                fmt_dur(r.latency.percentile(99.0)),
            ]);
        }
        println!("{}", t.render());

        let total: u64 = if quick { 4 << 20 } else { 256 << 20 };
        let mut t = Table::new(&["raw: sequential 1 MiB writes", "total", "fdatasyncs", "MB/s (median of 3)"]);
        for (label, fallocated, sync_every) in [
            ("fresh file, one fdatasync at end", false, u64::MAX),
            ("fallocated, one fdatasync at end", true, u64::MAX),
            ("fallocated, fdatasync every 1 MiB", true, 1 << 20),
        ] {
            let mut runs: Vec<raw::Sequential> = (0..3)
                .map(|_| raw::sequential_write(raw_dir.path(), fallocated, 1 << 20, total, sync_every).expect("raw seq"))
                .collect();
            runs.sort_by(|a, b| a.mb_per_s().total_cmp(&b.mb_per_s()));
            let median = runs[1];
            if sync_every == u64::MAX {
                raw_seq_best = raw_seq_best.max(median.mb_per_s());
            }
            t.row(vec![
                label.to_string(),
                format!("{} MiB", total >> 20),
                median.syncs.to_string(),
                format!("{:.0}", median.mb_per_s()),
            ]);
        }
        println!("{}", t.render());
        println!("raw one-write-one-fsync rate (best prep): {raw_small_best:.0} ops/s");
        println!("raw sequential bandwidth (best): {raw_seq_best:.0} MB/s\n");
    }
    drop(raw_dir);

    // --- the log ---------------------------------------------------------------
    let mut cases = Vec::new();
    for mode in [IoMode::Uring, IoMode::Pwrite] {
        for record_bytes in [100, 1024, 16 * 1024] {
            for appenders in [1, 8, 64] {
                cases.push(Case { mode, record_bytes, appenders });
            }
        }
        cases.push(Case { mode, record_bytes: 256 * 1024, appenders: 64 });
    }
    let mut t = Table::new(&[
        "io", "record", "appenders", "records/s", "MB/s", "p50", "p99", "max", "records/batch", "syncs/s", "vs raw",
    ]);
    for case in cases.iter().filter(|c| selected(&c.name())) {
        let mut o = match run_case(case, warmup, measure) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("skipping {}: {e}", case.name());
                t.row(vec![mode_name(case.mode).into(), size_name(case.record_bytes), case.appenders.to_string(), format!("failed: {e}")]);
                continue;
            }
        };
        let secs = o.elapsed.as_secs_f64();
        let mbps = mb_per_s(o.payload_bytes, o.elapsed);
        let vs_raw = if case.record_bytes <= 1024 && raw_small_best > 0.0 {
            format!("{:.1}× raw fsync rate", o.records_per_s() / raw_small_best)
        } else if case.record_bytes > 1024 && raw_seq_best > 0.0 {
            format!("{:.0}% raw seq MB/s", 100.0 * mbps / raw_seq_best)
        } else {
            String::new()
        };
        t.row(vec![
            o.disk_kind.to_string(),
            size_name(case.record_bytes),
            case.appenders.to_string(),
            format!("{:.0}", o.records_per_s()),
            format!("{mbps:.1}"),
            fmt_dur(o.latency.percentile(50.0)),
            fmt_dur(o.latency.percentile(99.0)),
            fmt_dur(o.latency.max()),
            format!("{:.1}", o.records as f64 / o.batches.max(1) as f64),
            format!("{:.0}", o.syncs as f64 / secs),
            vs_raw,
        ]);
        eprintln!("done {}", case.name());
    }
    println!("{}", t.render());
}
