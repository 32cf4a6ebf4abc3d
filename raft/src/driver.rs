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
    /// Snapshot now (if anything was applied since the last one) and rewrite the hard
    /// and conf state records, so older segments stop holding this shard's Raft state.
    Checkpoint(oneshot::Sender<Result<()>>),
    /// Every log position this shard's Raft state still needs.
    RaftLivePositions(oneshot::Sender<Vec<hourglass_storage::LogPosition>>),
    Shutdown(oneshot::Sender<()>),
}

pub(crate) struct DriverConfig {
    pub tick: Duration,
    pub snapshot_interval_entries: u64,
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
    pub next_proposal: u64,
    pub waiters: HashMap<u64, Reply>,
    /// The in-memory hard state has a commit index not yet written to the log.
    pub hard_state_dirty: bool,
    /// The last entry recovered from the log at open, while it is not applied yet.
    /// Replaying reads entries through the log's memory map; once replay is done the
    /// driver releases those pages ([`NodeLog::release_mapped_pages`]).
    pub replay_to: Option<u64>,
}

impl Driver {
    pub async fn run(mut self, mut inbox: mpsc::Receiver<ShardMsg>) {
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
            ShardMsg::Step(m) => {
                if let Err(e) = self.raw.step(*m) {
                    tracing::debug!(shard = self.shard, error = %e, "raft message not stepped");
                }
            }
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

    fn propose(&mut self, data: Vec<u8>, term: Option<u64>, reply: Reply) {
        let raft = &self.raw.raft;
        if term.is_some_and(|t| t != raft.term || raft.state != StateRole::Leader) {
            let leader = raft.leader_id;
            let _ = reply.send(Err(RaftError::NotLeader { shard: self.shard, leader: (leader != 0).then_some(leader) }));
            return;
        }
        let id = self.next_proposal;
        self.next_proposal += 1;
        let mut context = Vec::with_capacity(16);
        context.extend_from_slice(&self.incarnation.to_le_bytes());
        context.extend_from_slice(&id.to_le_bytes());
        match self.raw.propose(context, data) {
            Ok(()) => {
                self.waiters.insert(id, reply);
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

    /// Leaves the current term and campaigns again: for a one-member group the node
    /// wins at once, in a higher term, exactly as after a leader change.
    async fn step_down(&mut self) -> Result<()> {
        let voters = self.raw.raft.prs().conf().voters().ids().len();
        if voters != 1 {
            return Err(RaftError::Config(format!(
                "shard {}: step-down of a {voters}-member group needs leader transfer, which is not built yet",
                self.shard
            )));
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
        if !rd.snapshot().is_empty() {
            return Err(RaftError::Config(format!(
                "shard {}: installing a snapshot from a leader needs the node transport, which is not built yet",
                self.shard
            )));
        }
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
        let positions = self.log.append(records).await?;
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

    /// Applies committed entries in order; membership changes are applied last.
    async fn apply(&mut self, entries: Vec<Entry>) -> Result<()> {
        let Some(last) = entries.last().map(|e| e.index) else { return Ok(()) };
        let mut conf_changes = Vec::new();
        {
            let state_lock = self.state.clone();
            let mut state = state_lock.write();
            for e in &entries {
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
        for e in conf_changes {
            self.apply_conf_change(&e).await?;
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

    fn answer(&mut self, context: &Bytes, result: Result<Applied>) {
        if context.len() != 16 || context[..8] != self.incarnation.to_le_bytes() {
            return;
        }
        let id = u64::from_le_bytes(context[8..].try_into().expect("8-byte slice"));
        if let Some(w) = self.waiters.remove(&id) {
            let _ = w.send(result);
        }
    }

    async fn apply_conf_change(&mut self, e: &Entry) -> Result<()> {
        use protobuf::Message as _;
        let cs = if e.get_entry_type() == EntryType::EntryConfChangeV2 {
            let cc = ConfChangeV2::parse_from_bytes(&e.data).map_err(|err| RaftError::Config(err.to_string()))?;
            self.raw.apply_conf_change(&cc)?
        } else {
            let cc = ConfChange::parse_from_bytes(&e.data).map_err(|err| RaftError::Config(err.to_string()))?;
            self.raw.apply_conf_change(&cc)?
        };
        self.raw.mut_store().set_conf_state(cs);
        self.persist_conf_state().await
    }

    async fn persist_conf_state(&mut self) -> Result<()> {
        let cs = self.raw.store().conf_state_record();
        let positions = self.log.append(vec![Record { kind: RecordKind::ConfState, payload: cs.encode() }]).await?;
        self.raw.mut_store().conf_state_pos = positions.first().copied();
        Ok(())
    }

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
        let file = SnapshotFile { shard: self.shard, index, term, conf_state: self.raw.store().conf_state_record(), data };
        let dir = self.snapshots.clone();
        let shard = self.shard;
        // Read the file back (CRC-checked) before the log is compacted past it. The
        // data is not kept: `Storage::snapshot` loads it again if a follower needs it.
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
        self.raw.mut_store().apply_snapshot_meta(index, term);
        tracing::debug!(shard, index, "snapshot written, raft log compacted");
        Ok(())
    }

    async fn checkpoint(&mut self) -> Result<()> {
        self.snapshot().await?;
        self.persist_conf_state().await?;
        self.persist(Vec::new(), true).await
    }
}
