//! Model-based property test of the shard state machine: random sequences of
//! transitions (valid and invalid, over tiny key spaces so they collide) go to
//! `ShardState` and to a plain model (`state_model/model.rs`: vectors, linear
//! scans, clone-and-swap atomicity). The model tracks state versions, and the
//! steps include stale and bogus fenced SetStates (both must reject them alike)
//! and version-1 unchecked ones. After every step the results and everything observable must agree,
//! the invariants must hold and snapshot → restore must give the same state; at
//! the end, replaying the same steps into a fresh state must give the same bytes.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use bytes::Bytes;
use hourglass_storage::state::*;
use hourglass_storage::LogPosition;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

#[path = "state_model/compare.rs"]
mod compare;
#[path = "state_model/generate.rs"]
mod generate;
#[path = "state_model/model.rs"]
mod model;

use compare::{assert_events_indexed, assert_same};
use generate::{step, Step};
use model::Model;

const WORKFLOWS: usize = 4;
const RUN_IDS: usize = 3;
const QUEUES: usize = 3;
const REQUESTS: usize = 3;
const SHARD: u32 = 3;

fn config() -> ShardConfig {
    ShardConfig {
        closed_run_retention_ms: 100,
        dedupe_retention_ms: 60,
        history_events_max: 10,
        backlog_tasks_max: 3,
        timers_max_per_run: 2,
        retention_sweep_max: 2,
    }
}

fn run_key((w, r): (usize, usize)) -> RunKey {
    RunKey { namespace: "ns".into(), workflow_id: format!("w{w}"), run_id: format!("r{r}") }
}

fn all_runs() -> impl Iterator<Item = RunKey> {
    (0..WORKFLOWS).flat_map(|w| (0..RUN_IDS).map(move |r| run_key((w, r))))
}

fn queue_key(i: usize) -> QueueKey {
    let kind = if i == 1 { QueueKind::Workflow } else { QueueKind::Activity };
    QueueKey { namespace: "ns".into(), name: format!("q{}", i / 2), kind }
}

fn pos_of(index: u64) -> LogPosition {
    LogPosition { segment_id: index / 8, offset: index % 8 * 64 }
}

fn payload(tag: &str, n: u8) -> Bytes {
    Bytes::from(format!("{tag}{n}"))
}

#[path = "support/legacy.rs"]
mod legacy;
use legacy::legacy_set_state;

/// A step as applied, for the replay.
#[derive(Debug, Clone)]
enum Done {
    Apply(u64, LogPosition, Transition),
    Skip(u64),
    Relocate(LogPosition, LogPosition),
}

fn restored(state: &ShardState) -> ShardState {
    let again = ShardState::restore(SHARD, config(), state.snapshot()).expect("a snapshot restores");
    assert_eq!(&again, state, "snapshot → restore changed the state");
    again
}

/// Runs the steps against state and model; returns how many transitions a
/// version mismatch rejected.
fn run_steps(steps: &[Step]) -> usize {
    let mut state = ShardState::new(SHARD, config());
    let mut model = Model::new(config());
    let (mut index, mut time, mut fresh) = (0u64, 0i64, 0u64);
    let mut log = Vec::new();
    let mut fenced = 0;
    for step in steps {
        match step {
            Step::Apply { gap, dt, dedupe, ops } => {
                index += 1 + gap;
                time += dt;
                let pos = pos_of(index);
                let dedupe = dedupe.map(|(req, result)| RequestDedupe {
                    namespace: "ns".into(),
                    request_id: format!("d{req}"),
                    result: payload("res", result),
                });
                let t = Transition { time_ms: time, dedupe, ops: model.concretize(ops, pos, time) };
                let data = t.encode();
                let decoded = Transition::decode(data.clone()).expect("decodes");
                let got = state.apply(index, pos, &decoded);
                assert_eq!(got, model.apply(index, pos, &t), "step {t:?}");
                if let Err(ApplyError::Rejected { reason: OpError::StateVersionMismatch { .. }, .. }) = got {
                    fenced += 1;
                }
                if let Ok(Applied::Done { .. }) = got {
                    assert_events_indexed(&model, &data, pos);
                }
                log.push(Done::Apply(index, pos, t));
            }
            Step::Skip { gap } => {
                index += 1 + gap;
                assert_eq!(state.skip(index), Ok(()));
                model.applied = index;
                log.push(Done::Skip(index));
            }
            Step::Relocate { live } => {
                let positions = model.live_positions();
                let from = match live {
                    Some(i) if !positions.is_empty() => positions[i % positions.len()],
                    _ => LogPosition { segment_id: 999, offset: 0 },
                };
                fresh += 1;
                let to = LogPosition { segment_id: 1_000 + fresh, offset: 0 };
                assert_eq!(state.relocate(from, to), model.relocate(from, to));
                log.push(Done::Relocate(from, to));
            }
            Step::Restore => state = restored(&state),
        }
        assert_same(&model, &state);
        restored(&state);
    }
    let again = state.apply(index, pos_of(index), &Transition { time_ms: time, dedupe: None, ops: vec![] });
    assert!(matches!(again, Err(ApplyError::IndexNotIncreasing { .. })));
    assert_replays_identically(&log, &state);
    fenced
}

fn assert_replays_identically(log: &[Done], state: &ShardState) {
    let mut replay = ShardState::new(SHARD, config());
    for done in log {
        match done {
            Done::Apply(index, pos, t) => {
                let _ = replay.apply(*index, *pos, t);
            }
            Done::Skip(index) => replay.skip(*index).unwrap(),
            Done::Relocate(from, to) => {
                replay.relocate(*from, *to);
            }
        }
    }
    assert_eq!(replay.snapshot(), state.snapshot(), "replay is deterministic");
    assert_eq!(&replay, state);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn state_machine_matches_the_model(steps in prop::collection::vec(step(), 1..60)) {
        run_steps(&steps);
    }
}

#[test]
fn a_long_busy_run_matches_the_model() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let steps = prop::collection::vec(step(), 600).new_tree(&mut runner).unwrap().current();
    let fenced = run_steps(&steps);
    assert!(fenced > 0, "stale SetStates were generated and rejected");
}
