//! The receiving end of matching across nodes: `hourglass.peer.v1.PeerTasks`
//! (see [`super::relay`] for the sending end).

use hourglass_proto::peer::peer_tasks_server::PeerTasks;
use hourglass_proto::peer::start_task_response::Outcome;
use hourglass_proto::peer::{OfferTasksRequest, OfferTasksResponse, StartTaskRequest, StartTaskResponse};
use prost::Message;
use tonic::{Request, Response, Status};

use super::task_wire;
use crate::engine::Engine;
use crate::history_api::{Dispatched, HistoryApi, Poller, StartActivityTask, StartWorkflowTask, Started};
use crate::matching::Dispatcher;
use hourglass_storage::state::QueueKind;

/// Takes task references for the queues this node is the home of, and starts the
/// tasks of the shards it leads for polls on other nodes.
pub struct TaskService {
    engine: Engine,
}

impl TaskService {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl PeerTasks for TaskService {
    async fn offer_tasks(&self, request: Request<OfferTasksRequest>) -> Result<Response<OfferTasksResponse>, Status> {
        let request = request.into_inner();
        let node = self.engine.node();
        let mut refused = Vec::new();
        for (i, task) in request.tasks.into_iter().enumerate() {
            let (dispatcher, queue, task) = task_wire::decode(task).map_err(|e| Status::invalid_argument(format!("task {i}: {e}")))?;
            if super::relay::is_home(node, &queue) {
                self.engine.dispatcher(dispatcher).add_here(queue, task);
            } else {
                refused.push(u32::try_from(i).map_err(|_| Status::invalid_argument("too many tasks in one call"))?);
            }
        }
        Ok(Response::new(OfferTasksResponse { refused }))
    }

    async fn start_task(&self, request: Request<StartTaskRequest>) -> Result<Response<StartTaskResponse>, Status> {
        let request = request.into_inner();
        let task = request.task.ok_or_else(|| Status::invalid_argument("task is required"))?;
        let (dispatcher, queue, task) = task_wire::decode(task).map_err(Status::invalid_argument)?;
        let history = HistoryApi::new(&self.engine);
        let poller = Poller { identity: request.identity, build_id: request.build_id };
        let outcome = match (dispatcher, queue.kind) {
            (Dispatcher::Query, _) => match history.start_query_task_here(&queue, task)? {
                Some(response) => Outcome::WorkflowTask(response.encode_to_vec()),
                None => Outcome::Stale(true),
            },
            (Dispatcher::Backlog, QueueKind::Workflow) => {
                match history.start_workflow_task_here(StartWorkflowTask { queue: &queue, task, poller: &poller }).await? {
                    Started::Task(response) => Outcome::WorkflowTask(response.encode_to_vec()),
                    Started::Stale => Outcome::Stale(true),
                }
            }
            (Dispatcher::Backlog, QueueKind::Activity) => {
                let start = StartActivityTask { queue: &queue, task: &task, identity: &poller.identity };
                match history.start_activity_task_here(start).await? {
                    Dispatched::Started(response) => Outcome::ActivityTask(response.encode_to_vec()),
                    Dispatched::Stale => Outcome::Stale(true),
                }
            }
        };
        Ok(Response::new(StartTaskResponse { outcome: Some(outcome) }))
    }
}
