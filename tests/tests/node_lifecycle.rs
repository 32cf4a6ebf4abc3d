//! A node end to end: proposals through Raft into the shard state machine, durable
//! across restarts (real disk), history read back from the log, snapshots and
//! space reclaim.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use bytes::Bytes;
use hourglass_raft::{Node, NodeConfig, RaftError};
use hourglass_storage::reclaim::ReclaimPolicy;
use hourglass_storage::state::{Applied, Op, QueueKey, QueueKind, RunKey, Transition, WorkflowKey};

fn run_key(i: u32) -> RunKey {
    RunKey { namespace: "default".into(), workflow_id: format!("wf-{i}"), run_id: format!("run-{i}") }
}

fn queue() -> QueueKey {
    QueueKey { namespace: "default".into(), name: "tq".into(), kind: QueueKind::Workflow }
}

fn event(run: &RunKey, id: u64) -> Bytes {
    // ~200 bytes, like a small real history event.
    Bytes::from(format!("{}#{id}#{}", run.workflow_id, "x".repeat(180)))
}

fn start(run: &RunKey, time_ms: i64) -> Transition {
    Transition {
        time_ms,
        dedupe: None,
        ops: vec![
            Op::CreateRun { run: run.clone(), state: Bytes::from_static(b"started") },
            Op::AppendEvents { run: run.clone(), first_event_id: 1, events: vec![event(run, 1), event(run, 2)] },
            Op::Enqueue { queue: queue(), run: run.clone(), task: Bytes::from_static(b"wft") },
        ],
    }
}

fn append(run: &RunKey, first: u64, n: u64, time_ms: i64) -> Transition {
    Transition {
        time_ms,
        dedupe: None,
        ops: vec![Op::AppendEvents {
            run: run.clone(),
            first_event_id: first,
            events: (first..first + n).map(|id| event(run, id)).collect(),
        }],
    }
}

fn config(dir: &std::path::Path, shards: u32) -> NodeConfig {
    let mut c = NodeConfig::new(dir, shards);
    c.log.segment_bytes = 1 << 20;
    c.log.record_bytes_max = 64 * 1024;
    c.tick_ms = 10;
    c
}

fn shard_of(run: &RunKey, shards: u32) -> u32 {
    run.workflow_id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) % shards
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_survive_restart_and_history_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let shards = 4;
    {
        let node = Node::open(config(dir.path(), shards)).await.unwrap();
        let mut handles = Vec::new();
        for i in 0..32 {
            let node = node.clone();
            handles.push(tokio::spawn(async move {
                let run = run_key(i);
                let shard = shard_of(&run, shards);
                node.propose(shard, &start(&run, 1_000)).await.unwrap();
                node.propose(shard, &append(&run, 3, 3, 1_001)).await.unwrap();
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        node.shutdown().await;
    }
    let node = Node::open(config(dir.path(), shards)).await.unwrap();
    for i in 0..32 {
        let run = run_key(i);
        let shard = shard_of(&run, shards);
        let history = node.read_history(shard, &run, 1, 100).unwrap();
        let ids: Vec<u64> = history.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5], "history of {run:?}");
        for (id, payload) in &history {
            assert_eq!(payload, &event(&run, *id));
        }
        let from_four: Vec<u64> = node.read_history(shard, &run, 4, 1).unwrap().iter().map(|(i, _)| *i).collect();
        assert_eq!(from_four, vec![4]);
        let open = node
            .read(shard, |s| {
                s.current_run(&WorkflowKey { namespace: "default".into(), workflow_id: run.workflow_id.clone() }).map(|c| c.open)
            })
            .unwrap();
        assert_eq!(open, Some(true));
    }
    let tasks: usize = (0..shards).map(|s| node.read(s, |st| st.backlog(&queue()).count()).unwrap()).sum();
    assert_eq!(tasks, 32);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_transitions_change_nothing_and_report_why() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(config(dir.path(), 1)).await.unwrap();
    let run = run_key(1);
    node.propose(0, &start(&run, 1)).await.unwrap();
    let before = node.read(0, |s| s.snapshot()).unwrap();
    let err = node.propose(0, &append(&run, 7, 1, 2)).await.unwrap_err();
    assert!(matches!(err, RaftError::Rejected(_)), "{err}");
    let err = node.propose(0, &start(&run, 3)).await.unwrap_err();
    assert!(matches!(err, RaftError::Rejected(_)), "{err}");
    let after = node.read(0, |s| s.snapshot()).unwrap();
    // The applied index moves on; everything else is the same.
    assert_eq!(node.read(0, |s| s.run(&run).map(|r| r.next_event_id())).unwrap(), Some(3));
    assert_ne!(before, after, "applied index advanced");
    assert!(matches!(node.propose(9, &start(&run, 4)).await, Err(RaftError::NoSuchShard { shard: 9, .. })));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_proposals_are_refused_before_raft() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 1);
    c.log.record_bytes_max = 64 * 1024;
    let node = Node::open(c).await.unwrap();
    let run = run_key(1);
    let mut t = start(&run, 1);
    t.ops[0] = Op::CreateRun { run: run.clone(), state: Bytes::from(vec![0u8; 128 * 1024]) };
    let err = node.propose(0, &t).await.unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    assert!(!node.read(0, |s| s.run(&run).is_some()).unwrap());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedupe_returns_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(config(dir.path(), 1)).await.unwrap();
    let run = run_key(1);
    let mut t = start(&run, 10);
    t.dedupe = Some(hourglass_storage::state::RequestDedupe {
        namespace: "default".into(),
        request_id: "req-1".into(),
        result: Bytes::from_static(b"run-1"),
    });
    assert!(matches!(node.propose(0, &t).await.unwrap(), Applied::Done { .. }));
    match node.propose(0, &t).await.unwrap() {
        Applied::Duplicate { result } => assert_eq!(result, Bytes::from_static(b"run-1")),
        other => panic!("expected a duplicate, got {other:?}"),
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_compact_and_reclaim_frees_dead_segments_without_losing_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 2);
    c.log.segment_bytes = 256 * 1024;
    c.snapshot_interval_entries = 200;
    c.shard.closed_run_retention_ms = 1_000;
    let runs: Vec<RunKey> = (0..40).map(run_key).collect();
    {
        let node = Node::open(c.clone()).await.unwrap();
        for (i, run) in runs.iter().enumerate() {
            let shard = shard_of(run, 2);
            node.propose(shard, &start(run, 1_000)).await.unwrap();
            let mut next = 3;
            for _ in 0..20 {
                node.propose(shard, &append(run, next, 4, 1_000)).await.unwrap();
                next += 4;
            }
            // Half the runs close early and age out of retention.
            if i % 2 == 0 {
                let close = Transition { time_ms: 1_000, dedupe: None, ops: vec![Op::CloseRun { run: run.clone() }] };
                node.propose(shard, &close).await.unwrap();
            }
        }
        // Time moves past the retention of the closed runs on both shards.
        for shard in 0..2 {
            let tick = Transition { time_ms: 10_000, dedupe: None, ops: vec![] };
            node.propose(shard, &tick).await.unwrap();
        }
        let before = node.log().segments().len();
        let report = node.reclaim(&ReclaimPolicy { rewrite_live_ratio_max: 0.9, rewrite_bytes_max: u64::MAX }).await.unwrap();
        assert!(!report.segments_deleted.is_empty(), "expected dead segments: {report:?} of {before}");
        assert!(report.records_relocated > 0, "half-live segments should be rewritten forward: {report:?}");
        assert!(node.log().segments().len() < before);
        node.shutdown().await;
    }
    let node = Node::open(c).await.unwrap();
    for (i, run) in runs.iter().enumerate() {
        let shard = shard_of(run, 2);
        let history = node.read_history(shard, run, 1, 1000).unwrap();
        if i % 2 == 0 {
            assert!(history.is_empty(), "closed run {i} should have been dropped after retention");
        } else {
            assert_eq!(history.len(), 82, "open run {i} keeps its whole history");
            assert!(history.iter().all(|(id, p)| p == &event(run, *id)));
        }
    }
    node.shutdown().await;
}
