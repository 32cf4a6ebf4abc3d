//! A node: the node log, and one Raft group (driver task) per shard on top of it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hourglass_storage::disk::{self, Disk};
use hourglass_storage::log::{LogConfig, NodeLog, RecoveryReport};
use hourglass_storage::records::{RecordKind, ShardId};
use hourglass_storage::state::{Applied, RunKey, ShardConfig, ShardState, Transition};
use hourglass_storage::{LogPosition, StorageError};
use parking_lot::{Mutex, RwLock};
use raft::eraftpb::ConfState;
use raft::RawNode;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::driver::{Driver, DriverConfig, ShardMsg};
use crate::error::{RaftError, Result};
use crate::log_storage::{record_to_conf_state, ShardLog};
use crate::recovery::{self, RecoveredShard};
use crate::snapshot::{SnapshotDir, SnapshotFile};
use crate::status::{Leadership, ShardStatus};
use crate::transport::{NoPeers, Transport};

/// Bytes a transition's record may add to it: the entry header and the 16-byte
/// context (53), and a `Relocated` wrapper (25) when reclaim moves it or a follower
/// writes it from a snapshot, rounded up. A record must fit `record_bytes_max`
/// wrapped too.
const ENTRY_RECORD_OVERHEAD_BYTES: usize = 96;

/// Everything a node needs to start. Every limit is explicit.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Data directory: `log/` holds the segments, `snapshots/` the shard snapshots.
    pub dir: PathBuf,
    /// This node's Raft id (non-zero).
    pub node_id: u64,
    /// The voters every shard's group starts with when its log is new (a cluster's
    /// initial members; `[node_id]` for one node). Ignored once a group has a
    /// membership on disk: from then on membership changes only through Raft.
    pub initial_voters: Vec<u64>,
    pub shard_count: u32,
    /// Node log settings; `log.dir` is overridden to `dir/log`.
    pub log: LogConfig,
    pub shard: ShardConfig,
    /// Raft tick interval; elections take `election_tick` ticks.
    pub tick_ms: u64,
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    /// Take a snapshot (and compact the Raft log) after this many applied entries.
    pub snapshot_interval_entries: u64,
    /// Largest snapshot built for a follower, or accepted from a leader (the state
    /// and its history, held in memory while it is sent or installed). A follower
    /// whose snapshot would be larger is not sent one (logged; it stays behind).
    /// At most `u32::MAX`.
    pub snapshot_bytes_max: u64,
    /// Most proposals queued per shard before `propose` fails with `Overloaded`.
    pub proposal_queue_max: usize,
    /// How long `open` waits for every shard to elect a leader.
    pub leader_wait_ms: u64,
}

impl NodeConfig {
    pub fn new(dir: impl Into<PathBuf>, shard_count: u32) -> Self {
        let dir = dir.into();
        Self {
            log: LogConfig::new(dir.join("log")),
            dir,
            node_id: 1,
            initial_voters: vec![1],
            shard_count,
            shard: ShardConfig::default(),
            tick_ms: 100,
            election_tick: 10,
            heartbeat_tick: 3,
            snapshot_interval_entries: 50_000,
            snapshot_bytes_max: 1 << 30,
            proposal_queue_max: 4096,
            leader_wait_ms: 10_000,
        }
    }

    fn validate(&self) -> Result<()> {
        let fail = |m: &str| Err(RaftError::Config(m.to_string()));
        if self.node_id == 0 {
            return fail("node_id must not be 0 (raft reserves it)");
        }
        // Empty: the node joins an existing cluster and waits to be added.
        if !(self.initial_voters.is_empty() || self.initial_voters.contains(&self.node_id)) || self.initial_voters.contains(&0) {
            return fail("initial_voters must be empty (joining) or include node_id, and must not include 0");
        }
        if self.shard_count == 0 {
            return fail("shard_count must be at least 1");
        }
        if self.tick_ms == 0 || self.heartbeat_tick == 0 || self.election_tick <= self.heartbeat_tick {
            return fail("need tick_ms > 0 and election_tick > heartbeat_tick > 0");
        }
        if self.proposal_queue_max == 0 || self.snapshot_interval_entries == 0 {
            return fail("proposal_queue_max and snapshot_interval_entries must be at least 1");
        }
        if self.snapshot_bytes_max == 0 || self.snapshot_bytes_max > u64::from(u32::MAX) {
            return fail("snapshot_bytes_max must be in 1..=u32::MAX");
        }
        Ok(())
    }
}

pub(crate) struct ShardHandle {
    pub inbox: mpsc::Sender<ShardMsg>,
    /// The group's voters were exactly this node when it started.
    pub single_member: bool,
    pub state: Arc<RwLock<ShardState>>,
    pub status: Arc<ShardStatus>,
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

struct NodeInner {
    config: NodeConfig,
    log: NodeLog,
    shards: Vec<ShardHandle>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    recovery: RecoveryReport,
}

impl Node {
    /// Opens (or creates) the node in `config.dir` on the real disk.
    pub async fn open(config: NodeConfig) -> Result<Node> {
        let disk = disk::open_disk(config.log.io_mode).map_err(|e| StorageError::io("open disk", &config.dir, e))?;
        Self::open_with(disk, config, Arc::new(NoPeers)).await
    }

    /// Opens the node on `disk` with `transport`. Recovers the log, loads snapshots,
    /// starts one driver per shard and waits until every shard has a leader.
    pub async fn open_with(disk: Arc<dyn Disk>, mut config: NodeConfig, transport: Arc<dyn Transport>) -> Result<Node> {
        config.validate()?;
        config.log.dir = config.dir.join("log");
        let snapshots = Arc::new(SnapshotDir::open(disk.clone(), config.dir.join("snapshots"))?);
        let mut snaps = Vec::with_capacity(config.shard_count as usize);
        for shard in 0..config.shard_count {
            snaps.push(snapshots.load_newest(shard)?);
        }
        let mut recovered = vec![RecoveredShard::default(); config.shard_count as usize];
        let (log, report) =
            NodeLog::open(disk, config.log.clone(), &mut |pos, kind, payload| recovery::visit(&mut recovered, pos, kind, payload))?;
        tracing::info!(segments = report.segments, records = report.records, bytes = report.bytes, torn_tail = ?report.torn_tail, "node log recovered");

        let incarnation = incarnation();
        let mut shards = Vec::with_capacity(config.shard_count as usize);
        let mut tasks = Vec::with_capacity(config.shard_count as usize);
        for (shard, (rec, snap)) in recovered.into_iter().zip(snaps).enumerate() {
            let shard = shard as ShardId;
            let (handle, driver, inbox) = start_shard(shard, &config, &log, rec, snap, &snapshots, &transport, incarnation).await?;
            tasks.push(tokio::spawn(driver.run(inbox)));
            shards.push(handle);
        }
        let node = Node { inner: Arc::new(NodeInner { config, log, shards, tasks: Mutex::new(tasks), recovery: report }) };
        // A one-member group elects itself at once; a cluster's groups need their
        // peers, which may start later, so a cluster node does not wait here.
        if node.is_single_member() {
            node.wait_for_leaders().await?;
        }
        Ok(node)
    }

    async fn wait_for_leaders(&self) -> Result<()> {
        let wait = Duration::from_millis(self.inner.config.leader_wait_ms);
        for (shard, handle) in self.inner.shards.iter().enumerate() {
            let shard = shard as ShardId;
            match tokio::time::timeout(wait, handle.status.wait_for_leader()).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(RaftError::Stopped { shard, reason: handle.status.stopped().unwrap_or_default() });
                }
                Err(_) => return Err(RaftError::NotLeader { shard, leader: None }),
            }
        }
        Ok(())
    }

    /// Every shard's group has this node as its only voter.
    pub fn is_single_member(&self) -> bool {
        self.inner.shards.iter().all(|h| h.single_member)
    }

    pub fn shard_count(&self) -> u32 {
        self.inner.config.shard_count
    }

    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    pub fn log(&self) -> &NodeLog {
        &self.inner.log
    }

    /// What recovery found when this node opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    fn handle(&self, shard: ShardId) -> Result<&ShardHandle> {
        self.inner.shards.get(shard as usize).ok_or(RaftError::NoSuchShard { shard, shard_count: self.inner.config.shard_count })
    }

    /// Proposes `transition` to `shard`'s group; resolves once it is committed
    /// (durable on a majority) and applied, with the state machine's answer.
    pub async fn propose(&self, shard: ShardId, transition: &Transition) -> Result<Applied> {
        self.propose_inner(shard, None, transition).await
    }

    /// Like [`Node::propose`], but refused with `NotLeader` unless this node leads
    /// `shard` in exactly `term` when the driver takes the proposal: a shard owner
    /// proposes only in the term it was started for.
    pub async fn propose_in_term(&self, shard: ShardId, term: u64, transition: &Transition) -> Result<Applied> {
        self.propose_inner(shard, Some(term), transition).await
    }

    async fn propose_inner(&self, shard: ShardId, term: Option<u64>, transition: &Transition) -> Result<Applied> {
        let handle = self.handle(shard)?;
        let data = transition.encode();
        let max = self.inner.config.log.record_bytes_max as usize;
        if data.len() + ENTRY_RECORD_OVERHEAD_BYTES > max {
            return Err(StorageError::RecordTooLarge { bytes: data.len() + ENTRY_RECORD_OVERHEAD_BYTES, max }.into());
        }
        let (reply, answer) = oneshot::channel();
        let msg = ShardMsg::Propose { data: Vec::from(data), term, reply };
        handle.inbox.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RaftError::Overloaded { shard, queue_max: self.inner.config.proposal_queue_max },
            mpsc::error::TrySendError::Closed(_) => stopped(shard, &handle.status),
        })?;
        answer.await.map_err(|_| stopped(shard, &handle.status))?
    }

    /// Delivers a Raft message from a peer to `shard`'s group: the entry point of a
    /// node-to-node transport. Fails with `Overloaded` rather than blocking.
    pub fn step(&self, shard: ShardId, message: raft::eraftpb::Message) -> Result<()> {
        let handle = self.handle(shard)?;
        handle.inbox.try_send(ShardMsg::Step(Box::new(message))).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RaftError::Overloaded { shard, queue_max: self.inner.config.proposal_queue_max },
            mpsc::error::TrySendError::Closed(_) => stopped(shard, &handle.status),
        })
    }

    /// Tells `shard`'s group that messages to node `to` were lost (the connection
    /// failed): raft-rs then probes that follower instead of streaming to it.
    pub fn report_unreachable(&self, shard: ShardId, to: u64) {
        if let Ok(handle) = self.handle(shard) {
            let _ = handle.inbox.try_send(ShardMsg::Unreachable(to));
        }
    }

    /// Tells `shard`'s group whether the snapshot it sent node `to` (a `MsgSnapshot`)
    /// was delivered: the transport calls it once per snapshot message, after
    /// sending it (`true`) or failing to (`false`). Until then raft-rs sends that
    /// follower nothing more; after a failure it retries after a heartbeat.
    pub fn report_snapshot(&self, shard: ShardId, to: u64, delivered: bool) {
        if let Ok(handle) = self.handle(shard) {
            if handle.inbox.try_send(ShardMsg::ReportSnapshot { to, delivered }).is_err() {
                tracing::warn!(shard, to, delivered, "snapshot report dropped: the shard's queue is full or stopped");
            }
        }
    }

    /// Asks `shard`'s leader (this node) to hand leadership to node `to`, if `to`
    /// has answered recently and holds every committed entry (otherwise nothing
    /// happens). Returns at once; the transfer completes (or is abandoned after an
    /// election timeout) in the background, as [`Node::watch_leadership`] shows.
    pub async fn transfer_leader(&self, shard: ShardId, to: u64) -> Result<()> {
        self.send(shard, ShardMsg::TransferLeader(to)).await
    }

    /// Resolves once this node has confirmed, with a quorum of `shard`'s group, that
    /// it still leads, and has applied every entry committed when it asked: a read of
    /// the shard's state after this sees every acknowledged write (Raft ReadIndex).
    /// `NotLeader` when this node does not lead.
    pub async fn read_index(&self, shard: ShardId) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(shard, ShardMsg::ReadIndex(reply)).await?;
        let status = self.handle(shard)?.status.clone();
        answer.await.map_err(|_| stopped(shard, &status))?
    }

    /// Proposes a membership change of `shard`'s group (this node must lead it);
    /// resolves once the change is applied here.
    pub async fn change_membership(&self, shard: ShardId, change: crate::membership::MembershipChange) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(shard, ShardMsg::ChangeMembership(change, reply)).await?;
        let status = self.handle(shard)?.status.clone();
        answer.await.map_err(|_| stopped(shard, &status))?
    }

    /// Whether `shard`'s group, as this node last applied its membership, has members
    /// other than this node (a one-member group needs no quorum round for a read).
    pub fn has_peers(&self, shard: ShardId) -> Result<bool> {
        let status = &self.handle(shard)?.status;
        let me = self.node_id();
        Ok(status.voters().iter().chain(&status.learners()).any(|id| *id != me))
    }

    /// The learners of `shard`'s group as this node last applied them.
    pub fn learners(&self, shard: ShardId) -> Result<Vec<u64>> {
        Ok(self.handle(shard)?.status.learners())
    }

    /// Why `shard`'s driver stopped (a storage failure, or shutdown), if it did.
    pub fn stopped(&self, shard: ShardId) -> Result<Option<String>> {
        Ok(self.handle(shard)?.status.stopped())
    }

    /// The voters of `shard`'s group as this node last applied them.
    pub fn voters(&self, shard: ShardId) -> Result<Vec<u64>> {
        Ok(self.handle(shard)?.status.voters())
    }

    /// Runs `read` against the shard's applied state.
    pub fn read<R>(&self, shard: ShardId, read: impl FnOnce(&ShardState) -> R) -> Result<R> {
        Ok(read(&self.handle(shard)?.state.read()))
    }

    /// The leader of `shard`'s group, if known.
    pub fn leader(&self, shard: ShardId) -> Result<Option<u64>> {
        Ok(self.handle(shard)?.status.leader())
    }

    /// This node's view of `shard`'s leadership (leader, term, serving).
    pub fn leadership(&self, shard: ShardId) -> Result<Leadership> {
        Ok(self.handle(shard)?.status.leadership())
    }

    /// Follows `shard`'s leadership as it changes.
    pub fn watch_leadership(&self, shard: ShardId) -> Result<tokio::sync::watch::Receiver<Leadership>> {
        Ok(self.handle(shard)?.status.watch())
    }

    /// This node's id in every shard's group.
    pub fn node_id(&self) -> u64 {
        self.inner.config.node_id
    }

    /// Ends this node's term as `shard`'s leader and starts a new one, as a leader
    /// change does (an admin and test hook; one-member groups only for now).
    pub async fn step_down(&self, shard: ShardId) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(shard, ShardMsg::StepDown(reply)).await?;
        let status = self.handle(shard)?.status.clone();
        answer.await.map_err(|_| stopped(shard, &status))?
    }

    /// Events of `run` with ids `from_event_id..` (at most `max_events`), read from the
    /// log through the run's history index.
    pub fn read_history(&self, shard: ShardId, run: &RunKey, from_event_id: u64, max_events: usize) -> Result<Vec<(u64, Bytes)>> {
        crate::history::read(self, shard, run, from_event_id, max_events)
    }

    /// Snapshots `shard` now and rewrites its Raft metadata records at the log head.
    pub async fn checkpoint(&self, shard: ShardId) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(shard, ShardMsg::Checkpoint(reply)).await?;
        let status = self.handle(shard)?.status.clone();
        answer.await.map_err(|_| stopped(shard, &status))?
    }

    pub(crate) async fn raft_live_positions(&self, shard: ShardId) -> Result<Vec<hourglass_storage::LogPosition>> {
        let (reply, answer) = oneshot::channel();
        self.send(shard, ShardMsg::RaftLivePositions(reply)).await?;
        answer.await.map_err(|_| stopped(shard, &self.handle(shard).expect("checked by send").status))
    }

    pub(crate) fn state(&self, shard: ShardId) -> Result<&Arc<RwLock<ShardState>>> {
        Ok(&self.handle(shard)?.state)
    }

    async fn send(&self, shard: ShardId, msg: ShardMsg) -> Result<()> {
        let handle = self.handle(shard)?;
        handle.inbox.send(msg).await.map_err(|_| stopped(shard, &handle.status))
    }

    /// Stops every shard after its in-flight proposals are committed, then the log.
    pub async fn shutdown(&self) {
        for handle in &self.inner.shards {
            let (done, finished) = oneshot::channel();
            if handle.inbox.send(ShardMsg::Shutdown(done)).await.is_ok() {
                let _ = finished.await;
            }
        }
        let tasks = std::mem::take(&mut *self.inner.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
        self.inner.log.shutdown();
    }
}

fn stopped(shard: ShardId, status: &ShardStatus) -> RaftError {
    RaftError::Stopped { shard, reason: status.stopped().unwrap_or_else(|| "shard driver is gone".into()) }
}

/// A number that differs between runs of the process, so proposals of an earlier run
/// replayed from the log are never mistaken for this run's.
fn incarnation() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[allow(clippy::too_many_arguments)]
async fn start_shard(
    shard: ShardId,
    config: &NodeConfig,
    log: &NodeLog,
    rec: RecoveredShard,
    snap: Option<SnapshotFile>,
    snapshots: &Arc<SnapshotDir>,
    transport: &Arc<dyn Transport>,
    incarnation: u64,
) -> Result<(ShardHandle, Driver, mpsc::Receiver<ShardMsg>)> {
    let state = match &snap {
        Some(s) => ShardState::restore(shard, config.shard.clone(), s.data.clone())
            .map_err(|e| RaftError::Snapshot { file: crate::snapshot::file_name(shard, s.index), detail: e.to_string() })?,
        None => ShardState::new(shard, config.shard.clone()),
    };
    if let Some(s) = &snap {
        if state.applied_index() != s.index {
            return Err(RaftError::Snapshot {
                file: crate::snapshot::file_name(shard, s.index),
                detail: format!("state applied index {} differs from snapshot index {}", state.applied_index(), s.index),
            });
        }
    }
    let state = Arc::new(RwLock::new(state));
    let mut store = ShardLog::new(shard, log.clone(), state.clone(), config.snapshot_bytes_max);
    let log_floor = snap.as_ref().map_or(LogPosition { segment_id: 0, offset: 0 }, |s| s.log_floor);
    store.log_floor = log_floor;
    if let Some(s) = &snap {
        store.set_conf_state(record_to_conf_state(&s.conf_state));
    }
    // Membership recorded before the floor predates an installed snapshot's.
    if let Some((cs, pos)) = rec.conf_state.as_ref().filter(|(_, pos)| *pos >= log_floor) {
        store.set_conf_state(record_to_conf_state(cs));
        store.conf_state_pos = Some(*pos);
    }
    if let Some((hs, pos)) = &rec.hard_state {
        let hard = raft::eraftpb::HardState { term: hs.term, vote: hs.vote, commit: hs.commit, ..Default::default() };
        store.set_hard_state(hard);
        store.hard_state_pos = Some(*pos);
    }
    if let Some(s) = &snap {
        store.apply_snapshot_meta(s.index, s.term);
    }
    let fresh = rec.entries.is_empty() && snap.is_none() && store.conf_state().voters.is_empty();
    // Entries before the floor were discarded when a leader's snapshot was installed.
    for (index, term, pos) in rec.entries.iter().filter(|(_, _, pos)| *pos >= log_floor) {
        store.record_entry(*index, *term, *pos).map_err(|detail| StorageError::Corrupt {
            file: config.log.dir.clone(),
            offset: pos.offset,
            detail,
        })?;
    }
    clamp_commit(&mut store);
    if fresh {
        let mut voters = config.initial_voters.clone();
        voters.sort_unstable();
        voters.dedup();
        let cs = ConfState { voters, ..Default::default() };
        store.set_conf_state(cs);
        let positions = log
            .append(vec![hourglass_storage::log::Record { kind: RecordKind::ConfState, payload: store.conf_state_record().encode() }])
            .await?;
        store.conf_state_pos = positions.first().copied();
    }
    let single_member = store.conf_state().voters == [config.node_id];
    let applied = store.snapshot_index();
    let replay_to = (store.last_index_value() > applied).then(|| store.last_index_value());
    let raft_config = raft::Config {
        id: config.node_id,
        election_tick: config.election_tick,
        heartbeat_tick: config.heartbeat_tick,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        // A node cut off from its peers must not disrupt them when it returns
        // (pre-vote), and a leader that lost its quorum steps down (check-quorum), so
        // a partitioned leader stops serving within an election timeout.
        pre_vote: true,
        check_quorum: true,
        // Followers learn a new commit index from the next append or heartbeat instead
        // of an extra empty append per commit: fewer messages per acknowledged call.
        // (`batch_append` is left off: with it the cluster simulation hit raft-rs's
        // "commit out of range" panic on followers.)
        skip_bcast_commit: true,
        ..Default::default()
    };
    raft_config.validate()?;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut raw = RawNode::new(&raft_config, store, &logger)?;
    if single_member {
        raw.campaign()?;
    }
    let (inbox_tx, inbox) = mpsc::channel(config.proposal_queue_max);
    let status = Arc::new(ShardStatus::default());
    status.set_members(raw.store().conf_state());
    let driver = Driver {
        shard,
        raw,
        log: log.clone(),
        state: state.clone(),
        snapshots: snapshots.clone(),
        transport: transport.clone(),
        status: status.clone(),
        config: DriverConfig {
            tick: Duration::from_millis(config.tick_ms),
            snapshot_interval_entries: config.snapshot_interval_entries,
            snapshot_bytes_max: config.snapshot_bytes_max,
            batch_messages_max: 1024,
        },
        incarnation,
        single_member,
        next_proposal: 0,
        waiters: Default::default(),
        membership_waiters: Default::default(),
        reads: Default::default(),
        waiting_at_index: Default::default(),
        hard_state_dirty: false,
        replay_to,
        pending_install: None,
        ticks: 0,
    };
    Ok((ShardHandle { inbox: inbox_tx, single_member, state, status }, driver, inbox))
}

/// The durable commit index may not exceed what the log holds (it never should; a
/// log cut by hand would be the only way).
fn clamp_commit(store: &mut ShardLog) {
    let last = store.last_index_value();
    if store.hard_state().commit > last {
        tracing::warn!(shard = store.shard(), commit = store.hard_state().commit, last, "commit index beyond the log; clamped");
        let mut hs = store.hard_state().clone();
        hs.commit = last;
        store.set_hard_state(hs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hourglass_storage::disk::sim::SimDisk;
    use hourglass_storage::state::Op;

    fn config() -> NodeConfig {
        let mut c = NodeConfig::new("/node", 2);
        c.log.segment_bytes = 64 * 1024;
        c.log.record_bytes_max = 16 * 1024;
        c.tick_ms = 5;
        c
    }

    fn start(i: u32) -> (ShardId, Transition) {
        let run = RunKey { namespace: "ns".into(), workflow_id: format!("wf-{i}"), run_id: format!("run-{i}") };
        let t = Transition {
            time_ms: 1,
            dedupe: None,
            ops: vec![
                Op::CreateRun { run: run.clone(), state: Bytes::from(vec![1; 300]) },
                Op::AppendEvents { run, first_event_id: 1, events: vec![Bytes::from(vec![2; 500])] },
            ],
        };
        (i % 2, t)
    }

    fn applied(node: &Node) -> Vec<u64> {
        (0..2).map(|s| node.read(s, |st| st.applied_index()).unwrap()).collect()
    }

    /// Applying what this process proposed reads nothing back from the log; a
    /// restart replays from the log and then releases the mapped pages it touched.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn apply_reads_nothing_back_and_replay_releases_what_it_read() {
        let disk = SimDisk::new(11);
        let node = Node::open_with(Arc::new(disk.clone()), config(), Arc::new(NoPeers)).await.unwrap();
        for i in 0..300 {
            let (shard, t) = start(i);
            assert!(matches!(node.propose(shard, &t).await.unwrap(), Applied::Done { .. }));
        }
        assert_eq!(node.log().stats().reads, 0, "committed entries are applied from memory");
        let segments = node.log().segments().len() as u64;
        assert!(segments > 2, "300 entries of ~900 bytes fill several 64 KiB segments");
        let target = applied(&node);
        node.shutdown().await;

        let before = disk.stats().page_releases;
        let node = Node::open_with(Arc::new(disk.clone()), config(), Arc::new(NoPeers)).await.unwrap();
        // Recovery releases each segment after scanning it; then each shard's driver
        // releases every segment once it has applied its replay. (A segment roll while
        // reopening would release more, so this is a lower bound.)
        let expected = before + segments + 2 * segments;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while applied(&node).iter().zip(&target).any(|(a, t)| a < t) || disk.stats().page_releases < expected {
            assert!(std::time::Instant::now() < deadline, "replay did not finish: {:?} of {target:?}", applied(&node));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(node.log().stats().reads >= 300, "replay reads the entries back from the log");
        let run = RunKey { namespace: "ns".into(), workflow_id: "wf-7".into(), run_id: "run-7".into() };
        assert_eq!(node.read_history(1, &run, 1, 10).unwrap(), vec![(1, Bytes::from(vec![2; 500]))]);
        node.shutdown().await;
    }

    /// A snapshot file's log floor hides the shard's entries written before it (an
    /// installed leader's snapshot replaced them): on open they are neither kept in
    /// the Raft log nor applied, even those above the snapshot's index.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_before_the_log_floor_are_ignored_on_open() {
        use crate::snapshot::{SnapshotDir, SnapshotFile};
        use hourglass_storage::records::{ConfStateRecord, HardStateRecord};
        let disk = SimDisk::new(21);
        let node = Node::open_with(Arc::new(disk.clone()), config(), Arc::new(NoPeers)).await.unwrap();
        for i in (0..20).step_by(2) {
            let (shard, t) = start(i);
            node.propose(shard, &t).await.unwrap();
        }
        let (applied_before, term) = (applied(&node), node.leadership(0).unwrap().term);
        assert!(applied_before[0] > 6, "{applied_before:?}");
        node.shutdown().await;

        // What an install at index 5 leaves: a hard-state record at the floor, then
        // the file naming that floor (its state holds no runs).
        let (log, _) = NodeLog::open(Arc::new(disk.clone()), config().log, &mut |_, _, _| Ok(())).unwrap();
        let hs = HardStateRecord { shard: 0, term, vote: 1, commit: 5 };
        let floor =
            log.append_blocking(vec![hourglass_storage::log::Record { kind: RecordKind::HardState, payload: hs.encode() }]).unwrap()[0];
        log.shutdown();
        let mut state = ShardState::new(0, ShardConfig::default());
        (1..=5).for_each(|i| state.skip(i).unwrap());
        let conf_state = ConfStateRecord { shard: 0, voters: vec![1], ..Default::default() };
        let file = SnapshotFile { shard: 0, index: 5, term, log_floor: floor, conf_state, data: state.snapshot() };
        SnapshotDir::open(Arc::new(disk.clone()), "/node/snapshots").unwrap().write(&file).unwrap();

        let node = Node::open_with(Arc::new(disk.clone()), config(), Arc::new(NoPeers)).await.unwrap();
        leadership_where(&node, 0, |l| l.serving).await;
        leadership_where(&node, 1, |l| l.serving).await;
        assert_eq!(applied(&node)[0], 6, "the snapshot, then the new leader's empty entry; nothing from before the floor");
        assert_eq!(node.read(0, |s| s.run_count()).unwrap(), 0);
        assert_eq!(applied(&node)[1], applied_before[1] + 1, "the other shard replays its whole log");
        node.shutdown().await;
    }

    /// Waits for the next published leadership that satisfies `ok`.
    async fn leadership_where(node: &Node, shard: ShardId, ok: impl Fn(&Leadership) -> bool) -> Leadership {
        let mut rx = node.watch_leadership(shard).unwrap();
        let seen = rx.wait_for(|l| ok(l)).await.unwrap();
        *seen
    }

    /// A step-down is a leader change: the term grows, the node serves again only in
    /// the new term, and a proposal tagged with the old term is refused, never applied.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn step_down_starts_a_new_term_and_fences_the_old_one() {
        let disk = SimDisk::new(3);
        let node = Node::open_with(Arc::new(disk.clone()), config(), Arc::new(NoPeers)).await.unwrap();
        let other_term = leadership_where(&node, 1, |l| l.serving).await.term;
        let first = leadership_where(&node, 0, |l| l.serving).await;
        assert_eq!(first.leader_id, node.node_id());
        let (_, t0) = start(0);
        assert!(matches!(node.propose_in_term(0, first.term, &t0).await.unwrap(), Applied::Done { .. }));

        node.step_down(0).await.unwrap();
        let second = leadership_where(&node, 0, |l| l.serving && l.term > first.term).await;
        assert_eq!(second.leader_id, node.node_id());
        let applied_before = applied(&node)[0];
        let (_, t2) = start(2);
        let err = node.propose_in_term(0, first.term, &t2).await.unwrap_err();
        assert!(matches!(err, RaftError::NotLeader { shard: 0, leader: Some(1) }), "{err}");
        assert_eq!(applied(&node)[0], applied_before, "the refused proposal was not appended");
        assert!(matches!(node.propose_in_term(0, second.term, &t2).await.unwrap(), Applied::Done { .. }));
        assert_eq!(node.leadership(1).unwrap().term, other_term, "other shards keep their term");
        node.shutdown().await;

        // The new term was persisted: after a restart the shard leads in a later one.
        let node = Node::open_with(Arc::new(disk.clone()), config(), Arc::new(NoPeers)).await.unwrap();
        let third = leadership_where(&node, 0, |l| l.serving).await;
        assert!(third.term > second.term, "{third:?} after {second:?}");
        node.shutdown().await;
    }
}
