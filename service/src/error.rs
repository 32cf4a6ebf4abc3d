//! Service errors, and the one place they become gRPC statuses.

use hourglass_raft::RaftError;
use hourglass_storage::StorageError;
use prost::Message;
use temporalio_protos::protos::google::rpc::Status as RpcStatus;
use temporalio_protos::protos::temporal::api::errordetails::v1 as details;
use tonic::{Code, Status};

use crate::core::cron::CronError;
use crate::core::error::{ActivityError, RunError, StartError, TokenError, WorkflowTaskError};
use crate::engine::errors::{HistoryError, MisuseError, QueryError, StoredDataError, UpdateError};

/// Every error a call can end with. The domain errors of each area (the core's and the
/// engine's) are wrapped as they are; the string variants are for request validation
/// in the frontend and for the storage/raft layers' own messages.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    WorkflowTask(#[from] WorkflowTaskError),
    #[error(transparent)]
    Activity(#[from] ActivityError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Cron(#[from] CronError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Update(#[from] UpdateError),
    /// Boxed: rare, and large (it names runs).
    #[error(transparent)]
    StoredData(Box<StoredDataError>),
    #[error(transparent)]
    Misuse(Box<MisuseError>),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("namespace {0} is not found")]
    NamespaceNotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// CreateSchedule of an id that is live (Temporal's message and detail).
    #[error("schedule {schedule_id:?} is already registered")]
    ScheduleAlreadyRegistered { schedule_id: String, request_id: String },
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
    /// Whether the call may succeed if made again as it is (the shard is moving, the
    /// node is busy or briefly unavailable): work taken for it should be put back.
    pub fn is_transient(&self) -> bool {
        matches!(self, ServiceError::Unavailable(_) | ServiceError::ResourceExhausted(_) | ServiceError::NotLeader { .. })
    }

    /// The gRPC status code this error is answered with: the one mapping of every
    /// area's errors to codes.
    pub fn code(&self) -> Code {
        use ServiceError as E;
        match self {
            E::Start(StartError::AlreadyStarted { .. }) => Code::AlreadyExists,
            E::Start(_) | E::Token(_) | E::History(_) => Code::InvalidArgument,
            E::Run(_) => Code::NotFound,
            E::Cron(CronError::TimeZone(_)) => Code::Unimplemented,
            E::Cron(_) => Code::InvalidArgument,
            E::WorkflowTask(WorkflowTaskError::NotFound | WorkflowTaskError::RunCompleted) => Code::NotFound,
            E::WorkflowTask(_) => Code::InvalidArgument,
            E::Activity(ActivityError::NotFound | ActivityError::RunCompleted) => Code::NotFound,
            E::Activity(ActivityError::CancelNotRequested) => Code::InvalidArgument,
            E::Query(QueryError::NoWorkflowTaskYet | QueryError::WorkflowTaskFailing) => Code::FailedPrecondition,
            E::Query(QueryError::TooManyPending { .. }) => Code::ResourceExhausted,
            E::Query(QueryError::TaskNotFound | QueryError::AlreadyAnswered) => Code::NotFound,
            E::Query(QueryError::BadCompletedType) => Code::InvalidArgument,
            E::Update(UpdateError::NotFound(_)) => Code::NotFound,
            E::Update(UpdateError::TooManyInFlight { .. }) => Code::ResourceExhausted,
            E::Update(UpdateError::TooManyTotal { .. }) => Code::FailedPrecondition,
            E::Update(UpdateError::WaitForAdmitted) => Code::PermissionDenied,
            E::Update(UpdateError::DeadlineExceeded) => Code::DeadlineExceeded,
            E::Update(UpdateError::OwnerStopped) => Code::Unavailable,
            E::InvalidArgument(_) | E::QueryFailed(_) => Code::InvalidArgument,
            E::NotFound(_) | E::NamespaceNotFound(_) => Code::NotFound,
            E::AlreadyExists(_) | E::ScheduleAlreadyRegistered { .. } => Code::AlreadyExists,
            E::FailedPrecondition(_) => Code::FailedPrecondition,
            E::ResourceExhausted(_) => Code::ResourceExhausted,
            E::Unavailable(_) | E::NotLeader { .. } => Code::Unavailable,
            E::DeadlineExceeded(_) => Code::DeadlineExceeded,
            E::Unimplemented(_) => Code::Unimplemented,
            E::Internal(_) | E::StoredData(_) | E::Misuse(_) => Code::Internal,
        }
    }

    /// What a peer answered to a call this node made for `shard` (a task started on
    /// the node leading it). A leader hint becomes `NotLeader`; a failure to reach the
    /// peer is `Unavailable`.
    pub fn from_peer_status(status: &Status, shard: u32) -> Self {
        let message = format!("peer: {}", status.message());
        match status.code() {
            Code::Unavailable => match status.metadata().get(LEADER_HINT_HEADER).and_then(|v| v.to_str().ok()?.parse().ok()) {
                Some(leader) => ServiceError::NotLeader { shard, leader_hint: Some(leader) },
                None => ServiceError::Unavailable(message),
            },
            Code::ResourceExhausted => ServiceError::ResourceExhausted(message),
            Code::InvalidArgument => ServiceError::InvalidArgument(message),
            Code::NotFound => ServiceError::NotFound(message),
            Code::FailedPrecondition => ServiceError::FailedPrecondition(message),
            Code::Internal | Code::DataLoss => ServiceError::Internal(message),
            _ => ServiceError::Unavailable(message),
        }
    }

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

impl From<StoredDataError> for ServiceError {
    fn from(e: StoredDataError) -> Self {
        ServiceError::StoredData(Box::new(e))
    }
}

impl From<MisuseError> for ServiceError {
    fn from(e: MisuseError) -> Self {
        ServiceError::Misuse(Box::new(e))
    }
}

impl From<RaftError> for ServiceError {
    fn from(e: RaftError) -> Self {
        match e {
            RaftError::NotLeader { shard, leader } => ServiceError::NotLeader { shard, leader_hint: leader },
            RaftError::Overloaded { .. } => ServiceError::ResourceExhausted(e.to_string()),
            // Not retried by the router: the transition may have been applied. The
            // client's own retry meets request-id dedupe or the state it left.
            RaftError::Stopped { .. } | RaftError::OutcomeUnknown { .. } => ServiceError::Unavailable(e.to_string()),
            RaftError::Membership { .. } => ServiceError::FailedPrecondition(e.to_string()),
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
            ServiceError::Start(StartError::AlreadyStarted { start_request_id, run_id }) => with_detail(
                Code::AlreadyExists,
                message,
                "temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure",
                details::WorkflowExecutionAlreadyStartedFailure { start_request_id, run_id, ..Default::default() }.encode_to_vec(),
            ),
            ServiceError::ScheduleAlreadyRegistered { request_id, .. } => with_detail(
                Code::AlreadyExists,
                message,
                "temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure",
                details::WorkflowExecutionAlreadyStartedFailure { start_request_id: request_id, ..Default::default() }.encode_to_vec(),
            ),
            ServiceError::NamespaceNotFound(namespace) => with_detail(
                Code::NotFound,
                message,
                "temporal.api.errordetails.v1.NamespaceNotFoundFailure",
                details::NamespaceNotFoundFailure { namespace }.encode_to_vec(),
            ),
            ServiceError::NotLeader { leader_hint, .. } => {
                let mut status = Status::unavailable(format!("{message}; retry"));
                if let Some(id) = leader_hint {
                    if let Ok(value) = id.to_string().parse() {
                        status.metadata_mut().insert(LEADER_HINT_HEADER, value);
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
            other => Status::new(other.code(), message),
        }
    }
}

/// The status metadata naming the node that leads a shard (an `Unavailable` for a
/// shard this node does not lead).
pub const LEADER_HINT_HEADER: &str = "hourglass-leader-node";

/// The status code a call ended with (`None`: it succeeded); for tests.
#[cfg(test)]
pub(crate) fn code_of<T>(result: &Result<T>) -> Option<Code> {
    result.as_ref().err().map(ServiceError::code)
}
