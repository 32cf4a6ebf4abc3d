//! Hourglass storage vs SQLite and RocksDB at the same durability, on the same
//! workflow workload.
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
//!   many writer threads in one process: no busy-handler sleeps).
//! - **rocksdb** (cargo feature `rocksdb`, off by default: RocksDB's C++ takes ~20 min
//!   to compile here and needs clang/libclang): rust-rocksdb, WAL on, every write
//!   with `WriteOptions::set_sync(true)` (WAL `fdatasync`ed before the write
//!   returns; concurrent writers are group-committed by RocksDB's write leader), no
//!   compression. Keys: `run/<ns>\0<wf>\0<run>\0` → `be(next_event_id) ++ state`,
//!   `ev/<ns>\0<wf>\0<run>\0<be event_id>` → payload,
//!   `task/<ns>\0<queue>\0<be task_id>` → `run ++ payload` (task ids from an
//!   in-process counter). Each step reads before it writes (run absent at step 0,
//!   else its `next_event_id` must match; the acked task must exist) and writes one
//!   batch. Two variants: `rocksdb` (plain `DB`; the read-check-write is made atomic
//!   by a per-run lock — a striped mutex on the run key held until the synced
//!   `WriteBatch` returns) and `rocksdb+txn` (pessimistic `TransactionDB`:
//!   `get_for_update` locks the run and the acked task, the transaction's writes
//!   commit as one synced batch). History: raw iterator over the run's `ev/` prefix
//!   (`ReadOptions::set_iterate_range(PrefixRange(..))`).
//!
//! Ratios compare Hourglass with the best SQLite variant, the best RocksDB variant and
//! the best of all (by transitions/s) at each concurrency.
//!
//! Workers pull workflow numbers from a shared counter until `HG_CMP_WORKFLOWS`
//! (default 2000) are done or `HG_BENCH_SECS` (default 6 s) have passed (a worker
//! finishes the workflow it is in). Throughput is over that write phase's wall time;
//! latency is per transition (propose call / transaction / write). The read phase
//! then reads the history of every finished workflow with the same number of worker
//! threads (checked: event count and payloads) and reports payload MB/s.
//!
//! Concurrencies: `HG_CMP_CONCURRENCY` (comma list, default `1,16,64`). Before each
//! case the bench waits (up to 5 s) for a quiet second (other processes < 0.15 CPU)
//! and reports what other processes used during the case. `HG_BENCH_DIR` sets where
//! files go (default `target/bench-data`, the real disk). Run by
//! `cargo test --benches` (or with `HG_BENCH_QUICK=1`) it does a tiny smoke pass and
//! claims nothing. Custom harness: prints markdown tables for
//! `docs/bench-storage-compare.md`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hourglass_bench::raw::{self, Prep};
use hourglass_bench::{env_secs, fmt_dur, load_average, mb_per_s, quick_mode, temp_dir, wait_quiet, CpuSample, Histogram, Table};
use hourglass_raft::{Node, NodeConfig};
use hourglass_storage::state::{Applied, Op, QueueKey, QueueKind, RunKey, Transition};
use parking_lot::Mutex;
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
    /// Transitions per `fdatasync` of the node log / RocksDB WAL (group commit); None
    /// for SQLite (one sync per commit).
    transitions_per_sync: Option<f64>,
    foreign_cpus: f64,
    /// CPU time (user + system, all threads) this process used in the write phase.
    own_cpu: Option<Duration>,
    /// Extra diagnostics printed under the tables.
    note: Option<String>,
}

impl Outcome {
    fn transitions_per_s(&self) -> f64 {
        self.transitions as f64 / self.write_elapsed.as_secs_f64().max(1e-9)
    }
    fn events_per_s(&self) -> f64 {
        self.events as f64 / self.write_elapsed.as_secs_f64().max(1e-9)
    }
    /// CPU time per transition and CPUs' worth used (of the machine's 2) in the write phase.
    fn cpu_per_transition(&self) -> Option<(Duration, f64)> {
        let cpu = self.own_cpu?;
        let per = cpu.checked_div(u32::try_from(self.transitions).ok()?.max(1))?;
        Some((per, cpu.as_secs_f64() / self.write_elapsed.as_secs_f64().max(1e-9)))
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
        // Step 0 created the run at state version 1; step s writes version s.
        ops.push(Op::SetState { run: run.clone(), expected_version: step, state: state(step) });
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
    let cpu_before = process_cpu();
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
    let own_cpu = cpu_since(cpu_before);
    let log_after = node.log().stats();
    let foreign_cpus = cpu.and_then(|c| c.foreign_cpus()).unwrap_or(0.0);
    let mut latency = Histogram::new();
    let mut done: Vec<usize> = Vec::new();
    for (d, h) in results {
        done.extend(d);
        latency.merge(h);
    }
    // Every task was acked: the backlogs are empty.
    let backlog: usize = (0..SHARDS).map(|s| node.read(s, |st| st.backlog(&queue()).count()).expect("read backlog")).sum();
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
        own_cpu,
        note: Some(format!(
            "hourglass/{workers}: {syncs} node-log fdatasyncs in {} ({:.0}/s)",
            fmt_dur(write_elapsed),
            syncs as f64 / write_elapsed.as_secs_f64().max(1e-9)
        )),
    }
}

/// User + system CPU time of this process (all threads) so far.
fn process_cpu() -> Option<Duration> {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Some(tv(usage.ru_utime) + tv(usage.ru_stime))
}

fn cpu_since(before: Option<Duration>) -> Option<Duration> {
    Some(process_cpu()?.saturating_sub(before?))
}

/// What the timed write phase of a side run by worker threads produced.
struct WritePhase {
    /// Workflows whose every step finished.
    done: Vec<usize>,
    /// Per-step latency.
    latency: Histogram,
    elapsed: Duration,
    own_cpu: Option<Duration>,
    foreign_cpus: f64,
}

impl WritePhase {
    /// `workers` threads take workflow numbers until `p.workflows` are taken or `p.secs`
    /// have passed; a thread finishes the workflow it is in. Each thread makes its state
    /// with `init`, then runs step after step with `step(state, wf, step, prev_task)`,
    /// which returns the id of the task the step enqueued; each call is one timed step.
    fn run<S, T: Copy>(
        p: &Params,
        workers: usize,
        init: impl Fn() -> S + Sync,
        step: impl Fn(&mut S, usize, u64, Option<T>) -> Option<T> + Sync,
    ) -> Self {
        let next = AtomicUsize::new(0);
        let cpu = CpuSample::now();
        let cpu_before = process_cpu();
        let start = Instant::now();
        let deadline = start + p.secs;
        let results: Vec<(Vec<usize>, Histogram)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let (next, init, step) = (&next, &init, &step);
                    s.spawn(move || {
                        let mut state = init();
                        let mut done = Vec::new();
                        let mut latency = Histogram::with_capacity(1024);
                        while Instant::now() < deadline {
                            let wf = next.fetch_add(1, Ordering::Relaxed);
                            if wf >= p.workflows {
                                break;
                            }
                            let mut prev_task = None;
                            for n in 0..p.batches {
                                let t0 = Instant::now();
                                prev_task = step(&mut state, wf, n, prev_task);
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
        let elapsed = start.elapsed();
        let own_cpu = cpu_since(cpu_before);
        let foreign_cpus = cpu.and_then(|c| c.foreign_cpus()).unwrap_or(0.0);
        let mut latency = Histogram::new();
        let mut done = Vec::new();
        for (d, h) in results {
            done.extend(d);
            latency.merge(h);
        }
        Self { done, latency, elapsed, own_cpu, foreign_cpus }
    }

    /// The side's outcome, given its read phase and sync statistics.
    fn outcome(
        self,
        p: &Params,
        system: &'static str,
        workers: usize,
        read: (u64, Duration),
        syncs: Option<u64>,
        note: Option<String>,
    ) -> Outcome {
        let transitions = self.done.len() as u64 * p.batches;
        Outcome {
            system,
            workers,
            workflows: self.done.len(),
            transitions,
            events: transitions * p.events_per_batch,
            write_elapsed: self.elapsed,
            latency: self.latency,
            read_bytes: read.0,
            read_elapsed: read.1,
            transitions_per_sync: syncs.filter(|s| *s > 0).map(|s| transitions as f64 / s as f64),
            foreign_cpus: self.foreign_cpus,
            own_cpu: self.own_cpu,
            note,
        }
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
        tx.prepare_cached("INSERT INTO runs(ns, wf_id, run_id, state, next_event_id) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![
            NS,
            wf_id(wf),
            format!("run-{wf}"),
            &state(step)[..],
            next_event_id as i64
        ])?;
        *run_id = tx.last_insert_rowid();
    } else {
        let current: Option<i64> =
            tx.prepare_cached("SELECT next_event_id FROM runs WHERE id = ?1")?.query_row([*run_id], |r| r.get(0)).optional()?;
        assert_eq!(current, Some(first as i64), "next event id of wf-{wf}");
        tx.prepare_cached("UPDATE runs SET state = ?2, next_event_id = ?3 WHERE id = ?1")?.execute(params![
            *run_id,
            &state(step)[..],
            next_event_id as i64
        ])?;
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
        tx.prepare_cached("INSERT INTO tasks(queue, run, payload) VALUES (?1, ?2, ?3)")?.execute(params![QUEUE, *run_id, TASK])?;
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
    let writer = Mutex::new(());
    let busy_retries = AtomicUsize::new(0);
    // Worker state: its connection and the current workflow's run row id.
    let phase = WritePhase::run(
        p,
        workers,
        || (sqlite_open(&path), 0i64),
        |(conn, run_id), wf, step, prev_task| {
            let _guard = app_mutex.then(|| writer.lock());
            // A writer starved past busy_timeout gets SQLITE_BUSY: the transaction rolled
            // back; retry it (latency includes it).
            loop {
                match sqlite_step(p, conn, wf, run_id, step, prev_task) {
                    Ok(task) => return task,
                    Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy => {
                        busy_retries.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("sqlite step of wf-{wf}: {e}"),
                }
            }
        },
    );
    let done = phase.done.clone();
    let busy_retries = busy_retries.into_inner();
    if busy_retries > 0 {
        eprintln!("sqlite/{workers}: {busy_retries} transactions retried after SQLITE_BUSY (busy_timeout 10 s)");
    }
    let check = sqlite_open(&path);
    let backlog: i64 = check.query_row("SELECT count(*) FROM tasks", [], |r| r.get(0)).expect("count tasks");
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
        let conn = conns[i % conns.len()].lock();
        let history = sqlite_history(&conn, wf).expect("read history");
        check_history(p, wf, &history)
    });
    let system = if app_mutex { "sqlite+mutex" } else { "sqlite" };
    phase.outcome(p, system, workers, (read_bytes, read_elapsed), None, None)
}

// ---------------------------------------------------------------------------------
// RocksDB (feature `rocksdb`)

#[cfg(feature = "rocksdb")]
mod rocks {
    use std::sync::atomic::AtomicU64;

    use rocksdb::statistics::{Histogram as RocksHistogram, Ticker};
    use rocksdb::{
        DBAccess, DBCompressionType, DBRawIteratorWithThreadMode, ErrorKind, Options, PrefixRange, ReadOptions, TransactionDB,
        TransactionDBOptions, TransactionOptions, WriteBatch, WriteOptions, DB,
    };

    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Variant {
        /// Plain `DB`, read-check-write under a per-run (striped) lock.
        RunLock,
        /// Pessimistic `TransactionDB`, `get_for_update` on the run and the acked task.
        Txn,
    }

    enum Store {
        Plain(DB),
        Txn(TransactionDB),
    }

    /// Lock stripes for the per-run lock: collisions between the <= 64 runs in flight
    /// are rare (a collision would make two runs share one sync cycle, not break
    /// anything).
    const LOCK_STRIPES: usize = 1 << 16;

    /// `<ns>\0<wf>\0<run>\0`: the run's identity, a prefix-free key component.
    fn run_ident(out: &mut Vec<u8>, wf: usize) {
        for part in [NS.as_bytes(), wf_id(wf).as_bytes(), format!("run-{wf}").as_bytes()] {
            out.extend_from_slice(part);
            out.push(0);
        }
    }

    fn run_key(wf: usize) -> Vec<u8> {
        let mut k = b"run/".to_vec();
        run_ident(&mut k, wf);
        k
    }

    fn events_prefix(wf: usize) -> Vec<u8> {
        let mut k = b"ev/".to_vec();
        run_ident(&mut k, wf);
        k
    }

    fn event_key(prefix: &[u8], id: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(prefix.len() + 8);
        k.extend_from_slice(prefix);
        k.extend_from_slice(&id.to_be_bytes());
        k
    }

    fn tasks_prefix() -> Vec<u8> {
        let mut k = b"task/".to_vec();
        for part in [NS, QUEUE] {
            k.extend_from_slice(part.as_bytes());
            k.push(0);
        }
        k
    }

    fn task_key(task_id: u64) -> Vec<u8> {
        let mut k = tasks_prefix();
        k.extend_from_slice(&task_id.to_be_bytes());
        k
    }

    fn task_value(wf: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(48);
        run_ident(&mut v, wf);
        v.extend_from_slice(TASK);
        v
    }

    fn run_value(next_event_id: u64, step: u64) -> Vec<u8> {
        let mut v = next_event_id.to_be_bytes().to_vec();
        v.extend_from_slice(&state(step));
        v
    }

    /// The checks of the SQLite side: the run must not exist at step 0 (UNIQUE there),
    /// else its `next_event_id` must be the first new event id.
    fn check_run(current: Option<&[u8]>, wf: usize, step: u64, first: u64) {
        if step == 0 {
            assert!(current.is_none(), "wf-{wf} created twice");
        } else {
            let value = current.unwrap_or_else(|| panic!("run of wf-{wf} missing"));
            let next = value.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
            assert_eq!(next, Some(first), "next event id of wf-{wf}");
        }
    }

    fn lock_stripe(run_key: &[u8]) -> usize {
        run_key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)) as usize % LOCK_STRIPES
    }

    /// One step as one synced `WriteBatch`; the per-run lock makes read-check-write
    /// atomic. Returns the enqueued task id.
    #[allow(clippy::too_many_arguments)]
    fn plain_step(
        p: &Params,
        db: &DB,
        locks: &[Mutex<()>],
        wo: &WriteOptions,
        next_task: &AtomicU64,
        wf: usize,
        step: u64,
        prev_task: Option<u64>,
    ) -> Result<Option<u64>, rocksdb::Error> {
        let run = run_key(wf);
        let _run_lock = locks[lock_stripe(&run)].lock();
        let first = step * p.events_per_batch + 1;
        let next_event_id = first + p.events_per_batch;
        check_run(db.get_pinned(&run)?.as_deref(), wf, step, first);
        let mut batch = WriteBatch::default();
        let prefix = events_prefix(wf);
        for id in first..next_event_id {
            batch.put(event_key(&prefix, id), event(p, wf, id));
        }
        batch.put(&run, run_value(next_event_id, step));
        if let Some(task_id) = prev_task {
            let key = task_key(task_id);
            assert!(db.get_pinned(&key)?.is_some(), "acked task {task_id} of wf-{wf} not found");
            batch.delete(key);
        }
        let task = (step + 1 < p.batches).then(|| {
            let id = next_task.fetch_add(1, Ordering::Relaxed) + 1;
            batch.put(task_key(id), task_value(wf));
            id
        });
        db.write_opt(batch, wo)?;
        Ok(task)
    }

    /// One step as one pessimistic transaction (committed as one synced batch).
    #[allow(clippy::too_many_arguments)]
    fn txn_step(
        p: &Params,
        db: &TransactionDB,
        wo: &WriteOptions,
        to: &TransactionOptions,
        next_task: &AtomicU64,
        wf: usize,
        step: u64,
        prev_task: Option<u64>,
    ) -> Result<Option<u64>, rocksdb::Error> {
        let run = run_key(wf);
        let first = step * p.events_per_batch + 1;
        let next_event_id = first + p.events_per_batch;
        let txn = db.transaction_opt(wo, to);
        check_run(txn.get_pinned_for_update(&run, true)?.as_deref(), wf, step, first);
        let prefix = events_prefix(wf);
        for id in first..next_event_id {
            txn.put(event_key(&prefix, id), event(p, wf, id))?;
        }
        txn.put(&run, run_value(next_event_id, step))?;
        if let Some(task_id) = prev_task {
            let key = task_key(task_id);
            assert!(txn.get_pinned_for_update(&key, true)?.is_some(), "acked task {task_id} of wf-{wf} not found");
            txn.delete(key)?;
        }
        let task = if step + 1 < p.batches {
            let id = next_task.fetch_add(1, Ordering::Relaxed) + 1;
            txn.put(task_key(id), task_value(wf))?;
            Some(id)
        } else {
            None
        };
        txn.commit()?;
        Ok(task)
    }

    /// Every (key suffix, value) under `prefix`: (event id, payload) for a history.
    fn scan<D: DBAccess>(mut it: DBRawIteratorWithThreadMode<'_, D>, prefix: &[u8]) -> Result<Vec<(u64, Bytes)>, rocksdb::Error> {
        it.seek(prefix);
        let mut out = Vec::new();
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            let id = key
                .get(prefix.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .unwrap_or_else(|| panic!("malformed key {key:?} under {prefix:?}"));
            out.push((id, Bytes::copy_from_slice(value)));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    fn scan_prefix(store: &Store, prefix: &[u8]) -> Result<Vec<(u64, Bytes)>, rocksdb::Error> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(PrefixRange(prefix.to_vec()));
        match store {
            Store::Plain(db) => scan(db.raw_iterator_opt(ro), prefix),
            Store::Txn(db) => scan(db.raw_iterator_opt(ro), prefix),
        }
    }

    pub fn run(p: &Params, workers: usize, variant: Variant) -> Outcome {
        let dir = temp_dir("cmp-rocksdb-");
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(DBCompressionType::None);
        opts.enable_statistics();
        // WAL on (the default), fdatasync (use_fsync false, the default).
        let store = match variant {
            Variant::RunLock => Store::Plain(DB::open(&opts, dir.path()).expect("open rocksdb")),
            Variant::Txn => Store::Txn(TransactionDB::open(&opts, &TransactionDBOptions::default(), dir.path()).expect("open rocksdb")),
        };
        let locks: Vec<Mutex<()>> = (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect();
        let next_task = AtomicU64::new(0);
        let retries = AtomicUsize::new(0);
        let syncs_before = opts.get_ticker_count(Ticker::WalFileSynced);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        wo.disable_wal(false);
        let to = TransactionOptions::default();
        let phase = WritePhase::run(
            p,
            workers,
            || (),
            |(), wf, step, prev_task| loop {
                let r = match &store {
                    Store::Plain(db) => plain_step(p, db, &locks, &wo, &next_task, wf, step, prev_task),
                    Store::Txn(db) => txn_step(p, db, &wo, &to, &next_task, wf, step, prev_task),
                };
                match r {
                    Ok(task) => return task,
                    // Lock wait timeout / conflict: nothing was written; retry.
                    Err(e) if matches!(e.kind(), ErrorKind::Busy | ErrorKind::TimedOut | ErrorKind::TryAgain) => {
                        retries.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("rocksdb step of wf-{wf}: {e}"),
                }
            },
        );
        let syncs = opts.get_ticker_count(Ticker::WalFileSynced) - syncs_before;
        let wal_sync = opts.get_histogram_data(RocksHistogram::WalFileSyncMicros);
        let db_write = opts.get_histogram_data(RocksHistogram::DbWrite);
        let system = match variant {
            Variant::RunLock => "rocksdb",
            Variant::Txn => "rocksdb+txn",
        };
        let retries = retries.into_inner();
        if retries > 0 {
            eprintln!("{system}/{workers}: {retries} steps retried after Busy/TimedOut");
        }
        let backlog = scan_prefix(&store, &tasks_prefix()).expect("scan tasks").len();
        assert_eq!(backlog, 0, "tasks left in the backlog");

        let read = parallel_reads(&phase.done, workers, |wf| {
            let history = scan_prefix(&store, &events_prefix(wf)).expect("read history");
            check_history(p, wf, &history)
        });
        drop(store);
        let note = format!(
            "{system}/{workers}: {syncs} WAL fdatasyncs ({:.0}/s), WAL sync p50 {:.0} µs p99 {:.0} µs mean {:.0} µs; \
             DB write (incl. sync) p50 {:.0} µs mean {:.0} µs",
            syncs as f64 / phase.elapsed.as_secs_f64().max(1e-9),
            wal_sync.median(),
            wal_sync.p99(),
            wal_sync.average(),
            db_write.median(),
            db_write.average(),
        );
        phase.outcome(p, system, workers, read, Some(syncs), Some(note))
    }
}

// ---------------------------------------------------------------------------------

const SYSTEMS: [&str; 5] = ["hourglass", "sqlite", "sqlite+mutex", "rocksdb", "rocksdb+txn"];

#[cfg(feature = "rocksdb")]
fn run_rocksdb(p: &Params, workers: usize, system: &str) -> Option<Outcome> {
    let variant = if system == "rocksdb+txn" { rocks::Variant::Txn } else { rocks::Variant::RunLock };
    Some(rocks::run(p, workers, variant))
}

#[cfg(not(feature = "rocksdb"))]
fn run_rocksdb(_: &Params, _: usize, _: &str) -> Option<Outcome> {
    None
}

const ROCKSDB_SKIPPED: &str = "rocksdb: skipped (built without the `rocksdb` feature). Enable it with \
     `cargo bench -p hourglass-bench --features rocksdb --bench storage_compare` \
     (needs clang + libclang-dev; compiling RocksDB takes ~20 min on 2 cores).";

/// Index of the outcome with the most transitions/s among `workers`-worker outcomes
/// whose system starts with `prefix` ("" = any system but hourglass).
fn best(outcomes: &[Outcome], workers: usize, prefix: &str) -> Option<usize> {
    outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.workers == workers && o.system != "hourglass" && o.system.starts_with(prefix))
        .max_by(|a, b| a.1.transitions_per_s().total_cmp(&b.1.transitions_per_s()))
        .map(|(i, _)| i)
}

fn main() {
    let p = Params::from_env();
    let filter = std::env::var("HG_BENCH_FILTER").ok();
    println!("# Hourglass storage vs SQLite and RocksDB (same durability: fsync before a step is acknowledged)\n");
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
        // The floor for one durable step with nothing to group-commit it with: one
        // ~transition-sized write + fdatasync, into a file prepared the way each side
        // writes (node log: fallocated segments; RocksDB WAL: a growing file; overwrite:
        // the device's best case).
        let dir = temp_dir("cmp-raw-");
        for prep in [Prep::Overwrite, Prep::Fallocated, Prep::Append] {
            match raw::small_write_fsync(dir.path(), prep, 800, Duration::from_secs(1), u64::MAX) {
                Ok(mut w) => println!(
                    "raw disk, 800 B pwrite + fdatasync, {}: {:.0} ops/s, p50 {}, p99 {}",
                    prep.name(),
                    w.ops_per_s(),
                    fmt_dur(w.latency.percentile(50.0)),
                    fmt_dur(w.latency.percentile(99.0))
                ),
                Err(e) => println!("raw disk, {}: failed: {e}", prep.name()),
            }
        }
        println!();
    }

    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut rocksdb_skipped = false;
    for &workers in &p.concurrency {
        for system in SYSTEMS {
            let name = format!("{system}/{workers}");
            if filter.as_deref().is_some_and(|f| !name.contains(f)) {
                continue;
            }
            if system.starts_with("rocksdb") && !cfg!(feature = "rocksdb") {
                rocksdb_skipped = true;
                continue;
            }
            if !p.quick {
                wait_quiet(Duration::from_secs(5), 0.15);
            }
            let o = match system {
                "hourglass" => run_hourglass(&p, workers),
                "sqlite" => run_sqlite(&p, workers, false),
                "sqlite+mutex" => run_sqlite(&p, workers, true),
                _ => match run_rocksdb(&p, workers, system) {
                    Some(o) => o,
                    None => continue,
                },
            };
            eprintln!("{name}: {} workflows, {:.0} transitions/s, other CPU {:.2}", o.workflows, o.transitions_per_s(), o.foreign_cpus);
            outcomes.push(o);
        }
    }
    if rocksdb_skipped {
        println!("{ROCKSDB_SKIPPED}\n");
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
        "CPU/transition",
        "CPUs used",
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
            o.cpu_per_transition().map(|(d, _)| fmt_dur(d)).unwrap_or_else(|| "-".into()),
            o.cpu_per_transition().map(|(_, c)| format!("{c:.2}")).unwrap_or_else(|| "-".into()),
            format!("{:.2}", o.foreign_cpus),
        ]);
    }
    println!("{}", table.render());
    for note in outcomes.iter().filter_map(|o| o.note.as_deref()) {
        println!("- {note}");
    }
    println!();

    let mut ratios = Table::new(&[
        "workers",
        "best sqlite",
        "best rocksdb",
        "transitions/s hourglass/sqlite",
        "hourglass/rocksdb",
        "hourglass/best",
        "goal ≥5x",
        "p50 best/hourglass",
        "p99 best/hourglass",
        "history read MB/s hourglass/best",
    ]);
    let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.1}x", a / b) } else { "-".into() };
    for &workers in &p.concurrency {
        let Some(hg) = outcomes.iter().position(|o| o.workers == workers && o.system == "hourglass") else { continue };
        let Some(other) = best(&outcomes, workers, "") else { continue };
        let (sq, rk) = (best(&outcomes, workers, "sqlite"), best(&outcomes, workers, "rocksdb"));
        let hg_tps = outcomes[hg].transitions_per_s();
        let vs = |i: Option<usize>| match i {
            Some(i) => (outcomes[i].system.to_string(), ratio(hg_tps, outcomes[i].transitions_per_s())),
            None => ("-".into(), "-".into()),
        };
        let ((sq_name, sq_ratio), (rk_name, rk_ratio)) = (vs(sq), vs(rk));
        let rk_name = if rk.is_none() && rocksdb_skipped { "skipped".to_string() } else { rk_name };
        let (hg_p50, hg_p99, hg_read) = {
            let o = &mut outcomes[hg];
            (o.latency.percentile(50.0), o.latency.percentile(99.0), o.read_mb_s())
        };
        let o = &mut outcomes[other];
        let best_tps = o.transitions_per_s();
        ratios.row(vec![
            workers.to_string(),
            sq_name,
            rk_name,
            sq_ratio,
            rk_ratio,
            format!("{} ({})", ratio(hg_tps, best_tps), o.system),
            if hg_tps >= 5.0 * best_tps { "met" } else { "not met" }.to_string(),
            ratio(o.latency.percentile(50.0).as_secs_f64(), hg_p50.as_secs_f64()),
            ratio(o.latency.percentile(99.0).as_secs_f64(), hg_p99.as_secs_f64()),
            ratio(hg_read, o.read_mb_s()),
        ]);
    }
    println!("{}", ratios.render());
}
