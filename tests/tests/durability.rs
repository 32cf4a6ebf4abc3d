//! Durability across `kill -9`: a real Hourglass server *process* is killed with
//! SIGKILL while workflows are mid-flight (timers pending, activities running or
//! waiting for a retry), restarted on the same data directory and port, and every
//! workflow whose start was acknowledged must complete exactly once with the right
//! result.
//!
//! **The server process.** The crate's `durability_child` binary
//! (`src/bin/durability_child/`, which Cargo builds for this test and names in
//! `CARGO_BIN_EXE_durability_child`): `durability_child server <data-dir> <listen>`
//! runs [`hourglass_service::server::Server`] — what `hourglass serve` runs — until it
//! is killed; `durability_child worker <server> <task-queue>` runs an SDK worker. The
//! workflow and activities are defined once, in that binary's `shared.rs`, which this
//! test includes as a module. A child process dies with the test process too: it
//! exits when its stdin (a pipe from the test) reaches end of file.
//!
//! **The scenario** (two tests run it). One SDK worker and one client (the real Rust
//! SDK) run in the test process for the whole test and reconnect by themselves.
//! 1. Start the server; start the workflows (each: a durable timer and an activity
//!    that is quick, slow, or fails twice before succeeding; one kind runs the slow
//!    activity first, then the timer). Meanwhile a second client keeps starting
//!    small workflows until the restarted server has acknowledged one after the first
//!    kill, and the first kill waits (briefly) for one of those StartWorkflowExecution
//!    calls to be in flight.
//! 2. The kills: SIGKILL, optionally stay down a moment (timers and retries fall due
//!    meanwhile), restart the server process on the same data directory and port.
//!    - `..._across_kill_9`: at chosen points — timers pending while slow activities
//!      run; most timers fired, flaky activities between attempts, a slow activity
//!      running (down 700 ms); a third of the workflows completed.
//!    - `..._across_random_kill_9s`: five kills at arbitrary moments (seeded; the
//!      seed is printed and `HG_DURABILITY_SEED` replays the kill schedule).
//! 3. Wait (bounded) until every workflow is closed, then check each: the typed SDK
//!    result; the history (event ids dense from 1, one WorkflowExecutionStarted,
//!    exactly one close event — WorkflowExecutionCompleted, last — with the expected
//!    result payload, one TimerStarted and one TimerFired, one ActivityTaskScheduled,
//!    one ActivityTaskStarted and one ActivityTaskCompleted that belong to it, no
//!    activity failure/timeout event); and that the workflow id's current run is the
//!    acknowledged run (no second run was created). Starts that were not
//!    acknowledged (the call failed) may have happened or not; a workflow that
//!    exists must pass the same checks.
//!
//! A third test kills the server and a worker *process* together while activity
//! attempts run on that worker, restarts the server and runs a new worker: the lost
//! attempts must be timed out and retried by the recovered server, and the same
//! checks hold.
//!
//! Every wait is bounded; nothing asserts timings (a kill point not reached in time
//! is killed anyway and reported). Each kill is reported with what was in flight.
//!
//! What `kill -9` cannot show: a killed process loses nothing the kernel already
//! has, so unsynced writes survive it; losing those is the simulated-disk crash
//! tests' job (`node_crash.rs`, storage crash tests).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use temporalio_client::tonic::{Code, IntoRequest};
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowHandle, WorkflowStartOptions};
use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, PendingActivityState, WorkflowExecutionStatus};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::workflowservice::v1::DescribeWorkflowExecutionRequest;
use temporalio_sdk::Worker;
use tokio::sync::watch;

/// The workflow, the activities and the child processes' READY/FAILED lines, shared
/// with the `durability_child` binary.
#[path = "../src/bin/durability_child/shared.rs"]
mod shared;

use shared::{Durable, DurableRun, Kind, Stats};

mod support;

use support::{event_type, full_history, is_close};

mod process;

use process::{start_server, start_worker_process, ServerProcess};

/// An SDK worker (in this process) for [`Durable`] and [`shared::Acts`] on `task_queue`.
fn new_worker(client: &Client, task_queue: &str, stats: Arc<Stats>) -> Worker {
    shared::new_worker(client, task_queue, stats).unwrap_or_else(|e| panic!("{e}"))
}

/// Flaky activities (run by a worker in this process) that failed and have not
/// succeeded yet: a retry is pending (or running).
fn flaky_retries_pending(stats: &Stats) -> usize {
    stats.flaky.lock().unwrap().values().filter(|(failed, ok)| *failed > 0 && !ok).count()
}

// ------------------------------------------------------------------- workflow

/// The result a workflow must complete with.
fn expected_result(n: u32, kind: u32, timer_ms: u64) -> String {
    let activity = match Kind::of(kind) {
        Kind::Quick => format!("quick {n}"),
        Kind::Flaky => format!("flaky {n}"),
        Kind::Slow | Kind::SlowThenTimer => format!("slow {n}"),
    };
    format!("workflow {n} (kind {kind}): timer {timer_ms} ms, {activity}")
}

// ------------------------------------------------------------------ the client

/// Bounds of the scenario's waits.
const WAIT_KILL_POINT: Duration = Duration::from_secs(20);
const WAIT_ALL_CLOSED: Duration = Duration::from_secs(60);
const WAIT_RPC: Duration = Duration::from_secs(10);
/// How long the late starter keeps going after the first restart, at most, waiting for
/// the restarted server to acknowledge one of its starts.
const WAIT_LATE_ACK: Duration = Duration::from_secs(30);
/// Bounds of the whole scenario (start, kills, wait for all closed) and of the
/// checks after it, whatever the server does.
const SCENARIO_BOUND: Duration = Duration::from_secs(240);
const CHECKS_BOUND: Duration = Duration::from_secs(120);

async fn connect(addr: SocketAddr) -> Client {
    shared::connect(addr).await.unwrap_or_else(|e| panic!("{e}"))
}

/// One workflow the test started (or tried to).
#[derive(Debug, Clone)]
struct Started {
    workflow_id: String,
    n: u32,
    kind: u32,
    timer_ms: u64,
    /// `Some(run id)` when StartWorkflowExecution was acknowledged.
    acked_run: Option<String>,
    /// Why the start call failed (not acknowledged).
    start_error: Option<String>,
    /// When the start call was made and answered.
    began: Instant,
    ended: Instant,
}

impl Started {
    fn expected(&self) -> String {
        expected_result(self.n, self.kind, self.timer_ms)
    }
}

fn count(events: &[HistoryEvent], t: EventType) -> usize {
    events.iter().filter(|e| event_type(e) == t).count()
}

/// Where one workflow is, from its history.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    timer_pending: bool,
    timer_fired: bool,
    activity_pending: bool,
    closed: bool,
}

fn progress(events: &[HistoryEvent]) -> Progress {
    let fired = count(events, EventType::TimerFired);
    Progress {
        timer_pending: count(events, EventType::TimerStarted) > fired,
        timer_fired: fired > 0,
        activity_pending: count(events, EventType::ActivityTaskScheduled) > count(events, EventType::ActivityTaskCompleted),
        closed: events.iter().any(|e| is_close(event_type(e))),
    }
}

/// Progress of every existing workflow (by workflow id); workflows whose history
/// cannot be read right now are left out.
async fn survey(client: &Client, started: &[Started]) -> BTreeMap<String, Progress> {
    let mut out = BTreeMap::new();
    for s in started {
        let run = s.acked_run.clone().unwrap_or_default();
        match tokio::time::timeout(WAIT_RPC, full_history(client, "default", &s.workflow_id, &run)).await {
            Ok(Ok(events)) => {
                out.insert(s.workflow_id.clone(), progress(&events));
            }
            Ok(Err(_)) => {}
            // The server does not answer: don't wait on it once per workflow.
            Err(_) => break,
        }
    }
    out
}

/// What was in flight at a kill (reported; read through `Debug`).
#[derive(Debug, Default, Clone)]
#[allow(dead_code)]
struct InFlight {
    /// Workflows that exist (their history could be read).
    workflows: usize,
    timers_pending: usize,
    timers_fired: usize,
    activities_pending: usize,
    closed: usize,
    /// Slow activity attempts executing in the worker.
    slow_running: u32,
    /// Flaky activities between a failed attempt and the next (or in one).
    flaky_retries_pending: usize,
    /// Late StartWorkflowExecution calls that were in flight (filled in later).
    starts_in_flight: usize,
}

async fn in_flight(client: &Client, started: &[Started], stats: &Stats) -> InFlight {
    let survey = survey(client, started).await;
    let open = || survey.values().filter(|p| !p.closed);
    InFlight {
        workflows: survey.len(),
        timers_pending: open().filter(|p| p.timer_pending).count(),
        timers_fired: survey.values().filter(|p| p.timer_fired).count(),
        activities_pending: open().filter(|p| p.activity_pending).count(),
        closed: survey.values().filter(|p| p.closed).count(),
        slow_running: stats.slow_running.load(Ordering::SeqCst),
        flaky_retries_pending: flaky_retries_pending(stats),
        starts_in_flight: 0,
    }
}

/// Where the server is killed. Each is waited for (bounded); when it is not reached
/// in time the server is killed anyway and the report says so.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// Timers pending, a slow activity running, workflows being started.
    TimersPending,
    /// Most timers fired; flaky activities between attempts; a slow activity running.
    RetriesPending,
    /// Some workflows completed, others not.
    Completing,
}

impl KillPoint {
    fn reached(self, f: &InFlight) -> bool {
        match self {
            KillPoint::TimersPending => f.timers_pending >= f.workflows / 3 && f.timers_pending > 0 && f.slow_running > 0,
            KillPoint::RetriesPending => f.timers_fired >= f.workflows / 2 && f.flaky_retries_pending >= 2 && f.slow_running > 0,
            KillPoint::Completing => f.closed >= f.workflows / 3 && f.closed < f.workflows,
        }
    }
}

/// One kill of the server process.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// When the workflows reach this point; the server then stays down `downtime`.
    At { point: KillPoint, downtime: Duration },
    /// At an arbitrary moment: this long after the server is back.
    After { delay: Duration, downtime: Duration },
}

/// A seeded xorshift generator (the seed is printed, `HG_DURABILITY_SEED` replays it).
struct Rng(u64);

impl Rng {
    fn seeded() -> (Rng, u64) {
        let seed = std::env::var("HG_DURABILITY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        (Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1), seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Starts workflow `n` and records whether the start was acknowledged.
async fn start_one(
    client: &Client,
    task_queue: &str,
    prefix: &str,
    n: u32,
    kind: Kind,
    timer_ms: u64,
) -> (Started, Option<WorkflowHandle<Client, DurableRun>>) {
    let workflow_id = format!("{prefix}-{n}");
    let kind = kind as u32;
    let options = WorkflowStartOptions::new(task_queue, workflow_id.clone()).build();
    let began = Instant::now();
    let mut started = Started { workflow_id, n, kind, timer_ms, acked_run: None, start_error: None, began, ended: began };
    let outcome = tokio::time::timeout(WAIT_RPC, client.start_workflow(Durable::run, (n, kind, timer_ms), options)).await;
    started.ended = Instant::now();
    match outcome {
        Ok(Ok(handle)) => {
            started.acked_run = Some(handle.run_id().expect("a started workflow has a run id").to_string());
            (started, Some(handle))
        }
        Ok(Err(e)) => {
            started.start_error = Some(e.to_string());
            (started, None)
        }
        Err(_) => {
            started.start_error = Some(format!("no answer within {WAIT_RPC:?}"));
            (started, None)
        }
    }
}

// ---------------------------------------------------------------------- tests

/// Kills at chosen points: timers pending (with a start in flight), activity retries
/// pending (the server stays down while timers and retries fall due), workflows
/// completing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_workflows_complete_exactly_once_across_kill_9() {
    let plan = [
        Kill::At { point: KillPoint::TimersPending, downtime: Duration::ZERO },
        Kill::At { point: KillPoint::RetriesPending, downtime: Duration::from_millis(700) },
        Kill::At { point: KillPoint::Completing, downtime: Duration::ZERO },
    ];
    scenario("points", &plan, 32, 2_000).await;
}

/// Kills at arbitrary moments (seeded; `HG_DURABILITY_SEED` replays a run's choices):
/// the server is busy all the time, so transitions are caught mid-flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_workflows_complete_exactly_once_across_random_kill_9s() {
    let (mut rng, seed) = Rng::seeded();
    eprintln!("durability: random kills with HG_DURABILITY_SEED={seed}");
    let plan: Vec<Kill> = (0..5)
        .map(|_| Kill::After { delay: Duration::from_millis(100 + rng.below(900)), downtime: Duration::from_millis(rng.below(400)) })
        .collect();
    scenario(&format!("random (seed {seed})"), &plan, 24, 500).await;
}

/// The server and its worker die together (`kill -9` both) while activities run on
/// the worker: those attempts' outcomes are lost, so the restarted server must time
/// them out (start-to-close, from its recovered state) and retry them, and workflow
/// tasks bound to the dead worker's sticky queue must reach a new worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_complete_when_the_server_and_its_worker_are_killed_together() {
    let name = "server+worker";
    let root = tempfile::Builder::new().prefix("hourglass-durability-").tempdir().expect("temp dir");
    let data_dir = root.path().join("data");
    let log = root.path().join("server.log");
    let worker_log = root.path().join("worker.log");
    let server = start_server(&data_dir, "127.0.0.1:0", &log).await;
    let addr = server.addr;
    eprintln!("durability {name}: server process on {addr}, data in {}", data_dir.display());
    let client = connect(addr).await;
    let task_queue = format!("durability-{}", uuid::Uuid::new_v4());
    let first_worker = start_worker_process(addr, &task_queue, &worker_log).await;

    let mut started = Vec::new();
    let mut handles = Vec::new();
    for n in 0..16 {
        let timer_ms = 500 + u64::from(n / 4 % 4) * 250;
        let (s, handle) = start_one(&client, &task_queue, "wf", n, Kind::of(n), timer_ms).await;
        assert!(s.acked_run.is_some(), "the server is up, the start must succeed: {:?}", s.start_error);
        started.push(s);
        handles.extend(handle.map(|h| (started.len() - 1, h)));
    }
    // Kill both once several activity attempts run on the worker (the slow ones take
    // SLOW_MS, so they are still running).
    let deadline = Instant::now() + WAIT_KILL_POINT;
    let (mut running, mut retrying) = (0, 0);
    while Instant::now() < deadline {
        (running, retrying) = pending_activities(&client, &started).await;
        if running >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first_worker.kill();
    server.kill();
    eprintln!(
        "durability {name}: kill -9 of the server and the worker with {running} activity attempts running on the worker \
         and {retrying} waiting for a retry"
    );
    let server = start_server(&data_dir, &addr.to_string(), &log).await;

    // A new worker (in this process) on the same task queue.
    let mut worker = new_worker(&client, &task_queue, Arc::new(Stats::default()));
    let shutdown_worker = worker.shutdown_handle();
    let run = async {
        let ran = worker.run().await;
        ran.expect("the worker runs until shut down without error");
    };
    tokio::pin!(run);
    let open = tokio::select! {
        open = wait_all_closed(&client, &started) => open,
        () = &mut run => panic!("the worker stopped on its own"),
    };
    shutdown_worker();
    let _ = tokio::time::timeout(Duration::from_secs(20), run).await;
    check_all(&client, name, &started, &handles, &open, root, &log, Some(server)).await;
}

/// Activities of open workflows: attempts running on a worker, and ones scheduled
/// (waiting for a worker or a retry), from DescribeWorkflowExecution.
async fn pending_activities(client: &Client, started: &[Started]) -> (usize, usize) {
    let mut service = client.connection().workflow_service();
    let (mut running, mut scheduled) = (0, 0);
    for s in started {
        let request = DescribeWorkflowExecutionRequest {
            namespace: "default".into(),
            execution: Some(WorkflowExecution { workflow_id: s.workflow_id.clone(), run_id: String::new() }),
        };
        let Ok(Ok(d)) = tokio::time::timeout(WAIT_RPC, service.describe_workflow_execution(request.into_request())).await else {
            continue;
        };
        for a in d.into_inner().pending_activities {
            if a.state == PendingActivityState::Started as i32 {
                running += 1;
            } else {
                scheduled += 1;
            }
        }
    }
    (running, scheduled)
}

/// Runs `workflows` workflows (timers of `timer_base_ms` + 0-1.5 s) and a late
/// starter against a server process, kills it as `plan` says (restarting it on the
/// same data directory and port each time), then checks every workflow.
async fn scenario(name: &str, plan: &[Kill], workflows: u32, timer_base_ms: u64) {
    let root = tempfile::Builder::new().prefix("hourglass-durability-").tempdir().expect("temp dir");
    let data_dir = root.path().join("data");
    let log = root.path().join("server.log");
    let mut server = Some(start_server(&data_dir, "127.0.0.1:0", &log).await);
    let addr = server.as_ref().expect("running").addr;
    let listen = addr.to_string();
    eprintln!("durability {name}: server process on {addr}, data in {}", data_dir.display());

    let client = connect(addr).await;
    let task_queue = format!("durability-{}", uuid::Uuid::new_v4());
    let stats = Arc::new(Stats::default());
    let mut worker = new_worker(&client, &task_queue, stats.clone());
    let shutdown_worker = worker.shutdown_handle();

    let scenario = async {
        // 1. The workflows, and a second client that keeps starting more until the
        //    server is back from the first kill.
        let mut started = Vec::new();
        let mut handles = Vec::new();
        for n in 0..workflows {
            let timer_ms = timer_base_ms + u64::from(n / 4 % 4) * 500;
            let (s, handle) = start_one(&client, &task_queue, "wf", n, Kind::of(n), timer_ms).await;
            assert!(s.acked_run.is_some(), "the server is up, the start must succeed: {:?}", s.start_error);
            started.push(s);
            handles.extend(handle.map(|h| (started.len() - 1, h)));
        }
        let stop_late = Arc::new(AtomicBool::new(false));
        // Whether a late StartWorkflowExecution call is in flight, and how many were
        // acknowledged so far.
        let (late_calling, mut late_calling_rx) = watch::channel(false);
        let (late_acked, mut late_acked_rx) = watch::channel(0_usize);
        let late = tokio::spawn({
            let (client, task_queue, stop) = (connect(addr).await, task_queue.clone(), stop_late.clone());
            async move {
                let mut late = Vec::new();
                let mut n = 1_000;
                while !stop.load(Ordering::SeqCst) {
                    let kind = if n % 2 == 0 { Kind::Quick } else { Kind::Flaky };
                    late_calling.send_replace(true);
                    let (s, _) = start_one(&client, &task_queue, "late", n, kind, 800).await;
                    late_calling.send_replace(false);
                    if s.acked_run.is_some() {
                        late_acked.send_modify(|acked| *acked += 1);
                    }
                    late.push(s);
                    n += 1;
                    // Pacing: a steady stream of starts, not a flood.
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
                late
            }
        });

        // 2. The kills.
        let mut late = Some((late, stop_late));
        let mut kills = Vec::new();
        for kill in plan {
            let (seen, reached, downtime) = match *kill {
                Kill::At { point, downtime } => {
                    let deadline = Instant::now() + WAIT_KILL_POINT;
                    loop {
                        let seen = in_flight(&client, &started, &stats).await;
                        let reached = point.reached(&seen);
                        if reached || Instant::now() >= deadline {
                            break (seen, reached, downtime);
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Kill::After { delay, downtime } => {
                    tokio::time::sleep(delay).await;
                    // What is in flight just before (the survey takes a moment).
                    (in_flight(&client, &started, &stats).await, true, downtime)
                }
            };
            if late.is_some() {
                // Kill while a StartWorkflowExecution is in flight, if that happens soon.
                let _ = tokio::time::timeout(Duration::from_secs(2), late_calling_rx.wait_for(|calling| *calling)).await;
            }
            let at = Instant::now();
            server.take().expect("running").kill();
            tokio::time::sleep(downtime).await;
            server = Some(start_server(&data_dir, &listen, &log).await);
            kills.push((*kill, reached, seen, at, at.elapsed()));
            if let Some((task, stop)) = late.take() {
                // Keep starting until the restarted server acknowledged a late start
                // (bounded: if it does not, the checks below will say why).
                let acked_before = *late_acked_rx.borrow_and_update();
                let back = tokio::time::timeout(WAIT_LATE_ACK, late_acked_rx.wait_for(|acked| *acked > acked_before)).await;
                if !matches!(back, Ok(Ok(_))) {
                    eprintln!("durability {name}: no late start acknowledged within {WAIT_LATE_ACK:?} of the restart");
                }
                stop.store(true, Ordering::SeqCst);
                let more =
                    tokio::time::timeout(Duration::from_secs(60), task).await.expect("the late starter stops").expect("late starter");
                let acked = more.iter().filter(|s| s.acked_run.is_some()).count();
                eprintln!("durability {name}: {} late starts, {acked} acknowledged", more.len());
                started.extend(more);
            }
        }
        for (_, _, seen, at, _) in &mut kills {
            seen.starts_in_flight = started.iter().filter(|s| s.began <= *at && *at <= s.ended).count();
        }

        // 3. Everything that exists must close.
        let open = wait_all_closed(&client, &started).await;
        (started, handles, open, kills)
    };
    let run = async {
        let ran = worker.run().await;
        ran.expect("the worker runs until shut down without error");
    };
    tokio::pin!(run);
    let (started, handles, open, kills) = tokio::select! {
        out = tokio::time::timeout(SCENARIO_BOUND, scenario) => {
            out.unwrap_or_else(|_| panic!("durability {name}: the scenario did not finish within {SCENARIO_BOUND:?} (data in {})", data_dir.display()))
        }
        () = &mut run => panic!("the worker stopped on its own"),
    };
    shutdown_worker();
    let _ = tokio::time::timeout(Duration::from_secs(20), run).await;

    // ---------------------------------------------------------------- checks
    for (kill, reached, seen, _, back_after) in &kills {
        let reached = if *reached { "" } else { " (NOT reached in time; killed anyway)" };
        eprintln!("durability {name}: kill -9 {kill:?}{reached}, serving again after {back_after:?}; in flight: {seen:?}");
    }
    check_all(&client, name, &started, &handles, &open, root, &log, server).await;
}

/// Waits (bounded) until every workflow that exists is closed; returns the ones
/// still open.
async fn wait_all_closed(client: &Client, started: &[Started]) -> Vec<String> {
    let deadline = Instant::now() + WAIT_ALL_CLOSED;
    loop {
        let survey = survey(client, started).await;
        let open: Vec<String> = started
            .iter()
            .filter(|s| s.acked_run.is_some() || survey.contains_key(&s.workflow_id))
            .filter(|s| !survey.get(&s.workflow_id).is_some_and(|p| p.closed))
            .map(|s| s.workflow_id.clone())
            .collect();
        if open.is_empty() || Instant::now() >= deadline {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Checks every workflow (see the module doc), then stops the server and fails the
/// test with every failure found (keeping the data directory).
#[allow(clippy::too_many_arguments)]
async fn check_all(
    client: &Client,
    name: &str,
    started: &[Started],
    handles: &[(usize, WorkflowHandle<Client, DurableRun>)],
    open: &[String],
    root: tempfile::TempDir,
    log: &Path,
    server: Option<ServerProcess>,
) {
    let mut failures = Vec::new();
    let checked = tokio::time::timeout(CHECKS_BOUND, check_each(client, name, started, handles, open, &mut failures)).await;
    if checked.is_err() {
        failures.push(format!("the checks did not finish within {CHECKS_BOUND:?} (the server stopped answering?)"));
    }
    drop(server);
    if !failures.is_empty() {
        let log_text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = log_text.lines().rev().take(50).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let kept = root.keep();
        panic!(
            "durability {name}: {} failures (data dir and logs kept in {}):\n{}\n--- server log tail ---\n{}",
            failures.len(),
            kept.display(),
            failures.join("\n"),
            tail.join("\n")
        );
    }
}

async fn check_each(
    client: &Client,
    name: &str,
    started: &[Started],
    handles: &[(usize, WorkflowHandle<Client, DurableRun>)],
    open: &[String],
    failures: &mut Vec<String>,
) {
    if !open.is_empty() {
        failures.push(format!("{} workflows still open after {WAIT_ALL_CLOSED:?}: {open:?}", open.len()));
    }
    for (i, handle) in handles {
        let s = &started[*i];
        if open.contains(&s.workflow_id) {
            continue; // reported above; get_result would wait for it
        }
        match tokio::time::timeout(WAIT_RPC, handle.get_result(WorkflowGetResultOptions::default())).await {
            Ok(Ok(result)) if result == s.expected() => {}
            Ok(Ok(result)) => failures.push(format!("{}: result {result:?}, expected {:?}", s.workflow_id, s.expected())),
            Ok(Err(e)) => failures.push(format!("{}: get_result: {e}", s.workflow_id)),
            Err(_) => failures.push(format!("{}: get_result: no answer within {WAIT_RPC:?}", s.workflow_id)),
        }
    }
    let (mut acked, mut unacked_existing, mut unacked_missing, mut retried) = (0, 0, 0, 0);
    for s in started {
        let checked = check_workflow(client, s, failures).await;
        let found = checked.exists;
        // Only flaky activities fail on purpose; a later attempt of another one means
        // an attempt's outcome was lost (its worker died) and the server retried it.
        if Kind::of(s.kind) != Kind::Flaky && checked.activity_attempt.is_some_and(|a| a > 1) {
            retried += 1;
        }
        match (&s.acked_run, found) {
            (Some(_), _) => acked += 1,
            (None, true) => unacked_existing += 1,
            (None, false) => unacked_missing += 1,
        }
        if s.acked_run.is_none() {
            eprintln!("durability {name}: start of {} not acknowledged ({:?}); exists afterwards: {found}", s.workflow_id, s.start_error);
        }
    }
    eprintln!(
        "durability {name}: checked {acked} acknowledged workflows, {unacked_existing} unacknowledged that exist, \
         {unacked_missing} unacknowledged that do not; {retried} non-flaky activities completed on a retry"
    );
}

/// What [`check_workflow`] found.
struct Checked {
    exists: bool,
    /// The attempt of the activity's (last) ActivityTaskStarted event.
    activity_attempt: Option<i32>,
}

/// Checks one workflow's history and current run.
async fn check_workflow(client: &Client, s: &Started, failures: &mut Vec<String>) -> Checked {
    let id = &s.workflow_id;
    let run = s.acked_run.clone().unwrap_or_default();
    let events = match tokio::time::timeout(WAIT_RPC, full_history(client, "default", id, &run)).await {
        Ok(Ok(events)) => events,
        Ok(Err(status)) if status.code() == Code::NotFound && s.acked_run.is_none() => {
            return Checked { exists: false, activity_attempt: None }
        }
        Ok(Err(status)) => {
            failures.push(format!("{id} (acknowledged: {:?}): history: {status}", s.acked_run));
            return Checked { exists: true, activity_attempt: None };
        }
        Err(_) => {
            failures.push(format!("{id}: history: no answer within {WAIT_RPC:?}"));
            return Checked { exists: true, activity_attempt: None };
        }
    };
    let activity_attempt = events.iter().rev().find_map(|e| match &e.attributes {
        Some(Attributes::ActivityTaskStartedEventAttributes(a)) => Some(a.attempt),
        _ => None,
    });
    let mut fail = |what: String| failures.push(format!("{id}: {what}"));
    for (i, e) in events.iter().enumerate() {
        if e.event_id != i as i64 + 1 {
            fail(format!("event #{i} has id {} (ids must be dense from 1)", e.event_id));
            break;
        }
    }
    let types: Vec<EventType> = events.iter().map(event_type).collect();
    if types.first() != Some(&EventType::WorkflowExecutionStarted) || count(&events, EventType::WorkflowExecutionStarted) != 1 {
        fail(format!("must begin with the only WorkflowExecutionStarted: {types:?}"));
    }
    let closes: Vec<EventType> = types.iter().copied().filter(|t| is_close(*t)).collect();
    if closes != [EventType::WorkflowExecutionCompleted] || types.last() != Some(&EventType::WorkflowExecutionCompleted) {
        fail(format!("must end with exactly one WorkflowExecutionCompleted: {types:?}"));
    }
    for e in &events {
        if let Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) = &e.attributes {
            let payload = a.result.as_ref().and_then(|p| p.payloads.first());
            let want = format!("\"{}\"", s.expected());
            if payload.map(|p| p.data.as_slice()) != Some(want.as_bytes()) {
                fail(format!("completed with {:?}, expected {want}", payload.map(|p| String::from_utf8_lossy(&p.data).into_owned())));
            }
        }
    }
    let (timer_started, timer_fired) = (count(&events, EventType::TimerStarted), count(&events, EventType::TimerFired));
    if timer_started != 1 || timer_fired != 1 || count(&events, EventType::TimerCanceled) != 0 {
        fail(format!("one timer started and fired once expected: {timer_started} started, {timer_fired} fired"));
    }
    let scheduled: Vec<i64> = events.iter().filter(|e| event_type(e) == EventType::ActivityTaskScheduled).map(|e| e.event_id).collect();
    let started_ev: Vec<i64> = events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::ActivityTaskStartedEventAttributes(a)) => Some(a.scheduled_event_id),
            _ => None,
        })
        .collect();
    let completed: Vec<i64> = events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::ActivityTaskCompletedEventAttributes(a)) => Some(a.scheduled_event_id),
            _ => None,
        })
        .collect();
    if scheduled.len() != 1 || started_ev != scheduled || completed != scheduled {
        fail(format!(
            "one activity scheduled, started and completed once expected: scheduled {scheduled:?}, started for {started_ev:?}, completed for {completed:?}"
        ));
    }
    for t in
        [EventType::ActivityTaskFailed, EventType::ActivityTaskTimedOut, EventType::ActivityTaskCanceled, EventType::WorkflowTaskFailed]
    {
        let c = count(&events, t);
        if c != 0 && t != EventType::WorkflowTaskFailed {
            fail(format!("{c} {t:?} events: {types:?}"));
        } else if c != 0 {
            eprintln!("durability: note: {id} has {c} WorkflowTaskFailed events");
        }
    }
    // The workflow id's current run is the acknowledged one: no second run.
    let mut service = client.connection().workflow_service();
    let request = DescribeWorkflowExecutionRequest {
        namespace: "default".into(),
        execution: Some(WorkflowExecution { workflow_id: id.clone(), run_id: String::new() }),
    };
    match tokio::time::timeout(WAIT_RPC, service.describe_workflow_execution(request.into_request())).await {
        Ok(Ok(d)) => {
            let info = d.into_inner().workflow_execution_info.unwrap_or_default();
            let current = info.execution.map(|e| e.run_id).unwrap_or_default();
            if let Some(run) = &s.acked_run {
                if &current != run {
                    fail(format!("current run is {current}, the acknowledged run was {run}"));
                }
            }
            if info.status != WorkflowExecutionStatus::Completed as i32 {
                fail(format!("status {:?}", WorkflowExecutionStatus::try_from(info.status)));
            }
        }
        Ok(Err(status)) => fail(format!("describe: {status}")),
        Err(_) => fail(format!("describe: no answer within {WAIT_RPC:?}")),
    }
    Checked { exists: true, activity_attempt }
}
