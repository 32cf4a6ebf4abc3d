//! Forwarding a Temporal call to the node that leads its shard.
//!
//! The frontend runs a call locally first; when it fails because another node leads
//! the shard (`Unavailable` carrying `hourglass-leader-node`, which the router
//! raises only before anything was applied), the same request goes to that node's
//! peer port, marked [`FORWARDED_HEADER`] so it is never forwarded again. A reply
//! naming yet another leader (the hint was stale) is followed once.

use std::future::Future;
use std::time::Duration;

use hourglass_proto::WorkflowServiceClient;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::peers::PeerChannels;
use crate::error::LEADER_HINT_HEADER;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(500);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// Marks a call forwarded by a peer (its value is the sender's node id).
pub const FORWARDED_HEADER: &str = "hourglass-forwarded-by";

/// `WorkflowService` clients of the peers, over their lazily connected channels.
pub struct Forwarder {
    node_id: u64,
    peers: std::sync::Arc<PeerChannels>,
    message_bytes_max: usize,
}

impl Forwarder {
    /// Forwards to the peers `peers` knows (those added later too).
    pub fn new(node_id: u64, peers: std::sync::Arc<PeerChannels>, message_bytes_max: usize) -> Self {
        Self { node_id, peers, message_bytes_max }
    }

    /// Every peer this node knows.
    pub fn peer_ids(&self) -> Vec<u64> {
        self.peers.ids()
    }

    fn client(&self, id: u64) -> Option<WorkflowServiceClient<Channel>> {
        let client = WorkflowServiceClient::new(self.peers.get(id)?)
            .max_decoding_message_size(self.message_bytes_max)
            .max_encoding_message_size(self.message_bytes_max)
            .accept_compressed(CompressionEncoding::Gzip);
        Some(client)
    }

    /// Sends `message` (with the caller's `metadata`) to node `leader` through
    /// `call`, following one newer leader hint.
    pub async fn call<Req, Resp, F, Fut>(&self, leader: u64, metadata: MetadataMap, message: Req, call: F) -> Result<Response<Resp>, Status>
    where
        Req: Clone,
        F: Fn(WorkflowServiceClient<Channel>, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let mut target = leader;
        let mut followed_hint = false;
        loop {
            let Some(client) = self.client(target) else {
                return Err(Status::unavailable(format!("node {target} leads the shard but is not a known peer of node {}", self.node_id)));
            };
            let mut request = Request::new(message.clone());
            *request.metadata_mut() = metadata.clone();
            if let Ok(value) = self.node_id.to_string().parse() {
                request.metadata_mut().insert(FORWARDED_HEADER, value);
            }
            match call(client, request).await {
                Err(status) if !followed_hint => match leader_hint(&status) {
                    Some(next) if next != target && next != self.node_id => {
                        followed_hint = true;
                        target = next;
                    }
                    _ => return Err(reachability(target, status)),
                },
                Err(status) => return Err(reachability(target, status)),
                Ok(mut response) => {
                    // How the peer encoded its reply is not how this node encodes it
                    // for its own client (which may not even accept gzip).
                    for header in ["grpc-encoding", "grpc-accept-encoding"] {
                        response.metadata_mut().remove(header);
                    }
                    return Ok(response);
                }
            }
        }
    }
}

/// A call that failed on its way to or from node `target` (the connection broke:
/// the node died or was cut off) is `Unavailable`, which clients retry; the
/// node's own answers pass unchanged.
fn reachability(target: u64, status: Status) -> Status {
    match status.code() {
        tonic::Code::Cancelled | tonic::Code::Unknown => {
            Status::unavailable(format!("forwarding to node {target} failed: {}", status.message()))
        }
        _ => status,
    }
}

/// A lazily connected channel to peer `id`'s peer port, for calls (not the Raft
/// streams, which have their own connections).
pub fn peer_channel(id: u64, addr: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("peer {id} address {addr:?}: {e}"))?
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        // A peer that stops answering (SIGSTOP, a cut link) fails the calls made to
        // it within a keep-alive timeout, instead of holding them until their
        // deadlines; the callers retry and find the new leader.
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

/// The leader a status names (`Unavailable` with `hourglass-leader-node`).
pub fn leader_hint(status: &Status) -> Option<u64> {
    if status.code() != tonic::Code::Unavailable {
        return None;
    }
    status.metadata().get(LEADER_HINT_HEADER)?.to_str().ok()?.parse().ok()
}

/// A request that a peer already forwarded here.
pub fn is_forwarded(metadata: &MetadataMap) -> bool {
    metadata.contains_key(FORWARDED_HEADER)
}
