//! Limits and retention of a shard state machine.

/// Tunables of one shard's state machine. Every limit is explicit.
///
/// The configuration is not part of a snapshot: every replica of a shard must run
/// with the same values, or replicas would decide differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardConfig {
    /// How long a closed run (state, history refs, tasks, timers) is kept after it
    /// closed. A run closed at `c` is dropped by the first successful transition
    /// with `time_ms - closed_run_retention_ms >= c`. Negative acts as 0.
    pub closed_run_retention_ms: i64,
    /// How long a request dedupe key is remembered after the transition that
    /// carried it. Same boundary rule as runs. Negative acts as 0.
    pub dedupe_retention_ms: i64,
    /// Most history events a run may hold (Temporal's limit is 51 200).
    pub history_events_max: u64,
    /// Most tasks one backlog (one [`super::QueueKey`]) may hold.
    pub backlog_tasks_max: usize,
    /// Most timers one run may have pending.
    pub timers_max_per_run: usize,
    /// Most closed runs, and separately most dedupe entries, one transition drops,
    /// so a jump in time cannot stall the apply loop. The rest go with later
    /// transitions.
    pub retention_sweep_max: usize,
}

impl Default for ShardConfig {
    fn default() -> Self {
        Self {
            closed_run_retention_ms: 24 * 60 * 60 * 1000,
            dedupe_retention_ms: 60 * 60 * 1000,
            history_events_max: 51_200,
            backlog_tasks_max: 100_000,
            timers_max_per_run: 10_000,
            retention_sweep_max: 1_000,
        }
    }
}

/// A configuration value that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard config: {field} {detail}")]
pub struct ConfigError {
    pub field: &'static str,
    pub detail: &'static str,
}

impl ShardConfig {
    /// Rejects values that are well defined but certainly a mistake (negative
    /// retention, limits of zero). The state machine itself accepts any value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field, detail| Err(ConfigError { field, detail });
        if self.closed_run_retention_ms < 0 {
            return fail("closed_run_retention_ms", "must not be negative");
        }
        if self.dedupe_retention_ms < 0 {
            return fail("dedupe_retention_ms", "must not be negative");
        }
        if self.history_events_max == 0 {
            return fail("history_events_max", "must be at least 1");
        }
        if self.backlog_tasks_max == 0 {
            return fail("backlog_tasks_max", "must be at least 1");
        }
        if self.timers_max_per_run == 0 {
            return fail("timers_max_per_run", "must be at least 1");
        }
        if self.retention_sweep_max == 0 {
            return fail("retention_sweep_max", "must be at least 1 (0 would never drop anything)");
        }
        Ok(())
    }

    /// Time at or before which a run closed is expired, as of `now_ms`.
    pub(super) fn run_cutoff(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.closed_run_retention_ms.max(0))
    }

    /// Time at or before which a dedupe entry is expired, as of `now_ms`.
    pub(super) fn dedupe_cutoff(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.dedupe_retention_ms.max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(ShardConfig::default().validate(), Ok(()));
        assert_eq!(ShardConfig::default().history_events_max, 51_200);
    }

    #[test]
    fn every_nonsense_value_is_rejected() {
        type Breaker = fn(&mut ShardConfig);
        let cases: [(&str, Breaker); 6] = [
            ("closed_run_retention_ms", |c| c.closed_run_retention_ms = -1),
            ("dedupe_retention_ms", |c| c.dedupe_retention_ms = -1),
            ("history_events_max", |c| c.history_events_max = 0),
            ("backlog_tasks_max", |c| c.backlog_tasks_max = 0),
            ("timers_max_per_run", |c| c.timers_max_per_run = 0),
            ("retention_sweep_max", |c| c.retention_sweep_max = 0),
        ];
        for (field, break_it) in cases {
            let mut config = ShardConfig::default();
            break_it(&mut config);
            assert_eq!(config.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn cutoffs_saturate_and_treat_negative_retention_as_zero() {
        let config = ShardConfig { closed_run_retention_ms: -5, dedupe_retention_ms: 10, ..Default::default() };
        assert_eq!(config.run_cutoff(100), 100);
        assert_eq!(config.dedupe_cutoff(100), 90);
        assert_eq!(config.dedupe_cutoff(i64::MIN), i64::MIN);
    }
}
