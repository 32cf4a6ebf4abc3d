//! A command's `user_metadata` (a summary and details for user interfaces): as in
//! Temporal's server, the event the command produces (the first it adds: TimerStarted,
//! ActivityTaskScheduled, StartChildWorkflowExecutionInitiated, ContinuedAsNew...)
//! carries it, and the child's Started event gets the initiated event's. It counts
//! against the same blob limit as the command's other payloads.

use prost::Message;
use temporalio_protos::protos::temporal::api::enums::v1::CommandType;
use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;

use super::{validate, Refusal};
use crate::core::txn::RunTxn;
use crate::core::CommandFailure;

/// Refuses metadata over `blob_max` bytes the way an oversized payload is: the
/// workflow task fails with the command's bad-attributes cause and the run is
/// terminated (Temporal's `terminateWorkflow` for payloads over the blob limit).
pub(super) fn check(kind: CommandType, metadata: Option<&UserMetadata>, blob_max: usize) -> Result<(), Refusal> {
    let bytes = metadata.map_or(0, Message::encoded_len);
    if bytes <= blob_max {
        return Ok(());
    }
    let cause = validate::bad_attributes_cause(kind) as i32;
    let message = format!("{}.UserMetadata exceeds size limit.", validate::command_type_name(kind as i32));
    Err(Refusal::Terminate(CommandFailure { cause, message }))
}

/// Puts `metadata` on the first event the `kind` command added, `first_event_id` (the
/// next event id before it ran). Dropped, as Temporal does, when the command added
/// no event, and for protocol messages (their update events carry none).
pub(super) fn attach(txn: &mut RunTxn, kind: CommandType, first_event_id: i64, metadata: Option<UserMetadata>) {
    let Some(metadata) = metadata else { return };
    if kind != CommandType::ProtocolMessage && txn.next_event_id() > first_event_id {
        let attached = txn.set_user_metadata(first_event_id, metadata);
        debug_assert!(attached, "event {first_event_id} was added by this transaction");
    }
}
