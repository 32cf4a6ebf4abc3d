use super::*;

#[test]
fn create_run_makes_it_current_and_open() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    assert_eq!(h.ok(10, vec![create(&r)]), done(&[], &[]));
    let state = h.state.run(&r).expect("run exists");
    assert_eq!(state.state(), &b("s0"));
    assert_eq!(state.next_event_id(), 1);
    assert_eq!(state.event_count(), 0);
    assert!(state.is_open());
    assert_eq!(state.close_time_ms(), None);
    assert!(state.history().is_empty());
    assert_eq!(h.state.current_run(&wf("w")), Some(CurrentRun { run_id: "r1", open: true }));
    assert_eq!((h.state.run_count(), h.state.open_run_count()), (1, 1));
}

#[test]
fn append_events_indexes_batches_by_position() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r), append(&r, 1, 3)]);
    h.ok(11, vec![append(&r, 4, 2)]);
    let state = h.state.run(&r).unwrap();
    assert_eq!(state.next_event_id(), 6);
    assert_eq!(
        state.history(),
        &[
            EventBatchRef { first_event_id: 1, count: 3, pos: Harness::pos(1) },
            EventBatchRef { first_event_id: 4, count: 2, pos: Harness::pos(2) },
        ]
    );
    assert_eq!(state.history_from(1).len(), 2);
    assert_eq!(state.history_from(3).len(), 2);
    assert_eq!(state.history_from(4)[0].first_event_id, 4);
    assert_eq!(state.history_from(5).len(), 1);
    assert!(state.history_from(6).is_empty());
}

#[test]
fn appends_of_one_run_in_one_transition_share_one_batch() {
    let mut h = Harness::new();
    let (r1, r2) = (run("w1", "r"), run("w2", "r"));
    h.ok(10, vec![create(&r1), create(&r2), append(&r1, 1, 2), append(&r2, 1, 1), append(&r1, 3, 2)]);
    let batch = EventBatchRef { first_event_id: 1, count: 4, pos: Harness::pos(1) };
    assert_eq!(h.state.run(&r1).unwrap().history(), &[batch]);
    assert_eq!(h.state.run(&r2).unwrap().history()[0].count, 1);
    assert_eq!(h.state.live_positions().collect::<Vec<_>>(), vec![Harness::pos(1)]);
}

#[test]
fn set_state_replaces_state_of_open_and_closed_runs() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r), set_state(&r, 1, "s1")]);
    assert_eq!(h.state.run(&r).unwrap().state(), &b("s1"));
    h.ok(11, vec![close(&r), set_state(&r, 2, "final")]);
    assert_eq!(h.state.run(&r).unwrap().state(), &b("final"));
    assert_eq!(h.state.run(&r).unwrap().state_version(), 3);
}

#[test]
fn close_run_keeps_it_current_but_closed() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    h.ok(10, vec![create(&r)]);
    h.ok(25, vec![close(&r)]);
    let state = h.state.run(&r).unwrap();
    assert!(!state.is_open());
    assert_eq!(state.close_time_ms(), Some(25));
    assert_eq!(h.state.current_run(&wf("w")), Some(CurrentRun { run_id: "r1", open: false }));
    assert_eq!((h.state.run_count(), h.state.open_run_count()), (1, 0));
}

#[test]
fn continue_as_new_closes_and_creates_in_one_transition() {
    let mut h = Harness::new();
    let (r1, r2) = (run("w", "r1"), run("w", "r2"));
    h.ok(10, vec![create(&r1)]);
    h.ok(20, vec![close(&r1), create(&r2), append(&r2, 1, 1)]);
    assert_eq!(h.state.current_run(&wf("w")), Some(CurrentRun { run_id: "r2", open: true }));
    assert!(!h.state.run(&r1).unwrap().is_open());
    assert_eq!(h.state.open_run_count(), 1);
}

#[test]
fn ops_see_earlier_ops_of_the_same_transition() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    let q = queue("q");
    let out = h.ok(10, vec![create(&r), append(&r, 1, 2), enqueue(&q, &r), add_timer(&r, 50), close(&r)]);
    assert_eq!(out, done(&[1], &[1]));
    assert_eq!(h.state.run(&r).unwrap().next_event_id(), 3);
}

#[test]
fn state_payloads_are_copied_out_of_the_record() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    let record = Bytes::from(vec![1u8; 64]);
    h.ok(10, vec![Op::CreateRun { run: r.clone(), state: record.slice(0..8) }]);
    let state = h.state.run(&r).unwrap().state();
    assert_eq!(&state[..], &record[0..8]);
    assert_ne!(state.as_ptr(), record.as_ptr(), "the state must not pin the log record");
}

#[test]
fn memory_tracks_what_is_held() {
    let mut h = Harness::with(ShardConfig { closed_run_retention_ms: 0, ..Default::default() });
    let empty = h.state.memory_bytes();
    assert_eq!(empty, 0);
    let r = run("w", "r1");
    h.ok(10, vec![create(&r), append(&r, 1, 2), enqueue(&queue("q"), &r), add_timer(&r, 5)]);
    let full = h.state.memory_bytes();
    assert!(full > 200, "a run with a task and a timer takes room: {full}");
    h.ok(11, vec![Op::SetState { run: r.clone(), expected_version: 1, state: Bytes::from(vec![0; 1000]) }]);
    assert!(h.state.memory_bytes() >= full + 990);
    h.ok(12, vec![close(&r)]);
    assert_eq!(h.state.run_count(), 0, "retention 0 drops the run at once");
    assert_eq!(h.state.memory_bytes(), empty);
}
