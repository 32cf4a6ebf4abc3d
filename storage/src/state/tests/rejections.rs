use super::*;

#[test]
fn create_run_rejects_a_second_open_run_and_an_existing_run() {
    let mut h = Harness::new();
    let (r1, r2) = (run("w", "r1"), run("w", "r2"));
    h.ok(10, vec![create(&r1)]);
    assert_eq!(h.reject(11, vec![create(&r2)]), (0, OpError::RunAlreadyOpen { run_id: "r1".into() }));
    assert_eq!(h.reject(11, vec![create(&r1)]), (0, OpError::RunAlreadyOpen { run_id: "r1".into() }));
    h.ok(12, vec![close(&r1)]);
    assert_eq!(h.reject(13, vec![create(&r1)]), (0, OpError::RunExists));
}

#[test]
fn ops_on_missing_runs_are_rejected() {
    let mut h = Harness::new();
    let r = run("w", "nope");
    let ops = [append(&r, 1, 1), set_state(&r, 1, "x"), close(&r), enqueue(&queue("q"), &r), add_timer(&r, 1)];
    for op in ops {
        assert_eq!(h.reject(10, vec![op]), (0, OpError::RunNotFound));
    }
}

#[test]
fn closed_runs_take_no_events_and_no_second_close() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r), close(&r)]);
    assert_eq!(h.reject(11, vec![append(&r, 1, 1)]), (0, OpError::RunClosed));
    assert_eq!(h.reject(11, vec![close(&r)]), (0, OpError::RunClosed));
}

#[test]
fn appends_must_be_dense_and_non_empty() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r), append(&r, 1, 2)]);
    assert_eq!(h.reject(11, vec![append(&r, 4, 1)]), (0, OpError::EventIdMismatch { expected: 3, got: 4 }));
    assert_eq!(h.reject(11, vec![append(&r, 2, 1)]), (0, OpError::EventIdMismatch { expected: 3, got: 2 }));
    assert_eq!(h.reject(11, vec![append(&r, 3, 0)]), (0, OpError::EmptyAppend));
}

#[test]
fn history_events_max_is_enforced() {
    let mut h = Harness::with(ShardConfig { history_events_max: 5, ..Default::default() });
    let r = run("w", "r1");
    h.ok(10, vec![create(&r), append(&r, 1, 3)]);
    assert_eq!(h.reject(11, vec![append(&r, 4, 3)]), (0, OpError::HistoryTooLong { max: 5 }));
    h.ok(11, vec![append(&r, 4, 2)]);
    assert_eq!(h.reject(12, vec![append(&r, 6, 1)]), (0, OpError::HistoryTooLong { max: 5 }));
}

#[test]
fn backlog_tasks_max_is_per_queue() {
    let mut h = Harness::with(ShardConfig { backlog_tasks_max: 2, ..Default::default() });
    let r = run("w", "r1");
    let (q1, q2) = (queue("q1"), queue("q2"));
    h.ok(10, vec![create(&r), enqueue(&q1, &r), enqueue(&q1, &r)]);
    assert_eq!(h.reject(11, vec![enqueue(&q1, &r)]), (0, OpError::BacklogFull { max: 2 }));
    assert_eq!(h.ok(11, vec![enqueue(&q2, &r)]), done(&[3], &[]));
    h.ok(12, vec![Op::Ack { queue: q1.clone(), task_id: 1 }]);
    assert_eq!(h.ok(13, vec![enqueue(&q1, &r)]), done(&[4], &[]));
}

#[test]
fn timers_max_per_run_is_enforced() {
    let mut h = Harness::with(ShardConfig { timers_max_per_run: 2, ..Default::default() });
    let (r1, r2) = (run("w1", "r"), run("w2", "r"));
    h.ok(10, vec![create(&r1), create(&r2), add_timer(&r1, 5), add_timer(&r1, 6)]);
    assert_eq!(h.reject(11, vec![add_timer(&r1, 7)]), (0, OpError::TooManyTimers { max: 2 }));
    h.ok(11, vec![add_timer(&r2, 7)]);
    h.ok(12, vec![Op::RemoveTimer { timer_id: 1 }, add_timer(&r1, 8)]);
}

#[test]
fn ack_and_remove_timer_need_existing_ids() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r), enqueue(&queue("q"), &r), add_timer(&r, 5)]);
    let wrong_queue = Op::Ack { queue: queue("other"), task_id: 1 };
    assert_eq!(h.reject(11, vec![wrong_queue]), (0, OpError::TaskNotFound { task_id: 1 }));
    let wrong_id = Op::Ack { queue: queue("q"), task_id: 2 };
    assert_eq!(h.reject(11, vec![wrong_id]), (0, OpError::TaskNotFound { task_id: 2 }));
    assert_eq!(h.reject(11, vec![Op::RemoveTimer { timer_id: 9 }]), (0, OpError::TimerNotFound { timer_id: 9 }));
    let twice = vec![Op::RemoveTimer { timer_id: 1 }, Op::RemoveTimer { timer_id: 1 }];
    assert_eq!(h.reject(11, twice), (1, OpError::TimerNotFound { timer_id: 1 }));
}

#[test]
fn a_late_failure_undoes_every_earlier_op() {
    let mut h = Harness::new();
    let (r1, r2, r3) = (run("w", "r1"), run("w", "r2"), run("x", "r1"));
    let q = queue("q");
    h.ok(10, vec![create(&r1), append(&r1, 1, 2), enqueue(&q, &r1), enqueue(&q, &r1), add_timer(&r1, 9)]);
    let ops = vec![
        append(&r1, 3, 1),
        append(&r1, 4, 2),
        set_state(&r1, 1, "changed"),
        Op::Ack { queue: q.clone(), task_id: 1 },
        Op::RemoveTimer { timer_id: 1 },
        enqueue(&q, &r1),
        add_timer(&r1, 3),
        close(&r1),
        create(&r2),
        append(&r2, 1, 1),
        enqueue(&queue("fresh"), &r2),
        add_timer(&r2, 4),
        create(&r3),
        Op::Ack { queue: q.clone(), task_id: 2 },
        Op::Ack { queue: q.clone(), task_id: 2 },
    ];
    assert_eq!(h.reject(11, ops), (14, OpError::TaskNotFound { task_id: 2 }));
    assert_eq!(h.ok(12, vec![enqueue(&q, &r1), add_timer(&r1, 1)]), done(&[3], &[2]), "ids were not consumed");
}

#[test]
fn exhausted_id_counters_reject_instead_of_wrapping() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r)]);
    h.state.tables.next_task_id = u64::MAX;
    h.state.tables.next_timer_id = u64::MAX;
    assert_eq!(h.reject(11, vec![enqueue(&queue("q"), &r)]), (0, OpError::IdsExhausted));
    assert_eq!(h.reject(11, vec![add_timer(&r, 1)]), (0, OpError::IdsExhausted));
}
