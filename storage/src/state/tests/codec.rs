use super::*;
use crate::codec::DecodeError;

fn every_op() -> Transition {
    let (r1, r2) = (run("w1", "r"), run("w2", "r"));
    let q = QueueKey { kind: QueueKind::Workflow, ..queue("q") };
    Transition {
        time_ms: -42,
        dedupe: dedupe("req", "result"),
        ops: vec![
            create(&r1),
            append(&r1, 1, 3),
            set_state(&r1, 1, "s1"),
            Op::SetState { run: r2.clone(), expected_version: u64::MAX, state: Bytes::new() },
            Op::LegacySetState(LegacySetState { run: r2.clone(), state: b("legacy") }),
            append(&r2, 7, 1),
            close(&r2),
            enqueue(&q, &r1),
            Op::Ack { queue: q.clone(), task_id: 9 },
            add_timer(&r1, i64::MIN),
            Op::RemoveTimer { timer_id: u64::MAX },
            Op::AppendEvents { run: r1.clone(), first_event_id: 4, events: vec![Bytes::new()] },
        ],
    }
}

#[test]
fn every_op_round_trips() {
    let t = every_op();
    let bytes = t.encode();
    assert_eq!(bytes[0], TRANSITION_VERSION);
    assert_eq!(Transition::decode(bytes.clone()).unwrap(), t);
    let empty = Transition { time_ms: 0, dedupe: None, ops: vec![] };
    assert_eq!(Transition::decode(empty.encode()).unwrap(), empty);
}

#[test]
fn the_size_hint_covers_the_encoding() {
    let t = every_op();
    assert!(t.encoded_len_hint() >= t.encode().len());
}

#[test]
fn decoding_is_zero_copy() {
    let bytes = every_op().encode();
    let t = Transition::decode(bytes.clone()).unwrap();
    let Op::AppendEvents { events, .. } = &t.ops[1] else { panic!("op 1 appends") };
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    assert!(range.contains(&(events[0].as_ptr() as usize)));
}

#[test]
fn every_truncation_and_any_trailing_byte_is_an_error() {
    let bytes = every_op().encode();
    for cut in 0..bytes.len() {
        assert!(Transition::decode(bytes.slice(..cut)).is_err(), "cut at {cut}");
        assert!(events_of(bytes.slice(..cut), &run("w1", "r")).is_err(), "cut at {cut}");
    }
    let mut long = bytes.to_vec();
    long.push(0);
    assert_eq!(Transition::decode(Bytes::from(long.clone())), Err(DecodeError::Trailing { trailing: 1 }));
    assert_eq!(events_of(Bytes::from(long), &run("w1", "r")), Err(DecodeError::Trailing { trailing: 1 }));
}

/// The transition `{time 0, no dedupe, [op]}` with the op bytes given raw.
fn with_raw_op(op: &[u8]) -> Bytes {
    let mut v = vec![TRANSITION_VERSION];
    v.extend_from_slice(&0i64.to_le_bytes());
    v.push(0);
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(op);
    Bytes::from(v)
}

fn invalid_what(result: Result<impl std::fmt::Debug, DecodeError>) -> &'static str {
    match result {
        Err(DecodeError::Invalid { what, .. }) => what,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn unknown_tags_versions_kinds_and_flags_are_rejected() {
    let r = run("w", "r");
    let mut timer = vec![0u8; 9];
    timer[0] = 99;
    assert_eq!(invalid_what(Transition::decode(with_raw_op(&timer))), "op tag");
    assert_eq!(invalid_what(events_of(with_raw_op(&timer), &r)), "op tag");
    timer[0] = 0;
    assert_eq!(invalid_what(Transition::decode(with_raw_op(&timer))), "op tag");

    let mut bytes = every_op().encode().to_vec();
    bytes[0] = 0;
    assert_eq!(invalid_what(Transition::decode(Bytes::from(bytes.clone()))), "transition version");
    bytes[0] = TRANSITION_VERSION;
    bytes[9] = 2;
    assert_eq!(invalid_what(Transition::decode(Bytes::from(bytes.clone()))), "bool");
    assert_eq!(invalid_what(events_of(Bytes::from(bytes), &r)), "bool");

    let ack = Transition { time_ms: 0, dedupe: None, ops: vec![Op::Ack { queue: queue("q"), task_id: 1 }] };
    let mut bytes = ack.encode().to_vec();
    let kind_at = bytes.len() - 9;
    bytes[kind_at] = 3;
    assert_eq!(invalid_what(Transition::decode(Bytes::from(bytes.clone()))), "queue kind");
    assert_eq!(invalid_what(events_of(Bytes::from(bytes), &r)), "queue kind");
}

#[test]
fn invalid_utf8_is_rejected_by_decode_and_events_of_alike() {
    let t = Transition { time_ms: 0, dedupe: None, ops: vec![close(&run("w", "r"))] };
    let mut bytes = t.encode().to_vec();
    let last = bytes.len() - 1;
    bytes[last] = 0xff;
    assert_eq!(invalid_what(Transition::decode(Bytes::from(bytes.clone()))), "utf-8 string");
    assert_eq!(invalid_what(events_of(Bytes::from(bytes), &run("w", "r"))), "utf-8 string");
}

#[test]
fn forged_counts_are_rejected_before_allocating() {
    let mut v = vec![TRANSITION_VERSION];
    v.extend_from_slice(&0i64.to_le_bytes());
    v.push(0);
    v.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(invalid_what(Transition::decode(Bytes::from(v))), "count");
}

#[test]
fn events_of_returns_one_runs_events_in_order_zero_copy() {
    let bytes = every_op().encode();
    let got = events_of(bytes.clone(), &run("w1", "r")).unwrap();
    let ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    assert_eq!(got[0].1, Bytes::from("event 0"));
    assert_eq!(got[3].1, Bytes::new());
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    assert!(range.contains(&(got[0].1.as_ptr() as usize)));
    assert_eq!(events_of(bytes.clone(), &run("w2", "r")).unwrap(), vec![(7, Bytes::from("event 0"))]);
    assert!(events_of(bytes.clone(), &run("w3", "r")).unwrap().is_empty());
    assert!(events_of(bytes, &RunKey { namespace: "other".into(), ..run("w1", "r") }).unwrap().is_empty());
}

#[test]
fn events_of_rejects_event_ids_past_u64() {
    let r = run("w", "r");
    let t = Transition { time_ms: 0, dedupe: None, ops: vec![append(&r, u64::MAX, 2)] };
    assert_eq!(invalid_what(events_of(t.encode(), &r)), "event id");
    assert!(events_of(t.encode(), &run("w", "other")).unwrap().is_empty());
    let one = Transition { time_ms: 0, dedupe: None, ops: vec![append(&r, u64::MAX, 1)] };
    assert_eq!(events_of(one.encode(), &r).unwrap()[0].0, u64::MAX);
}

/// `every_op` without its fenced `SetState`s, which version 1 does not have.
fn every_v1_op() -> Transition {
    let mut t = every_op();
    t.ops.retain(|op| !matches!(op, Op::SetState { .. }));
    t
}

/// `t` encoded as version 1: version 2 bytes with the other first byte (valid
/// only for a transition with no fenced `SetState`).
fn encode_v1(t: &Transition) -> Bytes {
    let mut v = t.encode().to_vec();
    v[0] = TRANSITION_VERSION_V1;
    Bytes::from(v)
}

#[test]
fn set_state_bytes_are_as_specified() {
    let t = Transition { time_ms: 5, dedupe: None, ops: vec![set_state(&run("w", "r"), 0x0102, "st")] };
    let mut expected = vec![2u8];
    expected.extend_from_slice(&5i64.to_le_bytes());
    expected.push(0);
    expected.extend_from_slice(&1u32.to_le_bytes());
    expected.push(9);
    for s in ["ns", "w", "r"] {
        expected.extend_from_slice(&(s.len() as u32).to_le_bytes());
        expected.extend_from_slice(s.as_bytes());
    }
    expected.extend_from_slice(&0x0102u64.to_le_bytes());
    expected.extend_from_slice(&2u32.to_le_bytes());
    expected.extend_from_slice(b"st");
    assert_eq!(&t.encode()[..], &expected[..]);

    let legacy =
        Transition { time_ms: 5, dedupe: None, ops: vec![Op::LegacySetState(LegacySetState { run: run("w", "r"), state: b("st") })] };
    let mut expected_legacy = expected.clone();
    expected_legacy[14] = 3;
    expected_legacy.drain(expected_legacy.len() - 14..expected_legacy.len() - 6);
    assert_eq!(&legacy.encode()[..], &expected_legacy[..]);
}

#[test]
fn version_1_transitions_still_decode_with_unchecked_set_state() {
    let t = every_v1_op();
    let v1 = encode_v1(&t);
    let decoded = Transition::decode(v1.clone()).unwrap();
    assert_eq!(decoded, t);
    let Op::LegacySetState(legacy) = &decoded.ops[2] else { panic!("op 2 is the version-1 SetState") };
    assert_eq!((legacy.run(), legacy.state()), (&run("w2", "r"), &b("legacy")));
    assert_eq!(decoded.encode()[1..], v1[1..], "re-encodes as version 2, differing only in the version byte");
    assert_eq!(decoded.encode()[0], TRANSITION_VERSION);
    for r in [run("w1", "r"), run("w2", "r")] {
        assert_eq!(events_of(v1.clone(), &r).unwrap(), events_of(t.encode(), &r).unwrap());
    }
    for cut in 0..v1.len() {
        assert!(Transition::decode(v1.slice(..cut)).is_err(), "cut at {cut}");
    }
}

#[test]
fn a_fenced_set_state_is_not_a_version_1_op() {
    let r = run("w", "r");
    let t = Transition { time_ms: 0, dedupe: None, ops: vec![set_state(&r, 1, "s")] };
    let mut v1 = t.encode().to_vec();
    v1[0] = TRANSITION_VERSION_V1;
    assert_eq!(invalid_what(Transition::decode(Bytes::from(v1.clone()))), "op tag");
    assert_eq!(invalid_what(events_of(Bytes::from(v1), &r)), "op tag");
    let mut v3 = t.encode().to_vec();
    v3[0] = 3;
    assert_eq!(invalid_what(Transition::decode(Bytes::from(v3.clone()))), "transition version");
    assert_eq!(invalid_what(events_of(Bytes::from(v3), &r)), "transition version");
}
