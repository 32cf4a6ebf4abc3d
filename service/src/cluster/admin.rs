//! Membership administration (`hourglass cluster add-node | remove-node`): one
//! membership change per shard, sent to any member's peer port (it forwards each to
//! the shard's leader).
//!
//! Adding a node: it must be started first with `--join`; its peer address is recorded
//! in the cluster's replicated member addresses (`--address`; not needed for a node
//! named in every member's `--peers`); it is added to every shard as a learner,
//! catches up (by
//! snapshot when the leaders' logs no longer reach back far enough), and is
//! promoted to voter shard by shard once it has every committed entry. A node whose
//! data directory was lost is removed, then added again this way.

use std::time::{Duration, Instant};

use hourglass_proto::peer::change_membership_request::Change;
use hourglass_proto::peer::peer_client::PeerClient;
use hourglass_proto::peer::{ChangeMembershipRequest, SetMemberAddressRequest, StatusRequest};
use tonic::transport::Channel;

/// How long `add_node` waits for the new node to catch up on each shard.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(120);

async fn connect(peer: &str) -> Result<PeerClient<Channel>, String> {
    PeerClient::connect(format!("http://{peer}")).await.map_err(|e| format!("connecting to {peer}: {e}"))
}

/// The shards of the cluster, with their voters and learners, as `peer` sees them.
async fn shards(client: &mut PeerClient<Channel>) -> Result<Vec<(u32, Vec<u64>, Vec<u64>)>, String> {
    let status = client.status(StatusRequest {}).await.map_err(|e| format!("status: {}", e.message()))?.into_inner();
    Ok(status.shards.into_iter().map(|s| (s.shard, s.voters, s.learners)).collect())
}

async fn change(client: &mut PeerClient<Channel>, shard: u32, node_id: u64, change: Change) -> Result<(), tonic::Status> {
    let request = ChangeMembershipRequest { node_id, change: change as i32, shard };
    client.change_membership(request).await.map(|_| ())
}

/// Retries `change` while it is refused for a reason that passes (not caught up, a
/// change in flight, no leader yet), until `wait` is over.
async fn change_until_done(client: &mut PeerClient<Channel>, shard: u32, node_id: u64, what: Change, wait: Duration) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    loop {
        match change(client, shard, node_id, what).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < deadline && matches!(e.code(), tonic::Code::FailedPrecondition | tonic::Code::Unavailable) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("shard {shard}: {:?} of node {node_id}: {}", what, e.message())),
        }
    }
}

/// Records `address` as node `node_id`'s peer address, retrying while the record's
/// shard has no leader (at most 10 s).
async fn set_address(client: &mut PeerClient<Channel>, node_id: u64, address: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let request = SetMemberAddressRequest { node_id, address: address.to_string() };
        match client.set_member_address(request).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline && e.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("recording node {node_id}'s address {address}: {}", e.message())),
        }
    }
}

/// Adds node `node_id` to every shard (learner, then voter once caught up), first
/// recording its peer `address` when given (a node the members' `--peers` do not
/// name).
pub async fn add_node(peer: &str, node_id: u64, address: Option<&str>) -> Result<(), String> {
    let mut client = connect(peer).await?;
    if let Some(address) = address {
        set_address(&mut client, node_id, address).await?;
    }
    for (shard, voters, learners) in shards(&mut client).await? {
        if voters.contains(&node_id) {
            continue;
        }
        if !learners.contains(&node_id) {
            change_until_done(&mut client, shard, node_id, Change::AddLearner, Duration::from_secs(10)).await?;
        }
        change_until_done(&mut client, shard, node_id, Change::Promote, CATCH_UP_WAIT).await?;
    }
    Ok(())
}

/// Removes node `node_id` from every shard.
pub async fn remove_node(peer: &str, node_id: u64) -> Result<(), String> {
    let mut client = connect(peer).await?;
    for (shard, voters, learners) in shards(&mut client).await? {
        if voters.contains(&node_id) || learners.contains(&node_id) {
            change_until_done(&mut client, shard, node_id, Change::Remove, Duration::from_secs(10)).await?;
        }
    }
    Ok(())
}
