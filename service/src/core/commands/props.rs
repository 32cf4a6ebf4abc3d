//! Commands that only record: markers (local activities, patches, side effects),
//! search attribute upserts and memo changes.

use std::collections::HashMap;

use prost::Message;
use temporalio_protos::protos::temporal::api::command::v1::{
    ModifyWorkflowPropertiesCommandAttributes, RecordMarkerCommandAttributes, UpsertWorkflowSearchAttributesCommandAttributes,
};
use temporalio_protos::protos::temporal::api::common::v1::{Memo, Payload, SearchAttributes};
use temporalio_protos::protos::temporal::api::enums::v1::WorkflowTaskFailedCause;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{
    MarkerRecordedEventAttributes, UpsertWorkflowSearchAttributesEventAttributes, WorkflowPropertiesModifiedEventAttributes,
};

use super::Refusal;
use crate::core::txn::RunTxn;
use crate::core::CommandFailure;

/// Go's `limit.memoSize.error`: the largest memo a run may have (encoded), bytes.
pub const MEMO_BYTES_MAX: usize = 2 * 1024 * 1024;

fn refuse(cause: WorkflowTaskFailedCause, message: &str) -> Refusal {
    Refusal::Fail(CommandFailure { cause: cause as i32, message: message.to_string() })
}

fn too_large(cause: WorkflowTaskFailedCause, what: &str) -> Refusal {
    Refusal::Terminate(CommandFailure { cause: cause as i32, message: format!("{what} exceeds size limit.") })
}

fn payload_map_bytes(fields: &HashMap<String, Payload>) -> usize {
    fields.iter().map(|(k, v)| k.len() + v.data.len()).sum()
}

pub(super) fn record_marker(txn: &mut RunTxn, attrs: RecordMarkerCommandAttributes, wftc: i64, blob_max: usize) -> Result<(), Refusal> {
    let cause = WorkflowTaskFailedCause::BadRecordMarkerAttributes;
    if attrs.marker_name.is_empty() {
        return Err(refuse(cause, "MarkerName is not set on command."));
    }
    let details_bytes: usize = attrs.details.iter().map(|(k, v)| k.len() + v.encoded_len()).sum();
    if details_bytes > blob_max {
        return Err(too_large(cause, "RecordMarkerCommandAttributes.Details"));
    }
    txn.add_event(Attributes::MarkerRecordedEventAttributes(MarkerRecordedEventAttributes {
        marker_name: attrs.marker_name,
        details: attrs.details,
        workflow_task_completed_event_id: wftc,
        header: attrs.header,
        failure: attrs.failure,
    }));
    Ok(())
}

pub(super) fn upsert_search_attributes(
    txn: &mut RunTxn,
    attrs: UpsertWorkflowSearchAttributesCommandAttributes,
    wftc: i64,
    blob_max: usize,
) -> Result<(), Refusal> {
    let cause = WorkflowTaskFailedCause::BadSearchAttributes;
    let Some(upsert) = attrs.search_attributes else {
        return Err(refuse(cause, "SearchAttributes is not set on UpsertWorkflowSearchAttributesCommand."));
    };
    if upsert.indexed_fields.is_empty() {
        return Err(refuse(cause, "IndexedFields is not set on UpsertWorkflowSearchAttributesCommand."));
    }
    if upsert.indexed_fields.keys().any(String::is_empty) {
        return Err(refuse(cause, "search attribute name is empty."));
    }
    if payload_map_bytes(&upsert.indexed_fields) > blob_max {
        return Err(too_large(cause, "UpsertWorkflowSearchAttributesCommandAttributes"));
    }
    let current = txn.state.search_attributes.get_or_insert_with(SearchAttributes::default);
    merge_payloads(&mut current.indexed_fields, &upsert.indexed_fields);
    txn.add_event(Attributes::UpsertWorkflowSearchAttributesEventAttributes(UpsertWorkflowSearchAttributesEventAttributes {
        workflow_task_completed_event_id: wftc,
        search_attributes: Some(upsert),
    }));
    Ok(())
}

pub(super) fn modify_properties(
    txn: &mut RunTxn,
    attrs: ModifyWorkflowPropertiesCommandAttributes,
    wftc: i64,
    blob_max: usize,
) -> Result<(), Refusal> {
    let cause = WorkflowTaskFailedCause::BadModifyWorkflowPropertiesAttributes;
    let Some(upserted) = attrs.upserted_memo else {
        return Err(refuse(cause, "UpsertedMemo is not set on ModifyWorkflowPropertiesCommand."));
    };
    if upserted.fields.is_empty() {
        return Err(refuse(cause, "UpsertedMemo.Fields is not set on ModifyWorkflowPropertiesCommand."));
    }
    if payload_map_bytes(&upserted.fields) > blob_max {
        return Err(too_large(cause, "ModifyWorkflowPropertiesCommandAttributes"));
    }
    let memo = txn.state.memo.get_or_insert_with(Memo::default);
    let mut merged = memo.fields.clone();
    merge_payloads(&mut merged, &upserted.fields);
    if (Memo { fields: merged.clone() }).encoded_len() > MEMO_BYTES_MAX {
        return Err(too_large(cause, "ModifyWorkflowPropertiesCommandAttributes. Memo"));
    }
    memo.fields = merged;
    txn.add_event(Attributes::WorkflowPropertiesModifiedEventAttributes(WorkflowPropertiesModifiedEventAttributes {
        workflow_task_completed_event_id: wftc,
        upserted_memo: Some(upserted),
    }));
    Ok(())
}

/// Go's `MergeMapOfPayload`: a null or empty-list value removes the key.
pub(crate) fn merge_payloads(into: &mut HashMap<String, Payload>, upsert: &HashMap<String, Payload>) {
    for (key, value) in upsert {
        if removes_key(value) {
            into.remove(key);
        } else {
            into.insert(key.clone(), value.clone());
        }
    }
}

fn removes_key(payload: &Payload) -> bool {
    let encoding = payload.metadata.get("encoding").map(Vec::as_slice);
    match encoding {
        Some(b"binary/null") => true,
        Some(b"json/plain") => payload.data.as_slice() == b"[]",
        None => payload.data.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(encoding: &str, data: &str) -> Payload {
        Payload {
            metadata: HashMap::from([("encoding".to_string(), encoding.as_bytes().to_vec())]),
            data: data.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn refusals_are_worded_as_go_words_them() {
        use crate::core::state::ExecutionState;
        use hourglass_storage::state::RunKey;
        let key = RunKey { namespace: "default".into(), workflow_id: "wf".into(), run_id: "r".into() };
        let mut txn = RunTxn::existing(key, 1, ExecutionState::default(), 5, 1);
        let message = |r: Result<(), Refusal>| match r {
            Err(Refusal::Fail(f)) | Err(Refusal::Terminate(f)) => f.message,
            other => panic!("{other:?}"),
        };
        let upsert = |sa: Option<SearchAttributes>| UpsertWorkflowSearchAttributesCommandAttributes { search_attributes: sa };
        assert_eq!(
            message(upsert_search_attributes(&mut txn, upsert(None), 4, 1 << 20)),
            "SearchAttributes is not set on UpsertWorkflowSearchAttributesCommand."
        );
        assert_eq!(
            message(upsert_search_attributes(&mut txn, upsert(Some(SearchAttributes::default())), 4, 1 << 20)),
            "IndexedFields is not set on UpsertWorkflowSearchAttributesCommand."
        );
        let modify = |memo: Option<Memo>| ModifyWorkflowPropertiesCommandAttributes { upserted_memo: memo };
        assert_eq!(
            message(modify_properties(&mut txn, modify(None), 4, 1 << 20)),
            "UpsertedMemo is not set on ModifyWorkflowPropertiesCommand."
        );
        assert_eq!(
            message(modify_properties(&mut txn, modify(Some(Memo::default())), 4, 1 << 20)),
            "UpsertedMemo.Fields is not set on ModifyWorkflowPropertiesCommand."
        );
        let big = Memo { fields: HashMap::from([("k".to_string(), payload("json/plain", "1234567890"))]) };
        assert_eq!(
            message(modify_properties(&mut txn, modify(Some(big)), 4, 8)),
            "ModifyWorkflowPropertiesCommandAttributes exceeds size limit."
        );
        assert!(txn.events().is_empty());
    }

    #[test]
    fn merge_sets_replaces_and_removes() {
        let mut fields = HashMap::from([("a".to_string(), payload("json/plain", "1")), ("b".to_string(), payload("json/plain", "2"))]);
        let upsert = HashMap::from([
            ("a".to_string(), payload("json/plain", "10")),
            ("b".to_string(), payload("binary/null", "")),
            ("c".to_string(), payload("json/plain", "3")),
            ("d".to_string(), payload("json/plain", "[]")),
        ]);
        merge_payloads(&mut fields, &upsert);
        let mut keys: Vec<_> = fields.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["a", "c"]);
        assert_eq!(fields["a"].data, b"10");
    }
}
