//! Activity retry policy: defaults, validation and the retry decision after a failed
//! or timed-out attempt. Pure functions, mirroring Temporal's
//! `retrypolicy.EnsureDefaults`/`Validate`, `MutableStateImpl.RetryActivity` and
//! `nextBackoffInterval` (`go/service/history/workflow/retry.go`).

use temporalio_protos::protos::temporal::api::common::v1::RetryPolicy;
use temporalio_protos::protos::temporal::api::enums::v1::{RetryState, TimeoutType};
use temporalio_protos::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_protos::protos::temporal::api::failure::v1::Failure;

use super::txn::{duration, duration_ms};

/// Prefix of the `non_retryable_error_types` entries that name timeouts
/// (`TemporalTimeout:StartToClose`, `TemporalTimeout:Heartbeat`).
pub const TIMEOUT_FAILURE_TYPE_PREFIX: &str = "TemporalTimeout:";

/// Default first retry interval, ms.
pub const DEFAULT_INITIAL_INTERVAL_MS: i64 = 1_000;
/// Default backoff coefficient.
pub const DEFAULT_BACKOFF_COEFFICIENT: f64 = 2.0;
/// Default maximum interval, as a multiple of the initial interval.
pub const DEFAULT_MAXIMUM_INTERVAL_FACTOR: i64 = 100;

/// What to do after an attempt failed or timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Run attempt N+1 after `delay_ms`.
    Retry { delay_ms: i64 },
    /// No retry: the activity ends with this retry state.
    Final(RetryState),
}

/// The facts a retry decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct FailedAttempt<'a> {
    /// The activity's (normalised) retry policy.
    pub policy: &'a RetryPolicy,
    /// The attempt that failed (1-based).
    pub attempt: i32,
    /// Why it failed; `None` (a failure request without one) counts as retryable.
    pub failure: Option<&'a Failure>,
    pub now_ms: i64,
    /// Schedule-to-close deadline (first scheduled + schedule_to_close), 0 = none.
    pub expiration_ms: i64,
    /// The workflow asked to cancel the activity.
    pub cancel_requested: bool,
}

/// Fills the unset fields of an activity retry policy with the defaults
/// `{initial 1 s, coefficient 2.0, maximum 100 × initial, attempts 0 (unlimited)}`.
/// Only zero (or unset) durations are defaulted: a negative one stays, for [`validate`].
pub fn with_defaults(policy: Option<RetryPolicy>) -> RetryPolicy {
    let mut p = policy.unwrap_or_default();
    if is_zero(p.initial_interval.as_ref()) {
        p.initial_interval = Some(duration(DEFAULT_INITIAL_INTERVAL_MS));
    }
    if is_zero(p.maximum_interval.as_ref()) {
        let initial = duration_ms(p.initial_interval.as_ref());
        p.maximum_interval = Some(duration(initial.saturating_mul(DEFAULT_MAXIMUM_INTERVAL_FACTOR)));
    }
    if p.backoff_coefficient == 0.0 {
        p.backoff_coefficient = DEFAULT_BACKOFF_COEFFICIENT;
    }
    p
}

/// Checks a policy after [`with_defaults`]; the error is a human-readable reason.
pub fn validate(p: &RetryPolicy) -> Result<(), String> {
    if p.maximum_attempts == 1 {
        // One attempt disables retries; the rest does not matter.
        return Ok(());
    }
    if is_negative(p.initial_interval.as_ref()) {
        return Err("invalid InitialInterval set on retry policy: negative duration".into());
    }
    if p.backoff_coefficient.is_nan() || p.backoff_coefficient < 1.0 || p.backoff_coefficient.is_infinite() {
        return Err("BackoffCoefficient cannot be less than 1 on retry policy.".into());
    }
    if is_negative(p.maximum_interval.as_ref()) {
        return Err("invalid MaximumInterval set on retry policy: negative duration".into());
    }
    let max = duration_ms(p.maximum_interval.as_ref());
    if max > 0 && max < duration_ms(p.initial_interval.as_ref()) {
        return Err("MaximumInterval cannot be less than InitialInterval on retry policy.".into());
    }
    if p.maximum_attempts < 0 {
        return Err("MaximumAttempts cannot be negative on retry policy.".into());
    }
    for t in &p.non_retryable_error_types {
        if let Some(name) = t.strip_prefix(TIMEOUT_FAILURE_TYPE_PREFIX) {
            if timeout_type_from_name(name).is_none() {
                return Err(format!("Invalid timeout type value: {name}."));
            }
        }
    }
    Ok(())
}

/// Decides whether the failed attempt is retried, and after how long.
pub fn decide(a: &FailedAttempt<'_>) -> RetryDecision {
    if a.cancel_requested {
        return RetryDecision::Final(RetryState::CancelRequested);
    }
    if let Some(FailureInfo::TimeoutFailureInfo(t)) = a.failure.and_then(|f| f.failure_info.as_ref()) {
        let t = TimeoutType::try_from(t.timeout_type).unwrap_or(TimeoutType::Unspecified);
        if matches!(t, TimeoutType::ScheduleToStart | TimeoutType::ScheduleToClose) {
            return RetryDecision::Final(RetryState::Timeout);
        }
    }
    if !is_retryable(a.failure, &a.policy.non_retryable_error_types) {
        return RetryDecision::Final(RetryState::NonRetryableFailure);
    }
    let requested = a.failure.and_then(next_retry_delay_ms);
    next_backoff(a.policy, a.attempt, requested, a.now_ms, a.expiration_ms)
}

/// A workflow run's retry (Go's `GetRetryBackoffDuration` / `getBackoffInterval`):
/// after attempt `attempt` failed with `failure` (a run timeout fails with a
/// start-to-close timeout failure), the delay before the next run, or why there is
/// none. `policy`: the run's retry policy (`None`: not set); `expiration_ms`: the
/// execution deadline (0 = none).
pub fn workflow_backoff(
    policy: Option<&RetryPolicy>,
    attempt: i32,
    failure: Option<&Failure>,
    now_ms: i64,
    expiration_ms: i64,
) -> RetryDecision {
    let Some(policy) = policy else { return RetryDecision::Final(RetryState::RetryPolicyNotSet) };
    let policy = with_defaults(Some(policy.clone()));
    if !is_retryable(failure, &policy.non_retryable_error_types) {
        return RetryDecision::Final(RetryState::NonRetryableFailure);
    }
    let requested = failure.and_then(next_retry_delay_ms);
    next_backoff(&policy, attempt, requested, now_ms, expiration_ms)
}

/// `nextBackoffInterval`: the delay before the next attempt, or why there is none.
fn next_backoff(p: &RetryPolicy, attempt: i32, requested_ms: Option<i64>, now_ms: i64, expiration_ms: i64) -> RetryDecision {
    let attempt = attempt.max(1);
    if p.maximum_attempts > 0 && attempt >= p.maximum_attempts {
        return RetryDecision::Final(RetryState::MaximumAttemptsReached);
    }
    // A delay the application asked for also replaces the maximum interval.
    let max_interval = requested_ms.unwrap_or_else(|| duration_ms(p.maximum_interval.as_ref()));
    let mut interval =
        requested_ms.unwrap_or_else(|| exponential_ms(duration_ms(p.initial_interval.as_ref()), p.backoff_coefficient, attempt));
    if max_interval == 0 && interval <= 0 {
        return RetryDecision::Final(RetryState::Timeout);
    }
    if max_interval != 0 && (interval <= 0 || interval > max_interval) {
        interval = max_interval;
    }
    if expiration_ms > 0 && now_ms.saturating_add(interval) > expiration_ms {
        return RetryDecision::Final(RetryState::Timeout);
    }
    RetryDecision::Retry { delay_ms: interval }
}

/// `initial × coefficient^(attempt−1)`, saturating.
pub fn exponential_ms(initial_ms: i64, coefficient: f64, attempt: i32) -> i64 {
    let v = initial_ms as f64 * coefficient.powf(f64::from(attempt.max(1) - 1));
    if v.is_nan() {
        0
    } else if v >= i64::MAX as f64 {
        i64::MAX
    } else {
        (v as i64).max(0)
    }
}

/// `isRetryable`: whether a failure may be retried at all under `non_retryable_types`.
pub fn is_retryable(failure: Option<&Failure>, non_retryable_types: &[String]) -> bool {
    let Some(info) = failure.and_then(|f| f.failure_info.as_ref()) else { return true };
    match info {
        FailureInfo::TerminatedFailureInfo(_) | FailureInfo::CanceledFailureInfo(_) => false,
        FailureInfo::TimeoutFailureInfo(t) => match TimeoutType::try_from(t.timeout_type) {
            Ok(tt @ (TimeoutType::StartToClose | TimeoutType::Heartbeat)) => {
                let name = format!("{TIMEOUT_FAILURE_TYPE_PREFIX}{}", timeout_type_name(tt));
                !non_retryable_types.contains(&name)
            }
            _ => false,
        },
        FailureInfo::ServerFailureInfo(s) => !s.non_retryable,
        FailureInfo::ApplicationFailureInfo(a) => !a.non_retryable && !non_retryable_types.contains(&a.r#type),
        _ => true,
    }
}

/// `ApplicationFailureInfo.next_retry_delay`, if the failure carries one.
fn next_retry_delay_ms(f: &Failure) -> Option<i64> {
    match f.failure_info.as_ref()? {
        FailureInfo::ApplicationFailureInfo(a) => a.next_retry_delay.as_ref().map(|d| duration_ms(Some(d))),
        _ => None,
    }
}

/// Temporal's short name of a timeout type (`StartToClose`, ...), as used in failure
/// messages and `TemporalTimeout:` types.
pub fn timeout_type_name(t: TimeoutType) -> &'static str {
    match t {
        TimeoutType::Unspecified => "Unspecified",
        TimeoutType::StartToClose => "StartToClose",
        TimeoutType::ScheduleToStart => "ScheduleToStart",
        TimeoutType::ScheduleToClose => "ScheduleToClose",
        TimeoutType::Heartbeat => "Heartbeat",
    }
}

fn timeout_type_from_name(name: &str) -> Option<TimeoutType> {
    [TimeoutType::StartToClose, TimeoutType::ScheduleToStart, TimeoutType::ScheduleToClose, TimeoutType::Heartbeat]
        .into_iter()
        .find(|t| timeout_type_name(*t) == name || t.as_str_name() == name)
}

fn is_zero(d: Option<&prost_wkt_types::Duration>) -> bool {
    d.is_none_or(|d| d.seconds == 0 && d.nanos == 0)
}

fn is_negative(d: Option<&prost_wkt_types::Duration>) -> bool {
    d.is_some_and(|d| d.seconds < 0 || d.nanos < 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_protos::protos::temporal::api::failure::v1::{ApplicationFailureInfo, ServerFailureInfo, TimeoutFailureInfo};

    fn app(r#type: &str, non_retryable: bool) -> Failure {
        Failure {
            message: "boom".into(),
            failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
                r#type: r#type.into(),
                non_retryable,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn timeout(t: TimeoutType) -> Failure {
        Failure {
            failure_info: Some(FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo { timeout_type: t as i32, ..Default::default() })),
            ..Default::default()
        }
    }

    fn attempt<'a>(policy: &'a RetryPolicy, n: i32, failure: Option<&'a Failure>) -> FailedAttempt<'a> {
        FailedAttempt { policy, attempt: n, failure, now_ms: 1_000_000, expiration_ms: 0, cancel_requested: false }
    }

    #[test]
    fn defaults_fill_unset_fields_only() {
        let p = with_defaults(None);
        assert_eq!(p.initial_interval, Some(duration(1_000)));
        assert_eq!(p.maximum_interval, Some(duration(100_000)));
        assert_eq!(p.backoff_coefficient, 2.0);
        assert_eq!(p.maximum_attempts, 0);
        let p = with_defaults(Some(RetryPolicy { initial_interval: Some(duration(500)), ..Default::default() }));
        assert_eq!(p.maximum_interval, Some(duration(50_000)), "captured: {{0.5s, 2.0, 50s}}");
        let p = with_defaults(Some(RetryPolicy { maximum_attempts: 3, backoff_coefficient: 1.5, ..Default::default() }));
        assert_eq!((p.maximum_attempts, p.backoff_coefficient), (3, 1.5));
        // Go defaults only zero durations: a negative one is left for Validate to refuse.
        let negative = Some(prost_wkt_types::Duration { seconds: -1, nanos: 0 });
        let p = with_defaults(Some(RetryPolicy { initial_interval: negative, ..Default::default() }));
        assert_eq!(validate(&p), Err("invalid InitialInterval set on retry policy: negative duration".into()));
        let p = with_defaults(Some(RetryPolicy { maximum_interval: negative, ..Default::default() }));
        assert_eq!(validate(&p), Err("invalid MaximumInterval set on retry policy: negative duration".into()));
    }

    #[test]
    fn workflow_retries() {
        let policy = RetryPolicy { maximum_attempts: 3, ..Default::default() };
        let not_set = workflow_backoff(None, 1, None, 0, 0);
        assert_eq!(not_set, RetryDecision::Final(RetryState::RetryPolicyNotSet));
        assert_eq!(workflow_backoff(Some(&policy), 1, None, 0, 0), RetryDecision::Retry { delay_ms: 1_000 });
        assert_eq!(workflow_backoff(Some(&policy), 2, None, 0, 0), RetryDecision::Retry { delay_ms: 2_000 });
        assert_eq!(workflow_backoff(Some(&policy), 3, None, 0, 0), RetryDecision::Final(RetryState::MaximumAttemptsReached));
        let run_timeout = timeout(TimeoutType::StartToClose);
        assert!(matches!(workflow_backoff(Some(&policy), 1, Some(&run_timeout), 0, 0), RetryDecision::Retry { .. }));
        let typed = RetryPolicy { non_retryable_error_types: vec!["Bad".into()], ..Default::default() };
        let bad = app("Bad", false);
        assert_eq!(workflow_backoff(Some(&typed), 1, Some(&bad), 0, 0), RetryDecision::Final(RetryState::NonRetryableFailure));
        // The execution deadline comes before the next run could start.
        assert_eq!(workflow_backoff(Some(&policy), 1, None, 1_000, 1_999), RetryDecision::Final(RetryState::Timeout));
    }

    #[test]
    fn validation() {
        assert!(validate(&with_defaults(None)).is_ok());
        let bad_coeff = RetryPolicy { backoff_coefficient: 0.5, ..with_defaults(None) };
        assert!(validate(&bad_coeff).is_err());
        assert!(validate(&RetryPolicy { maximum_attempts: 1, ..bad_coeff }).is_ok(), "one attempt skips the rest");
        let max_below_initial = RetryPolicy { maximum_interval: Some(duration(10)), ..with_defaults(None) };
        assert!(validate(&max_below_initial).is_err());
        assert!(validate(&RetryPolicy { maximum_attempts: -1, ..with_defaults(None) }).is_err());
        let types = |t: &str| RetryPolicy { non_retryable_error_types: vec![t.into()], ..with_defaults(None) };
        assert!(validate(&types("TemporalTimeout:StartToClose")).is_ok());
        assert!(validate(&types("TemporalTimeout:Nope")).is_err());
        assert!(validate(&types("AnyAppType")).is_ok());
    }

    #[test]
    fn exponential_backoff_is_capped() {
        let p = with_defaults(None);
        let delays: Vec<_> = (1..=9)
            .map(|n| match decide(&attempt(&p, n, None)) {
                RetryDecision::Retry { delay_ms } => delay_ms,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 100_000, 100_000]);
        assert_eq!(exponential_ms(1_000, 2.0, 10_000), i64::MAX);
    }

    #[test]
    fn maximum_attempts() {
        let p = RetryPolicy { maximum_attempts: 2, ..with_defaults(None) };
        assert_eq!(decide(&attempt(&p, 1, None)), RetryDecision::Retry { delay_ms: 1_000 });
        assert_eq!(decide(&attempt(&p, 2, None)), RetryDecision::Final(RetryState::MaximumAttemptsReached));
        let once = RetryPolicy { maximum_attempts: 1, ..with_defaults(None) };
        assert_eq!(decide(&attempt(&once, 1, None)), RetryDecision::Final(RetryState::MaximumAttemptsReached));
    }

    #[test]
    fn non_retryable_failures() {
        let p = RetryPolicy { non_retryable_error_types: vec!["BadInput".into()], ..with_defaults(None) };
        let nr = RetryDecision::Final(RetryState::NonRetryableFailure);
        assert_eq!(decide(&attempt(&p, 1, Some(&app("Other", true)))), nr);
        assert_eq!(decide(&attempt(&p, 1, Some(&app("BadInput", false)))), nr);
        assert!(matches!(decide(&attempt(&p, 1, Some(&app("Other", false)))), RetryDecision::Retry { .. }));
        let server =
            Failure { failure_info: Some(FailureInfo::ServerFailureInfo(ServerFailureInfo { non_retryable: true })), ..Default::default() };
        assert_eq!(decide(&attempt(&p, 1, Some(&server))), nr);
    }

    #[test]
    fn timeouts() {
        let p = with_defaults(None);
        assert!(matches!(decide(&attempt(&p, 1, Some(&timeout(TimeoutType::StartToClose)))), RetryDecision::Retry { .. }));
        assert!(matches!(decide(&attempt(&p, 1, Some(&timeout(TimeoutType::Heartbeat)))), RetryDecision::Retry { .. }));
        for t in [TimeoutType::ScheduleToStart, TimeoutType::ScheduleToClose] {
            assert_eq!(decide(&attempt(&p, 1, Some(&timeout(t)))), RetryDecision::Final(RetryState::Timeout));
        }
        let p = RetryPolicy { non_retryable_error_types: vec!["TemporalTimeout:Heartbeat".into()], ..with_defaults(None) };
        assert_eq!(decide(&attempt(&p, 1, Some(&timeout(TimeoutType::Heartbeat)))), RetryDecision::Final(RetryState::NonRetryableFailure));
    }

    #[test]
    fn next_retry_delay_overrides_backoff_and_maximum() {
        let p = with_defaults(None);
        let mut f = app("X", false);
        if let Some(FailureInfo::ApplicationFailureInfo(a)) = f.failure_info.as_mut() {
            a.next_retry_delay = Some(duration(250_000));
        }
        assert_eq!(decide(&attempt(&p, 3, Some(&f))), RetryDecision::Retry { delay_ms: 250_000 });
    }

    #[test]
    fn schedule_to_close_deadline_stops_retries() {
        let p = with_defaults(None);
        let mut a = attempt(&p, 1, None);
        a.expiration_ms = a.now_ms + 999;
        assert_eq!(decide(&a), RetryDecision::Final(RetryState::Timeout));
        a.expiration_ms = a.now_ms + 1_000;
        assert_eq!(decide(&a), RetryDecision::Retry { delay_ms: 1_000 });
    }

    #[test]
    fn cancel_requested_wins() {
        let p = with_defaults(None);
        let f = app("X", true);
        let mut a = attempt(&p, 1, Some(&f));
        a.cancel_requested = true;
        assert_eq!(decide(&a), RetryDecision::Final(RetryState::CancelRequested));
    }
}
