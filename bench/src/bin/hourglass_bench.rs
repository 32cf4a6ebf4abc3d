//! `hourglass-bench`: load generator for a Temporal-API endpoint. See
//! `hourglass_bench::load` and docs/bench-harness.md.

use clap::Parser;
use hourglass_bench::load::{run, Args};

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(run(args.clone())) {
        Ok(report) => {
            println!("{}", report.table);
            if let Some(path) = &args.json {
                let text = serde_json::to_string_pretty(&report.json).expect("json");
                if let Err(e) = std::fs::write(path, text + "\n") {
                    eprintln!("hourglass-bench: write {}: {e}", path.display());
                    std::process::exit(1);
                }
                eprintln!("report written to {}", path.display());
            }
            let failed = report.json["workflows_failed"].as_u64().unwrap_or(0);
            std::process::exit(if failed > 0 { 2 } else { 0 });
        }
        Err(e) => {
            eprintln!("hourglass-bench: {e}");
            std::process::exit(1);
        }
    }
}
