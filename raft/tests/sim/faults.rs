//! The fault schedule of a seed: episodes (a fault, then its end) at simulated times,
//! generated up front so a failing seed always prints the same schedule. Faults that
//! name "the leader" are resolved when they fire; the run's event log records whom.

use std::fmt;

use hourglass_storage::records::ShardId;

use super::cluster::NODE_IDS;
use super::rng::SimRng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Cut every link of a node.
    Isolate(u64),
    /// Cut every link of whoever leads the shard when this fires.
    IsolateLeader(ShardId),
    /// Cut one link.
    Cut(u64, u64),
    Heal,
    Crash(u64),
    CrashLeader(ShardId),
    /// Restart every crashed or fsync-failed node.
    RestartDown,
    /// The node's next fsync fails.
    FailSync(u64),
    /// Ask the shard's leader to hand leadership to a node.
    TransferLeader(ShardId, u64),
    /// Ask the shard's leader to step down (transfer to its best follower).
    StepDown(ShardId),
    /// The node's disk holds every fsync (written, not durable) until released.
    StallDisk(u64),
    StallLeaderDisk(ShardId),
    /// Every node's disk holds its fsyncs (a power loss is coming).
    StallEveryDisk,
    /// Crash every node whose disk is stalled: what it wrote since is torn or lost.
    CrashStalled,
    ReleaseDisks,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Isolate(n) => write!(f, "isolate node {n}"),
            Fault::IsolateLeader(s) => write!(f, "isolate the leader of shard {s}"),
            Fault::Cut(a, b) => write!(f, "cut link {a}-{b}"),
            Fault::Heal => write!(f, "heal every link"),
            Fault::Crash(n) => write!(f, "crash node {n}"),
            Fault::CrashLeader(s) => write!(f, "crash the leader of shard {s}"),
            Fault::RestartDown => write!(f, "restart crashed/failed nodes"),
            Fault::FailSync(n) => write!(f, "fail the next fsync of node {n}"),
            Fault::TransferLeader(s, n) => write!(f, "transfer leadership of shard {s} to node {n}"),
            Fault::StepDown(s) => write!(f, "step down the leader of shard {s}"),
            Fault::StallDisk(n) => write!(f, "stall the disk of node {n}"),
            Fault::StallLeaderDisk(s) => write!(f, "stall the disk of the leader of shard {s}"),
            Fault::StallEveryDisk => write!(f, "stall every disk"),
            Fault::CrashStalled => write!(f, "crash the nodes with a stalled disk"),
            Fault::ReleaseDisks => write!(f, "release stalled disks"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Scheduled {
    pub at_ms: u64,
    pub fault: Fault,
}

/// Non-overlapping episodes between `300 ms` and `workload_ms`, except the
/// occasional double fault (a node isolated while another crashes: no quorum for a
/// while). At most one fsync failure per seed.
pub fn schedule(rng: &mut SimRng, shard_count: u32, workload_ms: u64) -> Vec<Scheduled> {
    let mut out = Vec::new();
    let mut at_ms = rng.between(200, 500);
    let mut sync_failed = false;
    while at_ms + 200 < workload_ms {
        let kind = rng.below(15);
        let fails_sync = kind == 7 && !sync_failed;
        // A failed fsync gets long enough for every shard of the node to notice.
        let length_ms = if fails_sync { rng.between(700, 1_200) } else { rng.between(100, 1_200) };
        let end_ms = (at_ms + length_ms).min(workload_ms);
        let shard = rng.below(u64::from(shard_count)) as ShardId;
        let node = rng.pick(&NODE_IDS);
        let other = rng.pick(&NODE_IDS.iter().copied().filter(|n| *n != node).collect::<Vec<_>>());
        let mut add = |offset_ms: u64, fault| out.push(Scheduled { at_ms: at_ms + offset_ms, fault });
        match kind {
            0 => add(0, Fault::Isolate(node)),
            1 | 2 => add(0, Fault::IsolateLeader(shard)),
            3 => add(0, Fault::Cut(node, other)),
            4 => add(0, Fault::Crash(node)),
            5 | 6 => add(0, Fault::CrashLeader(shard)),
            7 if fails_sync => {
                sync_failed = true;
                add(0, Fault::FailSync(node));
            }
            7 | 8 => add(0, Fault::TransferLeader(shard, node)),
            9 => add(0, Fault::StepDown(shard)),
            10 => add(0, Fault::StallDisk(node)),
            11 | 12 => {
                add(0, if kind == 11 { Fault::StallDisk(node) } else { Fault::StallLeaderDisk(shard) });
                add(rng.between(1, 40).min(length_ms), Fault::CrashStalled);
            }
            13 => {
                // Power loss of the whole cluster, mid-write.
                add(0, Fault::StallEveryDisk);
                add(rng.between(1, 40).min(length_ms), Fault::CrashStalled);
            }
            _ => {
                add(0, Fault::Isolate(node));
                add(length_ms / 3, Fault::Crash(other));
            }
        }
        out.push(Scheduled { at_ms: end_ms, fault: Fault::ReleaseDisks });
        out.push(Scheduled { at_ms: end_ms, fault: Fault::Heal });
        out.push(Scheduled { at_ms: end_ms, fault: Fault::RestartDown });
        at_ms = end_ms + rng.between(50, 600);
    }
    out.sort_by_key(|s| s.at_ms);
    out
}

pub fn describe(schedule: &[Scheduled]) -> String {
    schedule.iter().map(|s| format!("  {:>6} ms  {}\n", s.at_ms, s.fault)).collect()
}
