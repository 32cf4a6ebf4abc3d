//! Clients: each owns a few runs and proposes transitions to whichever node it
//! thinks leads the run's shard (following `NotLeader` hints): create runs, append
//! events with consecutive ids (with or without a fenced `SetState`), set state at
//! the version it believes, set state from a stale version on purpose, and signal
//! (an unfenced `Enqueue`, so a transition applied twice would show twice).
//!
//! Every acknowledged transition (`Applied::Done`) goes to the [`Ledger`] the checks
//! read. An outcome that may or may not have applied (timeout, stopped shard) makes
//! the client forget what it believed about the run and read it again from a
//! serving leader before its next write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hourglass_raft::{Node, RaftError};
use hourglass_storage::records::ShardId;
use hourglass_storage::state::{Applied, Op, QueueKey, QueueKind, RunKey, Transition};
use parking_lot::Mutex;

use super::cluster::NODE_IDS;
use super::disk::Activity;
use super::net::SimNet;
use super::rng::SimRng;

/// Transition times are this plus simulated time (the state machine reads no clock).
const EPOCH_MS: i64 = 1_800_000_000_000;
const PROPOSE_TIMEOUT_MS: u64 = 1_500;
const ATTEMPTS_MAX: u32 = 8;
const RUNS_PER_CLIENT_MAX: usize = 5;

/// One acknowledged transition.
#[derive(Debug, Clone)]
pub struct Acked {
    pub shard: ShardId,
    pub via_node: u64,
    pub at_ms: u64,
    pub ops: Vec<Op>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct WorkStats {
    pub proposals: u64,
    pub done: u64,
    pub rejected: u64,
    pub refused: u64,
    pub ambiguous: u64,
    /// Ambiguous because no answer came within `PROPOSE_TIMEOUT_MS`.
    pub timeouts: u64,
    pub resyncs: u64,
}

#[derive(Default)]
pub struct Ledger {
    pub acked: Vec<Acked>,
    pub stats: WorkStats,
}

/// What a proposal's outcome tells the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Committed and rejected by the state machine: nothing changed.
    Rejected,
    /// Certainly not applied (no leader found, queue full).
    Refused,
    /// May or may not apply (timed out, shard stopped, node crashed).
    Ambiguous,
    /// Ambiguous: no answer in time (the node may have lost the entry silently).
    TimedOut,
}

/// What a client needs to reach the cluster.
#[derive(Clone)]
pub struct Reach {
    pub net: Arc<SimNet>,
    pub activity: Arc<Activity>,
    pub start: tokio::time::Instant,
}

impl Reach {
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Proposes `t` to `shard`, following leader hints, starting at `*guess`.
    pub async fn propose(&self, rng: &mut SimRng, guess: &mut u64, shard: ShardId, t: &Transition) -> (Outcome, u64) {
        for _ in 0..ATTEMPTS_MAX {
            let target = *guess;
            let Some(node) = self.net.node(target) else {
                *guess = next_node(target);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            self.activity.bump();
            let answer = tokio::time::timeout(Duration::from_millis(PROPOSE_TIMEOUT_MS), propose_on(&node, rng, shard, t)).await;
            self.activity.bump();
            match answer {
                Err(_elapsed) => return (Outcome::TimedOut, target),
                Ok(Ok(Applied::Done { .. } | Applied::Duplicate { .. })) => return (Outcome::Done, target),
                Ok(Err(RaftError::Rejected(_))) => return (Outcome::Rejected, target),
                Ok(Err(RaftError::NotLeader { leader, .. })) => {
                    *guess = leader.filter(|l| *l != target).unwrap_or_else(|| next_node(target));
                    tokio::time::sleep(Duration::from_millis(rng.between(5, 30))).await;
                }
                Ok(Err(RaftError::Overloaded { .. })) => tokio::time::sleep(Duration::from_millis(20)).await,
                Ok(Err(_stopped_or_storage)) => {
                    *guess = next_node(target);
                    return (Outcome::Ambiguous, target);
                }
            }
        }
        (Outcome::Refused, *guess)
    }
}

/// Sometimes fenced by term (as a shard owner proposes), when the node serves.
async fn propose_on(node: &Node, rng: &mut SimRng, shard: ShardId, t: &Transition) -> Result<Applied, RaftError> {
    let leadership = node.leadership(shard)?;
    if leadership.serving && rng.chance(300) {
        node.propose_in_term(shard, leadership.term, t).await
    } else {
        node.propose(shard, t).await
    }
}

fn next_node(id: u64) -> u64 {
    id % NODE_IDS.len() as u64 + 1
}

/// What the client believes about one of its runs; `None` until read again.
#[derive(Debug, Clone, Copy)]
struct Belief {
    next_event_id: u64,
    state_version: u64,
}

struct OwnRun {
    key: RunKey,
    shard: ShardId,
    belief: Option<Belief>,
}

pub struct Client {
    pub id: u64,
    reach: Reach,
    rng: SimRng,
    shard_count: u32,
    runs: Vec<OwnRun>,
    /// Leader guess per shard.
    guesses: Vec<u64>,
    created: u64,
    next_tag: u64,
    ledger: Arc<Mutex<Ledger>>,
}

/// The queue signals of `shard` go to.
pub fn signal_queue(shard: ShardId) -> QueueKey {
    QueueKey { namespace: "sim".into(), name: format!("signals-{shard}"), kind: QueueKind::Workflow }
}

/// `bytes` followed by `padding_bytes` dots (history is most of a log's bytes).
fn padded(bytes: Bytes, padding_bytes: usize) -> Bytes {
    let mut out = bytes.to_vec();
    out.resize(out.len() + padding_bytes, b'.');
    Bytes::from(out)
}

/// An event's bytes name its run, its id and the proposal that wrote it, so a
/// history read from the wrong log record cannot pass for the right one.
pub fn event_bytes(run: &RunKey, event_id: u64, tag: &str) -> Bytes {
    Bytes::from(format!("{}/{}|{event_id}|{tag}", run.workflow_id, run.run_id))
}

impl Client {
    pub fn new(id: u64, seed: u64, shard_count: u32, reach: Reach, ledger: Arc<Mutex<Ledger>>) -> Self {
        let mut rng = SimRng::derive(seed, &[3, id]);
        let guesses = (0..shard_count).map(|_| rng.pick(&NODE_IDS)).collect();
        Self { id, reach, rng, shard_count, runs: Vec::new(), guesses, created: 0, next_tag: 0, ledger }
    }

    pub async fn run(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(self.rng.between(1, 15))).await;
            self.act().await;
        }
    }

    async fn act(&mut self) {
        if self.runs.is_empty() || (self.runs.len() < RUNS_PER_CLIENT_MAX && self.rng.chance(150)) {
            return self.create().await;
        }
        let index = self.rng.below(self.runs.len() as u64) as usize;
        let Some(belief) = self.runs[index].belief else { return self.resync(index).await };
        match self.rng.below(10) {
            0..=4 => self.append(index, belief).await,
            5..=6 => self.set_state(index, belief.state_version).await,
            7 => self.set_state(index, belief.state_version.saturating_sub(1).max(1)).await,
            8 if self.rng.chance(300) => self.start_again(index).await,
            _ => self.signal(index).await,
        }
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("c{}-{}", self.id, self.next_tag)
    }

    async fn create(&mut self) {
        self.created += 1;
        let key = RunKey { namespace: "sim".into(), workflow_id: format!("c{}-w{}", self.id, self.created), run_id: "r1".into() };
        let shard = self.rng.below(u64::from(self.shard_count)) as ShardId;
        let tag = self.tag();
        let ops = vec![Op::CreateRun { run: key.clone(), state: Bytes::from(format!("init {tag}")) }];
        let belief = Some(Belief { next_event_id: 1, state_version: 1 });
        match self.submit(shard, ops).await {
            Outcome::Done => self.runs.push(OwnRun { key, shard, belief }),
            Outcome::Ambiguous | Outcome::TimedOut => self.runs.push(OwnRun { key, shard, belief: None }),
            Outcome::Rejected | Outcome::Refused => {}
        }
    }

    /// Starts a second run of a workflow whose run is open: must be rejected (the
    /// checks look for two open runs of one workflow).
    async fn start_again(&mut self, index: usize) {
        let tag = self.tag();
        let mut key = self.runs[index].key.clone();
        key.run_id = format!("again-{tag}");
        let ops = vec![Op::CreateRun { run: key, state: Bytes::from(format!("init {tag}")) }];
        self.submit(self.runs[index].shard, ops).await;
    }

    async fn append(&mut self, index: usize, belief: Belief) {
        let tag = self.tag();
        let key = self.runs[index].key.clone();
        let count = self.rng.between(1, 3);
        let padding_bytes = self.rng.below(200) as usize;
        let events = (0..count).map(|i| padded(event_bytes(&key, belief.next_event_id + i, &tag), padding_bytes)).collect();
        let mut ops = vec![Op::AppendEvents { run: key.clone(), first_event_id: belief.next_event_id, events }];
        let with_state = self.rng.chance(500);
        if with_state {
            ops.push(Op::SetState { run: key, expected_version: belief.state_version, state: Bytes::from(format!("state {tag}")) });
        }
        let outcome = self.submit(self.runs[index].shard, ops).await;
        let next = Belief { next_event_id: belief.next_event_id + count, state_version: belief.state_version + u64::from(with_state) };
        self.believe(index, outcome, next);
    }

    async fn set_state(&mut self, index: usize, expected_version: u64) {
        let tag = self.tag();
        let key = self.runs[index].key.clone();
        let ops = vec![Op::SetState { run: key, expected_version, state: Bytes::from(format!("state {tag}")) }];
        let outcome = self.submit(self.runs[index].shard, ops).await;
        let belief = self.runs[index].belief;
        let next = belief.map(|b| Belief { state_version: expected_version + 1, ..b });
        match next {
            Some(next) => self.believe(index, outcome, next),
            None => self.runs[index].belief = None,
        }
    }

    async fn signal(&mut self, index: usize) {
        let tag = self.tag();
        let shard = self.runs[index].shard;
        let ops = vec![Op::Enqueue { queue: signal_queue(shard), run: self.runs[index].key.clone(), task: Bytes::from(tag) }];
        let outcome = self.submit(shard, ops).await;
        if let Some(belief) = self.runs[index].belief {
            self.believe(index, outcome, belief);
        }
    }

    /// Updates the belief after a write that would make it `next` if it applied.
    fn believe(&mut self, index: usize, outcome: Outcome, next: Belief) {
        match outcome {
            Outcome::Done => self.runs[index].belief = Some(next),
            Outcome::Refused => {}
            Outcome::Rejected | Outcome::Ambiguous | Outcome::TimedOut => self.runs[index].belief = None,
        }
    }

    async fn submit(&mut self, shard: ShardId, ops: Vec<Op>) -> Outcome {
        let t = Transition { time_ms: EPOCH_MS + self.reach.now_ms() as i64, dedupe: None, ops };
        let mut guess = self.guesses[shard as usize];
        let (outcome, via_node) = self.reach.propose(&mut self.rng, &mut guess, shard, &t).await;
        self.guesses[shard as usize] = guess;
        let mut ledger = self.ledger.lock();
        ledger.stats.proposals += 1;
        match outcome {
            Outcome::Done => {
                ledger.stats.done += 1;
                ledger.acked.push(Acked { shard, via_node, at_ms: self.reach.now_ms(), ops: t.ops });
            }
            Outcome::Rejected => ledger.stats.rejected += 1,
            Outcome::Refused => ledger.stats.refused += 1,
            Outcome::Ambiguous => ledger.stats.ambiguous += 1,
            Outcome::TimedOut => ledger.stats.timeouts += 1,
        }
        outcome
    }

    /// Reads the run again from a node that serves as the shard's leader.
    async fn resync(&mut self, index: usize) {
        self.ledger.lock().stats.resyncs += 1;
        let (key, shard) = (self.runs[index].key.clone(), self.runs[index].shard);
        let Some(found) = read_from_leader(&self.reach.net, shard, &key) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        };
        match found {
            Some(belief) => self.runs[index].belief = Some(belief),
            None => {
                self.runs.remove(index);
            }
        }
    }
}

/// `Some(None)`: a serving leader has no such run.
fn read_from_leader(net: &SimNet, shard: ShardId, key: &RunKey) -> Option<Option<Belief>> {
    NODE_IDS.iter().find_map(|id| {
        let node = net.node(*id)?;
        let leadership = node.leadership(shard).ok()?;
        if !(leadership.serving && leadership.leader_id == *id) {
            return None;
        }
        node.read(shard, |s| s.run(key).map(|r| Belief { next_event_id: r.next_event_id(), state_version: r.state_version() })).ok()
    })
}
