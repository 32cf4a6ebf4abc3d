//! Space reclaim for a node: which segments can go, and moving live history out of
//! mostly-dead ones. The decision is the pure [`hourglass_storage::reclaim::plan`];
//! this module gathers its inputs from every shard and carries it out.
//!
//! Order of operations (each step is crash-safe on its own):
//! 1. Checkpoint every shard: a snapshot at its applied index (which compacts its Raft
//!    log) and fresh hard/conf state records at the log head.
//! 2. Measure live bytes per segment: Raft records still needed and history referenced
//!    by retained runs.
//! 3. Copy the history records of segments to rewrite forward as `Relocated` records
//!    and point the runs at the copies; checkpoint the shards touched, so the durable
//!    snapshot refers to the copies. A crash before that checkpoint leaves the old
//!    snapshot pointing at the old segment, which still exists.
//! 4. Measure again and delete only segments with nothing live in them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hourglass_storage::log::Record;
use hourglass_storage::reclaim::{plan, ReclaimPolicy, SegmentUsage};
use hourglass_storage::records::{RecordKind, RelocatedRecord, ShardId};
use hourglass_storage::LogPosition;

use crate::error::Result;
use crate::node::Node;

/// What a reclaim pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReclaimReport {
    pub segments_deleted: Vec<u64>,
    pub segments_rewritten: Vec<u64>,
    pub records_relocated: u64,
    pub bytes_freed: u64,
}

/// Live history positions of every shard: (segment → (position → shard)).
type HistoryLive = BTreeMap<u64, BTreeMap<LogPosition, ShardId>>;

impl Node {
    /// Runs one reclaim pass (see the module docs).
    pub async fn reclaim(&self, policy: &ReclaimPolicy) -> Result<ReclaimReport> {
        for shard in 0..self.shard_count() {
            self.checkpoint(shard).await?;
        }
        let (usage, history) = self.measure().await?;
        let decided = plan(&usage, policy);
        let mut report = ReclaimReport::default();
        let mut touched = BTreeSet::new();
        for segment in &decided.rewrite {
            let moved = self.relocate_segment(history.get(segment), &mut touched).await?;
            report.records_relocated += moved;
            report.segments_rewritten.push(*segment);
        }
        for shard in touched {
            self.checkpoint(shard).await?;
        }
        let (usage, _) = self.measure().await?;
        for seg in usage.iter().filter(|u| !u.active && u.raft_live_records == 0 && u.history_live_bytes == 0) {
            if decided.delete.contains(&seg.segment_id) || decided.rewrite.contains(&seg.segment_id) {
                self.log().delete_segment(seg.segment_id)?;
                report.segments_deleted.push(seg.segment_id);
                report.bytes_freed += seg.bytes_used;
            }
        }
        tracing::info!(?report, "reclaim pass done");
        Ok(report)
    }

    async fn measure(&self) -> Result<(Vec<SegmentUsage>, HistoryLive)> {
        let mut raft_live: HashMap<u64, u64> = HashMap::new();
        let mut history: HistoryLive = BTreeMap::new();
        for shard in 0..self.shard_count() {
            for pos in self.raft_live_positions(shard).await? {
                *raft_live.entry(pos.segment_id).or_default() += 1;
            }
            let positions: Vec<LogPosition> = self.state(shard)?.read().live_positions().collect();
            for pos in positions {
                history.entry(pos.segment_id).or_default().insert(pos, shard);
            }
        }
        let mut usage = Vec::new();
        for seg in self.log().segments() {
            let mut history_live_bytes = 0;
            for pos in history.get(&seg.id).map(|m| m.keys()).into_iter().flatten() {
                let (_, payload) = self.log().read(*pos)?;
                history_live_bytes += payload.len() as u64;
            }
            usage.push(SegmentUsage {
                segment_id: seg.id,
                bytes_used: seg.bytes_used,
                active: seg.active,
                raft_live_records: raft_live.get(&seg.id).copied().unwrap_or(0),
                history_live_bytes,
            });
        }
        Ok((usage, history))
    }

    /// Copies every live history record of one segment forward; returns how many.
    async fn relocate_segment(&self, live: Option<&BTreeMap<LogPosition, ShardId>>, touched: &mut BTreeSet<ShardId>) -> Result<u64> {
        let Some(live) = live else { return Ok(0) };
        let mut moved = 0;
        let items: Vec<(LogPosition, ShardId)> = live.iter().map(|(p, s)| (*p, *s)).collect();
        for chunk in items.chunks(256) {
            let mut records = Vec::with_capacity(chunk.len());
            for (from, shard) in chunk {
                let (kind, payload) = self.log().read(*from)?;
                let (kind, payload) = match kind {
                    RecordKind::Relocated => {
                        let inner =
                            RelocatedRecord::decode(payload).map_err(hourglass_storage::StorageError::decode("relocated record"))?;
                        (inner.kind, inner.payload)
                    }
                    other => (other, payload),
                };
                let rel = RelocatedRecord { shard: *shard, from: *from, kind, payload };
                records.push(Record { kind: RecordKind::Relocated, payload: rel.encode() });
            }
            let positions = self.log().append(records).await?;
            for ((from, shard), to) in chunk.iter().zip(positions) {
                self.state(*shard)?.write().relocate(*from, to);
                touched.insert(*shard);
                moved += 1;
            }
        }
        Ok(moved)
    }
}
