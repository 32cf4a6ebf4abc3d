//! The killable child processes of the process-level tests (`durability.rs`,
//! `cluster.rs`): the crate's `durability_child` binary run as a server, a cluster
//! node or an SDK worker, waited for until it reports READY, killed with SIGKILL
//! when dropped.
#![allow(dead_code)] // each test uses a part

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::shared::{FAILED, READY};

/// The `durability_child` binary (see the module doc).
pub const CHILD_EXE: &str = env!("CARGO_BIN_EXE_durability_child");

/// A `durability_child` process (a server or a worker). Killed (SIGKILL) when dropped.
pub struct ChildProcess {
    child: Child,
    /// Held open: the child exits when it is closed.
    _stdin: ChildStdin,
    /// What followed READY.
    pub ready: String,
}

pub enum StartError {
    Bind(String),
    Other(String),
}

impl ChildProcess {
    /// Runs `durability_child <role> <args>` (stderr appended to `log`) and waits until
    /// it prints READY (or FAILED, or `deadline` passes). Blocking.
    pub fn spawn(role: &str, args: &[&OsStr], log: &Path, deadline: Instant) -> Result<ChildProcess, StartError> {
        Self::spawn_with_env(role, args, &[], log, deadline)
    }

    /// [`ChildProcess::spawn`] with extra environment variables for the child.
    pub fn spawn_with_env(
        role: &str,
        args: &[&OsStr],
        env: &[(&str, String)],
        log: &Path,
        deadline: Instant,
    ) -> Result<ChildProcess, StartError> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| StartError::Other(format!("opening {}: {e}", log.display())))?;
        let mut child = Command::new(CHILD_EXE)
            .arg(role)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| StartError::Other(format!("spawning {CHILD_EXE} {role}: {e}")))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        // Read the child's stdout on a thread (drained until the child dies); the
        // READY/FAILED line comes back through a channel.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with(READY) || line.starts_with(FAILED) {
                    let _ = tx.send(line);
                }
            }
        });
        let wait = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        let outcome = rx.recv_timeout(wait);
        let fail = |mut child: Child, e: String| {
            let _ = child.kill();
            let _ = child.wait();
            e
        };
        match outcome {
            Ok(line) if line.starts_with(READY) => Ok(ChildProcess { child, _stdin: stdin, ready: line[READY.len()..].trim().to_string() }),
            Ok(line) => {
                let detail = line[FAILED.len()..].trim().to_string();
                let e = fail(child, format!("the {role} process could not start: {detail}"));
                Err(if detail.starts_with("bind") { StartError::Bind(e) } else { StartError::Other(e) })
            }
            Err(_) => {
                Err(StartError::Other(fail(child, format!("the {role} process did not report ready in time (log: {})", log.display()))))
            }
        }
    }

    /// `kill -9`: SIGKILL, then reap it.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the child process");
        let status = self.child.wait().expect("reap the child process");
        assert!(!status.success(), "a killed process does not exit successfully: {status:?}");
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server process (`durability_child server`).
pub struct ServerProcess {
    pub process: ChildProcess,
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts a server process on `data_dir`, listening on `listen`, and waits until
    /// it serves. Retries a while if the port is not free yet (a restart on the same
    /// port). Blocking: call it from `spawn_blocking`.
    pub fn start(data_dir: &Path, listen: &str, log: &Path) -> Result<ServerProcess, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let args = [data_dir.as_os_str(), OsStr::new(listen)];
        loop {
            match ChildProcess::spawn("server", &args, log, deadline) {
                Err(StartError::Bind(e)) if Instant::now() < deadline => {
                    eprintln!("durability: port not free yet ({e}); retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(StartError::Bind(e) | StartError::Other(e)) => return Err(e),
                Ok(process) => {
                    let addr = process.ready.parse().map_err(|e| format!("bad READY address {:?}: {e}", process.ready))?;
                    return Ok(ServerProcess { process, addr });
                }
            }
        }
    }

    pub fn kill(self) {
        self.process.kill();
    }
}

pub async fn start_server(data_dir: &Path, listen: &str, log: &Path) -> ServerProcess {
    let (data_dir, listen, log) = (data_dir.to_path_buf(), listen.to_string(), log.to_path_buf());
    let server = tokio::task::spawn_blocking(move || ServerProcess::start(&data_dir, &listen, &log)).await.expect("the start task");
    server.unwrap_or_else(|e| panic!("{e}"))
}

/// Starts a worker process (`durability_child worker`) polling `task_queue` on `server`.
pub async fn start_worker_process(server: SocketAddr, task_queue: &str, log: &Path) -> ChildProcess {
    let (server, task_queue, log) = (server.to_string(), task_queue.to_string(), log.to_path_buf());
    let worker = tokio::task::spawn_blocking(move || {
        let args = [OsStr::new(&server), OsStr::new(&task_queue)];
        ChildProcess::spawn("worker", &args, &log, Instant::now() + Duration::from_secs(30))
    })
    .await
    .expect("the start task");
    worker.unwrap_or_else(|(StartError::Bind(e) | StartError::Other(e))| panic!("{e}"))
}

impl ChildProcess {
    /// The process id (for SIGSTOP / SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits (bounded) for the process to exit on its own.
    pub fn terminate(mut self, wait: Duration) {
        self.signal("TERM");
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("process {} did not exit within {wait:?} of SIGTERM", self.child.id());
    }

    /// Sends `signal` (a `kill` name such as `STOP` or `CONT`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed: {status:?}", self.child.id());
    }
}
