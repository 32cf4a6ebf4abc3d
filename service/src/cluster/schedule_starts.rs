//! Scheduled workflows on other nodes: a schedule's wake-up runs on the node leading
//! the schedule's shard, and the workflow it starts may live on a shard another node
//! leads. The engine's [`RemoteWorkflows`] hook sends the start (and the status reads
//! the SKIP overlap policy needs) to that node's `WorkflowService`, as a forwarded
//! call; the start carries the schedule's request id, so a repeated one is
//! deduplicated there.

use std::sync::Arc;

use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{DescribeWorkflowExecutionRequest, StartWorkflowExecutionRequest};
use tonic::metadata::MetadataMap;
use tonic::Code;

use super::forward::Forwarder;
use crate::engine::schedules::RemoteWorkflows;
use crate::error::{Result, ServiceError};

/// [`RemoteWorkflows`] over the peers' `WorkflowService`.
pub struct ForwardedWorkflows {
    forwarder: Arc<Forwarder>,
}

impl ForwardedWorkflows {
    pub fn new(forwarder: Arc<Forwarder>) -> Self {
        Self { forwarder }
    }
}

#[tonic::async_trait]
impl RemoteWorkflows for ForwardedWorkflows {
    async fn start_workflow(&self, node: u64, request: StartWorkflowExecutionRequest) -> Result<String> {
        let response = self
            .forwarder
            .call(node, MetadataMap::new(), request, |mut c, r| async move { c.start_workflow_execution(r).await })
            .await
            .map_err(|status| match status.code() {
                // Not worth retrying: the workflow id is taken.
                Code::AlreadyExists => ServiceError::AlreadyExists(format!("peer: {}", status.message())),
                _ => ServiceError::from_peer_status(&status, 0),
            })?;
        Ok(response.into_inner().run_id)
    }

    async fn workflow_status(&self, node: u64, namespace: &str, workflow_id: &str, run_id: &str) -> Result<Option<i32>> {
        let request = DescribeWorkflowExecutionRequest {
            namespace: namespace.to_string(),
            execution: Some(WorkflowExecution { workflow_id: workflow_id.to_string(), run_id: run_id.to_string() }),
        };
        match self.forwarder.call(node, MetadataMap::new(), request, |mut c, r| async move { c.describe_workflow_execution(r).await }).await
        {
            Ok(response) => Ok(response.into_inner().workflow_execution_info.map(|i| i.status)),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(ServiceError::from_peer_status(&status, 0)),
        }
    }
}
