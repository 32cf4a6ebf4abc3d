//! Byte layout of a [`Transition`] (specified in `docs/format-state.md`).
//!
//! Decoding is zero-copy: event payloads, states and task payloads are slices of
//! the input. Any malformed input is a [`DecodeError`], never a panic.

use bytes::Bytes;

use super::{LegacySetState, Op, QueueKey, QueueKind, RequestDedupe, RunKey, Transition};
use crate::codec::{DecodeError, Decoder, Encoder};

/// First byte of every encoded transition. Version 2 added the fenced `SetState`
/// (tag 9); [`Transition::encode`] always writes version 2.
pub const TRANSITION_VERSION: u8 = 2;
/// The version before fencing: still decoded (entries already in logs replay as
/// they applied), never written. It is version 2 without tag 9.
pub const TRANSITION_VERSION_V1: u8 = 1;

/// Op tags. Never reuse a retired number.
pub(super) mod tag {
    pub const CREATE_RUN: u8 = 1;
    pub const APPEND_EVENTS: u8 = 2;
    /// Version 1's unchecked `SetState` ([`super::Op::LegacySetState`]).
    pub const LEGACY_SET_STATE: u8 = 3;
    pub const CLOSE_RUN: u8 = 4;
    pub const ENQUEUE: u8 = 5;
    pub const ACK: u8 = 6;
    pub const ADD_TIMER: u8 = 7;
    pub const REMOVE_TIMER: u8 = 8;
    /// The fenced `SetState` (version 2 on).
    pub const SET_STATE: u8 = 9;
    /// `DeleteRun` (version 2 on).
    pub const DELETE_RUN: u8 = 10;
}

/// Fewest bytes an encoded op takes (`RemoveTimer`: tag + id).
pub(super) const OP_BYTES_MIN: usize = 9;

impl Transition {
    pub fn encode(&self) -> Bytes {
        let mut e = Encoder::with_capacity(self.encoded_len_hint());
        e.u8(TRANSITION_VERSION).i64(self.time_ms);
        match &self.dedupe {
            None => e.bool(false),
            Some(d) => e.bool(true).str(&d.namespace).str(&d.request_id).bytes(&d.result),
        };
        e.count(self.ops.len());
        for op in &self.ops {
            put_op(&mut e, op);
        }
        e.finish()
    }

    pub fn decode(data: Bytes) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(data);
        let (version, time_ms) = get_version_and_time(&mut d)?;
        let dedupe = match d.bool()? {
            false => None,
            true => Some(RequestDedupe { namespace: d.string()?, request_id: d.string()?, result: d.bytes()? }),
        };
        let n = d.count(OP_BYTES_MIN)?;
        let ops = (0..n).map(|_| get_op(&mut d, version)).collect::<Result<_, _>>()?;
        d.finish()?;
        Ok(Self { time_ms, dedupe, ops })
    }

    /// A close upper estimate of the encoded size, to size the buffer once.
    pub(super) fn encoded_len_hint(&self) -> usize {
        let dedupe = self.dedupe.as_ref().map_or(0, |d| 12 + d.namespace.len() + d.request_id.len() + d.result.len());
        let ops: usize = self.ops.iter().map(op_len_hint).sum();
        14 + dedupe + ops
    }
}

fn op_len_hint(op: &Op) -> usize {
    let run = |r: &RunKey| 12 + r.namespace.len() + r.workflow_id.len() + r.run_id.len();
    let queue = |q: &QueueKey| 9 + q.namespace.len() + q.name.len();
    1 + match op {
        Op::CreateRun { run: r, state } => run(r) + 4 + state.len(),
        Op::SetState { run: r, state, .. } => run(r) + 8 + 4 + state.len(),
        Op::LegacySetState(l) => run(&l.run) + 4 + l.state.len(),
        Op::AppendEvents { run: r, events, .. } => run(r) + 12 + events.iter().map(|e| 4 + e.len()).sum::<usize>(),
        Op::CloseRun { run: r } => run(r),
        Op::Enqueue { queue: q, run: r, task } => queue(q) + run(r) + 4 + task.len(),
        Op::Ack { queue: q, .. } => queue(q) + 8,
        Op::AddTimer { run: r, payload, .. } => run(r) + 12 + payload.len(),
        Op::RemoveTimer { .. } => 8,
        Op::DeleteRun { run: r } => run(r),
    }
}

/// Reads the version byte (2, or the legacy 1) and the time.
pub(super) fn get_version_and_time(d: &mut Decoder) -> Result<(u8, i64), DecodeError> {
    let version = d.u8()?;
    if version != TRANSITION_VERSION && version != TRANSITION_VERSION_V1 {
        return Err(d.invalid("transition version", format!("{version}")));
    }
    Ok((version, d.i64()?))
}

/// Reads an op tag, rejecting one its transition's version does not have.
pub(super) fn get_tag(d: &mut Decoder, version: u8) -> Result<u8, DecodeError> {
    let at = d.offset();
    let op_tag = d.u8()?;
    let known = match op_tag {
        tag::CREATE_RUN..=tag::REMOVE_TIMER => true,
        tag::SET_STATE | tag::DELETE_RUN => version >= TRANSITION_VERSION,
        _ => false,
    };
    if !known {
        return Err(DecodeError::Invalid { what: "op tag", offset: at, detail: format!("{op_tag} (transition version {version})") });
    }
    Ok(op_tag)
}

pub(super) fn put_run(e: &mut Encoder, run: &RunKey) {
    e.str(&run.namespace).str(&run.workflow_id).str(&run.run_id);
}

pub(super) fn get_run(d: &mut Decoder) -> Result<RunKey, DecodeError> {
    Ok(RunKey { namespace: d.string()?, workflow_id: d.string()?, run_id: d.string()? })
}

pub(super) fn put_queue(e: &mut Encoder, queue: &QueueKey) {
    e.str(&queue.namespace).str(&queue.name).u8(queue.kind as u8);
}

pub(super) fn get_queue(d: &mut Decoder) -> Result<QueueKey, DecodeError> {
    let namespace = d.string()?;
    let name = d.string()?;
    Ok(QueueKey { namespace, name, kind: get_queue_kind(d)? })
}

pub(super) fn get_queue_kind(d: &mut Decoder) -> Result<QueueKind, DecodeError> {
    let at = d.offset();
    let kind = d.u8()?;
    QueueKind::from_u8(kind).ok_or_else(|| DecodeError::Invalid { what: "queue kind", offset: at, detail: format!("{kind}") })
}

fn put_op(e: &mut Encoder, op: &Op) {
    match op {
        Op::CreateRun { run, state } => {
            put_run(e.u8(tag::CREATE_RUN), run);
            e.bytes(state);
        }
        Op::AppendEvents { run, first_event_id, events } => {
            put_run(e.u8(tag::APPEND_EVENTS), run);
            e.u64(*first_event_id).count(events.len());
            for event in events {
                e.bytes(event);
            }
        }
        Op::SetState { run, expected_version, state } => {
            put_run(e.u8(tag::SET_STATE), run);
            e.u64(*expected_version).bytes(state);
        }
        Op::LegacySetState(LegacySetState { run, state }) => {
            put_run(e.u8(tag::LEGACY_SET_STATE), run);
            e.bytes(state);
        }
        Op::CloseRun { run } => put_run(e.u8(tag::CLOSE_RUN), run),
        Op::Enqueue { queue, run, task } => {
            put_queue(e.u8(tag::ENQUEUE), queue);
            put_run(e, run);
            e.bytes(task);
        }
        Op::Ack { queue, task_id } => {
            put_queue(e.u8(tag::ACK), queue);
            e.u64(*task_id);
        }
        Op::AddTimer { run, due_ms, payload } => {
            put_run(e.u8(tag::ADD_TIMER), run);
            e.i64(*due_ms).bytes(payload);
        }
        Op::RemoveTimer { timer_id } => {
            e.u8(tag::REMOVE_TIMER).u64(*timer_id);
        }
        Op::DeleteRun { run } => put_run(e.u8(tag::DELETE_RUN), run),
    }
}

fn get_op(d: &mut Decoder, version: u8) -> Result<Op, DecodeError> {
    let at = d.offset();
    Ok(match get_tag(d, version)? {
        tag::CREATE_RUN => Op::CreateRun { run: get_run(d)?, state: d.bytes()? },
        tag::APPEND_EVENTS => {
            let run = get_run(d)?;
            let first_event_id = d.u64()?;
            let n = d.count(4)?;
            let events = (0..n).map(|_| d.bytes()).collect::<Result<_, _>>()?;
            Op::AppendEvents { run, first_event_id, events }
        }
        tag::SET_STATE => Op::SetState { run: get_run(d)?, expected_version: d.u64()?, state: d.bytes()? },
        tag::LEGACY_SET_STATE => Op::LegacySetState(LegacySetState { run: get_run(d)?, state: d.bytes()? }),
        tag::CLOSE_RUN => Op::CloseRun { run: get_run(d)? },
        tag::ENQUEUE => Op::Enqueue { queue: get_queue(d)?, run: get_run(d)?, task: d.bytes()? },
        tag::ACK => Op::Ack { queue: get_queue(d)?, task_id: d.u64()? },
        tag::ADD_TIMER => Op::AddTimer { run: get_run(d)?, due_ms: d.i64()?, payload: d.bytes()? },
        tag::REMOVE_TIMER => Op::RemoveTimer { timer_id: d.u64()? },
        tag::DELETE_RUN => Op::DeleteRun { run: get_run(d)? },
        other => return Err(DecodeError::Invalid { what: "op tag", offset: at, detail: format!("{other}") }),
    })
}
