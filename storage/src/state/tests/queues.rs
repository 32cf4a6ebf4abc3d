use super::*;

#[test]
fn task_ids_are_shard_wide_and_increasing() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    let (q1, q2) = (queue("q1"), queue("q2"));
    assert_eq!(h.ok(10, vec![create(&r), enqueue(&q1, &r), enqueue(&q2, &r), enqueue(&q1, &r)]), done(&[1, 2, 3], &[]));
    assert_eq!(h.ok(11, vec![enqueue(&q2, &r)]), done(&[4], &[]));
    let ids: Vec<u64> = h.state.backlog(&q1).map(|(id, _)| id).collect();
    assert_eq!(ids, vec![1, 3]);
    let (_, task) = h.state.backlog(&q2).next().unwrap();
    assert_eq!((task.run(), task.payload()), (&r, &b("task")));
    assert_eq!(h.state.queues().collect::<Vec<_>>(), vec![&q1, &q2]);
    assert_eq!((h.state.task_count(), h.state.backlog_len(&q1)), (4, 2));
    assert_eq!(h.state.run(&r).unwrap().task_ids().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
}

#[test]
fn ack_removes_the_task_and_empty_backlogs_vanish() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    let q = queue("q");
    h.ok(10, vec![create(&r), enqueue(&q, &r), enqueue(&q, &r)]);
    h.ok(11, vec![Op::Ack { queue: q.clone(), task_id: 1 }]);
    assert!(h.state.task(&q, 1).is_none());
    assert!(h.state.task(&q, 2).is_some());
    h.ok(12, vec![Op::Ack { queue: q.clone(), task_id: 2 }]);
    assert_eq!(h.state.queues().count(), 0);
    assert_eq!(h.state.backlog(&q).count(), 0);
    assert_eq!(h.state.task_count(), 0);
    assert_eq!(h.ok(13, vec![enqueue(&q, &r)]), done(&[3], &[]), "ids are never reused");
}

#[test]
fn queue_kind_separates_backlogs() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    let activity = queue("q");
    let workflow = QueueKey { kind: QueueKind::Workflow, ..activity.clone() };
    h.ok(10, vec![create(&r), enqueue(&activity, &r), enqueue(&workflow, &r)]);
    assert_eq!(h.state.backlog_len(&activity), 1);
    assert_eq!(h.state.backlog_len(&workflow), 1);
    let ack_other_kind = Op::Ack { queue: workflow.clone(), task_id: 1 };
    assert_eq!(h.reject(11, vec![ack_other_kind]), (0, OpError::TaskNotFound { task_id: 1 }));
}

#[test]
fn timers_are_due_in_time_then_id_order() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    let out = h.ok(10, vec![create(&r), add_timer(&r, 30), add_timer(&r, 10), add_timer(&r, 30), add_timer(&r, 20)]);
    assert_eq!(out, done(&[], &[1, 2, 3, 4]));
    assert_eq!(h.state.next_timer_due_ms(), Some(10));
    let due = |h: &Harness, now| h.state.due_timers(now).map(|(id, _)| id).collect::<Vec<_>>();
    assert_eq!(due(&h, 9), Vec::<u64>::new());
    assert_eq!(due(&h, 20), vec![2, 4]);
    assert_eq!(due(&h, i64::MAX), vec![2, 4, 1, 3]);
    let timer = h.state.timer(1).unwrap();
    assert_eq!((timer.run(), timer.due_ms(), timer.payload()), (&r, 30, &b("timer")));
    h.ok(11, vec![Op::RemoveTimer { timer_id: 2 }]);
    assert_eq!(h.state.next_timer_due_ms(), Some(20));
    assert_eq!(h.state.timer_count(), 3);
    assert_eq!(h.state.run(&r).unwrap().timer_ids().collect::<Vec<_>>(), vec![1, 3, 4]);
}

#[test]
fn timers_may_be_due_in_the_past_or_at_extremes() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(100, vec![create(&r), add_timer(&r, i64::MIN), add_timer(&r, i64::MAX), add_timer(&r, 5)]);
    assert_eq!(h.state.due_timers(i64::MIN).map(|(id, _)| id).collect::<Vec<_>>(), vec![1]);
    assert_eq!(h.state.due_timers(i64::MAX).count(), 3);
}

#[test]
fn tasks_and_timers_of_closed_runs_stay_until_retention() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r), enqueue(&queue("q"), &r), add_timer(&r, 5), close(&r)]);
    assert_eq!((h.state.task_count(), h.state.timer_count()), (1, 1));
    h.ok(11, vec![enqueue(&queue("q"), &r), add_timer(&r, 6)]);
    assert_eq!((h.state.task_count(), h.state.timer_count()), (2, 2));
}
