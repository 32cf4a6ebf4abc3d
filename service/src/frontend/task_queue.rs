//! `DescribeTaskQueue`: a task queue's pollers and backlog, in both of the shapes
//! Temporal's server answers (checked field by field against it):
//!
//! - **legacy** (`api_mode` unspecified; `temporal task-queue describe --legacy-mode`):
//!   the pollers of one kind (`task_queue_type`), `task_queue_status` when asked
//!   (`include_task_queue_status`), `stats` (and the same per priority key) when asked
//!   (`report_stats`), and the versioning info of an unversioned queue. The name may
//!   be a partition's (`/_sys/<name>/<n>`): Hourglass has one partition per queue, so
//!   the others are empty.
//! - **enhanced** (`DESCRIBE_TASK_QUEUE_MODE_ENHANCED`; what the CLI's
//!   `task-queue describe` and the SDKs' `DescribeTaskQueueEnhanced` send): per build
//!   id (`""`: unversioned, where every Hourglass poller is) and per requested type
//!   (default workflow and activity), the pollers (`report_pollers`) and stats
//!   (`report_stats`), and the reachability (`report_task_reachability`).
//!
//! Not reported: rate limits (`effective_rate_limit`, the status's `rate_per_second`):
//! Hourglass enforces none. Pollers and rates are this node's (on a cluster, the call
//! goes to the queue's home, which serves its polls); the backlog is every shard's.

use std::collections::BTreeSet;

use hourglass_storage::state::{QueueKey, QueueKind};
use temporalio_protos::protos::temporal::api::enums::v1::{BuildIdTaskReachability, DescribeTaskQueueMode, TaskQueueKind, TaskQueueType};
use temporalio_protos::protos::temporal::api::taskqueue::v1::{
    PollerInfo, TaskQueue, TaskQueueStats, TaskQueueStatus, TaskQueueTypeInfo, TaskQueueVersionInfo, TaskQueueVersionSelection,
    TaskQueueVersioningInfo,
};
use temporalio_protos::protos::temporal::api::workflowservice::v1::{DescribeTaskQueueRequest, DescribeTaskQueueResponse};
use tonic::{Request, Response};

use super::workflow_task::poll::TASK_QUEUE_NAME_MAX;
use super::{Frontend, RpcResult};
use crate::core::txn::{duration, timestamp};
use crate::error::ServiceError;
use crate::history_api::HistoryApi;
use crate::matching::pollers::PollerSeen;

/// Names of task queue partitions other than the root start with this.
pub const RESERVED_PREFIX: &str = "/_sys/";
/// Most build ids one call may ask reachability for (Temporal's
/// `limit.reachabilityQueryBuildIds`).
pub const REACHABILITY_BUILD_IDS_MAX: usize = 5;
/// The priority key of tasks that set none (Temporal's default of 5 levels).
pub const DEFAULT_PRIORITY_KEY: i32 = 3;
/// `current_version` of an unversioned queue.
const UNVERSIONED: &str = "__unversioned__";
/// Go's zero time, which Temporal reports as an unversioned queue's `update_time`.
const ZERO_TIME_MS: i64 = -62_135_596_800_000;

/// Checks the request's task queue as Temporal's frontend does (its messages);
/// `root`: the name must not be a partition's (enhanced mode).
pub fn validate_queue(task_queue: Option<&TaskQueue>, root: bool) -> Result<&TaskQueue, ServiceError> {
    let tq = task_queue.ok_or_else(|| ServiceError::InvalidArgument("taskQueue is not set".into()))?;
    if tq.name.is_empty() {
        return Err(ServiceError::InvalidArgument("missing task queue name".into()));
    }
    validate_name(&tq.name, root)?;
    if tq.kind == TaskQueueKind::Sticky as i32 && !tq.normal_name.is_empty() {
        validate_name(&tq.normal_name, false)?;
    }
    Ok(tq)
}

fn validate_name(name: &str, root: bool) -> Result<(), ServiceError> {
    if name.len() > TASK_QUEUE_NAME_MAX {
        return Err(ServiceError::InvalidArgument("taskQueue length exceeds limit".into()));
    }
    if root && name.starts_with(RESERVED_PREFIX) {
        return Err(ServiceError::InvalidArgument(format!("task queue name cannot start with reserved prefix {RESERVED_PREFIX}")));
    }
    Ok(())
}

/// A partition's name as (queue name, partition number); the root's is the queue's.
pub fn parse_partition(name: &str) -> Result<(&str, u32), ServiceError> {
    let invalid = || ServiceError::InvalidArgument(format!("invalid task queue partition name {name}"));
    let Some(rest) = name.strip_prefix(RESERVED_PREFIX) else { return Ok((name, 0)) };
    let (base, number) = rest.rsplit_once('/').ok_or_else(invalid)?;
    if base.is_empty() {
        return Err(invalid());
    }
    let partition: u32 = number.parse().map_err(|_| invalid())?;
    if partition == 0 {
        return Err(invalid());
    }
    if base.starts_with(RESERVED_PREFIX) {
        return Err(ServiceError::InvalidArgument(format!("task queue family name cannot have prefix {RESERVED_PREFIX} {base}")));
    }
    Ok((base, partition))
}

/// The queue kind of a task queue type (nexus and unknown types have no queue here).
fn kind_of(task_queue_type: i32) -> Option<QueueKind> {
    match TaskQueueType::try_from(task_queue_type) {
        Ok(TaskQueueType::Workflow) => Some(QueueKind::Workflow),
        Ok(TaskQueueType::Activity) => Some(QueueKind::Activity),
        _ => None,
    }
}

/// The build ids an enhanced call asks about: the default (unversioned, `""`) when it
/// selects none; versioned build ids other than those named are never active here.
pub fn selected_build_ids(versions: Option<&TaskQueueVersionSelection>) -> BTreeSet<String> {
    match versions {
        None => BTreeSet::from([String::new()]),
        Some(v) => {
            let mut ids: BTreeSet<String> = v.build_ids.iter().cloned().collect();
            if v.unversioned {
                ids.insert(String::new());
            }
            ids
        }
    }
}

fn poller_info(p: PollerSeen) -> PollerInfo {
    #[allow(deprecated)]
    PollerInfo {
        last_access_time: Some(timestamp(p.last_access_ms)),
        identity: p.identity,
        rate_per_second: p.rate_per_second,
        worker_version_capabilities: p.worker_version_capabilities,
        deployment_options: p.deployment_options,
    }
}

/// What one queue (of one kind) reports: pollers, stats, status.
struct Described<'a> {
    history: HistoryApi<'a>,
    now_ms: i64,
}

impl Described<'_> {
    fn pollers(&self, queue: Option<&QueueKey>) -> Vec<PollerInfo> {
        queue.map(|q| self.history.pollers_of(q).into_iter().map(poller_info).collect()).unwrap_or_default()
    }

    fn stats(&self, queue: Option<&QueueKey>) -> TaskQueueStats {
        let Some(queue) = queue else { return TaskQueueStats { approximate_backlog_age: Some(duration(0)), ..Default::default() } };
        let backlog = self.history.backlog(queue);
        let rates = self.history.rates(queue);
        let age_ms = backlog.oldest_scheduled_ms.map_or(0, |oldest| (self.now_ms - oldest).max(0));
        TaskQueueStats {
            approximate_backlog_count: i64::try_from(backlog.count).unwrap_or(i64::MAX),
            approximate_backlog_age: Some(duration(age_ms)),
            tasks_add_rate: rates.added_per_second,
            tasks_dispatch_rate: rates.dispatched_per_second,
            ..Default::default()
        }
    }
}

impl Frontend {
    pub(super) async fn describe_task_queue_rpc(&self, request: Request<DescribeTaskQueueRequest>) -> RpcResult<DescribeTaskQueueResponse> {
        let req = request.into_inner();
        self.namespaces.require(&req.namespace)?;
        #[allow(deprecated)]
        let enhanced = req.api_mode == DescribeTaskQueueMode::Enhanced as i32;
        let tq = validate_queue(req.task_queue.as_ref(), enhanced)?;
        #[allow(deprecated)]
        let (reachability, versions) = (req.report_task_reachability, req.versions.as_ref());
        if reachability && versions.is_some_and(|v| v.build_ids.len() > REACHABILITY_BUILD_IDS_MAX) {
            return Err(ServiceError::InvalidArgument(format!(
                "Too many build ids queried at once with ReportTaskReachability==true, limit: {REACHABILITY_BUILD_IDS_MAX}"
            ))
            .into());
        }
        let described = Described { history: self.history(), now_ms: self.engine.now_ms() };
        let response = if enhanced {
            if tq.kind == TaskQueueKind::Sticky as i32 {
                return Err(ServiceError::InvalidArgument(
                    "Enhanced DescribeTaskQueue is not valid for a sticky queue, use api_mode=UNSPECIFIED or a normal queue.".into(),
                )
                .into());
            }
            describe_enhanced(&described, &req, &tq.name)
        } else {
            describe_legacy(&described, &req, &tq.name)?
        };
        Ok(Response::new(response))
    }
}

fn describe_legacy(
    described: &Described<'_>,
    req: &DescribeTaskQueueRequest,
    name: &str,
) -> Result<DescribeTaskQueueResponse, ServiceError> {
    let (base, partition) = parse_partition(name)?;
    if req.report_stats && partition != 0 {
        return Err(ServiceError::InvalidArgument("DescribeTaskQueue stats are only supported for the root partition".into()));
    }
    let task_queue_type =
        if req.task_queue_type == TaskQueueType::Unspecified as i32 { TaskQueueType::Workflow as i32 } else { req.task_queue_type };
    // Every task of a queue is in its one (root) partition.
    let queue = kind_of(task_queue_type).filter(|_| partition == 0).map(|kind| QueueKey {
        namespace: req.namespace.clone(),
        name: base.to_string(),
        kind,
    });
    let mut response = DescribeTaskQueueResponse {
        pollers: described.pollers(queue.as_ref()),
        versioning_info: Some(unversioned_info()),
        ..Default::default()
    };
    #[allow(deprecated)]
    let include_status = req.include_task_queue_status;
    if include_status {
        let count = queue.as_ref().map_or(0, |q| described.history.backlog(q).count);
        let status = TaskQueueStatus { backlog_count_hint: i64::try_from(count).unwrap_or(i64::MAX), ..Default::default() };
        #[allow(deprecated)]
        let field = &mut response.task_queue_status;
        *field = Some(status);
    }
    if req.report_stats {
        let stats = described.stats(queue.as_ref());
        response.stats_by_priority_key = [(DEFAULT_PRIORITY_KEY, stats)].into_iter().collect();
        response.stats = Some(stats);
    }
    Ok(response)
}

#[allow(deprecated)]
fn describe_enhanced(described: &Described<'_>, req: &DescribeTaskQueueRequest, name: &str) -> DescribeTaskQueueResponse {
    let types: Vec<i32> = if req.task_queue_types.is_empty() {
        vec![TaskQueueType::Workflow as i32, TaskQueueType::Activity as i32]
    } else {
        req.task_queue_types.clone()
    };
    let versions_info = selected_build_ids(req.versions.as_ref())
        .into_iter()
        .map(|build_id| {
            let unversioned = build_id.is_empty();
            let types_info = types
                .iter()
                .map(|&t| {
                    // Every Hourglass poller and task is unversioned.
                    let queue = kind_of(t).filter(|_| unversioned).map(|kind| QueueKey {
                        namespace: req.namespace.clone(),
                        name: name.to_string(),
                        kind,
                    });
                    let info = TaskQueueTypeInfo {
                        pollers: if req.report_pollers { described.pollers(queue.as_ref()) } else { Vec::new() },
                        stats: req.report_stats.then(|| described.stats(queue.as_ref())),
                    };
                    (t, info)
                })
                .collect();
            let task_reachability = match (req.report_task_reachability, unversioned) {
                (false, _) => BuildIdTaskReachability::Unspecified,
                (true, true) => BuildIdTaskReachability::Reachable,
                (true, false) => BuildIdTaskReachability::Unreachable,
            };
            (build_id, TaskQueueVersionInfo { types_info, task_reachability: task_reachability as i32 })
        })
        .collect();
    DescribeTaskQueueResponse { versions_info, ..Default::default() }
}

/// The versioning info of a queue without versioning, as Temporal reports it.
fn unversioned_info() -> TaskQueueVersioningInfo {
    #[allow(deprecated)]
    TaskQueueVersioningInfo { current_version: UNVERSIONED.to_string(), update_time: Some(timestamp(ZERO_TIME_MS)), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_and_message(e: ServiceError) -> String {
        e.to_string()
    }

    #[test]
    fn partition_names_parse_as_temporal_parses_them() {
        assert_eq!(parse_partition("tq").unwrap(), ("tq", 0));
        assert_eq!(parse_partition("/_sys/tq/3").unwrap(), ("tq", 3));
        assert_eq!(parse_partition("/_sys/a/b/12").unwrap(), ("a/b", 12));
        for bad in ["/_sys/tq", "/_sys/tq/0", "/_sys/tq/x", "/_sys//1", "/_sys/tq/-1"] {
            let message = code_and_message(parse_partition(bad).unwrap_err());
            assert!(message.contains(&format!("invalid task queue partition name {bad}")), "{bad}: {message}");
        }
        assert!(code_and_message(parse_partition("/_sys//_sys/x/1/2").unwrap_err()).contains("family name cannot have prefix"));
    }

    #[test]
    fn queue_names_are_checked_as_temporal_checks_them() {
        let tq = |name: &str, kind: TaskQueueKind| TaskQueue { name: name.into(), kind: kind as i32, ..Default::default() };
        assert!(code_and_message(validate_queue(None, false).unwrap_err()).contains("taskQueue is not set"));
        assert!(
            code_and_message(validate_queue(Some(&tq("", TaskQueueKind::Normal)), false).unwrap_err()).contains("missing task queue name")
        );
        let long = "a".repeat(TASK_QUEUE_NAME_MAX + 1);
        assert!(code_and_message(validate_queue(Some(&tq(&long, TaskQueueKind::Normal)), false).unwrap_err()).contains("exceeds limit"));
        assert!(validate_queue(Some(&tq(&long[1..], TaskQueueKind::Normal)), true).is_ok());
        assert!(validate_queue(Some(&tq("   ", TaskQueueKind::Normal)), true).is_ok(), "Temporal accepts a blank name here");
        assert!(validate_queue(Some(&tq("/_sys/x/1", TaskQueueKind::Normal)), false).is_ok(), "a partition (legacy mode)");
        assert!(
            code_and_message(validate_queue(Some(&tq("/_sys/x/1", TaskQueueKind::Normal)), true).unwrap_err()).contains("reserved prefix")
        );
        let sticky = TaskQueue { normal_name: long, ..tq("s", TaskQueueKind::Sticky) };
        assert!(validate_queue(Some(&sticky), false).is_err(), "a sticky queue's normal name is checked too");
    }

    #[test]
    fn an_enhanced_call_asks_about_the_unversioned_queue_unless_it_selects_build_ids() {
        assert_eq!(selected_build_ids(None), BTreeSet::from([String::new()]));
        let only = TaskQueueVersionSelection { build_ids: vec!["b".into()], ..Default::default() };
        assert_eq!(selected_build_ids(Some(&only)), BTreeSet::from(["b".to_string()]));
        let both = TaskQueueVersionSelection { build_ids: vec!["b".into()], unversioned: true, all_active: false };
        assert_eq!(selected_build_ids(Some(&both)), BTreeSet::from([String::new(), "b".to_string()]));
        let active = TaskQueueVersionSelection { all_active: true, ..Default::default() };
        assert!(selected_build_ids(Some(&active)).is_empty(), "no versioned build id is ever active here");
    }
}
