//! [`ShardState::restore`]: reads a snapshot back, checking every byte and every
//! invariant, so arbitrary input gives an error (never a panic, never a state that
//! could panic later). Only canonical snapshots are accepted: lists must be in
//! strictly ascending key order, so `snapshot(restore(b)) == b` for a current
//! (version 2) snapshot. A version-1 snapshot (no state versions) restores with
//! every run at state version 1, and snapshots again as version 2.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

use super::codec::{get_queue, get_run};
use super::run::{DedupeKey, Task, Timer};
use super::snapshot::{FLAG_CLOSED, FLAG_CURRENT, SNAPSHOT_VERSION, SNAPSHOT_VERSION_V1};
use super::tables::Tables;
use super::{RunKey, ShardConfig, ShardState};
use crate::codec::{DecodeError, Decoder};
use crate::log::LogPosition;
use crate::records::ShardId;

/// Fewest bytes of one list element: a run (key, flags, state version, state,
/// batch count; a version-1 run has no state version), a history batch, a backlog
/// (key, task count), a task, a timer, a dedupe entry.
const RUN_BYTES_MIN: usize = 12 + 1 + 8 + 4 + 4;
const RUN_BYTES_MIN_V1: usize = 12 + 1 + 4 + 4;
const BATCH_BYTES: usize = 24;
const BACKLOG_BYTES_MIN: usize = 9 + 4;
const TASK_BYTES_MIN: usize = 8 + 4 + 4;
const TIMER_BYTES_MIN: usize = 8 + 4 + 8 + 4;
const DEDUPE_BYTES_MIN: usize = 4 + 4 + 8 + 4;

fn bad(offset: usize, what: &'static str, detail: impl Into<String>) -> DecodeError {
    DecodeError::Invalid { what, offset, detail: detail.into() }
}

/// A byte string copied out of the snapshot, so the state does not pin its buffer.
fn owned(d: &mut Decoder) -> Result<Bytes, DecodeError> {
    Ok(Bytes::copy_from_slice(&d.bytes()?))
}

impl ShardState {
    /// Rebuilds a state from [`ShardState::snapshot`] bytes taken of shard `shard`.
    pub fn restore(shard: ShardId, config: ShardConfig, data: Bytes) -> Result<Self, DecodeError> {
        Self::restore_mapped(shard, config, data, &|pos| Some(pos))
    }

    /// [`ShardState::restore`] with every history position passed through
    /// `position_map`: a snapshot taken on another node names positions in *that*
    /// node's log, and the receiver maps each to where it wrote a copy of the record.
    /// A position the map does not know (`None`) is an error, as is a map that sends
    /// two positions of one run to the same place.
    pub fn restore_mapped(
        shard: ShardId,
        config: ShardConfig,
        data: Bytes,
        position_map: &dyn Fn(LogPosition) -> Option<LogPosition>,
    ) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(data);
        let (version, applied_index, mut tables) = get_header(&mut d, shard)?;
        let runs = get_runs(&mut d, &mut tables, version, position_map)?;
        get_backlogs(&mut d, &mut tables, &runs)?;
        get_timers(&mut d, &mut tables, &runs)?;
        get_dedupe(&mut d, &mut tables)?;
        let end = d.offset();
        d.finish()?;
        let state = Self { shard, config, applied_index, tables };
        state.verify().map_err(|e| bad(end, "snapshot", e.0))?;
        Ok(state)
    }
}

/// Reads the header: the version (2, or the legacy 1), the applied index and the
/// id counters.
fn get_header(d: &mut Decoder, shard: ShardId) -> Result<(u8, u64, Tables), DecodeError> {
    let version = d.u8()?;
    if version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_V1 {
        return Err(bad(0, "snapshot version", format!("{version}")));
    }
    let found = d.u32()?;
    if found != shard {
        return Err(bad(1, "snapshot shard", format!("snapshot of shard {found}, restoring shard {shard}")));
    }
    let applied_index = d.u64()?;
    let mut tables = Tables::new();
    let at = d.offset();
    tables.next_task_id = d.u64()?;
    tables.next_timer_id = d.u64()?;
    if tables.next_task_id == 0 || tables.next_timer_id == 0 {
        return Err(bad(at, "id counter", "ids start at 1"));
    }
    Ok((version, applied_index, tables))
}

/// Maps a snapshot's history position to this state's (see [`ShardState::restore_mapped`]).
type PositionMap<'a> = &'a dyn Fn(LogPosition) -> Option<LogPosition>;

fn get_runs(d: &mut Decoder, t: &mut Tables, version: u8, map: PositionMap) -> Result<Vec<Arc<RunKey>>, DecodeError> {
    let n = d.count(if version == SNAPSHOT_VERSION_V1 { RUN_BYTES_MIN_V1 } else { RUN_BYTES_MIN })?;
    let mut keys: Vec<Arc<RunKey>> = Vec::with_capacity(n);
    for _ in 0..n {
        let at = d.offset();
        let key = Arc::new(get_run(d)?);
        if keys.last().is_some_and(|prev| **prev >= *key) {
            return Err(bad(at, "run order", "runs must be in strictly ascending key order"));
        }
        get_run_body(d, t, &key, version, map)?;
        keys.push(key);
    }
    Ok(keys)
}

fn get_run_body(d: &mut Decoder, t: &mut Tables, key: &Arc<RunKey>, version: u8, map: PositionMap) -> Result<(), DecodeError> {
    let at = d.offset();
    let flags = d.u8()?;
    if flags & !(FLAG_CLOSED | FLAG_CURRENT) != 0 {
        return Err(bad(at, "run flags", format!("{flags:#04x}")));
    }
    let is_current = flags & FLAG_CURRENT != 0;
    let close_time_ms = if flags & FLAG_CLOSED != 0 { Some(d.i64()?) } else { None };
    if close_time_ms.is_none() && !is_current {
        return Err(bad(at, "run flags", "an open run must be its workflow's current run"));
    }
    // A version-1 snapshot predates state versions: every run is at version 1,
    // which is what it is on every replica (version-1 transitions never bump it).
    let state_version = match version {
        SNAPSHOT_VERSION_V1 => 1,
        _ => {
            let at = d.offset();
            let v = d.u64()?;
            if v == 0 {
                return Err(bad(at, "state version", "state versions start at 1"));
            }
            v
        }
    };
    t.insert_run(key.clone(), owned(d)?, state_version);
    get_batches(d, t, key, map)?;
    if is_current {
        if t.current.get(&**key).is_some() {
            return Err(bad(at, "run flags", "two current runs for one workflow"));
        }
        t.set_current(&**key, Some(key.clone()));
    }
    if let Some(at) = close_time_ms {
        t.close_run(key, at);
    }
    Ok(())
}

fn get_batches(d: &mut Decoder, t: &mut Tables, key: &Arc<RunKey>, map: PositionMap) -> Result<(), DecodeError> {
    let n = d.count(BATCH_BYTES)?;
    for _ in 0..n {
        let at = d.offset();
        let count = d.u64()?;
        let found = LogPosition { segment_id: d.u64()?, offset: d.u64()? };
        let pos = map(found).ok_or_else(|| bad(at, "history batch", format!("no copy of the record at {found:?}")))?;
        let next_event_id = t.runs[&**key].next_event_id;
        if count == 0 || next_event_id.checked_add(count).is_none() {
            return Err(bad(at, "history batch", format!("{count} events after event {}", next_event_id - 1)));
        }
        if t.positions.contains(&(pos, key.clone())) {
            return Err(bad(at, "history batch", format!("run refers to {pos:?} twice")));
        }
        let merged = t.append_batch(key, count, pos);
        assert!(!merged, "a batch at a new position cannot merge");
    }
    Ok(())
}

fn get_ordinal(d: &mut Decoder, runs: &[Arc<RunKey>]) -> Result<Arc<RunKey>, DecodeError> {
    let at = d.offset();
    let ordinal = d.u32()?;
    let run = runs.get(ordinal as usize).ok_or_else(|| bad(at, "run ordinal", format!("{ordinal} of {} runs", runs.len())))?;
    Ok(run.clone())
}

fn get_backlogs(d: &mut Decoder, t: &mut Tables, runs: &[Arc<RunKey>]) -> Result<(), DecodeError> {
    let n = d.count(BACKLOG_BYTES_MIN)?;
    let mut prev = None;
    let mut ids = BTreeSet::new();
    for _ in 0..n {
        let at = d.offset();
        let queue = Arc::new(get_queue(d)?);
        if prev.as_ref().is_some_and(|p: &Arc<_>| **p >= *queue) {
            return Err(bad(at, "backlog order", "backlogs must be in strictly ascending key order"));
        }
        let tasks = d.count(TASK_BYTES_MIN)?;
        if tasks == 0 {
            return Err(bad(at, "backlog", "empty backlogs are not stored"));
        }
        let mut last_id = 0;
        for _ in 0..tasks {
            let at = d.offset();
            let id = d.u64()?;
            if id <= last_id || id >= t.next_task_id || !ids.insert(id) {
                return Err(bad(at, "task id", format!("{id} (after {last_id}, next id {})", t.next_task_id)));
            }
            last_id = id;
            let task = Task { run: get_ordinal(d, runs)?, payload: owned(d)? };
            t.insert_task(queue.clone(), id, task);
        }
        prev = Some(queue);
    }
    Ok(())
}

fn get_timers(d: &mut Decoder, t: &mut Tables, runs: &[Arc<RunKey>]) -> Result<(), DecodeError> {
    let n = d.count(TIMER_BYTES_MIN)?;
    let mut last_id = 0;
    for _ in 0..n {
        let at = d.offset();
        let id = d.u64()?;
        if id <= last_id || id >= t.next_timer_id {
            return Err(bad(at, "timer id", format!("{id} (after {last_id}, next id {})", t.next_timer_id)));
        }
        last_id = id;
        let run = get_ordinal(d, runs)?;
        let timer = Timer { run, due_ms: d.i64()?, payload: owned(d)? };
        t.insert_timer(id, timer);
    }
    Ok(())
}

fn get_dedupe(d: &mut Decoder, t: &mut Tables) -> Result<(), DecodeError> {
    let n = d.count(DEDUPE_BYTES_MIN)?;
    let mut prev: Option<DedupeKey> = None;
    for _ in 0..n {
        let at = d.offset();
        let key = DedupeKey { namespace: d.string()?, request_id: d.string()? };
        if prev.as_ref().is_some_and(|p| *p >= key) {
            return Err(bad(at, "dedupe order", "dedupe entries must be in strictly ascending key order"));
        }
        let applied_ms = d.i64()?;
        t.remember(key.clone(), owned(d)?, applied_ms);
        prev = Some(key);
    }
    Ok(())
}
