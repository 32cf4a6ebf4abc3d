//! `hourglass-bench`: load generator for a Temporal-API endpoint
//! (`hourglass-bench --target HOST:PORT ...`, see `hourglass_bench::load` and
//! docs/bench-harness.md), and `hourglass-bench report --dir DIR`, which turns the JSON
//! of a `bench/compare.sh` run into tables and a chart (`hourglass_bench::report`).

use clap::{Parser, Subcommand};
use hourglass_bench::load::{run, Args};
use hourglass_bench::report::{self, ReportArgs};

#[derive(Debug, Parser)]
#[command(name = "hourglass-bench", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    load: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Tables, ratios, goals and an SVG chart from the JSON files of a compare run.
    Report(ReportArgs),
}

/// Keeps allocations up to 4 MiB on the heap instead of a fresh mmap each time.
///
/// tonic builds a new gzip compressor for every request it sends; its ~300 KB of
/// tables is above glibc's default mmap threshold, so each request paid an mmap, 75
/// zero-filled page faults and a munmap: a third of the generator's CPU. With the
/// chunks reused from the heap the generator needs ~30% less CPU per workflow, which
/// leaves more of a small machine to the server under test.
fn keep_large_allocations_on_heap() {
    // SAFETY: mallopt only changes allocator tunables; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

fn main() {
    keep_large_allocations_on_heap();
    let cli = Cli::parse();
    if let Some(Command::Report(args)) = &cli.command {
        if let Err(e) = report::run(args) {
            eprintln!("hourglass-bench report: {e}");
            std::process::exit(1);
        }
        return;
    }
    let args = cli.load;
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
