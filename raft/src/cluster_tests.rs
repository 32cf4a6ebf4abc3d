//! Groups with peers in one process: three [`Node`]s on simulated disks, joined by
//! an in-memory transport. A node that is wiped, or cut off while the leaders
//! compact their logs, catches up through a follower snapshot; a crash while it
//! installs one leaves a node that reopens consistent and catches up again.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hourglass_storage::disk::sim::SimDisk;
use hourglass_storage::disk::Disk;
use hourglass_storage::records::{RecordKind, ShardId};
use hourglass_storage::state::{Op, RunKey, Transition};
use parking_lot::{Mutex, RwLock};
use raft::eraftpb::{Message, MessageType};

use crate::error::RaftError;
use crate::transport::Transport;
use crate::{Node, NodeConfig};

const SHARDS: u32 = 2;
const WAIT: Duration = Duration::from_secs(30);

/// The nodes by id; messages from or to a cut node are dropped.
#[derive(Default)]
struct Net {
    nodes: RwLock<HashMap<u64, Node>>,
    cut: Mutex<HashSet<u64>>,
}

/// Delivers straight into the destination's [`Node::step`], and reports every
/// snapshot message it was handed, as a real transport must.
struct NetTransport {
    from: u64,
    net: Arc<Net>,
}

impl Transport for NetTransport {
    fn send(&self, shard: ShardId, messages: Vec<Message>) {
        let nodes = self.net.nodes.read();
        let cut = self.net.cut.lock().clone();
        for m in messages {
            let (to, is_snapshot) = (m.to, m.get_msg_type() == MessageType::MsgSnapshot);
            let open = !cut.contains(&self.from) && !cut.contains(&to);
            let delivered = open && nodes.get(&to).is_some_and(|node| node.step(shard, m).is_ok());
            if is_snapshot {
                if let Some(me) = nodes.get(&self.from) {
                    me.report_snapshot(shard, to, delivered);
                }
            }
        }
    }
}

fn config(id: u64) -> NodeConfig {
    let mut c = NodeConfig::new("/node", SHARDS);
    c.node_id = id;
    c.initial_voters = vec![1, 2, 3];
    c.log.segment_bytes = 64 * 1024;
    c.log.record_bytes_max = 16 * 1024;
    c.tick_ms = 5;
    c.snapshot_interval_entries = 16;
    c
}

impl Net {
    async fn open(self: &Arc<Self>, id: u64, disk: &SimDisk) -> Node {
        let transport = Arc::new(NetTransport { from: id, net: self.clone() });
        let opening = Node::open_with(Arc::new(disk.clone()), config(id), transport);
        let node = tokio::time::timeout(WAIT, opening).await.expect("node opened in time").unwrap();
        self.nodes.write().insert(id, node.clone());
        node
    }

    async fn close(&self, id: u64) {
        let node = self.nodes.write().remove(&id).expect("node is open");
        tokio::time::timeout(WAIT, node.shutdown()).await.expect("node shut down in time");
    }

    fn node(&self, id: u64) -> Node {
        self.nodes.read()[&id].clone()
    }

    /// The node serving as `shard`'s leader, once there is one.
    async fn leader(&self, shard: ShardId) -> Node {
        let deadline = Instant::now() + WAIT;
        loop {
            let nodes: Vec<Node> = self.nodes.read().values().cloned().collect();
            if let Some(node) = nodes.into_iter().find(|n| n.leadership(shard).is_ok_and(|l| l.serving && l.leader_id == n.node_id())) {
                return node;
            }
            assert!(Instant::now() < deadline, "shard {shard} elected no leader");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Proposes through the current leader, retrying while leadership moves (an
    /// entry a deposed leader appended may never be answered: each try times out).
    /// A retry that finds the transition applied (`Rejected`) is done too.
    async fn propose(&self, shard: ShardId, t: &Transition) {
        let deadline = Instant::now() + WAIT;
        loop {
            let leader = self.leader(shard).await;
            match tokio::time::timeout(Duration::from_secs(2), leader.propose(shard, t)).await {
                Ok(Ok(_) | Err(RaftError::Rejected(_))) => return,
                Ok(Err(RaftError::NotLeader { .. } | RaftError::Stopped { .. } | RaftError::Overloaded { .. })) | Err(_) => {}
                Ok(Err(e)) => panic!("proposal failed: {e}"),
            }
            assert!(Instant::now() < deadline, "no leader took the proposal");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until node `id` has applied everything `shard`'s leader has.
    async fn caught_up(&self, id: u64, shard: ShardId) {
        let deadline = Instant::now() + WAIT;
        loop {
            let target = applied(&self.leader(shard).await, shard);
            if applied(&self.node(id), shard) >= target {
                return;
            }
            assert!(Instant::now() < deadline, "node {id} did not catch up on shard {shard} (leader at {target})");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn applied(node: &Node, shard: ShardId) -> u64 {
    node.read(shard, |s| s.applied_index()).unwrap()
}

fn run(i: u32) -> RunKey {
    RunKey { namespace: "ns".into(), workflow_id: format!("wf-{i}"), run_id: format!("run-{i}") }
}

/// Creates run `i` with one event (in shard `i % 2`).
fn start(i: u32) -> (ShardId, Transition) {
    let ops = vec![
        Op::CreateRun { run: run(i), state: Bytes::from(vec![1; 300]) },
        Op::AppendEvents { run: run(i), first_event_id: 1, events: vec![Bytes::from(vec![i as u8; 500])] },
    ];
    (i % SHARDS, Transition { time_ms: 1, dedupe: None, ops })
}

/// Appends two events to run `i`, from event `first`.
fn more(i: u32, first: u64) -> (ShardId, Transition) {
    let events = vec![Bytes::from(vec![first as u8; 200]), Bytes::from(vec![i as u8; 100])];
    (i % SHARDS, Transition { time_ms: 2, dedupe: None, ops: vec![Op::AppendEvents { run: run(i), first_event_id: first, events }] })
}

/// Starts runs `from..to` and appends to every third of them.
async fn write(net: &Net, from: u32, to: u32) {
    for i in from..to {
        let (shard, t) = start(i);
        net.propose(shard, &t).await;
    }
    for i in (from..to).step_by(3) {
        let (shard, t) = more(i, 2);
        net.propose(shard, &t).await;
    }
}

/// One run as any node must see it: its state, version, openness and history.
type RunView = (RunKey, Bytes, u64, bool, Vec<(u64, Bytes)>);

/// A shard's logical state: what must be equal on every replica (history
/// positions differ between nodes and are left out).
fn view(node: &Node, shard: ShardId) -> (u64, Vec<RunView>, (usize, usize, usize)) {
    let (index, runs, counts) = node
        .read(shard, |s| {
            let runs: Vec<_> = s.runs().map(|(k, r)| (k.clone(), r.state().clone(), r.state_version(), r.is_open())).collect();
            (s.applied_index(), runs, (s.task_count(), s.timer_count(), s.dedupe_count()))
        })
        .unwrap();
    let runs = runs
        .into_iter()
        .map(|(k, state, version, open)| {
            let history = node.read_history(shard, &k, 1, usize::MAX).unwrap();
            (k, state, version, open, history)
        })
        .collect();
    (index, runs, counts)
}

/// How many of `shard`'s history records on `node` are copies (`Relocated`):
/// reclaim never runs here, so only a snapshot install writes them.
fn relocated_history(node: &Node, shard: ShardId) -> usize {
    let positions: Vec<_> = node.read(shard, |s| s.live_positions().collect()).unwrap();
    positions.into_iter().filter(|p| node.log().read(*p).unwrap().0 == RecordKind::Relocated).count()
}

fn snapshot_files(disk: &SimDisk) -> Vec<String> {
    disk.list(Path::new("/node/snapshots")).unwrap().into_iter().filter(|n| n.ends_with(".snap")).collect()
}

/// Node 3 joins late, with an empty disk, after the leaders compacted their logs:
/// it can only catch up by snapshot, and ends with the same state and history as
/// the leader — also for entries after the snapshot, and after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_catches_up_by_snapshot() {
    let net = Arc::new(Net::default());
    let disks: Vec<SimDisk> = (0..3).map(|i| SimDisk::new(40 + i)).collect();
    net.open(1, &disks[0]).await;
    net.open(2, &disks[1]).await;
    write(&net, 0, 60).await;
    assert!(!snapshot_files(&disks[0]).is_empty() && !snapshot_files(&disks[1]).is_empty(), "groups with peers snapshot");

    let node3 = net.open(3, &disks[2]).await;
    for shard in 0..SHARDS {
        net.caught_up(3, shard).await;
        assert_eq!(view(&node3, shard), view(&net.leader(shard).await, shard), "shard {shard}");
        assert!(relocated_history(&node3, shard) > 0, "shard {shard}: node 3 got its history from a snapshot");
    }

    write(&net, 60, 80).await;
    for shard in 0..SHARDS {
        net.caught_up(3, shard).await;
        assert_eq!(view(&node3, shard), view(&net.leader(shard).await, shard), "shard {shard}, after the snapshot");
    }

    net.close(3).await;
    let node3 = net.open(3, &disks[2]).await;
    for shard in 0..SHARDS {
        net.caught_up(3, shard).await;
        assert_eq!(view(&node3, shard), view(&net.leader(shard).await, shard), "shard {shard}, after a restart");
    }
    for id in [1, 2, 3] {
        net.close(id).await;
    }
}

/// Node 3 is cut off while the leaders compact; when it comes back, its disk fails
/// the `n`-th sync from then on (somewhere in or around installing the snapshot)
/// and the machine crashes. It reopens with a consistent state (every run's
/// history readable and a prefix of the leader's), then catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_installing_a_snapshot_leaves_a_consistent_node() {
    for n in 0..8 {
        crash_while_installing(n).await;
    }
}

async fn crash_while_installing(n: u64) {
    let net = Arc::new(Net::default());
    let disks: Vec<SimDisk> = (0..3).map(|i| SimDisk::new(100 * n + i)).collect();
    for id in 1..=3 {
        net.open(id, &disks[id as usize - 1]).await;
    }
    write(&net, 0, 10).await;
    for shard in 0..SHARDS {
        net.caught_up(3, shard).await;
    }
    net.cut.lock().insert(3);
    write(&net, 10, 70).await;

    disks[2].fail_sync_after(n);
    net.cut.lock().remove(&3);
    let node3 = net.node(3);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stopped = (0..SHARDS).any(|s| node3.stopped(s).unwrap().is_some());
        let mut behind = false;
        for shard in 0..SHARDS {
            behind |= applied(&node3, shard) < applied(&net.leader(shard).await, shard);
        }
        if stopped || !behind || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    net.cut.lock().insert(3);
    let crashed = disks[2].crash();
    net.close(3).await;

    let node3 = net.open(3, &crashed).await;
    for shard in 0..SHARDS {
        let leader = net.leader(shard).await;
        let (_, runs, _) = view(&node3, shard);
        for (key, _, _, _, history) in runs {
            let full = leader.read_history(shard, &key, 1, usize::MAX).unwrap();
            assert_eq!(history, full[..history.len()], "n={n}: run {key:?} on node 3 after the crash");
        }
    }
    net.cut.lock().remove(&3);
    for shard in 0..SHARDS {
        net.caught_up(3, shard).await;
        assert_eq!(view(&node3, shard), view(&net.leader(shard).await, shard), "n={n}: shard {shard} after catching up");
    }
    for id in [1, 2, 3] {
        net.close(id).await;
    }
}
