//! Shard ownership moving under running workflows: real Temporal Rust SDK workers run
//! a mix of workflows (user timers, activities that fail their first attempts and
//! succeed on a retry, signals from the client, child workflows, continue-as-new
//! chains) while a background task keeps stepping down the Raft leader of every
//! shard (`Node::step_down`) at random moments. Each step-down ends the shard's term:
//! the service's owner of the shard stops (matching drops its tasks, its timer
//! service ends, calls on it fail with `NotLeader`) and a new owner starts in the
//! next term (backlog reloaded, timers re-armed).
//!
//! Afterwards every workflow must have completed exactly once with the result its
//! plan implies (signals: each value once, in the order sent), its workflow id's
//! current run must be the last run of its chain, and every run's history (fetched
//! with GetWorkflowExecutionHistory, continue-as-new chains followed through
//! `new_execution_run_id`, children's runs too) must be well formed: event ids dense
//! from 1, one start and one close event (last), each workflow task / timer /
//! activity / child resolved at most once and, as every workflow here awaits all of
//! them, exactly once; no timer id started twice, no TimerFired for an unknown timer.
//! Activity attempts must be sane (an activity planned to fail `f` times succeeds on
//! attempt `> f`, and history names the attempt the workflow got). The step-down task
//! must really have run, on every shard, and the shards' terms must have moved with
//! it, so the test fails if the hook becomes a no-op.
//!
//! *Lost work* — a workflow task that timed out although the worker answers every
//! task at once, an activity attempt the worker never ran (or ran twice) — fails the
//! test too. (It found one: a workflow task whose owner stopped between committing
//! its WorkflowTaskStarted and reading the poll response's history was lost until
//! its start-to-close timeout; the response now reads committed history without the
//! owner's liveness check.)
//!
//! The choices (workflow plans, start times, which shards step down and when) come
//! from a seeded xorshift generator; the seed is printed and `HOURGLASS_SEED=<seed>`
//! replays the same choices (thread timing still differs between runs). Nothing
//! asserts timings: every wait is bounded by `within`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hourglass_tests::TestServer;
use support::{event_type, is_close, unique, with_worker, within};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::tonic::{Code, IntoRequest};
use temporalio_client::{Client, RetryPolicy, WorkflowGetResultOptions, WorkflowSignalOptions, WorkflowStartOptions};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, WorkflowExecutionStatus};
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::workflowservice::v1::DescribeWorkflowExecutionRequest;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{
    ActivityOptions, ApplicationFailure, ChildWorkflowOptions, ContinueAsNewOptions, SyncWorkflowContext, WorkerOptions, WorkflowContext,
    WorkflowResult,
};

/// How many workflows the test starts (a fifth of each kind).
const WORKFLOWS: usize = 40;
/// Workflow starts are spread over this long, so step-downs hit every phase.
const START_SPREAD_MS: u64 = 3_000;
/// Pause between two step-downs (inclusive range).
const STEP_DOWN_PAUSE_MS: (u64, u64) = (5, 60);
/// The test fails if fewer step-downs than this succeeded while the workflows ran.
const MIN_STEP_DOWNS: usize = 40;
const NS: &str = "default";

// ------------------------------------------------------------------- the seed

/// xorshift64: small, seeded, good enough to pick shards, delays and plans.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // splitmix64 of the seed, so nearby seeds give unrelated streams (and never 0).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 1 } else { z })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn seed() -> u64 {
    match std::env::var("HOURGLASS_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|e| panic!("HOURGLASS_SEED={s:?} is not a u64: {e}")),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1),
    }
}

// ------------------------------------------------------------------ activities

/// Every attempt the worker ran, per (run id, activity id).
type Attempts = Arc<Mutex<BTreeMap<(String, String), Vec<u32>>>>;

pub struct Acts {
    seen: Attempts,
}

#[activities]
impl Acts {
    /// Fails its first `fail_first` attempts, then returns the attempt that succeeded.
    #[activity]
    pub async fn flaky(self: Arc<Self>, ctx: ActivityContext, fail_first: u32) -> Result<u32, ActivityError> {
        let info = ctx.info();
        let attempt = info.attempt;
        let key = (info.workflow_run_id.clone().unwrap_or_default(), info.activity_id.clone());
        self.seen.lock().unwrap().entry(key).or_default().push(attempt);
        if attempt <= fail_first {
            return Err(ActivityError::application(ApplicationFailure::new(format!("planned failure of attempt {attempt}"))));
        }
        Ok(attempt)
    }
}

fn activity_options() -> ActivityOptions {
    let retry = RetryPolicy::builder().initial_interval(Duration::from_millis(50)).backoff_coefficient(1.0).build();
    // Long enough for any attempt on a busy machine; short enough that an attempt whose
    // task or outcome was lost is retried well within the test's bounds.
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(5)).retry_policy(retry).build()
}

// ------------------------------------------------------------------- workflows

/// Sleeps each timer of the plan in turn, the last two together; returns the plan.
#[workflow]
#[derive(Default)]
pub struct Timers;

#[workflow_methods]
impl Timers {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, millis: Vec<u64>) -> WorkflowResult<Vec<u32>> {
        let (sequential, parallel) = millis.split_at(millis.len().saturating_sub(2));
        for ms in sequential {
            ctx.timer(Duration::from_millis(*ms)).await;
        }
        if let [a, b] = parallel {
            futures::future::join(ctx.timer(Duration::from_millis(*a)), ctx.timer(Duration::from_millis(*b))).await;
        }
        Ok(millis.iter().map(|ms| *ms as u32).collect())
    }
}

/// Runs one flaky activity per entry of the plan (its planned failures); returns the
/// attempt on which each succeeded.
#[workflow]
#[derive(Default)]
pub struct Activities;

#[workflow_methods]
impl Activities {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, fail_first: Vec<u32>) -> WorkflowResult<Vec<u32>> {
        let mut attempts = Vec::new();
        for f in fail_first {
            attempts.push(ctx.execute_activity(Acts::flaky, f, activity_options()).await?);
        }
        Ok(attempts)
    }
}

/// Waits for `target` signals; returns their values in the order received.
#[workflow]
#[derive(Default)]
pub struct Signals {
    received: Vec<u32>,
}

#[workflow_methods]
impl Signals {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, target: u32) -> WorkflowResult<Vec<u32>> {
        ctx.wait_condition(|s| s.received.len() >= target as usize).await?;
        Ok(ctx.state(|s| s.received.clone()))
    }

    #[signal]
    pub fn add(&mut self, _ctx: &mut SyncWorkflowContext<Self>, value: u32) {
        self.received.push(value);
    }
}

/// Starts one child per entry of the plan (`(timer ms, planned failures)`), all before
/// awaiting any; returns each child's result.
#[workflow]
#[derive(Default)]
pub struct Parent;

#[workflow_methods]
impl Parent {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, children: Vec<(u64, u32)>) -> WorkflowResult<Vec<u32>> {
        let id = ctx.info().workflow_id().to_string();
        let mut started = Vec::new();
        for (i, plan) in children.into_iter().enumerate() {
            let options = ChildWorkflowOptions::workflow_id(child_id(&id, i));
            started.push(ctx.start_child_workflow(ChildWork::run, plan, options).await?);
        }
        let mut results = Vec::new();
        for child in started {
            results.push(child.result().await?);
        }
        Ok(results)
    }
}

fn child_id(parent: &str, i: usize) -> String {
    format!("{parent}-child-{i}")
}

/// A timer, then a flaky activity; returns the activity's successful attempt.
#[workflow]
#[derive(Default)]
pub struct ChildWork;

#[workflow_methods]
impl ChildWork {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, plan: (u64, u32)) -> WorkflowResult<u32> {
        let (timer_ms, fail_first) = plan;
        ctx.timer(Duration::from_millis(timer_ms)).await;
        Ok(ctx.execute_activity(Acts::flaky, fail_first, activity_options()).await?)
    }
}

/// Run `run` of `last + 1`: a timer and an activity that fails once, then
/// continue-as-new with the attempts so far; the last run returns them all.
#[workflow]
#[derive(Default)]
pub struct Chain;

#[workflow_methods]
impl Chain {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: (u32, u32, u64, Vec<u32>)) -> WorkflowResult<Vec<u32>> {
        let (run, last, timer_ms, mut attempts) = input;
        ctx.timer(Duration::from_millis(timer_ms)).await;
        attempts.push(ctx.execute_activity(Acts::flaky, 1_u32, activity_options()).await?);
        if run < last {
            // Always an error (the continue-as-new), returned by `?`.
            match ctx.continue_as_new((run + 1, last, timer_ms, attempts), ContinueAsNewOptions::default())? {}
        }
        Ok(attempts)
    }
}

// ------------------------------------------------------------------- the plans

/// What one workflow is told to do.
#[derive(Debug, Clone)]
enum Plan {
    /// Timer durations (ms).
    Timers(Vec<u64>),
    /// Planned failures of each activity.
    Activities(Vec<u32>),
    /// How many signals the client sends, and the pause (ms) before each.
    Signals(Vec<u64>),
    /// Per child: (timer ms, planned failures).
    Parent(Vec<(u64, u32)>),
    /// Continue-as-new `cans` times; each run's timer (ms).
    Chain { cans: u32, timer_ms: u64 },
}

impl Plan {
    fn random(i: usize, rng: &mut XorShift) -> Plan {
        match i % 5 {
            0 => Plan::Timers((0..rng.range(3, 5)).map(|_| rng.range(20, 250)).collect()),
            1 => Plan::Activities((0..rng.range(2, 4)).map(|_| rng.range(0, 2) as u32).collect()),
            2 => Plan::Signals((0..rng.range(3, 6)).map(|_| rng.range(0, 150)).collect()),
            3 => Plan::Parent((0..rng.range(2, 3)).map(|_| (rng.range(10, 150), rng.range(1, 2) as u32)).collect()),
            _ => Plan::Chain { cans: rng.range(2, 4) as u32, timer_ms: rng.range(10, 100) },
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Plan::Timers(_) => "timers",
            Plan::Activities(_) => "activities",
            Plan::Signals(_) => "signals",
            Plan::Parent(_) => "parent",
            Plan::Chain { .. } => "chain",
        }
    }

    /// Planned failures of each activity the workflow's result reports an attempt of.
    fn planned_failures(&self) -> Vec<u32> {
        match self {
            Plan::Activities(f) => f.clone(),
            Plan::Parent(children) => children.iter().map(|(_, f)| *f).collect(),
            Plan::Chain { cans, .. } => vec![1; *cans as usize + 1],
            Plan::Timers(_) | Plan::Signals(_) => Vec::new(),
        }
    }
}

/// One workflow the test started, and how it ended as the client saw it.
struct Done {
    index: usize,
    plan: Plan,
    workflow_id: String,
    /// The run StartWorkflowExecution returned.
    first_run: String,
    result: Result<Vec<u32>, String>,
    /// From the start call to the result.
    took: Duration,
    /// How often the client's get_result gave up on an Unavailable server.
    gave_up: usize,
}

type Driving<'a> = Pin<Box<dyn Future<Output = Done> + 'a>>;

/// Starts workflow `index` after `delay_ms`, sends its signals (if any) and awaits
/// its result (following continue-as-new).
fn drive<'a>(client: &'a Client, task_queue: &'a str, index: usize, plan: Plan, delay_ms: u64) -> Driving<'a> {
    Box::pin(async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let workflow_id = unique(&format!("moves-{index}-{}", plan.kind()));
        let began = Instant::now();
        let options = || WorkflowStartOptions::new(task_queue, workflow_id.as_str()).build();
        let what = format!("workflow {index} ({workflow_id})");
        // get_result long-polls the history. The server re-routes a long poll whose
        // shard's owner stops, but only a few times (`Router::retry`), which
        // step-downs this frequent use up; it then answers Unavailable, which the SDK
        // client retries about 10 times in about 10 s before giving up. A workflow
        // held up that long (a lost workflow task) meets that: ask again, and count.
        let mut gave_up = 0;
        macro_rules! result {
            ($handle:expr) => {
                within(&what, async {
                    loop {
                        match $handle.get_result(WorkflowGetResultOptions::default()).await {
                            Err(WorkflowGetResultError::Rpc(s)) if s.code() == Code::Unavailable => gave_up += 1,
                            other => break other.map_err(|e| e.to_string()),
                        }
                    }
                })
                .await
            };
        }
        macro_rules! start {
            ($run:expr, $input:expr) => {
                within(&format!("{what}: start"), client.start_workflow($run, $input, options())).await.expect("StartWorkflowExecution")
            };
        }
        let (first_run, result) = match &plan {
            Plan::Timers(millis) => {
                let handle = start!(Timers::run, millis.clone());
                (handle.info().run_id.clone(), result!(handle))
            }
            Plan::Activities(fail_first) => {
                let handle = start!(Activities::run, fail_first.clone());
                (handle.info().run_id.clone(), result!(handle))
            }
            Plan::Signals(pauses) => {
                let handle = start!(Signals::run, pauses.len() as u32);
                for (value, pause) in (1..).zip(pauses) {
                    tokio::time::sleep(Duration::from_millis(*pause)).await;
                    let signal = handle.signal(Signals::add, value, WorkflowSignalOptions::default());
                    within(&format!("{what}: signal {value}"), signal).await.expect("SignalWorkflowExecution");
                }
                (handle.info().run_id.clone(), result!(handle))
            }
            Plan::Parent(children) => {
                let handle = start!(Parent::run, children.clone());
                (handle.info().run_id.clone(), result!(handle))
            }
            Plan::Chain { cans, timer_ms } => {
                let handle = start!(Chain::run, (0, *cans, *timer_ms, Vec::new()));
                (handle.info().run_id.clone(), result!(handle))
            }
        };
        let first_run = first_run.expect("a started workflow's handle names its run");
        Done { index, plan, workflow_id, first_run, result, took: began.elapsed(), gave_up }
    })
}

// ----------------------------------------------------------------- step-downs

#[derive(Debug, Default)]
struct StepDowns {
    /// Step-downs that succeeded, per shard.
    done: BTreeMap<u32, usize>,
    /// Step-downs refused (e.g. entries not persisted yet), with the reason.
    refused: Vec<String>,
    /// Times several shards were stepped down at once.
    all_at_once: usize,
}

impl StepDowns {
    fn total(&self) -> usize {
        self.done.values().sum()
    }
}

/// Steps down random shards (now and then all of them together) after random pauses
/// until `stop` is set.
async fn step_down_randomly(node: hourglass_raft::Node, mut rng: XorShift, stop: Arc<AtomicBool>) -> StepDowns {
    let shards = node.shard_count();
    let mut stats = StepDowns::default();
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(rng.range(STEP_DOWN_PAUSE_MS.0, STEP_DOWN_PAUSE_MS.1))).await;
        let chosen: Vec<u32> = if rng.range(0, 4) == 0 {
            stats.all_at_once += 1;
            (0..shards).collect()
        } else {
            vec![rng.range(0, u64::from(shards) - 1) as u32]
        };
        let outcomes = futures::future::join_all(chosen.iter().map(|shard| {
            let node = node.clone();
            let shard = *shard;
            async move { (shard, within(&format!("step_down({shard})"), node.step_down(shard)).await) }
        }))
        .await;
        for (shard, outcome) in outcomes {
            match outcome {
                Ok(()) => *stats.done.entry(shard).or_default() += 1,
                Err(e) => stats.refused.push(format!("shard {shard}: {e}")),
            }
        }
    }
    stats
}

// ------------------------------------------------------------ history checks

fn types(events: &[HistoryEvent]) -> Vec<EventType> {
    events.iter().map(event_type).collect()
}

/// What a well-formed run's history says it did.
#[derive(Debug, Default)]
struct RunSummary {
    close: Option<EventType>,
    /// The next run (continue-as-new).
    next_run: Option<String>,
    timers_fired: usize,
    /// Attempt of each completed activity, in scheduling order.
    activity_attempts: Vec<u32>,
    /// Signal values, in history order.
    signals: Vec<u32>,
    /// Children started: (workflow id, run id), in initiation order.
    children: Vec<(String, String)>,
}

/// What the checks found.
#[derive(Debug, Default)]
struct Findings {
    /// Broken guarantees: a workflow that did not complete exactly once with its
    /// expected result, a malformed history, an activity that succeeded too early.
    problems: Vec<String>,
    /// Work the server lost and recovered only by a timeout: a workflow task that
    /// timed out (the worker answers every task it gets within milliseconds), an
    /// activity attempt the worker never ran (or ran twice).
    lost: Vec<String>,
}

/// Checks one closed run's history; adds what it finds to `findings`.
fn check_run(label: &str, events: &[HistoryEvent], findings: &mut Findings) -> RunSummary {
    let mut fail = |what: String| findings.problems.push(format!("{label}: {what}; history: {:?}", types(events)));
    let mut summary = RunSummary::default();

    // Event ids 1..=n, dense; one start (first); one close (last).
    for (i, e) in events.iter().enumerate() {
        if e.event_id != i as i64 + 1 {
            fail(format!("event #{} has id {} (ids must be 1..=n with no gap or repeat)", i + 1, e.event_id));
            break;
        }
    }
    let kinds = types(events);
    if kinds.first() != Some(&EventType::WorkflowExecutionStarted)
        || kinds.iter().filter(|t| **t == EventType::WorkflowExecutionStarted).count() != 1
    {
        fail("not exactly one WorkflowExecutionStarted, first".into());
    }
    let closes: Vec<EventType> = kinds.iter().copied().filter(|t| is_close(*t)).collect();
    if closes.len() != 1 || !kinds.last().copied().is_some_and(is_close) {
        fail(format!("close events {closes:?}: expected exactly one, last"));
    }
    summary.close = closes.last().copied();

    // Per scheduled/started/initiated event id: what resolved it.
    let mut wft_started: BTreeMap<i64, usize> = BTreeMap::new(); // scheduled id -> starts
    let mut wft_closed: BTreeMap<i64, usize> = BTreeMap::new(); // started id -> outcomes
    let mut timers: BTreeMap<i64, String> = BTreeMap::new(); // started id -> timer id
    let mut timer_ids: BTreeSet<String> = BTreeSet::new();
    let mut timers_resolved: BTreeMap<i64, usize> = BTreeMap::new();
    let mut activities: Vec<i64> = Vec::new(); // scheduled ids, in order
    let mut activity_started: BTreeMap<i64, Vec<u32>> = BTreeMap::new(); // scheduled id -> attempts started
    let mut activity_outcomes: BTreeMap<i64, Vec<EventType>> = BTreeMap::new();
    let mut children: Vec<i64> = Vec::new(); // initiated ids
    let mut child_started: BTreeMap<i64, Vec<(String, String)>> = BTreeMap::new();
    let mut child_outcomes: BTreeMap<i64, Vec<EventType>> = BTreeMap::new();

    for e in events {
        let t = event_type(e);
        match &e.attributes {
            Some(Attributes::WorkflowTaskStartedEventAttributes(a)) => *wft_started.entry(a.scheduled_event_id).or_default() += 1,
            Some(Attributes::WorkflowTaskCompletedEventAttributes(a)) => *wft_closed.entry(a.started_event_id).or_default() += 1,
            Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => *wft_closed.entry(a.started_event_id).or_default() += 1,
            Some(Attributes::WorkflowTaskTimedOutEventAttributes(a)) => *wft_closed.entry(a.started_event_id).or_default() += 1,
            Some(Attributes::TimerStartedEventAttributes(a)) => {
                if !timer_ids.insert(a.timer_id.clone()) {
                    fail(format!("timer id {:?} started twice", a.timer_id));
                }
                timers.insert(e.event_id, a.timer_id.clone());
            }
            Some(Attributes::TimerFiredEventAttributes(a)) => {
                match timers.get(&a.started_event_id) {
                    Some(id) if *id == a.timer_id => {}
                    other => fail(format!(
                        "TimerFired {} (timer {:?}) names started event {} which is timer {other:?}",
                        e.event_id, a.timer_id, a.started_event_id
                    )),
                }
                *timers_resolved.entry(a.started_event_id).or_default() += 1;
                summary.timers_fired += 1;
            }
            Some(Attributes::TimerCanceledEventAttributes(a)) => *timers_resolved.entry(a.started_event_id).or_default() += 1,
            Some(Attributes::ActivityTaskScheduledEventAttributes(_)) => activities.push(e.event_id),
            Some(Attributes::ActivityTaskStartedEventAttributes(a)) => {
                activity_started.entry(a.scheduled_event_id).or_default().push(a.attempt as u32)
            }
            Some(Attributes::ActivityTaskCompletedEventAttributes(a)) => activity_outcomes.entry(a.scheduled_event_id).or_default().push(t),
            Some(Attributes::ActivityTaskFailedEventAttributes(a)) => activity_outcomes.entry(a.scheduled_event_id).or_default().push(t),
            Some(Attributes::ActivityTaskTimedOutEventAttributes(a)) => activity_outcomes.entry(a.scheduled_event_id).or_default().push(t),
            Some(Attributes::ActivityTaskCanceledEventAttributes(a)) => activity_outcomes.entry(a.scheduled_event_id).or_default().push(t),
            Some(Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(_)) => children.push(e.event_id),
            Some(Attributes::ChildWorkflowExecutionStartedEventAttributes(a)) => {
                let run = a.workflow_execution.clone().unwrap_or_default();
                child_started.entry(a.initiated_event_id).or_default().push((run.workflow_id, run.run_id));
            }
            Some(Attributes::StartChildWorkflowExecutionFailedEventAttributes(a)) => {
                child_outcomes.entry(a.initiated_event_id).or_default().push(t)
            }
            Some(Attributes::ChildWorkflowExecutionCompletedEventAttributes(a)) => {
                child_outcomes.entry(a.initiated_event_id).or_default().push(t)
            }
            Some(Attributes::ChildWorkflowExecutionFailedEventAttributes(a)) => {
                child_outcomes.entry(a.initiated_event_id).or_default().push(t)
            }
            Some(Attributes::ChildWorkflowExecutionCanceledEventAttributes(a)) => {
                child_outcomes.entry(a.initiated_event_id).or_default().push(t)
            }
            Some(Attributes::ChildWorkflowExecutionTimedOutEventAttributes(a)) => {
                child_outcomes.entry(a.initiated_event_id).or_default().push(t)
            }
            Some(Attributes::ChildWorkflowExecutionTerminatedEventAttributes(a)) => {
                child_outcomes.entry(a.initiated_event_id).or_default().push(t)
            }
            Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) => {
                let value =
                    a.input.as_ref().and_then(|p| p.payloads.first()).and_then(|p| std::str::from_utf8(&p.data).ok()?.trim().parse().ok());
                match value {
                    Some(v) => summary.signals.push(v),
                    None => fail(format!("signal event {} carries no u32 payload", e.event_id)),
                }
            }
            Some(Attributes::WorkflowExecutionContinuedAsNewEventAttributes(a)) => summary.next_run = Some(a.new_execution_run_id.clone()),
            Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) if !a.new_execution_run_id.is_empty() => {
                fail(format!("a completed run names a next run {:?}", a.new_execution_run_id))
            }
            _ => {}
        }
    }

    // Stalls: a workflow task that timed out was lost (see `Findings::lost`); a long
    // pause elsewhere is only reported.
    let millis = |e: &HistoryEvent| e.event_time.as_ref().map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000).unwrap_or(0);
    for w in events.windows(2) {
        let gap = millis(&w[1]) - millis(&w[0]);
        let (t0, t1) = (event_type(&w[0]), event_type(&w[1]));
        if t1 == EventType::WorkflowTaskTimedOut {
            findings.lost.push(format!(
                "{label}: the workflow task started at event {} timed out {gap} ms later: {:?}; history: {:?}",
                w[0].event_id,
                w[1].attributes,
                types(events)
            ));
        } else if gap >= 1_000 {
            eprintln!(
                "ownership_moves: note: {label}: {gap} ms between event {} ({t0:?}) and event {} ({t1:?})",
                w[0].event_id, w[1].event_id
            );
        }
        if t1 == EventType::WorkflowTaskFailed {
            eprintln!("ownership_moves: note: {label}: event {} is WorkflowTaskFailed: {:?}", w[1].event_id, w[1].attributes);
        }
    }

    for (scheduled, starts) in &wft_started {
        if *starts > 1 {
            fail(format!("workflow task scheduled at {scheduled} started {starts} times"));
        }
    }
    for (started, outcomes) in &wft_closed {
        if *outcomes > 1 {
            fail(format!("workflow task started at {started} has {outcomes} outcomes"));
        }
    }
    for (started, timer) in &timers {
        let n = timers_resolved.get(started).copied().unwrap_or(0);
        if n != 1 {
            fail(format!("timer {timer:?} (started at {started}) fired or was cancelled {n} times; every timer here is awaited"));
        }
    }
    for (started, _) in timers_resolved.iter().filter(|(s, _)| !timers.contains_key(s)) {
        fail(format!("a timer event names started event {started}, which is no TimerStarted"));
    }
    for scheduled in &activities {
        let started = activity_started.get(scheduled).cloned().unwrap_or_default();
        let outcomes = activity_outcomes.get(scheduled).cloned().unwrap_or_default();
        if started.len() != 1 || outcomes != [EventType::ActivityTaskCompleted] {
            fail(format!(
                "activity scheduled at {scheduled}: started attempts {started:?}, outcomes {outcomes:?} (expected one start and one completion)"
            ));
        }
        summary.activity_attempts.push(started.first().copied().unwrap_or(0));
    }
    for id in activity_started.keys().chain(activity_outcomes.keys()).filter(|s| !activities.contains(s)) {
        fail(format!("an activity event names scheduled event {id}, which is no ActivityTaskScheduled"));
    }
    for initiated in &children {
        let started = child_started.get(initiated).cloned().unwrap_or_default();
        let outcomes = child_outcomes.get(initiated).cloned().unwrap_or_default();
        if started.len() != 1 || outcomes != [EventType::ChildWorkflowExecutionCompleted] {
            fail(format!(
                "child initiated at {initiated}: started {started:?}, outcomes {outcomes:?} (expected one start and one completion)"
            ));
        }
        summary.children.extend(started.first().cloned());
    }
    for id in child_started.keys().chain(child_outcomes.keys()).filter(|s| !children.contains(s)) {
        fail(format!("a child event names initiated event {id}, which is no StartChildWorkflowExecutionInitiated"));
    }
    summary
}

/// The workflow id's current run and its status (DescribeWorkflowExecution).
async fn current_run(client: &Client, workflow_id: &str) -> (String, WorkflowExecutionStatus) {
    let mut service = client.connection().workflow_service();
    let request = DescribeWorkflowExecutionRequest {
        namespace: NS.into(),
        execution: Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: String::new() }),
    };
    let call = service.describe_workflow_execution(request.into_request());
    let info =
        within(&format!("describe {workflow_id}"), call).await.expect("DescribeWorkflowExecution").into_inner().workflow_execution_info;
    let info = info.unwrap_or_default();
    let status = WorkflowExecutionStatus::try_from(info.status).unwrap_or(WorkflowExecutionStatus::Unspecified);
    (info.execution.map(|e| e.run_id).unwrap_or_default(), status)
}

/// Checks one workflow end to end: its result against its plan, the history of each
/// of its runs (and of its children's runs), its current run, the attempts its
/// activities reported.
async fn check_workflow(client: &Client, done: &Done, attempts_seen: &Attempts, findings: &mut Findings) {
    let label = format!("workflow {} {} ({})", done.index, done.workflow_id, done.plan.kind());
    let result = match &done.result {
        Ok(r) => r.clone(),
        Err(e) => {
            findings.problems.push(format!("{label}: did not complete: {e}"));
            return;
        }
    };

    // Follow the runs from the first (continue-as-new), checking each.
    let mut runs = Vec::new();
    let mut run = done.first_run.clone();
    let mut summaries = Vec::new();
    loop {
        let events = history(client, &done.workflow_id, &run).await;
        let summary = check_run(&format!("{label} run {run}"), &events, findings);
        runs.push(run.clone());
        let next = summary.next_run.clone();
        summaries.push(summary);
        match next {
            Some(next) if runs.len() <= 10 => run = next,
            Some(next) => {
                findings.problems.push(format!("{label}: more than 10 runs (next {next})"));
                break;
            }
            None => break,
        }
    }
    let last = summaries.last().expect("at least one run");
    if last.close != Some(EventType::WorkflowExecutionCompleted) {
        findings.problems.push(format!("{label}: the last run {run} closed with {:?}", last.close));
    }
    for s in &summaries[..summaries.len() - 1] {
        if s.close != Some(EventType::WorkflowExecutionContinuedAsNew) {
            findings.problems.push(format!("{label}: a run before the last closed with {:?}", s.close));
        }
    }
    let (current, status) = current_run(client, &done.workflow_id).await;
    if current != run || status != WorkflowExecutionStatus::Completed {
        findings.problems.push(format!("{label}: the current run is {current} ({status:?}); the chain ended at {run} (completed)"));
    }

    // The result against the plan, and against the histories.
    let all_attempts: Vec<u32> = summaries.iter().flat_map(|s| s.activity_attempts.iter().copied()).collect();
    let fail = |what: String| format!("{label}: {what} (plan {:?}, result {result:?})", done.plan);
    let mut child_attempts = Vec::new();
    match &done.plan {
        Plan::Timers(millis) => {
            let expected: Vec<u32> = millis.iter().map(|ms| *ms as u32).collect();
            if result != expected || summaries[0].timers_fired != millis.len() {
                findings.problems.push(fail(format!("{} timers fired in history", summaries[0].timers_fired)));
            }
        }
        Plan::Signals(pauses) => {
            let expected: Vec<u32> = (1..=pauses.len() as u32).collect();
            if result != expected || summaries[0].signals != expected {
                findings
                    .problems
                    .push(fail(format!("signals in history {:?}; each signal once, in the order sent, expected", summaries[0].signals)));
            }
        }
        Plan::Activities(_) | Plan::Chain { .. } => {
            if result != all_attempts {
                findings.problems.push(fail(format!("activity attempts in history {all_attempts:?}")));
            }
            if let Plan::Chain { cans, .. } = done.plan {
                if summaries.len() != cans as usize + 1 {
                    findings.problems.push(fail(format!("{} runs", summaries.len())));
                }
            }
        }
        Plan::Parent(children) => {
            let started = &summaries[0].children;
            if started.len() != children.len() {
                findings.problems.push(fail(format!("{} children started", started.len())));
            }
            for (i, ((child, child_run), plan)) in started.iter().zip(children).enumerate() {
                if *child != child_id(&done.workflow_id, i) {
                    findings.problems.push(fail(format!("child {i} is {child}")));
                }
                let events = history(client, child, child_run).await;
                let summary = check_run(&format!("{label} child {child} run {child_run}"), &events, findings);
                if summary.close != Some(EventType::WorkflowExecutionCompleted) || summary.timers_fired != 1 {
                    findings.problems.push(fail(format!(
                        "child {child} closed with {:?} after {} timers (plan {plan:?})",
                        summary.close, summary.timers_fired
                    )));
                }
                child_attempts.extend(summary.activity_attempts.iter().copied());
                let (current, status) = current_run(client, child).await;
                if current != *child_run || status != WorkflowExecutionStatus::Completed {
                    findings
                        .problems
                        .push(fail(format!("child {child}: the current run is {current} ({status:?}), the parent started {child_run}")));
                }
            }
            if result != child_attempts {
                findings.problems.push(fail(format!("children's activity attempts in history {child_attempts:?}")));
            }
        }
    }

    // Attempts: each activity succeeded after its planned failures, and the worker
    // ran every attempt up to the one that succeeded (none twice).
    let planned = done.plan.planned_failures();
    if planned.is_empty() {
        return; // no activities: the result is not a list of attempts
    }
    if result.len() != planned.len() {
        findings.problems.push(format!("{label}: {} activity results for {} planned activities", result.len(), planned.len()));
    }
    for (attempt, fail_first) in result.iter().zip(&planned) {
        if *attempt <= *fail_first {
            findings.problems.push(format!("{label}: an activity planned to fail {fail_first} times succeeded on attempt {attempt}"));
        } else if *attempt > fail_first + 1 {
            findings.lost.push(format!("{label}: an activity planned to fail {fail_first} times succeeded on attempt {attempt}"));
        }
    }
    let seen = attempts_seen.lock().unwrap();
    let own_runs: Vec<&String> = match done.plan {
        Plan::Parent(_) => summaries[0].children.iter().map(|(_, r)| r).collect(),
        _ => runs.iter().collect(),
    };
    for ((run, activity), attempts) in seen.iter().filter(|((r, _), _)| own_runs.contains(&r)) {
        let expected: Vec<u32> = (1..=attempts.iter().copied().max().unwrap_or(0)).collect();
        if *attempts != expected {
            findings.lost.push(format!("{label}: run {run} activity {activity}: the worker ran attempts {attempts:?}"));
        }
    }
}

// ------------------------------------------------------------------------ test

fn worker_options(task_queue: &str, seen: &Attempts) -> WorkerOptions {
    WorkerOptions::new(task_queue)
        .register_activities(Acts { seen: seen.clone() })
        .register_workflow::<Timers>()
        .and_then(|o| o.register_workflow::<Activities>())
        .and_then(|o| o.register_workflow::<Signals>())
        .and_then(|o| o.register_workflow::<Parent>())
        .and_then(|o| o.register_workflow::<ChildWork>())
        .and_then(|o| o.register_workflow::<Chain>())
        .expect("workflows register")
        .build()
}

/// The full history of a run (all pages).
async fn history(client: &Client, workflow_id: &str, run_id: &str) -> Vec<HistoryEvent> {
    let call = support::full_history(client, NS, workflow_id, run_id);
    within(&format!("history of {workflow_id}/{run_id}"), call).await.expect("GetWorkflowExecutionHistory")
}

/// Runs the workflows while the shards' owners keep stepping down, then checks
/// everything (see the module doc).
async fn run_scenario() {
    let seed = seed();
    eprintln!("ownership_moves: seed {seed} (HOURGLASS_SEED={seed} replays the plans and the step-down schedule)");
    let mut rng = XorShift::new(seed);
    let plans: Vec<(Plan, u64)> = (0..WORKFLOWS).map(|i| (Plan::random(i, &mut rng), rng.range(0, START_SPREAD_MS))).collect();
    let step_rng = XorShift::new(rng.next());

    let server = TestServer::start().await.expect("server starts");
    let node = server.server().expect("the server runs").engine().node().clone();
    let shards = node.shard_count();
    let terms_before: Vec<u64> = (0..shards).map(|s| node.leadership(s).expect("a shard").term).collect();
    let client = support::client(&server, NS).await;
    let task_queue = unique("moves");
    let seen: Attempts = Arc::default();

    let began = Instant::now();
    let (done, step_downs, workload_time) = with_worker(&client, worker_options(&task_queue, &seen), async {
        let stop = Arc::new(AtomicBool::new(false));
        let stepper = tokio::spawn(step_down_randomly(node.clone(), step_rng, stop.clone()));
        let drivers: Vec<Driving<'_>> =
            plans.iter().enumerate().map(|(i, (plan, delay))| drive(&client, &task_queue, i, plan.clone(), *delay)).collect();
        let done = futures::future::join_all(drivers).await;
        let workload_time = began.elapsed();
        stop.store(true, Ordering::SeqCst);
        let step_downs = within("the step-down task stops", stepper).await.expect("the step-down task does not panic");
        (done, step_downs, workload_time)
    })
    .await;

    let terms_after: Vec<u64> = (0..shards).map(|s| node.leadership(s).expect("a shard").term).collect();
    eprintln!(
        "ownership_moves: seed {seed}: {WORKFLOWS} workflows done in {workload_time:?}; {} step-downs ({:?} per shard, {} of all shards at once), {} refused; terms {terms_before:?} -> {terms_after:?}",
        step_downs.total(),
        step_downs.done,
        step_downs.all_at_once,
        step_downs.refused.len(),
    );
    for refusal in step_downs.refused.iter().take(5) {
        eprintln!("ownership_moves: refused step-down: {refusal}");
    }

    let mut slowest: Vec<&Done> = done.iter().collect();
    slowest.sort_by_key(|d| std::cmp::Reverse(d.took));
    for d in slowest.iter().take(3) {
        eprintln!("ownership_moves: slowest: workflow {} {} ({}) took {:?}", d.index, d.workflow_id, d.plan.kind(), d.took);
    }
    for d in done.iter().filter(|d| d.gave_up > 0) {
        eprintln!(
            "ownership_moves: note: workflow {} {} ({}): get_result gave up on Unavailable {} times (asked again), took {:?}",
            d.index,
            d.workflow_id,
            d.plan.kind(),
            d.gave_up,
            d.took
        );
    }

    // The hook really moved ownership, many times, on every shard.
    assert!(step_downs.total() >= MIN_STEP_DOWNS, "seed {seed}: only {} step-downs while the workflows ran", step_downs.total());
    for shard in 0..shards {
        let n = step_downs.done.get(&shard).copied().unwrap_or(0);
        assert!(n > 0, "seed {seed}: shard {shard} was never stepped down");
        let moved = terms_after[shard as usize] - terms_before[shard as usize];
        assert!(moved >= n as u64, "seed {seed}: shard {shard} was stepped down {n} times but its term moved by {moved}");
    }

    // Every workflow: its result, its runs' histories, its children, its attempts.
    let mut findings = Findings::default();
    for d in &done {
        check_workflow(&client, d, &seen, &mut findings).await;
    }
    let activities: usize = done.iter().map(|d| d.plan.planned_failures().len()).sum();
    eprintln!(
        "ownership_moves: seed {seed}: {activities} activities; {} problems, {} lost work; checks took {:?}",
        findings.problems.len(),
        findings.lost.len(),
        began.elapsed() - workload_time
    );
    for lost in &findings.lost {
        eprintln!("ownership_moves: lost work: {lost}");
    }
    let problems = &findings.problems;
    assert!(problems.is_empty(), "seed {seed}: {} problems:\n{}", problems.len(), problems.join("\n"));
    let lost = &findings.lost;
    assert!(lost.is_empty(), "seed {seed}: work lost (recovered only by timeouts):\n{}", lost.join("\n"));
}

/// Exactly-once and well-formed histories, and no work lost: no workflow task may time
/// out (the worker answers every task it gets at once) and every activity must succeed
/// on the attempt after its planned failures, each attempt run once by the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_complete_exactly_once_and_no_work_is_lost_while_shard_owners_keep_stepping_down() {
    run_scenario().await;
}
