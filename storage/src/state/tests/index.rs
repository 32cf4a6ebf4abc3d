use super::*;

#[test]
fn indexes_must_increase_but_may_skip() {
    let mut s = ShardState::new(1, ShardConfig::default());
    let t = Transition { time_ms: 1, dedupe: None, ops: vec![] };
    let pos = LogPosition { segment_id: 0, offset: 0 };
    assert_eq!(s.applied_index(), 0);
    assert_eq!(s.apply(0, pos, &t), Err(ApplyError::IndexNotIncreasing { index: 0, applied_index: 0 }));
    s.apply(3, pos, &t).unwrap();
    s.skip(4).unwrap();
    assert_eq!(s.applied_index(), 4);
    assert_eq!(s.skip(4), Err(ApplyError::IndexNotIncreasing { index: 4, applied_index: 4 }));
    assert_eq!(s.apply(2, pos, &t), Err(ApplyError::IndexNotIncreasing { index: 2, applied_index: 4 }));
    assert_eq!(s.applied_index(), 4);
    assert_eq!(s.shard(), 1);
}

#[test]
fn a_rejection_still_advances_the_applied_index() {
    let mut h = Harness::new();
    h.reject(1, vec![close(&run("w", "r"))]);
    assert_eq!(h.state.applied_index(), 1);
    assert_eq!(h.reject(2, vec![Op::RemoveTimer { timer_id: 1 }]).1, OpError::TimerNotFound { timer_id: 1 });
    assert_eq!(h.state.applied_index(), 2);
}

#[test]
fn errors_name_the_failing_op() {
    let mut h = Harness::new();
    let err = h.apply(1, vec![create(&run("w", "r")), Op::RemoveTimer { timer_id: 3 }]).unwrap_err();
    assert_eq!(err.op_error(), Some(&OpError::TimerNotFound { timer_id: 3 }));
    assert_eq!(err.to_string(), "op 1 rejected: timer 3 not found");
    assert_eq!(ApplyError::IndexNotIncreasing { index: 1, applied_index: 1 }.op_error(), None);
}
