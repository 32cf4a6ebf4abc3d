//! Crash tests of a whole node — Raft drivers, node log and shard state machines — on
//! the simulated disk. Many concurrent writers propose transitions; at a random moment
//! (sometimes after an injected sync failure) the disk loses power. The node reopened
//! on what the disk kept must hold every acknowledged transition, whole, and no
//! transition partly.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hourglass_raft::transport::NoPeers;
use hourglass_raft::{Node, NodeConfig};
use hourglass_storage::disk::sim::SimDisk;
use hourglass_storage::state::{Op, RunKey, Transition};
use parking_lot::Mutex;

const WRITERS: u32 = 8;
const SHARDS: u32 = 3;
/// Events per follow-up transition; a start appends 2.
const BATCH: u64 = 3;

fn config() -> NodeConfig {
    let mut c = NodeConfig::new("/node", SHARDS);
    c.log.segment_bytes = 128 * 1024;
    c.log.record_bytes_max = 16 * 1024;
    c.tick_ms = 5;
    c.snapshot_interval_entries = 40;
    c
}

fn run_key(writer: u32) -> RunKey {
    RunKey { namespace: "ns".into(), workflow_id: format!("wf-{writer}"), run_id: "r".into() }
}

fn event(run: &RunKey, id: u64) -> Bytes {
    Bytes::from(format!("{}/{id}/{}", run.workflow_id, "e".repeat((id % 7 * 40) as usize)))
}

fn events(run: &RunKey, first: u64, n: u64) -> Vec<Bytes> {
    (first..first + n).map(|id| event(run, id)).collect()
}

/// Proposes until an error; records the last event id of every acknowledged transition.
async fn writer(node: Node, writer: u32, acked: Arc<Mutex<HashMap<u32, u64>>>) {
    let run = run_key(writer);
    let shard = writer % SHARDS;
    let start = Transition {
        time_ms: 1,
        dedupe: None,
        ops: vec![
            Op::CreateRun { run: run.clone(), state: Bytes::from_static(b"s") },
            Op::AppendEvents { run: run.clone(), first_event_id: 1, events: events(&run, 1, 2) },
        ],
    };
    if node.propose(shard, &start).await.is_err() {
        return;
    }
    acked.lock().insert(writer, 2);
    let mut next = 3;
    loop {
        let t = Transition {
            time_ms: 2,
            dedupe: None,
            ops: vec![Op::AppendEvents { run: run.clone(), first_event_id: next, events: events(&run, next, BATCH) }],
        };
        if node.propose(shard, &t).await.is_err() {
            return;
        }
        next += BATCH;
        acked.lock().insert(writer, next - 1);
    }
}

async fn crash_once(seed: u64) {
    let disk = SimDisk::new(seed);
    let node = Node::open_with(Arc::new(disk.clone()), config(), Arc::new(NoPeers)).await.expect("fresh node opens");
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let writers: Vec<_> = (0..WRITERS).map(|w| tokio::spawn(writer(node.clone(), w, acked.clone()))).collect();
    // Seeded choice of when and how the power goes.
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    tokio::time::sleep(Duration::from_millis(5 + next() % 60)).await;
    if next() % 3 == 0 {
        disk.fail_sync_after(next() % 4);
        tokio::time::sleep(Duration::from_millis(next() % 10)).await;
    }
    let acked_at_crash = acked.lock().clone();
    let survivor = disk.crash();
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(10), w).await.expect("writers stop once the disk is gone");
    }
    let acked_total = acked.lock().clone();
    node.shutdown().await;
    drop(node);

    let node = Node::open_with(Arc::new(survivor), config(), Arc::new(NoPeers))
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: recovery failed: {e}"));
    for w in 0..WRITERS {
        let run = run_key(w);
        let history = node.read_history(w % SHARDS, &run, 1, usize::MAX).unwrap();
        let last = history.last().map(|(id, _)| *id).unwrap_or(0);
        // Acknowledged before the crash (acks after it may be from a failed disk's
        // in-memory view, but a transition is acked only after its fsync succeeded).
        let must_have = acked_total.get(&w).copied().unwrap_or(0).max(acked_at_crash.get(&w).copied().unwrap_or(0));
        assert!(last >= must_have, "seed {seed}: writer {w} acknowledged up to event {must_have}, recovered {last}");
        assert!(last == 0 || (last - 2) % BATCH == 0, "seed {seed}: writer {w} has a partial transition (last event {last})");
        for (i, (id, payload)) in history.iter().enumerate() {
            assert_eq!(*id, i as u64 + 1, "seed {seed}: events must be dense");
            assert_eq!(payload, &event(&run, *id), "seed {seed}: event {id} of writer {w} damaged");
        }
    }
    let acked_events: u64 = acked_total.values().sum();
    eprintln!("seed {seed}: {acked_events} events acknowledged, recovery: {:?}", node.recovery_report().torn_tail);
    // The recovered node takes new work.
    let run = run_key(999);
    let t = Transition { time_ms: 3, dedupe: None, ops: vec![Op::CreateRun { run: run.clone(), state: Bytes::new() }] };
    node.propose(0, &t).await.unwrap_or_else(|e| panic!("seed {seed}: recovered node refuses work: {e}"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_transitions_survive_any_crash() {
    for seed in 1..=40 {
        crash_once(seed).await;
    }
}
