//! Validation and normalisation of `ScheduleActivityTask` attributes, as Temporal does
//! it (`go/chasm/lib/activity/validator.go`): defaults for the task queue and the
//! retry policy, and the four timeouts deduced from each other and capped by the
//! workflow run timeout. Pure.

use temporalio_protos::protos::temporal::api::command::v1::ScheduleActivityTaskCommandAttributes;
use temporalio_protos::protos::temporal::api::common::v1::RetryPolicy;

use crate::core::retry;

/// Longest activity id, activity type, timer id or task queue name (Temporal's
/// default `MaxIDLengthLimit`).
pub const ID_BYTES_MAX: usize = 1000;
/// Task queue names with this prefix are reserved for Temporal's own queues.
const RESERVED_QUEUE_PREFIX: &str = "/_sys/";

/// The four activity timeouts, ms; 0 means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    pub schedule_to_close_ms: i64,
    pub schedule_to_start_ms: i64,
    pub start_to_close_ms: i64,
    pub heartbeat_ms: i64,
}

/// A validated, normalised `ScheduleActivityTask`.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedActivity {
    pub task_queue: String,
    pub timeouts: Timeouts,
    pub retry_policy: RetryPolicy,
}

/// Validates `attrs` and fills in what Temporal fills in. The error is the reason the
/// workflow task fails (`BAD_SCHEDULE_ACTIVITY_ATTRIBUTES`).
pub fn normalize(
    attrs: &ScheduleActivityTaskCommandAttributes,
    run_timeout_ms: i64,
    workflow_task_queue: &str,
) -> Result<NormalizedActivity, String> {
    let task_queue = task_queue(attrs.task_queue.as_ref().map(|q| q.name.as_str()).unwrap_or(""), workflow_task_queue)?;
    let activity_id = attrs.activity_id.as_str();
    let activity_type = attrs.activity_type.as_ref().map(|t| t.name.as_str()).unwrap_or("");
    if activity_id.is_empty() {
        return Err("activityId is not set".into());
    }
    if activity_type.is_empty() {
        return Err("activityType is not set".into());
    }
    let retry_policy = retry::with_defaults(attrs.retry_policy.clone());
    retry::validate(&retry_policy)?;
    if activity_id.len() > ID_BYTES_MAX {
        return Err(format!("activityId exceeds length limit. Length={} Limit={ID_BYTES_MAX}", activity_id.len()));
    }
    if activity_type.len() > ID_BYTES_MAX {
        return Err(format!("activityType exceeds length limit. Length={} Limit={ID_BYTES_MAX}", activity_type.len()));
    }
    let requested = Timeouts {
        schedule_to_close_ms: checked_ms(attrs.schedule_to_close_timeout.as_ref(), "ScheduleToCloseTimeout")?,
        schedule_to_start_ms: checked_ms(attrs.schedule_to_start_timeout.as_ref(), "ScheduleToStartTimeout")?,
        start_to_close_ms: checked_ms(attrs.start_to_close_timeout.as_ref(), "StartToCloseTimeout")?,
        heartbeat_ms: checked_ms(attrs.heartbeat_timeout.as_ref(), "HeartbeatTimeout")?,
    };
    let timeouts = normalize_timeouts(requested, run_timeout_ms.max(0)).ok_or_else(|| {
        format!(
            "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. ActivityId={activity_id} ActivityType={activity_type}"
        )
    })?;
    Ok(NormalizedActivity { task_queue, timeouts, retry_policy })
}

/// Deduces the unset timeouts; `None` when neither schedule-to-close nor
/// start-to-close is set.
pub fn normalize_timeouts(t: Timeouts, run_timeout_ms: i64) -> Option<Timeouts> {
    let mut out = t;
    if t.schedule_to_close_ms > 0 {
        out.schedule_to_start_ms = positive_or(t.schedule_to_start_ms, t.schedule_to_close_ms).min(t.schedule_to_close_ms);
        out.start_to_close_ms = positive_or(t.start_to_close_ms, t.schedule_to_close_ms).min(t.schedule_to_close_ms);
    } else if t.start_to_close_ms > 0 {
        out.schedule_to_close_ms = run_timeout_ms;
        if t.schedule_to_start_ms <= 0 {
            out.schedule_to_start_ms = run_timeout_ms;
        }
    } else {
        return None;
    }
    if run_timeout_ms > 0 {
        for v in [&mut out.schedule_to_close_ms, &mut out.schedule_to_start_ms, &mut out.start_to_close_ms, &mut out.heartbeat_ms] {
            *v = (*v).min(run_timeout_ms);
        }
    }
    out.heartbeat_ms = out.heartbeat_ms.min(out.start_to_close_ms);
    Some(out)
}

/// An activity's task queue: the one asked for, or the workflow's when empty.
fn task_queue(requested: &str, workflow_task_queue: &str) -> Result<String, String> {
    if requested.is_empty() {
        return Ok(workflow_task_queue.to_string());
    }
    if requested.len() > ID_BYTES_MAX {
        return Err(format!("task queue name exceeds length limit of {ID_BYTES_MAX}"));
    }
    if requested.starts_with(RESERVED_QUEUE_PREFIX) {
        return Err(format!("task queue name cannot start with reserved prefix {RESERVED_QUEUE_PREFIX}"));
    }
    Ok(requested.to_string())
}

/// Milliseconds of an optional protobuf duration; negative or malformed ones are an error.
pub fn checked_ms(d: Option<&prost_wkt_types::Duration>, what: &str) -> Result<i64, String> {
    let Some(d) = d else { return Ok(0) };
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return Err(format!("invalid {what}: negative or malformed duration"));
    }
    Ok(d.seconds.saturating_mul(1000).saturating_add(i64::from(d.nanos) / 1_000_000))
}

fn positive_or(v: i64, default: i64) -> i64 {
    if v > 0 {
        v
    } else {
        default
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::txn::duration;
    use temporalio_protos::protos::temporal::api::common::v1::ActivityType;
    use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;

    fn t(s2c: i64, s2s: i64, stc: i64, hb: i64) -> Timeouts {
        Timeouts { schedule_to_close_ms: s2c, schedule_to_start_ms: s2s, start_to_close_ms: stc, heartbeat_ms: hb }
    }

    #[test]
    fn only_start_to_close_takes_the_run_timeout() {
        assert_eq!(normalize_timeouts(t(0, 0, 10_000, 0), 0), Some(t(0, 0, 10_000, 0)), "hist-wf-oneact");
        assert_eq!(normalize_timeouts(t(0, 0, 10_000, 5_000), 0), Some(t(0, 0, 10_000, 5_000)), "hist-wf-retry");
        assert_eq!(normalize_timeouts(t(0, 0, 10_000, 0), 60_000), Some(t(60_000, 60_000, 10_000, 0)));
        assert_eq!(normalize_timeouts(t(0, 3_000, 10_000, 0), 60_000), Some(t(60_000, 3_000, 10_000, 0)));
    }

    #[test]
    fn schedule_to_close_fills_and_caps_the_others() {
        assert_eq!(normalize_timeouts(t(1_000, 0, 0, 0), 0), Some(t(1_000, 1_000, 1_000, 0)), "hist-to-s2c");
        assert_eq!(normalize_timeouts(t(3_000, 0, 10_000, 0), 0), Some(t(3_000, 3_000, 3_000, 0)));
        assert_eq!(normalize_timeouts(t(3_000, 500, 1_000, 0), 0), Some(t(3_000, 500, 1_000, 0)));
    }

    #[test]
    fn run_timeout_and_heartbeat_caps() {
        assert_eq!(normalize_timeouts(t(90_000, 0, 0, 80_000), 30_000), Some(t(30_000, 30_000, 30_000, 30_000)));
        assert_eq!(normalize_timeouts(t(0, 0, 2_000, 5_000), 0), Some(t(0, 0, 2_000, 2_000)));
    }

    #[test]
    fn neither_close_timeout_is_an_error() {
        assert_eq!(normalize_timeouts(t(0, 5_000, 0, 1_000), 0), None);
    }

    fn attrs() -> ScheduleActivityTaskCommandAttributes {
        ScheduleActivityTaskCommandAttributes {
            activity_id: "1".into(),
            activity_type: Some(ActivityType { name: "greet".into() }),
            start_to_close_timeout: Some(duration(10_000)),
            ..Default::default()
        }
    }

    #[test]
    fn full_normalisation() {
        let n = normalize(&attrs(), 0, "tq").unwrap();
        assert_eq!(n.task_queue, "tq", "empty task queue is the workflow's");
        assert_eq!(n.timeouts, t(0, 0, 10_000, 0));
        assert_eq!(n.retry_policy, retry::with_defaults(None));
        let mut a = attrs();
        a.task_queue = Some(TaskQueue { name: "other".into(), ..Default::default() });
        assert_eq!(normalize(&a, 0, "tq").unwrap().task_queue, "other");
    }

    #[test]
    fn rejections() {
        let reject = |f: &dyn Fn(&mut ScheduleActivityTaskCommandAttributes)| {
            let mut a = attrs();
            f(&mut a);
            normalize(&a, 0, "tq").unwrap_err()
        };
        assert_eq!(reject(&|a| a.activity_id.clear()), "activityId is not set");
        assert_eq!(reject(&|a| a.activity_type = None), "activityType is not set");
        assert!(reject(&|a| a.start_to_close_timeout = None).starts_with("a valid StartToCloseTimeout"));
        assert!(reject(&|a| a.heartbeat_timeout = Some(prost_wkt_types::Duration { seconds: -1, nanos: 0 })).contains("HeartbeatTimeout"));
        assert!(reject(&|a| a.activity_id = "x".repeat(ID_BYTES_MAX + 1)).contains("length limit"));
        assert!(reject(&|a| a.retry_policy = Some(RetryPolicy { backoff_coefficient: 0.5, ..Default::default() }))
            .contains("BackoffCoefficient"));
        assert!(reject(&|a| a.task_queue = Some(TaskQueue { name: "/_sys/x".into(), ..Default::default() })).contains("reserved"));
    }
}
