use super::*;
use crate::codec::{DecodeError, Encoder};

/// A state with every kind of record, ids freed and reused, runs open and closed.
fn rich() -> Harness {
    let mut h = Harness::with(ShardConfig { closed_run_retention_ms: 1000, ..Default::default() });
    let (r1, r2, r3) = (run("w1", "a"), run("w1", "b"), run("w2", "a"));
    let (q1, q2) = (queue("q1"), queue("q2"));
    h.ok(1, vec![create(&r1), append(&r1, 1, 2), append(&r1, 3, 1), create(&r3), enqueue(&q1, &r1)]);
    h.ok(2, vec![append(&r1, 4, 1), enqueue(&q2, &r3), enqueue(&q1, &r3), add_timer(&r1, 50), add_timer(&r3, 40)]);
    h.ok(3, vec![close(&r1), create(&r2), Op::Ack { queue: q1.clone(), task_id: 1 }, Op::RemoveTimer { timer_id: 1 }]);
    h.ok(4, vec![set_state(&r3, 1, "s1"), set_state(&r3, 2, "s2"), set_state(&r1, 1, "closed")]);
    h.apply_t(&Transition { time_ms: 4, dedupe: dedupe("req", "result"), ops: vec![add_timer(&r2, 7)] }).unwrap();
    h.state.skip(9).unwrap();
    h.index = 9;
    h
}

#[test]
fn restore_of_a_snapshot_is_the_same_state() {
    for state in [ShardState::new(7, ShardConfig::default()), rich().state] {
        let bytes = state.snapshot();
        let restored = ShardState::restore(7, state.config().clone(), bytes.clone()).unwrap();
        assert_eq!(restored, state);
        assert_eq!(restored.memory_bytes(), state.memory_bytes());
        assert_eq!(restored.snapshot(), bytes);
    }
}

#[test]
fn a_restored_state_goes_on_exactly_like_the_original() {
    let mut a = rich();
    let mut b = Harness { state: ShardState::restore(7, a.state.config().clone(), a.state.snapshot()).unwrap(), index: a.index };
    let (r2, r3) = (run("w1", "b"), run("w2", "a"));
    for h in [&mut a, &mut b] {
        assert_eq!(h.ok(2000, vec![enqueue(&queue("q3"), &r2), add_timer(&r3, 1), close(&r3)]), done(&[4], &[4]));
        assert_eq!(h.state.run_count(), 2, "r1 expired");
    }
    assert_eq!(a.state, b.state);
}

#[test]
fn restore_copies_payloads_out_of_the_snapshot() {
    let h = rich();
    let bytes = h.state.snapshot();
    let restored = ShardState::restore(7, ShardConfig::default(), bytes.clone()).unwrap();
    let state = restored.run(&run("w1", "a")).unwrap().state();
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    assert!(!range.contains(&(state.as_ptr() as usize)), "restored state must not pin the snapshot");
}

#[test]
fn wrong_version_or_shard_is_rejected() {
    let bytes = rich().state.snapshot();
    for version in [0, 3] {
        let mut v = bytes.to_vec();
        v[0] = version;
        assert!(matches!(restore(v), Err(DecodeError::Invalid { what: "snapshot version", .. })));
    }
    let err = ShardState::restore(8, ShardConfig::default(), bytes).unwrap_err();
    assert!(matches!(err, DecodeError::Invalid { what: "snapshot shard", .. }));
}

#[test]
fn every_truncation_and_any_trailing_byte_is_an_error() {
    let bytes = rich().state.snapshot();
    for cut in 0..bytes.len() {
        assert!(restore(bytes[..cut].to_vec()).is_err(), "cut at {cut}");
    }
    let mut long = bytes.to_vec();
    long.push(0);
    assert_eq!(restore(long), Err(DecodeError::Trailing { trailing: 1 }));
}

fn restore(bytes: Vec<u8>) -> Result<ShardState, DecodeError> {
    ShardState::restore(7, ShardConfig::default(), Bytes::from(bytes))
}

/// Hand-built snapshots, to reach every check of restore.
struct Snap(Encoder, u8);

impl Snap {
    fn new(next_task_id: u64, next_timer_id: u64, runs: usize) -> Self {
        Self::of_version(SNAPSHOT_VERSION, next_task_id, next_timer_id, runs)
    }
    fn of_version(version: u8, next_task_id: u64, next_timer_id: u64, runs: usize) -> Self {
        let mut e = Encoder::new();
        e.u8(version).u32(7).u64(0).u64(next_task_id).u64(next_timer_id).count(runs);
        Self(e, version)
    }
    fn run(self, workflow_id: &str, flags: u8, batches: &[(u64, u64)]) -> Self {
        self.run_at(workflow_id, flags, 1, batches)
    }
    /// A run at `state_version` (not written in a version-1 snapshot).
    fn run_at(mut self, workflow_id: &str, flags: u8, state_version: u64, batches: &[(u64, u64)]) -> Self {
        self.0.str("ns").str(workflow_id).str("r").u8(flags);
        if flags & 1 != 0 {
            self.0.i64(5);
        }
        if self.1 != SNAPSHOT_VERSION_V1 {
            self.0.u64(state_version);
        }
        self.0.bytes(b"state").count(batches.len());
        for (count, offset) in batches {
            self.0.u64(*count).u64(0).u64(*offset);
        }
        self
    }
    fn raw(mut self, f: impl FnOnce(&mut Encoder)) -> Self {
        f(&mut self.0);
        self
    }
    fn restore(self) -> Result<ShardState, DecodeError> {
        restore(self.0.finish().to_vec())
    }
}

const OPEN: u8 = 2;
const CLOSED: u8 = 1;

fn no_lists(e: &mut Encoder) {
    e.count(0).count(0).count(0);
}

fn invalid_what(result: Result<ShardState, DecodeError>) -> &'static str {
    match result {
        Err(DecodeError::Invalid { what, .. }) => what,
        other => panic!("expected an invalid snapshot, got {other:?}"),
    }
}

#[test]
fn a_hand_built_snapshot_restores() {
    let state = Snap::new(1, 1, 2).run("a", OPEN, &[(2, 0), (1, 8)]).run("b", CLOSED, &[]).raw(no_lists).restore().unwrap();
    assert_eq!(state.run(&run("a", "r")).unwrap().next_event_id(), 4);
    assert_eq!(state.current_run(&wf("b")), None);
}

#[test]
fn malformed_runs_are_rejected() {
    let cases = [
        (Snap::new(1, 1, 2).run("b", OPEN, &[]).run("a", OPEN, &[]), "run order"),
        (Snap::new(1, 1, 2).run("a", OPEN, &[]).run("a", OPEN, &[]), "run order"),
        (Snap::new(1, 1, 1).run("a", 0, &[]), "run flags"),
        (Snap::new(1, 1, 1).run("a", 4 | OPEN, &[]), "run flags"),
        (Snap::new(1, 1, 1).run("a", OPEN, &[(0, 0)]), "history batch"),
        (Snap::new(1, 1, 1).run("a", OPEN, &[(u64::MAX, 0)]), "history batch"),
        (Snap::new(1, 1, 1).run("a", OPEN, &[(1, 0), (1, 0)]), "history batch"),
        (Snap::new(0, 1, 0), "id counter"),
        (Snap::new(1, 1, 1).run_at("a", OPEN, 0, &[]), "state version"),
    ];
    for (snap, what) in cases {
        assert_eq!(invalid_what(snap.raw(no_lists).restore()), what);
    }
}

#[test]
fn two_current_runs_of_one_workflow_are_rejected() {
    let mut e = Encoder::new();
    e.u8(SNAPSHOT_VERSION).u32(7).u64(0).u64(1).u64(1).count(2);
    for run_id in ["r1", "r2"] {
        e.str("ns").str("w").str(run_id).u8(OPEN).u64(1).bytes(b"").count(0);
    }
    no_lists(&mut e);
    assert_eq!(invalid_what(restore(e.finish().to_vec())), "run flags");
}

fn backlog(e: &mut Encoder, name: &str, tasks: &[(u64, u32)]) {
    e.str("ns").str(name).u8(QueueKind::Activity as u8).count(tasks.len());
    for (id, ordinal) in tasks {
        e.u64(*id).u32(*ordinal).bytes(b"t");
    }
}

#[test]
fn malformed_backlogs_are_rejected() {
    type Case = (fn(&mut Encoder), &'static str);
    let cases: [Case; 7] = [
        (|e| backlog(e, "q", &[]), "backlog"),
        (|e| backlog(e, "q", &[(2, 0), (1, 0)]), "task id"),
        (|e| backlog(e, "q", &[(0, 0)]), "task id"),
        (|e| backlog(e, "q", &[(5, 0)]), "task id"),
        (|e| backlog(e, "q", &[(1, 1)]), "run ordinal"),
        (
            |e| {
                e.count(2);
                backlog(e, "b", &[(1, 0)]);
                backlog(e, "a", &[(2, 0)])
            },
            "backlog order",
        ),
        (
            |e| {
                e.count(2);
                backlog(e, "a", &[(1, 0)]);
                backlog(e, "b", &[(1, 0)])
            },
            "task id",
        ),
    ];
    for (i, (lists, what)) in cases.into_iter().enumerate() {
        let snap = Snap::new(5, 1, 1).run("a", OPEN, &[]).raw(|e| {
            if i < 5 {
                e.count(1);
            }
            lists(e);
            e.count(0).count(0);
        });
        assert_eq!(invalid_what(snap.restore()), what, "case {i}");
    }
}

#[test]
fn malformed_timers_and_dedupe_are_rejected() {
    let timers = |ids: &'static [u64]| {
        move |e: &mut Encoder| {
            e.count(0).count(ids.len());
            for id in ids {
                e.u64(*id).u32(0).i64(1).bytes(b"");
            }
            e.count(0);
        }
    };
    let snap = || Snap::new(1, 5, 1).run("a", OPEN, &[]);
    assert_eq!(invalid_what(snap().raw(timers(&[2, 2])).restore()), "timer id");
    assert_eq!(invalid_what(snap().raw(timers(&[0])).restore()), "timer id");
    assert_eq!(invalid_what(snap().raw(timers(&[5])).restore()), "timer id");
    assert!(snap().raw(timers(&[1, 4])).restore().is_ok());
    let dedupe = |e: &mut Encoder| {
        e.count(0).count(0).count(2);
        e.str("ns").str("b").i64(1).bytes(b"");
        e.str("ns").str("a").i64(1).bytes(b"");
    };
    assert_eq!(invalid_what(snap().raw(dedupe).restore()), "dedupe order");
}

#[test]
fn forged_counts_fail_without_allocating() {
    let mut e = Encoder::new();
    e.u8(SNAPSHOT_VERSION).u32(7).u64(0).u64(1).u64(1).u32(u32::MAX);
    assert_eq!(invalid_what(restore(e.finish().to_vec())), "count");
}

#[test]
fn state_versions_round_trip_through_a_snapshot() {
    let h = rich();
    let versions = |s: &ShardState| s.runs().map(|(k, r)| (k.clone(), r.state_version())).collect::<Vec<_>>();
    assert_eq!(versions(&h.state), vec![(run("w1", "a"), 2), (run("w1", "b"), 1), (run("w2", "a"), 3)]);
    let restored = ShardState::restore(7, h.state.config().clone(), h.state.snapshot()).unwrap();
    assert_eq!(versions(&restored), versions(&h.state));
    let state = Snap::new(1, 1, 1).run_at("a", OPEN, u64::MAX, &[]).raw(no_lists).restore().unwrap();
    assert_eq!(state.run(&run("a", "r")).unwrap().state_version(), u64::MAX);
}

#[test]
fn a_version_1_snapshot_restores_every_run_at_state_version_1() {
    let v1 = Snap::of_version(SNAPSHOT_VERSION_V1, 1, 1, 2).run("a", OPEN, &[(2, 0), (1, 8)]).run("b", CLOSED, &[]).raw(no_lists);
    let v1 = v1.0.finish();
    let state = restore(v1.to_vec()).unwrap();
    for (_, r) in state.runs() {
        assert_eq!(r.state_version(), 1);
    }
    assert_eq!(state.run(&run("a", "r")).unwrap().next_event_id(), 4);
    let v2 = Snap::new(1, 1, 2).run("a", OPEN, &[(2, 0), (1, 8)]).run("b", CLOSED, &[]).raw(no_lists).0.finish();
    assert_eq!(state.snapshot(), v2, "it snapshots again as version 2");
    assert_eq!(restore(v2.to_vec()).unwrap(), state);
    for cut in 0..v1.len() {
        assert!(restore(v1[..cut].to_vec()).is_err(), "cut at {cut}");
    }
}

/// A snapshot from another node restores with every history position mapped to
/// where this node keeps its copy; a position the map lacks, or a map that merges
/// two of one run's positions, is an error.
#[test]
fn restore_mapped_rewrites_every_history_position() {
    let h = rich();
    let bytes = h.state.snapshot();
    let moved = |p: LogPosition| LogPosition { segment_id: p.segment_id + 100, offset: p.offset * 2 };
    let mapped = ShardState::restore_mapped(7, h.state.config().clone(), bytes.clone(), &|p| Some(moved(p))).unwrap();
    let mut expected = h.state.clone();
    for pos in h.state.live_positions().collect::<Vec<_>>() {
        expected.relocate(pos, moved(pos));
    }
    assert_eq!(mapped, expected);
    assert_eq!(mapped.live_positions().collect::<Vec<_>>(), h.state.live_positions().map(moved).collect::<Vec<_>>());

    let err = ShardState::restore_mapped(7, ShardConfig::default(), bytes.clone(), &|_| None).unwrap_err();
    assert!(matches!(err, DecodeError::Invalid { what: "history batch", .. }), "{err}");
    let same = |_| Some(LogPosition { segment_id: 1, offset: 0 });
    let err = ShardState::restore_mapped(7, ShardConfig::default(), bytes, &same).unwrap_err();
    assert!(matches!(err, DecodeError::Invalid { what: "history batch", .. }), "{err}");
}
