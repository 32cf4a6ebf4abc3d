//! Fencing at apply: every `SetState` names the state version it was built from,
//! so a transition built from stale state is rejected whole.

use super::*;

fn version(h: &Harness, r: &RunKey) -> u64 {
    h.state.run(r).expect("run exists").state_version()
}

#[test]
fn create_sets_version_1_and_each_set_state_adds_one() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r)]);
    assert_eq!(version(&h, &r), 1);
    h.ok(11, vec![set_state(&r, 1, "s1")]);
    assert_eq!(version(&h, &r), 2);
    h.ok(12, vec![set_state(&r, 2, "s2"), set_state(&r, 3, "s3")]);
    assert_eq!((version(&h, &r), h.state.run(&r).unwrap().state()), (4, &b("s3")));
    h.ok(13, vec![close(&r), set_state(&r, 4, "closed")]);
    assert_eq!(version(&h, &r), 5, "a closed run's state is fenced too");
}

#[test]
fn a_set_state_from_another_version_is_rejected_with_both_versions() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r), set_state(&r, 1, "s1")]);
    for stale in [0, 1, 3, u64::MAX] {
        assert_eq!(h.reject(11, vec![set_state(&r, stale, "x")]), (0, OpError::StateVersionMismatch { expected: stale, actual: 2 }));
    }
    // Within one transition a second write must name the version the first made.
    assert_eq!(
        h.reject(11, vec![set_state(&r, 2, "a"), set_state(&r, 2, "b")]),
        (1, OpError::StateVersionMismatch { expected: 2, actual: 3 })
    );
    assert_eq!(h.reject(11, vec![set_state(&run("w", "nope"), 1, "x")]), (0, OpError::RunNotFound), "not found comes first");
}

#[test]
fn a_rejected_transition_leaves_the_version_as_it_was() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r)]);
    let (op, reason) = h.reject(11, vec![set_state(&r, 1, "s1"), set_state(&r, 2, "s2"), Op::RemoveTimer { timer_id: 5 }]);
    assert_eq!((op, reason), (2, OpError::TimerNotFound { timer_id: 5 }));
    assert_eq!((version(&h, &r), h.state.run(&r).unwrap().state()), (1, &b("s0")), "undo restored state and version");
    h.ok(12, vec![set_state(&r, 1, "s1")]);
}

#[test]
fn a_version_at_u64_max_cannot_be_bumped() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r)]);
    h.state.tables.run_mut(&r, |run| run.state_version = u64::MAX);
    assert_eq!(h.reject(11, vec![set_state(&r, u64::MAX, "x")]), (0, OpError::IdsExhausted));
}

/// Two writers load the same run at version `v`; the first commits, the second's
/// whole transition (state, events, task ack, timer changes, new task) is refused,
/// and nothing of it shows.
#[test]
fn a_stale_writer_is_rejected_whole() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    let q = queue("q");
    h.ok(10, vec![create(&r), append(&r, 1, 2), enqueue(&q, &r), add_timer(&r, 50), set_state(&r, 1, "loaded")]);

    // Both writers read the run here.
    let read = h.state.run(&r).unwrap();
    let (v, next) = (read.state_version(), read.next_event_id());
    assert_eq!((v, next), (2, 3));

    // Writer A: state v → v+1, one event, acks the task, fires the timer.
    let a = vec![set_state(&r, v, "by A"), append(&r, next, 1), Op::Ack { queue: q.clone(), task_id: 1 }, Op::RemoveTimer { timer_id: 1 }];
    h.ok(11, a);
    let after_a = h.state.clone();
    assert_eq!(version(&h, &r), v + 1);

    // Writer B built its transition from the same read. The version check runs
    // first, so B is refused before its other (equally stale) ops are looked at.
    let b_ops = vec![
        set_state(&r, v, "by B"),
        append(&r, next, 2),
        Op::Ack { queue: q.clone(), task_id: 1 },
        Op::RemoveTimer { timer_id: 1 },
        enqueue(&queue("other"), &r),
        add_timer(&r, 99),
    ];
    let t = Transition { time_ms: 12, dedupe: dedupe("b-request", "b"), ops: b_ops.clone() };
    assert_eq!(h.reject_t(&t), (0, OpError::StateVersionMismatch { expected: v, actual: v + 1 }));
    let s = h.state.run(&r).unwrap();
    assert_eq!((s.state(), s.state_version(), s.next_event_id()), (&b("by A"), v + 1, next + 1));
    assert_eq!(s.history(), after_a.run(&r).unwrap().history(), "history index unchanged");
    assert_eq!(h.state.backlog_len(&q) + h.state.backlog_len(&queue("other")), 0, "backlogs unchanged");
    assert_eq!(h.state.timer_count(), 0, "timers unchanged");
    assert_eq!(h.state.dedupe_result("ns", "b-request"), None, "a rejected transition's dedupe key is not remembered");
    assert_eq!(h.state.snapshot()[13..], after_a.snapshot()[13..], "nothing but the applied index changed");

    // Even with the state write last, B fails: its other ops' preconditions
    // (dense event ids, the task and the timer) are stale too.
    let mut last = b_ops[1..].to_vec();
    last.push(set_state(&r, v, "by B"));
    assert_eq!(h.reject(13, last.clone()), (0, OpError::EventIdMismatch { expected: next + 1, got: next }));
    assert_eq!(h.reject(13, last[1..].to_vec()), (0, OpError::TaskNotFound { task_id: 1 }));
    assert_eq!(h.reject(13, last[2..].to_vec()), (0, OpError::TimerNotFound { timer_id: 1 }));
    assert_eq!(h.reject(13, last[3..].to_vec()), (2, OpError::StateVersionMismatch { expected: v, actual: v + 1 }));

    // Having re-read the run, B goes through.
    h.ok(14, vec![set_state(&r, v + 1, "by B"), append(&r, next + 1, 2)]);
    assert_eq!(version(&h, &r), v + 2);
}

#[test]
fn legacy_set_state_applies_unchecked_and_keeps_the_version() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r), set_state(&r, 1, "s1")]);
    let legacy = |s: &'static str| Op::LegacySetState(LegacySetState { run: r.clone(), state: b(s) });
    h.ok(11, vec![legacy("old"), legacy("older")]);
    assert_eq!((version(&h, &r), h.state.run(&r).unwrap().state()), (2, &b("older")));
    let missing = Op::LegacySetState(LegacySetState { run: run("w", "nope"), state: b("x") });
    assert_eq!(h.reject(12, vec![missing]), (0, OpError::RunNotFound));
    h.ok(12, vec![set_state(&r, 2, "fenced")]);
    assert_eq!(version(&h, &r), 3);
}

#[test]
fn a_version_1_log_replays_as_it_applied() {
    // A version-1 transition's SetState, as an old binary wrote it.
    let r = run("w", "r1");
    let old = Transition {
        time_ms: 10,
        dedupe: None,
        ops: vec![create(&r), Op::LegacySetState(LegacySetState { run: r.clone(), state: b("v1 state") })],
    };
    let mut bytes = old.encode().to_vec();
    bytes[0] = TRANSITION_VERSION_V1;
    let decoded = Transition::decode(Bytes::from(bytes)).unwrap();
    assert_eq!(decoded, old);
    let mut h = Harness::new();
    h.ok(10, decoded.ops);
    assert_eq!((version(&h, &r), h.state.run(&r).unwrap().state()), (1, &b("v1 state")));
}
