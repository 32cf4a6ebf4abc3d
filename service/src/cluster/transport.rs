//! The node-to-node transport of Raft messages.
//!
//! Each shard driver hands its messages to [`PeerTransport::send`] after persisting
//! what they depend on. Per destination node there are two lanes, each a bounded
//! queue drained by one task into one long-lived client stream
//! (`hourglass.peer.v1.Peer/Raft`) on its own connection:
//! - *control*: votes, heartbeats, appends and their answers;
//! - *bulk*: snapshots, so a large transfer never delays a heartbeat.
//!
//! The control lane batches whatever is queued (up to [`BATCH_MESSAGES_MAX`]) into
//! one frame, so many shards' messages share a write. The bulk lane sends each
//! snapshot on its own `Snapshot` call in [`SNAPSHOT_CHUNK_BYTES`] pieces, bounded by
//! [`SNAPSHOT_SEND_TIMEOUT`], and tells the shard how it went (`report_snapshot`). Nothing blocks a driver: a full queue
//! drops the message, and a lost connection drops what it carried; both are reported
//! to the shard (`report_unreachable`) and Raft retransmits. A lane reconnects with
//! backoff; HTTP/2 keep-alives end a connection to a peer that stopped answering, and
//! a stream that takes none of the frames waiting for it for [`STREAM_STALL_TIMEOUT`]
//! is dropped (a stuck call keep-alives do not see).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hourglass_proto::peer::peer_client::PeerClient;
use hourglass_proto::peer::{RaftBatch, ShardMessage, SnapshotChunk};
use hourglass_raft::transport::Transport;
use hourglass_raft::Node;
use hourglass_storage::records::ShardId;
use parking_lot::{Mutex, RwLock};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use super::peers::PeerChannels;

/// Messages queued per lane per peer before new ones are dropped.
pub const LANE_QUEUE_MAX: usize = 8192;
/// Most messages in one frame.
pub const BATCH_MESSAGES_MAX: usize = 512;
/// Snapshots are sent in pieces of this size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Longest a snapshot send may take before it counts as failed.
pub const SNAPSHOT_SEND_TIMEOUT: Duration = Duration::from_secs(120);
/// Snapshots queued per peer before new ones are dropped (and reported failed).
const SNAPSHOT_QUEUE_MAX: usize = 16;
/// Frames in flight on one stream before the lane waits.
const STREAM_FRAMES_MAX: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Keep-alive pings: a peer that does not answer within the timeout is cut off.
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(500);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a stream with frames waiting may take none of them. A stream that stalls
/// this long is stuck (seen under load: a call opened while the peer's port was
/// resetting connections, that neither failed nor carried a frame, so keep-alives
/// never ran and the lane fed the peer nothing for minutes): the lane drops it and
/// connects again.
const STREAM_STALL_TIMEOUT: Duration = Duration::from_secs(3);

type Queued = (ShardId, Message);

#[derive(Clone)]
struct Lanes {
    control: mpsc::Sender<Queued>,
    /// Snapshots only.
    bulk: mpsc::Sender<Queued>,
}

/// The `raft::Transport` of a node with peers.
pub struct PeerTransport {
    node_id: u64,
    /// Where the peers are (`--peers`, and members added at run time).
    peers: Arc<PeerChannels>,
    lanes: RwLock<BTreeMap<u64, Lanes>>,
    /// Set once the node is open; shards are told about lost messages through it.
    node: Arc<OnceLock<Node>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl PeerTransport {
    /// Starts the lanes to every known peer (they connect lazily, and keep
    /// retrying); a peer learnt later gets its lanes on the first message to it.
    pub fn start(node_id: u64, peers: Arc<PeerChannels>) -> Self {
        let transport =
            Self { node_id, peers, lanes: RwLock::new(BTreeMap::new()), node: Arc::new(OnceLock::new()), tasks: Mutex::new(Vec::new()) };
        for (peer, addr) in transport.peers.addresses() {
            transport.open_lanes(peer, addr);
        }
        transport
    }

    fn open_lanes(&self, peer: u64, addr: String) {
        let lane = Lane { from: self.node_id, peer, addr, node: self.node.clone() };
        let (control, control_rx) = mpsc::channel(LANE_QUEUE_MAX);
        let (bulk, bulk_rx) = mpsc::channel(SNAPSHOT_QUEUE_MAX);
        let mut tasks = self.tasks.lock();
        tasks.push(tokio::spawn(lane.clone().run_control(control_rx)));
        tasks.push(tokio::spawn(lane.run_snapshots(bulk_rx)));
        self.lanes.write().insert(peer, Lanes { control, bulk });
    }

    /// The lanes to `peer`, opened now if it is a peer learnt since the start.
    fn lanes_to(&self, peer: u64) -> Option<Lanes> {
        if let Some(lanes) = self.lanes.read().get(&peer) {
            return Some(lanes.clone());
        }
        let addr = self.peers.address(peer)?;
        if !self.lanes.read().contains_key(&peer) {
            tracing::info!(peer, %addr, "opening lanes to a peer learnt at run time");
            self.open_lanes(peer, addr);
        }
        self.lanes.read().get(&peer).cloned()
    }

    /// Connects the transport to its node, so lost messages are reported to shards.
    pub fn attach(&self, node: &Node) {
        let _ = self.node.set(node.clone());
    }

    /// Stops every lane (queued messages are dropped).
    pub fn stop(&self) {
        for task in self.tasks.lock().iter() {
            task.abort();
        }
    }
}

impl Transport for PeerTransport {
    fn send(&self, shard: ShardId, messages: Vec<Message>) {
        for m in messages {
            let Some(lanes) = self.lanes_to(m.to) else {
                tracing::warn!(shard, to = m.to, from = self.node_id, "raft message for a node that is not a known peer; dropped");
                report_unreachable(&self.node, shard, m.to);
                continue;
            };
            let to = m.to;
            if m.get_msg_type() == MessageType::MsgSnapshot {
                if lanes.bulk.try_send((shard, m)).is_err() {
                    report_snapshot(&self.node, shard, to, false);
                }
            } else if lanes.control.try_send((shard, m)).is_err() {
                report_unreachable(&self.node, shard, to);
            }
        }
    }
}

fn report_unreachable(node: &OnceLock<Node>, shard: ShardId, to: u64) {
    if let Some(node) = node.get() {
        node.report_unreachable(shard, to);
    }
}

fn report_snapshot(node: &OnceLock<Node>, shard: ShardId, to: u64, delivered: bool) {
    if let Some(node) = node.get() {
        node.report_snapshot(shard, to, delivered);
    }
}

#[derive(Clone)]
struct Lane {
    from: u64,
    peer: u64,
    addr: String,
    node: Arc<OnceLock<Node>>,
}

impl Lane {
    /// Sends each queued snapshot on its own call and reports the outcome.
    async fn run_snapshots(self, mut queue: mpsc::Receiver<Queued>) {
        while let Some((shard, m)) = queue.recv().await {
            let sent = tokio::time::timeout(SNAPSHOT_SEND_TIMEOUT, self.send_snapshot(shard, &m)).await;
            let outcome = sent.unwrap_or_else(|_| Err(format!("not delivered within {SNAPSHOT_SEND_TIMEOUT:?}")));
            match &outcome {
                Ok(bytes) => tracing::info!(shard, peer = self.peer, bytes, "snapshot delivered"),
                Err(e) => tracing::warn!(shard, peer = self.peer, error = %e, "snapshot not delivered"),
            }
            report_snapshot(&self.node, shard, self.peer, outcome.is_ok());
        }
    }

    async fn send_snapshot(&self, shard: ShardId, m: &Message) -> Result<usize, String> {
        let bytes = m.write_to_bytes().map_err(|e| format!("encoding: {e}"))?;
        let len = bytes.len();
        let from = self.from;
        let chunks: Vec<SnapshotChunk> =
            bytes.chunks(SNAPSHOT_CHUNK_BYTES).map(|piece| SnapshotChunk { from_node: from, shard, data: piece.to_vec() }).collect();
        let channel = self.connect().await.map_err(|e| format!("connecting: {e}"))?;
        let mut client = PeerClient::new(channel).max_encoding_message_size(usize::MAX);
        client.snapshot(tokio_stream::iter(chunks)).await.map_err(|e| e.to_string())?;
        Ok(len)
    }

    async fn run_control(self, mut queue: mpsc::Receiver<Queued>) {
        let mut backoff = Duration::from_millis(20);
        loop {
            match self.connect().await {
                Ok(channel) => {
                    backoff = Duration::from_millis(20);
                    if !self.pump(channel, &mut queue).await {
                        return;
                    }
                }
                Err(e) => tracing::debug!(peer = self.peer, error = %e, "cannot connect to peer"),
            }
            // While disconnected, what is queued is lost; the shards hear of it.
            let until = tokio::time::Instant::now() + backoff;
            while let Ok(Some((shard, _))) = tokio::time::timeout_at(until, queue.recv()).await {
                report_unreachable(&self.node, shard, self.peer);
            }
            backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
        }
    }

    async fn connect(&self) -> Result<Channel, tonic::transport::Error> {
        Endpoint::from_shared(format!("http://{}", self.addr))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect()
            .await
    }

    /// Streams queued messages until the stream fails (false: the transport is gone).
    async fn pump(&self, channel: Channel, queue: &mut mpsc::Receiver<Queued>) -> bool {
        let (frames, stream) = mpsc::channel::<RaftBatch>(STREAM_FRAMES_MAX);
        let mut client = PeerClient::new(channel).max_encoding_message_size(usize::MAX);
        let mut call = tokio::spawn(async move { client.raft(tokio_stream::wrappers::ReceiverStream::new(stream)).await });
        tracing::debug!(peer = self.peer, "stream to peer open");
        let mut progress = StreamProgress::new(Instant::now());
        let alive = loop {
            let first = tokio::select! {
                item = queue.recv() => item,
                ended = &mut call => {
                    tracing::debug!(peer = self.peer, outcome = ?ended.map(|r| r.map(|_| ())), "stream to peer ended");
                    break true;
                }
            };
            let Some(first) = first else { break false };
            let mut batch = vec![first];
            while batch.len() < BATCH_MESSAGES_MAX {
                match queue.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            let shards: Vec<ShardId> = batch.iter().map(|(s, _)| *s).collect();
            let buffered = frames.max_capacity() - frames.capacity();
            let stalled = progress.stalled(buffered, Instant::now());
            let sent = if stalled { None } else { tokio::time::timeout(STREAM_STALL_TIMEOUT, frames.send(self.frame(batch))).await.ok() };
            if !matches!(sent, Some(Ok(()))) {
                if sent.is_none() {
                    tracing::warn!(peer = self.peer, "stream to peer took no frame for {STREAM_STALL_TIMEOUT:?}; connecting again");
                }
                for shard in shards {
                    report_unreachable(&self.node, shard, self.peer);
                }
                break true;
            }
            progress.sent();
        };
        call.abort();
        alive
    }

    fn frame(&self, batch: Vec<Queued>) -> RaftBatch {
        let messages = batch
            .into_iter()
            .filter_map(|(shard, m)| match m.write_to_bytes() {
                Ok(bytes) => Some(ShardMessage { shard, message: bytes }),
                Err(e) => {
                    tracing::error!(shard, error = %e, "raft message does not encode; dropped");
                    None
                }
            })
            .collect();
        RaftBatch { from_node: self.from, messages }
    }
}

/// Whether a stream takes the frames handed to it: frames taken only ever grow
/// while the stream works.
struct StreamProgress {
    sent: usize,
    taken: usize,
    taken_at: Instant,
}

impl StreamProgress {
    fn new(now: Instant) -> Self {
        Self { sent: 0, taken: 0, taken_at: now }
    }

    fn sent(&mut self) {
        self.sent += 1;
    }

    /// `buffered`: frames handed over and not taken yet. True when some wait and
    /// none was taken for [`STREAM_STALL_TIMEOUT`].
    fn stalled(&mut self, buffered: usize, now: Instant) -> bool {
        let taken = self.sent.saturating_sub(buffered);
        if buffered == 0 || taken > self.taken {
            self.taken = taken;
            self.taken_at = now;
            return false;
        }
        now.saturating_duration_since(self.taken_at) >= STREAM_STALL_TIMEOUT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_that_takes_no_waiting_frame_for_the_timeout_is_stalled() {
        let t0 = Instant::now();
        let mut progress = StreamProgress::new(t0);
        progress.sent();
        progress.sent();
        assert!(!progress.stalled(2, t0), "just sent");
        let t1 = t0 + STREAM_STALL_TIMEOUT;
        assert!(progress.stalled(2, t1), "two frames waiting, none taken for the timeout");
        assert!(!progress.stalled(1, t1), "one taken since: the stream works");
        let t2 = t1 + STREAM_STALL_TIMEOUT;
        assert!(!progress.stalled(0, t2), "nothing waiting is never a stall");
        progress.sent();
        assert!(!progress.stalled(1, t2 + STREAM_STALL_TIMEOUT / 2), "not yet");
        assert!(progress.stalled(1, t2 + STREAM_STALL_TIMEOUT), "now");
    }
}
