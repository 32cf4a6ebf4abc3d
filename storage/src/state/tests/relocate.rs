use super::*;

fn p(segment_id: u64, offset: u64) -> LogPosition {
    LogPosition { segment_id, offset }
}

/// Two runs appending in one record at pos(1), one run alone at pos(2).
fn two_runs() -> (Harness, RunKey, RunKey) {
    let mut h = Harness::new();
    let (r1, r2) = (run("w1", "r"), run("w2", "r"));
    h.ok(1, vec![create(&r1), create(&r2), append(&r1, 1, 1), append(&r2, 1, 2)]);
    h.ok(2, vec![append(&r1, 2, 1)]);
    (h, r1, r2)
}

#[test]
fn live_positions_lists_each_referenced_record_once() {
    let (h, _, _) = two_runs();
    assert_eq!(h.state.live_positions().collect::<Vec<_>>(), vec![Harness::pos(1), Harness::pos(2)]);
    assert_eq!(h.state.live_positions_in(0).collect::<Vec<_>>(), vec![Harness::pos(1), Harness::pos(2)]);
    assert_eq!(h.state.live_positions_in(1).count(), 0);
}

#[test]
fn relocate_moves_every_ref_to_the_record() {
    let (mut h, r1, r2) = two_runs();
    let to = p(9, 4096);
    assert_eq!(h.state.relocate(Harness::pos(1), to), 2);
    h.state.verify().unwrap();
    assert_eq!(h.state.run(&r1).unwrap().history()[0].pos, to);
    assert_eq!(h.state.run(&r1).unwrap().history()[1].pos, Harness::pos(2));
    assert_eq!(h.state.run(&r2).unwrap().history()[0].pos, to);
    assert_eq!(h.state.live_positions().collect::<Vec<_>>(), vec![Harness::pos(2), to]);
    assert_eq!(h.state.live_positions_in(9).collect::<Vec<_>>(), vec![to]);
}

#[test]
fn relocating_an_unreferenced_position_or_in_place_changes_nothing() {
    let (mut h, _, _) = two_runs();
    let before = h.state.clone();
    assert_eq!(h.state.relocate(p(7, 7), p(8, 8)), 0);
    assert_eq!(h.state.relocate(Harness::pos(1), Harness::pos(1)), 2);
    assert_eq!(h.state, before);
}

#[test]
fn appends_after_a_relocation_start_a_new_batch() {
    let (mut h, r1, _) = two_runs();
    h.state.relocate(Harness::pos(2), p(9, 0));
    h.ok(3, vec![append(&r1, 3, 1)]);
    assert_eq!(h.state.run(&r1).unwrap().history().len(), 3);
}

#[test]
#[should_panic(expected = "already referenced")]
fn relocating_onto_a_position_the_run_uses_is_a_bug() {
    let (mut h, _, _) = two_runs();
    h.state.relocate(Harness::pos(1), Harness::pos(2));
}
