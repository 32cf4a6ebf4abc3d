//! Properties of snapshots: restore(snapshot(s)) == s for states built by random
//! transitions; restore of mangled or arbitrary bytes never panics, and whatever
//! it accepts is a sound state (invariants hold, it re-snapshots to the same bytes,
//! and transitions apply to it without panicking).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use bytes::Bytes;
use hourglass_storage::state::*;
use hourglass_storage::LogPosition;
use proptest::prelude::*;

const SHARD: u32 = 5;

fn config() -> ShardConfig {
    ShardConfig {
        closed_run_retention_ms: 150,
        dedupe_retention_ms: 150,
        history_events_max: 20,
        backlog_tasks_max: 4,
        timers_max_per_run: 3,
        retention_sweep_max: 3,
    }
}

fn run_key(w: u8, r: u8) -> RunKey {
    RunKey { namespace: "ns".into(), workflow_id: format!("w{}", w % 3), run_id: format!("r{}", r % 2) }
}

fn queue_key(q: u8) -> QueueKey {
    let kind = match q % 2 {
        0 => QueueKind::Activity,
        _ => QueueKind::Workflow,
    };
    QueueKey { namespace: "ns".into(), name: format!("q{}", q % 3), kind }
}

fn all_runs() -> impl Iterator<Item = RunKey> {
    (0..3).flat_map(|w| (0..2).map(move |r| run_key(w, r)))
}

/// A run key for `kind`: mostly an open run (or, for a create, a key that can
/// be created), sometimes any key.
fn pick_run(state: &ShardState, create: bool, (kind, a, b): (u8, u8, u8)) -> RunKey {
    let fit = |k: &RunKey| match create {
        true => state.run(k).is_none() && !state.current_run(&k.workflow()).is_some_and(|c| c.open),
        false => state.run(k).is_some_and(|r| r.is_open()),
    };
    let fits: Vec<RunKey> = all_runs().filter(fit).collect();
    match fits.len() {
        0 => run_key(a, b),
        _ if kind / 8 % 16 == 0 => run_key(a, b),
        n => fits[usize::from(a) % n].clone(),
    }
}

/// One op chosen by `(kind, a, b)`, with keys and ids taken from the current
/// state so that most ops are valid.
fn op(state: &ShardState, choice: (u8, u8, u8)) -> Op {
    let (kind, a, b) = choice;
    let run = pick_run(state, kind % 8 == 0, choice);
    let next = state.run(&run).map_or(1, |r| r.next_event_id());
    match kind % 8 {
        0 => Op::CreateRun { run, state: Bytes::from(vec![b; usize::from(a % 4)]) },
        1 | 2 => Op::AppendEvents { run, first_event_id: next, events: vec![Bytes::from_static(b"e"); 1 + usize::from(b % 3)] },
        3 if b % 2 == 0 => Op::CloseRun { run },
        3 => {
            // Mostly the run's version; sometimes a stale one.
            let version = state.run(&run).map_or(1, |r| r.state_version());
            let expected_version = if a % 4 == 0 { version.saturating_sub(1) } else { version };
            Op::SetState { run, expected_version, state: Bytes::from(vec![a; usize::from(b % 3)]) }
        }
        4 => Op::Enqueue { queue: queue_key(b), run, task: Bytes::from(vec![a; 2]) },
        5 => {
            let queue = state.queues().nth(usize::from(a % 3)).cloned().unwrap_or_else(|| queue_key(a));
            let task_id = state.backlog(&queue).map(|(id, _)| id).nth(usize::from(b % 2)).unwrap_or(u64::from(b));
            Op::Ack { queue, task_id }
        }
        6 => Op::AddTimer { run, due_ms: i64::from(b), payload: Bytes::new() },
        _ => {
            let timer_id = state.due_timers(i64::MAX).map(|(id, _)| id).nth(usize::from(b % 3)).unwrap_or(u64::from(a));
            Op::RemoveTimer { timer_id }
        }
    }
}

type Plan = Vec<(u8, Option<u8>, Vec<(u8, u8, u8)>)>;

fn plan() -> impl Strategy<Value = Plan> {
    let ops = prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 0..4);
    prop::collection::vec((0..20u8, prop::option::weighted(0.3, 0..3u8), ops), 0..50)
}

/// Applies a plan to `state` (each step: time advance, maybe a dedupe key, ops).
fn play(state: &mut ShardState, plan: &Plan) {
    let mut time = 0;
    for (dt, dedupe, ops) in plan {
        time += i64::from(*dt);
        let index = state.applied_index() + 1;
        let ops = ops.iter().map(|o| op(state, *o)).collect();
        let dedupe =
            dedupe.map(|d| RequestDedupe { namespace: "ns".into(), request_id: format!("d{d}"), result: Bytes::from_static(b"res") });
        let pos = LogPosition { segment_id: index / 4, offset: index % 4 * 32 };
        let _ = state.apply(index, pos, &Transition { time_ms: time, dedupe, ops });
    }
}

fn built(plan: &Plan) -> ShardState {
    let mut state = ShardState::new(SHARD, config());
    play(&mut state, plan);
    state.verify().expect("invariants hold");
    state
}

/// Whatever restore accepts must be a sound state. A current snapshot must be
/// canonical; a version-1 one snapshots again as version 2, which restores to the
/// same state.
fn assert_sound(data: &Bytes, state: ShardState, more: &Plan) {
    state.verify().expect("restore accepted a state breaking an invariant");
    let again = state.snapshot();
    match data[0] {
        SNAPSHOT_VERSION => assert_eq!(&again, data, "restore accepted a non-canonical snapshot"),
        SNAPSHOT_VERSION_V1 => {
            assert_eq!(again[0], SNAPSHOT_VERSION);
            assert!(state.runs().all(|(_, r)| r.state_version() == 1), "a version-1 snapshot holds no state versions");
            assert_eq!(ShardState::restore(SHARD, config(), again).unwrap(), state);
        }
        other => panic!("restored a version {other} snapshot"),
    }
    let mut state = state;
    play(&mut state, more);
    state.verify().expect("invariants hold after more transitions");
}

fn mangle(data: &Bytes, edits: &[(usize, u8, u8)]) -> Bytes {
    let mut v = data.to_vec();
    for (at, kind, byte) in edits {
        let at = at % (v.len() + 1);
        match kind % 4 {
            0 | 1 if at < v.len() => v[at] = *byte,
            2 => v.insert(at, *byte),
            _ if at < v.len() => drop(v.remove(at)),
            _ => v.push(*byte),
        }
    }
    Bytes::from(v)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn restore_of_snapshot_is_identity(plan in plan()) {
        let state = built(&plan);
        let data = state.snapshot();
        let restored = ShardState::restore(SHARD, config(), data.clone()).unwrap();
        prop_assert_eq!(&restored, &state);
        prop_assert_eq!(restored.snapshot(), data);
        prop_assert!(ShardState::restore(SHARD + 1, config(), state.snapshot()).is_err());
    }

    #[test]
    fn mangled_snapshots_fail_or_restore_soundly(
        plan in plan(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
        more in plan(),
    ) {
        let data = mangle(&built(&plan).snapshot(), &edits);
        if let Ok(state) = ShardState::restore(SHARD, config(), data.clone()) {
            assert_sound(&data, state, &more);
        }
    }

    #[test]
    fn every_truncation_is_an_error(plan in plan()) {
        let data = built(&plan).snapshot();
        for cut in 0..data.len() {
            prop_assert!(ShardState::restore(SHARD, config(), data.slice(..cut)).is_err(), "cut at {}", cut);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..120), header in 0..3u8) {
        if header > 0 && bytes.len() >= 5 {
            bytes[0] = if header == 1 { SNAPSHOT_VERSION } else { SNAPSHOT_VERSION_V1 };
            bytes[1..5].copy_from_slice(&SHARD.to_le_bytes());
        }
        let data = Bytes::from(bytes);
        if let Ok(state) = ShardState::restore(SHARD, config(), data.clone()) {
            assert_sound(&data, state, &Plan::new());
        }
    }
}
