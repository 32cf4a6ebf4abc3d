//! Child-workflow steps (and the external signal / cancel deliveries) across nodes:
//! `hourglass.peer.v1.PeerShards`, both ends.
//!
//! A parent and its child usually live on different shards, and in a cluster those
//! may be led by different nodes. The child-workflow outboxes
//! (`engine::children`) run each step where the shard it changes is led: a step
//! that meets `NotLeader` naming another node runs there through
//! [`PeerShardClients`] (the engine's `RemoteShards`), and [`ShardStepService`]
//! runs it on the receiving node. Every step is idempotent, and the outbox timer
//! repeats it when the call fails.

use std::sync::Arc;

use hourglass_proto::peer::peer_shards_client::PeerShardsClient;
use hourglass_proto::peer::peer_shards_server::PeerShards;
use hourglass_proto::peer::start_child_response::Outcome;
use hourglass_proto::peer::{
    ApplyParentClosePolicyRequest, ApplyParentClosePolicyResponse, ExternalRequest as ExternalRequestWire, ExternalResponse,
    RecordChildClosedRequest, RecordChildClosedResponse, StartChildRequest, StartChildResponse,
};
use hourglass_storage::state::RunKey;
use prost::Message;
use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::protos::temporal::api::history::v1::{HistoryEvent, StartChildWorkflowExecutionInitiatedEventAttributes};
use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::peers::PeerChannels;
use crate::core::external::{Delivery, ExternalRequest};
use crate::core::state::{ChildInfo, ExternalRequestKind, ParentInfo};
use crate::engine::children::{self, ChildStart, ClosedChild, Notify, RemoteShards};
use crate::engine::external_steps;
use crate::engine::Engine;
use crate::error::{Result, ServiceError};

/// Longest a peer may take to run one step.
pub const STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs child-workflow steps on other nodes.
pub struct PeerShardClients {
    channels: Arc<PeerChannels>,
}

impl PeerShardClients {
    pub fn new(channels: Arc<PeerChannels>) -> Self {
        Self { channels }
    }

    fn client(&self, node: u64) -> Result<PeerShardsClient<Channel>> {
        let channel = self.channels.get(node).ok_or_else(|| ServiceError::Unavailable(format!("node {node} is not a known peer")))?;
        Ok(PeerShardsClient::new(channel))
    }
}

fn timed<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(STEP_TIMEOUT);
    request
}

fn peer_error(shard_hint: u32) -> impl Fn(Status) -> ServiceError {
    move |status| ServiceError::from_peer_status(&status, shard_hint)
}

fn run_key(parent: &ParentInfo) -> RunKey {
    RunKey { namespace: parent.namespace.clone(), workflow_id: parent.workflow_id.clone(), run_id: parent.run_id.clone() }
}

fn parent_info(parent: &RunKey) -> ParentInfo {
    ParentInfo {
        namespace: parent.namespace.clone(),
        workflow_id: parent.workflow_id.clone(),
        run_id: parent.run_id.clone(),
        initiated_event_id: 0,
    }
}

#[tonic::async_trait]
impl RemoteShards for PeerShardClients {
    async fn create_child_run(
        &self,
        node: u64,
        parent: &ParentInfo,
        initiated: &StartChildWorkflowExecutionInitiatedEventAttributes,
        user_metadata: Option<&UserMetadata>,
        root: &WorkflowExecution,
    ) -> Result<ChildStart> {
        let request = StartChildRequest {
            parent: parent.encode_to_vec(),
            initiated: initiated.encode_to_vec(),
            root: root.encode_to_vec(),
            user_metadata: user_metadata.map(Message::encode_to_vec).unwrap_or_default(),
        };
        let response = self.client(node)?.start_child(timed(request)).await.map_err(peer_error(0))?.into_inner();
        match response.outcome {
            Some(Outcome::StartedRunId(run_id)) => Ok(ChildStart::Started { run_id }),
            Some(Outcome::AlreadyExists(_)) => Ok(ChildStart::AlreadyExists),
            None => Err(ServiceError::Internal(format!("node {node} answered a child start without an outcome"))),
        }
    }

    async fn record_child_closed(&self, node: u64, parent: &ParentInfo, child: &ClosedChild) -> Result<Notify> {
        let request = RecordChildClosedRequest {
            parent: parent.encode_to_vec(),
            child_namespace: child.key.namespace.clone(),
            child_workflow_id: child.key.workflow_id.clone(),
            child_run_id: child.key.run_id.clone(),
            child_first_execution_run_id: child.first_execution_run_id.clone(),
            close_event_id: child.close_event_id,
            close_event: child.close.encode_to_vec(),
        };
        let response = self.client(node)?.record_child_closed(timed(request)).await.map_err(peer_error(0))?.into_inner();
        Ok(if response.retry_later { Notify::RetryLater } else { Notify::Done })
    }

    async fn apply_parent_close_policy(&self, node: u64, parent: &RunKey, child: &ChildInfo) -> Result<()> {
        let request = ApplyParentClosePolicyRequest { parent: parent_info(parent).encode_to_vec(), child: child.encode_to_vec() };
        self.client(node)?.apply_parent_close_policy(timed(request)).await.map_err(peer_error(0))?;
        Ok(())
    }

    async fn signal_external(&self, node: u64, request: &ExternalRequest) -> Result<Delivery> {
        let response = self.client(node)?.signal_external(timed(to_wire(request))).await.map_err(peer_error(0))?.into_inner();
        Ok(if response.not_found { Delivery::NotFound } else { Delivery::Delivered })
    }

    async fn cancel_external(&self, node: u64, request: &ExternalRequest) -> Result<Delivery> {
        let response = self.client(node)?.cancel_external(timed(to_wire(request))).await.map_err(peer_error(0))?.into_inner();
        Ok(if response.not_found { Delivery::NotFound } else { Delivery::Delivered })
    }
}

#[allow(deprecated)] // `control`
fn to_wire(r: &ExternalRequest) -> ExternalRequestWire {
    ExternalRequestWire {
        source_workflow_id: r.source.workflow_id.clone(),
        source_run_id: r.source.run_id.clone(),
        initiated_event_id: r.initiated_event_id,
        namespace: r.namespace.clone(),
        workflow_id: r.target.workflow_id.clone(),
        run_id: r.target.run_id.clone(),
        child_workflow_only: r.child_workflow_only,
        request_id: r.request_id.clone(),
        signal_name: r.signal_name.clone(),
        input: r.input.as_ref().map(Message::encode_to_vec).unwrap_or_default(),
        header: r.header.as_ref().map(Message::encode_to_vec).unwrap_or_default(),
        reason: r.reason.clone(),
        control: r.control.clone(),
        header_set: r.header.is_some(),
    }
}

fn optional<T: Message + Default>(bytes: &[u8], what: &str) -> std::result::Result<Option<T>, Status> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        decode(bytes, what).map(Some)
    }
}

fn from_wire(w: ExternalRequestWire, kind: ExternalRequestKind) -> std::result::Result<ExternalRequest, Status> {
    Ok(ExternalRequest {
        kind,
        source: WorkflowExecution { workflow_id: w.source_workflow_id, run_id: w.source_run_id },
        initiated_event_id: w.initiated_event_id,
        namespace: w.namespace,
        target: WorkflowExecution { workflow_id: w.workflow_id, run_id: w.run_id },
        child_workflow_only: w.child_workflow_only,
        control: w.control,
        request_id: w.request_id,
        signal_name: w.signal_name,
        input: optional(&w.input, "input")?,
        header: if w.header_set { Some(decode(&w.header, "header")?) } else { None },
        reason: w.reason,
    })
}

impl ShardStepService {
    async fn deliver(
        &self,
        request: Request<ExternalRequestWire>,
        kind: ExternalRequestKind,
    ) -> std::result::Result<Response<ExternalResponse>, Status> {
        let request = from_wire(request.into_inner(), kind)?;
        let delivery = external_steps::deliver(&self.engine, &request).await?;
        Ok(Response::new(ExternalResponse { not_found: delivery == Delivery::NotFound }))
    }
}

/// Runs the child-workflow steps peers send for shards this node leads.
pub struct ShardStepService {
    engine: Engine,
}

impl ShardStepService {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

fn decode<T: Message + Default>(bytes: &[u8], what: &str) -> std::result::Result<T, Status> {
    T::decode(bytes).map_err(|e| Status::invalid_argument(format!("{what} does not decode: {e}")))
}

#[tonic::async_trait]
impl PeerShards for ShardStepService {
    async fn start_child(&self, request: Request<StartChildRequest>) -> std::result::Result<Response<StartChildResponse>, Status> {
        let request = request.into_inner();
        let parent: ParentInfo = decode(&request.parent, "parent")?;
        let initiated: StartChildWorkflowExecutionInitiatedEventAttributes = decode(&request.initiated, "initiated")?;
        let root: WorkflowExecution = decode(&request.root, "root")?;
        let user_metadata: Option<UserMetadata> =
            if request.user_metadata.is_empty() { None } else { Some(decode(&request.user_metadata, "user_metadata")?) };
        let key = run_key(&parent);
        let outcome =
            children::create_child_run(&self.engine, &key, parent.initiated_event_id, &initiated, user_metadata.as_ref(), &root).await?;
        let outcome = match outcome {
            ChildStart::Started { run_id } => Outcome::StartedRunId(run_id),
            ChildStart::AlreadyExists => Outcome::AlreadyExists(true),
        };
        Ok(Response::new(StartChildResponse { outcome: Some(outcome) }))
    }

    async fn record_child_closed(
        &self,
        request: Request<RecordChildClosedRequest>,
    ) -> std::result::Result<Response<RecordChildClosedResponse>, Status> {
        let request = request.into_inner();
        let parent: ParentInfo = decode(&request.parent, "parent")?;
        let close: HistoryEvent = decode(&request.close_event, "close_event")?;
        let child = ClosedChild {
            key: RunKey { namespace: request.child_namespace, workflow_id: request.child_workflow_id, run_id: request.child_run_id },
            first_execution_run_id: request.child_first_execution_run_id,
            close_event_id: request.close_event_id,
            close,
        };
        let notify = children::record_in_parent(&self.engine, &parent, &child).await?;
        Ok(Response::new(RecordChildClosedResponse { retry_later: notify == Notify::RetryLater }))
    }

    async fn apply_parent_close_policy(
        &self,
        request: Request<ApplyParentClosePolicyRequest>,
    ) -> std::result::Result<Response<ApplyParentClosePolicyResponse>, Status> {
        let request = request.into_inner();
        let parent: ParentInfo = decode(&request.parent, "parent")?;
        let child: ChildInfo = decode(&request.child, "child")?;
        children::apply_parent_close_policy(&self.engine, &run_key(&parent), &child).await?;
        Ok(Response::new(ApplyParentClosePolicyResponse {}))
    }

    async fn signal_external(&self, request: Request<ExternalRequestWire>) -> std::result::Result<Response<ExternalResponse>, Status> {
        self.deliver(request, ExternalRequestKind::Signal).await
    }

    async fn cancel_external(&self, request: Request<ExternalRequestWire>) -> std::result::Result<Response<ExternalResponse>, Status> {
        self.deliver(request, ExternalRequestKind::Cancel).await
    }
}
