//! The per-shard driver: owns one raft-rs `RawNode` and runs its loop —
//! tick / step / propose, then handle `Ready`: persist entries and hard state to the
//! node log (awaiting durability, which the log batches with every other shard's
//! appends), only then send messages, apply committed entries to the shard state
//! machine and answer the proposals they carry.
//!
//! Time enters only as ticks; the state machine gets time from the transitions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hourglass_storage::log::{NodeLog, Record};
use hourglass_storage::records::{RecordKind, ShardId};
use hourglass_storage::state::{Applied, ShardState, Transition};
use parking_lot::RwLock;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message};
use raft::Storage;
use raft::{RawNode, StateRole};
use tokio::sync::{mpsc, oneshot};

use crate::error::{RaftError, Result};
use crate::log_storage::{entry_to_record, ShardLog};
use crate::snapshot::{SnapshotDir, SnapshotFile};
use crate::status::{Leadership, ShardStatus};
use crate::transport::Transport;

pub(crate) type Reply = oneshot::Sender<Result<Applied>>;

pub(crate) enum ShardMsg {
    Propose {
        data: Vec<u8>,
        /// Refuse (`NotLeader`) unless this node leads in exactly this term: work
        /// begun under one term never lands under the next.
        term: Option<u64>,
        reply: Reply,
    },
    /// Ends this node's current term as leader and starts a new one (a leader change
    /// as seen by everything above Raft). Single-member groups only, for now.
    StepDown(oneshot::Sender<Result<()>>),
    Step(Box<Message>),
    /// Confirm leadership with a quorum and wait until the read index is applied.
    ReadIndex(crate::read_index::ReadReply),
    /// Propose a membership change (this node must lead).
    ChangeMembership(crate::membership::MembershipChange, crate::membership::MembershipReply),
    /// Messages to this node were lost (the transport's connection failed).
    Unreachable(u64),
    /// The snapshot sent to node `to` was delivered, or not.
    ReportSnapshot {
        to: u64,
        delivered: bool,
    },
    /// Hand leadership to this node (a no-op unless this node leads).
    TransferLeader(u64),
    /// Snapshot now (if anything was applied since the last one) and rewrite the hard
    /// and conf state records, so older segments stop holding this shard's Raft state.
    Checkpoint(oneshot::Sender<Result<()>>),
    /// Every log position this shard's Raft state still needs.
    RaftLivePositions(oneshot::Sender<Vec<hourglass_storage::LogPosition>>),
    Shutdown(oneshot::Sender<()>),
}

/// Marks the shard stopped when dropped, unless it already is (the driver task
/// ended by unwinding).
struct StoppedOnDrop(Arc<ShardStatus>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        if self.0.stopped().is_none() {
            tracing::error!("shard driver ended without stopping (it panicked); the shard stops serving on this node");
            self.0.set_stopped("the shard driver panicked".into());
        }
    }
}

pub(crate) struct DriverConfig {
    pub tick: Duration,
    pub snapshot_interval_entries: u64,
    /// Largest follower snapshot accepted from a leader.
    pub snapshot_bytes_max: u64,
    /// Most messages handled before the next `Ready` (bounds proposal batching).
    pub batch_messages_max: usize,
}

pub(crate) struct Driver {
    pub shard: ShardId,
    pub raw: RawNode<ShardLog>,
    pub log: NodeLog,
    pub state: Arc<RwLock<ShardState>>,
    pub snapshots: Arc<SnapshotDir>,
    pub transport: Arc<dyn Transport>,
    pub status: Arc<ShardStatus>,
    pub config: DriverConfig,
    /// Distinguishes this process's proposals from ones replayed after a restart.
    pub incarnation: u64,
    /// The group's only voter is this node.
    pub single_member: bool,
    pub next_proposal: u64,
    pub waiters: HashMap<u64, Reply>,
    /// The log index each waiting proposal's entry was appended at (index → id): when
    /// that index is applied with another entry, the proposal was overwritten by a
    /// new leader and is answered `NotLeader` (it was never applied).
    pub waiting_at_index: std::collections::BTreeMap<u64, u64>,
    /// Callers of membership changes proposed here, by proposal id.
    pub membership_waiters: HashMap<u64, crate::membership::MembershipReply>,
    /// Linearizable reads in progress ([`crate::read_index`]).
    pub reads: crate::read_index::PendingReads,
    /// The in-memory hard state has a commit index not yet written to the log.
    pub hard_state_dirty: bool,
    /// The last entry recovered from the log at open, while it is not applied yet.
    /// Replaying reads entries through the log's memory map; once replay is done the
    /// driver releases those pages ([`NodeLog::release_mapped_pages`]).
    pub replay_to: Option<u64>,
    /// A leader's snapshot checked when its message arrived, for `on_ready` to
    /// install if raft-rs accepts it (see `install`).
    pub pending_install: Option<crate::install::PendingInstall>,
    /// Ticks since the driver started (paces the replication report).
    pub ticks: u64,
}

/// Every this many ticks a leader reports (debug) the followers it has not caught up.
const LAG_REPORT_TICKS: u64 = 50;

impl Driver {
    pub async fn run(mut self, mut inbox: mpsc::Receiver<ShardMsg>) {
        // If raft-rs panics (it does on some storage errors) the task unwinds: the
        // shard must not keep publishing its last leadership as if it still served.
        let _stopped_on_unwind = StoppedOnDrop(self.status.clone());
        let mut ticker = tokio::time::interval(self.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            let keep_going = tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(msg) => self.handle(msg).await,
                    None => Ok(false),
                },
                _ = ticker.tick() => self.on_tick().await.map(|_| true),
            };
            let keep_going = match keep_going {
                Ok(true) => self.drain(&mut inbox).await,
                other => other,
            };
            match keep_going {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
            if let Err(e) = self.on_ready().await {
                break Err(e);
            }
        };
        self.stop(outcome, &mut inbox).await;
    }

    /// Handles what else is queued without waiting, so concurrent proposals share one Ready.
    async fn drain(&mut self, inbox: &mut mpsc::Receiver<ShardMsg>) -> Result<bool> {
        for _ in 0..self.config.batch_messages_max {
            match inbox.try_recv() {
                Ok(msg) => {
                    if !self.handle(msg).await? {
                        return Ok(false);
                    }
                }
                Err(_) => break,
            }
        }
        Ok(true)
    }

    async fn stop(&mut self, outcome: Result<()>, inbox: &mut mpsc::Receiver<ShardMsg>) {
        let reason = match &outcome {
            Ok(()) => "shard shut down".to_string(),
            Err(e) => {
                tracing::error!(shard = self.shard, error = %e, "shard driver stopped");
                e.to_string()
            }
        };
        if outcome.is_ok() && self.hard_state_dirty {
            let _ = self.persist(Vec::new(), true).await;
        }
        self.status.set_stopped(reason.clone());
        for (_, w) in self.waiters.drain() {
            let _ = w.send(Err(RaftError::Stopped { shard: self.shard, reason: reason.clone() }));
        }
        for (_, w) in self.membership_waiters.drain() {
            let _ = w.send(Err(RaftError::Stopped { shard: self.shard, reason: reason.clone() }));
        }
        inbox.close();
        while let Ok(msg) = inbox.try_recv() {
            match msg {
                ShardMsg::Propose { reply, .. } => {
                    let _ = reply.send(Err(RaftError::Stopped { shard: self.shard, reason: reason.clone() }));
                }
                ShardMsg::Shutdown(done) => {
                    let _ = done.send(());
                }
                _ => {}
            }
        }
    }

    async fn handle(&mut self, msg: ShardMsg) -> Result<bool> {
        match msg {
            ShardMsg::Propose { data, term, reply } => self.propose(data, term, reply),
            ShardMsg::StepDown(reply) => {
                let outcome = self.step_down().await;
                let _ = reply.send(outcome);
            }
            ShardMsg::Step(m) => self.step(*m),
            ShardMsg::ReadIndex(reply) => self.read_index(reply),
            ShardMsg::ChangeMembership(change, reply) => self.change_membership(change, reply),
            ShardMsg::Unreachable(to) => self.raw.report_unreachable(to),
            ShardMsg::ReportSnapshot { to, delivered } => {
                let status = if delivered { raft::SnapshotStatus::Finish } else { raft::SnapshotStatus::Failure };
                self.raw.report_snapshot(to, status);
            }
            ShardMsg::TransferLeader(to) => self.transfer_leader_to_caught_up(to),
            ShardMsg::Checkpoint(reply) => {
                let _ = reply.send(self.checkpoint().await);
            }
            ShardMsg::RaftLivePositions(reply) => {
                let _ = reply.send(self.raw.store().live_positions().collect());
            }
            ShardMsg::Shutdown(done) => {
                // Finish what is in flight first: the caller's loop runs on_ready once more.
                self.on_ready().await?;
                if self.hard_state_dirty {
                    self.persist(Vec::new(), true).await?;
                }
                let _ = done.send(());
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn step(&mut self, m: Message) {
        if m.get_msg_type() == raft::eraftpb::MessageType::MsgPropose {
            // Proposals are never forwarded between nodes (see `propose`): one from a
            // peer is a duplicate or a stray, and appending it could apply it twice.
            tracing::debug!(shard = self.shard, from = m.from, "forwarded proposal dropped");
            return;
        }
        if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
            // Checked before raft-rs sees it: once raft-rs accepts a snapshot, failing
            // to install it would have to stop the shard. A bad one is dropped (the
            // leader tries again after its transport reports the send).
            match self.check_snapshot(m.get_snapshot()) {
                Ok(pending) => self.pending_install = Some(pending),
                Err(e) => {
                    tracing::error!(shard = self.shard, from = m.from, error = %e, "snapshot from the leader refused");
                    return;
                }
            }
        }
        if let Err(e) = self.raw.step(m) {
            tracing::debug!(shard = self.shard, error = %e, "raft message not stepped");
        }
    }

    fn propose(&mut self, data: Vec<u8>, term: Option<u64>, reply: Reply) {
        let raft = &self.raw.raft;
        // Only a leader proposes: raft-rs would forward a follower's proposal to the
        // leader (MsgProp), and a network that delivers it twice would append it twice.
        if raft.state != StateRole::Leader || term.is_some_and(|t| t != raft.term) {
            let leader = raft.leader_id;
            let _ = reply.send(Err(RaftError::NotLeader { shard: self.shard, leader: (leader != 0).then_some(leader) }));
            return;
        }
        let id = self.next_proposal;
        self.next_proposal += 1;
        match self.raw.propose(self.proposal_context(id), data) {
            Ok(()) => {
                self.waiters.insert(id, reply);
                self.waiting_at_index.insert(self.raw.raft.raft_log.last_index(), id);
            }
            Err(raft::Error::ProposalDropped) => {
                let leader = self.raw.raft.leader_id;
                let _ = reply.send(Err(RaftError::NotLeader { shard: self.shard, leader: (leader != 0).then_some(leader) }));
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    /// Leaves the current term. A one-member group campaigns again and wins at once,
    /// in a higher term, exactly as after a leader change; a leader with peers hands
    /// leadership to its most up-to-date follower.
    async fn step_down(&mut self) -> Result<()> {
        if !self.single_member {
            return self.transfer_to_best_follower();
        }
        // A one-member group wins its election at once, which raft-rs allows only
        // with every entry persisted: finish the Ready in progress first.
        self.on_ready().await?;
        let log = &self.raw.raft.raft_log;
        if log.persisted != log.last_index() {
            return Err(RaftError::Config(format!(
                "shard {}: entries up to {} are not persisted yet ({}); step down later",
                self.shard,
                log.last_index(),
                log.persisted
            )));
        }
        let term = self.raw.raft.term;
        self.raw.raft.become_follower(term + 1, raft::INVALID_ID);
        self.publish_leadership();
        self.raw.campaign()?;
        Ok(())
    }

    /// Hands leadership to `to` if this node leads and `to` is a member that has
    /// answered recently and holds every committed entry. A transfer to a node that
    /// cannot take over would stop proposals until raft-rs abandons it (an election
    /// timeout), so it is not started.
    fn transfer_leader_to_caught_up(&mut self, to: u64) {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader || to == raft.id {
            return;
        }
        let committed = raft.raft_log.committed;
        let ready = raft.prs().get(to).is_some_and(|p| p.recent_active && p.matched >= committed);
        if ready {
            self.raw.transfer_leader(to);
        } else {
            tracing::debug!(shard = self.shard, to, "leadership not transferred: the node is not caught up or not answering");
        }
    }

    fn transfer_to_best_follower(&mut self) -> Result<()> {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader {
            return Err(RaftError::NotLeader { shard: self.shard, leader: (raft.leader_id != 0).then_some(raft.leader_id) });
        }
        let me = raft.id;
        let best = raft.prs().iter().filter(|(id, _)| **id != me).max_by_key(|(_, p)| p.matched).map(|(id, _)| *id);
        match best {
            Some(to) => {
                self.raw.transfer_leader(to);
                Ok(())
            }
            None => Err(RaftError::Config(format!("shard {}: no follower to hand leadership to", self.shard))),
        }
    }

    /// A leader's view of each follower that lacks committed entries (debug): what a
    /// replication that does not advance looks like from here.
    fn report_lagging_followers(&self) {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader || !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let committed = raft.raft_log.committed;
        for (id, p) in raft.prs().iter().filter(|(id, p)| **id != raft.id && p.matched < committed) {
            tracing::debug!(
                shard = self.shard,
                term = raft.term,
                follower = id,
                matched = p.matched,
                committed,
                next = p.next_idx,
                state = ?p.state,
                paused = p.paused,
                recently_active = p.recent_active,
                pending_snapshot = p.pending_snapshot,
                "follower behind"
            );
        }
    }

    /// Publishes who leads, in which term, and whether this node may serve yet: it
    /// leads and its applied index is in its own term (the entry it appended on
    /// winning is applied, so everything committed before the term is too).
    fn publish_leadership(&self) {
        let raft = &self.raw.raft;
        let applied = raft.raft_log.applied;
        let serving = raft.state == StateRole::Leader && raft.raft_log.term(applied).ok() == Some(raft.term);
        self.status.set_leadership(Leadership { leader_id: raft.leader_id, term: raft.term, serving });
    }

    async fn on_tick(&mut self) -> Result<()> {
        self.raw.tick();
        self.ticks += 1;
        if self.ticks.is_multiple_of(LAG_REPORT_TICKS) {
            self.report_lagging_followers();
        }
        if self.hard_state_dirty && !self.raw.has_ready() {
            // Bound how far the durable commit index lags the applied one.
            self.persist(Vec::new(), true).await?;
        }
        Ok(())
    }

    pub async fn on_ready(&mut self) -> Result<()> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut rd = self.raw.ready();
        self.send(rd.take_messages());
        // raft-rs: a snapshot is applied before the Ready's entries are persisted
        // (it carries none committed after it), and it is durable before `advance`.
        if !rd.snapshot().is_empty() {
            self.install_snapshot(rd.snapshot()).await?;
        }
        self.pending_install = None;
        self.confirm_reads(rd.read_states());
        self.apply(rd.take_committed_entries()).await?;
        let mut must_persist = !rd.entries().is_empty();
        if let Some(hs) = rd.hs() {
            let old = self.raw.store().hard_state();
            must_persist |= hs.term != old.term || hs.vote != old.vote;
            let hs = hs.clone();
            self.raw.mut_store().set_hard_state(hs);
            self.hard_state_dirty = true;
        }
        if must_persist {
            let entries = rd.take_entries();
            self.persist(entries, self.hard_state_dirty).await?;
        }
        self.send(rd.take_persisted_messages());
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            let mut hs = self.raw.store().hard_state().clone();
            hs.commit = commit;
            self.raw.mut_store().set_hard_state(hs);
            self.hard_state_dirty = true;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries()).await?;
        self.raw.advance_apply();
        self.finish_reads();
        self.publish_leadership();
        self.maybe_snapshot().await
    }

    fn send(&self, messages: Vec<Message>) {
        if !messages.is_empty() {
            self.transport.send(self.shard, messages);
        }
    }

    /// Appends `entries` (and the hard state) durably; returns once fsynced.
    async fn persist(&mut self, entries: Vec<Entry>, with_hard_state: bool) -> Result<()> {
        let mut records: Vec<Record> =
            entries.iter().map(|e| Record { kind: RecordKind::RaftEntry, payload: entry_to_record(self.shard, e).encode() }).collect();
        if with_hard_state {
            let hs = self.raw.store().hard_state_record();
            records.push(Record { kind: RecordKind::HardState, payload: hs.encode() });
        }
        if records.is_empty() {
            return Ok(());
        }
        let positions = self.append_in_pieces(records).await?;
        assert_eq!(positions.len(), entries.len() + with_hard_state as usize, "one position per appended record");
        let store = self.raw.mut_store();
        for (e, pos) in entries.into_iter().zip(&positions) {
            store.record_appended(e, *pos).map_err(RaftError::Config)?;
        }
        if with_hard_state {
            store.hard_state_pos = positions.last().copied();
            self.hard_state_dirty = false;
        }
        Ok(())
    }

    /// Appends `records` in order, as several appends when together they exceed what
    /// one append may hold (a segment): a follower catching up can receive far more
    /// in one `Ready` than that. Returns once all are durable. The hard state, if
    /// any, is last, so it is never durable before the entries it may commit.
    async fn append_in_pieces(&self, records: Vec<Record>) -> Result<Vec<hourglass_storage::LogPosition>> {
        let bytes_max = self.log.config().append_bytes_max() as usize;
        let mut positions = Vec::with_capacity(records.len());
        let mut piece = Vec::new();
        let mut piece_bytes = 0;
        for record in records {
            let bytes = hourglass_storage::log::frame::frame_len(record.payload.len());
            if !piece.is_empty() && piece_bytes + bytes > bytes_max {
                positions.extend(self.log.append(std::mem::take(&mut piece)).await?);
                piece_bytes = 0;
            }
            piece_bytes += bytes;
            piece.push(record);
        }
        positions.extend(self.log.append(piece).await?);
        Ok(positions)
    }

    /// Applies committed entries in order; membership changes are applied last.
    async fn apply(&mut self, entries: Vec<Entry>) -> Result<()> {
        let Some(last) = entries.last().map(|e| e.index) else { return Ok(()) };
        let mut conf_changes = Vec::new();
        {
            let state_lock = self.state.clone();
            let mut state = state_lock.write();
            for e in &entries {
                self.resolve_overwritten(e);
                match e.get_entry_type() {
                    EntryType::EntryNormal if e.data.is_empty() => state.skip(e.index)?,
                    EntryType::EntryNormal => {
                        let result = self.apply_transition(&mut state, e);
                        self.answer(&e.context, result);
                    }
                    EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                        state.skip(e.index)?;
                        conf_changes.push(e.clone());
                    }
                }
            }
        }
        // Until the membership changes are applied, the state is ahead of the
        // membership: no follower snapshot is built in between.
        self.raw.mut_store().conf_change_pending = !conf_changes.is_empty();
        let mut added_member = false;
        for e in conf_changes {
            added_member |= self.apply_conf_change(&e).await?;
            self.answer_membership(&e.context, Ok(()));
        }
        self.raw.mut_store().conf_change_pending = false;
        if added_member {
            // A node added to the group has no membership of its own (it joined with
            // none, and the initial membership is not a log entry): it must start from
            // a snapshot, which carries the membership, not from entry 1. Compacting
            // here makes every replica (whichever leads next) send it one.
            self.snapshot().await?;
            tracing::info!(shard = self.shard, index = last, "snapshot taken for a new member");
        }
        self.raw.mut_store().release_applied(last);
        if self.replay_to.is_some_and(|to| last >= to) {
            self.replay_to = None;
            self.log.release_mapped_pages();
            tracing::debug!(shard = self.shard, applied = last, "log replay done; mapped log pages released");
        }
        Ok(())
    }

    fn apply_transition(&self, state: &mut ShardState, e: &Entry) -> Result<Applied> {
        let pos = self
            .raw
            .store()
            .position(e.index)
            .ok_or_else(|| RaftError::Config(format!("shard {}: committed entry {} has no log position", self.shard, e.index)))?;
        match Transition::decode(e.data.clone()) {
            Ok(t) => Ok(state.apply(e.index, pos, &t)?),
            Err(source) => {
                state.skip(e.index)?;
                Err(hourglass_storage::StorageError::Decode { what: "transition", source }.into())
            }
        }
    }

    /// The context of proposal `id`: this process's incarnation and the id.
    pub(crate) fn proposal_context(&self, id: u64) -> Vec<u8> {
        let mut context = Vec::with_capacity(16);
        context.extend_from_slice(&self.incarnation.to_le_bytes());
        context.extend_from_slice(&id.to_le_bytes());
        context
    }

    /// The id of a proposal this process made, from its entry's context.
    pub(crate) fn own_proposal(&self, context: &[u8]) -> Option<u64> {
        if context.len() != 16 || context[..8] != self.incarnation.to_le_bytes() {
            return None;
        }
        Some(u64::from_le_bytes(context[8..].try_into().ok()?))
    }

    /// Answers the proposal that was waiting at `e`'s index if `e` is not it: its
    /// entry was overwritten (a new leader's log won) and will never be applied.
    fn resolve_overwritten(&mut self, e: &Entry) {
        let Some(id) = self.waiting_at_index.remove(&e.index) else { return };
        if self.own_proposal(&e.context) == Some(id) {
            return;
        }
        if let Some(reply) = self.waiters.remove(&id) {
            let leader = self.raw.raft.leader_id;
            let _ = reply.send(Err(RaftError::NotLeader { shard: self.shard, leader: (leader != 0).then_some(leader) }));
        }
    }

    fn answer(&mut self, context: &Bytes, result: Result<Applied>) {
        if let Some(id) = self.own_proposal(context) {
            if let Some(w) = self.waiters.remove(&id) {
                let _ = w.send(result);
            }
        }
    }

    /// Applies one membership change; `true` when it added a node to the group.
    async fn apply_conf_change(&mut self, e: &Entry) -> Result<bool> {
        use protobuf::Message as _;
        let before: Vec<u64> = {
            let cs = self.raw.store().conf_state();
            cs.voters.iter().chain(cs.learners.iter()).copied().collect()
        };
        let cs = if e.get_entry_type() == EntryType::EntryConfChangeV2 {
            let cc = ConfChangeV2::parse_from_bytes(&e.data).map_err(|err| RaftError::Config(err.to_string()))?;
            self.raw.apply_conf_change(&cc)?
        } else {
            let cc = ConfChange::parse_from_bytes(&e.data).map_err(|err| RaftError::Config(err.to_string()))?;
            self.raw.apply_conf_change(&cc)?
        };
        self.status.set_members(&cs);
        self.single_member = cs.voters == [self.raw.raft.id] && cs.learners.is_empty();
        let added = cs.voters.iter().chain(cs.learners.iter()).any(|id| !before.contains(id));
        self.raw.mut_store().set_conf_state(cs);
        self.persist_conf_state().await?;
        Ok(added)
    }

    pub(crate) async fn persist_conf_state(&mut self) -> Result<()> {
        let cs = self.raw.store().conf_state_record();
        let positions = self.log.append(vec![Record { kind: RecordKind::ConfState, payload: cs.encode() }]).await?;
        self.raw.mut_store().conf_state_pos = positions.first().copied();
        Ok(())
    }

    /// Snapshots (and compacts the Raft log) every `snapshot_interval_entries`
    /// applied entries, with or without peers: a follower behind the compacted log
    /// is sent a follower snapshot (`follower_snapshot`) instead of entries.
    async fn maybe_snapshot(&mut self) -> Result<()> {
        let applied = self.state.read().applied_index();
        if applied.saturating_sub(self.raw.store().snapshot_index()) >= self.config.snapshot_interval_entries {
            self.snapshot().await?;
        }
        Ok(())
    }

    /// Writes a snapshot of the applied state and compacts the Raft log up to it.
    async fn snapshot(&mut self) -> Result<()> {
        let (index, data) = {
            let state = self.state.read();
            (state.applied_index(), state.snapshot())
        };
        if index == 0 {
            return Ok(());
        }
        let term = self.raw.store().term(index)?;
        let store = self.raw.store();
        let file = SnapshotFile { shard: self.shard, index, term, log_floor: store.log_floor, conf_state: store.conf_state_record(), data };
        self.write_snapshot_file(file).await?;
        self.raw.mut_store().apply_snapshot_meta(index, term);
        tracing::debug!(shard = self.shard, index, "snapshot written, raft log compacted");
        Ok(())
    }

    /// Writes `file` durably (temp file, rename) and reads it back, CRC-checked,
    /// before anything relies on it (the log compacted past it, or an install).
    pub(crate) async fn write_snapshot_file(&self, file: SnapshotFile) -> Result<()> {
        let dir = self.snapshots.clone();
        let (shard, index, term) = (file.shard, file.index, file.term);
        // The data is not kept: a follower that needs a snapshot gets one built afresh.
        let loaded = tokio::task::spawn_blocking(move || {
            dir.write(&file)?;
            dir.load_newest(shard).map(|s| s.map(|s| (s.index, s.term)))
        })
        .await
        .map_err(|e| RaftError::Stopped { shard, reason: format!("snapshot task: {e}") })??;
        if loaded != Some((index, term)) {
            return Err(RaftError::Snapshot {
                file: crate::snapshot::file_name(shard, index),
                detail: format!("read back after writing, the newest snapshot is {loaded:?}"),
            });
        }
        Ok(())
    }

    async fn checkpoint(&mut self) -> Result<()> {
        self.snapshot().await?;
        self.persist_conf_state().await?;
        self.persist(Vec::new(), true).await
    }
}
