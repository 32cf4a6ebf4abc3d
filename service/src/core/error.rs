//! The core's refusals, one type per area. Each says what went wrong in Temporal's
//! words (its `Display` is the message clients see); `crate::error` maps them to
//! gRPC statuses, in one place. None carries a free-form string.

use super::CommandFailure;

/// Starting a run (StartWorkflowExecution, signal-with-start, a child).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The workflow id has an open run (or a closed one the reuse policy forbids reusing).
    #[error("workflow execution already started")]
    AlreadyStarted { start_request_id: String, run_id: String },
    #[error("unknown WorkflowIdReusePolicy {0}")]
    UnknownReusePolicy(i32),
    #[error("unknown WorkflowIdConflictPolicy {0}")]
    UnknownConflictPolicy(i32),
    #[error(
        "Invalid WorkflowIDReusePolicy: WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING cannot be used together with a WorkflowIDConflictPolicy"
    )]
    TerminateIfRunningWithConflictPolicy,
}

/// Finding the run a request names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// No run at all for the workflow id.
    #[error("workflow not found for ID: {workflow_id}")]
    NoRun { workflow_id: String },
    #[error("workflow execution not found for workflow ID \"{workflow_id}\" and run ID \"{run_id}\"")]
    NotFound { workflow_id: String, run_id: String },
    /// The request needs an open run and this one closed.
    #[error("workflow execution already completed")]
    Completed,
    /// The run is not in the chain of runs the request names (`first_execution_run_id`).
    #[error("workflow execution not found")]
    OtherChain,
}

/// A workflow task RPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowTaskError {
    /// The token names no started workflow task of the run (it completed, timed out, or
    /// the token is of another kind).
    #[error("Workflow task not found.")]
    NotFound,
    #[error("workflow execution already completed")]
    RunCompleted,
    /// Go's `ValidateCommandSequence`: a command after the one that closes the run.
    #[error("invalid command sequence: [{}], command {terminal} must be the last command.", .commands.join(", "))]
    CommandAfterClose { commands: Vec<String>, terminal: String },
    #[error("unknown command type: {0}")]
    UnknownCommandType(String),
    /// A command was refused: the task failed with this cause.
    #[error("{}", super::failed_cause_message(.0.cause, &.0.message))]
    CommandRefused(CommandFailure),
    /// The run tried to close while events the worker has not seen were waiting.
    #[error("UnhandledCommand")]
    UnhandledCommand,
}

/// An activity task RPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivityError {
    /// Temporal's `consts.ErrActivityTaskNotFound`.
    #[error("invalid activityID or activity already timed out or invoking workflow is completed")]
    NotFound,
    /// Temporal's `consts.ErrWorkflowCompleted`.
    #[error("workflow execution already completed")]
    RunCompleted,
    #[error("unable to mark activity as canceled without activity being request canceled first")]
    CancelNotRequested,
}

/// A task token that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed task token: {0}")]
pub struct TokenError(pub &'static str);
