//! Test harness for Hourglass end-to-end tests (the tests themselves are in `tests/`).
//!
//! [`TestServer`] runs a real Hourglass server in the test's own process: the same
//! [`hourglass_service::server::Server`] the `hourglass serve` binary runs, on
//! `127.0.0.1` with a free port and a fresh temporary data directory. It can be
//! stopped and restarted on the same directory (and port), to test durability.
//! Real Temporal SDK clients and workers connect to [`TestServer::url`].
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

pub mod in_process_cluster;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hourglass_service::engine::EngineConfig;
use hourglass_service::server::{ServeConfig, Server, ServerError};
use tempfile::TempDir;

/// Shard count of test servers (more than one, so routing across shards is exercised).
pub const TEST_SHARDS: u32 = 2;

/// A server running in this process on a temporary data directory, deleted on drop.
pub struct TestServer {
    server: Option<Server>,
    addr: SocketAddr,
    dir: TempDir,
    /// The rules' limits this server runs with (kept across restarts).
    engine: EngineConfig,
}

impl TestServer {
    /// Starts a server on `127.0.0.1:<free port>` with a new temporary data directory.
    pub async fn start() -> Result<TestServer, ServerError> {
        Self::start_with(EngineConfig::default()).await
    }

    /// Like [`TestServer::start`], with the rules' limits `engine` (e.g. a small
    /// history length that suggests continue-as-new).
    pub async fn start_with(engine: EngineConfig) -> Result<TestServer, ServerError> {
        let dir = tempfile::Builder::new().prefix("hourglass-test-").tempdir().map_err(|source| ServerError::Io {
            what: "creating temp dir",
            path: std::env::temp_dir(),
            source,
        })?;
        let server = Server::start(config(dir.path(), "127.0.0.1:0", &engine)).await?;
        let addr = server.local_addr();
        Ok(TestServer { server: Some(server), addr, dir, engine })
    }

    /// The gRPC address (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL SDK connections take (`http://127.0.0.1:port`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The running server (`None` while stopped).
    pub fn server(&self) -> Option<&Server> {
        self.server.as_ref()
    }

    /// Graceful shutdown; the data directory is kept. Does nothing if stopped.
    pub async fn stop(&mut self) -> Result<(), ServerError> {
        match self.server.take() {
            Some(server) => server.shutdown().await,
            None => Ok(()),
        }
    }

    /// Stops the server (if running) and starts a new one on the same data directory
    /// and port, so connected clients reconnect to it.
    pub async fn restart(&mut self) -> Result<(), ServerError> {
        self.stop().await?;
        let listen = self.addr.to_string();
        // The port was just released; a client's reconnect attempt can't take it, but
        // allow for the OS being slow to let go of it.
        let mut attempt = 0;
        let server = loop {
            match Server::start(config(self.dir.path(), &listen, &self.engine)).await {
                Err(ServerError::Bind { .. }) if attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other?,
            }
        };
        self.server = Some(server);
        Ok(())
    }
}

fn config(dir: &Path, listen: &str, engine: &EngineConfig) -> ServeConfig {
    ServeConfig {
        listen: listen.to_string(),
        data_dir: dir.to_path_buf(),
        shards: Some(TEST_SHARDS),
        shutdown_grace: Duration::from_secs(2),
        io_mode: Default::default(),
        cluster: None,
        snapshot_interval_entries: None,
        sync_faults: None,
        engine: engine.clone(),
    }
}
