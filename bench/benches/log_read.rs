//! History read throughput: records read back by position from the memory-mapped
//! segments (zero copy, page cache warm: the records were just written), in write
//! order and in a shuffled order, for 100 B, 1 KiB and 16 KiB records. Criterion;
//! one iteration reads every record once, so criterion's `thrpt` is MiB/s (bytes
//! group) or records/s (elements group).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hourglass_bench::{quick_mode, temp_dir};
use hourglass_storage::disk::IoMode;
use hourglass_storage::log::{NodeLog, Record};
use hourglass_storage::records::RecordKind;
use hourglass_storage::{LogConfig, LogPosition};

/// Bytes of payload written per record size.
fn data_bytes() -> usize {
    if quick_mode() {
        1 << 20
    } else {
        64 << 20
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    log: NodeLog,
    in_order: Vec<LogPosition>,
    shuffled: Vec<LogPosition>,
}

fn fixture(record_bytes: usize) -> Fixture {
    let dir = temp_dir("log-read-");
    let mut config = LogConfig::new(dir.path());
    config.io_mode = IoMode::Pwrite;
    let (log, _) = NodeLog::open_dir(config, &mut |_, _, _| Ok(())).expect("open log");
    let payload = Bytes::from(vec![0x5Au8; record_bytes]);
    let count = data_bytes() / record_bytes;
    let per_batch = ((1 << 20) / record_bytes).max(1);
    let mut in_order = Vec::with_capacity(count);
    while in_order.len() < count {
        let n = per_batch.min(count - in_order.len());
        let batch = (0..n).map(|_| Record { kind: RecordKind::RaftEntry, payload: payload.clone() }).collect();
        in_order.extend(log.append_blocking(batch).expect("append"));
    }
    // Deterministic Fisher-Yates with a xorshift generator.
    let mut shuffled = in_order.clone();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..shuffled.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        shuffled.swap(i, (x % (i as u64 + 1)) as usize);
    }
    Fixture { _dir: dir, log, in_order, shuffled }
}

fn read_all(log: &NodeLog, positions: &[LogPosition]) -> usize {
    let mut total = 0;
    for pos in positions {
        let (_kind, payload) = log.read(*pos).expect("read");
        total += black_box(payload).len();
    }
    total
}

fn bench_reads(c: &mut Criterion) {
    let mut bytes_group = c.benchmark_group("log_read_bytes");
    bytes_group.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    let mut fixtures = Vec::new();
    for record_bytes in [100usize, 1024, 16 * 1024] {
        let f = fixture(record_bytes);
        bytes_group.throughput(Throughput::Bytes((f.in_order.len() * record_bytes) as u64));
        for (order, positions) in [("in_order", &f.in_order), ("shuffled", &f.shuffled)] {
            bytes_group.bench_with_input(BenchmarkId::new(order, record_bytes), positions, |b, p| b.iter(|| read_all(&f.log, p)));
        }
        fixtures.push((record_bytes, f));
    }
    bytes_group.finish();

    let mut records_group = c.benchmark_group("log_read_records");
    records_group.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (record_bytes, f) in &fixtures {
        records_group.throughput(Throughput::Elements(f.in_order.len() as u64));
        records_group.bench_with_input(BenchmarkId::new("in_order", record_bytes), &f.in_order, |b, p| b.iter(|| read_all(&f.log, p)));
    }
    records_group.finish();

    // One read, for its latency.
    let (_, f) = &fixtures[1];
    let pos = f.in_order[f.in_order.len() / 2];
    c.bench_function("log_read_one_1KiB", |b| b.iter(|| f.log.read(black_box(pos)).expect("read")));
    for (_, f) in fixtures {
        f.log.shutdown();
    }
}

criterion_group!(benches, bench_reads);
criterion_main!(benches);
