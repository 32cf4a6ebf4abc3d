//! The simulated network: a [`Transport`] that, per message and with a seeded
//! generator per link, drops, delays (whole simulated milliseconds) and duplicates,
//! and loses everything crossing a cut link. Delivery happens when the simulation's
//! clock calls [`SimNet::deliver_due`], in (due time, send order) order, by
//! [`Node::step`]; its `Overloaded` / `Stopped` errors are ignored, as a real network
//! would lose the message. A lost message sometimes makes the sender's node hear
//! [`Node::report_unreachable`] (its connection failed).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hourglass_raft::transport::Transport;
use hourglass_raft::Node;
use hourglass_storage::records::ShardId;
use parking_lot::Mutex;
use raft::eraftpb::{Message, MessageType};

use super::disk::Activity;
use super::rng::SimRng;

/// How the network misbehaves, per message.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    pub delay_ms_min: u64,
    pub delay_ms_max: u64,
    /// Chance that a message lost to a cut link or a down node is reported to its
    /// sender as unreachable.
    pub report_unreachable_per_mille: u64,
    /// Whether forwarded proposals (`MsgProp`, a follower handing a client's
    /// proposal to the leader) may be duplicated too. raft-rs appends every copy it
    /// receives, so a duplicated `MsgProp` commits (and applies) the transition
    /// twice; off unless `HOURGLASS_SIM_DUPLICATE_PROPOSALS` is set (see the report
    /// in `sim_cluster.rs`).
    pub duplicate_proposals: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
    /// Lost to a cut link or because the destination was down.
    pub cut_off: u64,
    pub reported_unreachable: u64,
}

/// (sender, shard, unreachable peer).
type UnreachableReport = (u64, ShardId, u64);

struct InFlight {
    shard: ShardId,
    message: Message,
}

#[derive(Default)]
struct NetState {
    now_ms: u64,
    nodes: BTreeMap<u64, Node>,
    /// Cut links, each as (smaller id, larger id).
    cut: BTreeSet<(u64, u64)>,
    queue: BTreeMap<(u64, u64), InFlight>,
    next_seq: u64,
    links: HashMap<(u64, u64, ShardId), SimRng>,
    /// To report at the next delivery round.
    reports: Vec<UnreachableReport>,
    stats: NetStats,
}

pub struct SimNet {
    seed: u64,
    config: NetConfig,
    state: Mutex<NetState>,
    activity: Arc<Activity>,
    /// No more drops or duplicates (delays stay): for the final convergence.
    calm: AtomicBool,
}

fn link_key(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

impl SimNet {
    pub fn new(seed: u64, config: NetConfig, activity: Arc<Activity>) -> Self {
        Self { seed, config, state: Mutex::new(NetState::default()), activity, calm: AtomicBool::new(false) }
    }

    pub fn register(&self, node: Node) {
        self.state.lock().nodes.insert(node.node_id(), node);
    }

    /// Takes `id` off the network: messages to and from it are lost from now on.
    pub fn unregister(&self, id: u64) -> Option<Node> {
        self.state.lock().nodes.remove(&id)
    }

    pub fn node(&self, id: u64) -> Option<Node> {
        self.state.lock().nodes.get(&id).cloned()
    }

    pub fn cut(&self, a: u64, b: u64) {
        self.state.lock().cut.insert(link_key(a, b));
    }

    /// Cuts every link of `id`.
    pub fn isolate(&self, id: u64, all: &[u64]) {
        for other in all.iter().filter(|o| **o != id) {
            self.cut(id, *other);
        }
    }

    pub fn calm_down(&self) {
        self.calm.store(true, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.state.lock().cut.clear();
    }

    pub fn stats(&self) -> NetStats {
        self.state.lock().stats
    }

    /// Delivers every message due at or before `now_ms`, oldest first, then the
    /// unreachable reports of the messages lost meanwhile.
    pub fn deliver_due(&self, now_ms: u64) {
        let (due, reports) = self.take_due(now_ms);
        for item in due {
            self.deliver(item);
        }
        for (sender, shard, peer) in reports {
            if let Some(node) = self.node(sender) {
                node.report_unreachable(shard, peer);
            }
        }
    }

    fn take_due(&self, now_ms: u64) -> (Vec<InFlight>, Vec<UnreachableReport>) {
        let mut st = self.state.lock();
        st.now_ms = now_ms;
        let later = st.queue.split_off(&(now_ms + 1, 0));
        let due = std::mem::replace(&mut st.queue, later);
        let reports = std::mem::take(&mut st.reports);
        (due.into_values().collect(), reports)
    }

    fn deliver(&self, item: InFlight) {
        let (from, to) = (item.message.from, item.message.to);
        let target = {
            let mut st = self.state.lock();
            let target = if st.cut.contains(&link_key(from, to)) { None } else { st.nodes.get(&to).cloned() };
            if target.is_none() {
                self.lost_to_cut(&mut st, from, item.shard, to);
            } else {
                st.stats.delivered += 1;
            }
            target
        };
        if let Some(node) = target {
            self.activity.bump();
            // Overloaded or Stopped: the message is lost, as on a real network.
            let _ = node.step(item.shard, item.message);
        }
    }

    fn lost_to_cut(&self, st: &mut NetState, from: u64, shard: ShardId, to: u64) {
        st.stats.cut_off += 1;
        let rng = self.link_rng(st, from, to, shard);
        if rng.chance(self.config.report_unreachable_per_mille) {
            st.stats.reported_unreachable += 1;
            st.reports.push((from, shard, to));
        }
    }

    fn link_rng<'a>(&self, st: &'a mut NetState, from: u64, to: u64, shard: ShardId) -> &'a mut SimRng {
        let seed = self.seed;
        st.links.entry((from, to, shard)).or_insert_with(|| SimRng::derive(seed, &[1, from, to, u64::from(shard)]))
    }

    fn enqueue(&self, st: &mut NetState, shard: ShardId, message: Message) {
        let (from, to) = (message.from, message.to);
        st.stats.sent += 1;
        if !st.nodes.contains_key(&from) {
            // The sender is down (a crashed node's last words): nobody hears them.
            st.stats.cut_off += 1;
            return;
        }
        if st.cut.contains(&link_key(from, to)) || !st.nodes.contains_key(&to) {
            self.lost_to_cut(st, from, shard, to);
            return;
        }
        let mut config = self.config;
        if self.calm.load(Ordering::SeqCst) {
            config.drop_per_mille = 0;
            config.duplicate_per_mille = 0;
        }
        let rng = self.link_rng(st, from, to, shard);
        if rng.chance(config.drop_per_mille) {
            st.stats.dropped += 1;
            return;
        }
        let delay_ms = rng.between(config.delay_ms_min, config.delay_ms_max);
        let may_duplicate = config.duplicate_proposals || message.get_msg_type() != MessageType::MsgPropose;
        let duplicate = rng.chance(config.duplicate_per_mille) && may_duplicate;
        let duplicate_delay_ms = duplicate.then(|| rng.between(config.delay_ms_min, config.delay_ms_max));
        let now_ms = st.now_ms;
        if let Some(extra_ms) = duplicate_delay_ms {
            st.stats.duplicated += 1;
            self.push(st, now_ms + extra_ms, shard, message.clone());
        }
        self.push(st, now_ms + delay_ms, shard, message);
    }

    fn push(&self, st: &mut NetState, due_ms: u64, shard: ShardId, message: Message) {
        let seq = st.next_seq;
        st.next_seq += 1;
        st.queue.insert((due_ms, seq), InFlight { shard, message });
    }
}

impl Transport for SimNet {
    fn send(&self, shard: ShardId, messages: Vec<Message>) {
        self.activity.bump();
        let mut st = self.state.lock();
        for message in messages {
            self.enqueue(&mut st, shard, message);
        }
    }
}
