//! Task references on the wire (`hourglass.peer.v1.QueueTask`), both ways.

use hourglass_proto::peer::{Dispatcher as WireDispatcher, QueueTask};
use hourglass_storage::state::{QueueKey, QueueKind, RunKey};
use prost::Message;

use crate::core::tasks::TaskPayload;
use crate::matching::{Dispatcher, TaskRef};

/// Encodes a task of `dispatcher` taken from (or going to) `queue`.
pub fn encode(dispatcher: Dispatcher, queue: &QueueKey, task: &TaskRef) -> QueueTask {
    let dispatcher = match dispatcher {
        Dispatcher::Backlog => WireDispatcher::Backlog,
        Dispatcher::Query => WireDispatcher::Query,
    };
    QueueTask {
        dispatcher: dispatcher as i32,
        namespace: queue.namespace.clone(),
        queue: queue.name.clone(),
        queue_kind: u32::from(queue.kind as u8),
        shard: task.shard,
        term: task.term,
        task_id: task.task_id,
        workflow_id: task.run.workflow_id.clone(),
        run_id: task.run.run_id.clone(),
        payload: task.payload.encode_to_vec(),
    }
}

/// Decodes a task a peer sent; a message naming no known dispatcher or queue kind,
/// or with a payload that does not decode, is refused with the reason.
pub fn decode(task: QueueTask) -> Result<(Dispatcher, QueueKey, TaskRef), String> {
    let dispatcher = match WireDispatcher::try_from(task.dispatcher) {
        Ok(WireDispatcher::Backlog) => Dispatcher::Backlog,
        Ok(WireDispatcher::Query) => Dispatcher::Query,
        _ => return Err(format!("unknown dispatcher {}", task.dispatcher)),
    };
    let kind =
        u8::try_from(task.queue_kind).ok().and_then(QueueKind::from_u8).ok_or_else(|| format!("unknown queue kind {}", task.queue_kind))?;
    let payload = TaskPayload::decode(task.payload.as_slice()).map_err(|e| format!("task payload does not decode: {e}"))?;
    let queue = QueueKey { namespace: task.namespace.clone(), name: task.queue, kind };
    let run = RunKey { namespace: task.namespace, workflow_id: task.workflow_id, run_id: task.run_id };
    Ok((dispatcher, queue, TaskRef { shard: task.shard, term: task.term, task_id: task.task_id, run, payload }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: QueueKind) -> (QueueKey, TaskRef) {
        let queue = QueueKey { namespace: "ns".into(), name: "tq".into(), kind };
        let task = TaskRef {
            shard: 3,
            term: 7,
            task_id: 42,
            run: RunKey { namespace: "ns".into(), workflow_id: "w".into(), run_id: "r".into() },
            payload: TaskPayload { kind: 2, scheduled_event_id: 5, attempt: 2, normal_queue: String::new() },
        };
        (queue, task)
    }

    #[test]
    fn a_task_reads_back_as_it_was_sent() {
        for kind in [QueueKind::Workflow, QueueKind::Activity] {
            let (queue, task) = sample(kind);
            for dispatcher in [Dispatcher::Backlog, Dispatcher::Query] {
                assert_eq!(decode(encode(dispatcher, &queue, &task)), Ok((dispatcher, queue.clone(), task.clone())));
            }
        }
    }

    #[test]
    fn malformed_tasks_are_refused() {
        let (queue, task) = sample(QueueKind::Workflow);
        let good = encode(Dispatcher::Backlog, &queue, &task);
        assert!(decode(QueueTask { dispatcher: 0, ..good.clone() }).is_err(), "no dispatcher");
        assert!(decode(QueueTask { queue_kind: 9, ..good.clone() }).is_err(), "unknown queue kind");
        assert!(decode(QueueTask { payload: vec![0xff, 0xff], ..good }).is_err(), "a payload that does not decode");
    }
}
