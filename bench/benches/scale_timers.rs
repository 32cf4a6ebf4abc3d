//! Scale: many open workflows parked on a long durable timer.
//!
//! Works at the storage+raft level (`hourglass_raft::Node`), no gRPC, for speed and
//! determinism. For each of N workflows (env `HG_SCALE_WORKFLOWS`, default 100_000;
//! `HG_BENCH_QUICK=1` → 2_000) it proposes the two transitions a real "start, then
//! first workflow task completes with StartTimer(1h)" produces:
//!
//! 1. `CreateRun` (mutable state, ~400 B) + `AppendEvents` [WorkflowExecutionStarted
//!    ~400 B, WorkflowTaskScheduled ~100 B];
//! 2. `AppendEvents` [WorkflowTaskStarted, WorkflowTaskCompleted, TimerStarted ~100 B
//!    each] + `SetState` (~450 B) + `AddTimer` due in 1 hour.
//!
//! Event payloads and mutable state are opaque bytes of realistic size (the service
//! crate's `ExecutionState` is not a dependency of the bench crate).
//!
//! 256 proposals are kept in flight so group commit works. It then measures process
//! RSS (VmRSS, split into RssAnon and RssFile) before/after, the log records read
//! back through the memory map during the load, and `ShardState::memory_bytes()`
//! summed over shards, shuts the node down and times restart-to-serving twice:
//! (a) with the default snapshot interval (mostly log replay), (b) after `checkpoint`
//! of every shard (snapshot load), with RSS after each. Prints a markdown table.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use bytes::Bytes;
use hourglass_raft::{Node, NodeConfig};
use hourglass_storage::state::{Op, RunKey, Transition};

const SHARDS: u32 = 4;
const IN_FLIGHT: usize = 256;
const HOUR_MS: i64 = 3_600_000;

fn rss_bytes() -> u64 {
    status_bytes("VmRSS:")
}

/// A `kB` field of /proc/self/status, in bytes (`VmRSS:`, `RssAnon:`, `RssFile:`).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Resident bytes of file mappings by kind, from /proc/self/smaps: (log segments
/// `*.seg`, snapshot files `*.snap`, other files). Deleted files count by their name.
fn mapped_file_bytes() -> (u64, u64, u64) {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let (mut seg, mut snap, mut other) = (0, 0, 0);
    let mut kind = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            // A mapping header: range perms offset dev inode [path].
            let path = line.split_whitespace().nth(5).unwrap_or("");
            kind = match path {
                p if p.ends_with(".seg") => Some(0),
                p if p.ends_with(".snap") => Some(1),
                p if p.starts_with('/') => Some(2),
                _ => None,
            };
        } else if first == "Rss:" {
            let kb: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            match kind {
                Some(0) => seg += kb * 1024,
                Some(1) => snap += kb * 1024,
                Some(2) => other += kb * 1024,
                _ => {}
            }
        }
    }
    (seg, snap, other)
}

fn run_key(i: usize) -> RunKey {
    RunKey {
        namespace: "default".into(),
        workflow_id: format!("scale-timer-wf-{i:08}"),
        run_id: format!("{:032x}", (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)),
    }
}

fn shard_of(run: &RunKey) -> u32 {
    run.workflow_id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) % SHARDS
}

/// Opaque payload of exactly `len` bytes, distinct per run and tag (so nothing dedupes).
fn blob(run: &RunKey, tag: &str, len: usize) -> Bytes {
    let mut v = format!("{tag}|{}|{}|", run.workflow_id, run.run_id).into_bytes();
    let mut x = v.len() as u8;
    while v.len() < len {
        x = x.wrapping_mul(33).wrapping_add(7);
        v.push(b'a' + x % 26);
    }
    v.truncate(len);
    Bytes::from(v)
}

fn start(run: &RunKey, now: i64) -> Transition {
    Transition {
        time_ms: now,
        dedupe: None,
        ops: vec![
            Op::CreateRun { run: run.clone(), state: blob(run, "state-v1", 400) },
            Op::AppendEvents {
                run: run.clone(),
                first_event_id: 1,
                events: vec![blob(run, "WorkflowExecutionStarted", 400), blob(run, "WorkflowTaskScheduled", 100)],
            },
        ],
    }
}

fn park_on_timer(run: &RunKey, now: i64) -> Transition {
    Transition {
        time_ms: now,
        dedupe: None,
        ops: vec![
            Op::AppendEvents {
                run: run.clone(),
                first_event_id: 3,
                events: vec![
                    blob(run, "WorkflowTaskStarted", 100),
                    blob(run, "WorkflowTaskCompleted", 100),
                    blob(run, "TimerStarted", 100),
                ],
            },
            // The run's first state write: it was created at state version 1.
            Op::SetState { run: run.clone(), expected_version: 1, state: blob(run, "state-v2", 450) },
            Op::AddTimer { run: run.clone(), due_ms: now + HOUR_MS, payload: blob(run, "timer", 48) },
        ],
    }
}

fn config(dir: &std::path::Path) -> NodeConfig {
    // Defaults except a short tick so the single-node election is quick.
    let mut c = NodeConfig::new(dir, SHARDS);
    c.tick_ms = 10;
    if let Some(v) = std::env::var("HG_SCALE_SNAPSHOT_INTERVAL").ok().and_then(|v| v.replace('_', "").parse().ok()) {
        c.snapshot_interval_entries = v;
    }
    c
}

fn applied(node: &Node) -> Vec<u64> {
    (0..SHARDS).map(|s| node.read(s, |st| st.applied_index()).unwrap()).collect()
}

fn memory(node: &Node) -> u64 {
    (0..SHARDS).map(|s| node.read(s, |st| st.memory_bytes()).unwrap() as u64).sum()
}

fn timers(node: &Node) -> u64 {
    (0..SHARDS).map(|s| node.read(s, |st| st.timer_count()).unwrap() as u64).sum()
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn count_files(path: &std::path::Path) -> usize {
    std::fs::read_dir(path).map(|rd| rd.flatten().count()).unwrap_or(0)
}

/// Opens the node and times (open returns, all shards back at `target` applied index).
async fn reopen(dir: &std::path::Path, target: &[u64]) -> (Node, Duration, Duration) {
    let t0 = Instant::now();
    let node = Node::open(config(dir)).await.expect("reopen");
    let open = t0.elapsed();
    loop {
        let now = applied(&node);
        if now.iter().zip(target).all(|(a, b)| a >= b) {
            break;
        }
        if t0.elapsed() > Duration::from_secs(600) {
            panic!("applied {now:?} never reached {target:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (node, open, t0.elapsed())
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn main() {
    let quick = std::env::var("HG_BENCH_QUICK").is_ok_and(|v| v == "1");
    let n: usize = if quick {
        2_000
    } else {
        std::env::var("HG_SCALE_WORKFLOWS").ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(100_000)
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run(n));
}

async fn run(n: usize) {
    let base = std::env::var_os("HG_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new().prefix("hg-scale-timers-").tempdir_in(base).unwrap();
    let dir = tmp.path().to_path_buf();
    let cfg = config(&dir);
    eprintln!(
        "scale_timers: N={n}, shards={SHARDS}, in_flight={IN_FLIGHT}, snapshot_interval_entries={}, dir={}",
        cfg.snapshot_interval_entries,
        dir.display()
    );

    let node = Node::open(cfg.clone()).await.expect("open");
    let rss_before = rss_bytes();
    let (anon_before, file_before) = (status_bytes("RssAnon:"), status_bytes("RssFile:"));
    let mem_before = memory(&node);
    let log_before = node.log().stats();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;

    let t_load = Instant::now();
    let mut workers = Vec::new();
    for w in 0..IN_FLIGHT {
        let node = node.clone();
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                let run = run_key(i);
                let shard = shard_of(&run);
                node.propose(shard, &start(&run, now)).await.expect("start");
                node.propose(shard, &park_on_timer(&run, now)).await.expect("timer");
                i += IN_FLIGHT;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let load = t_load.elapsed();
    // Let background snapshotting settle before sampling memory.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = rss_bytes();
    let (anon_after, file_after) = (status_bytes("RssAnon:"), status_bytes("RssFile:"));
    let mem_after = memory(&node);
    let log_after = node.log().stats();
    let (seg_after, snap_after, other_after) = mapped_file_bytes();
    let open_timers = timers(&node);
    assert_eq!(open_timers, n as u64, "every workflow holds one timer");
    let target = applied(&node);
    let snaps_before_restart = count_files(&dir.join("snapshots"));
    node.shutdown().await;
    drop(node);
    let log_bytes = dir_bytes(&dir.join("log"));
    let snap_bytes = dir_bytes(&dir.join("snapshots"));

    // (a) restart with the default snapshot interval: whatever snapshots the interval
    // produced, plus log replay of the rest.
    let rss_pre_a = rss_bytes();
    let (node, open_a, ready_a) = reopen(&dir, &target).await;
    // Replay finishing and releasing the log's mapped pages is the driver's last step.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rss_a = rss_bytes();
    let file_a = status_bytes("RssFile:");
    let (seg_a, snap_a, _) = mapped_file_bytes();
    let reads_a = node.log().stats().reads;
    let report_a = node.recovery_report().clone();
    assert_eq!(timers(&node), n as u64, "timers after restart");
    let mem_a = memory(&node);
    // (b) checkpoint every shard, restart again: snapshot load, (almost) no replay.
    for s in 0..SHARDS {
        node.checkpoint(s).await.expect("checkpoint");
    }
    let target_b = applied(&node);
    node.shutdown().await;
    drop(node);
    let snap_bytes_b = dir_bytes(&dir.join("snapshots"));
    let (node, open_b, ready_b) = reopen(&dir, &target_b).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (rss_b, file_b) = (rss_bytes(), status_bytes("RssFile:"));
    let report_b = node.recovery_report().clone();
    assert_eq!(timers(&node), n as u64, "timers after snapshot restart");
    node.shutdown().await;
    drop(node);

    let rss_delta = rss_after.saturating_sub(rss_before);
    let mem_delta = mem_after.saturating_sub(mem_before);
    let per = |b: u64| format!("{:.0} B", b as f64 / n as f64);
    println!();
    println!("### scale_timers: {n} open workflows, each waiting on a 1 h durable timer");
    println!();
    println!("| metric | value |");
    println!("|---|---|");
    println!("| workflows (open runs) / shards / in-flight proposals | {n} / {SHARDS} / {IN_FLIGHT} |");
    println!("| proposals (2 per workflow) | {} |", 2 * n);
    println!(
        "| load time / throughput | {:.2} s / {:.0} workflows/s ({:.0} proposals/s) |",
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64(),
        2.0 * n as f64 / load.as_secs_f64()
    );
    println!("| VmRSS before → after load | {} → {} |", mib(rss_before), mib(rss_after));
    println!("| **RSS per open workflow** | **{}** |", per(rss_delta));
    println!(
        "| of which RssAnon (heap) / RssFile (mapped files) per workflow | {} / {} |",
        per(anon_after.saturating_sub(anon_before)),
        per(file_after.saturating_sub(file_before))
    );
    println!(
        "| mapped and resident after the load: log segments / snapshot files / other files | {} / {} / {} |",
        mib(seg_after),
        mib(snap_after),
        mib(other_after)
    );
    println!(
        "| log records read back during the load (NodeLog::read) | {} ({}) |",
        log_after.reads - log_before.reads,
        mib(log_after.read_bytes - log_before.read_bytes)
    );
    println!("| ShardState::memory_bytes (sum of shards) | {} |", mib(mem_after));
    println!("| memory_bytes per open workflow | {} |", per(mem_delta));
    println!("| applied index per shard | {target:?} |");
    println!("| snapshot_interval_entries (config) | {} |", cfg.snapshot_interval_entries);
    println!("| snapshot files present at first shutdown | {snaps_before_restart} |");
    println!("| on disk: log / snapshots | {} / {} |", mib(log_bytes), mib(snap_bytes));
    println!(
        "| restart (a) as loaded (interval snapshots + log replay): open → ready / applied caught up | {:.0} ms / {:.0} ms |",
        open_a.as_secs_f64() * 1e3,
        ready_a.as_secs_f64() * 1e3
    );
    println!("| VmRSS around restart (a) (same process; allocator keeps freed pages) | {} → {} |", mib(rss_pre_a), mib(rss_a));
    println!("| RssFile after restart (a): total (log segments / snapshot files) | {} ({} / {}) |", mib(file_a), mib(seg_a), mib(snap_a));
    println!("| log records read back by restart (a) (replay) | {reads_a} |");
    println!(
        "| restart (a) log recovery scan: segments / records / bytes | {} / {} / {} |",
        report_a.segments,
        report_a.records,
        mib(report_a.bytes)
    );
    println!("| memory_bytes after restart (a) | {} |", mib(mem_a));
    println!("| snapshots after checkpoint of all shards | {} |", mib(snap_bytes_b));
    println!(
        "| restart (b) after checkpoint (snapshot load): open → ready / applied caught up | {:.0} ms / {:.0} ms |",
        open_b.as_secs_f64() * 1e3,
        ready_b.as_secs_f64() * 1e3
    );
    println!("| VmRSS / RssFile after restart (b) | {} / {} |", mib(rss_b), mib(file_b));
    println!(
        "| restart (b) log recovery scan: segments / records / bytes | {} / {} / {} |",
        report_b.segments,
        report_b.records,
        mib(report_b.bytes)
    );
    println!();
}
