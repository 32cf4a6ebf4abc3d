//! Properties of the transition codec: every transition round-trips; every
//! truncation is an error; mangled or arbitrary bytes never panic; whatever
//! decodes re-encodes to the very same bytes (the encoding is canonical), except
//! that a version-1 transition re-encodes as version 2 (only the first byte
//! differs); and `events_of` agrees with a full decode.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use bytes::Bytes;
use hourglass_storage::state::*;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[ab]{0,2}", 1 => "\\PC{0,3}"]
}

fn blob() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn run() -> impl Strategy<Value = RunKey> {
    (text(), text(), text()).prop_map(|(namespace, workflow_id, run_id)| RunKey { namespace, workflow_id, run_id })
}

fn queue() -> impl Strategy<Value = QueueKey> {
    let kind = prop_oneof![Just(QueueKind::Workflow), Just(QueueKind::Activity)];
    (text(), text(), kind).prop_map(|(namespace, name, kind)| QueueKey { namespace, name, kind })
}

fn event_id() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0..8u64, 1 => any::<u64>(), 1 => Just(u64::MAX)]
}

#[path = "support/legacy.rs"]
mod legacy;
use legacy::legacy_set_state;

/// `decode(data)` gave `t`: the encoding is canonical for version 2; version 1
/// re-encodes as version 2, identical but for the first byte.
fn assert_canonical(t: &Transition, data: &Bytes) {
    let again = t.encode();
    assert_eq!(again[0], TRANSITION_VERSION);
    match data[0] {
        TRANSITION_VERSION => assert_eq!(&again, data, "decoding accepted a non-canonical encoding"),
        TRANSITION_VERSION_V1 => {
            assert_eq!(again[1..], data[1..], "a version-1 transition re-encodes as version 2");
            assert!(!t.ops.iter().any(|op| matches!(op, Op::SetState { .. })), "version 1 has no fenced SetState");
        }
        other => panic!("decoded version {other}"),
    }
    assert_eq!(Transition::decode(again).as_ref(), Ok(t));
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (run(), blob()).prop_map(|(run, state)| Op::CreateRun { run, state }),
        (run(), event_id(), prop::collection::vec(blob(), 0..4)).prop_map(|(run, first_event_id, events)| Op::AppendEvents {
            run,
            first_event_id,
            events
        }),
        (run(), event_id(), blob()).prop_map(|(run, expected_version, state)| Op::SetState { run, expected_version, state }),
        (run(), blob()).prop_map(|(run, state)| legacy_set_state(&run, &state)),
        run().prop_map(|run| Op::CloseRun { run }),
        (queue(), run(), blob()).prop_map(|(queue, run, task)| Op::Enqueue { queue, run, task }),
        (queue(), any::<u64>()).prop_map(|(queue, task_id)| Op::Ack { queue, task_id }),
        (run(), any::<i64>(), blob()).prop_map(|(run, due_ms, payload)| Op::AddTimer { run, due_ms, payload }),
        any::<u64>().prop_map(|timer_id| Op::RemoveTimer { timer_id }),
        run().prop_map(|run| Op::DeleteRun { run }),
    ]
}

fn transition() -> impl Strategy<Value = Transition> {
    let dedupe = (text(), text(), blob()).prop_map(|(namespace, request_id, result)| RequestDedupe { namespace, request_id, result });
    (any::<i64>(), prop::option::of(dedupe), prop::collection::vec(op(), 0..6)).prop_map(|(time_ms, dedupe, ops)| Transition {
        time_ms,
        dedupe,
        ops,
    })
}

/// What `events_of(t, run)` must return, computed from the decoded ops; `None`
/// when an event id of that run overflows.
fn expected_events(t: &Transition, run: &RunKey) -> Option<Vec<(u64, Bytes)>> {
    let mut out = Vec::new();
    for op in &t.ops {
        if let Op::AppendEvents { run: r, first_event_id, events } = op {
            if r == run {
                for (i, event) in events.iter().enumerate() {
                    out.push((first_event_id.checked_add(i as u64)?, event.clone()));
                }
            }
        }
    }
    Some(out)
}

fn runs_of(t: &Transition) -> Vec<RunKey> {
    let mut runs: Vec<RunKey> = t
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::AppendEvents { run, .. } => Some(run.clone()),
            _ => None,
        })
        .collect();
    runs.push(RunKey { namespace: "none".into(), workflow_id: String::new(), run_id: String::new() });
    runs
}

fn assert_events_agree(t: &Transition, data: &Bytes) {
    for run in runs_of(t) {
        match expected_events(t, &run) {
            Some(expected) => assert_eq!(events_of(data.clone(), &run).unwrap(), expected),
            None => assert!(events_of(data.clone(), &run).is_err()),
        }
    }
}

/// Applies byte edits: overwrite, insert or delete at a position.
fn mangle(data: &Bytes, edits: &[(usize, u8, u8)]) -> Bytes {
    let mut v = data.to_vec();
    for (at, kind, byte) in edits {
        let at = at % (v.len() + 1);
        match kind % 3 {
            0 if at < v.len() => v[at] = *byte,
            1 => v.insert(at, *byte),
            _ if at < v.len() => drop(v.remove(at)),
            _ => v.push(*byte),
        }
    }
    Bytes::from(v)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn transitions_round_trip(t in transition()) {
        let data = t.encode();
        prop_assert_eq!(data[0], TRANSITION_VERSION);
        prop_assert_eq!(&Transition::decode(data.clone()).unwrap(), &t);
        assert_events_agree(&t, &data);
    }

    #[test]
    fn every_truncation_is_an_error(t in transition()) {
        let data = t.encode();
        let run = runs_of(&t)[0].clone();
        for cut in 0..data.len() {
            prop_assert!(Transition::decode(data.slice(..cut)).is_err(), "cut at {}", cut);
            prop_assert!(events_of(data.slice(..cut), &run).is_err(), "cut at {}", cut);
        }
    }

    #[test]
    fn mangled_bytes_decode_canonically_or_fail_alike(
        t in transition(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
    ) {
        let data = mangle(&t.encode(), &edits);
        match Transition::decode(data.clone()) {
            Ok(decoded) => {
                assert_canonical(&decoded, &data);
                assert_events_agree(&decoded, &data);
            }
            Err(_) => {
                for run in runs_of(&t) {
                    prop_assert!(events_of(data.clone(), &run).is_err());
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..80), versioned in 0..3u8) {
        if versioned > 0 && !bytes.is_empty() {
            bytes[0] = if versioned == 1 { TRANSITION_VERSION } else { TRANSITION_VERSION_V1 };
        }
        let data = Bytes::from(bytes);
        if let Ok(t) = Transition::decode(data.clone()) {
            assert_canonical(&t, &data);
        }
        let _ = events_of(data, &RunKey { namespace: String::new(), workflow_id: String::new(), run_id: String::new() });
    }

    #[test]
    fn version_1_is_version_2_without_the_fenced_set_state(t in transition()) {
        let mut v1 = t.encode().to_vec();
        v1[0] = TRANSITION_VERSION_V1;
        let v1 = Bytes::from(v1);
        let fenced = t.ops.iter().any(|op| matches!(op, Op::SetState { .. } | Op::DeleteRun { .. }));
        match Transition::decode(v1.clone()) {
            Ok(decoded) => {
                prop_assert!(!fenced);
                prop_assert_eq!(&decoded, &t);
                assert_canonical(&decoded, &v1);
                assert_events_agree(&decoded, &v1);
            }
            Err(_) => {
                prop_assert!(fenced, "a version-1 transition failed to decode");
                prop_assert!(events_of(v1, &runs_of(&t)[0]).is_err());
            }
        }
    }
}
