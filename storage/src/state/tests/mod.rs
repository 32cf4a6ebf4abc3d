//! Unit tests of the state machine: one file per concern, sharing a harness that
//! checks every rejection leaves the state untouched.

mod codec;
mod dedupe;
mod fencing;
mod index;
mod queues;
mod rejections;
mod relocate;
mod retention;
mod runs;
mod snapshot;

use bytes::Bytes;

use super::*;
use crate::log::LogPosition;

pub(super) fn run(workflow_id: &str, run_id: &str) -> RunKey {
    RunKey { namespace: "ns".into(), workflow_id: workflow_id.into(), run_id: run_id.into() }
}

pub(super) fn wf(workflow_id: &str) -> WorkflowKey {
    WorkflowKey { namespace: "ns".into(), workflow_id: workflow_id.into() }
}

pub(super) fn queue(name: &str) -> QueueKey {
    QueueKey { namespace: "ns".into(), name: name.into(), kind: QueueKind::Activity }
}

pub(super) fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

pub(super) fn events(n: usize) -> Vec<Bytes> {
    (0..n).map(|i| Bytes::from(format!("event {i}"))).collect()
}

pub(super) fn create(r: &RunKey) -> Op {
    Op::CreateRun { run: r.clone(), state: b("s0") }
}

pub(super) fn append(r: &RunKey, first_event_id: u64, n: usize) -> Op {
    Op::AppendEvents { run: r.clone(), first_event_id, events: events(n) }
}

pub(super) fn set_state(r: &RunKey, expected_version: u64, state: &'static str) -> Op {
    Op::SetState { run: r.clone(), expected_version, state: b(state) }
}

pub(super) fn close(r: &RunKey) -> Op {
    Op::CloseRun { run: r.clone() }
}

pub(super) fn enqueue(q: &QueueKey, r: &RunKey) -> Op {
    Op::Enqueue { queue: q.clone(), run: r.clone(), task: b("task") }
}

pub(super) fn add_timer(r: &RunKey, due_ms: i64) -> Op {
    Op::AddTimer { run: r.clone(), due_ms, payload: b("timer") }
}

pub(super) fn dedupe(request_id: &str, result: &'static str) -> Option<RequestDedupe> {
    Some(RequestDedupe { namespace: "ns".into(), request_id: request_id.into(), result: b(result) })
}

pub(super) fn done(task_ids: &[u64], timer_ids: &[u64]) -> Applied {
    Applied::Done { task_ids: task_ids.to_vec(), timer_ids: timer_ids.to_vec() }
}

/// A state plus the next Raft index; each apply's record sits at position `index`.
pub(super) struct Harness {
    pub state: ShardState,
    pub index: u64,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(ShardConfig::default())
    }

    pub fn with(config: ShardConfig) -> Self {
        Self { state: ShardState::new(7, config), index: 0 }
    }

    pub fn pos(index: u64) -> LogPosition {
        LogPosition { segment_id: index / 4, offset: index % 4 * 100 }
    }

    pub fn apply_t(&mut self, t: &Transition) -> Result<Applied, ApplyError> {
        self.index += 1;
        let out = self.state.apply(self.index, Self::pos(self.index), t);
        self.state.verify().expect("invariants hold after every apply");
        out
    }

    pub fn apply(&mut self, time_ms: i64, ops: Vec<Op>) -> Result<Applied, ApplyError> {
        self.apply_t(&Transition { time_ms, dedupe: None, ops })
    }

    /// Applies `ops`, which must succeed.
    pub fn ok(&mut self, time_ms: i64, ops: Vec<Op>) -> Applied {
        self.apply(time_ms, ops).expect("transition applies")
    }

    /// Applies a transition that must be rejected: returns the failing op and why,
    /// after checking nothing but the applied index changed.
    pub fn reject_t(&mut self, t: &Transition) -> (usize, OpError) {
        let mut before = self.state.clone();
        let err = self.apply_t(t).expect_err("transition must be rejected");
        before.applied_index = self.index;
        assert_eq!(self.state, before, "a rejection changed the state");
        assert_eq!(self.state.snapshot(), before.snapshot());
        match err {
            ApplyError::Rejected { op, reason } => (op, reason),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    pub fn reject(&mut self, time_ms: i64, ops: Vec<Op>) -> (usize, OpError) {
        self.reject_t(&Transition { time_ms, dedupe: None, ops })
    }
}
