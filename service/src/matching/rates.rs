//! Task rates of a queue, as Temporal's matching measures them for `DescribeTaskQueue`
//! (`tasks_add_rate`, `tasks_dispatch_rate`): tasks counted in buckets of
//! [`BUCKET`] over the last [`WINDOW`], divided by the window, or by the time since
//! counting began while that is shorter.

use std::time::Duration;

use tokio::time::Instant;

/// The span a rate is measured over.
pub const WINDOW: Duration = Duration::from_secs(30);
/// The width of one bucket.
pub const BUCKET: Duration = Duration::from_secs(5);
/// Buckets kept: the window plus the one being filled.
const BUCKETS: usize = (WINDOW.as_secs() / BUCKET.as_secs()) as usize + 1;

/// Counts events and reports their rate per second.
#[derive(Debug, Clone)]
pub struct TaskRate {
    started: Instant,
    bucket_start: Instant,
    current: usize,
    counts: [u32; BUCKETS],
}

impl Default for TaskRate {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl TaskRate {
    pub fn new(now: Instant) -> Self {
        Self { started: now, bucket_start: now, current: 0, counts: [0; BUCKETS] }
    }

    /// Moves to the bucket `now` falls in, clearing the ones passed.
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.bucket_start);
        let buckets = elapsed.as_nanos() / BUCKET.as_nanos();
        for _ in 0..buckets.min(BUCKETS as u128) {
            self.current = (self.current + 1) % BUCKETS;
            self.counts[self.current] = 0;
        }
        // `buckets` whole buckets passed (at most the time elapsed, so it fits).
        let passed = u32::try_from(buckets).unwrap_or(u32::MAX);
        self.bucket_start += BUCKET.saturating_mul(passed);
    }

    /// Counts one event at `now`.
    pub fn record(&mut self, now: Instant) {
        self.advance(now);
        self.counts[self.current] = self.counts[self.current].saturating_add(1);
    }

    /// Events per second over the last [`WINDOW`] (or since counting began).
    pub fn per_second(&mut self, now: Instant) -> f32 {
        self.advance(now);
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        let span = (now.saturating_duration_since(self.bucket_start) + WINDOW).min(now.saturating_duration_since(self.started));
        if span.is_zero() {
            return 0.0;
        }
        (total as f64 / span.as_secs_f64()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_counted_over_the_time_since_the_start_until_the_window_is_full() {
        let t0 = Instant::now();
        let mut rate = TaskRate::new(t0);
        assert_eq!(rate.per_second(t0), 0.0);
        for _ in 0..3 {
            rate.record(t0);
        }
        assert!((rate.per_second(t0 + Duration::from_secs(2)) - 1.5).abs() < 1e-6, "3 events in 2 s");
        assert!((rate.per_second(t0 + Duration::from_secs(12)) - 0.25).abs() < 1e-6, "3 events in 12 s");
        // Past the window the events fall out.
        assert_eq!(rate.per_second(t0 + WINDOW + BUCKET + Duration::from_secs(1)), 0.0);
        rate.record(t0 + Duration::from_secs(100));
        let r = rate.per_second(t0 + Duration::from_secs(101));
        assert!(r > 0.0 && r < 1.0 / 30.0 + 1e-6, "one event over a full window: {r}");
    }
}
