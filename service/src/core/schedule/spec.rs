//! A schedule's spec: checked and put in Temporal's canonical form (cron strings and
//! text calendars become structured calendars, `@every` an interval), and compiled to
//! answer "the next nominal time after t". Times are ms since the epoch, UTC.
//!
//! Not built: time zones other than UTC (refused), and `jitter` (accepted, kept and
//! shown, but every action runs at its nominal time).

use temporalio_protos::protos::temporal::api::schedule::v1::{IntervalSpec, ScheduleSpec, StructuredCalendarSpec};

use super::calendar::{self, CalendarError, Cron, Matcher};

/// Why a spec is refused (`Invalid schedule spec: …`, as Temporal words it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("Invalid schedule spec: {0}")]
    Calendar(#[from] CalendarError),
    #[error("Invalid schedule spec: interval is too small")]
    IntervalTooSmall,
    #[error("Invalid schedule spec: phase cannot be greater than Interval")]
    PhaseTooLarge,
    #[error("Invalid schedule spec: phase cannot be negative")]
    NegativePhase,
    #[error("Invalid schedule spec: Hourglass schedules run in UTC only (time zone {0:?})")]
    TimeZone(String),
    #[error("Invalid schedule spec: conflicting time zone names")]
    ConflictingTimeZones,
}

fn ms(d: Option<&prost_wkt_types::Duration>) -> i64 {
    d.map_or(0, |d| d.seconds.saturating_mul(1000).saturating_add(i64::from(d.nanos) / 1_000_000))
}

fn ts_ms(t: Option<&prost_wkt_types::Timestamp>) -> Option<i64> {
    t.map(|t| t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000))
}

fn utc_only(zone: &str) -> Result<(), SpecError> {
    match zone {
        "" | "UTC" | "Etc/UTC" => Ok(()),
        other => Err(SpecError::TimeZone(other.to_string())),
    }
}

/// The canonical form of `spec` (what Describe shows), or why it is refused.
/// (`exclude_calendar` is deprecated in the API but still accepted, as Temporal does.)
#[allow(deprecated)]
pub fn canonicalize(spec: &ScheduleSpec) -> Result<ScheduleSpec, SpecError> {
    let mut out = spec.clone();
    out.cron_string.clear();
    out.calendar.clear();
    out.exclude_calendar.clear();
    let mut cron_zone = String::new();
    for text in &spec.cron_string {
        match calendar::parse_cron(text)? {
            Cron::Calendar { calendar, timezone } => {
                if !timezone.is_empty() {
                    if !cron_zone.is_empty() && cron_zone != timezone {
                        return Err(SpecError::ConflictingTimeZones);
                    }
                    cron_zone = timezone;
                }
                out.structured_calendar.push(calendar);
            }
            Cron::Interval(iv) => out.interval.push(iv),
        }
    }
    for cal in &spec.calendar {
        out.structured_calendar.push(calendar::structured(cal)?);
    }
    for cal in &spec.exclude_calendar {
        out.exclude_structured_calendar.push(calendar::structured(cal)?);
    }
    utc_only(&cron_zone)?;
    utc_only(&spec.timezone_name)?;
    if !spec.timezone_data.is_empty() {
        return Err(SpecError::TimeZone("timezone_data".into()));
    }
    for iv in &out.interval {
        let every = ms(iv.interval.as_ref());
        let phase = ms(iv.phase.as_ref());
        if every < 1000 {
            return Err(SpecError::IntervalTooSmall);
        }
        if phase < 0 {
            return Err(SpecError::NegativePhase);
        }
        if phase >= every {
            return Err(SpecError::PhaseTooLarge);
        }
    }
    Ok(out)
}

/// A canonical spec, ready to answer next times.
#[derive(Debug, Clone)]
pub struct CompiledSpec {
    intervals: Vec<(i64, i64)>,
    calendars: Vec<Matcher>,
    excludes: Vec<Matcher>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
}

impl CompiledSpec {
    /// Compiles a spec already through [`canonicalize`].
    pub fn new(spec: &ScheduleSpec) -> Self {
        let interval = |iv: &IntervalSpec| (ms(iv.interval.as_ref()).max(1000), ms(iv.phase.as_ref()).max(0));
        let matcher = |c: &StructuredCalendarSpec| Matcher::new(c);
        CompiledSpec {
            intervals: spec.interval.iter().map(interval).collect(),
            calendars: spec.structured_calendar.iter().map(matcher).collect(),
            excludes: spec.exclude_structured_calendar.iter().map(matcher).collect(),
            start_ms: ts_ms(spec.start_time.as_ref()),
            end_ms: ts_ms(spec.end_time.as_ref()),
        }
    }

    /// The first nominal time strictly after `after_ms`, if any.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let mut t = match self.start_ms {
            Some(start) if after_ms < start => start - 1,
            _ => after_ms,
        };
        // Excluded times are skipped (bounded: a spec excluding everything ends).
        for _ in 0..10_000 {
            let next = self.next_raw(t)?;
            if self.end_ms.is_some_and(|end| next > end) {
                return None;
            }
            let secs = next.div_euclid(1000);
            if next.rem_euclid(1000) != 0 || !self.excludes.iter().any(|m| m.matches(secs)) {
                return Some(next);
            }
            t = next;
        }
        None
    }

    fn next_raw(&self, after_ms: i64) -> Option<i64> {
        let intervals = self.intervals.iter().filter_map(|&(every, phase)| {
            let k = after_ms.checked_sub(phase)?.div_euclid(every).checked_add(1)?;
            k.checked_mul(every)?.checked_add(phase)
        });
        // Calendars have 1 s resolution.
        let secs = after_ms.div_euclid(1000);
        let calendars = self.calendars.iter().filter_map(|m| m.next_after(secs)?.checked_mul(1000));
        intervals.chain(calendars).min()
    }

    /// Up to `n` nominal times after `after_ms`.
    pub fn upcoming(&self, after_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut t = after_ms;
        while out.len() < n {
            let Some(next) = self.next_after(t) else { break };
            out.push(next);
            t = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_wkt_types::{Duration, Timestamp};

    fn every(secs: i64, phase: i64) -> IntervalSpec {
        IntervalSpec { interval: Some(Duration { seconds: secs, nanos: 0 }), phase: Some(Duration { seconds: phase, nanos: 0 }) }
    }

    #[test]
    fn intervals_are_aligned_to_the_epoch_plus_phase() {
        let spec = canonicalize(&ScheduleSpec { interval: vec![every(3600, 0)], ..Default::default() }).unwrap();
        let c = CompiledSpec::new(&spec);
        assert_eq!(c.next_after(3_600_000), Some(7_200_000));
        assert_eq!(c.next_after(3_599_999), Some(3_600_000));
        let c = CompiledSpec::new(&ScheduleSpec { interval: vec![every(60, 15)], ..Default::default() });
        assert_eq!(c.upcoming(0, 3), vec![15_000, 75_000, 135_000]);
    }

    #[test]
    fn bad_specs_get_temporal_messages() {
        let bad = |spec: ScheduleSpec| canonicalize(&spec).unwrap_err().to_string();
        assert_eq!(bad(ScheduleSpec { interval: vec![every(0, 0)], ..Default::default() }), "Invalid schedule spec: interval is too small");
        assert_eq!(
            bad(ScheduleSpec { interval: vec![every(-5, 0)], ..Default::default() }),
            "Invalid schedule spec: interval is too small"
        );
        assert_eq!(
            bad(ScheduleSpec { interval: vec![every(60, 60)], ..Default::default() }),
            "Invalid schedule spec: phase cannot be greater than Interval"
        );
        assert_eq!(
            bad(ScheduleSpec { cron_string: vec!["bad cron".into()], ..Default::default() }),
            "Invalid schedule spec: CronString does not have 5-7 fields"
        );
        assert!(bad(ScheduleSpec { timezone_name: "Europe/Paris".into(), ..Default::default() }).contains("UTC"));
    }

    #[test]
    #[allow(deprecated)]
    fn start_end_and_excludes_bound_the_times() {
        let spec = canonicalize(&ScheduleSpec {
            interval: vec![every(60, 0)],
            cron_string: vec!["30 * * * *".into()],
            start_time: Some(Timestamp { seconds: 600, nanos: 0 }),
            end_time: Some(Timestamp { seconds: 3600, nanos: 0 }),
            exclude_calendar: vec![temporalio_protos::protos::temporal::api::schedule::v1::CalendarSpec {
                minute: "11-59".into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(spec.structured_calendar.len(), 1);
        assert!(spec.cron_string.is_empty());
        let c = CompiledSpec::new(&spec);
        // From the start time (inclusive); minutes 11-59 excluded; nothing after the end.
        assert_eq!(c.upcoming(0, 5), vec![600_000, 3_600_000]);
        assert_eq!(c.next_after(3_600_000), None);
    }
}
