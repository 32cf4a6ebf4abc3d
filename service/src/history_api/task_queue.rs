//! Task queues as a user's tools see them (`DescribeTaskQueue`: pollers, backlog,
//! rates) and as a stopping worker leaves them (`ShutdownWorker`: its polls end, its
//! sticky queue goes).
//!
//! Pollers and rates are what this node's matching saw: the node serving the queue's
//! polls (its home's leader, see [`HistoryApi::queue_home`]) is the one to ask. The
//! backlog is read from this node's replica of every shard.

use hourglass_storage::state::{QueueKey, QueueKind};

use super::HistoryApi;
use crate::engine::backlog::{backlog_stats, BacklogStats};
use crate::matching::pollers::{PollerSeen, Pollers};
use crate::matching::QueueRates;

/// A worker that is shutting down (`ShutdownWorker`).
#[derive(Debug, Clone, Default)]
pub struct ShutDownWorker {
    pub namespace: String,
    pub identity: String,
    /// The key its polls carry (empty: its polls cannot be told apart).
    pub worker_instance_key: String,
    /// The task queue it polled, and which kinds of it.
    pub task_queue: String,
    pub kinds: Vec<QueueKind>,
    /// Its sticky queue (empty: none).
    pub sticky_queue: String,
}

impl<'a> HistoryApi<'a> {
    /// Who polls this node's task queues.
    pub fn pollers(&self) -> &'a Pollers {
        self.engine.pollers()
    }

    /// The pollers of `queue` seen lately on this node.
    pub fn pollers_of(&self, queue: &QueueKey) -> Vec<PollerSeen> {
        self.engine.pollers().seen(queue, self.engine.now_ms())
    }

    /// `queue`'s add and dispatch rates on this node.
    pub fn rates(&self, queue: &QueueKey) -> QueueRates {
        self.engine.matching().rates(queue)
    }

    /// `queue`'s backlog across every shard (this node's replicas).
    pub fn backlog(&self, queue: &QueueKey) -> BacklogStats {
        backlog_stats(self.engine.node(), queue)
    }

    /// A worker shuts down: its outstanding polls on this node answer empty now (and
    /// its later ones for a while), it is no longer reported as a poller of its
    /// queue, and its sticky queue is dropped here. Returns how many polls ended.
    pub fn shut_down_worker(&self, worker: &ShutDownWorker) -> usize {
        let queues: Vec<QueueKey> = worker
            .kinds
            .iter()
            .map(|&kind| QueueKey { namespace: worker.namespace.clone(), name: worker.task_queue.clone(), kind })
            .collect();
        let ended = self.engine.pollers().shut_down_worker(&worker.worker_instance_key, &worker.identity, &queues, self.engine.now_ms());
        if !worker.sticky_queue.is_empty() {
            self.drop_sticky_queue(&worker.namespace, &worker.sticky_queue);
        }
        ended
    }

    /// Drops sticky queue `name` of `namespace` on this node: polls waiting on it
    /// answer empty, its pollers are forgotten (so [`Pollers::polled_since`] says its
    /// worker is gone and matching sends later tasks of the queue to their runs'
    /// normal queues), and the tasks it held go to their normal queues now (they stay
    /// in their shards' backlogs under the sticky key; the start acknowledges them
    /// there). Legacy queries waiting on it are dropped: their callers ask again.
    pub fn drop_sticky_queue(&self, namespace: &str, name: &str) {
        let queue = QueueKey { namespace: namespace.to_string(), name: name.to_string(), kind: QueueKind::Workflow };
        self.engine.pollers().forget_queue(&queue);
        let tasks = self.engine.matching().close_queue(&queue);
        let queries = self.engine.query_dispatch().close_queue(&queue);
        if !tasks.is_empty() || !queries.is_empty() {
            tracing::debug!(?queue, tasks = tasks.len(), queries = queries.len(), "sticky queue dropped with tasks in it");
        }
        for task in tasks {
            let normal = task.payload.normal_queue.clone();
            if normal.is_empty() || normal == queue.name {
                continue;
            }
            self.engine.matching().add(QueueKey { name: normal, ..queue.clone() }, task);
        }
    }
}
