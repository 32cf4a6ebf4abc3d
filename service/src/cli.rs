//! The `hourglass` command line: flags (each also read from an environment
//! variable) and logging setup.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use hourglass_service::server::ServeConfig;
use hourglass_storage::disk::IoMode;

/// Hourglass: a Temporal-compatible durable-execution server over a Raft-replicated
/// storage engine. Temporal SDK workers and clients, and the `temporal` CLI, connect
/// to it as they would to Temporal's own server.
#[derive(Debug, Parser)]
#[command(name = "hourglass", version, propagate_version = true)]
pub struct Cli {
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives
    /// such as `info,hourglass_service=debug`.
    #[arg(long = "log", env = "HOURGLASS_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Log line format.
    #[arg(long, env = "HOURGLASS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Temporal WorkflowService API (gRPC) from a data directory.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on for gRPC (host:port; port 0 picks a free port).
    #[arg(long, env = "HOURGLASS_LISTEN", default_value = "127.0.0.1:7233")]
    pub listen: String,

    /// Data directory: the node log, snapshots and settings. Created if missing.
    #[arg(long, env = "HOURGLASS_DATA_DIR", default_value = "./hourglass-data")]
    pub data_dir: PathBuf,

    /// Number of shards (independent Raft groups). Fixed when the data directory is
    /// created (default 4); later starts use the stored count and refuse a different one.
    #[arg(long, env = "HOURGLASS_SHARDS")]
    pub shards: Option<u32>,

    /// Seconds shutdown waits for in-flight calls (long polls) before cutting them off.
    #[arg(long, env = "HOURGLASS_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// How the node log writes: io_uring when the kernel allows it (auto), io_uring or
    /// fail (uring), or portable pwrite + fdatasync (pwrite). Same bytes on disk.
    #[arg(long, env = "HOURGLASS_IO_MODE", value_enum, default_value_t = IoModeArg::Auto)]
    pub io_mode: IoModeArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IoModeArg {
    Auto,
    Uring,
    Pwrite,
}

impl From<IoModeArg> for IoMode {
    fn from(m: IoModeArg) -> Self {
        match m {
            IoModeArg::Auto => IoMode::Auto,
            IoModeArg::Uring => IoMode::Uring,
            IoModeArg::Pwrite => IoMode::Pwrite,
        }
    }
}

impl ServeArgs {
    pub fn config(&self) -> ServeConfig {
        ServeConfig {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            shards: self.shards,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            io_mode: self.io_mode.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines with key=value fields.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber (to stderr).
pub fn init_logging(filter: &str, format: LogFormat) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| format!("invalid --log filter {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults() {
        let cli = Cli::try_parse_from(["hourglass", "serve"]).unwrap();
        let Command::Serve(args) = cli.command;
        let config = args.config();
        assert_eq!(config.listen, "127.0.0.1:7233");
        assert_eq!(config.data_dir, PathBuf::from("./hourglass-data"));
        assert_eq!(config.shards, None);
        assert_eq!(config.io_mode, IoMode::Auto);
        let cli = Cli::try_parse_from(["hourglass", "serve", "--io-mode", "pwrite"]).unwrap();
        let Command::Serve(args) = cli.command;
        assert_eq!(args.config().io_mode, IoMode::Pwrite);
        assert!(Cli::try_parse_from(["hourglass", "serve", "--io-mode", "mmap"]).is_err(), "unknown io mode refused");
        assert_eq!(cli.log, "info");
    }
}
