//! The space-reclaim policy, pure: given how much of each segment is still live,
//! decide which segments to delete and which to rewrite forward.
//!
//! A segment is *live* while it holds a record some shard still needs: a Raft entry
//! above the shard's snapshot, the shard's newest hard or conf state, or history of a
//! run that is open or still inside its retention. The active segment is never touched.
//! - No live record → delete it.
//! - Only history live, and live bytes at most `rewrite_live_ratio_max` of the bytes
//!   used → copy that history forward (as `Relocated` records), then delete it.
//!   At most `rewrite_bytes_max` live bytes are copied per pass, emptiest first.
//! - Anything holding live Raft records waits: the next snapshot compacts them.

/// Reclaim tunables.
#[derive(Debug, Clone, PartialEq)]
pub struct ReclaimPolicy {
    /// Rewrite a segment when at most this fraction of it is live (0.0 disables rewriting).
    pub rewrite_live_ratio_max: f64,
    /// Most live bytes copied forward in one pass.
    pub rewrite_bytes_max: u64,
}

impl Default for ReclaimPolicy {
    fn default() -> Self {
        Self { rewrite_live_ratio_max: 0.25, rewrite_bytes_max: 256 << 20 }
    }
}

/// What is live in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentUsage {
    pub segment_id: u64,
    pub bytes_used: u64,
    pub active: bool,
    /// Raft records (entries above the snapshot, newest hard/conf state) in it.
    pub raft_live_records: u64,
    /// Payload bytes of history records still referenced by retained runs.
    pub history_live_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReclaimPlan {
    pub delete: Vec<u64>,
    pub rewrite: Vec<u64>,
}

pub fn plan(usage: &[SegmentUsage], policy: &ReclaimPolicy) -> ReclaimPlan {
    let mut out = ReclaimPlan::default();
    let mut candidates = Vec::new();
    for seg in usage.iter().filter(|s| !s.active && s.raft_live_records == 0) {
        if seg.history_live_bytes == 0 {
            out.delete.push(seg.segment_id);
        } else if (seg.history_live_bytes as f64) <= policy.rewrite_live_ratio_max * seg.bytes_used as f64 {
            candidates.push(seg);
        }
    }
    candidates.sort_by_key(|s| (s.history_live_bytes, s.segment_id));
    let mut budget = policy.rewrite_bytes_max;
    for seg in candidates {
        if seg.history_live_bytes > budget {
            break;
        }
        budget -= seg.history_live_bytes;
        out.rewrite.push(seg.segment_id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: u64, used: u64, raft: u64, history: u64, active: bool) -> SegmentUsage {
        SegmentUsage { segment_id: id, bytes_used: used, active, raft_live_records: raft, history_live_bytes: history }
    }

    #[test]
    fn dead_segments_are_deleted_and_the_active_one_never() {
        let usage = [seg(1, 100, 0, 0, false), seg(2, 100, 0, 0, true), seg(3, 100, 1, 0, false)];
        let p = plan(&usage, &ReclaimPolicy::default());
        assert_eq!(p.delete, vec![1]);
        assert!(p.rewrite.is_empty());
    }

    #[test]
    fn mostly_dead_history_segments_are_rewritten_emptiest_first_within_budget() {
        let usage = [seg(1, 1000, 0, 200, false), seg(2, 1000, 0, 100, false), seg(3, 1000, 0, 900, false), seg(4, 1000, 2, 10, false)];
        let policy = ReclaimPolicy { rewrite_live_ratio_max: 0.25, rewrite_bytes_max: 250 };
        let p = plan(&usage, &policy);
        assert!(p.delete.is_empty());
        assert_eq!(p.rewrite, vec![2], "segment 1 would exceed the budget; 3 is too live; 4 holds raft records");
        let p = plan(&usage, &ReclaimPolicy { rewrite_live_ratio_max: 0.0, ..policy });
        assert!(p.rewrite.is_empty(), "ratio 0 disables rewriting");
    }
}
