//! `hourglass-bench`: a load generator for any Temporal-API endpoint. It plays both
//! the starter (StartWorkflowExecution, SignalWorkflowExecution) and the workers
//! (PollWorkflowTaskQueue / PollActivityTaskQueue loops answering with
//! RespondWorkflowTaskCompleted / RespondActivityTaskCompleted) over the raw gRPC
//! API, using the tonic client generated from Temporal's protos (no SDK, no retries,
//! no sticky queues: every workflow task carries the full history and the next
//! command is computed from it, see [`scenario::decide`]).
//!
//! Numbers (see docs/bench-harness.md):
//! - workflows/s: workflows completed in the measured window / window length.
//! - transitions/s: successful state-changing RPCs (start, signal, workflow-task
//!   completion, activity completion) / window length.
//! - events/s: history events of completed workflows / window length.
//! - latency: StartWorkflowExecution sent → the RespondWorkflowTaskCompleted carrying
//!   CompleteWorkflowExecution returned OK, per workflow started in the window.

pub mod scenario;
pub mod stats;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use temporalio_protos::protos::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::workflow_service_client::WorkflowServiceClient;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{SignalWorkflowExecutionRequest, StartWorkflowExecutionRequest};
use tokio::sync::oneshot;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use crate::{Histogram, Table};
pub use scenario::{decide, Decision, Scenario};
use stats::{latency_ms, Counters, ProcSample, Snapshot};

pub type Client = WorkflowServiceClient<Channel>;

/// Command-line parameters.
#[derive(Debug, Clone, Parser)]
#[command(name = "hourglass-bench", about = "Load generator for a Temporal-API endpoint (starter + workers over raw gRPC)")]
pub struct Args {
    /// Endpoint host:port (or http://host:port).
    #[arg(long, default_value = "127.0.0.1:7233")]
    pub target: String,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// noop | one-activity | "activities N" | "signals K" | timer (also activities:N).
    #[arg(long, default_value = "noop")]
    pub scenario: Scenario,
    /// Workflows to start in total (warm-up included). Default 1000 unless --duration.
    #[arg(long, conflicts_with = "duration")]
    pub workflows: Option<u64>,
    /// Keep starting workflows for this many seconds (after the warm-up), then drain.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Workflows in flight at once (each slot: start, signal, wait for completion).
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Open-loop start rate in workflows/s: workflow n is due at n / rate seconds and
    /// its latency is measured from that due time, so a server (or a full set of
    /// --concurrency slots) that falls behind shows up as latency instead of being
    /// hidden (no coordinated omission). Default: closed loop (each slot starts the
    /// next workflow as soon as its last one completed).
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Concurrent PollWorkflowTaskQueue loops.
    #[arg(long, default_value_t = 8)]
    pub wft_pollers: usize,
    /// Concurrent PollActivityTaskQueue loops (only for activity scenarios).
    #[arg(long, default_value_t = 8)]
    pub activity_pollers: usize,
    /// Seconds of load before measuring (workflows started earlier are not counted).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Server process to sample (/proc/PID/stat CPU, /proc/PID/status VmRSS).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// HTTP/2 connections; calls are spread round-robin.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Send requests uncompressed (default: gzip, like the SDKs).
    #[arg(long)]
    pub no_gzip: bool,
    /// Task queue (default: a fresh hgbench-<uuid> per run).
    #[arg(long)]
    pub task_queue: Option<String>,
    /// Seconds between progress lines (0: none).
    #[arg(long, default_value_t = 5.0)]
    pub progress: f64,
    /// Give up on a workflow not completed after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    pub workflow_timeout: f64,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("--rate wants a positive number of workflows/s, got {s:?}")),
    }
}

/// Counters and CPU samples (own, server) at the start of the measured window.
type Baseline = (Instant, Snapshot, Option<ProcSample>, Option<ProcSample>);

/// Per-call deadline of the non-poll RPCs.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the starter slots, the pollers and the progress printer.
pub(crate) struct Shared {
    pub args: Args,
    pub task_queue: String,
    pub identity: String,
    pub clients: Vec<Client>,
    next_client: AtomicU64,
    pub counters: Counters,
    /// workflow id → who waits for its completion.
    pub waiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
    pub stop: AtomicBool,
}

impl Shared {
    pub fn client(&self) -> Client {
        let i = self.next_client.fetch_add(1, Ordering::Relaxed) as usize;
        self.clients[i % self.clients.len()].clone()
    }
    /// The worker saw workflow `id` complete (its Complete command was accepted).
    pub fn completed(&self, id: &str) {
        if let Some(tx) = self.waiting.lock().remove(id) {
            let _ = tx.send(());
        }
    }
}

pub(crate) fn code_name(s: &tonic::Status) -> String {
    format!("{:?}", s.code())
}

pub(crate) fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(timeout);
    r
}

async fn connect(args: &Args) -> Result<Vec<Client>, String> {
    let url = if args.target.contains("://") { args.target.clone() } else { format!("http://{}", args.target) };
    let mut clients = Vec::new();
    for _ in 0..args.connections.max(1) {
        let ch = Endpoint::from_shared(url.clone())
            .map_err(|e| format!("bad target {url}: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("connect {url}: {e}"))?;
        let mut c = WorkflowServiceClient::new(ch).accept_compressed(CompressionEncoding::Gzip).max_decoding_message_size(64 << 20);
        if !args.no_gzip {
            c = c.send_compressed(CompressionEncoding::Gzip);
        }
        clients.push(c);
    }
    Ok(clients)
}

/// One run's results.
#[derive(Debug)]
pub struct Report {
    pub json: serde_json::Value,
    pub table: String,
}

/// Runs the load described by `args` and returns the report (also printed).
pub async fn run(args: Args) -> Result<Report, String> {
    let clients = connect(&args).await?;
    let run_tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let task_queue = args.task_queue.clone().unwrap_or_else(|| format!("hgbench-{run_tag}"));
    let shared = Arc::new(Shared {
        identity: format!("hourglass-bench@{}", std::process::id()),
        task_queue,
        clients,
        next_client: AtomicU64::new(0),
        counters: Counters::default(),
        waiting: Mutex::new(HashMap::new()),
        stop: AtomicBool::new(false),
        args: args.clone(),
    });

    let mut pollers = Vec::new();
    for _ in 0..args.wft_pollers.max(1) {
        pollers.push(tokio::spawn(worker::workflow_poller(shared.clone())));
    }
    if args.scenario.uses_activities() {
        for _ in 0..args.activity_pollers.max(1) {
            pollers.push(tokio::spawn(worker::activity_poller(shared.clone())));
        }
    }

    let t0 = Instant::now();
    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let measure_from = t0 + warmup;
    let start_until = args.duration.map(|d| measure_from + Duration::from_secs_f64(d));
    let total = if args.duration.is_some() { u64::MAX } else { args.workflows.unwrap_or(1000) };
    let issued = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Histogram::new()));
    let last_done = Arc::new(Mutex::new(t0));

    // Baselines at the start of the measured window (taken by the progress task
    // when the warm-up ends, or now without a warm-up).
    let baseline: Arc<Mutex<Option<Baseline>>> = Arc::new(Mutex::new(None));
    let take_baseline = {
        let shared = shared.clone();
        let baseline = baseline.clone();
        let pid = args.server_pid;
        move || {
            let mut b = baseline.lock();
            if b.is_none() {
                *b = Some((Instant::now(), shared.counters.snapshot(), ProcSample::own(), pid.and_then(ProcSample::of_pid)));
            }
        }
    };
    if warmup.is_zero() {
        take_baseline();
    }

    let progress = {
        let shared = shared.clone();
        let take_baseline = take_baseline.clone();
        let every = Duration::from_secs_f64(if args.progress > 0.0 { args.progress } else { 1.0 });
        let print = args.progress > 0.0;
        let pid = args.server_pid;
        tokio::spawn(async move {
            let mut prev = (Instant::now(), shared.counters.snapshot(), ProcSample::own(), pid.and_then(ProcSample::of_pid));
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let now = Instant::now();
                if now >= measure_from {
                    take_baseline();
                }
                if !print || now.duration_since(prev.0) < every {
                    continue;
                }
                let snap = shared.counters.snapshot();
                let d = snap.since(&prev.1);
                let wall = now.duration_since(prev.0);
                let own = ProcSample::own();
                let srv = pid.and_then(ProcSample::of_pid);
                let cores = |a: Option<ProcSample>, b: Option<ProcSample>| match (a, b) {
                    (Some(a), Some(b)) => format!("{:.2}", a.cores_since(&b, wall)),
                    _ => "-".into(),
                };
                let phase = if now < measure_from { " (warm-up)" } else { "" };
                eprintln!(
                    "[{:>6.1}s]{phase} done {} ({:.1} wf/s, {:.1} transitions/s) in-flight {} errors {} | cpu bench {} server {}",
                    now.duration_since(t0).as_secs_f64(),
                    snap.completed,
                    d.completed as f64 / wall.as_secs_f64(),
                    d.transitions as f64 / wall.as_secs_f64(),
                    shared.waiting.lock().len(),
                    shared.counters.error_total(),
                    cores(own, prev.2),
                    cores(srv, prev.3),
                );
                prev = (now, snap, own, srv);
            }
        })
    };

    // Starter slots.
    let mut slots = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let shared = shared.clone();
        let issued = issued.clone();
        let latencies = latencies.clone();
        let last_done = last_done.clone();
        let run_tag = run_tag.clone();
        slots.push(tokio::spawn(async move {
            loop {
                if start_until.is_some_and(|u| Instant::now() >= u) {
                    return;
                }
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return;
                }
                let id = format!("hgbench-{run_tag}-{n}");
                // Open loop: wait for this workflow's due time; its latency counts from
                // then, so time spent waiting for a free slot is latency too.
                let due = shared.args.rate.map(|r| t0 + Duration::from_secs_f64(n as f64 / r));
                if let Some(due) = due {
                    if start_until.is_some_and(|u| due >= u) {
                        return;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
                let begun = due.unwrap_or_else(Instant::now);
                if let Some(elapsed) = one_workflow(&shared, &id, begun).await {
                    let done = Instant::now();
                    let mut last = last_done.lock();
                    *last = (*last).max(done);
                    if begun >= measure_from {
                        latencies.lock().record(elapsed);
                    }
                }
            }
        }));
    }
    for s in slots {
        let _ = s.await;
    }
    take_baseline();
    let end = Instant::now();
    shared.stop.store(true, Ordering::Relaxed);
    progress.abort();
    for p in &pollers {
        p.abort();
    }

    let (b_at, b_snap, b_own, b_srv) = baseline.lock().expect("baseline taken");
    let window = end.duration_since(b_at).max(Duration::from_millis(1));
    let snap = shared.counters.snapshot().since(&b_snap);
    let own_end = ProcSample::own();
    let srv_end = args.server_pid.and_then(ProcSample::of_pid);
    let mut lat = std::mem::take(&mut *latencies.lock());
    Ok(report(&args, &shared, window, snap, (b_own, own_end), (b_srv, srv_end), &mut lat))
}

/// Starts workflow `id`, sends its signals, waits for a worker to complete it.
/// Returns start→completion latency, or None (counted as failed) on error/timeout.
/// `begun` is when the workflow was due (open loop) or now (closed loop).
async fn one_workflow(shared: &Shared, id: &str, begun: Instant) -> Option<Duration> {
    let a = &shared.args;
    let (tx, rx) = oneshot::channel();
    shared.waiting.lock().insert(id.to_string(), tx);
    let req = StartWorkflowExecutionRequest {
        namespace: a.namespace.clone(),
        workflow_id: id.to_string(),
        workflow_type: Some(WorkflowType { name: a.scenario.workflow_type() }),
        task_queue: Some(TaskQueue { name: shared.task_queue.clone(), ..Default::default() }),
        workflow_task_timeout: Some(prost_wkt_types::Duration { seconds: 10, nanos: 0 }),
        identity: shared.identity.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let fail = |shared: &Shared| {
        shared.waiting.lock().remove(id);
        Counters::add(&shared.counters.failed, 1);
        None
    };
    let run_id = match shared.client().start_workflow_execution(request(req, CALL_TIMEOUT)).await {
        Ok(r) => {
            Counters::add(&shared.counters.started, 1);
            Counters::add(&shared.counters.transitions, 1);
            r.into_inner().run_id
        }
        Err(s) => {
            shared.counters.error("StartWorkflowExecution", &code_name(&s));
            tokio::time::sleep(Duration::from_millis(100)).await;
            return fail(shared);
        }
    };
    for i in 0..a.scenario.signals_to_send() {
        let req = SignalWorkflowExecutionRequest {
            namespace: a.namespace.clone(),
            workflow_execution: Some(WorkflowExecution { workflow_id: id.to_string(), run_id: run_id.clone() }),
            signal_name: format!("sig-{i}"),
            identity: shared.identity.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        match shared.client().signal_workflow_execution(request(req, CALL_TIMEOUT)).await {
            Ok(_) => Counters::add(&shared.counters.transitions, 1),
            Err(s) => {
                shared.counters.error("SignalWorkflowExecution", &code_name(&s));
                return fail(shared);
            }
        }
    }
    match tokio::time::timeout(Duration::from_secs_f64(a.workflow_timeout), rx).await {
        Ok(Ok(())) => Some(begun.elapsed()),
        _ => {
            shared.counters.error("workflow", "NotCompletedInTime");
            fail(shared)
        }
    }
}

fn report(
    args: &Args,
    shared: &Shared,
    window: Duration,
    s: Snapshot,
    own: (Option<ProcSample>, Option<ProcSample>),
    srv: (Option<ProcSample>, Option<ProcSample>),
    lat: &mut Histogram,
) -> Report {
    let secs = window.as_secs_f64();
    let rate = |n: u64| n as f64 / secs;
    let cores = |p: (Option<ProcSample>, Option<ProcSample>)| match p {
        (Some(a), Some(b)) => Some(b.cores_since(&a, window)),
        _ => None,
    };
    let own_cores = cores(own);
    let srv_cores = cores(srv);
    let mb = |p: Option<ProcSample>| p.map(|p| p.rss_bytes as f64 / (1 << 20) as f64);
    let pct = latency_ms(lat);
    let errors = shared.counters.errors();

    let mut t = Table::new(&["metric", "value"]);
    let mut row = |k: &str, v: String| t.row(vec![k.to_string(), v]);
    row("scenario", args.scenario.to_string());
    row("target", args.target.clone());
    row(
        "concurrency / wft pollers / activity pollers",
        format!(
            "{} / {} / {}",
            args.concurrency,
            args.wft_pollers,
            if args.scenario.uses_activities() { args.activity_pollers } else { 0 }
        ),
    );
    row("start rate", args.rate.map(|r| format!("{r:.1} wf/s (open loop)")).unwrap_or_else(|| "closed loop".into()));
    row("measured window", format!("{secs:.2} s"));
    row("workflows completed", s.completed.to_string());
    row("workflows failed", s.failed.to_string());
    row("workflows/s", format!("{:.1}", rate(s.completed)));
    row("state transitions/s (state-changing RPCs)", format!("{:.1}", rate(s.transitions)));
    row("history events/s", format!("{:.1}", rate(s.events)));
    row("events per transition", if s.transitions > 0 { format!("{:.2}", s.events as f64 / s.transitions as f64) } else { "-".into() });
    for (k, v) in &pct {
        row(&format!("latency {k}"), format!("{v:.2} ms"));
    }
    row("latency samples", lat.len().to_string());
    row("tasks polled (wft / activity / empty polls)", format!("{} / {} / {}", s.wft_polled, s.act_polled, s.empty_polls));
    let fmt_opt = |v: Option<f64>, unit: &str| v.map(|v| format!("{v:.2}{unit}")).unwrap_or_else(|| "-".into());
    row("bench CPU (cores)", fmt_opt(own_cores, ""));
    row("bench RSS", fmt_opt(mb(own.1), " MiB"));
    row("server CPU (cores)", fmt_opt(srv_cores, ""));
    row("server RSS", fmt_opt(mb(srv.1), " MiB"));
    if errors.is_empty() {
        row("errors", "none".into());
    }
    for (k, v) in &errors {
        row(&format!("error {k}"), v.to_string());
    }
    let table = t.render();

    let json = serde_json::json!({
        "scenario": args.scenario.to_string(),
        "target": args.target,
        "namespace": args.namespace,
        "concurrency": args.concurrency,
        "rate_wf_per_s": args.rate,
        "wft_pollers": args.wft_pollers,
        "activity_pollers": if args.scenario.uses_activities() { args.activity_pollers } else { 0 },
        "warmup_s": args.warmup,
        "window_s": secs,
        "workflows_completed": s.completed,
        "workflows_failed": s.failed,
        "workflows_started": s.started,
        "workflows_per_s": rate(s.completed),
        "transitions": s.transitions,
        "transitions_per_s": rate(s.transitions),
        "history_events": s.events,
        "history_events_per_s": rate(s.events),
        "latency_ms": pct.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "latency_samples": lat.len(),
        "wft_polled": s.wft_polled,
        "activity_polled": s.act_polled,
        "empty_polls": s.empty_polls,
        "bench_cpu_cores": own_cores,
        "bench_rss_mib": mb(own.1),
        "server_pid": args.server_pid,
        "server_cpu_cores": srv_cores,
        "server_rss_mib": mb(srv.1),
        "errors": errors,
        "load_average": crate::load_average(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });
    Report { json, table }
}
