//! The killable child processes of `tests/durability.rs` (the test finds this binary
//! through `CARGO_BIN_EXE_durability_child`):
//!
//! - `durability_child server <data-dir> <listen>` runs
//!   [`hourglass_service::server::Server`] — what `hourglass serve` runs — and prints
//!   `HG_DURABILITY_READY <address>` once it serves (or `HG_DURABILITY_FAILED
//!   <bind|other> <error>` if it cannot start);
//! - `durability_child cluster <node-id> <data-dir> <listen> <peer-listen> <peers>` runs
//!   the same server as a node of a cluster (`hourglass serve --node-id .. --peers ..`),
//!   and prints `HG_DURABILITY_READY <address> <peer address>`;
//! - `durability_child worker <server-address> <task-queue>` runs an SDK worker for the
//!   test's workflow and activities (`shared.rs`) and prints `HG_DURABILITY_READY
//!   worker` once it polls.
//!
//! A server started with `HG_SYNC_FAULT_ON_SIGUSR1=1` fails every fsync from its first
//! SIGUSR1 on (a failing disk).
//!
//! Either runs until it is killed (the test sends SIGKILL), and exits when its stdin
//! reaches end of file: the test holds the other end of that pipe, so a child does not
//! outlive the test process.

mod shared;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hourglass_service::cluster::ClusterConfig;
use hourglass_service::server::{ServeConfig, Server, ServerError};
use hourglass_tests::TEST_SHARDS;

use shared::{Stats, FAILED, READY};

/// Exit codes: bad arguments; the parent is gone; the child could not start; it
/// stopped on its own.
const EXIT_USAGE: u8 = 64;
const EXIT_PARENT_GONE: i32 = 70;
const EXIT_START_FAILED: u8 = 71;
const EXIT_STOPPED: u8 = 72;

const USAGE: &str = "usage: durability_child server <data-dir> <listen> \
    | durability_child cluster <node-id> <data-dir> <listen> <peer-listen> <peers> \
    | durability_child worker <server-address> <task-queue>";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let outcome = match args.as_slice() {
        [role, data_dir, listen] if role.to_str() == Some("server") => match listen.to_str() {
            Some(listen) => serve_node(PathBuf::from(data_dir), listen.to_string(), None),
            None => Err(Failure::Usage),
        },
        [role, node_id, data_dir, listen, peer_listen, peers] if role.to_str() == Some("cluster") => {
            match cluster_config(node_id, peer_listen, peers) {
                Ok(cluster) => match listen.to_str() {
                    Some(listen) => serve_node(PathBuf::from(data_dir), listen.to_string(), Some(cluster)),
                    None => Err(Failure::Usage),
                },
                Err(e) => Err(Failure::start(e)),
            }
        }
        [role, server, task_queue] if role.to_str() == Some("worker") => match (server.to_str(), task_queue.to_str()) {
            (Some(server), Some(task_queue)) => work(server, task_queue.to_string()),
            _ => Err(Failure::Usage),
        },
        _ => Err(Failure::Usage),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage) => {
            eprintln!("{USAGE}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Start { bind, error }) => {
            say(&format!("{FAILED} {} {error}", if bind { "bind" } else { "other" }));
            ExitCode::from(EXIT_START_FAILED)
        }
        Err(Failure::Stopped(error)) => {
            eprintln!("durability_child stopped: {error}");
            ExitCode::from(EXIT_STOPPED)
        }
    }
}

enum Failure {
    Usage,
    /// Reported on stdout as a FAILED line; `bind`: the address was not free.
    Start {
        bind: bool,
        error: String,
    },
    Stopped(String),
}

impl Failure {
    fn start(error: impl std::fmt::Display) -> Failure {
        Failure::Start { bind: false, error: error.to_string() }
    }
}

fn cluster_config(node_id: &OsString, peer_listen: &OsString, peers: &OsString) -> Result<ClusterConfig, String> {
    let text = |s: &OsString| s.to_str().map(str::to_string).ok_or_else(|| format!("{s:?} is not UTF-8"));
    let node_id = text(node_id)?.parse().map_err(|e| format!("node id: {e}"))?;
    let peers = hourglass_service::cluster::parse_peers(&text(peers)?)?;
    // HG_JOIN=1: join an existing cluster (a wiped node), as `hourglass serve --join`.
    let join = std::env::var("HG_JOIN").is_ok_and(|v| v == "1");
    let config = ClusterConfig { node_id, peer_listen: text(peer_listen)?, peers, join };
    config.validate()?;
    Ok(config)
}

/// Serves on `data_dir` (as a node of `cluster`, if given) until killed.
fn serve_node(data_dir: PathBuf, listen: String, cluster: Option<ClusterConfig>) -> Result<(), Failure> {
    // stderr is the test's log file for this process (HG_CHILD_LOG overrides the filter).
    let filter = std::env::var("HG_CHILD_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    exit_with_parent();
    block_on(async move {
        let sync_faults = sync_faults_on_sigusr1();
        let config = ServeConfig {
            listen,
            data_dir,
            shards: Some(TEST_SHARDS),
            shutdown_grace: Duration::from_secs(1),
            io_mode: Default::default(),
            cluster,
            // Tests that need snapshots taken often (a wiped node catching up) set it.
            snapshot_interval_entries: std::env::var("HG_SNAPSHOT_INTERVAL_ENTRIES").ok().and_then(|v| v.parse().ok()),
            sync_faults,
            engine: Default::default(),
        };
        let server = Server::start(config)
            .await
            .map_err(|e| Failure::Start { bind: matches!(e, ServerError::Bind { .. }), error: e.to_string() })?;
        match server.peer_addr() {
            Some(peer) => say(&format!("{READY} {} {peer}", server.local_addr())),
            None => say(&format!("{READY} {}", server.local_addr())),
        }
        // SIGTERM: a graceful stop, as `hourglass serve` does (a cluster node hands
        // its shards off first); SIGKILL is the crash.
        let terminated = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    term.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        server.run_until(terminated).await.map_err(|e| Failure::Stopped(format!("server: {e}")))
    })
}

/// HG_SYNC_FAULT_ON_SIGUSR1=1: the node's disk fails every fsync from the first
/// SIGUSR1 on (a device that fails under a running server).
fn sync_faults_on_sigusr1() -> Option<Arc<AtomicBool>> {
    if !std::env::var("HG_SYNC_FAULT_ON_SIGUSR1").is_ok_and(|v| v == "1") {
        return None;
    }
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).ok()?;
    tokio::spawn(async move {
        usr1.recv().await;
        eprintln!("SIGUSR1: every fsync of this node's disk fails from now on");
        set.store(true, Ordering::Release);
    });
    Some(flag)
}

/// Runs an SDK worker polling `task_queue` on `server` until killed.
fn work(server: &str, task_queue: String) -> Result<(), Failure> {
    let server = server.parse().map_err(|e| Failure::start(format!("server address {server:?}: {e}")))?;
    exit_with_parent();
    block_on(async move {
        let client = shared::connect(server).await.map_err(Failure::start)?;
        let mut worker = shared::new_worker(&client, &task_queue, Arc::new(Stats::default())).map_err(Failure::start)?;
        say(&format!("{READY} worker"));
        worker.run().await.map_err(|e| Failure::Stopped(format!("worker: {e}")))
    })
}

/// Runs `task` on a new runtime; on return, leaves whatever it spawned behind (the
/// process exits next).
fn block_on(task: impl std::future::Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::start(format!("tokio runtime: {e}")))?;
    let outcome = runtime.block_on(task);
    runtime.shutdown_background();
    outcome
}

/// Exits when the test process is gone: stdin is a pipe the test holds, and end of
/// file means it closed it or died.
fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 64];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(EXIT_PARENT_GONE),
                Ok(_) => {}
            }
        }
    });
}

/// Prints a line for the test and flushes it at once.
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // If the test stopped reading, it has stopped waiting for this line too.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}
