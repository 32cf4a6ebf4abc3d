//! Hourglass storage vs SQLite at the same durability, on the same workflow workload.
//!
//! Each workflow: start a run, then append `HG_CMP_BATCHES` (default 20) event batches
//! of 3 events of ~200 B, one durable transition per batch that also moves the
//! workflow task (enqueue the next, ack the previous); then read the whole history
//! back. Per workflow (B batches):
//!
//! - step 0: create run (state ~100 B) + append 3 events + enqueue a task;
//! - step 1..B-1: append 3 events + replace the state + ack the previous task +
//!   enqueue the next one (the last step enqueues nothing).
//!
//! Sides:
//!
//! - **hourglass**: `hourglass_raft::Node` (`NodeConfig::new(dir, 4)`, one voter, the
//!   node log with group commit, `fdatasync` before a proposal resolves); one
//!   `Transition` per step, `node.propose(shard, ..)`; workers are tokio tasks on a
//!   2-thread runtime; history via `node.read_history`.
//! - **sqlite**: rusqlite (bundled SQLite), WAL, `synchronous=FULL` (the WAL is
//!   fsynced at every commit: durable like a resolved proposal), one connection per
//!   worker thread, `busy_timeout` 10 s, prepared statements; each step is one
//!   `BEGIN IMMEDIATE … COMMIT` doing the same checks and writes (run's
//!   `next_event_id` must equal the first new event id, insert the events, update
//!   the state and `next_event_id`, delete the acked task — which must exist —,
//!   insert the new task). Two variants: `sqlite` (writers contend through SQLite's
//!   busy handler, which sleeps and retries) and `sqlite+mutex` (writers also take an
//!   in-process mutex around the write transaction, the usual way to run SQLite with
//!   many writer threads in one process: no busy-handler sleeps). Ratios use the better
//!   of the two at each concurrency.
//!
//! Workers pull workflow numbers from a shared counter until `HG_CMP_WORKFLOWS`
//! (default 2000) are done or `HG_BENCH_SECS` (default 6 s) have passed (a worker
//! finishes the workflow it is in). Throughput is over that write phase's wall time;
//! latency is per transition (propose call / transaction). The read phase then reads
//! the history of every finished workflow with the same number of worker threads
//! (checked: event count and payloads) and reports payload MB/s.
//!
//! Concurrencies: `HG_CMP_CONCURRENCY` (comma list, default `1,16,64`). Before each
//! case the bench waits (up to 5 s) for a quiet second (other processes < 0.15 CPU)
//! and reports what other processes used during the case. `HG_BENCH_DIR` sets where
//! files go (default `target/bench-data`, the real disk). Run by
//! `cargo test --benches` (or with `HG_BENCH_QUICK=1`) it does a tiny smoke pass and
//! claims nothing. Custom harness: prints markdown tables for
//! `docs/bench-storage-compare.md`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hourglass_bench::raw::{self, Prep};
use hourglass_bench::{env_secs, fmt_dur, load_average, mb_per_s, quick_mode, temp_dir, wait_quiet, CpuSample, Histogram, Table};
use hourglass_raft::{Node, NodeConfig};
use hourglass_storage::state::{Applied, Op, QueueKey, QueueKind, RunKey, Transition};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

const SHARDS: u32 = 4;
const NS: &str = "default";
const QUEUE: &str = "tq";

#[derive(Debug, Clone)]
struct Params {
    batches: u64,
    events_per_batch: u64,
    event_bytes: usize,
    workflows: usize,
    secs: Duration,
    concurrency: Vec<usize>,
    quick: bool,
}

impl Params {
    fn from_env() -> Self {
        let quick = quick_mode();
        let num = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(d);
        let concurrency = std::env::var("HG_CMP_CONCURRENCY")
            .ok()
            .map(|v| v.split(',').filter_map(|c| c.trim().parse::<usize>().ok()).filter(|&c| c > 0).collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| if quick { vec![1, 4] } else { vec![1, 16, 64] });
        Self {
            batches: num("HG_CMP_BATCHES", if quick { 3 } else { 20 }).max(1),
            events_per_batch: 3,
            event_bytes: 200,
            workflows: num("HG_CMP_WORKFLOWS", if quick { 6 } else { 2000 }).max(1) as usize,
            secs: if quick { Duration::from_secs(2) } else { env_secs(6.0) },
            concurrency,
            quick,
        }
    }
}

fn wf_id(i: usize) -> String {
    format!("wf-{i}")
}

fn run_key(i: usize) -> RunKey {
    RunKey { namespace: NS.into(), workflow_id: wf_id(i), run_id: format!("run-{i}") }
}

fn queue() -> QueueKey {
    QueueKey { namespace: NS.into(), name: QUEUE.into(), kind: QueueKind::Workflow }
}

fn shard_of(workflow_id: &str) -> u32 {
    workflow_id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) % SHARDS
}

/// `event_bytes` bytes, distinct per workflow and event id.
fn event(p: &Params, wf: usize, id: u64) -> Bytes {
    let mut s = format!("wf-{wf}#{id}#");
    while s.len() < p.event_bytes {
        s.push((b'a' + (s.len() % 26) as u8) as char);
    }
    s.truncate(p.event_bytes);
    Bytes::from(s)
}

fn state(step: u64) -> Bytes {
    Bytes::from(format!("{step:08}{}", "s".repeat(92)))
}

const TASK: &[u8] = b"workflow-task:decide";

/// What one case measured.
struct Outcome {
    system: &'static str,
    workers: usize,
    workflows: usize,
    transitions: u64,
    events: u64,
    write_elapsed: Duration,
    latency: Histogram,
    read_bytes: u64,
    read_elapsed: Duration,
    /// Hourglass only: transitions per `fdatasync` of the node log (group commit).
    transitions_per_sync: Option<f64>,
    foreign_cpus: f64,
}

impl Outcome {
    fn transitions_per_s(&self) -> f64 {
        self.transitions as f64 / self.write_elapsed.as_secs_f64().max(1e-9)
    }
    fn events_per_s(&self) -> f64 {
        self.events as f64 / self.write_elapsed.as_secs_f64().max(1e-9)
    }
    fn read_mb_s(&self) -> f64 {
        mb_per_s(self.read_bytes, self.read_elapsed)
    }
}

/// Verifies a history read back and returns its payload bytes.
fn check_history(p: &Params, wf: usize, history: &[(u64, Bytes)]) -> u64 {
    let want = p.batches * p.events_per_batch;
    assert_eq!(history.len() as u64, want, "history length of wf-{wf}");
    let mut bytes = 0;
    for (i, (id, payload)) in history.iter().enumerate() {
        assert_eq!(*id, i as u64 + 1, "event ids of wf-{wf}");
        if i == 0 || i + 1 == history.len() {
            assert_eq!(payload, &event(p, wf, *id), "payload of wf-{wf} event {id}");
        }
        bytes += payload.len() as u64;
    }
    bytes
}

// ---------------------------------------------------------------------------------
// Hourglass

fn hourglass_step(p: &Params, wf: usize, run: &RunKey, step: u64, prev_task: Option<u64>) -> Transition {
    let first = step * p.events_per_batch + 1;
    let events: Vec<Bytes> = (first..first + p.events_per_batch).map(|id| event(p, wf, id)).collect();
    let mut ops = Vec::with_capacity(4);
    if step == 0 {
        ops.push(Op::CreateRun { run: run.clone(), state: state(step) });
        ops.push(Op::AppendEvents { run: run.clone(), first_event_id: first, events });
    } else {
        ops.push(Op::AppendEvents { run: run.clone(), first_event_id: first, events });
        ops.push(Op::SetState { run: run.clone(), state: state(step) });
    }
    if let Some(task_id) = prev_task {
        ops.push(Op::Ack { queue: queue(), task_id });
    }
    if step + 1 < p.batches {
        ops.push(Op::Enqueue { queue: queue(), run: run.clone(), task: Bytes::from_static(TASK) });
    }
    Transition { time_ms: 1_700_000_000_000 + step as i64, dedupe: None, ops }
}

fn run_hourglass(p: &Params, workers: usize) -> Outcome {
    let dir = temp_dir("cmp-hourglass-");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let node = runtime.block_on(Node::open(NodeConfig::new(dir.path(), SHARDS))).expect("open node");
    let p = Arc::new(p.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = CpuSample::now();
    let log_before = node.log().stats();
    let start = Instant::now();
    let deadline = start + p.secs;
    let results: Vec<(Vec<usize>, Histogram)> = runtime.block_on(async {
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let (node, p, next) = (node.clone(), p.clone(), next.clone());
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    let mut latency = Histogram::with_capacity(1024);
                    while Instant::now() < deadline {
                        let wf = next.fetch_add(1, Ordering::Relaxed);
                        if wf >= p.workflows {
                            break;
                        }
                        let run = run_key(wf);
                        let shard = shard_of(&run.workflow_id);
                        let mut prev_task = None;
                        for step in 0..p.batches {
                            let t = hourglass_step(&p, wf, &run, step, prev_task);
                            let t0 = Instant::now();
                            let applied = node.propose(shard, &t).await.expect("propose");
                            latency.record(t0.elapsed());
                            prev_task = match applied {
                                Applied::Done { task_ids, .. } => task_ids.first().copied(),
                                other => panic!("unexpected answer {other:?}"),
                            };
                        }
                        done.push(wf);
                    }
                    (done, latency)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("worker"));
        }
        out
    });
    let write_elapsed = start.elapsed();
    let log_after = node.log().stats();
    let foreign_cpus = cpu.and_then(|c| c.foreign_cpus()).unwrap_or(0.0);
    let mut latency = Histogram::new();
    let mut done: Vec<usize> = Vec::new();
    for (d, h) in results {
        done.extend(d);
        latency.merge(h);
    }
    // Every task was acked: the backlogs are empty.
    let backlog: usize = (0..SHARDS).map(|s| node.read(s, |st| st.backlog(&queue()).count()).unwrap()).sum();
    assert_eq!(backlog, 0, "tasks left in the backlog");

    let (read_bytes, read_elapsed) = parallel_reads(&done, workers, |wf| {
        let run = run_key(wf);
        let history = node.read_history(shard_of(&run.workflow_id), &run, 1, usize::MAX).expect("read history");
        check_history(&p, wf, &history)
    });
    let syncs = log_after.syncs - log_before.syncs;
    runtime.block_on(node.shutdown());
    let transitions = done.len() as u64 * p.batches;
    Outcome {
        system: "hourglass",
        workers,
        workflows: done.len(),
        transitions,
        events: transitions * p.events_per_batch,
        write_elapsed,
        latency,
        read_bytes,
        read_elapsed,
        transitions_per_sync: (syncs > 0).then(|| transitions as f64 / syncs as f64),
        foreign_cpus,
    }
}

/// Reads the histories of `done` with `workers` threads; (payload bytes, wall time).
fn parallel_reads(done: &[usize], workers: usize, read: impl Fn(usize) -> u64 + Sync) -> (u64, Duration) {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let bytes: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.min(done.len()).max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut bytes = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&wf) = done.get(i) else { break bytes };
                        bytes += read(wf);
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("reader")).sum()
    });
    (bytes, start.elapsed())
}

// ---------------------------------------------------------------------------------
// SQLite

const SCHEMA: &str = "
CREATE TABLE runs(
    id INTEGER PRIMARY KEY,
    ns TEXT NOT NULL, wf_id TEXT NOT NULL, run_id TEXT NOT NULL,
    state BLOB NOT NULL, next_event_id INTEGER NOT NULL,
    UNIQUE(ns, wf_id, run_id));
CREATE TABLE events(
    run INTEGER NOT NULL, event_id INTEGER NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY(run, event_id)) WITHOUT ROWID;
CREATE TABLE tasks(
    task_id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL, run INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE INDEX tasks_by_queue ON tasks(queue, task_id);
";

fn sqlite_open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open sqlite");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy_timeout");
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).expect("wal");
    assert_eq!(mode, "wal");
    conn.execute_batch("PRAGMA synchronous=FULL;").expect("synchronous");
    let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).expect("synchronous");
    assert_eq!(sync, 2, "synchronous=FULL");
    conn
}

/// One step as one write transaction; returns the enqueued task id.
fn sqlite_step(
    p: &Params,
    conn: &mut Connection,
    wf: usize,
    run_id: &mut i64,
    step: u64,
    prev_task: Option<i64>,
) -> rusqlite::Result<Option<i64>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let first = step * p.events_per_batch + 1;
    let next_event_id = first + p.events_per_batch;
    if step == 0 {
        // A workflow has at most one run here: creating it twice fails on UNIQUE.
        tx.prepare_cached("INSERT INTO runs(ns, wf_id, run_id, state, next_event_id) VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(params![NS, wf_id(wf), format!("run-{wf}"), &state(step)[..], next_event_id as i64])?;
        *run_id = tx.last_insert_rowid();
    } else {
        let current: Option<i64> = tx
            .prepare_cached("SELECT next_event_id FROM runs WHERE id = ?1")?
            .query_row([*run_id], |r| r.get(0))
            .optional()?;
        assert_eq!(current, Some(first as i64), "next event id of wf-{wf}");
        tx.prepare_cached("UPDATE runs SET state = ?2, next_event_id = ?3 WHERE id = ?1")?
            .execute(params![*run_id, &state(step)[..], next_event_id as i64])?;
    }
    {
        let mut insert = tx.prepare_cached("INSERT INTO events(run, event_id, payload) VALUES (?1, ?2, ?3)")?;
        for id in first..next_event_id {
            insert.execute(params![*run_id, id as i64, &event(p, wf, id)[..]])?;
        }
    }
    if let Some(task_id) = prev_task {
        let n = tx.prepare_cached("DELETE FROM tasks WHERE task_id = ?1 AND queue = ?2")?.execute(params![task_id, QUEUE])?;
        assert_eq!(n, 1, "acked task {task_id} of wf-{wf} not found");
    }
    let task = if step + 1 < p.batches {
        tx.prepare_cached("INSERT INTO tasks(queue, run, payload) VALUES (?1, ?2, ?3)")?
            .execute(params![QUEUE, *run_id, TASK])?;
        Some(tx.last_insert_rowid())
    } else {
        None
    };
    tx.commit()?;
    Ok(task)
}

fn sqlite_history(conn: &Connection, wf: usize) -> rusqlite::Result<Vec<(u64, Bytes)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.event_id, e.payload FROM runs r JOIN events e ON e.run = r.id \
         WHERE r.ns = ?1 AND r.wf_id = ?2 AND r.run_id = ?3 ORDER BY e.event_id",
    )?;
    let rows = stmt.query_map(params![NS, wf_id(wf), format!("run-{wf}")], |r| {
        Ok((r.get::<_, i64>(0)? as u64, Bytes::from(r.get::<_, Vec<u8>>(1)?)))
    })?;
    rows.collect()
}

fn run_sqlite(p: &Params, workers: usize, app_mutex: bool) -> Outcome {
    let dir = temp_dir("cmp-sqlite-");
    let path = dir.path().join("hourglass.db");
    sqlite_open(&path).execute_batch(SCHEMA).expect("schema");
    let next = AtomicUsize::new(0);
    let writer = Mutex::new(());
    let busy_retries = AtomicUsize::new(0);
    let cpu = CpuSample::now();
    let start = Instant::now();
    let deadline = start + p.secs;
    let results: Vec<(Vec<usize>, Histogram)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (next, writer, path, busy_retries) = (&next, &writer, &path, &busy_retries);
                s.spawn(move || {
                    let mut conn = sqlite_open(path);
                    let mut done = Vec::new();
                    let mut latency = Histogram::with_capacity(1024);
                    while Instant::now() < deadline {
                        let wf = next.fetch_add(1, Ordering::Relaxed);
                        if wf >= p.workflows {
                            break;
                        }
                        let (mut run_id, mut prev_task) = (0i64, None);
                        for step in 0..p.batches {
                            let t0 = Instant::now();
                            let guard = app_mutex.then(|| writer.lock().unwrap());
                            // A writer starved past busy_timeout gets SQLITE_BUSY: the
                            // transaction rolled back; retry it (latency includes it).
                            prev_task = loop {
                                match sqlite_step(p, &mut conn, wf, &mut run_id, step, prev_task) {
                                    Ok(task) => break task,
                                    Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy => {
                                        busy_retries.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Err(e) => panic!("sqlite step of wf-{wf}: {e}"),
                                }
                            };
                            drop(guard);
                            latency.record(t0.elapsed());
                        }
                        done.push(wf);
                    }
                    (done, latency)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    let write_elapsed = start.elapsed();
    let foreign_cpus = cpu.and_then(|c| c.foreign_cpus()).unwrap_or(0.0);
    let mut latency = Histogram::new();
    let mut done: Vec<usize> = Vec::new();
    for (d, h) in results {
        done.extend(d);
        latency.merge(h);
    }
    let busy_retries = busy_retries.into_inner();
    if busy_retries > 0 {
        eprintln!("sqlite/{workers}: {busy_retries} transactions retried after SQLITE_BUSY (busy_timeout 10 s)");
    }
    let check = sqlite_open(&path);
    let backlog: i64 = check.query_row("SELECT count(*) FROM tasks", [], |r| r.get(0)).unwrap();
    assert_eq!(backlog, 0, "tasks left in the backlog");
    drop(check);

    // One reader connection per thread (opened outside the timed part).
    let conns: Vec<Mutex<Connection>> = (0..workers.min(done.len()).max(1)).map(|_| Mutex::new(sqlite_open(&path))).collect();
    let slot = AtomicUsize::new(0);
    thread_local! { static MINE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) }; }
    let (read_bytes, read_elapsed) = parallel_reads(&done, workers, |wf| {
        let i = MINE.with(|m| {
            if m.get() == usize::MAX {
                m.set(slot.fetch_add(1, Ordering::Relaxed));
            }
            m.get()
        });
        let conn = conns[i % conns.len()].lock().unwrap();
        let history = sqlite_history(&conn, wf).expect("read history");
        check_history(p, wf, &history)
    });
    let transitions = done.len() as u64 * p.batches;
    Outcome {
        system: if app_mutex { "sqlite+mutex" } else { "sqlite" },
        workers,
        workflows: done.len(),
        transitions,
        events: transitions * p.events_per_batch,
        write_elapsed,
        latency,
        read_bytes,
        read_elapsed,
        transitions_per_sync: None,
        foreign_cpus,
    }
}

// ---------------------------------------------------------------------------------

fn main() {
    let p = Params::from_env();
    let filter = std::env::var("HG_BENCH_FILTER").ok();
    println!("# Hourglass storage vs SQLite (same durability: fsync before a step is acknowledged)\n");
    println!(
        "workload: {} batches x {} events x {} B per workflow, up to {} workflows or {:.0} s per case; load average {}{}\n",
        p.batches,
        p.events_per_batch,
        p.event_bytes,
        p.workflows,
        p.secs.as_secs_f64(),
        load_average().unwrap_or_default(),
        if p.quick { " (QUICK smoke mode: numbers mean nothing)" } else { "" }
    );
    if !p.quick {
        let dir = temp_dir("cmp-raw-");
        match raw::small_write_fsync(dir.path(), Prep::Overwrite, 100, Duration::from_secs(1), u64::MAX) {
            Ok(mut w) => println!(
                "raw disk: 100 B pwrite + fdatasync: {:.0} ops/s, p50 {}\n",
                w.ops_per_s(),
                fmt_dur(w.latency.percentile(50.0))
            ),
            Err(e) => println!("raw disk: failed: {e}\n"),
        }
    }

    let mut outcomes: Vec<Outcome> = Vec::new();
    for &workers in &p.concurrency {
        for system in ["hourglass", "sqlite", "sqlite+mutex"] {
            let name = format!("{system}/{workers}");
            if filter.as_deref().is_some_and(|f| !name.contains(f)) {
                continue;
            }
            if !p.quick {
                wait_quiet(Duration::from_secs(5), 0.15);
            }
            let o = match system {
                "hourglass" => run_hourglass(&p, workers),
                "sqlite" => run_sqlite(&p, workers, false),
                _ => run_sqlite(&p, workers, true),
            };
            eprintln!(
                "{name}: {} workflows, {:.0} transitions/s, other CPU {:.2}",
                o.workflows,
                o.transitions_per_s(),
                o.foreign_cpus
            );
            outcomes.push(o);
        }
    }

    let mut table = Table::new(&[
        "system",
        "workers",
        "workflows",
        "transitions/s",
        "events/s",
        "p50",
        "p99",
        "history read MB/s",
        "transitions/fsync",
        "other CPU",
    ]);
    for o in &mut outcomes {
        let (p50, p99) = (o.latency.percentile(50.0), o.latency.percentile(99.0));
        table.row(vec![
            o.system.to_string(),
            o.workers.to_string(),
            o.workflows.to_string(),
            format!("{:.0}", o.transitions_per_s()),
            format!("{:.0}", o.events_per_s()),
            fmt_dur(p50),
            fmt_dur(p99),
            format!("{:.1}", o.read_mb_s()),
            o.transitions_per_sync.map(|r| format!("{r:.1}")).unwrap_or_else(|| "1 (per commit)".into()),
            format!("{:.2}", o.foreign_cpus),
        ]);
    }
    println!("{}", table.render());

    let mut ratios = Table::new(&[
        "workers",
        "best sqlite",
        "transitions/s hourglass/sqlite",
        "p50 sqlite/hourglass",
        "p99 sqlite/hourglass",
        "history read MB/s hourglass/sqlite",
    ]);
    for &workers in &p.concurrency {
        let Some(hg) = outcomes.iter().position(|o| o.workers == workers && o.system == "hourglass") else { continue };
        let Some(sq) = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| o.workers == workers && o.system.starts_with("sqlite"))
            .max_by(|a, b| a.1.transitions_per_s().total_cmp(&b.1.transitions_per_s()))
            .map(|(i, _)| i)
        else {
            continue;
        };
        let (hg_tps, hg_p50, hg_p99, hg_read) = {
            let o = &mut outcomes[hg];
            (o.transitions_per_s(), o.latency.percentile(50.0), o.latency.percentile(99.0), o.read_mb_s())
        };
        let o = &mut outcomes[sq];
        let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.1}x", a / b) } else { "-".into() };
        ratios.row(vec![
            workers.to_string(),
            o.system.to_string(),
            ratio(hg_tps, o.transitions_per_s()),
            ratio(o.latency.percentile(50.0).as_secs_f64(), hg_p50.as_secs_f64()),
            ratio(o.latency.percentile(99.0).as_secs_f64(), hg_p99.as_secs_f64()),
            ratio(hg_read, o.read_mb_s()),
        ]);
    }
    println!("{}", ratios.render());
}
