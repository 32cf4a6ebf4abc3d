//! The `hourglass` command line: flags (each also read from an environment
//! variable) and logging setup.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use hourglass_service::cluster::ClusterConfig;
use hourglass_service::core::{EngineConfig, SUGGEST_CAN_HISTORY_BYTES_DEFAULT, SUGGEST_CAN_HISTORY_EVENTS_DEFAULT};
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
    /// Inspect a running cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Print one node's view of every shard: leader, term, voters, applied index.
    Status {
        /// The node's peer address (its --peer-listen).
        #[arg(long, default_value = "127.0.0.1:7301")]
        peer: String,
    },
    /// Add a node (started with --join, named in every member's --peers) to every
    /// shard: as a learner, promoted to voter once caught up.
    AddNode {
        /// The node to add.
        node_id: u64,
        /// Its peer address (`--peer-listen`), recorded in the cluster's replicated
        /// member addresses; needed when the members' `--peers` do not name it.
        #[arg(long)]
        address: Option<String>,
        /// Any member's peer address.
        #[arg(long, default_value = "127.0.0.1:7301")]
        peer: String,
    },
    /// Remove a node from every shard (e.g. one whose data directory was lost).
    RemoveNode {
        /// The node to remove.
        node_id: u64,
        /// Any remaining member's peer address.
        #[arg(long, default_value = "127.0.0.1:7301")]
        peer: String,
    },
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

    /// This node's id in its cluster (non-zero; fixed for the data directory).
    #[arg(long, env = "HOURGLASS_NODE_ID", default_value_t = 1)]
    pub node_id: u64,

    /// Address for node-to-node traffic (Raft, forwarded calls). Needed with --peers.
    #[arg(long, env = "HOURGLASS_PEER_LISTEN")]
    pub peer_listen: Option<String>,

    /// The cluster's other members as ID=HOST:PORT (their --peer-listen), comma
    /// separated, e.g. `2=127.0.0.1:7302,3=127.0.0.1:7303`. Without it the node is a
    /// one-member cluster. Every member must list the same members.
    #[arg(long, env = "HOURGLASS_PEERS", value_parser = parse_peers_arg)]
    pub peers: Option<BTreeMap<u64, String>>,

    /// Join a cluster that already exists (a new or wiped data directory): do not
    /// bootstrap membership; serve once a member runs `hourglass cluster add-node`.
    #[arg(long, env = "HOURGLASS_JOIN")]
    pub join: bool,

    /// Snapshot each shard (and compact its Raft log) after this many applied entries.
    #[arg(long, env = "HOURGLASS_SNAPSHOT_INTERVAL_ENTRIES", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_interval_entries: u64,

    /// History length (events) from which a workflow task suggests continue-as-new
    /// (Temporal's `limit.historyCount.suggestContinueAsNew`).
    #[arg(long, env = "HOURGLASS_SUGGEST_CAN_HISTORY_EVENTS", default_value_t = SUGGEST_CAN_HISTORY_EVENTS_DEFAULT,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub suggest_continue_as_new_history_events: i64,

    /// History size (bytes) from which a workflow task suggests continue-as-new
    /// (Temporal's `limit.historySize.suggestContinueAsNew`).
    #[arg(long, env = "HOURGLASS_SUGGEST_CAN_HISTORY_BYTES", default_value_t = SUGGEST_CAN_HISTORY_BYTES_DEFAULT,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub suggest_continue_as_new_history_bytes: i64,
}

fn parse_peers_arg(text: &str) -> Result<BTreeMap<u64, String>, String> {
    hourglass_service::cluster::parse_peers(text)
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
    pub fn config(&self) -> Result<ServeConfig, String> {
        let cluster = match (&self.peers, &self.peer_listen) {
            (Some(peers), Some(peer_listen)) if !peers.is_empty() => {
                let c = ClusterConfig { node_id: self.node_id, peer_listen: peer_listen.clone(), peers: peers.clone(), join: self.join };
                c.validate()?;
                Some(c)
            }
            (Some(peers), None) if !peers.is_empty() => return Err("--peers needs --peer-listen".into()),
            _ if self.node_id != 1 => return Err("--node-id other than 1 needs --peers and --peer-listen".into()),
            _ => None,
        };
        Ok(ServeConfig {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            shards: self.shards,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            io_mode: self.io_mode.into(),
            cluster,
            snapshot_interval_entries: Some(self.snapshot_interval_entries),
            sync_faults: None,
            engine: EngineConfig {
                suggest_continue_as_new_history_events: self.suggest_continue_as_new_history_events,
                suggest_continue_as_new_history_bytes: self.suggest_continue_as_new_history_bytes,
                ..EngineConfig::default()
            },
        })
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
        let config = serve_config(&["hourglass", "serve"]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:7233");
        assert_eq!(config.data_dir, PathBuf::from("./hourglass-data"));
        assert_eq!(config.shards, None);
        assert_eq!(config.io_mode, IoMode::Auto);
        assert_eq!(config.cluster, None, "a single node by default");
        assert_eq!(serve_config(&["hourglass", "serve", "--io-mode", "pwrite"]).unwrap().io_mode, IoMode::Pwrite);
        assert!(Cli::try_parse_from(["hourglass", "serve", "--io-mode", "mmap"]).is_err(), "unknown io mode refused");
        assert_eq!(Cli::try_parse_from(["hourglass", "serve"]).unwrap().log, "info");
    }

    fn serve_config(args: &[&str]) -> Result<ServeConfig, String> {
        match Cli::try_parse_from(args).map_err(|e| e.to_string())?.command {
            Command::Serve(args) => args.config(),
            Command::Cluster(_) => Err("not serve".into()),
        }
    }

    #[test]
    fn cluster_flags_are_checked() {
        let node =
            ["hourglass", "serve", "--node-id", "2", "--peer-listen", "127.0.0.1:7302", "--peers", "1=127.0.0.1:7301,3=127.0.0.1:7303"];
        let cluster = serve_config(&node).unwrap().cluster.expect("a cluster node");
        assert_eq!((cluster.node_id, cluster.members(), cluster.join), (2, vec![1, 2, 3], false));
        let joining: Vec<&str> = node.iter().copied().chain(["--join"]).collect();
        assert!(serve_config(&joining).unwrap().cluster.unwrap().join);
        for bad in [
            &["hourglass", "serve", "--peers", "2=127.0.0.1:7302"][..],
            &["hourglass", "serve", "--node-id", "3"],
            &["hourglass", "serve", "--node-id", "2", "--peer-listen", "a:1", "--peers", "2=b:2"],
            &["hourglass", "serve", "--node-id", "0", "--peer-listen", "a:1", "--peers", "2=b:2"],
        ] {
            assert!(serve_config(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Cli::try_parse_from(["hourglass", "serve", "--peers", "2"]).is_err(), "a malformed --peers is refused");
        assert!(Cli::try_parse_from(["hourglass", "cluster", "add-node", "4", "--peer", "127.0.0.1:7301"]).is_ok());
    }

    #[test]
    fn continue_as_new_limits_default_to_temporals_and_can_be_set() {
        let defaults = serve_config(&["hourglass", "serve"]).unwrap().engine;
        assert_eq!((defaults.suggest_continue_as_new_history_events, defaults.suggest_continue_as_new_history_bytes), (4_096, 4 << 20));
        let args =
            ["hourglass", "serve", "--suggest-continue-as-new-history-events", "50", "--suggest-continue-as-new-history-bytes", "9000"];
        let set = serve_config(&args).unwrap().engine;
        assert_eq!((set.suggest_continue_as_new_history_events, set.suggest_continue_as_new_history_bytes), (50, 9_000));
        assert!(Cli::try_parse_from(["hourglass", "serve", "--suggest-continue-as-new-history-events", "0"]).is_err(), "0 is refused");
    }
}
