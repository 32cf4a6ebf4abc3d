//! Runs one seed: starts the cluster and the clients, moves the clock while firing
//! the fault schedule, then heals everything, waits for the replicas to converge and
//! checks them against what was acknowledged.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hourglass_raft::RaftError;
use hourglass_storage::records::ShardId;
use hourglass_storage::state::{Op, RunKey, Transition};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use super::checks::{self, ReplicaView};
use super::clock::SimClock;
use super::cluster::{Cluster, Health, NODE_IDS};
use super::disk::Activity;
use super::faults::Fault;
use super::net::SimNet;
use super::plan::Plan;
use super::rng::SimRng;
use super::workload::{Client, Ledger, Outcome, Reach};

/// How long clients get to finish their last proposal after the workload ends.
const DRAIN_MS_MAX: u64 = 3_000;
/// How long the healed cluster gets to converge.
const CONVERGE_MS_MAX: u64 = 15_000;
/// How long a failed node's shards get to notice before they are checked.
const FAILED_SYNC_PROBE_MS: u64 = 300;

/// A deliberate defect, so a test can show the checks fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    None,
    /// Record an acknowledgement for a transition that was never proposed.
    ForgeAcknowledgement,
}

pub struct SeedReport {
    pub seed: u64,
    pub summary: String,
    /// The plan and the event log.
    pub details: String,
    /// The plan, the event log and the violations, when the seed failed.
    pub failure: Option<String>,
}

thread_local! {
    static PANICS: Cell<u64> = const { Cell::new(0) };
}

/// Counts panics of this thread (the current-thread runtime runs every driver
/// task on it), so a panicking shard driver fails the seed.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A crashed node's tasks live on (the process is simulated) over a halted
            // disk; raft-rs panics when a log read fails there. Not a finding.
            if !panic_text(info).contains(HALTED_DISK) {
                PANICS.with(|p| p.set(p.get() + 1));
            }
            default(info);
        }));
    });
}

/// What every call on a crashed `SimDisk` fails with.
const HALTED_DISK: &str = "simulated disk halted by a crash";

fn panic_text(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

pub fn run_seed(seed: u64, tamper: Tamper) -> SeedReport {
    count_panics();
    let plan = Plan::from_seed(seed);
    let started = Instant::now();
    let panics_before = PANICS.with(Cell::get);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("tokio runtime");
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(simulate(&plan, tamper))));
    drop(runtime);
    let panics = PANICS.with(Cell::get) - panics_before;
    let (summary, mut violations, events) = match outcome {
        Ok(done) => done,
        Err(_) => ("panicked".to_string(), vec!["the simulation panicked (see stderr)".to_string()], Vec::new()),
    };
    if panics > 0 {
        violations.push(format!("{panics} panic(s) during the run (a shard driver or client; see stderr)"));
    }
    let summary = format!("seed {seed}: {summary}; {} ms real", started.elapsed().as_millis());
    let details = format!("{plan}\nevents:\n{}", events.join("\n"));
    let failure = (!violations.is_empty()).then(|| {
        format!(
            "SIMULATION FAILED for seed {seed} (replay: HOURGLASS_SIM_SEED={seed} cargo test -p hourglass-raft --test sim_cluster -- --nocapture)\n{details}\nviolations:\n{}",
            violations.iter().map(|v| format!("  - seed {seed}: {v}")).collect::<Vec<_>>().join("\n")
        )
    });
    SeedReport { seed, summary, details, failure }
}

async fn simulate(plan: &Plan, tamper: Tamper) -> (String, Vec<String>, Vec<String>) {
    let activity = Arc::new(Activity::default());
    let clock = SimClock::start(activity.clone());
    let net = Arc::new(SimNet::new(plan.seed, plan.net, activity.clone()));
    let cluster = match Cluster::start(plan.seed, plan.shard_count, net.clone(), activity.clone()).await {
        Ok(cluster) => cluster,
        Err(e) => return ("did not start".into(), vec![e], Vec::new()),
    };
    let reach = Reach { net: net.clone(), activity, start: tokio::time::Instant::now() };
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut director = Director { plan, clock, net, cluster, reach, ledger, events: Vec::new(), violations: Vec::new() };
    let summary = director.run(tamper).await;
    director.cluster.stop_all().await;
    (summary, director.violations, director.events)
}

struct Director<'a> {
    plan: &'a Plan,
    clock: SimClock,
    net: Arc<SimNet>,
    cluster: Cluster,
    reach: Reach,
    ledger: Arc<Mutex<Ledger>>,
    /// What happened when, for the failure report.
    events: Vec<String>,
    violations: Vec<String>,
}

impl Director<'_> {
    async fn run(&mut self, tamper: Tamper) -> String {
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<JoinHandle<()>> = (1..=self.plan.clients)
            .map(|id| {
                let client = Client::new(id, self.plan.seed, self.plan.shard_count, self.reach.clone(), self.ledger.clone());
                tokio::spawn(client.run(stop.clone()))
            })
            .collect();
        self.run_schedule().await;
        stop.store(true, Ordering::SeqCst);
        self.note("workload over; draining clients".into());
        if !self.step_until(DRAIN_MS_MAX, |_| clients.iter().all(|c| c.is_finished())).await {
            self.violations.push(format!("clients still waiting {DRAIN_MS_MAX} ms after the workload ended"));
        }
        if tamper == Tamper::ForgeAcknowledgement {
            forge_acknowledgement(&self.ledger);
        }
        self.heal_everything().await;
        match self.converge().await {
            Ok(replicas) => {
                let found = checks::check(&replicas, &self.ledger.lock());
                self.violations.extend(found);
            }
            Err(e) => self.violations.push(e),
        }
        self.summary()
    }

    fn summary(&self) -> String {
        let w = self.ledger.lock().stats;
        let n = self.net.stats();
        format!(
            "{} ms simulated; proposals {} (done {}, rejected {}, refused {}, ambiguous {}, timed out {}, resyncs {}); messages sent {} delivered {} dropped {} duplicated {} cut off {}",
            self.clock.now_ms(),
            w.proposals,
            w.done,
            w.rejected,
            w.refused,
            w.ambiguous,
            w.timeouts,
            w.resyncs,
            n.sent,
            n.delivered,
            n.dropped,
            n.duplicated,
            n.cut_off
        )
    }

    fn note(&mut self, text: String) {
        self.events.push(format!("  {:>6} ms  {text}", self.clock.now_ms()));
    }

    async fn step(&mut self) {
        self.clock.step().await;
        self.net.deliver_due(self.clock.now_ms());
    }

    /// Steps until `done` holds (checked every simulated millisecond) or `max_ms`
    /// passed; returns whether `done` held.
    async fn step_until(&mut self, max_ms: u64, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let until_ms = self.clock.now_ms() + max_ms;
        while self.clock.now_ms() < until_ms {
            if done(self) {
                return true;
            }
            self.step().await;
        }
        done(self)
    }

    async fn run_schedule(&mut self) {
        let schedule = self.plan.schedule.clone();
        let mut next = 0;
        while self.clock.now_ms() < self.plan.workload_ms {
            while let Some(due) = schedule.get(next).filter(|s| s.at_ms <= self.clock.now_ms()) {
                self.fire(due.fault).await;
                next += 1;
            }
            self.step().await;
        }
    }

    async fn fire(&mut self, fault: Fault) {
        let now_ms = self.clock.now_ms();
        match fault {
            Fault::Isolate(node) => self.net.isolate(node, &NODE_IDS),
            Fault::IsolateLeader(shard) => match self.cluster.leader_of(shard) {
                Some(node) => {
                    self.net.isolate(node, &NODE_IDS);
                    return self.note(format!("{fault}: node {node}"));
                }
                None => return self.note(format!("{fault}: no leader, skipped")),
            },
            Fault::Cut(a, b) => self.net.cut(a, b),
            Fault::Heal => self.net.heal(),
            Fault::Crash(node) => self.cluster.crash(node),
            Fault::CrashLeader(shard) => match self.cluster.leader_of(shard) {
                Some(node) => {
                    self.cluster.crash(node);
                    return self.note(format!("{fault}: node {node}"));
                }
                None => return self.note(format!("{fault}: no leader, skipped")),
            },
            Fault::RestartDown => return self.restart_down().await,
            Fault::FailSync(node) => self.cluster.fail_next_sync(node, now_ms),
            Fault::TransferLeader(shard, to) => self.ask_leader(shard, move |node| async move { node.transfer_leader(shard, to).await }),
            Fault::StepDown(shard) => self.ask_leader(shard, move |node| async move { node.step_down(shard).await }),
            Fault::StallDisk(node) => self.cluster.stall_disk(node),
            Fault::StallLeaderDisk(shard) => match self.cluster.leader_of(shard) {
                Some(node) => {
                    self.cluster.stall_disk(node);
                    return self.note(format!("{fault}: node {node}"));
                }
                None => return self.note(format!("{fault}: no leader, skipped")),
            },
            Fault::StallEveryDisk => NODE_IDS.iter().for_each(|node| self.cluster.stall_disk(*node)),
            Fault::CrashStalled => {
                let stalled = self.cluster.stalled();
                stalled.iter().for_each(|node| self.cluster.crash(*node));
                return self.note(format!("{fault}: {stalled:?}"));
            }
            Fault::ReleaseDisks => self.cluster.release_disks(),
        }
        self.note(fault.to_string());
    }

    /// Runs `ask` against the shard's current leader in the background.
    fn ask_leader<F, Fut>(&mut self, shard: ShardId, ask: F)
    where
        F: FnOnce(hourglass_raft::Node) -> Fut,
        Fut: std::future::Future<Output = Result<(), RaftError>> + Send + 'static,
    {
        if let Some(node) = self.cluster.leader_of(shard).and_then(|id| self.cluster.node(id)) {
            let request = ask(node);
            tokio::spawn(async move {
                let _ = request.await;
            });
        }
    }

    async fn restart_down(&mut self) {
        for id in self.cluster.unhealthy() {
            if let Health::FsyncFailed { since_ms } = self.cluster.health(id) {
                self.check_failed_node(id, since_ms).await;
            }
            match self.cluster.restart(id).await {
                Ok(()) => {
                    let report = self.cluster.node(id).map(|n| format!("{:?}", n.recovery_report())).unwrap_or_default();
                    self.note(format!("restarted node {id}: {report}"));
                }
                Err(e) => self.violations.push(format!("restart of node {id}: {e}")),
            }
        }
    }

    /// A node whose fsync failed must stop serving: its log is failed and every
    /// shard is stopped (after traffic on each shard reached it), never serving.
    async fn check_failed_node(&mut self, id: u64, since_ms: u64) {
        let probes = self.probe_every_shard(id);
        self.step_until(FAILED_SYNC_PROBE_MS, |_| false).await;
        probes.iter().for_each(JoinHandle::abort);
        let Some(node) = self.cluster.node(id) else { return };
        if node.log().failure().is_none() {
            self.violations.push(format!("node {id}: fsync failure armed at {since_ms} ms, but its log has not failed"));
        }
        for shard in 0..node.shard_count() {
            let still_running = node.transfer_leader(shard, id).await.is_ok();
            let serving = node.leadership(shard).is_ok_and(|l| l.serving);
            if still_running || serving {
                self.violations.push(format!(
                    "node {id} shard {shard}: fsync failed at {since_ms} ms but at {} ms the shard still runs (serving: {serving})",
                    self.clock.now_ms()
                ));
            }
        }
        self.note(format!("node {id}: checked that the fsync failure stopped every shard"));
    }

    /// Proposes an empty transition to every shard through the other nodes, so every
    /// group replicates something to the failed node.
    fn probe_every_shard(&self, failed: u64) -> Vec<JoinHandle<()>> {
        (0..self.cluster.shard_count())
            .map(|shard| {
                let reach = self.reach.clone();
                let mut rng = SimRng::derive(self.plan.seed, &[4, u64::from(shard)]);
                let mut guess = failed % 3 + 1;
                tokio::spawn(async move {
                    let _ = reach.propose(&mut rng, &mut guess, shard, &empty_transition()).await;
                })
            })
            .collect()
    }

    async fn heal_everything(&mut self) {
        self.cluster.release_disks();
        self.net.heal();
        self.net.calm_down();
        self.note("healed every link; network calm (no drops or duplicates)".into());
        self.restart_down().await;
    }

    /// Commits a barrier on every shard, then waits until every replica applied the
    /// same index on every shard, and reads every replica.
    async fn converge(&mut self) -> Result<Vec<ReplicaView>, String> {
        let barriers = self.barriers();
        let committed = self.step_until(CONVERGE_MS_MAX, |_| barriers.iter().all(|b| b.is_finished())).await;
        if !committed {
            return Err(format!("no barrier committed on every shard within {CONVERGE_MS_MAX} ms of healing: {}", self.progress()));
        }
        if !self.step_until(CONVERGE_MS_MAX, |d| d.applied_everywhere().is_some()).await {
            let shards = self.shard_states().await;
            return Err(format!("replicas did not converge within {CONVERGE_MS_MAX} ms of healing: {}; {shards}", self.progress()));
        }
        self.note(format!("converged: {}", self.progress()));
        NODE_IDS.iter().map(|id| self.cluster.node(*id).ok_or(format!("node {id} is down")).and_then(|n| checks::capture(&n))).collect()
    }

    fn barriers(&self) -> Vec<JoinHandle<()>> {
        (0..self.cluster.shard_count())
            .map(|shard| {
                let reach = self.reach.clone();
                let mut rng = SimRng::derive(self.plan.seed, &[5, u64::from(shard)]);
                let mut guess = 1;
                tokio::spawn(async move {
                    while reach.propose(&mut rng, &mut guess, shard, &empty_transition()).await.0 != Outcome::Done {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                })
            })
            .collect()
    }

    /// Per shard, the applied index of every node, if all are equal.
    fn applied_everywhere(&self) -> Option<Vec<u64>> {
        let per_shard = self.applied_indexes();
        per_shard.iter().map(|nodes| nodes.windows(2).all(|w| w[0] == w[1] && w[0].is_some()).then(|| nodes[0]).flatten()).collect()
    }

    fn applied_indexes(&self) -> Vec<Vec<Option<u64>>> {
        (0..self.cluster.shard_count())
            .map(|shard| NODE_IDS.iter().map(|id| self.cluster.node(*id).and_then(|n| n.read(shard, |s| s.applied_index()).ok())).collect())
            .collect()
    }

    /// Per node and shard: leadership, and whether the driver still runs.
    async fn shard_states(&self) -> String {
        let mut out = Vec::new();
        for id in NODE_IDS {
            let Some(node) = self.cluster.node(id) else { continue };
            for shard in 0..node.shard_count() {
                let running = node.transfer_leader(shard, id).await.map_err(|e| e.to_string());
                out.push(format!("node {id} shard {shard}: {:?} driver {running:?}", node.leadership(shard)));
            }
        }
        out.join("; ")
    }

    fn progress(&self) -> String {
        let leaders: Vec<Option<u64>> = (0..self.cluster.shard_count()).map(|s| self.cluster.leader_of(s)).collect();
        format!("applied index per shard per node {:?}, leaders {leaders:?}", self.applied_indexes())
    }
}

fn empty_transition() -> Transition {
    Transition { time_ms: 0, dedupe: None, ops: Vec::new() }
}

fn forge_acknowledgement(ledger: &Mutex<Ledger>) {
    let run = RunKey { namespace: "sim".into(), workflow_id: "forged".into(), run_id: "r1".into() };
    ledger.lock().acked.push(super::workload::Acked {
        shard: 0,
        via_node: 1,
        at_ms: 0,
        ops: vec![Op::CreateRun { run, state: Bytes::from_static(b"never proposed") }],
    });
}
