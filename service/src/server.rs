//! The server: opens the node in a data directory, builds the engine, loads the
//! namespace registry and the task backlogs, starts the timer services and serves
//! the Temporal `WorkflowService` over gRPC. Used by `hourglass serve` and, in
//! process, by the end-to-end tests.
//!
//! **The data directory.** `node.meta` records what must never change for a data
//! directory (the shard count), written on the first start; `LOCK` is held (flock)
//! while a server runs, so two servers never share one directory; `log/` and
//! `snapshots/` belong to the node.
//!
//! **Shutdown.** Stop accepting connections, let in-flight calls finish for at most
//! [`ServeConfig::shutdown_grace`] (long polls may run up to a minute otherwise), then
//! stop the timer services and the node (its in-flight proposals are committed first).

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hourglass_proto::{OperatorServiceServer, WorkflowServiceServer};
use hourglass_raft::{Node, NodeConfig, RaftError};
use hourglass_storage::disk::IoMode;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;

use crate::cluster::child_steps::{PeerShardClients, ShardStepService};
use crate::cluster::forward::Forwarder;
use crate::cluster::peer_server::PeerService;
use crate::cluster::peers::PeerChannels;
use crate::cluster::task_server::TaskService;
use crate::cluster::transport::PeerTransport;
use crate::cluster::{members, placement, relay, ClusterConfig};
use crate::engine::{Engine, EngineConfig, SystemClock};
use crate::error::ServiceError;
use crate::frontend::operator::Operator;
use crate::frontend::Frontend;
use crate::namespaces::Namespaces;

/// Shard count of a data directory created without an explicit one.
pub const DEFAULT_SHARDS: u32 = 4;
/// Most shards a data directory may have.
pub const SHARDS_MAX: u32 = 1024;
/// Largest gRPC message accepted or sent (core decodes up to 128 MiB).
pub const GRPC_MESSAGE_BYTES_MAX: usize = 128 << 20;
/// Largest node-to-node gRPC message (a frame of Raft messages; snapshots come in
/// 1 MiB chunks).
pub const PEER_MESSAGE_BYTES_MAX: usize = 256 << 20;
/// The file recording a data directory's fixed settings.
pub const META_FILE: &str = "node.meta";
/// The file locked while a server uses the data directory.
pub const LOCK_FILE: &str = "LOCK";
const META_FORMAT: u32 = 1;

/// What a server needs to start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// Shard count. Used when the data directory is new; otherwise it must match the
    /// stored count, or be `None`.
    pub shards: Option<u32>,
    /// How long shutdown waits for in-flight calls before cutting them off.
    pub shutdown_grace: Duration,
    /// The node log's write path (io_uring when available, or pwrite).
    pub io_mode: IoMode,
    /// This node's cluster (`None`: a one-member cluster, the embedded default).
    pub cluster: Option<ClusterConfig>,
    /// Snapshot each shard (and compact its Raft log) after this many applied
    /// entries (`None`: the node's default, 50 000).
    pub snapshot_interval_entries: Option<u64>,
    /// A test seam for a failing device: while the flag is set, every fsync of the
    /// node log fails (`None`, the default: the disk as it is).
    pub sync_faults: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// The limits and defaults the workflow rules apply (e.g. when a workflow task
    /// suggests continue-as-new).
    pub engine: EngineConfig,
}

impl ServeConfig {
    /// Defaults for `data_dir`: listen on 127.0.0.1:7233, shard count from the data
    /// directory (4 if new), 10 s shutdown grace.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: "127.0.0.1:7233".into(),
            data_dir: data_dir.into(),
            shards: None,
            shutdown_grace: Duration::from_secs(10),
            io_mode: IoMode::Auto,
            cluster: None,
            snapshot_interval_entries: None,
            sync_faults: None,
            engine: EngineConfig::default(),
        }
    }
}

/// The disk of `config`'s node log (under `dir`), failing syncs on demand when the
/// config asks for it.
fn open_disk(config: &ServeConfig, dir: &std::path::Path) -> Result<Arc<dyn hourglass_storage::disk::Disk>, ServerError> {
    let disk = hourglass_storage::disk::open_disk(config.io_mode).map_err(|source| ServerError::Io {
        what: "opening the disk of",
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(match &config.sync_faults {
        Some(flag) => Arc::new(hourglass_storage::disk::switched::SyncFaultDisk::new(disk, flag.clone())),
        None => disk,
    })
}

/// How often the node log's mapped pages are dropped from the process (see
/// [`spawn_page_release`]).
pub const PAGE_RELEASE_INTERVAL: Duration = Duration::from_secs(10);

/// Every [`PAGE_RELEASE_INTERVAL`], drops the node log's pages from this process's
/// memory map (`madvise(MADV_DONTNEED)`; they stay in the page cache). History reads
/// fault pages of the active segment in, and without this they would stay counted in
/// the server's RSS until the segment rolls (64 MiB of log). Cheap: one `madvise` per
/// segment; a read after it refaults from the page cache.
fn spawn_page_release(node: Node) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PAGE_RELEASE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            node.log().release_mapped_pages();
        }
    })
}

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("data directory {0} is in use by another hourglass server (its LOCK file is held)")]
    DataDirLocked(PathBuf),
    #[error("{path} is not a valid node meta file: {detail}")]
    BadMeta { path: PathBuf, detail: String },
    #[error("data directory {dir} was created with {stored} shards; --shards {requested} conflicts (the shard count of a data directory cannot change)")]
    ShardConflict { dir: PathBuf, stored: u32, requested: u32 },
    #[error("--shards must be in 1..={SHARDS_MAX}, got {0}")]
    BadShards(u32),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("opening the node: {0}")]
    Node(#[from] RaftError),
    #[error("starting the service: {0}")]
    Service(#[from] ServiceError),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cluster configuration: {0}")]
    Cluster(String),
    #[error("data directory {dir} belongs to node {stored}; this node is {requested} (a data directory keeps its node id)")]
    NodeIdConflict { dir: PathBuf, stored: u64, requested: u64 },
    #[error("the gRPC server task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What a node of a cluster runs besides a single node's server.
struct ClusterParts {
    transport: Arc<PeerTransport>,
    peer_addr: SocketAddr,
    peer_grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    stop_peers: Option<oneshot::Sender<()>>,
    placement: JoinHandle<()>,
    /// The peers (told when this node leaves).
    peers: Arc<PeerChannels>,
    /// Leadership was handed to peers (shutdown began).
    handed_off: bool,
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    cluster: Option<ClusterParts>,
    engine: Engine,
    namespaces: Namespaces,
    grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    stop: Option<oneshot::Sender<()>>,
    /// What `grpc.health.v1.Health` answers (NOT_SERVING once shutdown begins).
    health: tonic_health::server::HealthReporter,
    background: Vec<JoinHandle<()>>,
    grace: Duration,
    _lock: DirLock,
}

impl Server {
    /// Opens the data directory and starts serving. Returns once the listener is
    /// bound and every shard has a leader.
    pub async fn start(config: ServeConfig) -> Result<Server, ServerError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|source| ServerError::Io { what: "creating data directory", path: dir.clone(), source })?;
        let lock = DirLock::acquire(dir)?;
        let shards = resolve_shards(dir, config.shards)?;
        // Bind before opening the node: a taken port fails fast and touches nothing.
        let listener = tokio::net::TcpListener::bind(config.listen.as_str())
            .await
            .map_err(|source| ServerError::Bind { addr: config.listen.clone(), source })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.listen.clone(), source })?;

        check_node_id(dir, config.cluster.as_ref().map_or(1, |c| c.node_id))?;
        let peer_listener = match &config.cluster {
            Some(c) => Some(
                tokio::net::TcpListener::bind(c.peer_listen.as_str())
                    .await
                    .map_err(|source| ServerError::Bind { addr: c.peer_listen.clone(), source })?,
            ),
            None => None,
        };

        let mut node_config = NodeConfig::new(dir, shards);
        node_config.log.io_mode = config.io_mode;
        if let Some(entries) = config.snapshot_interval_entries {
            node_config.snapshot_interval_entries = entries;
        }
        // The peers this node knows: `--peers`, and later the members added at run
        // time (`cluster::members`).
        let channels = match &config.cluster {
            Some(c) => Some(Arc::new(PeerChannels::new(c.node_id, &c.peers).map_err(ServerError::Cluster)?)),
            None => None,
        };
        let (node, transport) = match (&config.cluster, &channels) {
            (None, _) | (_, None) => {
                (Node::open_with(open_disk(&config, dir)?, node_config, Arc::new(hourglass_raft::transport::NoPeers)).await?, None)
            }
            (Some(c), Some(channels)) => {
                node_config.node_id = c.node_id;
                // A node joining an existing cluster starts with no membership and
                // waits to be added (`hourglass cluster add-node`).
                node_config.initial_voters = if c.join { Vec::new() } else { c.members() };
                let disk = open_disk(&config, dir)?;
                let transport = Arc::new(PeerTransport::start(c.node_id, channels.clone()));
                let node = Node::open_with(disk, node_config, transport.clone()).await?;
                transport.attach(&node);
                (node, Some(transport))
            }
        };
        let engine = Engine::new(node, config.engine.clone(), Arc::new(SystemClock));
        let forwarder = match (&config.cluster, &channels) {
            (Some(c), Some(channels)) => {
                // Matching across nodes (tasks go to their queue's home node), and
                // child-workflow steps on the node leading the shard they change.
                relay::install(&engine, channels);
                engine.set_remote_shards(Arc::new(PeerShardClients::new(channels.clone())));
                members::follow(&engine, channels.clone());
                let forwarder = Arc::new(Forwarder::new(c.node_id, channels.clone(), GRPC_MESSAGE_BYTES_MAX));
                // Scheduled workflows started on the node leading their shard.
                engine.set_remote_workflows(Arc::new(crate::cluster::schedule_starts::ForwardedWorkflows::new(forwarder.clone())));
                Some(forwarder)
            }
            _ => None,
        };
        // Each shard gets an owner (its backlog in matching, its timer service) once
        // this node serves as its leader. A single node waits for the registry's
        // owner; a cluster node loads its replica (leaders are elected only once the
        // members talk, over the peer port started next).
        let namespaces = match Namespaces::open(&engine).await {
            Ok(v) => v,
            Err(e) => {
                engine.shutdown();
                engine.node().shutdown().await;
                return Err(e.into());
            }
        };
        let mut cluster_parts = None;
        if let (Some(listener), Some(transport), Some(peers)) = (peer_listener, transport, channels) {
            let peer_addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: String::new(), source })?;
            let (stop_peers, peers_stopped) = oneshot::channel::<()>();
            let placement = placement::Placement::new(engine.node().clone());
            let frontend = Frontend { engine: engine.clone(), namespaces: namespaces.clone(), forwarder: forwarder.clone() };
            let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            let peer_grpc = tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(
                        hourglass_proto::peer::peer_server::PeerServer::new(PeerService::new(
                            engine.clone(),
                            placement.clone(),
                            peers.clone(),
                        ))
                        .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX),
                    )
                    .add_service(hourglass_proto::peer::peer_tasks_server::PeerTasksServer::new(TaskService::new(engine.clone())))
                    .add_service(hourglass_proto::peer::peer_shards_server::PeerShardsServer::new(ShardStepService::new(engine.clone())))
                    .add_service(workflow_service(frontend))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = peers_stopped.await;
                    }),
            );
            let placement = placement::spawn_spreading(placement);
            tracing::info!(%peer_addr, node_id = engine.node().node_id(), "serving peers");
            cluster_parts =
                Some(ClusterParts { transport, peer_addr, peer_grpc, stop_peers: Some(stop_peers), placement, peers, handed_off: false });
        }
        let background = vec![spawn_page_release(engine.node().clone())];

        let frontend = Frontend { engine: engine.clone(), namespaces: namespaces.clone(), forwarder };
        let operator = Operator { frontend: frontend.clone() };
        let service = workflow_service(frontend);
        // grpc.health.v1.Health: the WorkflowService (and the server as a whole, "")
        // is SERVING until shutdown begins.
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<WorkflowServiceServer<Frontend>>().await;
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let grpc = tokio::spawn(
            tonic::transport::Server::builder()
                .layer(tower::util::MapResponseLayer::new(oversized_request_status))
                .add_service(service)
                .add_service(operator_service(operator))
                // The `temporal` CLI sends its health check gzip-compressed.
                .add_service(
                    health_service
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .send_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        );
        tracing::info!(%addr, data_dir = %dir.display(), shards, "hourglass serving the Temporal API");
        Ok(Server {
            addr,
            cluster: cluster_parts,
            engine,
            namespaces,
            grpc,
            stop: Some(stop),
            health,
            background,
            grace: config.shutdown_grace,
            _lock: lock,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address this node serves its peers on (`None` for a single node).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.cluster.as_ref().map(|c| c.peer_addr)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn namespaces(&self) -> &Namespaces {
        &self.namespaces
    }

    /// Serves until `shutdown` resolves (or the gRPC server fails), then shuts down.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        tokio::select! {
            () = shutdown => {
                tracing::info!("shutdown requested");
                self.shutdown().await
            }
            result = &mut self.grpc => {
                tracing::error!("the gRPC server stopped on its own");
                self.stop_background().await;
                result??;
                Ok(())
            }
        }
    }

    /// Graceful shutdown: a cluster node first hands the shards it leads to a peer
    /// (so the cluster keeps serving while this node drains); then stop accepting,
    /// drain in-flight calls (bounded by the grace period), stop the timer services,
    /// then the node.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.health.set_not_serving::<WorkflowServiceServer<Frontend>>().await;
        self.health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        self.hand_off_leadership().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Long polls for tasks end now (empty answers), so in-flight calls can drain.
        self.engine.matching().close();
        self.engine.query_dispatch().close();
        let served = match tokio::time::timeout(self.grace, &mut self.grpc).await {
            Ok(result) => result.map_err(ServerError::from).and_then(|r| r.map_err(ServerError::from)),
            Err(_) => {
                tracing::warn!(
                    grace_ms = self.grace.as_millis() as u64,
                    "in-flight calls did not finish in the grace period; cutting them off"
                );
                self.grpc.abort();
                Ok(())
            }
        };
        self.stop_background().await;
        tracing::info!(addr = %self.addr, "hourglass stopped");
        served
    }

    /// A cluster node hands the shards it leads to a peer before it stops, so
    /// clients wait for one leader change instead of an election timeout.
    async fn hand_off_leadership(&mut self) {
        let Some(cluster) = &mut self.cluster else { return };
        if std::mem::replace(&mut cluster.handed_off, true) {
            return;
        }
        cluster.placement.abort();
        let still = placement::hand_off(self.engine.node(), &cluster.peers, HAND_OFF_WAIT).await;
        if still.is_empty() {
            tracing::info!("leadership handed to peers");
        } else {
            tracing::warn!(shards = ?still, "shards still led here after the hand-off wait; peers elect after this node stops");
        }
    }

    async fn stop_background(&mut self) {
        self.hand_off_leadership().await;
        for task in self.background.drain(..) {
            task.abort();
            let _ = task.await;
        }
        // Owners (and their timer services) first, so nothing proposes into a
        // stopping node.
        self.engine.shutdown();
        self.engine.node().shutdown().await;
        if let Some(mut cluster) = self.cluster.take() {
            if let Some(stop) = cluster.stop_peers.take() {
                let _ = stop.send(());
            }
            cluster.transport.stop();
            if tokio::time::timeout(Duration::from_secs(1), &mut cluster.peer_grpc).await.is_err() {
                cluster.peer_grpc.abort();
            }
        }
    }
}

/// How long a cluster node stopping gracefully waits for its shards to move to peers.
pub const HAND_OFF_WAIT: Duration = Duration::from_secs(3);

fn operator_service(operator: Operator) -> OperatorServiceServer<Operator> {
    OperatorServiceServer::new(operator)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
}

fn workflow_service(frontend: Frontend) -> WorkflowServiceServer<Frontend> {
    WorkflowServiceServer::new(frontend)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
}

/// Starts a server with `config` and serves until `shutdown` resolves.
pub async fn run(config: ServeConfig, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    Server::start(config).await?.run_until(shutdown).await
}

/// The shard count to open `dir` with: the stored one, or (new directory) the
/// requested one (default [`DEFAULT_SHARDS`]), which is then stored.
pub fn resolve_shards(dir: &Path, requested: Option<u32>) -> Result<u32, ServerError> {
    if let Some(n) = requested {
        if n == 0 || n > SHARDS_MAX {
            return Err(ServerError::BadShards(n));
        }
    }
    let path = dir.join(META_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored = parse_meta(&path, &text)?.shards;
            match requested {
                Some(n) if n != stored => Err(ServerError::ShardConflict { dir: dir.to_path_buf(), stored, requested: n }),
                _ => Ok(stored),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let shards = requested.unwrap_or(DEFAULT_SHARDS);
            write_meta(dir, Meta { shards, node_id: None })?;
            tracing::info!(dir = %dir.display(), shards, "new data directory");
            Ok(shards)
        }
        Err(source) => Err(ServerError::Io { what: "reading", path, source }),
    }
}

/// A data directory's fixed settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    shards: u32,
    /// Written on the first start that names one (absent: node 1).
    node_id: Option<u64>,
}

fn parse_meta(path: &Path, text: &str) -> Result<Meta, ServerError> {
    let bad = |detail: String| ServerError::BadMeta { path: path.to_path_buf(), detail };
    let (mut format, mut shards, mut node_id) = (None, None, None);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (key, value) = line.split_once('=').ok_or_else(|| bad(format!("line {line:?} is not key = value")))?;
        let value: u64 = value.trim().parse().map_err(|_| bad(format!("{} is not a number", value.trim())))?;
        match key.trim() {
            "format" => format = Some(value),
            "shards" => shards = Some(value),
            "node_id" if value > 0 => node_id = Some(value),
            other => return Err(bad(format!("unknown key {other:?} (or node_id 0)"))),
        }
    }
    if format != Some(u64::from(META_FORMAT)) {
        return Err(bad(format!("format is {format:?}, this build reads format {META_FORMAT}")));
    }
    match shards {
        Some(n) if (1..=u64::from(SHARDS_MAX)).contains(&n) => Ok(Meta { shards: n as u32, node_id }),
        other => Err(bad(format!("shards is {other:?}, expected 1..={SHARDS_MAX}"))),
    }
}

/// Records the node id in the meta file on the first start that has one; refuses
/// a different one later (a node's Raft identity is in its log).
fn check_node_id(dir: &Path, node_id: u64) -> Result<(), ServerError> {
    let path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| ServerError::Io { what: "reading", path: path.clone(), source })?;
    let meta = parse_meta(&path, &text)?;
    match meta.node_id {
        Some(stored) if stored != node_id => Err(ServerError::NodeIdConflict { dir: dir.to_path_buf(), stored, requested: node_id }),
        Some(_) => Ok(()),
        None => write_meta(dir, Meta { node_id: Some(node_id), ..meta }),
    }
}

/// Writes the meta file atomically (temp file, fsync, rename, fsync the directory).
fn write_meta(dir: &Path, meta: Meta) -> Result<(), ServerError> {
    let path = dir.join(META_FILE);
    let tmp = dir.join(format!("{META_FILE}.tmp"));
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ServerError {
        let path = path.to_path_buf();
        move |source| ServerError::Io { what, path, source }
    }
    let mut text = format!("# Hourglass data directory settings; never edit.\nformat = {META_FORMAT}\nshards = {}\n", meta.shards);
    if let Some(id) = meta.node_id {
        text.push_str(&format!("node_id = {id}\n"));
    }
    let mut file = File::create(&tmp).map_err(io("creating", &tmp))?;
    file.write_all(text.as_bytes()).map_err(io("writing", &tmp))?;
    file.sync_all().map_err(io("syncing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("renaming into place", &path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("syncing", dir))?;
    Ok(())
}

/// An exclusive `flock` on `<data dir>/LOCK`, released when dropped (or the process dies).
struct DirLock {
    _file: File,
}

impl DirLock {
    fn acquire(dir: &Path) -> Result<Self, ServerError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|source| ServerError::Io {
            what: "opening",
            path: path.clone(),
            source,
        })?;
        // SAFETY: flock on a file descriptor this function owns; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) => ServerError::DataDirLocked(dir.to_path_buf()),
                _ => ServerError::Io { what: "locking", path, source: err },
            });
        }
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_count_is_stored_on_first_start_and_enforced_after() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve_shards(dir.path(), Some(3)).unwrap(), 3);
        assert_eq!(resolve_shards(dir.path(), None).unwrap(), 3);
        assert_eq!(resolve_shards(dir.path(), Some(3)).unwrap(), 3);
        assert!(matches!(resolve_shards(dir.path(), Some(4)), Err(ServerError::ShardConflict { stored: 3, requested: 4, .. })));
        let fresh = tempfile::tempdir().unwrap();
        assert_eq!(resolve_shards(fresh.path(), None).unwrap(), DEFAULT_SHARDS);
        assert!(matches!(resolve_shards(fresh.path(), Some(0)), Err(ServerError::BadShards(0))));
    }

    #[test]
    fn a_bad_meta_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["shards = 4\n", "format = 1\nshards = x\n", "format = 1\nshards = 0\n", "format = 1\ncolor = 2\nshards = 1\n", "junk"]
        {
            std::fs::write(dir.path().join(META_FILE), text).unwrap();
            assert!(matches!(resolve_shards(dir.path(), None), Err(ServerError::BadMeta { .. })), "{text:?}");
        }
    }

    #[test]
    fn a_data_dir_is_locked_while_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DirLock::acquire(dir.path()).unwrap();
        assert!(matches!(DirLock::acquire(dir.path()), Err(ServerError::DataDirLocked(_))));
        drop(lock);
        DirLock::acquire(dir.path()).unwrap();
    }
}

/// tonic refuses a request over `max_decoding_message_size` with `OUT_OF_RANGE`
/// ("Error, decoded message length too large: found N bytes, the limit is: M bytes").
/// Temporal answers `RESOURCE_EXHAUSTED` "grpc: received message larger than max (N vs.
/// M)", and SDK cores match exactly that to fail the workflow task with
/// GRPC_MESSAGE_TOO_LARGE instead of resending the same oversized request. The status
/// of a refused request travels in the response headers (trailers-only), so it is
/// rewritten there.
fn oversized_request_status<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    if headers.get("grpc-status").and_then(|v| v.to_str().ok()) != Some("11") {
        return response;
    }
    let Some(message) = headers.get("grpc-message").and_then(|v| v.to_str().ok()) else { return response };
    let Some(sizes) = parse_too_large(&percent_decode(message)) else { return response };
    let rewritten = format!("grpc: received message larger than max ({} vs. {})", sizes.0, sizes.1);
    if let Ok(value) = http::HeaderValue::from_str(&rewritten) {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        headers.insert("grpc-message", value);
    }
    response
}

/// (found, limit) from tonic's "decoded message length too large" message.
fn parse_too_large(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix("Error, decoded message length too large: found ")?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}

/// grpc-message is percent-encoded (RFC 3986 style, for bytes outside printable ASCII).
fn percent_decode(message: &str) -> String {
    let bytes = message.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod oversized_tests {
    use super::*;

    #[test]
    fn tonics_out_of_range_becomes_temporals_resource_exhausted() {
        let response = http::Response::builder()
            .header("grpc-status", "11")
            .header("grpc-message", "Error, decoded message length too large: found 134217829 bytes, the limit is: 134217728 bytes")
            .body(())
            .expect("valid response");
        let response = oversized_request_status(response);
        assert_eq!(response.headers()["grpc-status"], "8");
        assert_eq!(response.headers()["grpc-message"], "grpc: received message larger than max (134217829 vs. 134217728)");
    }

    #[test]
    fn other_statuses_are_untouched() {
        let response = http::Response::builder().header("grpc-status", "11").header("grpc-message", "other").body(()).expect("valid");
        assert_eq!(oversized_request_status(response).headers()["grpc-status"], "11");
        assert_eq!(percent_decode("a%20b%zz"), "a b%zz");
    }
}
