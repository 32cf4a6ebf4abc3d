//! The receiving end of the Raft streams: `hourglass.peer.v1.Peer`.

use hourglass_proto::peer::peer_server::Peer;

use hourglass_proto::peer::change_membership_request::Change;
use hourglass_proto::peer::peer_client::PeerClient;
use hourglass_proto::peer::{
    ChangeMembershipRequest, ChangeMembershipResponse, LeavingRequest, LeavingResponse, RaftBatch, RaftStreamEnd, SetMemberAddressRequest,
    SetMemberAddressResponse, ShardStatus, SnapshotChunk, SnapshotReceived, StatusRequest, StatusResponse, TransferLeaderRequest,
    TransferLeaderResponse,
};
use hourglass_raft::MembershipChange;

use crate::cluster::forward::FORWARDED_HEADER;
use crate::cluster::peers::PeerChannels;
use crate::cluster::placement::Placement;
use crate::engine::Engine;
use hourglass_raft::{Node, RaftError};
use protobuf::Message as _;
use raft::eraftpb::Message;
use tonic::{Request, Response, Status, Streaming};

/// Largest snapshot message accepted (the sender's `snapshot_bytes_max` plus framing).
pub const SNAPSHOT_MESSAGE_BYTES_MAX: usize = 2 << 30;

/// Hands every received message to its shard's group on this node.
pub struct PeerService {
    engine: Engine,
    node: Node,
    placement: std::sync::Arc<Placement>,
    /// The peers (admin calls are forwarded to a leader).
    peers: std::sync::Arc<PeerChannels>,
}

impl PeerService {
    pub fn new(engine: Engine, placement: std::sync::Arc<Placement>, peers: std::sync::Arc<PeerChannels>) -> Self {
        Self { node: engine.node().clone(), engine, placement, peers }
    }

    /// A client of node `leader`'s peer service, for an admin call this node
    /// forwards to a shard's leader.
    async fn leader_client(&self, leader: u64, shard: u32) -> Result<PeerClient<tonic::transport::Channel>, Status> {
        match self.peers.get(leader) {
            Some(channel) => Ok(PeerClient::new(channel)),
            None => Err(Status::unavailable(format!("shard {shard}: no leader known here (hint {leader})"))),
        }
    }

    /// `message` marked as forwarded by this node (the leader does not forward it on).
    fn forwarded<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Ok(value) = self.node.node_id().to_string().parse() {
            request.metadata_mut().insert(FORWARDED_HEADER, value);
        }
        request
    }

    fn deliver(&self, batch: RaftBatch) -> Result<(), Status> {
        for m in batch.messages {
            match self.step(batch.from_node, m.shard, &m.message) {
                Ok(()) => {}
                // A busy shard drops the message; Raft retransmits.
                Err(e @ (RaftError::Overloaded { .. } | RaftError::Stopped { .. })) => {
                    tracing::debug!(from = batch.from_node, shard = m.shard, error = %e, "raft message dropped");
                }
                Err(e) => return Err(Status::invalid_argument(e.to_string())),
            }
        }
        Ok(())
    }

    /// Decodes one message from node `from` and hands it to `shard`'s group.
    fn step(&self, from: u64, shard: u32, bytes: &[u8]) -> Result<(), RaftError> {
        let invalid = |detail: String| RaftError::Config(format!("shard {shard}: {detail}"));
        let message = Message::parse_from_bytes(bytes).map_err(|e| invalid(format!("raft message does not decode: {e}")))?;
        if message.to != self.node.node_id() || message.from != from {
            return Err(invalid(format!(
                "raft message from {} to {} arrived at node {} on a stream from node {from}",
                message.from,
                message.to,
                self.node.node_id()
            )));
        }
        self.node.step(shard, message)
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn raft(&self, request: Request<Streaming<RaftBatch>>) -> Result<Response<RaftStreamEnd>, Status> {
        let mut stream = request.into_inner();
        while let Some(batch) = stream.message().await? {
            self.deliver(batch)?;
        }
        Ok(Response::new(RaftStreamEnd {}))
    }

    async fn snapshot(&self, request: Request<Streaming<SnapshotChunk>>) -> Result<Response<SnapshotReceived>, Status> {
        let mut stream = request.into_inner();
        let mut bytes = Vec::new();
        let mut origin = None;
        while let Some(chunk) = stream.message().await? {
            if *origin.get_or_insert((chunk.from_node, chunk.shard)) != (chunk.from_node, chunk.shard) {
                return Err(Status::invalid_argument("a snapshot's chunks must all come from one node for one shard"));
            }
            if bytes.len() + chunk.data.len() > SNAPSHOT_MESSAGE_BYTES_MAX {
                return Err(Status::resource_exhausted(format!("snapshot larger than {SNAPSHOT_MESSAGE_BYTES_MAX} bytes")));
            }
            bytes.extend_from_slice(&chunk.data);
        }
        let Some((from, shard)) = origin else { return Err(Status::invalid_argument("an empty snapshot")) };
        match self.step(from, shard, &bytes) {
            Ok(()) => Ok(Response::new(SnapshotReceived {})),
            Err(e @ (RaftError::Overloaded { .. } | RaftError::Stopped { .. })) => Err(Status::unavailable(e.to_string())),
            Err(e) => Err(Status::invalid_argument(e.to_string())),
        }
    }

    async fn change_membership(&self, request: Request<ChangeMembershipRequest>) -> Result<Response<ChangeMembershipResponse>, Status> {
        let forwarded = request.metadata().contains_key(FORWARDED_HEADER);
        let request = request.into_inner();
        let change = match request.change() {
            Change::AddLearner => MembershipChange::AddLearner(request.node_id),
            Change::Promote => MembershipChange::Promote(request.node_id),
            Change::Remove => MembershipChange::Remove(request.node_id),
            Change::Unspecified => return Err(Status::invalid_argument("change is required")),
        };
        if request.node_id == 0 {
            return Err(Status::invalid_argument("node_id must not be 0"));
        }
        match self.node.change_membership(request.shard, change).await {
            Ok(()) => Ok(Response::new(ChangeMembershipResponse {})),
            Err(RaftError::NotLeader { leader: Some(leader), .. }) if !forwarded && leader != self.node.node_id() => {
                self.leader_client(leader, request.shard).await?.change_membership(self.forwarded(request)).await
            }
            Err(e @ RaftError::NotLeader { .. }) => Err(Status::unavailable(e.to_string())),
            Err(e @ RaftError::Membership { .. }) => Err(Status::failed_precondition(e.to_string())),
            Err(e @ RaftError::NoSuchShard { .. }) => Err(Status::invalid_argument(e.to_string())),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn transfer_leader(&self, request: Request<TransferLeaderRequest>) -> Result<Response<TransferLeaderResponse>, Status> {
        let forwarded = request.metadata().contains_key(FORWARDED_HEADER);
        let TransferLeaderRequest { shard, to_node } = request.into_inner();
        let leader = self.node.leadership(shard).map_err(|e| Status::invalid_argument(e.to_string()))?.leader_id;
        if leader == self.node.node_id() {
            self.node.transfer_leader(shard, to_node).await.map_err(|e| Status::unavailable(e.to_string()))?;
            return Ok(Response::new(TransferLeaderResponse {}));
        }
        if forwarded {
            return Err(Status::unavailable(format!("shard {shard}: this node does not lead it (hint {leader})")));
        }
        let request = self.forwarded(TransferLeaderRequest { shard, to_node });
        self.leader_client(leader, shard).await?.transfer_leader(request).await
    }

    async fn leaving(&self, request: Request<LeavingRequest>) -> Result<Response<LeavingResponse>, Status> {
        let LeavingRequest { node_id } = request.into_inner();
        if node_id == 0 || node_id == self.node.node_id() {
            return Err(Status::invalid_argument(format!("node {node_id} cannot be leaving this node's cluster")));
        }
        tracing::info!(node = node_id, "peer is leaving; no shard leadership goes to it");
        self.placement.mark_leaving(node_id);
        Ok(Response::new(LeavingResponse {}))
    }

    async fn set_member_address(&self, request: Request<SetMemberAddressRequest>) -> Result<Response<SetMemberAddressResponse>, Status> {
        let forwarded = request.metadata().contains_key(FORWARDED_HEADER);
        let request = request.into_inner();
        match crate::cluster::members::set_address(&self.engine, request.node_id, &request.address).await {
            Ok(()) => {}
            Err(crate::error::ServiceError::NotLeader { shard, leader_hint: Some(leader) })
                if !forwarded && leader != self.node.node_id() =>
            {
                self.leader_client(leader, shard).await?.set_member_address(self.forwarded(request.clone())).await?;
            }
            Err(e) => return Err(e.into()),
        }
        // This node can reach the new member at once (the others within a refresh).
        if let Err(e) = self.peers.learn(request.node_id, &request.address) {
            return Err(Status::invalid_argument(e));
        }
        Ok(Response::new(SetMemberAddressResponse {}))
    }

    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let node = &self.node;
        let mut shards = Vec::with_capacity(node.shard_count() as usize);
        for shard in 0..node.shard_count() {
            let status = |e: RaftError| Status::internal(e.to_string());
            let leadership = node.leadership(shard).map_err(status)?;
            shards.push(ShardStatus {
                shard,
                leader_id: leadership.leader_id,
                term: leadership.term,
                serving: leadership.serving && leadership.leader_id == node.node_id(),
                voters: node.voters(shard).map_err(status)?,
                learners: node.learners(shard).map_err(status)?,
                applied_index: node.read(shard, |s| s.applied_index()).map_err(status)?,
            });
        }
        Ok(Response::new(StatusResponse { node_id: node.node_id(), shards }))
    }
}
