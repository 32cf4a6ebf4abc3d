//! [`ShardState::snapshot`]: the whole state as one canonical byte string (layout
//! in `docs/format-state.md`; [`ShardState::restore`] reads it back).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::codec::{put_queue, put_run};
use super::tables::Tables;
use super::{RunKey, ShardState};
use crate::codec::Encoder;

/// First byte of every snapshot. Version 2 added each run's state version;
/// [`ShardState::snapshot`] always writes version 2.
pub const SNAPSHOT_VERSION: u8 = 2;
/// The version before state versions: still restored (every run at state version
/// 1), never written.
pub const SNAPSHOT_VERSION_V1: u8 = 1;
/// Run flag: the run is closed (its close time follows the flags).
pub(super) const FLAG_CLOSED: u8 = 1;
/// Run flag: the run is its workflow's current run.
pub(super) const FLAG_CURRENT: u8 = 2;

/// A run's index in the snapshot's run list, by which tasks and timers name it.
type Ordinals<'a> = BTreeMap<&'a RunKey, u32>;

impl ShardState {
    /// Encodes the state: applied index, id counters, runs (with history refs and
    /// current flags), backlogs, timers and dedupe entries, each list in key
    /// order, so equal states give equal bytes. The config is not included.
    pub fn snapshot(&self) -> Bytes {
        let t = &self.tables;
        let mut e = Encoder::with_capacity(encoded_len(t));
        e.u8(SNAPSHOT_VERSION).u32(self.shard).u64(self.applied_index);
        e.u64(t.next_task_id).u64(t.next_timer_id);
        let ordinals = put_runs(&mut e, t);
        put_backlogs(&mut e, t, &ordinals);
        put_timers(&mut e, t, &ordinals);
        put_dedupe(&mut e, t);
        debug_assert_eq!(e.len(), encoded_len(t), "the snapshot length is computed exactly");
        e.finish()
    }
}

/// The exact length of the snapshot of `t`, so its buffer is allocated once at its
/// final size: a snapshot is tens of MiB at scale, and growing it by doubling would
/// allocate (and leave to the allocator) up to twice that.
fn encoded_len(t: &Tables) -> usize {
    let key = |k: &RunKey| 12 + k.namespace.len() + k.workflow_id.len() + k.run_id.len();
    let runs: usize =
        t.runs.iter().map(|(k, r)| key(k) + 1 + r.close_time_ms.map_or(0, |_| 8) + 8 + 4 + r.state.len() + 4 + 24 * r.history.len()).sum();
    let backlogs: usize = t
        .queues
        .iter()
        .map(|(q, b)| 9 + q.namespace.len() + q.name.len() + 4 + b.values().map(|t| 16 + t.payload.len()).sum::<usize>())
        .sum();
    let timers: usize = t.timers.values().map(|t| 24 + t.payload.len()).sum();
    let dedupe: usize = t.dedupe.iter().map(|(k, e)| 20 + k.namespace.len() + k.request_id.len() + e.result.len()).sum();
    29 + 4 + runs + 4 + backlogs + 4 + timers + 4 + dedupe
}

fn put_runs<'a>(e: &mut Encoder, t: &'a Tables) -> Ordinals<'a> {
    let current: BTreeSet<&RunKey> = t.current.runs().map(|k| &**k).collect();
    let mut ordinals = Ordinals::new();
    e.count(t.runs.len());
    for (key, run) in &t.runs {
        put_run(e, key);
        let closed = if run.is_open() { 0 } else { FLAG_CLOSED };
        let is_current = if current.contains(&**key) { FLAG_CURRENT } else { 0 };
        e.u8(closed | is_current);
        if let Some(at) = run.close_time_ms {
            e.i64(at);
        }
        e.u64(run.state_version).bytes(&run.state).count(run.history.len());
        for batch in &run.history {
            e.u64(batch.count).u64(batch.pos.segment_id).u64(batch.pos.offset);
        }
        let ordinal = u32::try_from(ordinals.len()).expect("run count fits u32 (checked by count)");
        ordinals.insert(&**key, ordinal);
    }
    ordinals
}

fn put_backlogs(e: &mut Encoder, t: &Tables, ordinals: &Ordinals) {
    e.count(t.queues.len());
    for (queue, backlog) in &t.queues {
        put_queue(e, queue);
        e.count(backlog.len());
        for (id, task) in backlog {
            e.u64(*id).u32(ordinals[&*task.run]).bytes(&task.payload);
        }
    }
}

fn put_timers(e: &mut Encoder, t: &Tables, ordinals: &Ordinals) {
    e.count(t.timers.len());
    for (id, timer) in &t.timers {
        e.u64(*id).u32(ordinals[&*timer.run]).i64(timer.due_ms).bytes(&timer.payload);
    }
}

fn put_dedupe(e: &mut Encoder, t: &Tables) {
    e.count(t.dedupe.len());
    for (key, entry) in &t.dedupe {
        e.str(&key.namespace).str(&key.request_id).i64(entry.applied_ms).bytes(&entry.result);
    }
}
