//! Search attributes: `GetSearchAttributes` (WorkflowService) and
//! `ListSearchAttributes` (OperatorService, what `temporal operator search-attribute
//! list` calls), answered as Temporal's dev server answers them (server 1.32.0 with
//! its SQLite visibility store).
//!
//! - `GetSearchAttributes`: the system attributes and the visibility store's custom
//!   attribute slots (`Keyword01`, `Int01`, ...: the columns Temporal's SQL store
//!   declares for custom attributes, which a namespace maps its own names onto).
//! - `ListSearchAttributes`: the system attributes and the namespace's custom ones
//!   (none: Hourglass registers no custom search attributes); no storage schema.

use std::collections::HashMap;

use temporalio_protos::protos::temporal::api::enums::v1::IndexedValueType;
use temporalio_protos::protos::temporal::api::operatorservice::v1::{ListSearchAttributesRequest, ListSearchAttributesResponse};
use temporalio_protos::protos::temporal::api::workflowservice::v1::{GetSearchAttributesRequest, GetSearchAttributesResponse};
use tonic::{Request, Response};

use super::{Frontend, RpcResult};
use crate::error::ServiceError;

use IndexedValueType::{Bool, Datetime, Double, Int, Keyword, KeywordList, Text};

/// Temporal's system search attributes and their types.
pub const SYSTEM: [(&str, IndexedValueType); 33] = [
    ("BatcherNamespace", Keyword),
    ("BatcherUser", Keyword),
    ("BinaryChecksums", KeywordList),
    ("BuildIds", KeywordList),
    ("CloseTime", Datetime),
    ("ExecutionDuration", Int),
    ("ExecutionStatus", Keyword),
    ("ExecutionTime", Datetime),
    ("HistoryLength", Int),
    ("HistorySizeBytes", Int),
    ("ParentRunId", Keyword),
    ("ParentWorkflowId", Keyword),
    ("RootRunId", Keyword),
    ("RootWorkflowId", Keyword),
    ("RunId", Keyword),
    ("StartTime", Datetime),
    ("StateTransitionCount", Int),
    ("TaskQueue", Keyword),
    ("TemporalChangeVersion", KeywordList),
    ("TemporalExternalPayloadCount", Int),
    ("TemporalExternalPayloadSizeBytes", Int),
    ("TemporalNamespaceDivision", Keyword),
    ("TemporalPauseInfo", KeywordList),
    ("TemporalReportedProblems", KeywordList),
    ("TemporalSchedulePaused", Bool),
    ("TemporalScheduledById", Keyword),
    ("TemporalScheduledStartTime", Datetime),
    ("TemporalUsedWorkerDeploymentVersions", KeywordList),
    ("TemporalWorkerDeployment", Keyword),
    ("TemporalWorkerDeploymentVersion", Keyword),
    ("TemporalWorkflowVersioningBehavior", Keyword),
    ("WorkflowId", Keyword),
    ("WorkflowType", Keyword),
];

/// The custom attribute slots of Temporal's SQL visibility store: (prefix, type, count),
/// named `<prefix>01`, `<prefix>02`, ...
const CUSTOM_SLOTS: [(&str, IndexedValueType, u32); 7] = [
    ("Bool", Bool, 3),
    ("Datetime", Datetime, 3),
    ("Double", Double, 3),
    ("Int", Int, 3),
    ("Keyword", Keyword, 10),
    ("KeywordList", KeywordList, 3),
    ("Text", Text, 3),
];

/// The system attributes as a proto map.
pub fn system_attributes() -> HashMap<String, i32> {
    SYSTEM.iter().map(|(name, t)| (name.to_string(), *t as i32)).collect()
}

/// `GetSearchAttributes`' answer: the system attributes and the custom slots.
pub fn all_attributes() -> HashMap<String, i32> {
    let mut keys = system_attributes();
    for (prefix, t, count) in CUSTOM_SLOTS {
        for i in 1..=count {
            keys.insert(format!("{prefix}{i:02}"), t as i32);
        }
    }
    keys
}

impl Frontend {
    pub(super) async fn get_search_attributes_rpc(
        &self,
        _request: Request<GetSearchAttributesRequest>,
    ) -> RpcResult<GetSearchAttributesResponse> {
        Ok(Response::new(GetSearchAttributesResponse { keys: all_attributes() }))
    }

    pub(super) async fn list_search_attributes_rpc(
        &self,
        request: Request<ListSearchAttributesRequest>,
    ) -> RpcResult<ListSearchAttributesResponse> {
        let req = request.into_inner();
        if req.namespace.is_empty() {
            return Err(ServiceError::InvalidArgument("Namespace is not set on request.".into()).into());
        }
        self.namespaces.require(&req.namespace)?;
        Ok(Response::new(ListSearchAttributesResponse {
            custom_attributes: HashMap::new(),
            system_attributes: system_attributes(),
            storage_schema: HashMap::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_hold_what_temporals_dev_server_answers() {
        let all = all_attributes();
        assert_eq!(all.len(), 33 + 28, "33 system attributes, 28 custom slots");
        assert_eq!(all.get("Keyword10"), Some(&(Keyword as i32)));
        assert_eq!(all.get("Text03"), Some(&(Text as i32)));
        assert_eq!(all.get("WorkflowId"), Some(&(Keyword as i32)));
        assert!(!system_attributes().contains_key("Keyword01"), "the slots are not system attributes");
    }
}
