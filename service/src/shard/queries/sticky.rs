//! Legacy query tasks of a sticky run go to its sticky queue first (Go's
//! `queryDirectlyThroughMatching`): the worker there has the run cached and answers
//! without a replay (its poll response carries no history). Matching sends the task
//! to the normal queue at once when the sticky worker has not polled lately
//! ([`crate::matching::Matching::add_here`]); a task nobody takes within the sticky
//! schedule-to-start timeout goes to the normal queue then ([`QueryRegistry::fall_back`]).

use hourglass_storage::state::{QueueKey, RunKey};
use temporalio_protos::protos::temporal::api::query::v1::WorkflowQuery;

use super::{Phase, QueryRegistry, QueryTicket, RegisterError};

impl QueryRegistry {
    /// Registers `query` on `run` and dispatches its legacy task now, to `sticky`
    /// first (`normal`: the run's normal queue).
    pub fn register_sticky(
        &self,
        run: &RunKey,
        query: WorkflowQuery,
        normal: QueueKey,
        sticky: QueueKey,
    ) -> Result<QueryTicket, RegisterError> {
        self.register_routed(run, query, normal, Some(sticky), true)
    }

    /// Whether query `id` of `run` still waits on a sticky queue with no worker
    /// holding it ([`Self::fall_back`] would move it).
    pub fn waits_on_sticky(&self, run: &RunKey, id: &str) -> bool {
        let mut reg = self.inner.lock();
        reg.pending_mut(run, id).is_some_and(|p| p.phase == Phase::Dispatched && !p.with_worker && p.sticky.is_some())
    }

    /// The sticky worker did not take query `id` of `run` in time: its legacy task
    /// goes to the normal queue (under a new dispatch id, so the one left on the
    /// sticky queue is skipped). False when there is nothing to move (answered, taken
    /// by a worker, or not on a sticky queue).
    pub fn fall_back(&self, run: &RunKey, id: &str) -> bool {
        let moved = {
            let mut reg = self.inner.lock();
            let seq = reg.next_seq;
            let Some(pending) = reg.pending_mut(run, id) else { return false };
            if pending.phase != Phase::Dispatched || pending.with_worker || pending.sticky.is_none() {
                return false;
            }
            let old_seq = std::mem::replace(&mut pending.seq, seq);
            pending.sticky = None;
            let moved = (pending.queue.clone(), self.task_ref(run, pending));
            reg.next_seq += 1;
            reg.by_seq.remove(&old_seq);
            reg.by_seq.insert(seq, (run.clone(), id.to_string()));
            moved
        };
        tracing::debug!(?run, query_id = id, "sticky worker did not take the query in time; sent to the normal queue");
        let (queue, task) = moved;
        self.dispatch.add(queue, task);
        true
    }
}
