//! Reading a run's history: the shard state holds, per run, where each batch of
//! events was appended (a log position); the events themselves are read from the
//! memory-mapped log and handed out without copying.

use bytes::Bytes;
use hourglass_storage::records::ShardId;
use hourglass_storage::state::{events_of, RunKey};
use hourglass_storage::StorageError;

use crate::error::Result;
use crate::log_storage::read_raft_entry;
use crate::node::Node;

/// Events `from_event_id..` of `run`, at most `max_events`, in id order. Empty when
/// the run is unknown or has no events at or after `from_event_id`.
pub(crate) fn read(node: &Node, shard: ShardId, run: &RunKey, from_event_id: u64, max_events: usize) -> Result<Vec<(u64, Bytes)>> {
    let refs = node.read(shard, |state| state.run(run).map(|r| r.history_from(from_event_id).to_vec()))?;
    let mut out = Vec::new();
    for batch in refs.unwrap_or_default() {
        if out.len() >= max_events {
            break;
        }
        let entry = read_raft_entry(node.log(), batch.pos)?;
        let events = events_of(entry.data, run).map_err(StorageError::decode("transition"))?;
        for (id, event) in events {
            if id >= batch.first_event_id && id < batch.first_event_id + batch.count && id >= from_event_id {
                out.push((id, event));
                if out.len() >= max_events {
                    break;
                }
            }
        }
    }
    debug_assert!(out.windows(2).all(|w| w[1].0 == w[0].0 + 1), "history events must be dense");
    Ok(out)
}
