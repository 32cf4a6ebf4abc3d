//! Cron schedules, read and followed as Temporal's server does: its
//! `backoff.ValidateSchedule` / `GetBackoffForNextSchedule` over robfig/cron v3's
//! `ParseStandard` (5 fields — minute, hour, day of month, month, day of week — or a
//! descriptor: `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
//! `@hourly`, `@every <Go duration>`), evaluated in UTC.
//!
//! Written here rather than taken from a crate: the Rust cron crates read other
//! grammars (a seconds field, no `@every`, other day-of-month/day-of-week rules,
//! no five-year search limit), and a run's backoff must be the second Temporal
//! computes. `CRON_TZ=`/`TZ=` prefixes naming a zone other than UTC are refused
//! ([`CronError::TimeZone`]): Hourglass carries no time zone database.

/// Why a cron schedule is refused. The messages are Temporal's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The spec does not parse (robfig/cron's reason is kept for logs and tests).
    #[error("invalid CronSchedule.")]
    Invalid(&'static str),
    /// It parses, but no time within five years matches it.
    #[error("invalid CronSchedule, no time can be found to satisfy the schedule")]
    Unsatisfiable,
    /// A `CRON_TZ=`/`TZ=` zone other than UTC.
    #[error("Hourglass evaluates cron schedules in UTC only; time zone {0:?} is not supported")]
    TimeZone(String),
}

type Result<T> = std::result::Result<T, CronError>;

/// A parsed schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// `@every <duration>`: whole seconds, at least one.
    Every { delay_ms: i64 },
    /// Bit sets of the matching minutes, hours, days of month, months, days of week
    /// (bit 63: the field was `*` or `?`). The second is always 0.
    Spec { minute: u64, hour: u64, dom: u64, month: u64, dow: u64 },
}

const STAR_BIT: u64 = 1 << 63;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds { min: 0, max: 59, names: &[] };
const HOURS: Bounds = Bounds { min: 0, max: 23, names: &[] };
const DOM: Bounds = Bounds { min: 1, max: 31, names: &[] };
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds { min: 0, max: 6, names: &[("sun", 0), ("mon", 1), ("tue", 2), ("wed", 3), ("thu", 4), ("fri", 5), ("sat", 6)] };

/// Parses a non-empty schedule (robfig/cron's `ParseStandard`).
pub fn parse(spec: &str) -> Result<Schedule> {
    if spec.is_empty() {
        return Err(CronError::Invalid("empty spec string"));
    }
    let mut spec = spec;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let (Some(space), Some(eq)) = (spec.find(' '), spec.find('=')) else {
            return Err(CronError::Invalid("a time zone without a schedule"));
        };
        let zone = spec.get(eq + 1..space).unwrap_or_default();
        // Go's LoadLocation: "" and "UTC" are UTC; "Local" is the caller's zone (UTC).
        if !matches!(zone, "" | "UTC" | "Local") {
            return Err(CronError::TimeZone(zone.to_string()));
        }
        spec = spec[space..].trim();
    }
    if spec.starts_with('@') {
        return descriptor(spec);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return Err(CronError::Invalid("expected exactly 5 fields"));
    };
    Ok(Schedule::Spec {
        minute: field(minute, &MINUTES)?,
        hour: field(hour, &HOURS)?,
        dom: field(dom, &DOM)?,
        month: field(month, &MONTHS)?,
        dow: field(dow, &DOW)?,
    })
}

/// Temporal's `ValidateSchedule`: parses, and some time after `now_ms` must match.
pub fn validate(spec: &str, now_ms: i64) -> Result<Schedule> {
    let schedule = parse(spec)?;
    schedule.next_ms(now_ms).ok_or(CronError::Unsatisfiable)?;
    Ok(schedule)
}

/// Temporal's `GetBackoffForNextSchedule`: how long after `now_ms` the run following
/// one scheduled at `scheduled_ms` starts — the first schedule time not before now
/// (or `scheduled_ms` itself while it is ahead), rounded up to whole seconds. `None`:
/// no schedule, or no time matches.
pub fn backoff_ms(spec: &str, scheduled_ms: i64, now_ms: i64) -> Option<i64> {
    if spec.is_empty() {
        return None;
    }
    let schedule = parse(spec).ok()?;
    let next_ms = if now_ms < scheduled_ms {
        scheduled_ms
    } else {
        let mut next = schedule.next_ms(scheduled_ms)?;
        while next < now_ms {
            next = schedule.next_ms(next)?;
        }
        next
    };
    let backoff = next_ms - now_ms;
    Some(backoff.div_euclid(1000) * 1000 + if backoff.rem_euclid(1000) > 0 { 1000 } else { 0 })
}

fn descriptor(spec: &str) -> Result<Schedule> {
    let all = |b: &Bounds| bits(b.min, b.max, 1) | STAR_BIT;
    let at = |n: u32| 1u64 << n;
    let spec_of = |minute, hour, dom, month, dow| Ok(Schedule::Spec { minute, hour, dom, month, dow });
    match spec {
        "@yearly" | "@annually" => spec_of(at(0), at(0), at(1), at(1), all(&DOW)),
        "@monthly" => spec_of(at(0), at(0), at(1), all(&MONTHS), all(&DOW)),
        "@weekly" => spec_of(at(0), at(0), all(&DOM), all(&MONTHS), at(0)),
        "@daily" | "@midnight" => spec_of(at(0), at(0), all(&DOM), all(&MONTHS), all(&DOW)),
        "@hourly" => spec_of(at(0), all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        _ => {
            let Some(duration) = spec.strip_prefix("@every ") else { return Err(CronError::Invalid("unrecognized descriptor")) };
            let nanos = go_duration_nanos(duration).ok_or(CronError::Invalid("failed to parse duration"))?;
            // robfig's `Every`: at least a second, whole seconds.
            let secs = (nanos / 1_000_000_000).max(1);
            Ok(Schedule::Every { delay_ms: i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000) })
        }
    }
}

/// A comma-separated list of ranges (`getField`); empty items are skipped.
fn field(text: &str, b: &Bounds) -> Result<u64> {
    text.split(',').filter(|r| !r.is_empty()).try_fold(0u64, |acc, r| Ok(acc | range(r, b)?))
}

/// `number | name | * | ?`, optionally `-number`, optionally `/step` (`getRange`).
fn range(expr: &str, b: &Bounds) -> Result<u64> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut extra) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (b.min, b.max, STAR_BIT)
    } else {
        let start = int_or_name(low_and_high[0], b)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => int_or_name(low_and_high[1], b)?,
            _ => return Err(CronError::Invalid("too many hyphens")),
        };
        (start, end, 0)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = int(range_and_step[1])?;
            // `N/step` means `N-max/step`.
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(CronError::Invalid("too many slashes")),
    };
    if start < b.min {
        return Err(CronError::Invalid("beginning of range below minimum"));
    }
    if end > b.max {
        return Err(CronError::Invalid("end of range above maximum"));
    }
    if start > end {
        return Err(CronError::Invalid("beginning of range beyond end of range"));
    }
    if step == 0 {
        return Err(CronError::Invalid("step of range should be a positive number"));
    }
    Ok(bits(start, end, step) | extra)
}

fn int_or_name(text: &str, b: &Bounds) -> Result<u32> {
    let lower = text.to_ascii_lowercase();
    match b.names.iter().find(|(name, _)| *name == lower) {
        Some((_, n)) => Ok(*n),
        None => int(text),
    }
}

/// Go's `strconv.Atoi`, then non-negative.
fn int(text: &str) -> Result<u32> {
    let n: i64 = text.parse().map_err(|_| CronError::Invalid("failed to parse int"))?;
    if n < 0 {
        return Err(CronError::Invalid("negative number not allowed"));
    }
    // Anything this large is past every field's maximum.
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Bits `start..=end` stepping by `step` (all within 0..=59 once range-checked).
fn bits(start: u32, end: u32, step: u32) -> u64 {
    (start..=end).step_by(step as usize).fold(0, |acc, i| acc | (1u64 << i))
}

/// Go's `time.ParseDuration`, in nanoseconds (`None`: it would refuse the text).
fn go_duration_nanos(text: &str) -> Option<i128> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(after) => after.split_at(after.bytes().take_while(u8::is_ascii_digit).count()),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: i128 = if int_part.is_empty() { 0 } else { int_part.parse().ok()? };
        let mut value = whole.checked_mul(scale)?;
        if !frac_part.is_empty() {
            let digits = frac_part.len().min(30) as u32;
            let frac: i128 = frac_part[..digits as usize].parse().ok()?;
            value += frac * scale / 10i128.pow(digits);
        }
        total = total.checked_add(value)?;
        if total > i128::from(i64::MAX) {
            return None;
        }
        rest = after;
    }
    Some(if negative { -total } else { total })
}

impl Schedule {
    /// The first time after `t_ms` (ms since the epoch, UTC) the schedule fires, on a
    /// whole second; `None` when none within five years (robfig's `Next`).
    pub fn next_ms(&self, t_ms: i64) -> Option<i64> {
        match *self {
            Schedule::Every { delay_ms } => Some(t_ms - t_ms.rem_euclid(1000) + delay_ms),
            Schedule::Spec { minute, hour, dom, month, dow } => {
                let spec = SpecBits { minute, hour, dom, month, dow };
                spec.next_second(t_ms.div_euclid(1000) + 1).map(|s| s * 1000)
            }
        }
    }
}

struct SpecBits {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
}

impl SpecBits {
    fn day_matches(&self, c: &Civil) -> bool {
        let dom = self.dom & (1 << c.day) != 0;
        let dow = self.dow & (1 << c.weekday) != 0;
        if self.dom & STAR_BIT != 0 || self.dow & STAR_BIT != 0 {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// robfig's `SpecSchedule.Next` in UTC, from second `t` (already the upcoming one).
    fn next_second(&self, mut t: i64) -> Option<i64> {
        let mut added = false;
        let year_limit = Civil::of(t).year + 5;
        'wrap: loop {
            let c = Civil::of(t);
            if c.year > year_limit {
                return None;
            }
            let mut c = c;
            while self.month & (1 << c.month) == 0 {
                if !added {
                    added = true;
                    t = seconds_of(c.year, c.month, 1, 0, 0, 0);
                    c = Civil::of(t);
                }
                t = seconds_of(c.year, c.month + 1, c.day, c.hour, c.minute, c.second);
                c = Civil::of(t);
                if c.month == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(&c) {
                if !added {
                    added = true;
                    t = seconds_of(c.year, c.month, c.day, 0, 0, 0);
                }
                t += 86_400;
                c = Civil::of(t);
                if c.day == 1 {
                    continue 'wrap;
                }
            }
            while self.hour & (1 << c.hour) == 0 {
                if !added {
                    added = true;
                    t -= t.rem_euclid(3_600);
                }
                t += 3_600;
                c = Civil::of(t);
                if c.hour == 0 {
                    continue 'wrap;
                }
            }
            while self.minute & (1 << c.minute) == 0 {
                if !added {
                    added = true;
                    t -= t.rem_euclid(60);
                }
                t += 60;
                c = Civil::of(t);
                if c.minute == 0 {
                    continue 'wrap;
                }
            }
            while c.second != 0 {
                added = true;
                t += 1;
                c = Civil::of(t);
                if c.second == 0 {
                    continue 'wrap;
                }
            }
            return Some(t);
        }
    }
}

/// A UTC civil time (Gregorian), from seconds since the epoch.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// Sunday = 0.
    weekday: u32,
}

impl Civil {
    fn of(t: i64) -> Civil {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil { year, month, day, hour: secs / 3_600, minute: secs / 60 % 60, second: secs % 60, weekday: (days + 4).rem_euclid(7) as u32 }
    }
}

/// Seconds since the epoch of a civil time; a month past 12 or a day past the month's
/// end carry over as Go's `time.Date` normalises them.
fn seconds_of(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> i64 {
    let month0 = i64::from(month) - 1;
    let year = year + month0.div_euclid(12);
    let month = month0.rem_euclid(12) + 1;
    // Howard Hinnant's days_from_civil (linear in the day, so overflow carries).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ms of a UTC civil time.
    fn at(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        seconds_of(y, mo, d, h, mi, s) * 1000
    }

    fn next(spec: &str, from: i64) -> Option<i64> {
        parse(spec).unwrap().next_ms(from)
    }

    #[test]
    fn civil_conversions_round_trip() {
        assert_eq!(seconds_of(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(seconds_of(2026, 12, 3, 7, 42, 33), 1_796_283_753);
        let c = Civil::of(1_796_283_753);
        assert_eq!((c.year, c.month, c.day, c.hour, c.minute, c.second, c.weekday), (2026, 12, 3, 7, 42, 33, 4));
        assert_eq!(seconds_of(2024, 2, 30, 0, 0, 0), seconds_of(2024, 3, 1, 0, 0, 0), "Go's time.Date carries");
        assert_eq!(seconds_of(2024, 13, 1, 0, 0, 0), seconds_of(2025, 1, 1, 0, 0, 0));
    }

    #[test]
    fn the_grammar_temporal_accepts() {
        for ok in [
            "* * * * *",
            " * * * * * ",
            "*/15 0-6,22 1,15 JAN-mar Mon-fri",
            "0 9 ? * *",
            "5/10 * * * *",
            "*-5 * * * *",
            "1,,2 * * * *",
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
            "@every 2s",
            "@every 1h30m",
            "@every 1.5s",
            "@every 0s",
            "@every -5s",
            "CRON_TZ=UTC 0 9 * * *",
            "TZ=UTC @hourly",
        ] {
            assert!(parse(ok).is_ok(), "{ok:?} should parse");
        }
        for bad in [
            "",
            "not a cron",
            "* * * * * *",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 7",
            "*/0 * * * *",
            "5-1 * * * *",
            "1-2-3 * * * *",
            "1/2/3 * * * *",
            "-1 * * * *",
            "*/ * * * *",
            "@reboot",
            "@every abc",
            "@every",
            "@every  1s",
            "@every 1",
            "@hourly ",
            " @hourly",
            "TZ=UTC",
        ] {
            assert!(matches!(parse(bad), Err(CronError::Invalid(_))), "{bad:?} should be refused: {:?}", parse(bad));
        }
        assert_eq!(parse("CRON_TZ=America/New_York 0 9 * * *"), Err(CronError::TimeZone("America/New_York".into())));
    }

    #[test]
    fn messages_are_temporals() {
        assert_eq!(CronError::Invalid("x").to_string(), "invalid CronSchedule.");
        assert_eq!(CronError::Unsatisfiable.to_string(), "invalid CronSchedule, no time can be found to satisfy the schedule");
        assert_eq!(validate("0 0 30 2 *", at(2026, 1, 1, 0, 0, 0)), Err(CronError::Unsatisfiable));
        assert_eq!(validate(", * * * *", 0), Err(CronError::Unsatisfiable), "an empty list matches nothing");
        assert!(validate("0 0 29 2 *", at(2026, 1, 1, 0, 0, 0)).is_ok(), "a leap day within five years");
    }

    #[test]
    fn every_lands_on_whole_seconds() {
        assert_eq!(parse("@every 2s"), Ok(Schedule::Every { delay_ms: 2_000 }));
        assert_eq!(parse("@every 1.9s"), Ok(Schedule::Every { delay_ms: 1_000 }));
        assert_eq!(parse("@every 300ms"), Ok(Schedule::Every { delay_ms: 1_000 }));
        assert_eq!(parse("@every 1m"), Ok(Schedule::Every { delay_ms: 60_000 }));
        assert_eq!(next("@every 2s", 35_919), Some(37_000));
        assert_eq!(next("@every 2s", 36_000), Some(38_000));
    }

    #[test]
    fn spec_schedules_follow_robfig() {
        let t = at(2026, 12, 3, 7, 42, 33) + 500;
        assert_eq!(next("* * * * *", t), Some(at(2026, 12, 3, 7, 43, 0)));
        assert_eq!(next("*/15 * * * *", t), Some(at(2026, 12, 3, 7, 45, 0)));
        assert_eq!(next("0 9 * * *", t), Some(at(2026, 12, 3, 9, 0, 0)));
        assert_eq!(next("0 6 * * *", t), Some(at(2026, 12, 4, 6, 0, 0)));
        assert_eq!(next("@hourly", t), Some(at(2026, 12, 3, 8, 0, 0)));
        assert_eq!(next("@daily", t), Some(at(2026, 12, 4, 0, 0, 0)));
        assert_eq!(next("@weekly", t), Some(at(2026, 12, 6, 0, 0, 0)), "the next Sunday");
        assert_eq!(next("@monthly", t), Some(at(2027, 1, 1, 0, 0, 0)));
        assert_eq!(next("@yearly", t), Some(at(2027, 1, 1, 0, 0, 0)));
        assert_eq!(next("0 0 29 2 *", t), Some(at(2028, 2, 29, 0, 0, 0)));
        // Both days restricted: either matches (the 13th, or any Friday).
        assert_eq!(next("0 0 13 * 5", t), Some(at(2026, 12, 4, 0, 0, 0)));
        assert_eq!(next("0 0 13 * FRI", at(2026, 12, 1, 0, 0, 0)), Some(at(2026, 12, 4, 0, 0, 0)), "either, when neither is starred");
        assert_eq!(next("0 0 13 * ?", at(2026, 12, 1, 0, 0, 0)), Some(at(2026, 12, 13, 0, 0, 0)));
        assert_eq!(next("0 0 13 * FRI/1", at(2026, 12, 1, 0, 0, 0)), Some(at(2026, 12, 4, 0, 0, 0)));
        assert_eq!(next("0 0 */40 * 5", t), Some(at(2026, 12, 4, 0, 0, 0)), "a dom step makes dom un-starred");
        assert_eq!(next("0 0 * * 5", t), Some(at(2026, 12, 4, 0, 0, 0)));
        // On a matching second the next one is strictly later.
        assert_eq!(next("* * * * *", at(2026, 12, 3, 7, 43, 0)), Some(at(2026, 12, 3, 7, 44, 0)));
    }

    #[test]
    fn backoffs_match_the_reference() {
        // Recorded from Temporal's server (`@every 2s`): the first run waits for the
        // next even-second boundary after now, rounded up to whole seconds.
        assert_eq!(backoff_ms("@every 2s", 33_919, 33_919), Some(2_000));
        // A run executed at 35.919 that closed at 36.606: next 37.000, in 0.394 s → 1 s.
        assert_eq!(backoff_ms("@every 2s", 35_919, 36_606), Some(1_000));
        assert_eq!(backoff_ms("@every 2s", 37_606, 37_724), Some(2_000));
        // Schedule times already passed are skipped, not replayed.
        assert_eq!(backoff_ms("@every 2s", 10_000, 20_500), Some(2_000));
        // Still ahead of its scheduled time: wait for it.
        assert_eq!(backoff_ms("@every 2s", 5_000, 4_200), Some(1_000));
        assert_eq!(backoff_ms("", 0, 0), None);
        assert_eq!(backoff_ms("0 0 30 2 *", 0, 0), None);
        let t = at(2026, 12, 3, 7, 42, 33) + 250;
        assert_eq!(backoff_ms("* * * * *", t, t), Some(27_000));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_nanos("2s"), Some(2_000_000_000));
        assert_eq!(go_duration_nanos("1h30m"), Some(5_400_000_000_000));
        assert_eq!(go_duration_nanos("1.5s"), Some(1_500_000_000));
        assert_eq!(go_duration_nanos(".5s"), Some(500_000_000));
        assert_eq!(go_duration_nanos("-5s"), Some(-5_000_000_000));
        assert_eq!(go_duration_nanos("0"), Some(0));
        assert_eq!(go_duration_nanos("300µs"), Some(300_000));
        for bad in ["", "1", "s", "1d", ".s", "1s2", "99999999999999h"] {
            assert_eq!(go_duration_nanos(bad), None, "{bad:?}");
        }
    }
}
