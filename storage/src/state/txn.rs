//! One transition's ops, applied all or none: each op checks its preconditions
//! against the state left by the ops before it, then changes the tables through
//! their primitives and logs how to undo that. A failing op rolls back the log.

use std::sync::Arc;

use bytes::Bytes;

use super::run::{RunState, Task, Timer};
use super::tables::Tables;
use super::{Applied, ApplyError, LegacySetState, Op, OpError, QueueKey, RunKey, ShardConfig, Transition};
use crate::log::LogPosition;

/// How to take back one applied op.
enum Undo {
    Create {
        run: Arc<RunKey>,
        prev_current: Option<Arc<RunKey>>,
    },
    Append {
        run: Arc<RunKey>,
        count: u64,
        merged: bool,
    },
    SetState {
        run: Arc<RunKey>,
        old: Bytes,
        old_version: u64,
    },
    Close {
        run: Arc<RunKey>,
    },
    Enqueue {
        queue: Arc<QueueKey>,
        task_id: u64,
    },
    Ack {
        queue: Arc<QueueKey>,
        task_id: u64,
        task: Task,
    },
    AddTimer {
        timer_id: u64,
    },
    RemoveTimer {
        timer_id: u64,
        timer: Timer,
    },
    /// `DeleteRun` is always the last op: once it applied, nothing is rolled back.
    Delete,
}

pub(super) struct Txn<'a> {
    tables: &'a mut Tables,
    config: &'a ShardConfig,
    pos: LogPosition,
    time_ms: i64,
    undo: Vec<Undo>,
    task_ids: Vec<u64>,
    timer_ids: Vec<u64>,
}

impl<'a> Txn<'a> {
    /// Applies every op of `t`, or none.
    pub fn run(tables: &'a mut Tables, config: &'a ShardConfig, pos: LogPosition, t: &Transition) -> Result<Applied, ApplyError> {
        let ids = (tables.next_task_id, tables.next_timer_id);
        let mut txn = Txn {
            tables,
            config,
            pos,
            time_ms: t.time_ms,
            undo: Vec::with_capacity(t.ops.len()),
            task_ids: Vec::new(),
            timer_ids: Vec::new(),
        };
        for (op, change) in t.ops.iter().enumerate() {
            let result = match change {
                Op::DeleteRun { .. } if op + 1 != t.ops.len() => Err(OpError::DeleteNotLast),
                _ => txn.op(change),
            };
            match result {
                Ok(undo) => txn.undo.push(undo),
                Err(reason) => {
                    txn.rollback(ids);
                    return Err(ApplyError::Rejected { op, reason });
                }
            }
        }
        Ok(Applied::Done { task_ids: txn.task_ids, timer_ids: txn.timer_ids })
    }

    fn rollback(self, (next_task_id, next_timer_id): (u64, u64)) {
        for undo in self.undo.into_iter().rev() {
            undo_one(self.tables, undo);
        }
        self.tables.next_task_id = next_task_id;
        self.tables.next_timer_id = next_timer_id;
    }

    fn op(&mut self, op: &Op) -> Result<Undo, OpError> {
        match op {
            Op::CreateRun { run, state } => self.create_run(run, state),
            Op::AppendEvents { run, first_event_id, events } => self.append_events(run, *first_event_id, events.len()),
            Op::SetState { run, expected_version, state } => self.set_state(run, Some(*expected_version), state),
            Op::LegacySetState(LegacySetState { run, state }) => self.set_state(run, None, state),
            Op::CloseRun { run } => self.close_run(run),
            Op::Enqueue { queue, run, task } => self.enqueue(queue, run, task),
            Op::Ack { queue, task_id } => self.ack(queue, *task_id),
            Op::AddTimer { run, due_ms, payload } => self.add_timer(run, *due_ms, payload),
            Op::RemoveTimer { timer_id } => self.remove_timer(*timer_id),
            Op::DeleteRun { run } => self.delete_run(run),
        }
    }

    fn existing(&self, run: &RunKey) -> Result<(Arc<RunKey>, &RunState), OpError> {
        let (key, state) = self.tables.runs.get_key_value(run).ok_or(OpError::RunNotFound)?;
        Ok((key.clone(), state))
    }

    fn open(&self, run: &RunKey) -> Result<(Arc<RunKey>, &RunState), OpError> {
        let (key, state) = self.existing(run)?;
        if !state.is_open() {
            return Err(OpError::RunClosed);
        }
        Ok((key, state))
    }

    fn create_run(&mut self, run: &RunKey, state: &Bytes) -> Result<Undo, OpError> {
        if let Some(current) = self.tables.current.get(run) {
            if self.tables.runs[current].is_open() {
                return Err(OpError::RunAlreadyOpen { run_id: current.run_id.clone() });
            }
        }
        if self.tables.runs.contains_key(run) {
            return Err(OpError::RunExists);
        }
        let key = Arc::new(run.clone());
        self.tables.insert_run(key.clone(), Bytes::copy_from_slice(state), 1);
        let prev_current = self.tables.set_current(run, Some(key.clone()));
        Ok(Undo::Create { run: key, prev_current })
    }

    fn append_events(&mut self, run: &RunKey, first_event_id: u64, count: usize) -> Result<Undo, OpError> {
        let (key, state) = self.open(run)?;
        if count == 0 {
            return Err(OpError::EmptyAppend);
        }
        let expected = state.next_event_id;
        if first_event_id != expected {
            return Err(OpError::EventIdMismatch { expected, got: first_event_id });
        }
        let count = count as u64;
        let max = self.config.history_events_max;
        let fits = expected.checked_add(count).is_some_and(|next| next - 1 <= max);
        if !fits {
            return Err(OpError::HistoryTooLong { max });
        }
        let merged = self.tables.append_batch(&key, count, self.pos);
        Ok(Undo::Append { run: key, count, merged })
    }

    /// A fenced write (`expected` is `Some`) checks and bumps the state version; a
    /// legacy one (version-1 transitions) does neither, as it did when committed.
    fn set_state(&mut self, run: &RunKey, expected: Option<u64>, state: &Bytes) -> Result<Undo, OpError> {
        let (key, run) = self.existing(run)?;
        let actual = run.state_version;
        let version = match expected {
            Some(expected) if expected != actual => return Err(OpError::StateVersionMismatch { expected, actual }),
            Some(_) => actual.checked_add(1).ok_or(OpError::IdsExhausted)?,
            None => actual,
        };
        let (old, old_version) = self.tables.replace_state(&key, Bytes::copy_from_slice(state), version);
        Ok(Undo::SetState { run: key, old, old_version })
    }

    fn close_run(&mut self, run: &RunKey) -> Result<Undo, OpError> {
        let (key, _) = self.open(run)?;
        self.tables.close_run(&key, self.time_ms);
        Ok(Undo::Close { run: key })
    }

    /// Checks before changing anything: the caller made sure it is the last op.
    fn delete_run(&mut self, run: &RunKey) -> Result<Undo, OpError> {
        let (key, state) = self.existing(run)?;
        if state.is_open() {
            return Err(OpError::RunOpen);
        }
        self.tables.remove_run(&key);
        Ok(Undo::Delete)
    }

    fn enqueue(&mut self, queue: &QueueKey, run: &RunKey, payload: &Bytes) -> Result<Undo, OpError> {
        let (key, _) = self.existing(run)?;
        let max = self.config.backlog_tasks_max;
        if self.tables.backlog_len(queue) >= max {
            return Err(OpError::BacklogFull { max });
        }
        let task_id = self.tables.next_task_id;
        let next = task_id.checked_add(1).ok_or(OpError::IdsExhausted)?;
        let queue = self.tables.queue_key(queue).unwrap_or_else(|| Arc::new(queue.clone()));
        let task = Task { run: key, payload: Bytes::copy_from_slice(payload) };
        self.tables.insert_task(queue.clone(), task_id, task);
        self.tables.next_task_id = next;
        self.task_ids.push(task_id);
        Ok(Undo::Enqueue { queue, task_id })
    }

    fn ack(&mut self, queue: &QueueKey, task_id: u64) -> Result<Undo, OpError> {
        let exists = self.tables.queues.get(queue).is_some_and(|b| b.contains_key(&task_id));
        if !exists {
            return Err(OpError::TaskNotFound { task_id });
        }
        let (queue, task) = self.tables.remove_task(queue, task_id);
        Ok(Undo::Ack { queue, task_id, task })
    }

    fn add_timer(&mut self, run: &RunKey, due_ms: i64, payload: &Bytes) -> Result<Undo, OpError> {
        let (key, state) = self.existing(run)?;
        let max = self.config.timers_max_per_run;
        if state.timers.len() >= max {
            return Err(OpError::TooManyTimers { max });
        }
        let timer_id = self.tables.next_timer_id;
        let next = timer_id.checked_add(1).ok_or(OpError::IdsExhausted)?;
        let timer = Timer { run: key, due_ms, payload: Bytes::copy_from_slice(payload) };
        self.tables.insert_timer(timer_id, timer);
        self.tables.next_timer_id = next;
        self.timer_ids.push(timer_id);
        Ok(Undo::AddTimer { timer_id })
    }

    fn remove_timer(&mut self, timer_id: u64) -> Result<Undo, OpError> {
        if !self.tables.timers.contains_key(&timer_id) {
            return Err(OpError::TimerNotFound { timer_id });
        }
        let timer = self.tables.remove_timer(timer_id);
        Ok(Undo::RemoveTimer { timer_id, timer })
    }
}

fn undo_one(tables: &mut Tables, undo: Undo) {
    match undo {
        Undo::Create { run, prev_current } => {
            let removed = tables.remove_run(&run);
            let pristine = removed.is_open() && removed.history.is_empty() && removed.tasks.is_empty();
            assert!(pristine && removed.timers.is_empty(), "undo of create must find the run as created");
            tables.set_current(&*run, prev_current);
        }
        Undo::Append { run, count, merged } => tables.unappend_batch(&run, count, merged),
        Undo::SetState { run, old, old_version } => {
            tables.replace_state(&run, old, old_version);
        }
        Undo::Close { run } => tables.reopen_run(&run),
        Undo::Enqueue { queue, task_id } => {
            tables.remove_task(&queue, task_id);
        }
        Undo::Ack { queue, task_id, task } => tables.insert_task(queue, task_id, task),
        Undo::AddTimer { timer_id } => {
            tables.remove_timer(timer_id);
        }
        Undo::RemoveTimer { timer_id, timer } => tables.insert_timer(timer_id, timer),
        Undo::Delete => unreachable!("DeleteRun is the last op: no op after it can fail"),
    }
}
