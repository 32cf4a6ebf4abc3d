//! `hourglass`: the server binary. `hourglass serve --help` lists the flags.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli::init_logging(&cli.log, cli.log_format) {
        eprintln!("hourglass: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("hourglass").build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hourglass: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => match args.config() {
            Ok(config) => runtime.block_on(hourglass_service::server::run(config, shutdown_signal())).map_err(|e| e.to_string()),
            Err(e) => {
                eprintln!("hourglass: {e}");
                return ExitCode::from(2);
            }
        },
        Command::Cluster(cli::ClusterCommand::Status { peer }) => runtime.block_on(cluster_status(&peer)).map_err(|e| e.to_string()),
        Command::Cluster(cli::ClusterCommand::AddNode { node_id, address, peer }) => {
            runtime.block_on(hourglass_service::cluster::admin::add_node(&peer, node_id, address.as_deref()))
        }
        Command::Cluster(cli::ClusterCommand::RemoveNode { node_id, peer }) => {
            runtime.block_on(hourglass_service::cluster::admin::remove_node(&peer, node_id))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hourglass: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a node's view of the cluster (`hourglass cluster status`).
async fn cluster_status(peer: &str) -> Result<(), Box<dyn std::error::Error>> {
    use hourglass_proto::peer::{peer_client::PeerClient, StatusRequest};
    let mut client = PeerClient::connect(format!("http://{peer}")).await?;
    let status = client.status(StatusRequest {}).await?.into_inner();
    println!("node {} sees:", status.node_id);
    println!("{:>5}  {:>6}  {:>6}  {:>7}  {:>10}  {:<10}  learners", "shard", "leader", "term", "serving", "applied", "voters");
    let ids = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    for s in status.shards {
        let (voters, learners) = (ids(&s.voters), ids(&s.learners));
        println!("{:>5}  {:>6}  {:>6}  {:>7}  {:>10}  {voters:<10}  {learners}", s.shard, s.leader_id, s.term, s.serving, s.applied_index);
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
