//! [`ShardState::apply`]: index bookkeeping, dedupe, the atomic ops, retention.

use bytes::Bytes;

use super::run::DedupeKey;
use super::txn::Txn;
use super::{Applied, ApplyError, RequestDedupe, ShardState, Transition};
use crate::log::LogPosition;

impl ShardState {
    /// Applies the transition of Raft entry `index`, whose log record is at `pos`.
    ///
    /// `index` must be greater than [`Self::applied_index`] (Raft may skip indexes
    /// of entries that carry no transition: pass those to [`Self::skip`]); it
    /// becomes the applied index whatever the outcome. Then:
    /// 1. if `t.dedupe` names a key applied within the dedupe retention, nothing
    ///    changes and the first application's result is returned;
    /// 2. the ops apply in order, each seeing the effects of the ones before; if
    ///    one fails, none applies and the error names it;
    /// 3. on success the dedupe key is remembered with `t.time_ms`, and closed runs
    ///    and dedupe entries past their retention as of `t.time_ms` are dropped.
    ///
    /// `pos` must be a record no history batch refers to yet (each entry has its
    /// own record); a run already referring to it is a caller bug and panics, since
    /// going on would let this replica diverge.
    pub fn apply(&mut self, index: u64, pos: LogPosition, t: &Transition) -> Result<Applied, ApplyError> {
        self.advance(index)?;
        if let Some(result) = self.duplicate_result(t) {
            return Ok(Applied::Duplicate { result });
        }
        let applied = Txn::run(&mut self.tables, &self.config, pos, t)?;
        if let Some(dedupe) = &t.dedupe {
            self.remember(dedupe, t.time_ms);
        }
        self.expire(t.time_ms);
        Ok(applied)
    }

    /// Records Raft entry `index` as applied without a transition (an empty entry,
    /// a membership change, or data that is not a transition).
    pub fn skip(&mut self, index: u64) -> Result<(), ApplyError> {
        self.advance(index)
    }

    fn advance(&mut self, index: u64) -> Result<(), ApplyError> {
        if index <= self.applied_index {
            return Err(ApplyError::IndexNotIncreasing { index, applied_index: self.applied_index });
        }
        self.applied_index = index;
        Ok(())
    }

    /// The remembered result if `t`'s dedupe key is live as of `t.time_ms`.
    fn duplicate_result(&self, t: &Transition) -> Option<Bytes> {
        let dedupe = t.dedupe.as_ref()?;
        let entry = self.tables.dedupe.get(&dedupe_key(dedupe))?;
        (entry.applied_ms > self.config.dedupe_cutoff(t.time_ms)).then(|| entry.result.clone())
    }

    fn remember(&mut self, dedupe: &RequestDedupe, time_ms: i64) {
        let result = Bytes::copy_from_slice(&dedupe.result);
        self.tables.remember(dedupe_key(dedupe), result, time_ms);
    }

    /// Drops, oldest first, up to `retention_sweep_max` closed runs and as many
    /// dedupe entries that expired as of `now_ms`.
    fn expire(&mut self, now_ms: i64) {
        let cutoff = self.config.run_cutoff(now_ms);
        for _ in 0..self.config.retention_sweep_max {
            let Some((closed_ms, key)) = self.tables.closed.first() else { break };
            if *closed_ms > cutoff {
                break;
            }
            let key = key.clone();
            self.tables.remove_run(&key);
        }
        let cutoff = self.config.dedupe_cutoff(now_ms);
        for _ in 0..self.config.retention_sweep_max {
            let Some((applied_ms, key)) = self.tables.dedupe_expiry.first() else { break };
            if *applied_ms > cutoff {
                break;
            }
            let key = key.clone();
            self.tables.forget(&key);
        }
    }
}

fn dedupe_key(d: &RequestDedupe) -> DedupeKey {
    DedupeKey { namespace: d.namespace.clone(), request_id: d.request_id.clone() }
}
