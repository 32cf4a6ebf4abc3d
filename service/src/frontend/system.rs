//! System and namespace RPCs: GetSystemInfo, GetClusterInfo, DescribeNamespace,
//! RegisterNamespace, ListNamespaces, ShutdownWorker.

use std::sync::Arc;
use std::time::Duration;

use hourglass_storage::state::QueueKind;
use temporalio_protos::protos::temporal::api::enums::v1::TaskQueueType;
use tonic::metadata::MetadataMap;

use temporalio_protos::protos::temporal::api::enums::v1::{ArchivalState, NamespaceState};
use temporalio_protos::protos::temporal::api::namespace::v1::{namespace_info, BadBinaries, NamespaceConfig, NamespaceInfo};
use temporalio_protos::protos::temporal::api::replication::v1::{ClusterReplicationConfig, NamespaceReplicationConfig};
use temporalio_protos::protos::temporal::api::workflowservice::v1::get_system_info_response::Capabilities;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tonic::{Request, Response};

use super::{Frontend, RpcResult};
use crate::cluster::forward::Forwarder;
use crate::core::txn::{duration, duration_ms};
use crate::error::ServiceError;
use crate::history_api::ShutDownWorker;
use crate::namespaces::{NamespaceRecord, REGISTER_DEFAULT_RETENTION_MS};

/// What GetSystemInfo reports as `server_version`: the Temporal server release whose
/// API and behaviour Hourglass follows, tagged as Hourglass.
pub const SERVER_VERSION: &str = "1.32.0-hourglass";
/// The one cluster name reported in replication configs (Temporal's dev server says "active").
const CLUSTER_NAME: &str = "active";
/// ListNamespaces page size when the request sets none, and the largest honoured.
const LIST_PAGE_SIZE_DEFAULT: usize = 100;
const LIST_PAGE_SIZE_MAX: usize = 1000;

/// The capabilities Hourglass implements (contract §1.1). `sdk_metadata` obliges us
/// to persist `sdk_metadata` in WorkflowTaskCompleted events, which the engine does.
pub fn capabilities() -> Capabilities {
    Capabilities {
        signal_and_query_header: true,
        internal_error_differentiation: true,
        activity_failure_include_heartbeat: true,
        encoded_failure_attributes: true,
        sdk_metadata: true,
        build_id_based_versioning: false,
        // Eager start: the first workflow task in the start's answer (`core::eager`).
        eager_workflow_start: true,
        ..Default::default()
    }
}

/// Longest a peer may take to end a stopping worker's polls.
const PEER_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// The queue kinds a stopping worker polled (both when it names none, as Temporal).
fn shut_down_kinds(types: &[i32]) -> Vec<QueueKind> {
    if types.is_empty() {
        return vec![QueueKind::Workflow, QueueKind::Activity];
    }
    let mut kinds = Vec::new();
    for kind in types.iter().filter_map(|&t| match TaskQueueType::try_from(t) {
        Ok(TaskQueueType::Workflow) => Some(QueueKind::Workflow),
        Ok(TaskQueueType::Activity) => Some(QueueKind::Activity),
        _ => None,
    }) {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds
}

/// Hands a ShutdownWorker to every peer (marked forwarded: they act locally), in
/// parallel and best effort: a peer that is down has no polls to end.
async fn tell_peers(forwarder: &Arc<Forwarder>, metadata: MetadataMap, message: ShutdownWorkerRequest) {
    let mut calls = tokio::task::JoinSet::new();
    for peer in forwarder.peer_ids() {
        let (forwarder, metadata, message) = (forwarder.clone(), metadata.clone(), message.clone());
        calls.spawn(async move {
            let call = forwarder.call(peer, metadata, message, |mut c, r| async move { c.shutdown_worker(r).await });
            match tokio::time::timeout(PEER_SHUTDOWN_TIMEOUT, call).await {
                Ok(Ok(_)) => {}
                Ok(Err(status)) => tracing::debug!(peer, %status, "a peer did not take a worker's shutdown"),
                Err(_) => tracing::debug!(peer, "a peer took too long to take a worker's shutdown"),
            }
        });
    }
    while calls.join_next().await.is_some() {}
}

/// The client versions GetClusterInfo says the server supports (as Temporal's 1.32
/// server reports them).
const SUPPORTED_CLIENTS: [(&str, &str); 8] = [
    ("Nexus-go-sdk", "<2.0.0"),
    ("temporal-cli", "<2.0.0"),
    ("temporal-go", "<2.0.0"),
    ("temporal-java", "<2.0.0"),
    ("temporal-php", "<2.0.0"),
    ("temporal-server", "<2.0.0"),
    ("temporal-typescript", "<2.0.0"),
    ("temporal-ui", "<3.0.0"),
];

impl Frontend {
    /// GetClusterInfo. The cluster id is derived (UUID v5) from the id of the
    /// cluster's `default` namespace record, which is created once per cluster and
    /// replicated: every node, before and after restarts, reports the same id.
    pub(super) async fn get_cluster_info_rpc(&self, _request: Request<GetClusterInfoRequest>) -> RpcResult<GetClusterInfoResponse> {
        let anchor = self.namespaces.require(crate::namespaces::DEFAULT_NAMESPACE)?.id;
        let cluster_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("hourglass-cluster:{anchor}").as_bytes());
        Ok(Response::new(GetClusterInfoResponse {
            supported_clients: SUPPORTED_CLIENTS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            server_version: SERVER_VERSION.to_string(),
            cluster_id: cluster_id.to_string(),
            cluster_name: CLUSTER_NAME.to_string(),
            history_shard_count: i32::try_from(self.engine.node().shard_count()).unwrap_or(i32::MAX),
            persistence_store: "hourglass".to_string(),
            visibility_store: "hourglass".to_string(),
            initial_failover_version: 1,
            failover_version_increment: 10,
            ..Default::default()
        }))
    }

    pub(super) async fn get_system_info_rpc(&self, _request: Request<GetSystemInfoRequest>) -> RpcResult<GetSystemInfoResponse> {
        Ok(Response::new(GetSystemInfoResponse { server_version: SERVER_VERSION.to_string(), capabilities: Some(capabilities()) }))
    }

    pub(super) async fn describe_namespace_rpc(&self, request: Request<DescribeNamespaceRequest>) -> RpcResult<DescribeNamespaceResponse> {
        let req = request.into_inner();
        let record = if !req.id.is_empty() {
            self.namespaces
                .get_by_id(&req.id)
                .ok_or_else(|| ServiceError::NotFound(format!("namespace with id {} is not found", req.id)))?
        } else {
            self.namespaces.require(&req.namespace)?
        };
        Ok(Response::new(self.describe(&record)))
    }

    pub(super) async fn register_namespace_rpc(&self, request: Request<RegisterNamespaceRequest>) -> RpcResult<RegisterNamespaceResponse> {
        let req = request.into_inner();
        let retention_ms = match &req.workflow_execution_retention_period {
            Some(d) if d.seconds < 0 || d.nanos < 0 => {
                return Err(ServiceError::InvalidArgument("workflow_execution_retention_period must not be negative".into()).into())
            }
            Some(d) => duration_ms(Some(d)),
            None => REGISTER_DEFAULT_RETENTION_MS,
        };
        let record = NamespaceRecord {
            description: req.description,
            owner_email: req.owner_email,
            ..NamespaceRecord::new(req.namespace, retention_ms, self.engine.now_ms())
        };
        self.namespaces.register(record).await?;
        Ok(Response::new(RegisterNamespaceResponse {}))
    }

    pub(super) async fn list_namespaces_rpc(&self, request: Request<ListNamespacesRequest>) -> RpcResult<ListNamespacesResponse> {
        let req = request.into_inner();
        let page_size = match usize::try_from(req.page_size) {
            Ok(0) | Err(_) => LIST_PAGE_SIZE_DEFAULT,
            Ok(n) => n.min(LIST_PAGE_SIZE_MAX),
        };
        // The token is the name of the last namespace of the previous page.
        let after = String::from_utf8(req.next_page_token)
            .map_err(|_| ServiceError::InvalidArgument("next_page_token is not one this server issued".into()))?;
        let all = self.namespaces.list();
        let rest: Vec<&NamespaceRecord> = all.iter().filter(|r| after.is_empty() || r.name > after).collect();
        let page = &rest[..rest.len().min(page_size)];
        let next_page_token = match page.last() {
            Some(last) if rest.len() > page.len() => last.name.clone().into_bytes(),
            _ => Vec::new(),
        };
        let namespaces = page.iter().map(|r| self.describe(r)).collect();
        Ok(Response::new(ListNamespacesResponse { namespaces, next_page_token }))
    }

    /// ShutdownWorker: the worker's outstanding polls answer empty at once (and its
    /// later ones for a while), it is no longer reported as a poller of its queue, and
    /// its sticky queue is dropped. On a cluster every node does so (its polls wait at
    /// their queues' homes), before the call answers: the worker then waits for its
    /// polls to end (`worker_poll_complete_on_shutdown`).
    pub(super) async fn shutdown_worker_rpc(&self, request: Request<ShutdownWorkerRequest>) -> RpcResult<ShutdownWorkerResponse> {
        let for_peers = self.forward_copy(&request);
        let req = request.into_inner();
        self.namespaces.require(&req.namespace)?;
        let worker = ShutDownWorker {
            kinds: if req.task_queue.is_empty() { Vec::new() } else { shut_down_kinds(&req.task_queue_types) },
            namespace: req.namespace,
            identity: req.identity,
            worker_instance_key: req.worker_instance_key,
            task_queue: req.task_queue,
            sticky_queue: req.sticky_task_queue,
        };
        let ended = self.history().shut_down_worker(&worker);
        tracing::debug!(?worker, ended, reason = %req.reason, "worker shut down");
        if let (Some(forwarder), Some((metadata, message))) = (&self.forwarder, for_peers) {
            tell_peers(forwarder, metadata, message).await;
        }
        Ok(Response::new(ShutdownWorkerResponse {}))
    }

    /// The DescribeNamespace answer for a record (also each ListNamespaces item).
    fn describe(&self, record: &NamespaceRecord) -> DescribeNamespaceResponse {
        let limits = namespace_info::Limits {
            blob_size_limit_error: i64::try_from(self.engine.config().blob_bytes_max).unwrap_or(i64::MAX),
            ..Default::default()
        };
        DescribeNamespaceResponse {
            namespace_info: Some(NamespaceInfo {
                name: record.name.clone(),
                state: NamespaceState::Registered as i32,
                description: record.description.clone(),
                owner_email: record.owner_email.clone(),
                id: record.id.clone(),
                // Only what is built is true. `worker_poll_complete_on_shutdown`:
                // ShutdownWorker ends the worker's polls, so it waits for them instead
                // of dropping them (and the tasks they may be carrying).
                capabilities: Some(namespace_info::Capabilities {
                    sync_update: true,
                    async_update: true,
                    // Sticky polls are real polls since sticky queues: ShutdownWorker
                    // ends them too (before, a sticky poll slept to its deadline and a
                    // worker waiting for it stalled, as tests/durability.rs saw).
                    worker_poll_complete_on_shutdown: true,
                    ..Default::default()
                }),
                limits: Some(limits),
                ..Default::default()
            }),
            config: Some(NamespaceConfig {
                workflow_execution_retention_ttl: Some(duration(record.retention_ms)),
                bad_binaries: Some(BadBinaries::default()),
                history_archival_state: ArchivalState::Disabled as i32,
                visibility_archival_state: ArchivalState::Disabled as i32,
                ..Default::default()
            }),
            replication_config: Some(NamespaceReplicationConfig {
                active_cluster_name: CLUSTER_NAME.to_string(),
                clusters: vec![ClusterReplicationConfig { cluster_name: CLUSTER_NAME.to_string(), ..Default::default() }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}
