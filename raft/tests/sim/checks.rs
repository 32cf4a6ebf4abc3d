//! What a replica holds, logically (runs with state, version and history read back
//! through `read_history`, backlogs), and the checks over it: no acknowledged
//! transition lost, event ids dense from 1 and each event where its bytes say,
//! no transition applied twice, and every replica of a shard equal. Raw log
//! positions are never compared: they legitimately differ per node.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use hourglass_raft::Node;
use hourglass_storage::records::ShardId;
use hourglass_storage::state::{Op, QueueKey, RunKey};

use super::workload::{event_bytes, Ledger};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunView {
    pub state: Bytes,
    pub state_version: u64,
    pub next_event_id: u64,
    pub open: bool,
    pub events: Vec<(u64, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardView {
    pub applied_index: u64,
    pub runs: BTreeMap<RunKey, RunView>,
    pub backlogs: BTreeMap<QueueKey, Vec<(u64, Bytes)>>,
}

pub struct ReplicaView {
    pub node: u64,
    pub shards: Vec<ShardView>,
}

pub fn capture(node: &Node) -> Result<ReplicaView, String> {
    let shards = (0..node.shard_count()).map(|shard| capture_shard(node, shard)).collect::<Result<_, _>>()?;
    Ok(ReplicaView { node: node.node_id(), shards })
}

fn capture_shard(node: &Node, shard: ShardId) -> Result<ShardView, String> {
    let fail = |e: hourglass_raft::RaftError| format!("node {} shard {shard}: {e}", node.node_id());
    let (applied_index, runs, backlogs) = node
        .read(shard, |s| {
            let runs: Vec<_> =
                s.runs().map(|(k, r)| (k.clone(), r.state().clone(), r.state_version(), r.next_event_id(), r.is_open())).collect();
            let backlogs = s.queues().map(|q| (q.clone(), s.backlog(q).map(|(id, t)| (id, t.payload().clone())).collect())).collect();
            (s.applied_index(), runs, backlogs)
        })
        .map_err(fail)?;
    let mut views = BTreeMap::new();
    for (key, state, state_version, next_event_id, open) in runs {
        let events = node.read_history(shard, &key, 1, usize::MAX).map_err(fail)?;
        views.insert(key, RunView { state, state_version, next_event_id, open, events });
    }
    Ok(ShardView { applied_index, runs: views, backlogs })
}

/// Every check over the replicas (all of them up and caught up) and the ledger.
pub fn check(replicas: &[ReplicaView], ledger: &Ledger) -> Vec<String> {
    let mut violations = Vec::new();
    for replica in replicas {
        for (shard, view) in replica.shards.iter().enumerate() {
            check_histories(replica.node, shard as ShardId, view, &mut violations);
            check_one_open_run_per_workflow(replica.node, shard as ShardId, view, &mut violations);
            check_signals_once(replica.node, shard as ShardId, view, &mut violations);
        }
        check_acknowledged(replica, ledger, &mut violations);
    }
    check_fencing(ledger, &mut violations);
    check_converged(replicas, &mut violations);
    violations
}

fn check_histories(node: u64, shard: ShardId, view: &ShardView, out: &mut Vec<String>) {
    for (key, run) in &view.runs {
        let ids: Vec<u64> = run.events.iter().map(|(id, _)| *id).collect();
        let dense: Vec<u64> = (1..run.next_event_id).collect();
        if ids != dense {
            out.push(format!("node {node} shard {shard} run {key:?}: event ids {ids:?}, expected dense 1..{}", run.next_event_id));
        }
        for (id, bytes) in &run.events {
            let prefix = event_bytes(key, *id, "");
            if !bytes.starts_with(&prefix) {
                out.push(format!("node {node} shard {shard} run {key:?}: event {id} holds {bytes:?} (read from the wrong record?)"));
            }
        }
    }
}

fn check_one_open_run_per_workflow(node: u64, shard: ShardId, view: &ShardView, out: &mut Vec<String>) {
    let mut open = BTreeMap::new();
    for key in view.runs.iter().filter(|(_, r)| r.open).map(|(k, _)| k) {
        if let Some(other) = open.insert(key.workflow(), &key.run_id) {
            out.push(format!("node {node} shard {shard}: workflow {} has two open runs, {other} and {}", key.workflow_id, key.run_id));
        }
    }
}

fn check_signals_once(node: u64, shard: ShardId, view: &ShardView, out: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    for (queue, tasks) in &view.backlogs {
        for (_, payload) in tasks {
            if !seen.insert(payload.clone()) {
                out.push(format!("node {node} shard {shard} queue {}: signal {payload:?} applied twice", queue.name));
            }
        }
    }
}

fn check_acknowledged(replica: &ReplicaView, ledger: &Ledger, out: &mut Vec<String>) {
    for acked in &ledger.acked {
        let Some(view) = replica.shards.get(acked.shard as usize) else { continue };
        for op in &acked.ops {
            if let Err(why) = op_visible(view, op) {
                out.push(format!(
                    "acknowledged transition lost on node {} shard {} (acked at {} ms via node {}): {why}",
                    replica.node, acked.shard, acked.at_ms, acked.via_node
                ));
            }
        }
    }
}

/// Whether the effect of an acknowledged `op` is in `view`.
fn op_visible(view: &ShardView, op: &Op) -> Result<(), String> {
    let run_of = |key: &RunKey| view.runs.get(key).ok_or_else(|| format!("run {key:?} missing"));
    match op {
        Op::CreateRun { run, .. } => run_of(run).map(|_| ()),
        Op::AppendEvents { run, first_event_id, events } => {
            let have = &run_of(run)?.events;
            let from = (*first_event_id as usize).saturating_sub(1);
            let got: Vec<&Bytes> = have.iter().skip(from).take(events.len()).map(|(_, b)| b).collect();
            let want: Vec<&Bytes> = events.iter().collect();
            (got == want).then_some(()).ok_or_else(|| format!("run {run:?} events from {first_event_id}: {got:?}, acked {want:?}"))
        }
        Op::SetState { run, expected_version, state } => {
            let r = run_of(run)?;
            let version_ok = r.state_version > *expected_version;
            let state_ok = r.state_version != expected_version + 1 || r.state == *state;
            (version_ok && state_ok).then_some(()).ok_or_else(|| {
                format!(
                    "run {run:?} at version {} state {:?}; acked set of {state:?} from version {expected_version}",
                    r.state_version, r.state
                )
            })
        }
        Op::Enqueue { queue, task, .. } => {
            let found = view.backlogs.get(queue).is_some_and(|tasks| tasks.iter().any(|(_, p)| p == task));
            found.then_some(()).ok_or_else(|| format!("signal {task:?} missing from {}", queue.name))
        }
        _ => Ok(()),
    }
}

/// Two acknowledged writes from the same state version of a run: the fence failed.
fn check_fencing(ledger: &Ledger, out: &mut Vec<String>) {
    let mut seen = BTreeMap::new();
    for acked in &ledger.acked {
        for op in &acked.ops {
            if let Op::SetState { run, expected_version, .. } = op {
                if let Some(first_ms) = seen.insert((run.clone(), *expected_version), acked.at_ms) {
                    out.push(format!(
                        "run {run:?}: two writes from state version {expected_version} acknowledged (at {first_ms} ms and {} ms)",
                        acked.at_ms
                    ));
                }
            }
        }
    }
}

fn check_converged(replicas: &[ReplicaView], out: &mut Vec<String>) {
    let Some((first, rest)) = replicas.split_first() else { return };
    for other in rest {
        for (shard, (a, b)) in first.shards.iter().zip(&other.shards).enumerate() {
            if let Some(difference) = first_difference(a, b) {
                out.push(format!("shard {shard}: node {} and node {} diverge: {difference}", first.node, other.node));
            }
        }
    }
}

fn first_difference(a: &ShardView, b: &ShardView) -> Option<String> {
    if a.applied_index != b.applied_index {
        return Some(format!("applied index {} vs {}", a.applied_index, b.applied_index));
    }
    let keys: BTreeSet<&RunKey> = a.runs.keys().chain(b.runs.keys()).collect();
    for key in keys {
        let (x, y) = (a.runs.get(key), b.runs.get(key));
        if x != y {
            return Some(format!("run {key:?}: {x:?} vs {y:?}"));
        }
    }
    (a.backlogs != b.backlogs).then(|| format!("backlogs {:?} vs {:?}", a.backlogs, b.backlogs))
}
