//! `ShardState::restore` on arbitrary bytes never panics, accepts only canonical
//! snapshots (`snapshot(restore(b)) == b`; a version-1 snapshot, restored for old
//! data directories, snapshots again as version 2 and restores to the same state),
//! and a restored state survives further transitions without panicking.
//!
//! Byte 0 picks the mode:
//! - even: the rest of the input is the snapshot (raw mode);
//! - odd: the rest drives a small interpreter that builds a real state by applying
//!   transitions over a tiny key space (so snapshots hold runs, history, backlogs,
//!   timers and dedupe entries), checks that its snapshot restores to an equal
//!   state, then damages the snapshot with input-chosen bit flips, truncation or
//!   insertion and restores that (structured mode: reaches the deep checks that
//!   raw bytes rarely get past).
#![no_main]

use bytes::Bytes;
use hourglass_storage::log::LogPosition;
use hourglass_storage::state::{Op, QueueKey, QueueKind, RequestDedupe, RunKey, ShardConfig, ShardState, Transition, SNAPSHOT_VERSION_V1};
use libfuzzer_sys::fuzz_target;

fn config() -> ShardConfig {
    ShardConfig {
        closed_run_retention_ms: 50,
        dedupe_retention_ms: 40,
        history_events_max: 12,
        backlog_tasks_max: 4,
        timers_max_per_run: 3,
        retention_sweep_max: 2,
    }
}

/// Reads input bytes; zeros once exhausted.
struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn exhausted(&self) -> bool {
        self.at >= self.data.len()
    }
    fn rest(&self) -> &[u8] {
        &self.data[self.at.min(self.data.len())..]
    }
    fn blob(&mut self) -> Bytes {
        let n = (self.byte() % 6) as usize;
        Bytes::from((0..n).map(|_| self.byte()).collect::<Vec<u8>>())
    }
    fn run(&mut self) -> RunKey {
        let b = self.byte();
        RunKey {
            namespace: ["ns", "other"][(b & 1) as usize].to_string(),
            workflow_id: ["wf-a", "wf-b", "wf-c"][((b >> 1) % 3) as usize].to_string(),
            run_id: ["r1", "r2", "r3"][((b >> 3) % 3) as usize].to_string(),
        }
    }
    fn queue(&mut self) -> QueueKey {
        let b = self.byte();
        QueueKey {
            namespace: ["ns", "other"][(b & 1) as usize].to_string(),
            name: ["q1", "q2"][((b >> 1) & 1) as usize].to_string(),
            kind: if b & 4 == 0 { QueueKind::Workflow } else { QueueKind::Activity },
        }
    }
}

fn op(input: &mut Input, state: &ShardState) -> Op {
    match input.byte() % 8 {
        0 => Op::CreateRun { run: input.run(), state: input.blob() },
        1 => {
            let run = input.run();
            let exact = input.byte();
            let first_event_id = match state.run(&run) {
                Some(r) if !exact.is_multiple_of(4) => r.next_event_id(),
                _ => u64::from(exact % 4),
            };
            let events = (0..=input.byte() % 3).map(|_| input.blob()).collect();
            Op::AppendEvents { run, first_event_id, events }
        }
        2 => {
            // Mostly the run's state version; sometimes a stale or bogus one.
            let run = input.run();
            let version = state.run(&run).map_or(1, |r| r.state_version());
            let expected_version = match input.byte() % 8 {
                0 => version.saturating_sub(1),
                1 => version.wrapping_add(1),
                _ => version,
            };
            Op::SetState { run, expected_version, state: input.blob() }
        }
        3 => Op::CloseRun { run: input.run() },
        4 => Op::Enqueue { queue: input.queue(), run: input.run(), task: input.blob() },
        5 => {
            let queue = input.queue();
            let pick = input.byte();
            let task_id = state.backlog(&queue).nth((pick % 4) as usize).map_or(u64::from(pick), |(id, _)| id);
            Op::Ack { queue, task_id }
        }
        6 => Op::AddTimer { run: input.run(), due_ms: i64::from(input.byte()) * 7, payload: input.blob() },
        _ => Op::RemoveTimer { timer_id: u64::from(input.byte() % 16) },
    }
}

fn transition(input: &mut Input, state: &ShardState, time_ms: &mut i64) -> Transition {
    *time_ms += i64::from(input.byte() % 32);
    let d = input.byte();
    let dedupe = d.is_multiple_of(3).then(|| RequestDedupe {
        namespace: "ns".into(),
        request_id: format!("req-{}", d % 5),
        result: Bytes::from(vec![d]),
    });
    let ops = (0..=input.byte() % 3).map(|_| op(input, state)).collect();
    Transition { time_ms: *time_ms, dedupe, ops }
}

/// Restores `bytes`; if accepted, checks canonicity and that the state takes one
/// more transition without panicking.
fn restore_and_use(shard: u32, bytes: Bytes, tail: &mut Input) {
    let Ok(mut state) = ShardState::restore(shard, config(), bytes.clone()) else { return };
    if bytes[0] == SNAPSHOT_VERSION_V1 {
        let again = ShardState::restore(shard, config(), state.snapshot()).expect("a version-1 snapshot snapshots again");
        assert_eq!(again, state, "a version-1 snapshot restores to what its version-2 snapshot does");
    } else {
        assert_eq!(state.snapshot(), bytes, "only canonical snapshots are accepted");
    }
    let mut time_ms = 0;
    let index = state.applied_index().saturating_add(1);
    if index > state.applied_index() {
        let t = transition(tail, &state, &mut time_ms);
        let _ = state.apply(index, LogPosition { segment_id: 1, offset: 64 }, &t);
        let again = ShardState::restore(shard, config(), state.snapshot()).expect("snapshot of a live state restores");
        assert_eq!(again, state);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let shard = rest.get(1..5).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
        restore_and_use(shard, Bytes::copy_from_slice(rest), &mut Input { data: &[], at: 0 });
        return;
    }

    // Structured: build a state, round-trip it, then damage its snapshot.
    let shard = u32::from(mode >> 1);
    let mut input = Input { data: rest, at: 0 };
    let mut state = ShardState::new(shard, config());
    let mut time_ms = 1_000;
    let transitions = input.byte() % 24;
    for i in 0..transitions {
        if input.exhausted() {
            break;
        }
        let t = transition(&mut input, &state, &mut time_ms);
        // Round-trip the transition's own encoding on the way.
        let encoded = t.encode();
        assert_eq!(Transition::decode(encoded.clone()).as_ref(), Ok(&t));
        let index = u64::from(i) * 2 + 1;
        let pos = LogPosition { segment_id: 1 + u64::from(i / 4), offset: 64 + u64::from(i) * 100 };
        let _ = state.apply(index, pos, &t);
    }
    let snap = state.snapshot();
    let restored = ShardState::restore(shard, config(), snap.clone()).expect("a real snapshot restores");
    assert_eq!(restored, state, "restore(snapshot(s)) == s");
    assert_eq!(restored.snapshot(), snap);

    // Damage: up to 4 (position, xor) flips, then maybe truncate or insert a byte.
    let mut damaged = snap.to_vec();
    for _ in 0..input.byte() % 5 {
        let at = (usize::from(input.byte()) << 8 | usize::from(input.byte())) % damaged.len().max(1);
        let x = input.byte();
        if let Some(b) = damaged.get_mut(at) {
            *b ^= x;
        }
    }
    match input.byte() % 4 {
        1 => {
            let cut = usize::from(input.byte()) % (damaged.len() + 1);
            damaged.truncate(damaged.len() - cut);
        }
        2 => {
            let at = usize::from(input.byte()) % (damaged.len() + 1);
            damaged.insert(at, input.byte());
        }
        _ => {}
    }
    let mut tail = Input { data: input.rest(), at: 0 };
    restore_and_use(shard, Bytes::from(damaged), &mut tail);
});
