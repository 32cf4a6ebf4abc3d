//! What a task queue holds in the shards' durable backlogs (`DescribeTaskQueue`): how
//! many tasks, and when the oldest one still to run was scheduled.
//!
//! Read from this node's replica of every shard (a cluster node holds one of each),
//! without asking the leaders: approximate, as Temporal's backlog count is (it may
//! count tasks whose work is already done; those are dropped when dispatched). The age
//! is that of the oldest task whose work is still pending, as the run's state says
//! (the scheduled time of its workflow task, or of the activity's current attempt).

use bytes::Bytes;
use hourglass_raft::Node;
use hourglass_storage::state::QueueKey;
use prost::Message;

use crate::core::state::ExecutionState;
use crate::core::tasks::{TaskKind, TaskPayload};

/// Tasks looked at per shard to find the oldest one still pending (those before it
/// are stale hints).
const OLDEST_SCAN_MAX: usize = 32;

/// A queue's backlog across the shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BacklogStats {
    pub count: u64,
    /// When the oldest pending task was scheduled (ms since the epoch).
    pub oldest_scheduled_ms: Option<i64>,
}

/// The backlog of `queue` in every shard `node` holds.
pub fn backlog_stats(node: &Node, queue: &QueueKey) -> BacklogStats {
    let mut stats = BacklogStats::default();
    for shard in 0..node.shard_count() {
        let read = node.read(shard, |s| {
            let head: Vec<(Bytes, Option<Bytes>)> = s
                .backlog(queue)
                .take(OLDEST_SCAN_MAX)
                .map(|(_, task)| (task.payload().clone(), s.run(task.run()).map(|r| r.state().clone())))
                .collect();
            (s.backlog_len(queue), head)
        });
        let Ok((len, head)) = read else { continue };
        stats.count += len as u64;
        // Decoded outside the shard's lock.
        if let Some(ms) = head.iter().find_map(|(payload, state)| pending_since_ms(payload, state.as_ref()?)) {
            stats.oldest_scheduled_ms = Some(stats.oldest_scheduled_ms.map_or(ms, |oldest| oldest.min(ms)));
        }
    }
    stats
}

/// When the work of backlog task `payload` was scheduled, if the run's `state` says
/// it is still to run.
fn pending_since_ms(payload: &[u8], state: &[u8]) -> Option<i64> {
    let task = TaskPayload::decode(payload).ok()?;
    let state = ExecutionState::decode(state).ok()?;
    match TaskKind::try_from(task.kind).ok()? {
        TaskKind::WorkflowTask => crate::core::workflow_task::pending_task(&state, &task).map(|wt| wt.scheduled_time_ms),
        TaskKind::ActivityTask => {
            let activity = state.activity(task.scheduled_event_id)?;
            let pending = state.is_open() && activity.attempt == task.attempt && activity.started_time_ms <= 0;
            let since_ms =
                if activity.attempt_scheduled_time_ms > 0 { activity.attempt_scheduled_time_ms } else { activity.scheduled_time_ms };
            pending.then_some(since_ms)
        }
        TaskKind::Unspecified => None,
    }
}
