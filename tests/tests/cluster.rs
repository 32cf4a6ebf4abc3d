//! A three-node cluster of real server *processes* on loopback, real SDK worker
//! processes and clients, and the failures a cluster exists to survive.
//!
//! **The cluster.** Three `durability_child cluster` processes (the server `hourglass
//! serve --node-id N --peer-listen .. --peers ..` runs), each with its own data
//! directory. Node-to-node traffic goes through fault-injecting TCP proxies in this
//! process, one per ordered pair of nodes, so the test can cut a node off from its
//! peers while clients still reach it. One SDK worker process polls each node; the
//! test's clients start workflows on every node.
//!
//! **The faults**, each aimed at the node leading shard 0 (found with the peer
//! `Status` RPC; placement spreads leaders, so it leads a third of the shards and
//! dispatches the task queues homed there), while workflows (durable timers, activities that are quick, slow, or
//! fail twice first) run and a background starter keeps starting more:
//! 1. `kill -9` of the leader, restarted 500 ms later on the same data directory;
//! 2. `kill -9` of the new leader, restarted at once;
//! 3. SIGSTOP of the leader for longer than an election timeout, then SIGCONT;
//! 4. SIGTERM of the leader (it hands its shards to a peer first), restarted;
//! 5. the leader cut off from both peers (its proxies drop every connection) for
//!    longer than an election timeout, then healed.
//!
//! A third test fails one node's disk (every fsync errors from a signal on): that
//! node stops serving and the other two carry on.
//!
//! After each fault the test records how long the cluster took to acknowledge the
//! next StartWorkflowExecution (reported, never asserted). At the end every workflow
//! whose start was acknowledged must complete exactly once with its expected
//! result: the typed SDK result, a history with dense event ids and exactly one
//! WorkflowExecutionCompleted, last, and the workflow id's current run being the
//! acknowledged run. Starts that failed may have happened or not; one that exists
//! must pass the same checks. Every wait is bounded.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hourglass_proto::peer::peer_client::PeerClient;
use hourglass_proto::peer::{StatusRequest, StatusResponse};
use hourglass_tests::TEST_SHARDS;
use temporalio_client::tonic::{self, IntoRequest};
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_protos::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::protos::temporal::api::enums::v1::EventType;
use temporalio_protos::protos::temporal::api::workflowservice::v1::{DescribeNamespaceRequest, DescribeWorkflowExecutionRequest};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

mod process;
#[path = "../src/bin/durability_child/shared.rs"]
#[allow(dead_code)] // the worker runs in the worker processes here
mod shared;
mod support;

use process::{start_worker_process, ChildProcess, StartError};
use shared::{Durable, Kind};
use support::{event_type, full_history, is_close};

const NODES: u64 = 3;
/// Longer than an election timeout (10 ticks of 100 ms, randomized up to twice that).
const OUTAGE: Duration = Duration::from_secs(3);
const WAIT_RPC: Duration = Duration::from_secs(10);
const WAIT_ALL_CLOSED: Duration = Duration::from_secs(120);
const WAIT_LEADER: Duration = Duration::from_secs(20);

// -------------------------------------------------------------- the TCP proxies

/// A fault-injecting TCP proxy: forwards connections to `upstream` unless cut; cutting
/// drops every open connection and refuses new ones until healed.
struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { return };
                if *cut_rx.borrow() {
                    continue; // dropped: the connection is refused in effect
                }
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(upstream).await else { return };
                    let (mut inbound, mut outbound) = (inbound, outbound);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { addr, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

// ------------------------------------------------------------------ the nodes

/// A free loopback port, held (bound) until the listener is dropped: the node ports
/// stay reserved while the proxies bind theirs, so no proxy takes one.
fn reserve_port() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

struct NodeSpec {
    id: u64,
    dir: PathBuf,
    listen: SocketAddr,
    peer_listen: SocketAddr,
    /// `--peers`: each peer through the proxy of the link from this node to it.
    peers: String,
    log: PathBuf,
}

struct Cluster {
    specs: Vec<NodeSpec>,
    /// Environment of every node process.
    env: Vec<(&'static str, String)>,
    nodes: Vec<Option<ChildProcess>>,
    /// The proxy carrying traffic from node `a` to node `b`, by `(a, b)`.
    links: BTreeMap<(u64, u64), Proxy>,
}

impl Cluster {
    async fn start(root: &Path, env: Vec<(&'static str, String)>) -> Cluster {
        let reserved: Vec<_> = (0..NODES).map(|_| (reserve_port(), reserve_port())).collect();
        let ports: Vec<(SocketAddr, SocketAddr)> =
            reserved.iter().map(|(a, b)| (a.local_addr().unwrap(), b.local_addr().unwrap())).collect();
        let mut links = BTreeMap::new();
        for a in 1..=NODES {
            for b in (1..=NODES).filter(|b| *b != a) {
                links.insert((a, b), Proxy::start(ports[(b - 1) as usize].1).await);
            }
        }
        let specs = (1..=NODES)
            .map(|id| {
                let peers: Vec<String> = (1..=NODES).filter(|b| *b != id).map(|b| format!("{b}={}", links[&(id, b)].addr)).collect();
                let (listen, peer_listen) = ports[(id - 1) as usize];
                NodeSpec {
                    id,
                    dir: root.join(format!("node-{id}")),
                    listen,
                    peer_listen,
                    peers: peers.join(","),
                    log: root.join(format!("node-{id}.log")),
                }
            })
            .collect();
        drop(reserved);
        let mut cluster = Cluster { specs, env, nodes: (0..NODES).map(|_| None).collect(), links };
        for id in 1..=NODES {
            cluster.start_node(id).await;
        }
        cluster
    }

    /// Describes node `id`, not named in the members' `--peers`, reaching them
    /// directly (no proxy); it is added at run time with its address.
    fn add_spec(&mut self, root: &Path, id: u64) {
        let (listen, peer_listen) = (reserve_port(), reserve_port());
        let peers: Vec<String> = self.specs.iter().map(|s| format!("{}={}", s.id, s.peer_listen)).collect();
        self.specs.push(NodeSpec {
            id,
            dir: root.join(format!("node-{id}")),
            listen: listen.local_addr().unwrap(),
            peer_listen: peer_listen.local_addr().unwrap(),
            peers: peers.join(","),
            log: root.join(format!("node-{id}.log")),
        });
        self.nodes.push(None);
    }

    fn spec(&self, id: u64) -> &NodeSpec {
        &self.specs[(id - 1) as usize]
    }

    async fn start_node(&mut self, id: u64) {
        self.start_node_with(id, &[]).await;
    }

    /// Starts node `id` with `extra` environment variables besides the cluster's.
    async fn start_node_with(&mut self, id: u64, extra: &[(&'static str, String)]) {
        let spec = self.spec(id);
        let (id_arg, dir, listen, peer_listen, peers, log) =
            (id.to_string(), spec.dir.clone(), spec.listen.to_string(), spec.peer_listen.to_string(), spec.peers.clone(), spec.log.clone());
        let env: Vec<_> = self.env.iter().chain(extra).cloned().collect();
        let process = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let args = [OsStr::new(&id_arg), dir.as_os_str(), OsStr::new(&listen), OsStr::new(&peer_listen), OsStr::new(&peers)];
                match ChildProcess::spawn_with_env("cluster", &args, &env, &log, deadline) {
                    // A restart on the same ports: the old process's sockets may linger.
                    Err(StartError::Bind(_)) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                    Err(StartError::Bind(e) | StartError::Other(e)) => panic!("node {id_arg}: {e}"),
                    Ok(process) => return process,
                }
            }
        })
        .await
        .unwrap();
        self.nodes[(id - 1) as usize] = Some(process);
    }

    fn kill(&mut self, id: u64) {
        self.nodes[(id - 1) as usize].take().expect("the node runs").kill();
    }

    /// SIGTERM: the node hands its shards off, then exits.
    async fn stop_gracefully(&mut self, id: u64) {
        let process = self.nodes[(id - 1) as usize].take().expect("the node runs");
        tokio::task::spawn_blocking(move || process.terminate(Duration::from_secs(20))).await.unwrap();
    }

    fn node(&self, id: u64) -> &ChildProcess {
        self.nodes[(id - 1) as usize].as_ref().expect("the node runs")
    }

    /// Cuts (or heals) every link to and from node `id`.
    fn isolate(&self, id: u64, cut: bool) {
        for ((a, b), proxy) in &self.links {
            if *a == id || *b == id {
                proxy.set_cut(cut);
            }
        }
    }

    /// The node leading shard 0, as a running node other than `not` reports it;
    /// waits for one.
    async fn leader(&self, not: Option<u64>) -> u64 {
        let deadline = Instant::now() + WAIT_LEADER;
        loop {
            for spec in self.specs.iter().filter(|s| Some(s.id) != not && self.nodes[(s.id - 1) as usize].is_some()) {
                if let Some(leader) = shard_leader(spec.peer_listen).await {
                    if Some(leader) != not {
                        return leader;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader of shard 0 within {WAIT_LEADER:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Shard 0's leader as the node at `peer` sees it, if it answers and knows one.
async fn shard_leader(peer: SocketAddr) -> Option<u64> {
    status(peer).await?.shards.first().map(|s| s.leader_id).filter(|id| *id != 0)
}

/// The node at `peer`'s view of every shard (`hourglass cluster status`).
async fn status(peer: SocketAddr) -> Option<StatusResponse> {
    let ask = async {
        let mut client = PeerClient::connect(format!("http://{peer}")).await.ok()?;
        Some(client.status(StatusRequest {}).await.ok()?.into_inner())
    };
    tokio::time::timeout(Duration::from_secs(2), ask).await.ok().flatten()
}

/// Each shard's applied index on the node at `peer`.
async fn applied(peer: SocketAddr) -> Option<Vec<u64>> {
    Some(status(peer).await?.shards.iter().map(|s| s.applied_index).collect())
}

// ------------------------------------------------------------------ workflows

#[derive(Debug, Clone)]
struct Started {
    workflow_id: String,
    n: u32,
    timer_ms: u64,
    /// The node whose client made the call.
    via: u64,
    acked_run: Option<String>,
    error: Option<String>,
    began: Instant,
    answered: Instant,
}

impl Started {
    fn expected(&self) -> String {
        let activity = match Kind::of(self.n) {
            Kind::Quick => format!("quick {}", self.n),
            Kind::Flaky => format!("flaky {}", self.n),
            Kind::Slow | Kind::SlowThenTimer => format!("slow {}", self.n),
        };
        format!("workflow {} (kind {}): timer {} ms, {activity}", self.n, self.n, self.timer_ms)
    }
}

async fn start_one(client: &Client, via: u64, task_queue: &str, n: u32, timer_ms: u64) -> Started {
    let workflow_id = format!("cluster-{n}");
    let began = Instant::now();
    let options = WorkflowStartOptions::new(task_queue, workflow_id.clone()).build();
    let outcome = tokio::time::timeout(WAIT_RPC, client.start_workflow(Durable::run, (n, n, timer_ms), options)).await;
    let (acked_run, error) = match outcome {
        Ok(Ok(handle)) => (Some(handle.run_id().expect("a started workflow has a run id").to_string()), None),
        Ok(Err(e)) => (None, Some(e.to_string())),
        Err(_) => (None, Some(format!("no answer within {WAIT_RPC:?}"))),
    };
    Started { workflow_id, n, timer_ms, via, acked_run, error, began, answered: Instant::now() }
}

/// Connects a client to every node, once each answers for the `default` namespace
/// (a new cluster creates it once it has elected the registry shard's leader).
async fn connect_all(cluster: &Cluster) -> Clients {
    let mut clients = Vec::new();
    for id in 1..=NODES {
        let client = shared::connect(cluster.spec(id).listen).await.unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + WAIT_LEADER;
        loop {
            let request = DescribeNamespaceRequest { namespace: "default".into(), ..Default::default() };
            let answer = client.connection().workflow_service().describe_namespace(request.into_request()).await;
            match answer {
                Ok(_) => break,
                Err(e) => assert!(Instant::now() < deadline, "node {id} does not know the default namespace: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        clients.push(client);
    }
    Clients(clients)
}

/// The clients, one per node (each reconnects by itself after its node restarts).
struct Clients(Vec<Client>);

impl Clients {
    fn of(&self, node: u64) -> &Client {
        &self.0[(node - 1) as usize]
    }
}

/// Starts a workflow through node `via` every 50 ms until `stop` (numbers `first`,
/// `first + NODES`, ...), so a node that does not answer delays only its own starts.
async fn keep_starting(client: Client, via: u64, task_queue: String, first: u32, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Started>>>) {
    let mut n = first;
    while !stop.load(Ordering::SeqCst) {
        let s = start_one(&client, via, &task_queue, n, 300).await;
        log.lock().unwrap().push(s);
        n += NODES as u32;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long after `fault` the cluster acknowledged a start that was made after it
/// (through any node).
fn recovery(fault: &str, at: Instant, shards: &[u32], log: &[Started]) -> String {
    let on_its_shards = |s: &&Started| shards.contains(&hourglass_service::shard::shard_for("default", &s.workflow_id, TEST_SHARDS));
    match log.iter().filter(|s| s.acked_run.is_some() && s.began > at).filter(on_its_shards).map(|s| s.answered).min() {
        Some(t) => format!("{fault}: first start acknowledged on its shards {shards:?} {} ms after the fault", (t - at).as_millis()),
        None => format!("{fault}: no start acknowledged on its shards {shards:?} after it"),
    }
}

/// The shards node `id` leads, as it reports them (none if it does not answer).
async fn led_by(cluster: &Cluster, id: u64) -> Vec<u32> {
    let Some(seen) = status(cluster.spec(id).peer_listen).await else { return Vec::new() };
    seen.shards.iter().filter(|s| s.leader_id == id).map(|s| s.shard).collect()
}

// ---------------------------------------------------------------------- the test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_workflows_complete_exactly_once_through_leader_failures() {
    // Kept when the test fails (the logs say why); removed when it passes.
    let root = tempfile::Builder::new().prefix("hourglass-cluster-").tempdir().unwrap().keep();
    let mut cluster = Cluster::start(&root, Vec::new()).await;
    eprintln!("cluster: 3 node processes, data and logs in {}", root.display());
    let clients = Arc::new(connect_all(&cluster).await);
    let task_queue = format!("cluster-{}", uuid::Uuid::new_v4());
    let mut workers = Vec::new();
    for id in 1..=NODES {
        let log = root.join(format!("worker-{id}.log"));
        workers.push(start_worker_process(cluster.spec(id).listen, &task_queue, &log).await);
    }

    // The workflows, started through every node.
    let mut started = Vec::new();
    for n in 0..24 {
        let via = u64::from(n) % NODES + 1;
        let s = start_one(clients.of(via), via, &task_queue, n, 500 + u64::from(n % 4) * 500).await;
        assert!(s.acked_run.is_some(), "the cluster is up, the start through node {via} must succeed: {:?}", s.error);
        started.push(s);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let late = Arc::new(Mutex::new(Vec::new()));
    let starters: Vec<_> = (1..=NODES)
        .map(|via| {
            let (client, queue) = (clients.of(via).clone(), task_queue.clone());
            tokio::spawn(keep_starting(client, via, queue, 1_000 + via as u32, stop.clone(), late.clone()))
        })
        .collect();

    // The faults.
    let mut faults = Vec::new();
    let leader = cluster.leader(None).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    faults.push((format!("kill -9 of leader node {leader}"), led_by(&cluster, leader).await, Instant::now()));
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.start_node(leader).await;

    let leader = cluster.leader(None).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    faults.push((format!("kill -9 of leader node {leader}"), led_by(&cluster, leader).await, Instant::now()));
    cluster.kill(leader);
    cluster.start_node(leader).await;

    let leader = cluster.leader(None).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    faults.push((format!("SIGSTOP of leader node {leader} for {OUTAGE:?}"), led_by(&cluster, leader).await, Instant::now()));
    cluster.node(leader).signal("STOP");
    tokio::time::sleep(OUTAGE).await;
    cluster.node(leader).signal("CONT");

    let leader = cluster.leader(None).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    faults.push((format!("SIGTERM of leader node {leader} (hands its shards off)"), led_by(&cluster, leader).await, Instant::now()));
    cluster.stop_gracefully(leader).await;
    cluster.start_node(leader).await;

    let leader = cluster.leader(None).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    faults.push((format!("leader node {leader} cut off from its peers for {OUTAGE:?}"), led_by(&cluster, leader).await, Instant::now()));
    cluster.isolate(leader, true);
    let successor = cluster.leader(Some(leader)).await;
    tokio::time::sleep(OUTAGE).await;
    cluster.isolate(leader, false);
    eprintln!("cluster: node {successor} took over from the isolated node {leader}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::SeqCst);
    for starter in starters {
        starter.await.unwrap();
    }

    let late = late.lock().unwrap().clone();
    for (fault, shards, at) in &faults {
        eprintln!("cluster: {}", recovery(fault, *at, shards, &late));
    }
    let acked_late = late.iter().filter(|s| s.acked_run.is_some()).count();
    eprintln!("cluster: {acked_late} of {} late starts acknowledged", late.len());
    assert!(acked_late > 10, "the cluster kept acknowledging starts through the faults: {acked_late}");
    started.extend(late);

    check_all(&clients, &started).await;
    drop(workers);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&root);
}

/// A node whose data directory is wiped rejoins and catches up by snapshot (the
/// leader has compacted its log past everything the node had), then leads its share
/// of the shards again: every workflow, those that ran before it was wiped included,
/// reads back through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_catches_up_by_snapshot_and_serves_everything() {
    // Kept when the test fails (the logs say why); removed when it passes.
    let root = tempfile::Builder::new().prefix("hourglass-cluster-wiped-").tempdir().unwrap().keep();
    eprintln!("cluster: data and logs in {}", root.display());
    // Snapshot (and compact) every 20 entries, so the leader's log soon starts past
    // anything a rejoining node has.
    let env = vec![("HG_SNAPSHOT_INTERVAL_ENTRIES", "20".to_string())];
    let mut cluster = Cluster::start(&root, env).await;
    let clients = connect_all(&cluster).await;
    let task_queue = format!("cluster-wiped-{}", uuid::Uuid::new_v4());
    let mut workers = Vec::new();
    for id in 1..=NODES {
        let log = root.join(format!("worker-{id}.log"));
        workers.push(start_worker_process(cluster.spec(id).listen, &task_queue, &log).await);
    }
    let mut started = Vec::new();
    let run_batch = |first: u32, via: u64, clients: &Clients| {
        let (client, queue) = (clients.of(via).clone(), task_queue.clone());
        async move {
            let mut batch = Vec::new();
            for n in first..first + 12 {
                // Quick and flaky activities only: no slow ones to wait for.
                let n = if Kind::of(n) == Kind::Slow || Kind::of(n) == Kind::SlowThenTimer { n + 2 } else { n };
                let s = start_one(&client, via, &queue, n, 100).await;
                assert!(s.acked_run.is_some(), "start {n} via node {via}: {:?}", s.error);
                batch.push(s);
            }
            batch
        }
    };

    let leader = cluster.leader(None).await;
    let wiped = (1..=NODES).find(|id| *id != leader).unwrap();
    started.extend(run_batch(0, leader, &clients).await);
    wait_closed(clients.of(leader), &started).await;
    cluster.kill(wiped);
    std::fs::remove_dir_all(&cluster.spec(wiped).dir).unwrap();
    eprintln!("cluster: node {wiped} killed and its data directory wiped");
    started.extend(run_batch(100, leader, &clients).await);
    wait_closed(clients.of(leader), &started).await;

    // Raft forbids a node that lost its log to vote as if it had not: it leaves the
    // groups, then joins again as a learner that catches up, and is promoted.
    let admin = cluster.spec(leader).peer_listen.to_string();
    hourglass_service::cluster::admin::remove_node(&admin, wiped).await.unwrap();
    cluster.start_node_with(wiped, &[("HG_JOIN", "1".to_string())]).await;
    hourglass_service::cluster::admin::add_node(&admin, wiped, None).await.unwrap();
    eprintln!("cluster: node {wiped} removed, started with --join and added again");
    let deadline = Instant::now() + WAIT_LEADER;
    loop {
        let (ours, theirs) = (applied(cluster.spec(wiped).peer_listen).await, applied(cluster.spec(leader).peer_listen).await);
        if let (Some(ours), Some(theirs)) = (&ours, &theirs) {
            if ours.iter().zip(theirs).all(|(a, b)| a >= b) {
                eprintln!("cluster: node {wiped} caught up: applied {ours:?}, leader {theirs:?}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "node {wiped} did not catch up: applied {ours:?}, leader {theirs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Placement gives the wiped node back its share of the shards once it caught up:
    // reads of those shards are served from what it rebuilt.
    let deadline = Instant::now() + WAIT_LEADER;
    loop {
        let leads = status(cluster.spec(wiped).peer_listen)
            .await
            .map_or(0, |s| s.shards.iter().filter(|s| s.leader_id == wiped && s.serving).count());
        if leads > 0 {
            eprintln!("cluster: node {wiped} leads {leads} shards again");
            break;
        }
        assert!(Instant::now() < deadline, "the wiped node never came to lead a shard");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    started.extend(run_batch(200, wiped, &clients).await);
    check_all_via(clients.of(wiped), &started).await;
    drop(workers);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&root);
}

/// A node whose disk starts failing every fsync stops serving (its log takes no
/// more writes, its shards stop), and the other two carry on: every workflow whose
/// start was acknowledged, before or after the failure, completes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_fails_stops_and_the_other_two_carry_on() {
    // Kept when the test fails (the logs say why); removed when it passes.
    let root = tempfile::Builder::new().prefix("hourglass-cluster-disk-").tempdir().unwrap().keep();
    eprintln!("cluster: data and logs in {}", root.display());
    let env = vec![("HG_SYNC_FAULT_ON_SIGUSR1", "1".to_string())];
    let cluster = Cluster::start(&root, env).await;
    let clients = connect_all(&cluster).await;
    let task_queue = format!("cluster-disk-{}", uuid::Uuid::new_v4());
    let mut workers = Vec::new();
    for id in 1..=NODES {
        let log = root.join(format!("worker-{id}.log"));
        workers.push(start_worker_process(cluster.spec(id).listen, &task_queue, &log).await);
    }
    let mut started = Vec::new();
    for n in 0..12 {
        let via = u64::from(n) % NODES + 1;
        let s = start_one(clients.of(via), via, &task_queue, n, 300).await;
        assert!(s.acked_run.is_some(), "start {n} via node {via} before the fault: {:?}", s.error);
        started.push(s);
    }

    let failing = cluster.leader(None).await;
    let failing_shards = led_by(&cluster, failing).await;
    cluster.node(failing).signal("USR1");
    let fault_at = Instant::now();
    eprintln!("cluster: node {failing}'s disk fails every fsync from now on");
    let survivors: Vec<u64> = (1..=NODES).filter(|id| *id != failing).collect();
    let mut late = Vec::new();
    for n in 100..124u32 {
        let via = survivors[n as usize % survivors.len()];
        late.push(start_one(clients.of(via), via, &task_queue, n, 300).await);
    }
    eprintln!("cluster: {}", recovery(&format!("fsync failure on node {failing}"), fault_at, &failing_shards, &late));
    let acked_late = late.iter().filter(|s| s.acked_run.is_some()).count();
    assert!(acked_late >= 20, "the two other nodes kept acknowledging starts: {acked_late} of {}", late.len());
    started.extend(late);
    check_all_via(clients.of(survivors[0]), &started).await;

    let serving = status(cluster.spec(failing).peer_listen).await.map(|s| s.shards.iter().filter(|s| s.serving).count());
    assert!(serving.unwrap_or(0) == 0, "the node whose disk failed serves no shard (it serves {serving:?})");
    drop(workers);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&root);
}

/// A fourth node that no member's `--peers` names joins at run time: its address is
/// recorded in the cluster's replicated member addresses, it is added to every
/// shard (learner, caught up, voter), and with node 1 then killed the groups
/// (four voters, a quorum of three) commit only with its votes: every workflow
/// completes and reads back through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_at_run_time_by_address_votes_and_serves() {
    // Kept when the test fails (the logs say why); removed when it passes.
    let root = tempfile::Builder::new().prefix("hourglass-cluster-grow-").tempdir().unwrap().keep();
    eprintln!("cluster: data and logs in {}", root.display());
    let mut cluster = Cluster::start(&root, Vec::new()).await;
    let clients = connect_all(&cluster).await;
    let task_queue = format!("cluster-grow-{}", uuid::Uuid::new_v4());
    let mut workers = Vec::new();
    for id in 2..=NODES {
        let log = root.join(format!("worker-{id}.log"));
        workers.push(start_worker_process(cluster.spec(id).listen, &task_queue, &log).await);
    }
    let mut started = Vec::new();
    for n in 0..8 {
        let via = u64::from(n) % NODES + 1;
        let s = start_one(clients.of(via), via, &task_queue, n, 300).await;
        assert!(s.acked_run.is_some(), "start {n} via node {via}: {:?}", s.error);
        started.push(s);
    }

    let new_id = NODES + 1;
    cluster.add_spec(&root, new_id);
    cluster.start_node_with(new_id, &[("HG_JOIN", "1".to_string())]).await;
    let admin = cluster.spec(1).peer_listen.to_string();
    let address = cluster.spec(new_id).peer_listen.to_string();
    hourglass_service::cluster::admin::add_node(&admin, new_id, Some(&address)).await.unwrap();
    let seen = status(cluster.spec(2).peer_listen).await.expect("node 2 answers");
    assert!(seen.shards.iter().all(|s| s.voters.contains(&new_id)), "node {new_id} votes in every shard: {:?}", seen.shards);
    eprintln!("cluster: node {new_id} added at run time by address, a voter of every shard");

    cluster.kill(1);
    let new_client = shared::connect(cluster.spec(new_id).listen).await.unwrap_or_else(|e| panic!("{e}"));
    for n in 100..108u32 {
        let via = if n % 2 == 0 { 2 } else { new_id };
        let client = if via == 2 { clients.of(2) } else { &new_client };
        let s = start_one(client, via, &task_queue, n, 300).await;
        assert!(s.acked_run.is_some(), "start {n} via node {via} with node 1 down: {:?}", s.error);
        started.push(s);
    }
    check_all_via(&new_client, &started).await;
    drop(workers);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&root);
}

/// Waits (bounded) until every workflow in `started` is closed.
async fn wait_closed(client: &Client, started: &[Started]) {
    let deadline = Instant::now() + WAIT_ALL_CLOSED;
    for s in started {
        loop {
            let events = full_history(client, "default", &s.workflow_id, "").await;
            if events.is_ok_and(|events| events.iter().any(|e| is_close(event_type(e)))) {
                break;
            }
            assert!(Instant::now() < deadline, "{} did not close within {WAIT_ALL_CLOSED:?}", s.workflow_id);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

// -------------------------------------------------------------------- checks

/// The run id DescribeWorkflowExecution names for `workflow_id`'s current run.
/// The workflow's current run as Describe answers, repeating the call while it is
/// `Unavailable` (a leadership move under way: the placement hands a restarted node
/// its shards back while the checks run), as an SDK client does; the last error as
/// text otherwise.
async fn current_run(client: &Client, workflow_id: &str) -> Result<Option<String>, String> {
    let request = DescribeWorkflowExecutionRequest {
        namespace: "default".into(),
        execution: Some(WorkflowExecution { workflow_id: workflow_id.to_string(), run_id: String::new() }),
    };
    let deadline = Instant::now() + WAIT_RPC;
    loop {
        let mut service = client.connection().workflow_service();
        match tokio::time::timeout(WAIT_RPC, service.describe_workflow_execution(request.clone().into_request())).await {
            Ok(Ok(described)) => return Ok(described.into_inner().workflow_execution_info.and_then(|i| i.execution).map(|e| e.run_id)),
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Err(status)) => return Err(format!("describe: {status}")),
            Err(_) => return Err(format!("describe: no answer within {WAIT_RPC:?}")),
        }
    }
}

/// Waits (bounded) for every existing workflow to close, then checks each.
async fn check_all(clients: &Clients, started: &[Started]) {
    check_all_via(clients.of(1), started).await;
}

/// [`check_all`] with every read through `client`.
async fn check_all_via(client: &Client, started: &[Started]) {
    let deadline = Instant::now() + WAIT_ALL_CLOSED;
    let mut open: Vec<String> = Vec::new();
    loop {
        open.clear();
        for s in started {
            match tokio::time::timeout(WAIT_RPC, full_history(client, "default", &s.workflow_id, "")).await {
                Ok(Ok(events)) if events.iter().any(|e| is_close(event_type(e))) => {}
                Ok(Err(status)) if status.code() == tonic::Code::NotFound && s.acked_run.is_none() => {}
                other => open.push(format!("{} ({:?})", s.workflow_id, other.map(|r| r.map(|e| e.len())))),
            }
        }
        if open.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(open.is_empty(), "{} workflows did not close within {WAIT_ALL_CLOSED:?}: {open:?}", open.len());

    let mut failures = Vec::new();
    let mut existing = 0;
    for s in started {
        let events = match full_history(client, "default", &s.workflow_id, "").await {
            Ok(events) => events,
            Err(status) if status.code() == tonic::Code::NotFound && s.acked_run.is_none() => continue,
            Err(status) => {
                failures.push(format!("{}: history: {status}", s.workflow_id));
                continue;
            }
        };
        existing += 1;
        let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
        if ids != (1..=ids.len() as i64).collect::<Vec<_>>() {
            failures.push(format!("{}: event ids not dense from 1: {ids:?}", s.workflow_id));
        }
        let completed = events.iter().filter(|e| event_type(e) == EventType::WorkflowExecutionCompleted).count();
        let last_completed = events.last().is_some_and(|e| event_type(e) == EventType::WorkflowExecutionCompleted);
        if completed != 1 || !last_completed {
            failures.push(format!("{}: {completed} completion events (must be exactly one, last)", s.workflow_id));
        }
        if let Some(acked) = &s.acked_run {
            match current_run(client, &s.workflow_id).await {
                Ok(Some(run)) if &run == acked => {}
                other => failures.push(format!("{}: current run {other:?}, the acknowledged one is {acked}", s.workflow_id)),
            }
        }
        let handle = client.get_workflow_handle::<shared::DurableRun>(s.workflow_id.clone());
        match tokio::time::timeout(WAIT_RPC, handle.get_result(WorkflowGetResultOptions::default())).await {
            Ok(Ok(result)) if result == s.expected() => {}
            Ok(Ok(result)) => {
                failures.push(format!("{} (started via node {}): result {result:?}, expected {:?}", s.workflow_id, s.via, s.expected()))
            }
            Ok(Err(e)) => failures.push(format!("{}: get_result: {e}", s.workflow_id)),
            Err(_) => failures.push(format!("{}: get_result: no answer within {WAIT_RPC:?}", s.workflow_id)),
        }
    }
    eprintln!(
        "cluster: {existing} workflows exist ({} acknowledged starts), checked",
        started.iter().filter(|s| s.acked_run.is_some()).count()
    );
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// A workflow id (from `prefix`) that lives on shard `shard`.
fn id_on_shard(shard: u32, prefix: &str) -> String {
    (0..).map(|i| format!("{prefix}-{i}")).find(|id| hourglass_service::shard::shard_for("default", id, TEST_SHARDS) == shard).unwrap()
}

/// Waits until placement puts shard 0's and shard 1's leaders on different nodes.
async fn wait_leaders_apart(cluster: &Cluster) {
    let deadline = Instant::now() + WAIT_LEADER;
    loop {
        let leaders = status(cluster.spec(1).peer_listen).await.map(|s| s.shards.iter().map(|x| x.leader_id).collect::<Vec<_>>());
        if let Some(l) = &leaders {
            if l.len() == 2 && l[0] != 0 && l[1] != 0 && l[0] != l[1] {
                eprintln!("cluster: shard 0 led by node {}, shard 1 by node {}", l[0], l[1]);
                return;
            }
        }
        assert!(Instant::now() < deadline, "shards 0 and 1 are not led by different nodes: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `task_queue` (as a raw worker) until a workflow task comes.
async fn poll_workflow_task(
    client: &Client,
    task_queue: &str,
) -> temporalio_protos::protos::temporal::api::workflowservice::v1::PollWorkflowTaskQueueResponse {
    use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
    use temporalio_protos::protos::temporal::api::workflowservice::v1::PollWorkflowTaskQueueRequest;
    let poll = PollWorkflowTaskQueueRequest {
        namespace: "default".into(),
        task_queue: Some(TaskQueue { name: task_queue.into(), ..Default::default() }),
        identity: "raw-worker".into(),
        ..Default::default()
    };
    let mut service = client.connection().workflow_service();
    loop {
        let task = tokio::time::timeout(Duration::from_secs(70), service.poll_workflow_task_queue(poll.clone().into_request()))
            .await
            .expect("a poll answers")
            .expect("the poll succeeds")
            .into_inner();
        if !task.task_token.is_empty() {
            return task;
        }
    }
}

/// A signal and a cancellation request from a workflow to one whose shard another
/// node leads: the SignalExternal / CancelExternal outboxes deliver them through the
/// `PeerShards` service, the target records its sender, the sender the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)] // the commands' `namespace` field
async fn external_signals_and_cancels_cross_nodes() {
    use temporalio_protos::protos::temporal::api::command::v1::{
        command, Command, RequestCancelExternalWorkflowExecutionCommandAttributes, SignalExternalWorkflowExecutionCommandAttributes,
    };
    use temporalio_protos::protos::temporal::api::common::v1::WorkflowType;
    use temporalio_protos::protos::temporal::api::enums::v1::CommandType;
    use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
    use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
    use temporalio_protos::protos::temporal::api::workflowservice::v1::{
        RespondWorkflowTaskCompletedRequest, StartWorkflowExecutionRequest,
    };

    let root = tempfile::Builder::new().prefix("hourglass-cluster-external-").tempdir().unwrap().keep();
    eprintln!("cluster: data and logs in {}", root.display());
    let cluster = Cluster::start(&root, Vec::new()).await;
    let clients = connect_all(&cluster).await;
    let (sender, target) = (id_on_shard(0, "ext-sender"), id_on_shard(1, "ext-target"));
    wait_leaders_apart(&cluster).await;
    let client = clients.of(3);
    let mut service = client.connection().workflow_service();
    let start = |workflow_id: &str, task_queue: &str| StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: workflow_id.into(),
        workflow_type: Some(WorkflowType { name: "Raw".into() }),
        task_queue: Some(TaskQueue { name: task_queue.into(), ..Default::default() }),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let suffix = uuid::Uuid::new_v4();
    let (sender_tq, target_tq) = (format!("ext-sender-{suffix}"), format!("ext-target-{suffix}"));
    // The target's workflow task is never polled: what reaches it is appended.
    service.start_workflow_execution(start(&target, &target_tq).into_request()).await.unwrap();
    let sender_run = service.start_workflow_execution(start(&sender, &sender_tq).into_request()).await.unwrap().into_inner().run_id;
    let task = poll_workflow_task(client, &sender_tq).await;
    let commands = vec![
        Command {
            command_type: CommandType::SignalExternalWorkflowExecution as i32,
            attributes: Some(command::Attributes::SignalExternalWorkflowExecutionCommandAttributes(
                SignalExternalWorkflowExecutionCommandAttributes {
                    namespace: "default".into(),
                    execution: Some(WorkflowExecution { workflow_id: target.clone(), run_id: String::new() }),
                    signal_name: "across".into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        },
        Command {
            command_type: CommandType::RequestCancelExternalWorkflowExecution as i32,
            attributes: Some(command::Attributes::RequestCancelExternalWorkflowExecutionCommandAttributes(
                RequestCancelExternalWorkflowExecutionCommandAttributes {
                    namespace: "default".into(),
                    workflow_id: target.clone(),
                    reason: "across nodes".into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        },
    ];
    let completion = RespondWorkflowTaskCompletedRequest {
        namespace: "default".into(),
        task_token: task.task_token,
        commands,
        identity: "raw-worker".into(),
        ..Default::default()
    };
    service.respond_workflow_task_completed(completion.into_request()).await.unwrap();

    let deadline = Instant::now() + WAIT_ALL_CLOSED;
    let (sent, received) = loop {
        let sent = full_history(client, "default", &sender, "").await.unwrap_or_default();
        let received = full_history(clients.of(1), "default", &target, "").await.unwrap_or_default();
        let done = sent.iter().any(|e| event_type(e) == EventType::ExternalWorkflowExecutionSignaled)
            && sent.iter().any(|e| event_type(e) == EventType::ExternalWorkflowExecutionCancelRequested);
        if done {
            break (sent, received);
        }
        assert!(Instant::now() < deadline, "the sender never heard back: {:?}", sent.iter().map(event_type).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sent.iter().filter(|e| event_type(e) == EventType::WorkflowTaskScheduled).count(), 2, "one new task for both outcomes");
    let signaled = received.iter().find_map(|e| match &e.attributes {
        Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) => Some(a.clone()),
        _ => None,
    });
    let signaled = signaled.expect("the target is signalled");
    assert_eq!(signaled.signal_name, "across");
    assert_eq!(signaled.external_workflow_execution, Some(WorkflowExecution { workflow_id: sender.clone(), run_id: sender_run.clone() }));
    let requested = received.iter().find_map(|e| match &e.attributes {
        Some(Attributes::WorkflowExecutionCancelRequestedEventAttributes(a)) => Some(a.clone()),
        _ => None,
    });
    let requested = requested.expect("the target's cancellation is requested");
    assert_eq!((requested.cause.as_str(), requested.identity.as_str()), ("across nodes", "history-service"));
    assert_eq!(requested.external_workflow_execution, Some(WorkflowExecution { workflow_id: sender, run_id: sender_run }));
    drop(cluster);
    let _ = std::fs::remove_dir_all(&root);
}

/// A child whose shard another node leads: the StartChild outbox creates it there
/// (`PeerShards.StartChild`), and its Started event carries the user metadata of the
/// parent's command, as on one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_user_metadata_crosses_nodes() {
    use temporalio_protos::protos::temporal::api::command::v1::{command, Command, StartChildWorkflowExecutionCommandAttributes};
    use temporalio_protos::protos::temporal::api::common::v1::{Payload, WorkflowType};
    use temporalio_protos::protos::temporal::api::enums::v1::CommandType;
    use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;
    use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
    use temporalio_protos::protos::temporal::api::workflowservice::v1::{
        RespondWorkflowTaskCompletedRequest, StartWorkflowExecutionRequest,
    };

    let root = tempfile::Builder::new().prefix("hourglass-cluster-child-meta-").tempdir().unwrap().keep();
    eprintln!("cluster: data and logs in {}", root.display());
    let cluster = Cluster::start(&root, Vec::new()).await;
    let clients = connect_all(&cluster).await;
    let (parent, kid) = (id_on_shard(0, "meta-parent"), id_on_shard(1, "meta-kid"));
    wait_leaders_apart(&cluster).await;
    let client = clients.of(3);
    let task_queue = format!("meta-parent-{}", uuid::Uuid::new_v4());
    let start = StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: parent.clone(),
        workflow_type: Some(WorkflowType { name: "Raw".into() }),
        task_queue: Some(TaskQueue { name: task_queue.clone(), ..Default::default() }),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    client.connection().workflow_service().start_workflow_execution(start.into_request()).await.unwrap();
    let task = poll_workflow_task(client, &task_queue).await;
    let text = |s: &str| Some(Payload { data: format!("{s:?}").into_bytes(), ..Default::default() });
    let metadata = UserMetadata { summary: text("kid summary"), details: text("kid details") };
    let start_child = Command {
        command_type: CommandType::StartChildWorkflowExecution as i32,
        attributes: Some(command::Attributes::StartChildWorkflowExecutionCommandAttributes(StartChildWorkflowExecutionCommandAttributes {
            workflow_id: kid.clone(),
            workflow_type: Some(WorkflowType { name: "Raw".into() }),
            task_queue: Some(TaskQueue { name: format!("{task_queue}-kid"), ..Default::default() }),
            ..Default::default()
        })),
        user_metadata: Some(metadata.clone()),
        ..Default::default()
    };
    let completion = RespondWorkflowTaskCompletedRequest {
        namespace: "default".into(),
        task_token: task.task_token,
        commands: vec![start_child],
        identity: "raw-worker".into(),
        ..Default::default()
    };
    client.connection().workflow_service().respond_workflow_task_completed(completion.into_request()).await.unwrap();

    let deadline = Instant::now() + WAIT_ALL_CLOSED;
    loop {
        let events = full_history(client, "default", &parent, "").await.unwrap_or_default();
        if events.iter().any(|e| event_type(e) == EventType::ChildWorkflowExecutionStarted) {
            break;
        }
        assert!(Instant::now() < deadline, "the child never started: {:?}", events.iter().map(event_type).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kid_events = full_history(clients.of(1), "default", &kid, "").await.expect("the child's history");
    assert_eq!(event_type(&kid_events[0]), EventType::WorkflowExecutionStarted);
    assert_eq!(kid_events[0].user_metadata, Some(metadata), "the child's Started event carries the command's metadata");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&root);
}
