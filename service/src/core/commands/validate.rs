//! Checks and names shared by the command handlers, worded as Go words them (the
//! SDKs and users see these messages).

use temporalio_protos::protos::temporal::api::command::v1::Command;
use temporalio_protos::protos::temporal::api::enums::v1::{CommandType, WorkflowTaskFailedCause};
use temporalio_protos::protos::temporal::api::failure::v1::{failure::FailureInfo, Failure, ServerFailureInfo};

use crate::core::error::WorkflowTaskError;
use crate::core::CommandFailure;

/// Go's name of a command type (`CompleteWorkflowExecution`), or its number.
pub fn command_type_name(command_type: i32) -> String {
    match CommandType::try_from(command_type) {
        Ok(t) => format!("{t:?}"),
        Err(_) => command_type.to_string(),
    }
}

pub use crate::core::{cause_name, failed_cause_message};

/// The `ServerFailureInfo` failure Go puts in WorkflowTaskFailed for refused commands.
pub fn server_failure(message: String) -> Failure {
    Failure {
        message,
        failure_info: Some(FailureInfo::ServerFailureInfo(ServerFailureInfo { non_retryable: false })),
        ..Default::default()
    }
}

/// Commands that close the run; nothing may follow them.
pub fn is_terminal(command_type: CommandType) -> bool {
    matches!(
        command_type,
        CommandType::CompleteWorkflowExecution
            | CommandType::FailWorkflowExecution
            | CommandType::CancelWorkflowExecution
            | CommandType::ContinueAsNewWorkflowExecution
    )
}

/// Go's `ValidateCommandSequence`: every command type known, no command after a
/// terminal one. Failing it changes nothing (`InvalidArgument`).
pub fn command_sequence(commands: &[Command]) -> Result<(), WorkflowTaskError> {
    let mut terminal: Option<CommandType> = None;
    for command in commands {
        if let Some(close) = terminal {
            let names: Vec<String> = commands.iter().map(|c| command_type_name(c.command_type)).collect();
            return Err(WorkflowTaskError::CommandAfterClose { commands: names, terminal: format!("{close:?}") });
        }
        match CommandType::try_from(command.command_type) {
            Ok(CommandType::Unspecified) | Err(_) => {
                return Err(WorkflowTaskError::UnknownCommandType(command_type_name(command.command_type)));
            }
            Ok(t) if is_terminal(t) => terminal = Some(t),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// The cause a malformed command of `command_type` fails its workflow task with.
pub fn bad_attributes_cause(command_type: CommandType) -> WorkflowTaskFailedCause {
    use CommandType as C;
    use WorkflowTaskFailedCause as F;
    match command_type {
        C::ScheduleActivityTask => F::BadScheduleActivityAttributes,
        C::RequestCancelActivityTask => F::BadRequestCancelActivityAttributes,
        C::StartTimer => F::BadStartTimerAttributes,
        C::CompleteWorkflowExecution => F::BadCompleteWorkflowExecutionAttributes,
        C::FailWorkflowExecution => F::BadFailWorkflowExecutionAttributes,
        C::CancelTimer => F::BadCancelTimerAttributes,
        C::CancelWorkflowExecution => F::BadCancelWorkflowExecutionAttributes,
        C::RequestCancelExternalWorkflowExecution => F::BadRequestCancelExternalWorkflowExecutionAttributes,
        C::RecordMarker => F::BadRecordMarkerAttributes,
        C::ContinueAsNewWorkflowExecution => F::BadContinueAsNewAttributes,
        C::StartChildWorkflowExecution => F::BadStartChildExecutionAttributes,
        C::SignalExternalWorkflowExecution => F::BadSignalWorkflowExecutionAttributes,
        C::UpsertWorkflowSearchAttributes => F::BadSearchAttributes,
        C::ProtocolMessage => F::BadUpdateWorkflowExecutionMessage,
        C::ModifyWorkflowProperties => F::BadModifyWorkflowPropertiesAttributes,
        C::ScheduleNexusOperation => F::BadScheduleNexusOperationAttributes,
        C::RequestCancelNexusOperation => F::BadRequestCancelNexusOperationAttributes,
        C::Unspecified => F::Unspecified,
    }
}

/// A failure from another area's handler, with the command's cause if it left none.
pub fn with_default_cause(failure: CommandFailure, command_type: CommandType) -> CommandFailure {
    if failure.cause == WorkflowTaskFailedCause::Unspecified as i32 {
        CommandFailure { cause: bad_attributes_cause(command_type) as i32, ..failure }
    } else {
        failure
    }
}

/// A command whose attributes are missing or of another command type.
pub fn attributes_not_set(command_type: CommandType) -> CommandFailure {
    let name = format!("{command_type:?}");
    CommandFailure {
        cause: bad_attributes_cause(command_type) as i32,
        message: format!("{name}CommandAttributes is not set on {name}Command."),
    }
}

/// A command this server does not carry out (yet).
pub fn not_supported(command_type: CommandType) -> CommandFailure {
    CommandFailure {
        cause: WorkflowTaskFailedCause::FeatureDisabled as i32,
        message: format!("{command_type:?} commands are not supported by this server"),
    }
}
