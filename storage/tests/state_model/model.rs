//! The reference model: plain vectors and linear scans, atomicity by applying
//! to a clone and keeping it only if every op succeeded.

use super::*;

#[derive(Debug, Clone)]
pub(crate) struct MRun {
    pub(crate) key: RunKey,
    pub(crate) state: Bytes,
    /// The state version: 1 at create, +1 per fenced SetState.
    pub(crate) version: u64,
    pub(crate) next: u64,
    pub(crate) close: Option<i64>,
    pub(crate) refs: Vec<EventBatchRef>,
}

#[derive(Debug, Clone)]
pub(crate) struct MTask {
    pub(crate) id: u64,
    pub(crate) queue: QueueKey,
    pub(crate) run: RunKey,
    pub(crate) payload: Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct MTimer {
    pub(crate) id: u64,
    pub(crate) run: RunKey,
    pub(crate) due: i64,
    pub(crate) payload: Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub(crate) config: ShardConfig,
    pub(crate) applied: u64,
    pub(crate) runs: Vec<MRun>,
    pub(crate) current: Vec<(WorkflowKey, RunKey)>,
    pub(crate) tasks: Vec<MTask>,
    pub(crate) timers: Vec<MTimer>,
    pub(crate) dedupe: Vec<(String, String, Bytes, i64)>,
    pub(crate) next_task: u64,
    pub(crate) next_timer: u64,
}

impl Model {
    pub(crate) fn new(config: ShardConfig) -> Self {
        let (runs, current, tasks, timers, dedupe) = (vec![], vec![], vec![], vec![], vec![]);
        Self { config, applied: 0, runs, current, tasks, timers, dedupe, next_task: 1, next_timer: 1 }
    }

    pub(crate) fn run(&self, key: &RunKey) -> Option<&MRun> {
        self.runs.iter().find(|r| r.key == *key)
    }

    pub(crate) fn run_mut(&mut self, key: &RunKey) -> Result<&mut MRun, OpError> {
        self.runs.iter_mut().find(|r| r.key == *key).ok_or(OpError::RunNotFound)
    }

    pub(crate) fn apply(&mut self, index: u64, pos: LogPosition, t: &Transition) -> Result<Applied, ApplyError> {
        if index <= self.applied {
            return Err(ApplyError::IndexNotIncreasing { index, applied_index: self.applied });
        }
        self.applied = index;
        if let Some(d) = &t.dedupe {
            let cutoff = t.time_ms.saturating_sub(self.config.dedupe_retention_ms.max(0));
            let live = self.dedupe.iter().find(|e| e.0 == d.namespace && e.1 == d.request_id && e.3 > cutoff);
            if let Some(e) = live {
                return Ok(Applied::Duplicate { result: e.2.clone() });
            }
        }
        let mut next = self.clone();
        let (mut task_ids, mut timer_ids) = (vec![], vec![]);
        for (i, op) in t.ops.iter().enumerate() {
            if matches!(op, Op::DeleteRun { .. }) && i + 1 != t.ops.len() {
                return Err(ApplyError::Rejected { op: i, reason: OpError::DeleteNotLast });
            }
            next.op(op, pos, t.time_ms, &mut task_ids, &mut timer_ids).map_err(|reason| ApplyError::Rejected { op: i, reason })?;
        }
        *self = next;
        if let Some(d) = &t.dedupe {
            self.dedupe.retain(|e| !(e.0 == d.namespace && e.1 == d.request_id));
            self.dedupe.push((d.namespace.clone(), d.request_id.clone(), d.result.clone(), t.time_ms));
        }
        self.expire(t.time_ms);
        Ok(Applied::Done { task_ids, timer_ids })
    }

    pub(crate) fn op(&mut self, op: &Op, pos: LogPosition, time: i64, tasks: &mut Vec<u64>, timers: &mut Vec<u64>) -> Result<(), OpError> {
        match op {
            Op::CreateRun { run, state } => self.create(run, state)?,
            Op::AppendEvents { run, first_event_id, events } => {
                self.append(run, *first_event_id, events.len() as u64, pos)?;
            }
            Op::SetState { run, expected_version, state } => {
                let r = self.run_mut(run)?;
                if r.version != *expected_version {
                    return Err(OpError::StateVersionMismatch { expected: *expected_version, actual: r.version });
                }
                r.version = r.version.checked_add(1).ok_or(OpError::IdsExhausted)?;
                r.state = state.clone();
            }
            Op::LegacySetState(legacy) => {
                self.run_mut(legacy.run())?.state = legacy.state().clone();
            }
            Op::CloseRun { run } => {
                let r = self.run_mut(run)?;
                if r.close.is_some() {
                    return Err(OpError::RunClosed);
                }
                r.close = Some(time);
            }
            Op::Enqueue { queue, run, task } => {
                self.run_mut(run)?;
                let max = self.config.backlog_tasks_max;
                if self.tasks.iter().filter(|t| t.queue == *queue).count() >= max {
                    return Err(OpError::BacklogFull { max });
                }
                let id = self.next_task;
                self.next_task += 1;
                tasks.push(id);
                self.tasks.push(MTask { id, queue: queue.clone(), run: run.clone(), payload: task.clone() });
            }
            Op::Ack { queue, task_id } => {
                let at = self.tasks.iter().position(|t| t.queue == *queue && t.id == *task_id);
                self.tasks.remove(at.ok_or(OpError::TaskNotFound { task_id: *task_id })?);
            }
            Op::AddTimer { run, due_ms, payload } => {
                self.run_mut(run)?;
                let max = self.config.timers_max_per_run;
                if self.timers.iter().filter(|t| t.run == *run).count() >= max {
                    return Err(OpError::TooManyTimers { max });
                }
                let id = self.next_timer;
                self.next_timer += 1;
                timers.push(id);
                self.timers.push(MTimer { id, run: run.clone(), due: *due_ms, payload: payload.clone() });
            }
            Op::RemoveTimer { timer_id } => {
                let at = self.timers.iter().position(|t| t.id == *timer_id);
                self.timers.remove(at.ok_or(OpError::TimerNotFound { timer_id: *timer_id })?);
            }
            Op::DeleteRun { run } => {
                if self.run_mut(run)?.close.is_none() {
                    return Err(OpError::RunOpen);
                }
                self.forget_run(run);
            }
        }
        Ok(())
    }

    pub(crate) fn create(&mut self, run: &RunKey, state: &Bytes) -> Result<(), OpError> {
        let wf = run.workflow();
        if let Some((_, cur)) = self.current.iter().find(|(w, _)| *w == wf) {
            if self.run(cur).unwrap().close.is_none() {
                return Err(OpError::RunAlreadyOpen { run_id: cur.run_id.clone() });
            }
        }
        if self.run(run).is_some() {
            return Err(OpError::RunExists);
        }
        self.runs.push(MRun { key: run.clone(), state: state.clone(), version: 1, next: 1, close: None, refs: vec![] });
        self.current.retain(|(w, _)| *w != wf);
        self.current.push((wf, run.clone()));
        Ok(())
    }

    pub(crate) fn append(&mut self, run: &RunKey, first: u64, n: u64, pos: LogPosition) -> Result<(), OpError> {
        let max = self.config.history_events_max;
        let r = self.run_mut(run)?;
        if r.close.is_some() {
            return Err(OpError::RunClosed);
        }
        if n == 0 {
            return Err(OpError::EmptyAppend);
        }
        if first != r.next {
            return Err(OpError::EventIdMismatch { expected: r.next, got: first });
        }
        if r.next - 1 + n > max {
            return Err(OpError::HistoryTooLong { max });
        }
        match r.refs.last_mut() {
            Some(last) if last.pos == pos => last.count += n,
            _ => r.refs.push(EventBatchRef { first_event_id: first, count: n, pos }),
        }
        r.next += n;
        Ok(())
    }

    pub(crate) fn expire(&mut self, now: i64) {
        let cutoff = now.saturating_sub(self.config.closed_run_retention_ms.max(0));
        let mut gone: Vec<(i64, RunKey)> =
            self.runs.iter().filter_map(|r| r.close.filter(|c| *c <= cutoff).map(|c| (c, r.key.clone()))).collect();
        gone.sort();
        for (_, key) in gone.into_iter().take(self.config.retention_sweep_max) {
            self.forget_run(&key);
        }
        let cutoff = now.saturating_sub(self.config.dedupe_retention_ms.max(0));
        let mut gone: Vec<(i64, String, String)> =
            self.dedupe.iter().filter(|e| e.3 <= cutoff).map(|e| (e.3, e.0.clone(), e.1.clone())).collect();
        gone.sort();
        for (_, ns, req) in gone.into_iter().take(self.config.retention_sweep_max) {
            self.dedupe.retain(|e| !(e.0 == ns && e.1 == req));
        }
    }

    /// Drops a run and everything hanging off it (retention, `DeleteRun`).
    pub(crate) fn forget_run(&mut self, key: &RunKey) {
        self.runs.retain(|r| r.key != *key);
        self.tasks.retain(|t| t.run != *key);
        self.timers.retain(|t| t.run != *key);
        self.current.retain(|(_, r)| r != key);
    }

    pub(crate) fn relocate(&mut self, from: LogPosition, to: LogPosition) -> usize {
        let mut moved = 0;
        for batch in self.runs.iter_mut().flat_map(|r| r.refs.iter_mut()).filter(|b| b.pos == from) {
            batch.pos = to;
            moved += 1;
        }
        moved
    }

    pub(crate) fn live_positions(&self) -> Vec<LogPosition> {
        let mut all: Vec<_> = self.runs.iter().flat_map(|r| r.refs.iter().map(|b| b.pos)).collect();
        all.sort();
        all.dedup();
        all
    }
}
