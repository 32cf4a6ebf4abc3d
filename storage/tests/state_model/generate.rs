//! Random steps, and turning abstract ops into concrete ones against the model.

use super::model::Model;
use super::*;

/// An op before it meets a state. `Live` picks and `first: None` resolve to what
/// the model makes valid (mostly), so that many transitions succeed. A `SetState`
/// names the run's state version shifted by `skew`: 0 is the writer that read the
/// latest state, negative a stale writer (it read an earlier version), positive a
/// version the run never had. `LegacySetState` is version 1's unchecked write.
#[derive(Debug, Clone)]
pub(crate) enum AOp {
    Create { run: RunPick, state: u8 },
    Append { run: RunPick, first: Option<u64>, n: u8 },
    SetState { run: RunPick, state: u8, skew: i8 },
    LegacySetState { run: RunPick, state: u8 },
    Close { run: RunPick },
    Enqueue { queue: usize, run: RunPick, payload: u8 },
    Ack { queue: usize, task: Pick, same_queue: bool },
    AddTimer { run: RunPick, due: i64 },
    RemoveTimer { timer: Pick },
    Delete { run: RunPick },
}

/// A task or timer: the i-th existing one, or a raw id.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pick {
    Live(usize),
    Raw(u64),
}

/// A run: one fit for the op (an existing run, or for a create a free key) when
/// there is one, or a raw key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RunPick {
    Live(usize),
    Raw(usize, usize),
}

#[derive(Debug, Clone)]
pub(crate) enum Step {
    Apply { gap: u64, dt: i64, dedupe: Option<(usize, u8)>, ops: Vec<AOp> },
    Skip { gap: u64 },
    Relocate { live: Option<usize> },
    Restore,
}

pub(crate) fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![12 => any::<usize>().prop_map(Pick::Live), 1 => (0..8u64).prop_map(Pick::Raw)]
}

pub(crate) fn run_pick() -> impl Strategy<Value = RunPick> {
    prop_oneof![
        12 => any::<usize>().prop_map(RunPick::Live),
        1 => (0..WORKFLOWS, 0..RUN_IDS).prop_map(|(w, r)| RunPick::Raw(w, r)),
    ]
}

pub(crate) fn aop() -> impl Strategy<Value = AOp> {
    prop_oneof![
        3 => (run_pick(), any::<u8>()).prop_map(|(run, state)| AOp::Create { run, state }),
        6 => (run_pick(), prop::option::weighted(0.05, 0..12u64), prop_oneof![1 => Just(0u8), 20 => 1..4u8])
            .prop_map(|(run, first, n)| AOp::Append { run, first, n }),
        3 => (run_pick(), any::<u8>(), prop_oneof![6 => Just(0i8), 3 => -3..0i8, 1 => 1..3i8])
            .prop_map(|(run, state, skew)| AOp::SetState { run, state, skew }),
        1 => (run_pick(), any::<u8>()).prop_map(|(run, state)| AOp::LegacySetState { run, state }),
        2 => run_pick().prop_map(|run| AOp::Close { run }),
        4 => (0..QUEUES, run_pick(), any::<u8>()).prop_map(|(queue, run, payload)| AOp::Enqueue { queue, run, payload }),
        2 => (0..QUEUES, pick(), prop::bool::weighted(0.9)).prop_map(|(queue, task, same_queue)| AOp::Ack { queue, task, same_queue }),
        3 => (run_pick(), -20..200i64).prop_map(|(run, due)| AOp::AddTimer { run, due }),
        1 => pick().prop_map(|timer| AOp::RemoveTimer { timer }),
        1 => run_pick().prop_map(|run| AOp::Delete { run }),
    ]
}

pub(crate) fn step() -> impl Strategy<Value = Step> {
    let dedupe = prop::option::weighted(0.3, (0..REQUESTS, any::<u8>()));
    prop_oneof![
        12 => (0..3u64, -5..30i64, dedupe, prop::collection::vec(aop(), 0..6))
            .prop_map(|(gap, dt, dedupe, ops)| Step::Apply { gap, dt, dedupe, ops }),
        1 => (0..3u64).prop_map(|gap| Step::Skip { gap }),
        1 => prop::option::weighted(0.8, any::<usize>()).prop_map(|live| Step::Relocate { live }),
        1 => Just(Step::Restore),
    ]
}

impl Model {
    /// Turns abstract ops into concrete ones, picking ids against a scratch copy
    /// that applies them one by one (so later ops can build on earlier ones).
    pub(crate) fn concretize(&self, ops: &[AOp], pos: LogPosition, time: i64) -> Vec<Op> {
        let mut scratch = self.clone();
        let mut out = Vec::with_capacity(ops.len());
        for a in ops {
            let op = scratch.concrete(a);
            let _ = scratch.op(&op, pos, time, &mut vec![], &mut vec![]);
            out.push(op);
        }
        out
    }

    /// The run `pick` names: among the keys `fit` accepts if it is `Live`.
    pub(crate) fn pick_run(&self, pick: RunPick, fit: impl Fn(&RunKey) -> bool) -> RunKey {
        let fits: Vec<RunKey> = all_runs().filter(|k| fit(k)).collect();
        match pick {
            RunPick::Live(i) if !fits.is_empty() => fits[i % fits.len()].clone(),
            RunPick::Live(i) => run_key((i % WORKFLOWS, i / WORKFLOWS % RUN_IDS)),
            RunPick::Raw(w, r) => run_key((w, r)),
        }
    }

    pub(crate) fn free_key(&self, key: &RunKey) -> bool {
        let current = self.current.iter().find(|(w, _)| *w == key.workflow());
        let busy = current.is_some_and(|(_, r)| self.run(r).unwrap().close.is_none());
        !busy && self.run(key).is_none()
    }

    pub(crate) fn is_open(&self, key: &RunKey) -> bool {
        self.run(key).is_some_and(|r| r.close.is_none())
    }

    pub(crate) fn concrete(&self, a: &AOp) -> Op {
        let exists = |k: &RunKey| self.run(k).is_some();
        match a.clone() {
            AOp::Create { run, state } => Op::CreateRun { run: self.pick_run(run, |k| self.free_key(k)), state: payload("s", state) },
            AOp::Append { run, first, n } => {
                let key = self.pick_run(run, |k| self.is_open(k));
                let first = first.unwrap_or_else(|| self.run(&key).map_or(1, |r| r.next));
                let events = (0..u64::from(n)).map(|i| Bytes::from(format!("e{}", first + i))).collect();
                Op::AppendEvents { run: key, first_event_id: first, events }
            }
            AOp::SetState { run, state, skew } => {
                let run = self.pick_run(run, exists);
                let version = self.run(&run).map_or(1, |r| r.version);
                Op::SetState { run, expected_version: version.saturating_add_signed(i64::from(skew)), state: payload("s", state) }
            }
            AOp::LegacySetState { run, state } => legacy_set_state(&self.pick_run(run, exists), &payload("l", state)),
            AOp::Close { run } => Op::CloseRun { run: self.pick_run(run, |k| self.is_open(k)) },
            AOp::Enqueue { queue, run, payload: p } => {
                Op::Enqueue { queue: queue_key(queue), run: self.pick_run(run, exists), task: payload("t", p) }
            }
            AOp::Ack { queue, task, same_queue } => match (task, self.tasks.len()) {
                (Pick::Live(i), n) if n > 0 => {
                    let t = &self.tasks[i % n];
                    Op::Ack { queue: if same_queue { t.queue.clone() } else { queue_key(queue) }, task_id: t.id }
                }
                (Pick::Live(i), _) => Op::Ack { queue: queue_key(queue), task_id: i as u64 % 8 },
                (Pick::Raw(id), _) => Op::Ack { queue: queue_key(queue), task_id: id },
            },
            AOp::AddTimer { run, due } => Op::AddTimer { run: self.pick_run(run, exists), due_ms: due, payload: payload("m", 0) },
            AOp::RemoveTimer { timer } => {
                let timer_id = match (timer, self.timers.len()) {
                    (Pick::Live(i), n) if n > 0 => self.timers[i % n].id,
                    (Pick::Live(i), _) => i as u64 % 8,
                    (Pick::Raw(id), _) => id,
                };
                Op::RemoveTimer { timer_id }
            }
            AOp::Delete { run } => Op::DeleteRun { run: self.pick_run(run, |k| !self.is_open(k) && exists(k)) },
        }
    }
}
