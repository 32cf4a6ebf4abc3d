//! Calendar rules of schedules: the civil date arithmetic (UTC), the text forms
//! (`CalendarSpec` fields and cron strings) turned into `StructuredCalendarSpec`
//! ranges, and matching those ranges to find the next second that fits.
//!
//! Written here rather than taken from a cron crate because Temporal's semantics are
//! not classic cron: day of month and day of week must *both* match (no OR), cron
//! strings may carry seconds and years (5, 6 or 7 fields), `@every` becomes an
//! interval, and what Describe shows is the structured form with Temporal's ranges.
//! Another module (workflow `cron_schedule`) may parse classic cron; the two are kept
//! apart on purpose.

use temporalio_protos::protos::temporal::api::schedule::v1::{CalendarSpec, IntervalSpec, Range, StructuredCalendarSpec};

/// Earliest and latest year a calendar matches (Temporal's bounds).
pub const YEAR_MIN: i32 = 2000;
pub const YEAR_MAX: i32 = 2100;

const MONTHS: [&str; 12] =
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"];
const WEEKDAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (days since 1970-01-01).
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (i32::try_from(y).unwrap_or(i32::MAX), m, d)
}

/// 0 = Sunday.
pub fn weekday(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `2024-01-02T03:04:05Z` for a time in ms (seconds resolution), as Temporal names
/// scheduled workflow ids.
pub fn rfc3339_seconds(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Int,
    Month,
    Weekday,
}

/// Why a calendar or cron text does not parse (Temporal's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("CronString does not have 5-7 fields")]
    FieldCount,
    #[error("malformed expression")]
    Malformed,
    #[error("out of range")]
    OutOfRange,
    #[error("strconv.Atoi: parsing {0:?}: invalid syntax")]
    NotANumber(String),
}

fn parse_value(s: &str, min: i32, max: i32, mode: Mode) -> Result<i32, CalendarError> {
    let names: &[&str] = match mode {
        Mode::Month if s.len() >= 3 => &MONTHS,
        Mode::Weekday if s.len() >= 2 => &WEEKDAYS,
        _ => &[],
    };
    let lower = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| n.starts_with(&lower)) {
        let v = i as i32 + i32::from(mode == Mode::Month);
        return if (min..=max).contains(&v) { Ok(v) } else { Err(CalendarError::OutOfRange) };
    }
    let v: i32 = s.parse().map_err(|_| CalendarError::NotANumber(s.to_string()))?;
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(CalendarError::OutOfRange)
    }
}

/// One field's text (`*`, `x`, `x-z`, `x-z/y`, `x/y`, comma lists) as ranges.
fn parse_ranges(text: &str, default: &str, min: i32, max: i32, mode: Mode) -> Result<Vec<Range>, CalendarError> {
    let text = match text.trim() {
        "" => default,
        t => t,
    };
    let mut ranges = Vec::new();
    for part in text.split(',') {
        let (part, step) = match part.split_once('/') {
            Some((p, s)) => {
                if s.contains('/') {
                    return Err(CalendarError::Malformed);
                }
                let step: i32 = s.parse().map_err(|_| CalendarError::NotANumber(s.to_string()))?;
                if step < 1 {
                    return Err(CalendarError::Malformed);
                }
                (p, Some(step))
            }
            None => (part, None),
        };
        // `*` is every day of the week as 0-6 (7 is accepted as Sunday too).
        let (mut start, mut end) = (min, if mode == Mode::Weekday { 6 } else { max });
        if part != "*" {
            match part.split_once('-') {
                Some((a, b)) => {
                    if b.contains('-') {
                        return Err(CalendarError::Malformed);
                    }
                    start = parse_value(a, min, max, mode)?;
                    end = parse_value(b, start, max, mode)?;
                }
                None => {
                    start = parse_value(part, min, max, mode)?;
                    if step.is_none() {
                        end = start;
                    }
                }
            }
        }
        ranges.push(Range { start, end: if start == end { 0 } else { end }, step: step.unwrap_or(1) });
    }
    Ok(ranges)
}

/// A `CalendarSpec` (text fields) as the structured form Temporal stores.
pub fn structured(cal: &CalendarSpec) -> Result<StructuredCalendarSpec, CalendarError> {
    Ok(StructuredCalendarSpec {
        second: parse_ranges(&cal.second, "0", 0, 59, Mode::Int)?,
        minute: parse_ranges(&cal.minute, "0", 0, 59, Mode::Int)?,
        hour: parse_ranges(&cal.hour, "0", 0, 23, Mode::Int)?,
        day_of_month: parse_ranges(&cal.day_of_month, "*", 1, 31, Mode::Int)?,
        month: parse_ranges(&cal.month, "*", 1, 12, Mode::Month)?,
        year: if cal.year.trim().is_empty() || cal.year.trim() == "*" {
            Vec::new()
        } else {
            parse_ranges(&cal.year, "*", YEAR_MIN, YEAR_MAX, Mode::Int)?
        },
        day_of_week: parse_ranges(&cal.day_of_week, "*", 0, 7, Mode::Weekday)?,
        comment: cal.comment.clone(),
    })
}

/// What a cron string means.
#[derive(Debug, Clone, PartialEq)]
pub enum Cron {
    Calendar { calendar: StructuredCalendarSpec, timezone: String },
    Interval(IntervalSpec),
}

/// A Temporal schedule cron string: optional `TZ=`/`CRON_TZ=` prefix, `@every
/// <duration>[/<phase>]`, `@hourly`…, or 5 (m h dom mon dow), 6 (+ year) or 7
/// (s m h dom mon dow year) fields; a `#` starts a comment.
pub fn parse_cron(text: &str) -> Result<Cron, CalendarError> {
    let (text, comment) = match text.split_once('#') {
        Some((t, c)) => (t.trim(), c.trim().to_string()),
        None => (text.trim(), String::new()),
    };
    let (text, timezone) = if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
        let (tz, rest) = text.split_once(' ').ok_or(CalendarError::Malformed)?;
        (rest.trim(), tz.split_once('=').map(|(_, z)| z.to_string()).unwrap_or_default())
    } else {
        (text, String::new())
    };
    if let Some(rest) = text.strip_prefix("@every") {
        let rest = rest.trim();
        let (every, phase) = rest.split_once('/').map_or((rest, None), |(a, b)| (a, Some(b)));
        let interval = go_duration_ms(every).ok_or(CalendarError::Malformed)?;
        let phase = phase.map(|p| go_duration_ms(p).ok_or(CalendarError::Malformed)).transpose()?;
        return Ok(Cron::Interval(IntervalSpec { interval: Some(ms_duration(interval)), phase: phase.map(ms_duration) }));
    }
    let text = match text {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        t => t,
    };
    let f: Vec<&str> = text.split_whitespace().collect();
    let mut cal = CalendarSpec { comment, ..Default::default() };
    let fields: [&mut String; 7] =
        [&mut cal.second, &mut cal.minute, &mut cal.hour, &mut cal.day_of_month, &mut cal.month, &mut cal.day_of_week, &mut cal.year];
    let skip = match f.len() {
        5 | 6 => 1,
        7 => 0,
        _ => return Err(CalendarError::FieldCount),
    };
    for (slot, value) in fields.into_iter().skip(skip).zip(f) {
        *slot = value.to_string();
    }
    Ok(Cron::Calendar { calendar: structured(&cal)?, timezone })
}

fn ms_duration(ms: i64) -> prost_wkt_types::Duration {
    prost_wkt_types::Duration { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// A Go-style duration (`90s`, `1h30m`, `500ms`, `2d`) in ms.
fn go_duration_ms(text: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add((value * unit_ms) as i64)?;
    }
    Some(total)
}

/// A structured calendar as predicates over each field.
#[derive(Debug, Clone)]
pub struct Matcher {
    years: Vec<i32>,
    month: u64,
    day_of_month: u64,
    day_of_week: u64,
    hour: u64,
    minute: u64,
    second: u64,
}

fn each(ranges: &[Range], mut f: impl FnMut(i32)) {
    for r in ranges {
        let step = if r.step <= 0 { 1 } else { r.step };
        let end = r.end.max(r.start);
        let mut v = r.start;
        while v <= end {
            f(v);
            v = v.saturating_add(step);
            if v == i32::MAX {
                break;
            }
        }
    }
}

fn bits(ranges: &[Range]) -> u64 {
    let mut b = 0u64;
    each(ranges, |v| {
        if (0..64).contains(&v) {
            b |= 1 << v;
        }
    });
    b
}

fn has(bits: u64, v: u32) -> bool {
    v < 64 && bits & (1 << v) != 0
}

impl Matcher {
    pub fn new(cal: &StructuredCalendarSpec) -> Self {
        let mut years = Vec::new();
        each(&cal.year, |y| {
            if (YEAR_MIN..=YEAR_MAX).contains(&y) {
                years.push(y)
            }
        });
        let dow = bits(&cal.day_of_week);
        Matcher {
            years,
            month: bits(&cal.month),
            day_of_month: bits(&cal.day_of_month),
            // 7 is Sunday too.
            day_of_week: dow | (dow >> 7),
            hour: bits(&cal.hour),
            minute: bits(&cal.minute),
            second: bits(&cal.second),
        }
    }

    fn year(&self, y: i32) -> bool {
        self.years.is_empty() || self.years.contains(&y)
    }

    /// Whether the second `secs` (since the epoch, UTC) matches.
    pub fn matches(&self, secs: i64) -> bool {
        let days = secs.div_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let s = secs.rem_euclid(86_400) as u32;
        self.year(y)
            && has(self.month, m)
            && has(self.day_of_month, d)
            && has(self.day_of_week, weekday(days))
            && has(self.hour, s / 3600)
            && has(self.minute, s / 60 % 60)
            && has(self.second, s % 60)
    }

    /// The first matching second strictly after `secs` (UTC), up to [`YEAR_MAX`].
    pub fn next_after(&self, secs: i64) -> Option<i64> {
        let start = secs.checked_add(1)?;
        let mut days = start.div_euclid(86_400);
        let mut from = start.rem_euclid(86_400) as u32;
        loop {
            let (y, m, d) = civil_from_days(days);
            if y > YEAR_MAX {
                return None;
            }
            if y < YEAR_MIN {
                days = days_from_civil(YEAR_MIN, 1, 1);
                from = 0;
                continue;
            }
            if !self.year(y) {
                days = days_from_civil(y + 1, 1, 1);
                from = 0;
                continue;
            }
            if !has(self.month, m) {
                days += i64::from(days_in_month(y, m) - d + 1);
                from = 0;
                continue;
            }
            if has(self.day_of_month, d) && has(self.day_of_week, weekday(days)) {
                if let Some(s) = self.time_of_day_from(from) {
                    return Some(days * 86_400 + i64::from(s));
                }
            }
            days += 1;
            from = 0;
        }
    }

    /// The first matching second of a day at or after `from` seconds into it.
    fn time_of_day_from(&self, from: u32) -> Option<u32> {
        for h in from / 3600..24 {
            if !has(self.hour, h) {
                continue;
            }
            let m0 = if h == from / 3600 { from / 60 % 60 } else { 0 };
            for m in m0..60 {
                if !has(self.minute, m) {
                    continue;
                }
                let s0 = if h == from / 3600 && m == from / 60 % 60 { from % 60 } else { 0 };
                if let Some(s) = (s0..60).find(|&s| has(self.second, s)) {
                    return Some(h * 3600 + m * 60 + s);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: i64, mi: i64, s: i64) -> i64 {
        days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s
    }

    #[test]
    fn civil_dates_round_trip() {
        for z in [-1000, 0, 1, 59, 365, 10_957, 19_723, 47_482] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(weekday(0), 4);
        assert_eq!(rfc3339_seconds(at(2024, 2, 29, 13, 5, 9) * 1000 + 999), "2024-02-29T13:05:09Z");
    }

    #[test]
    fn cron_strings_become_temporal_ranges() {
        let Cron::Calendar { calendar, timezone } = parse_cron("*/5 * * * *").unwrap() else { panic!() };
        assert_eq!(timezone, "");
        assert_eq!(calendar.minute, vec![Range { start: 0, end: 59, step: 5 }]);
        assert_eq!(calendar.second, vec![Range { start: 0, end: 0, step: 1 }]);
        assert_eq!(calendar.day_of_month, vec![Range { start: 1, end: 31, step: 1 }]);
        assert_eq!(calendar.day_of_week, vec![Range { start: 0, end: 6, step: 1 }]);
        assert_eq!(calendar.year, vec![]);
        assert_eq!(parse_cron("bad cron"), Err(CalendarError::FieldCount));
        assert_eq!(parse_cron("61 * * * *"), Err(CalendarError::OutOfRange));
        assert_eq!(parse_cron("x * * * *"), Err(CalendarError::NotANumber("x".into())));
        assert!(matches!(parse_cron("@every 90s"), Ok(Cron::Interval(IntervalSpec { interval: Some(d), .. })) if d.seconds == 90));
        let Cron::Calendar { calendar, .. } = parse_cron("0 12 * jan-mar mon,fri").unwrap() else { panic!() };
        assert_eq!(calendar.month, vec![Range { start: 1, end: 3, step: 1 }]);
        assert_eq!(calendar.day_of_week, vec![Range { start: 1, end: 0, step: 1 }, Range { start: 5, end: 0, step: 1 }]);
        let Cron::Calendar { timezone, .. } = parse_cron("CRON_TZ=UTC 0 * * * *").unwrap() else { panic!() };
        assert_eq!(timezone, "UTC");
    }

    #[test]
    fn next_match_walks_fields_from_the_outside_in() {
        let every5 = |text| match parse_cron(text).unwrap() {
            Cron::Calendar { calendar, .. } => Matcher::new(&calendar),
            Cron::Interval(_) => panic!(),
        };
        let m = every5("*/5 * * * *");
        assert_eq!(m.next_after(at(2024, 1, 1, 0, 0, 0)), Some(at(2024, 1, 1, 0, 5, 0)));
        assert_eq!(m.next_after(at(2024, 1, 1, 23, 57, 3)), Some(at(2024, 1, 2, 0, 0, 0)));
        assert!(m.matches(at(2024, 1, 1, 0, 5, 0)));
        // Day of month AND day of week: the 13th that is a Friday.
        let friday13 = every5("0 0 13 * fri");
        assert_eq!(friday13.next_after(at(2024, 1, 1, 0, 0, 0)), Some(at(2024, 9, 13, 0, 0, 0)));
        // Feb 29 only in leap years; Sunday as 7.
        assert_eq!(every5("0 0 29 2 *").next_after(at(2024, 3, 1, 0, 0, 0)), Some(at(2028, 2, 29, 0, 0, 0)));
        assert_eq!(every5("0 0 * * 7").next_after(at(2024, 1, 1, 0, 0, 0)), Some(at(2024, 1, 7, 0, 0, 0)));
        // Seconds and years (7 fields); a year that is over never matches again.
        assert_eq!(every5("30 0 0 1 1 * 2030").next_after(at(2024, 1, 1, 0, 0, 0)), Some(at(2030, 1, 1, 0, 0, 30)));
        assert_eq!(every5("0 0 1 1 * 2020").next_after(at(2024, 1, 1, 0, 0, 0)), None);
    }
}
