use super::*;

fn retention(ms: i64) -> ShardConfig {
    ShardConfig { closed_run_retention_ms: ms, ..Default::default() }
}

#[test]
fn a_closed_run_is_dropped_once_its_retention_passed() {
    let mut h = Harness::with(retention(100));
    let r = run("w", "r1");
    h.ok(1, vec![create(&r), append(&r, 1, 2)]);
    h.ok(10, vec![close(&r)]);
    h.ok(109, vec![]);
    assert!(h.state.run(&r).is_some(), "closed at 10, kept at 109");
    h.ok(110, vec![]);
    assert!(h.state.run(&r).is_none(), "closed at 10, dropped at 110");
    assert_eq!(h.state.current_run(&wf("w")), None);
    assert_eq!(h.state.live_positions().count(), 0, "history refs released");
    assert_eq!((h.state.run_count(), h.state.open_run_count()), (0, 0));
}

#[test]
fn open_runs_are_never_dropped() {
    let mut h = Harness::with(retention(0));
    let r = run("w", "r1");
    h.ok(1, vec![create(&r)]);
    h.ok(i64::MAX, vec![]);
    assert!(h.state.run(&r).is_some());
}

#[test]
fn dropping_a_run_drops_its_tasks_and_timers_only() {
    let mut h = Harness::with(retention(100));
    let (r1, r2) = (run("w1", "r"), run("w2", "r"));
    let q = queue("q");
    h.ok(1, vec![create(&r1), create(&r2), enqueue(&q, &r1), enqueue(&q, &r2), add_timer(&r1, 5), add_timer(&r2, 6)]);
    h.ok(2, vec![close(&r1)]);
    h.ok(200, vec![]);
    assert_eq!(h.state.backlog(&q).map(|(id, _)| id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(h.state.due_timers(i64::MAX).map(|(id, _)| id).collect::<Vec<_>>(), vec![2]);
    assert_eq!((h.state.task_count(), h.state.timer_count()), (1, 1));
}

#[test]
fn the_current_entry_survives_when_it_points_at_a_newer_run() {
    let mut h = Harness::with(retention(100));
    let (r1, r2) = (run("w", "r1"), run("w", "r2"));
    h.ok(1, vec![create(&r1)]);
    h.ok(2, vec![close(&r1), create(&r2)]);
    h.ok(500, vec![]);
    assert!(h.state.run(&r1).is_none());
    assert_eq!(h.state.current_run(&wf("w")), Some(CurrentRun { run_id: "r2", open: true }));
}

#[test]
fn a_dropped_run_id_can_be_used_again() {
    let mut h = Harness::with(retention(0));
    let r = run("w", "r1");
    h.ok(1, vec![create(&r), close(&r)]);
    assert!(h.state.run(&r).is_none());
    h.ok(2, vec![create(&r), append(&r, 1, 1)]);
    assert_eq!(h.state.run(&r).unwrap().next_event_id(), 2);
}

#[test]
fn only_successful_transitions_sweep() {
    let mut h = Harness::with(retention(10));
    let r = run("w", "r1");
    h.ok(1, vec![create(&r), close(&r)]);
    h.reject(100, vec![Op::RemoveTimer { timer_id: 1 }]);
    assert!(h.state.run(&r).is_some(), "a rejection changes nothing");
    h.apply_t(&Transition { time_ms: 1, dedupe: dedupe("d", "x"), ops: vec![] }).unwrap();
    let dup = h.apply_t(&Transition { time_ms: 100, dedupe: dedupe("d", "y"), ops: vec![] }).unwrap();
    assert!(matches!(dup, Applied::Duplicate { .. }));
    assert!(h.state.run(&r).is_some(), "a duplicate changes nothing");
    h.ok(100, vec![]);
    assert!(h.state.run(&r).is_none());
}

#[test]
fn the_sweep_is_bounded_and_oldest_first() {
    let mut h = Harness::with(ShardConfig { closed_run_retention_ms: 10, retention_sweep_max: 2, ..Default::default() });
    let runs: Vec<RunKey> = (0..5).map(|i| run(&format!("w{i}"), "r")).collect();
    h.ok(1, runs.iter().map(create).collect());
    for (i, r) in runs.iter().enumerate().rev() {
        h.ok(10 + i as i64, vec![close(r)]);
    }
    h.ok(1000, vec![]);
    let left: Vec<_> = h.state.runs().map(|(k, _)| k.workflow_id.clone()).collect();
    assert_eq!(left, vec!["w2", "w3", "w4"], "the two closed first went first");
    h.ok(1000, vec![]);
    assert_eq!(h.state.run_count(), 1);
    h.ok(1000, vec![]);
    assert_eq!(h.state.run_count(), 0);
}

#[test]
fn time_going_backwards_drops_nothing_early() {
    let mut h = Harness::with(retention(100));
    let r = run("w", "r1");
    h.ok(1000, vec![create(&r), close(&r)]);
    h.ok(500, vec![]);
    h.ok(1099, vec![]);
    assert!(h.state.run(&r).is_some());
    h.ok(1100, vec![]);
    assert!(h.state.run(&r).is_none());
}

#[test]
fn negative_retention_acts_as_zero() {
    let mut h = Harness::with(ShardConfig { closed_run_retention_ms: -50, dedupe_retention_ms: -1, ..Default::default() });
    let r = run("w", "r1");
    h.apply_t(&Transition { time_ms: 5, dedupe: dedupe("d", "x"), ops: vec![create(&r), close(&r)] }).unwrap();
    assert_eq!((h.state.run_count(), h.state.dedupe_count()), (0, 0));
}

#[test]
fn delete_run_drops_a_closed_run_at_once_with_everything_hanging_off_it() {
    let mut h = Harness::new();
    let (r1, r2) = (run("w", "r1"), run("w2", "r"));
    let q = queue("q");
    h.ok(1, vec![create(&r1), append(&r1, 1, 3), enqueue(&q, &r1), add_timer(&r1, 5), create(&r2), enqueue(&q, &r2)]);
    h.ok(2, vec![close(&r1), Op::DeleteRun { run: r1.clone() }]);
    assert!(h.state.run(&r1).is_none());
    assert_eq!(h.state.current_run(&wf("w")), None);
    assert_eq!(h.state.live_positions().count(), 0, "history refs released");
    assert_eq!(h.state.backlog(&q).map(|(id, _)| id).collect::<Vec<_>>(), vec![2], "only the other run's task is left");
    assert_eq!((h.state.task_count(), h.state.timer_count()), (1, 0));
    assert_eq!((h.state.run_count(), h.state.open_run_count()), (1, 1));
}

#[test]
fn delete_run_refuses_open_unknown_runs_and_any_op_after_it() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(1, vec![create(&r)]);
    assert_eq!(h.reject(2, vec![Op::DeleteRun { run: r.clone() }]), (0, OpError::RunOpen));
    assert_eq!(h.reject(2, vec![Op::DeleteRun { run: run("w", "nope") }]), (0, OpError::RunNotFound));
    let (op, reason) = h.reject(2, vec![close(&r), Op::DeleteRun { run: r.clone() }, add_timer(&r, 9)]);
    assert_eq!((op, reason), (1, OpError::DeleteNotLast));
    assert!(h.state.run(&r).is_some_and(|s| s.is_open()), "nothing of the rejected transition applied");
}
