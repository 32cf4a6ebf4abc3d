//! Service errors, and the one place they become gRPC statuses.

use hourglass_raft::RaftError;
use hourglass_storage::StorageError;
use prost::Message;
use temporalio_protos::protos::google::rpc::Status as RpcStatus;
use temporalio_protos::protos::temporal::api::errordetails::v1 as details;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("namespace {0} is not found")]
    NamespaceNotFound(String),
    /// A workflow with this id is already running.
    #[error("workflow execution already started")]
    WorkflowAlreadyStarted { start_request_id: String, run_id: String },
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unavailable(String),
    /// This node does not own the shard now (its leader is elsewhere, or a leader
    /// change is under way). The router retries or forwards; a client that gets it
    /// sees `Unavailable` naming the leader.
    #[error("shard {shard} is not served by this node (leader: {})", leader_hint.map_or("unknown".to_string(), |id| format!("node {id}")))]
    NotLeader { shard: u32, leader_hint: Option<u64> },
    /// A workflow task tried to close the workflow while new events were waiting.
    #[error("UnhandledCommand")]
    UnhandledCommand,
    /// A query handler failed on the worker.
    #[error("{0}")]
    QueryFailed(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl ServiceError {
    /// A Raft error met while serving `shard`.
    pub fn from_raft(e: RaftError, shard: u32) -> Self {
        use hourglass_storage::state::{ApplyError, OpError};
        match e {
            RaftError::NotLeader { leader, .. } => ServiceError::NotLeader { shard, leader_hint: leader },
            // Built from state that another owner changed meanwhile (the workflow lock
            // only holds within one owner's term): fenced at apply, nothing applied;
            // the router retries it on the current owner.
            RaftError::Rejected(ApplyError::Rejected { reason: OpError::StateVersionMismatch { .. }, .. }) => {
                ServiceError::NotLeader { shard, leader_hint: None }
            }
            other => other.into(),
        }
    }
}

impl From<RaftError> for ServiceError {
    fn from(e: RaftError) -> Self {
        match e {
            RaftError::NotLeader { shard, leader } => ServiceError::NotLeader { shard, leader_hint: leader },
            RaftError::Overloaded { .. } => ServiceError::ResourceExhausted(e.to_string()),
            RaftError::Stopped { .. } => ServiceError::Unavailable(e.to_string()),
            RaftError::Storage(s) => s.into(),
            RaftError::Rejected(r) => {
                ServiceError::FailedPrecondition(format!("the transition was rejected by the shard state machine: {r}"))
            }
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<StorageError> for ServiceError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::RecordTooLarge { .. } => ServiceError::InvalidArgument(format!("request too large to store: {e}")),
            StorageError::Overloaded { .. } => ServiceError::ResourceExhausted(e.to_string()),
            StorageError::LogFailed { .. } | StorageError::Closed => ServiceError::Unavailable(e.to_string()),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

fn with_detail(code: Code, message: String, type_name: &str, detail: Vec<u8>) -> Status {
    let status = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![prost_wkt_types::Any { type_url: format!("type.googleapis.com/{type_name}"), value: detail }],
    };
    Status::with_details(code, message, status.encode_to_vec().into())
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        let message = e.to_string();
        match e {
            ServiceError::InvalidArgument(_) | ServiceError::UnhandledCommand => Status::invalid_argument(message),
            ServiceError::NotFound(_) => Status::not_found(message),
            ServiceError::NamespaceNotFound(namespace) => with_detail(
                Code::NotFound,
                message,
                "temporal.api.errordetails.v1.NamespaceNotFoundFailure",
                details::NamespaceNotFoundFailure { namespace }.encode_to_vec(),
            ),
            ServiceError::WorkflowAlreadyStarted { start_request_id, run_id } => with_detail(
                Code::AlreadyExists,
                message,
                "temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure",
                details::WorkflowExecutionAlreadyStartedFailure { start_request_id, run_id, ..Default::default() }.encode_to_vec(),
            ),
            ServiceError::AlreadyExists(_) => Status::already_exists(message),
            ServiceError::FailedPrecondition(_) => Status::failed_precondition(message),
            ServiceError::ResourceExhausted(_) => Status::resource_exhausted(message),
            ServiceError::Unavailable(_) => Status::unavailable(message),
            ServiceError::NotLeader { leader_hint, .. } => {
                let mut status = Status::unavailable(format!("{message}; retry"));
                if let Some(id) = leader_hint {
                    if let Ok(value) = id.to_string().parse() {
                        status.metadata_mut().insert("hourglass-leader-node", value);
                    }
                }
                status
            }
            ServiceError::QueryFailed(_) => with_detail(
                Code::InvalidArgument,
                message,
                "temporal.api.errordetails.v1.QueryFailedFailure",
                details::QueryFailedFailure::default().encode_to_vec(),
            ),
            ServiceError::DeadlineExceeded(_) => Status::deadline_exceeded(message),
            ServiceError::Unimplemented(_) => Status::unimplemented(message),
            ServiceError::Internal(_) => Status::internal(message),
        }
    }
}
