//! Everything observable through the public API, compared with the model.

use super::model::Model;
use super::*;

pub(crate) fn assert_same(model: &Model, state: &ShardState) {
    state.verify().expect("invariants hold");
    assert_eq!(state.applied_index(), model.applied);
    let mut keys: Vec<&RunKey> = model.runs.iter().map(|r| &r.key).collect();
    keys.sort();
    assert_eq!(state.runs().map(|(k, _)| k).collect::<Vec<_>>(), keys);
    for key in all_runs() {
        assert_same_run(model, state, &key);
        let expected = model.current.iter().find(|(w, _)| *w == key.workflow()).map(|(_, r)| r);
        let open = expected.map(|r| model.run(r).unwrap().close.is_none());
        let expected = expected.map(|r| CurrentRun { run_id: &r.run_id, open: open.unwrap() });
        assert_eq!(state.current_run(&key.workflow()), expected, "current run of {key:?}");
    }
    assert_same_queues(model, state);
    assert_same_timers(model, state);
    for req in 0..REQUESTS {
        let expected = model.dedupe.iter().find(|e| e.0 == "ns" && e.1 == format!("d{req}")).map(|e| &e.2);
        assert_eq!(state.dedupe_result("ns", &format!("d{req}")), expected);
    }
    let open = model.runs.iter().filter(|r| r.close.is_none()).count();
    let counts = (model.runs.len(), open, model.tasks.len(), model.timers.len(), model.dedupe.len());
    assert_eq!(counts, (state.run_count(), state.open_run_count(), state.task_count(), state.timer_count(), state.dedupe_count()));
    assert_eq!(state.live_positions().collect::<Vec<_>>(), model.live_positions());
}

pub(crate) fn assert_same_run(model: &Model, state: &ShardState, key: &RunKey) {
    let (m, s) = match (model.run(key), state.run(key)) {
        (None, None) => return,
        (Some(m), Some(s)) => (m, s),
        (m, s) => panic!("run {key:?}: model {m:?}, state {s:?}"),
    };
    assert_eq!(
        (s.state(), s.state_version(), s.next_event_id(), s.close_time_ms(), s.history()),
        (&m.state, m.version, m.next, m.close, &m.refs[..]),
        "run {key:?}"
    );
    let mut tasks: Vec<u64> = model.tasks.iter().filter(|t| t.run == *key).map(|t| t.id).collect();
    tasks.sort();
    assert_eq!(s.task_ids().collect::<Vec<_>>(), tasks);
    let mut timers: Vec<u64> = model.timers.iter().filter(|t| t.run == *key).map(|t| t.id).collect();
    timers.sort();
    assert_eq!(s.timer_ids().collect::<Vec<_>>(), timers);
}

pub(crate) fn assert_same_queues(model: &Model, state: &ShardState) {
    let mut queues: Vec<QueueKey> = model.tasks.iter().map(|t| t.queue.clone()).collect();
    queues.sort();
    queues.dedup();
    assert_eq!(state.queues().cloned().collect::<Vec<_>>(), queues);
    for q in (0..QUEUES).map(queue_key) {
        let mut expected: Vec<(u64, &RunKey, &Bytes)> =
            model.tasks.iter().filter(|t| t.queue == q).map(|t| (t.id, &t.run, &t.payload)).collect();
        expected.sort();
        let got: Vec<_> = state.backlog(&q).map(|(id, t)| (id, t.run(), t.payload())).collect();
        assert_eq!(got, expected, "backlog {q:?}");
    }
}

pub(crate) fn assert_same_timers(model: &Model, state: &ShardState) {
    let mut expected: Vec<(i64, u64, &RunKey, &Bytes)> = model.timers.iter().map(|t| (t.due, t.id, &t.run, &t.payload)).collect();
    expected.sort();
    let got: Vec<_> = state.due_timers(i64::MAX).map(|(id, t)| (t.due_ms(), id, t.run(), t.payload())).collect();
    assert_eq!(got, expected);
    assert_eq!(state.next_timer_due_ms(), expected.first().map(|t| t.0));
    let due_by_50 = expected.iter().filter(|t| t.0 <= 50).count();
    assert_eq!(state.due_timers(50).count(), due_by_50);
}

/// The transition's record holds exactly the events the history index says.
pub(crate) fn assert_events_indexed(model: &Model, data: &Bytes, pos: LogPosition) {
    for r in &model.runs {
        let ids: Vec<u64> = events_of(data.clone(), &r.key).unwrap().iter().map(|(id, _)| *id).collect();
        let expected: Vec<u64> = r.refs.iter().filter(|b| b.pos == pos).flat_map(|b| b.first_event_id..b.end_event_id()).collect();
        assert_eq!(ids, expected, "events of {:?} at {pos:?}", r.key);
    }
}
