use super::*;

fn deduped(time_ms: i64, request_id: &str, result: &'static str, ops: Vec<Op>) -> Transition {
    Transition { time_ms, dedupe: dedupe(request_id, result), ops }
}

#[test]
fn a_retried_request_changes_nothing_and_returns_the_first_result() {
    let mut h = Harness::with(ShardConfig { dedupe_retention_ms: 100, ..Default::default() });
    let r = run("w", "r1");
    let first = deduped(10, "req", "r1", vec![create(&r), enqueue(&queue("q"), &r)]);
    assert_eq!(h.apply_t(&first), Ok(done(&[1], &[])));
    assert_eq!(h.state.dedupe_result("ns", "req"), Some(&b("r1")));
    let before = h.state.clone();
    let retry = deduped(109, "req", "other", vec![create(&run("w", "r2"))]);
    assert_eq!(h.apply_t(&retry), Ok(Applied::Duplicate { result: b("r1") }));
    let mut expected = before;
    expected.applied_index = h.index;
    assert_eq!(h.state, expected, "a duplicate changes nothing but the applied index");
}

#[test]
fn keys_are_per_namespace_and_request() {
    let mut h = Harness::new();
    h.apply_t(&deduped(10, "a", "1", vec![])).unwrap();
    assert_eq!(h.apply_t(&deduped(10, "b", "2", vec![])), Ok(done(&[], &[])));
    let other_ns = Transition {
        time_ms: 10,
        dedupe: Some(RequestDedupe { namespace: "ns2".into(), request_id: "a".into(), result: b("3") }),
        ops: vec![],
    };
    assert_eq!(h.apply_t(&other_ns), Ok(done(&[], &[])));
    assert_eq!(h.state.dedupe_count(), 3);
    assert_eq!(h.state.dedupe_result("ns2", "a"), Some(&b("3")));
    assert_eq!(h.state.dedupe_result("ns", "zz"), None);
}

#[test]
fn a_rejected_transition_is_not_remembered() {
    let mut h = Harness::new();
    let r = run("w", "r1");
    let (_, reason) = h.reject_t(&deduped(10, "req", "x", vec![close(&r)]));
    assert_eq!(reason, OpError::RunNotFound);
    assert_eq!(h.state.dedupe_count(), 0);
    assert_eq!(h.apply_t(&deduped(11, "req", "x", vec![create(&r)])), Ok(done(&[], &[])));
}

#[test]
fn entries_expire_after_the_retention() {
    let mut h = Harness::with(ShardConfig { dedupe_retention_ms: 100, ..Default::default() });
    h.apply_t(&deduped(10, "req", "first", vec![])).unwrap();
    h.ok(109, vec![]);
    assert_eq!(h.state.dedupe_count(), 1, "still live at 109");
    h.ok(110, vec![]);
    assert_eq!(h.state.dedupe_count(), 0, "applied at 10 is expired at 110");
    assert_eq!(h.apply_t(&deduped(111, "req", "second", vec![])), Ok(done(&[], &[])));
    assert_eq!(h.state.dedupe_result("ns", "req"), Some(&b("second")));
}

#[test]
fn an_expired_entry_not_yet_swept_is_ignored_and_replaced() {
    let config = ShardConfig { dedupe_retention_ms: 100, retention_sweep_max: 1, ..Default::default() };
    let mut h = Harness::with(config);
    h.apply_t(&deduped(10, "a", "1", vec![])).unwrap();
    h.apply_t(&deduped(11, "b", "2", vec![])).unwrap();
    h.ok(500, vec![]);
    assert_eq!(h.state.dedupe_count(), 1, "one entry swept per transition");
    assert_eq!(h.apply_t(&deduped(501, "b", "new", vec![])), Ok(done(&[], &[])));
    assert_eq!(h.state.dedupe_result("ns", "b"), Some(&b("new")));
    assert_eq!(h.state.dedupe_count(), 1);
}

#[test]
fn time_going_backwards_keeps_entries_live() {
    let mut h = Harness::with(ShardConfig { dedupe_retention_ms: 100, ..Default::default() });
    h.apply_t(&deduped(1000, "req", "first", vec![])).unwrap();
    assert_eq!(h.apply_t(&deduped(500, "req", "x", vec![])), Ok(Applied::Duplicate { result: b("first") }));
}

#[test]
fn zero_retention_remembers_nothing() {
    let mut h = Harness::with(ShardConfig { dedupe_retention_ms: 0, ..Default::default() });
    h.apply_t(&deduped(10, "req", "first", vec![])).unwrap();
    assert_eq!(h.state.dedupe_count(), 0);
    assert_eq!(h.apply_t(&deduped(10, "req", "again", vec![])), Ok(done(&[], &[])));
}

#[test]
fn the_result_is_copied_out_of_the_record() {
    let mut h = Harness::new();
    let record = Bytes::from(vec![9u8; 32]);
    let t = Transition {
        time_ms: 1,
        dedupe: Some(RequestDedupe { namespace: "ns".into(), request_id: "r".into(), result: record.slice(..4) }),
        ops: vec![],
    };
    h.apply_t(&t).unwrap();
    assert_ne!(h.state.dedupe_result("ns", "r").unwrap().as_ptr(), record.as_ptr());
}
