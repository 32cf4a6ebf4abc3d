//! A cluster of Hourglass nodes in this process, on loopback (every node a full
//! `Server` with its own data directory and peer port), for cluster tests that need no
//! process kills; and [`eventually`], the bounded retry those tests wait with.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use hourglass_service::cluster::ClusterConfig;
use hourglass_service::server::{ServeConfig, Server, ServerError};

use crate::TEST_SHARDS;

/// Nodes of an in-process cluster, each with its data directory.
pub struct InProcessCluster {
    pub servers: Vec<Server>,
    _dirs: Vec<tempfile::TempDir>,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl InProcessCluster {
    /// Starts `nodes` nodes (ids 1..=nodes) that know each other, with data
    /// directories named after `prefix`.
    pub async fn start(nodes: u64, prefix: &str) -> Result<InProcessCluster, ServerError> {
        let io = |what: &'static str| move |source| ServerError::Io { what, path: std::env::temp_dir(), source };
        let peer_ports = (0..nodes).map(|_| free_port()).collect::<std::io::Result<Vec<u16>>>().map_err(io("finding a free port"))?;
        let peer_addr = |id: u64| format!("127.0.0.1:{}", peer_ports[(id - 1) as usize]);
        let mut starts = Vec::new();
        let mut dirs = Vec::new();
        for id in 1..=nodes {
            let dir = tempfile::Builder::new().prefix(prefix).tempdir().map_err(io("creating temp dir"))?;
            let peers: BTreeMap<u64, String> = (1..=nodes).filter(|&p| p != id).map(|p| (p, peer_addr(p))).collect();
            let config = ServeConfig {
                listen: "127.0.0.1:0".into(),
                shards: Some(TEST_SHARDS * 2),
                shutdown_grace: Duration::from_secs(2),
                cluster: Some(ClusterConfig { node_id: id, peer_listen: peer_addr(id), peers, join: false }),
                ..ServeConfig::new(dir.path())
            };
            dirs.push(dir);
            starts.push(tokio::spawn(Server::start(config)));
        }
        let mut servers = Vec::new();
        for start in starts {
            servers.push(start.await.expect("a node's start does not panic")?);
        }
        Ok(InProcessCluster { servers, _dirs: dirs })
    }

    /// The gRPC URL of node index `node` (0-based).
    pub fn url(&self, node: usize) -> String {
        format!("http://{}", self.servers[node].local_addr())
    }

    pub async fn stop(self) -> Result<(), ServerError> {
        for server in self.servers {
            server.shutdown().await?;
        }
        Ok(())
    }
}

/// Retries `f` until it answers `Ok(v)` with `done(&v)`, for at most 20 s; panics
/// naming `what` with the last answer otherwise.
pub async fn eventually<T: std::fmt::Debug, F, Fut>(what: &str, mut f: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = f().await;
        match got {
            Ok(v) if done(&v) => return v,
            other if Instant::now() > deadline => panic!("{what}: still {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
